//! Globus EACL `.signing_policy` files: which subjects a CA may sign.
//!
//! ```text
//! access_id_CA   X509   '/C=XX/O=Example/CN=Example CA'
//! pos_rights     globus CA:sign
//! cond_subjects  globus '"/C=XX/O=Example/*" "/C=XX/O=Other/*"'
//! ```
//! Patterns are globs (`*` any string, `?` one character), compared
//! case-insensitively after unifying attribute labels (`Email`/`E`/
//! `emailAddress`, `UID`/`USERID`).

use thiserror::Error;

use super::dn::normalize_labels;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}: {reason}")]
pub struct PolicyError {
    pub line: usize,
    pub reason: String,
}

/// One CA block: certificates issued by `ca` may have these subjects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningPolicy {
    /// Normalised issuer DN.
    pub ca: String,
    pub subjects: Vec<String>,
}

/// Splits a line into tokens; `'...'` and `"..."` quote (the quotes are
/// removed), `#` outside quotes starts a comment.
pub(crate) fn tokens(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '#' {
            break;
        } else if c == '\'' || c == '"' {
            chars.next();
            let mut tok = String::new();
            loop {
                match chars.next() {
                    Some(ch) if ch == c => break,
                    Some(ch) => tok.push(ch),
                    None => return Err(format!("unterminated {c}quote")),
                }
            }
            out.push(tok);
        } else {
            let mut tok = String::new();
            while let Some(&ch) = chars.peek() {
                if ch.is_whitespace() {
                    break;
                }
                tok.push(ch);
                chars.next();
            }
            out.push(tok);
        }
    }
    Ok(out)
}

/// Parses a whole file. Unknown statements are errors: a policy file we
/// misread could silently permit too much.
pub fn parse(text: &str) -> Result<Vec<SigningPolicy>, PolicyError> {
    let mut out: Vec<SigningPolicy> = Vec::new();
    let mut current: Option<(SigningPolicy, bool)> = None;
    let finish = |cur: Option<(SigningPolicy, bool)>, out: &mut Vec<SigningPolicy>| {
        if let Some((p, true)) = cur {
            out.push(p);
        }
    };
    for (i, line) in text.lines().enumerate() {
        let err = |reason: String| PolicyError {
            line: i + 1,
            reason,
        };
        let toks = tokens(line).map_err(err)?;
        let Some(key) = toks.first() else { continue };
        match key.to_ascii_lowercase().as_str() {
            "access_id_ca" => {
                let [_, kind, dn] = toks.as_slice() else {
                    return Err(err("access_id_CA needs a type and a DN".into()));
                };
                if !kind.eq_ignore_ascii_case("x509") {
                    return Err(err(format!("unsupported access_id_CA type {kind}")));
                }
                finish(current.take(), &mut out);
                current = Some((
                    SigningPolicy {
                        ca: normalize_labels(dn),
                        subjects: Vec::new(),
                    },
                    false,
                ));
            }
            "pos_rights" => {
                let Some((_, sign)) = current.as_mut() else {
                    return Err(err("pos_rights before access_id_CA".into()));
                };
                *sign |= toks
                    .iter()
                    .skip(2)
                    .any(|t| t.eq_ignore_ascii_case("CA:sign"));
            }
            "neg_rights" => {}
            "cond_subjects" => {
                let Some((p, _)) = current.as_mut() else {
                    return Err(err("cond_subjects before access_id_CA".into()));
                };
                let [_, _, list] = toks.as_slice() else {
                    return Err(err("cond_subjects needs a type and a pattern list".into()));
                };
                let pats = tokens(list).map_err(err)?;
                p.subjects.extend(pats.iter().map(|s| normalize_labels(s)));
            }
            "cond_banned_subjects" => {}
            other => return Err(err(format!("unknown statement {other}"))),
        }
    }
    finish(current, &mut out);
    Ok(out)
}

/// Glob match, case-insensitive (ASCII), `*` and `?`.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().map(|c| c.to_ascii_lowercase()).collect();
    let t: Vec<char> = text.chars().map(|c| c.to_ascii_lowercase()).collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_blocks_and_matches() {
        let text = "# EACL\naccess_id_CA   X509   '/C=XX/O=Example/CN=Example CA'\n\
                    pos_rights     globus CA:sign\n\
                    cond_subjects  globus '\"/C=XX/O=Example/*\" \"/C=XX/O=Other/*\"'\n\
                    access_id_CA X509 '/CN=No Sign'\ncond_subjects globus '\"*\"'\n";
        let p = parse(text).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].ca, "/C=XX/O=Example/CN=Example CA");
        assert_eq!(p[0].subjects, vec!["/C=XX/O=Example/*", "/C=XX/O=Other/*"]);
        assert!(glob_match(&p[0].subjects[0], "/c=xx/o=example/CN=Jane"));
        assert!(!glob_match(&p[0].subjects[0], "/C=XX/O=Exampl/CN=Jane"));
        assert!(glob_match("/a?c*", "/abcdef"));
        assert!(!glob_match("/a?c", "/abcd"));
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("\n\ncond_subjects globus '\"*\"'\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(parse("access_id_CA X509 '/CN=x\n").is_err());
        assert!(parse("frobnicate\n").is_err());
    }
}
