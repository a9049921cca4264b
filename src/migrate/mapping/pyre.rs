//! Python `re.search` patterns on the `regex` crate.
//!
//! The two dialects agree on what mappings use (classes, anchors,
//! alternation, repetition, `\d`/`\w` over Unicode). Where they differ the
//! pattern is rewritten to keep Python's meaning: `$` also matches before
//! a final line feed, `\Z` is the end of the text, `\<`/`\>` are literal
//! angle brackets, a `{` that does not start a repetition is literal.
//! Backreferences and look-around do not exist in the `regex` crate: such a
//! pattern is refused with a clear error rather than approximated.

use regex::Regex;

/// Why a mapping's regex cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("regex {pattern:?} uses {what}, which migrate-check cannot evaluate")]
    Unsupported { pattern: String, what: &'static str },
    #[error("regex {pattern:?} does not compile: {reason}")]
    Invalid { pattern: String, reason: String },
}

fn repetition_at(chars: &[char], i: usize) -> bool {
    // `{m}`, `{m,}`, `{m,n}`, `{,n}` as Python accepts them.
    let mut j = i + 1;
    let mut digits = 0;
    while j < chars.len() && chars[j].is_ascii_digit() {
        j += 1;
        digits += 1;
    }
    if j < chars.len() && chars[j] == '}' {
        return digits > 0;
    }
    if j >= chars.len() || chars[j] != ',' {
        return false;
    }
    j += 1;
    let mut digits2 = 0;
    while j < chars.len() && chars[j].is_ascii_digit() {
        j += 1;
        digits2 += 1;
    }
    j < chars.len() && chars[j] == '}' && (digits > 0 || digits2 > 0)
}

/// The `regex` crate's spelling of a Python pattern.
pub fn translate(py: &str) -> Result<String, PatternError> {
    let unsupported = |what| PatternError::Unsupported {
        pattern: py.to_string(),
        what,
    };
    let chars: Vec<char> = py.chars().collect();
    let mut out = String::with_capacity(py.len() + 8);
    let mut i = 0;
    let mut in_class = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            let Some(&n) = chars.get(i + 1) else {
                return Err(PatternError::Invalid {
                    pattern: py.into(),
                    reason: "bad escape (end of pattern)".into(),
                });
            };
            i += 2;
            match n {
                'Z' if !in_class => out.push_str(r"\z"),
                '<' | '>' => out.push(n),
                '1'..='9' if !in_class => return Err(unsupported("a backreference")),
                _ => {
                    out.push('\\');
                    out.push(n);
                }
            }
            continue;
        }
        if in_class {
            match c {
                ']' => in_class = false,
                '[' => out.push('\\'), // literal in Python, nested class in Rust
                '&' | '-' | '~' if chars.get(i + 1) == Some(&c) => out.push('\\'),
                _ => {}
            }
            out.push(c);
            i += 1;
            continue;
        }
        match c {
            '[' => {
                in_class = true;
                out.push('[');
                i += 1;
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                if chars.get(i) == Some(&']') {
                    out.push_str(r"\]");
                    i += 1;
                }
                continue;
            }
            '$' => out.push_str(r"(?:\n?\z)"),
            '{' if !repetition_at(&chars, i) => out.push_str(r"\{"),
            '}' => {
                // A `}` closing a repetition was consumed with its `{`.
                out.push_str(r"\}");
            }
            '(' if chars.get(i + 1) == Some(&'?') => {
                let rest: String = chars[i + 2..].iter().take(3).collect();
                if rest.starts_with('=')
                    || rest.starts_with('!')
                    || rest.starts_with("<=")
                    || rest.starts_with("<!")
                {
                    return Err(unsupported("look-around"));
                }
                if rest.starts_with("P=") {
                    return Err(unsupported("a backreference"));
                }
                if rest.starts_with('(') {
                    return Err(unsupported("a conditional group"));
                }
                if rest.starts_with('#') {
                    // Comment group: dropped.
                    while i < chars.len() && chars[i] != ')' {
                        i += 1;
                    }
                    i += 1;
                    continue;
                }
                out.push(c);
            }
            '{' => {
                // A repetition: copy through its `}`.
                while i < chars.len() && chars[i] != '}' {
                    out.push(chars[i]);
                    i += 1;
                }
                out.push('}');
            }
            _ => out.push(c),
        }
        i += 1;
    }
    Ok(out)
}

/// Compiles a Python pattern for `re.search` semantics (unanchored).
pub fn compile(py: &str) -> Result<Regex, PatternError> {
    let t = translate(py)?;
    Regex::new(&t).map_err(|e| PatternError::Invalid {
        pattern: py.to_string(),
        reason: e
            .to_string()
            .lines()
            .last()
            .unwrap_or("")
            .trim()
            .to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(p: &str, s: &str) -> bool {
        compile(p).unwrap().is_match(s)
    }

    #[test]
    fn python_meanings() {
        assert!(search("^/vo/.*$", "/vo/x\n"), "$ before a final newline");
        assert!(!search(r"^/vo\Z", "/vo\n"));
        assert!(search(r"a{b", "xa{b"));
        assert!(search(r"^a{2}$", "aa"));
        assert!(search(r"\<x\>", "<x>"));
        assert!(search(r"[[]", "["));
        assert!(search(r"[]a]", "]"));
        assert!(search(r"(?#c)ab", "ab"));
        assert!(matches!(
            compile(r"(a)\1"),
            Err(PatternError::Unsupported { .. })
        ));
        assert!(matches!(
            compile(r"a(?=b)"),
            Err(PatternError::Unsupported { .. })
        ));
        assert!(matches!(compile(r"(a"), Err(PatternError::Invalid { .. })));
    }
}
