//! Spoofing protection: drop every client header that could be taken for
//! an identity value, on every request, before anything else looks at it.
//!
//! Names are compared after case-folding and writing every character that
//! is not a letter or digit as `_`, which is how WSGI servers and Apache
//! turn header names into environ names: `Oidc-Claim-Sub`, `OIDC_CLAIM_sub`
//! and `oidc.claim.sub` all become `OIDC_CLAIM_SUB`. Any name containing
//! `_` is dropped as well, as Apache does, because some servers map `_`
//! and `-` to the same environ name.

use http::HeaderMap;
use http::header::HeaderName;

/// Prefixes (normalised) that always mark an identity header.
pub const BUILTIN_PREFIXES: &[&str] = &[
    "OIDC",
    "GRST",
    "SSL_CLIENT",
    "REMOTE_USER",
    "X_REMOTE",
    "VOMS",
    "AUTH_TYPE",
    "USER_DISTINGUISHED_NAME",
];

/// A header name as a WSGI server would turn it into an environ key
/// (without the `HTTP_` prefix).
pub fn normalize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Whether `normalize(name)` starts with `prefix` (already normalised).
/// Header names are ASCII, so byte-wise equals char-wise here.
fn starts_with_normalized(name: &[u8], prefix: &[u8]) -> bool {
    name.len() >= prefix.len()
        && name.iter().zip(prefix).all(|(&c, &p)| {
            let c = if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                b'_'
            };
            c == p
        })
}

#[derive(Debug, Clone)]
pub struct Scrubber {
    prefixes: Vec<String>,
}

impl Scrubber {
    /// `extra` are site prefixes (`[scrub] prefixes`) and the names the
    /// HTTP upstream sends identity in.
    pub fn new<'a>(extra: impl IntoIterator<Item = &'a str>) -> Self {
        let mut prefixes: Vec<String> = BUILTIN_PREFIXES.iter().map(|s| s.to_string()).collect();
        for e in extra {
            let n = normalize(e);
            let n = n.trim_end_matches('_').to_string();
            if !n.is_empty() && !prefixes.contains(&n) {
                prefixes.push(n);
            }
        }
        Scrubber { prefixes }
    }

    /// Whether a client header with this name must not reach Keystone.
    /// Runs for every header of every request, so it compares in place
    /// instead of building the normalised name.
    pub fn is_suspicious(&self, name: &str) -> bool {
        if name.contains('_') {
            return true;
        }
        let n = name.as_bytes();
        // An `HTTP_` prefix in the header name would shadow a real HTTP_*
        // variable once the server adds its own prefix: check both forms.
        let bare = if starts_with_normalized(n, b"HTTP_") {
            &n[5..]
        } else {
            n
        };
        self.prefixes.iter().any(|p| {
            starts_with_normalized(n, p.as_bytes()) || starts_with_normalized(bare, p.as_bytes())
        })
    }

    /// Removes suspicious headers and returns their names (never values).
    pub fn scrub(&self, headers: &mut HeaderMap) -> Vec<HeaderName> {
        let bad: Vec<HeaderName> = headers
            .keys()
            .filter(|k| self.is_suspicious(k.as_str()))
            .cloned()
            .collect();
        for k in &bad {
            headers.remove(k);
        }
        bad
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every spelling a client might try, from our own attack rounds and
    /// from known bypasses of other gateways (oauth2-proxy CVE-2025-64484).
    #[test]
    fn every_variant_is_dropped() {
        let s = Scrubber::new(["X-Fedgate-"]);
        for name in [
            "OIDC-iss",
            "oidc-sub",
            "Oidc-Claim-Sub",
            "OIDC_CLAIM_sub",
            "OIDC-eduperson_entitlement",
            "oidc-eduperson-entitlement",
            "oidc.iss",
            "HTTP-OIDC-ISS",
            "HTTP_OIDC_SUB",
            "http-oidc-sub",
            "GRST-CONN-AURI-0",
            "grst_voms_fqans",
            "Grst-Cred-0",
            "SSL-Client-S-DN",
            "ssl_client_cert",
            "SSL-CLIENT-VERIFY",
            "Remote-User",
            "REMOTE_USER",
            "remote-user",
            "X-Remote-User",
            "x-remote-group",
            "X_REMOTE_USER",
            "VOMS-Attribute",
            "User-Distinguished-Name",
            "Auth-Type",
            "X-Fedgate-User",
            "x-fedgate-grst-conn-auri-0",
            "Some_Underscore",
        ] {
            assert!(s.is_suspicious(name), "{name} must be scrubbed");
        }
    }

    #[test]
    fn ordinary_headers_pass() {
        let s = Scrubber::new([]);
        for name in [
            "X-Auth-Token",
            "X-Subject-Token",
            "Authorization",
            "Content-Type",
            "Accept",
            "Cookie",
            "Host",
            "OpenStack-API-Version",
            "X-Forwarded-For",
            "User-Agent",
            "Remotely",
        ] {
            assert!(!s.is_suspicious(name), "{name} must pass");
        }
    }

    /// The in-place comparison agrees with the definition (normalise,
    /// then compare) on every name built from a small hostile alphabet.
    #[test]
    fn in_place_check_matches_the_definition() {
        let s = Scrubber::new(["X-Site-"]);
        let reference = |name: &str| {
            let n = normalize(name);
            let bare = n.strip_prefix("HTTP_").unwrap_or(&n).to_string();
            name.contains('_')
                || s.prefixes
                    .iter()
                    .any(|p| n.starts_with(p.as_str()) || bare.starts_with(p.as_str()))
        };
        let parts = [
            "", "http-", "HTTP.", "oidc", "Oi", "dc", "-", ".", "grst", "x-site", "-user",
            "remote", "x",
        ];
        let mut checked = 0;
        for a in parts {
            for b in parts {
                for c in parts {
                    let name = format!("{a}{b}{c}");
                    if name.is_empty() {
                        continue;
                    }
                    assert_eq!(s.is_suspicious(&name), reference(&name), "{name}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 2000);
    }

    #[test]
    fn scrub_removes_all_values() {
        let s = Scrubber::new([]);
        let mut h = HeaderMap::new();
        h.append("oidc-sub", "a".parse().unwrap());
        h.append("oidc-sub", "b".parse().unwrap());
        h.append("x-auth-token", "t".parse().unwrap());
        let dropped = s.scrub(&mut h);
        assert_eq!(dropped.len(), 1);
        assert_eq!(h.len(), 1);
    }
}
