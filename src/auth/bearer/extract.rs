//! Finds the bearer token in `Authorization` (RFC 6750 §2.1 only: tokens in
//! query strings end up in logs, and form bodies are Keystone's).

use http::header::AUTHORIZATION;

use crate::oidc::TokenError;

/// The token, checked for size and RFC 6750 `b64token` characters.
pub fn bearer(headers: &http::HeaderMap, max_bytes: usize) -> Result<&str, TokenError> {
    let mut found = None;
    for v in headers.get_all(AUTHORIZATION) {
        let Ok(s) = v.to_str() else { continue };
        let s = s.trim();
        let Some((scheme, rest)) = s.split_once(' ') else {
            continue;
        };
        if scheme.eq_ignore_ascii_case("bearer") {
            if found.is_some() {
                return Err(TokenError::Malformed("more than one bearer token".into()));
            }
            found = Some(rest.trim_start());
        }
    }
    let t = found.ok_or(TokenError::Missing)?;
    if t.len() > max_bytes {
        return Err(TokenError::TooLarge(max_bytes));
    }
    check_chars(t)?;
    Ok(t)
}

/// RFC 6750 `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
pub fn check_chars(t: &str) -> Result<(), TokenError> {
    let body = t.trim_end_matches('=');
    if body.is_empty() {
        return Err(TokenError::Malformed("empty token".into()));
    }
    if !body
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
    {
        return Err(TokenError::Malformed(
            "characters outside the RFC 6750 token alphabet".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(vals: &[&str]) -> http::HeaderMap {
        let mut m = http::HeaderMap::new();
        for v in vals {
            m.append(AUTHORIZATION, v.parse().unwrap());
        }
        m
    }

    #[test]
    fn cases() {
        assert_eq!(
            bearer(&h(&["Bearer abc.def-_~+/=="]), 100),
            Ok("abc.def-_~+/==")
        );
        assert_eq!(bearer(&h(&["bearer   abc"]), 100), Ok("abc"));
        assert_eq!(bearer(&h(&[]), 100), Err(TokenError::Missing));
        assert_eq!(bearer(&h(&["Basic dTpw"]), 100), Err(TokenError::Missing));
        assert_eq!(bearer(&h(&["Bearer abc"]), 2), Err(TokenError::TooLarge(2)));
        assert!(matches!(
            bearer(&h(&["Bearer a b"]), 100),
            Err(TokenError::Malformed(_))
        ));
        assert!(matches!(
            bearer(&h(&["Bearer ==="]), 100),
            Err(TokenError::Malformed(_))
        ));
        assert!(matches!(
            bearer(&h(&["Bearer a", "Bearer b"]), 100),
            Err(TokenError::Malformed(_))
        ));
    }
}
