//! The `origin=` check, done before anything else so that fedgate never
//! sends a browser, let alone a token, to a host the site does not trust.
//!
//! The rule is Keystone's own (`_get_sso_origin_host`): the query value is
//! decoded, then `unquote_plus`-decoded once more, and must equal one
//! `trusted_dashboard` entry whose host name is lower-cased. Using the same
//! rule means fedgate and Keystone can never disagree.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum OriginError {
    #[error("the request has no origin= parameter naming the dashboard to return to")]
    Missing,
    #[error("origin {0} is not a trusted dashboard of this site")]
    Untrusted(String),
}

/// `urllib.parse.unquote_plus`: `+` is a space, `%XX` a byte, UTF-8 lossy.
pub fn unquote_plus(s: &str) -> String {
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

/// Keystone's `lower_case_hostname`: lower-cases only the host part.
pub fn lower_case_hostname(u: &str) -> String {
    match url::Url::parse(u) {
        Ok(mut p) => {
            if let Some(h) = p.host_str().map(str::to_ascii_lowercase) {
                let _ = p.set_host(Some(&h));
            }
            // url normalises an empty path to "/"; keep the configured text otherwise.
            if u.ends_with('/') || p.path() != "/" {
                p.to_string()
            } else {
                p.to_string().trim_end_matches('/').to_string()
            }
        }
        Err(_) => u.to_string(),
    }
}

/// The first `origin` value of a query string, decoded like Flask's args.
pub fn origin_param(query: Option<&str>) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == "origin")
        .map(|(_, v)| v.into_owned())
}

/// Checks the origin of a WebSSO request; returns the trusted dashboard URL.
#[cfg(test)]
pub fn check(query: Option<&str>, trusted: &[String]) -> Result<String, OriginError> {
    check_normalized(query, &normalize(trusted))
}

/// The trusted dashboards as Keystone compares them
/// ([`lower_case_hostname`]): done once per configuration rather than a
/// URL parse per dashboard per request.
pub fn normalize(trusted: &[String]) -> Vec<String> {
    trusted.iter().map(|t| lower_case_hostname(t)).collect()
}

/// [`check`] against dashboards already [`normalize`]d.
pub fn check_normalized(query: Option<&str>, trusted: &[String]) -> Result<String, OriginError> {
    let raw = origin_param(query)
        .filter(|o| !o.is_empty())
        .ok_or(OriginError::Missing)?;
    let host = unquote_plus(&raw);
    if trusted.contains(&host) {
        Ok(host)
    } else {
        Err(OriginError::Untrusted(host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted() -> Vec<String> {
        vec!["https://Horizon.test/dashboard/auth/websso/".into()]
    }

    #[test]
    fn raw_and_encoded_origins_pass() {
        let want = "https://horizon.test/dashboard/auth/websso/";
        assert_eq!(
            check(
                Some("origin=https://horizon.test/dashboard/auth/websso/"),
                &trusted()
            )
            .unwrap(),
            want
        );
        assert_eq!(
            check(
                Some("origin=https%3A%2F%2Fhorizon.test%2Fdashboard%2Fauth%2Fwebsso%2F"),
                &trusted()
            )
            .unwrap(),
            want
        );
        // Doubly encoded, as some dashboards send it: Keystone decodes twice.
        assert_eq!(check(Some("x=1&origin=https%253A%252F%252Fhorizon.test%252Fdashboard%252Fauth%252Fwebsso%252F"), &trusted()).unwrap(), want);
    }

    #[test]
    fn others_are_refused() {
        assert_eq!(check(None, &trusted()), Err(OriginError::Missing));
        assert_eq!(
            check(Some("origin="), &trusted()),
            Err(OriginError::Missing)
        );
        for bad in [
            "origin=https://evil.example/",
            "origin=https://horizon.test/dashboard/auth/websso",
            "origin=https://horizon.test.evil.example/dashboard/auth/websso/",
            "origin=https://horizon.test/dashboard/auth/websso/../../evil",
            "origin=http://horizon.test/dashboard/auth/websso/",
            // Keystone does not lower-case the requested host, only the trusted one.
            "origin=https://HORIZON.test/dashboard/auth/websso/",
        ] {
            assert!(
                matches!(check(Some(bad), &trusted()), Err(OriginError::Untrusted(_))),
                "{bad}"
            );
        }
    }
}
