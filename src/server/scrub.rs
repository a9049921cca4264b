//! Spoofing protection: drop every client header that could be taken for
//! an identity value, on every request, before anything else looks at it.
//!
//! Names are compared after case-folding and writing every character that
//! is not a letter or digit as `_`, which is how WSGI servers and Apache
//! turn header names into environ names: `Oidc-Claim-Sub`, `OIDC_CLAIM_sub`
//! and `oidc.claim.sub` all become `OIDC_CLAIM_SUB`. Any name containing
//! `_` is dropped as well, as Apache does, because some servers map `_`
//! and `-` to the same environ name.
//!
//! The list is derived in one place, [`identity_names`], from everything
//! the configuration can make fedgate emit: a name that fedgate hands to
//! Keystone is never one a client can send.

use http::HeaderMap;
use http::header::HeaderName;

use crate::config::Config;

/// Prefixes (normalised) that always mark an identity header: the fixed
/// names of every authenticator (gridsite's `GRST_*`, mod_ssl's `SSL_*`,
/// mod_auth_openidc's `OIDC*`, nginx-voms's default `VOMS_*`) and the
/// user variables of CGI and Apache.
pub const BUILTIN_PREFIXES: &[&str] = &[
    "OIDC",
    "GRST",
    "SSL",
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
    name.len() >= prefix.len() && name.iter().zip(prefix).all(|(&c, &p)| fold(c) == p)
}

/// One byte of [`normalize`]: letters and digits upper-cased, anything
/// else `_`.
fn fold(c: u8) -> u8 {
    if c.is_ascii_alphanumeric() {
        c.to_ascii_uppercase()
    } else {
        b'_'
    }
}

/// Every configurable name under which fedgate may hand identity to
/// Keystone under `cfg`, beyond [`BUILTIN_PREFIXES`]: the site's extra
/// prefixes, the nginx-voms export names, and the header names of the HTTP
/// upstream (its prefix and its explicit names). Scrubbed whatever the upstream kind, so that
/// switching kinds can never open a gap.
pub fn identity_names(cfg: &Config) -> Vec<String> {
    let up = &cfg.upstream;
    let mut names: Vec<String> = cfg.scrub.prefixes.clone();
    // As the HTTP upstream writes an export name, it is either this name
    // (spelled with `-`, the same once normalised), the prefix followed by
    // it, or an explicit `identity_headers` name: all covered here.
    names.extend(
        cfg.voms
            .export
            .all()
            .into_iter()
            .filter(|n| !n.is_empty())
            .map(str::to_string),
    );
    if !up.identity_header_prefix.is_empty() {
        names.push(up.identity_header_prefix.clone());
    }
    names.extend(up.identity_headers.values().cloned());
    names
}

#[derive(Debug, Clone)]
pub struct Scrubber {
    /// Sorted, so that the prefixes sharing a first byte are together.
    prefixes: Vec<String>,
    /// For each normalised first byte, the range of `prefixes` that start
    /// with it. A name is compared only with the prefixes that share its
    /// first byte (or its first byte after an `HTTP_`): most names are
    /// settled by one look-up, and the rest by a comparison or two, not by
    /// walking the whole list twice. Boxed: a kilobyte inline would
    /// ride in every future that holds a runtime being built.
    by_first: Box<[std::ops::Range<usize>; 256]>,
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
        // Normalised prefixes are never empty and start with their own
        // folded byte, so sorting groups them by the byte they are
        // looked up by.
        prefixes.sort();
        let by_first = Box::new(std::array::from_fn(|c| {
            let first = |p: &String| usize::from(p.as_bytes()[0]);
            let start = prefixes.partition_point(|p| first(p) < c);
            let end = prefixes.partition_point(|p| first(p) <= c);
            start..end
        }));
        Scrubber { prefixes, by_first }
    }

    /// The prefixes that start with `name`'s first byte, normalised.
    fn candidates(&self, name: &[u8]) -> &[String] {
        let Some(&c) = name.first() else {
            return &[];
        };
        &self.prefixes[self.by_first[usize::from(fold(c))].clone()]
    }

    /// The scrubber for a configuration (see [`identity_names`]).
    pub fn for_config(cfg: &Config) -> Self {
        Self::new(identity_names(cfg).iter().map(String::as_str))
    }

    /// Whether a client header with this name must not reach Keystone.
    /// Runs for every header of every request, so it compares in place
    /// instead of building the normalised name.
    pub fn is_suspicious(&self, name: &str) -> bool {
        let n = name.as_bytes();
        if n.contains(&b'_') {
            return true;
        }
        // An `HTTP_` prefix in the header name would shadow a real HTTP_*
        // variable once the server adds its own prefix: check both forms.
        let bare = if starts_with_normalized(n, b"HTTP_") {
            &n[5..]
        } else {
            n
        };
        let hit = |s: &[u8]| {
            self.candidates(s)
                .iter()
                .any(|p| starts_with_normalized(s, p.as_bytes()))
        };
        hit(n) || (bare.len() < n.len() && hit(bare))
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

    /// Every configurable output name, set to something no built-in
    /// prefix covers, is dropped in every spelling a client could use: as
    /// the environ name, as the header the HTTP upstream sends, and with an
    /// `HTTP-` in front. The names come from the emitters themselves.
    #[test]
    fn every_configurable_output_name_is_scrubbed() {
        use crate::upstream::http::header_name_for;
        use crate::voms::{ExportNames, ValidAc, VomsOutcome};
        let text = r#"
[upstream]
url = "http://127.0.0.1:1"
identity_header_prefix = "Site-Id-"
identity_headers = { GRST_CONN_AURI_0 = "Grid-Subject", HTTP_OIDC_SUB = "Person" }
[scrub]
prefixes = ["Campus-Login"]
[voms.export]
user = "X_DN"
user_ca = "X_DN_CA"
fqans = "X_FQANS"
server = "X_AA"
server_ca = "X_AA_CA"
vo = "X_VO"
server_uri = "X_AA_URI"
not_before = "X_FROM"
not_after = "X_UNTIL"
generic_attributes = "X_GA"
serial = "X_SERIAL"
fqans_normalised = "X_FQANS_N"
[[route]]
path = "^/"
auth = "none"
"#;
        let cfg = Config::parse(std::path::Path::new("t.toml"), text.into()).unwrap();
        assert!(cfg.validate().is_empty(), "{}", cfg.validate());
        let s = Scrubber::for_config(&cfg);
        // What the VOMS emitter writes with these names.
        let ac = ValidAc {
            vo: "vo".into(),
            uri: "voms.example:15000".into(),
            server: "/CN=voms".into(),
            server_ca: "/CN=ca".into(),
            fqans: vec!["/vo/Role=NULL/Capability=NULL".into()],
            not_before: 0,
            not_after: 1,
            not_before_raw: "20250101000000Z".into(),
            not_after_raw: "20250102000000Z".into(),
            serial_hex: "01".into(),
            generic: vec![],
        };
        let outcome = VomsOutcome {
            carrier: Some(0),
            acs: vec![ac],
            refused: vec![],
        };
        let mut emitted: Vec<String> =
            crate::voms::export::values(&outcome, "/CN=u", "/CN=ca", &cfg.voms.export)
                .into_iter()
                .map(|(k, _)| k)
                .collect();
        assert_eq!(
            emitted.len(),
            ExportNames::default().all().len(),
            "{emitted:?}"
        );
        emitted.extend(
            [
                "GRST_CONN_AURI_0",
                "HTTP_OIDC_SUB",
                "HTTP_OIDC_ISS",
                "REMOTE_USER",
            ]
            .map(String::from),
        );
        let up = &cfg.upstream;
        let mut checked = 0;
        for var in &emitted {
            let header = header_name_for(var, &up.identity_header_prefix, &up.identity_headers);
            let bare = var.strip_prefix("HTTP_").unwrap_or(var);
            for spelling in [
                var.clone(),
                var.replace('_', "-"),
                var.to_ascii_lowercase().replace('_', "-"),
                bare.replace('_', "-"),
                format!("HTTP-{}", bare.replace('_', "-")),
                header.clone(),
                header.to_ascii_lowercase(),
                format!("http-{header}"),
            ] {
                assert!(
                    s.is_suspicious(&spelling),
                    "{spelling} (for {var}) must be scrubbed"
                );
                checked += 1;
            }
        }
        for extra in [
            "Campus-Login-Name",
            "Site-Id-Anything",
            "Grid-Subject",
            "person",
        ] {
            assert!(s.is_suspicious(extra), "{extra}");
        }
        assert!(checked >= 100, "{checked}");
        assert!(!s.is_suspicious("X-Auth-Token"));
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

    /// The first-byte filter settles most names early; it must never let
    /// through a name the full comparison drops. Compared with the
    /// definition (normalise, then test the prefixes on the name and on it
    /// without `HTTP_`) over many random names built from the prefixes'
    /// own letters and separators.
    #[test]
    fn the_quick_check_agrees_with_the_definition() {
        let s = Scrubber::new(["X-Fedgate-", "voms-fqans", "Shib-"]);
        let reference = |name: &str| {
            let norm = normalize(name);
            let bare = norm.strip_prefix("HTTP_");
            name.contains('_')
                || s.prefixes.iter().any(|p| {
                    norm.starts_with(p.as_str()) || bare.is_some_and(|b| b.starts_with(p.as_str()))
                })
        };
        let alphabet = b"aAcdefgGhHiIlmnoOpPrRsStTuUvVxXy-._0";
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut dropped = 0;
        for _ in 0..100_000 {
            let len = 1 + (next() % 14) as usize;
            let mut name: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize] as char)
                .collect();
            // Half of them start like something worth dropping.
            match next() % 4 {
                0 => name.insert_str(0, "http-"),
                1 => name.insert_str(
                    0,
                    ["oi", "gr", "ss", "vo", "x-f", "re"][(next() % 6) as usize],
                ),
                _ => {}
            }
            let expected = reference(&name);
            assert_eq!(s.is_suspicious(&name), expected, "{name}");
            dropped += usize::from(expected);
        }
        assert!(
            dropped > 10_000,
            "the names must exercise both answers: {dropped}"
        );
    }
}
