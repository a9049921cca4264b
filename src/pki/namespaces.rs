//! EUGridPMA `.namespaces` files: which subjects each issuer may certify.
//!
//! ```text
//! TO Issuer "/C=XX/O=Example/CN=Example CA" \
//!   PERMIT Subject "/C=XX/O=Example/.*"
//! TO Issuer SELF DENY Subject "/C=XX/O=Example/CN=bad.*"
//! ```
//! Subject patterns are regular expressions anchored to the whole DN and
//! matched case-insensitively, as canl-java does.

use regex::{Regex, RegexBuilder};
use thiserror::Error;

use super::dn::normalize_labels;
use super::policy::tokens;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}: {reason}")]
pub struct NamespaceError {
    pub line: usize,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub struct NamespaceRule {
    /// Normalised issuer DN; `None` = SELF (the CA the file is named after).
    pub issuer: Option<String>,
    pub permit: bool,
    pub pattern: String,
    pub regex: Regex,
}

/// Parses a file; `\` at the end of a line continues it.
pub fn parse(text: &str) -> Result<Vec<NamespaceRule>, NamespaceError> {
    let mut out = Vec::new();
    let mut joined = String::new();
    let mut start = 0;
    for (i, raw) in text.lines().enumerate() {
        if joined.is_empty() {
            start = i + 1;
        }
        let line = raw.trim_end();
        if let Some(body) = line.strip_suffix('\\') {
            joined.push_str(body);
            joined.push(' ');
            continue;
        }
        joined.push_str(line);
        let stmt = std::mem::take(&mut joined);
        if let Some(rule) = statement(&stmt).map_err(|reason| NamespaceError {
            line: start,
            reason,
        })? {
            out.push(rule);
        }
    }
    if !joined.is_empty() {
        if let Some(rule) = statement(&joined).map_err(|reason| NamespaceError {
            line: start,
            reason,
        })? {
            out.push(rule);
        }
    }
    Ok(out)
}

fn statement(line: &str) -> Result<Option<NamespaceRule>, String> {
    let toks = tokens(line)?;
    if toks.is_empty() {
        return Ok(None);
    }
    let kw = |i: usize, want: &str| toks.get(i).is_some_and(|t| t.eq_ignore_ascii_case(want));
    if toks.len() != 6 || !kw(0, "TO") || !kw(1, "Issuer") || !kw(4, "Subject") {
        return Err("expected: TO Issuer \"<DN>\"|SELF PERMIT|DENY Subject \"<regex>\"".into());
    }
    let issuer = if toks[2] == "SELF" {
        None
    } else {
        Some(normalize_labels(&toks[2]))
    };
    let permit = if kw(3, "PERMIT") {
        true
    } else if kw(3, "DENY") {
        false
    } else {
        return Err(format!("unknown action {}", toks[3]));
    };
    let pattern = normalize_labels(&toks[5]);
    let regex = RegexBuilder::new(&format!("^(?:{pattern})$"))
        .case_insensitive(true)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("bad subject pattern: {e}"))?;
    Ok(Some(NamespaceRule {
        issuer,
        permit,
        pattern,
        regex,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_continuations_and_self() {
        let text = "#NAMESPACES-VERSION: 1.0\nTO Issuer \"/C=XX/O=Example/CN=Example CA\" \\\n  PERMIT Subject \"/C=XX/O=Example/.*\"\n\
                    to issuer SELF deny subject \"/C=XX/O=Example/CN=bad.*\"\n";
        let r = parse(text).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(
            r[0].issuer.as_deref(),
            Some("/C=XX/O=Example/CN=Example CA")
        );
        assert!(r[0].permit && r[0].regex.is_match("/c=xx/o=example/CN=Jane"));
        assert!(!r[0].regex.is_match("/C=XX/O=Example"));
        assert!(r[1].issuer.is_none() && !r[1].permit);
        let e = parse("\n\nTO Issuer SELF ALLOW Subject \"x\"\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(parse("TO Issuer SELF PERMIT Subject \"(\"\n").is_err());
    }
}
