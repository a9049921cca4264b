//! The values nginx-voms-module offers (`voms_user`, `voms_fqans`, …), under configurable
//! names, a normalised FQAN list, and the per-route FQAN requirement.
//!
//! The `GRST_*` family (gridsite compatibility) is built by the PKI module
//! from the same [`VomsOutcome`].

use std::fmt::Write;

use regex::Regex;
use serde::{Deserialize, Deserializer};

use super::{ValidAc, VomsOutcome};

/// `[voms.export]`: the name each value is exported under. An empty
/// string disables that value. The defaults mirror nginx-voms's variable
/// names upper-cased; the gateway's header scrubbing drops client headers
/// starting with `VOMS`, so clients cannot inject them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExportNames {
    pub user: String,
    pub user_ca: String,
    pub fqans: String,
    pub server: String,
    pub server_ca: String,
    pub vo: String,
    pub server_uri: String,
    pub not_before: String,
    pub not_after: String,
    pub generic_attributes: String,
    pub serial: String,
    /// Normalised FQANs of every valid AC (not an nginx-voms value).
    pub fqans_normalised: String,
}

impl Default for ExportNames {
    fn default() -> Self {
        let s = |v: &str| v.to_string();
        ExportNames {
            user: s("VOMS_USER"),
            user_ca: s("VOMS_USER_CA"),
            fqans: s("VOMS_FQANS"),
            server: s("VOMS_SERVER"),
            server_ca: s("VOMS_SERVER_CA"),
            vo: s("VOMS_VO"),
            server_uri: s("VOMS_SERVER_URI"),
            not_before: s("VOMS_NOT_BEFORE"),
            not_after: s("VOMS_NOT_AFTER"),
            generic_attributes: s("VOMS_GENERIC_ATTRIBUTES"),
            serial: s("VOMS_SERIAL"),
            fqans_normalised: s("VOMS_FQANS_NORMALISED"),
        }
    }
}

impl ExportNames {
    /// Every configured name, for validation.
    pub fn all(&self) -> [&str; 12] {
        [
            &self.user,
            &self.user_ca,
            &self.fqans,
            &self.server,
            &self.server_ca,
            &self.vo,
            &self.server_uri,
            &self.not_before,
            &self.not_after,
            &self.generic_attributes,
            &self.serial,
            &self.fqans_normalised,
        ]
    }
}

/// The exported `(name, value)` pairs. Like nginx-voms, the AC values
/// come from the FIRST valid AC and are absent without one; `user` and
/// `user_ca` (the EEC's one-line subject and issuer) too, since nginx
/// computes them from the VOMS data.
pub fn values(
    outcome: &VomsOutcome,
    user: &str,
    user_ca: &str,
    names: &ExportNames,
) -> Vec<(String, String)> {
    let Some(ac) = outcome.acs.first() else {
        return Vec::new();
    };
    let pairs = [
        (&names.user, user.to_string()),
        (&names.user_ca, user_ca.to_string()),
        (&names.fqans, ac.fqans.join(",")),
        (&names.server, ac.server.clone()),
        (&names.server_ca, ac.server_ca.clone()),
        (&names.vo, ac.vo.clone()),
        (&names.server_uri, ac.uri.clone()),
        (&names.not_before, ac.not_before_raw.clone()),
        (&names.not_after, ac.not_after_raw.clone()),
        (&names.generic_attributes, generic_attributes(ac)),
        (&names.serial, ac.serial_hex.clone()),
        (&names.fqans_normalised, normalised_list(outcome)),
    ];
    pairs
        .into_iter()
        .filter(|(n, _)| !n.is_empty())
        .map(|(n, v)| (n.clone(), v))
        .collect()
}

/// `n=<name> v=<value> q=<qualifier>` joined by `,`; only the value is
/// escaped (nginx `NGX_ESCAPE_URI_COMPONENT`).
pub fn generic_attributes(ac: &ValidAc) -> String {
    ac.generic
        .iter()
        .map(|g| {
            format!(
                "n={} v={} q={}",
                g.name,
                uri_component(&g.value),
                g.qualifier
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// nginx's URI-component escaping: everything except ALPHA, DIGIT and
/// `-._~` becomes `%HH` (upper-case).
pub fn uri_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// FQAN equivalence (GFD.182 §3.5): `/vo` ≡ `/vo/Role=NULL` ≡ `/vo/Role=NULL/Capability=NULL`.
pub fn normalise_fqan(f: &str) -> String {
    let f = f.strip_suffix("/Capability=NULL").unwrap_or(f);
    f.strip_suffix("/Role=NULL").unwrap_or(f).to_string()
}

/// Normalised FQANs of every valid AC, AC order, duplicates dropped,
/// joined by `;` (Keystone splits assertion values on `;`). `%`, `;` and
/// `,` inside an FQAN are percent-encoded so the list stays unambiguous.
pub fn normalised_list(outcome: &VomsOutcome) -> String {
    let mut seen: Vec<String> = Vec::new();
    for f in outcome.acs.iter().flat_map(|a| a.fqans.iter()) {
        let n = normalise_fqan(f)
            .replace('%', "%25")
            .replace(';', "%3B")
            .replace(',', "%2C");
        if !seen.contains(&n) {
            seen.push(n);
        }
    }
    seen.join(";")
}

/// `require_fqan = "<regex>"` of a route: at least one FQAN of a valid AC
/// (raw, as in `GRST_VOMS_FQANS`) must match, else the request gets 403.
#[derive(Debug, Clone)]
pub struct FqanRequirement {
    pub regex: Regex,
}

impl<'de> Deserialize<'de> for FqanRequirement {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let regex =
            Regex::new(&s).map_err(|e| serde::de::Error::custom(format!("require_fqan: {e}")))?;
        Ok(FqanRequirement { regex })
    }
}

impl FqanRequirement {
    /// `Err` carries the 403 reason; it names the pattern and, when ACs
    /// were dropped, how many (the reasons themselves are logged by the
    /// caller).
    pub fn check(&self, outcome: &VomsOutcome) -> Result<(), String> {
        let hit = outcome
            .acs
            .iter()
            .flat_map(|a| a.fqans.iter())
            .any(|f| self.regex.is_match(f));
        if hit {
            return Ok(());
        }
        let mut reason = format!("no valid VOMS FQAN matches `{}`", self.regex.as_str());
        match (outcome.carrier, outcome.refused.len()) {
            (None, _) => reason.push_str(" (the certificate chain carries no VOMS attributes)"),
            (Some(_), 0) => {}
            (Some(_), n) => {
                let _ = write!(reason, " ({n} attribute certificate(s) refused)");
            }
        }
        Err(reason)
    }
}

/// `[route.x509.voms]`-style options a route can embed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteVoms {
    /// Regex; see [`FqanRequirement`].
    #[serde(default)]
    pub require_fqan: Option<FqanRequirement>,
}

impl RouteVoms {
    pub fn check(&self, outcome: &VomsOutcome) -> Result<(), String> {
        self.require_fqan
            .as_ref()
            .map_or(Ok(()), |r| r.check(outcome))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::voms::GenericAttribute;

    fn ac(fqans: &[&str]) -> ValidAc {
        ValidAc {
            vo: "test.vo".into(),
            uri: "voms.example:15000".into(),
            server: "/CN=s".into(),
            server_ca: "/CN=ca".into(),
            fqans: fqans.iter().map(|s| s.to_string()).collect(),
            not_before: 0,
            not_after: 1,
            not_before_raw: "20221210000000Z".into(),
            not_after_raw: "20221211000000Z".into(),
            serial_hex: "01E240".into(),
            generic: vec![
                GenericAttribute {
                    name: "nickname".into(),
                    value: "sd".into(),
                    qualifier: "test.vo".into(),
                },
                GenericAttribute {
                    name: "title".into(),
                    value: "assegnista%di%ricerca@CNAF".into(),
                    qualifier: "test.vo".into(),
                },
            ],
        }
    }

    #[test]
    fn nginx_generic_attribute_format() {
        // the example of nginx-voms's t/encoding.t
        assert_eq!(
            generic_attributes(&ac(&["/test.vo"])),
            "n=nickname v=sd q=test.vo,n=title v=assegnista%25di%25ricerca%40CNAF q=test.vo"
        );
    }

    #[test]
    fn values_from_first_ac_only() {
        let o = VomsOutcome {
            carrier: Some(0),
            acs: vec![
                ac(&["/test.vo/exp1", "/test.vo/exp2/Role=NULL/Capability=NULL"]),
                ac(&["/other"]),
            ],
            refused: vec![],
        };
        let v = values(&o, "/CN=u", "/CN=ca", &ExportNames::default());
        let get = |n: &str| v.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(
            get("VOMS_FQANS"),
            Some("/test.vo/exp1,/test.vo/exp2/Role=NULL/Capability=NULL")
        );
        assert_eq!(get("VOMS_USER"), Some("/CN=u"));
        assert_eq!(get("VOMS_SERIAL"), Some("01E240"));
        assert_eq!(
            get("VOMS_FQANS_NORMALISED"),
            Some("/test.vo/exp1;/test.vo/exp2;/other")
        );
        let mut names = ExportNames::default();
        names.serial.clear();
        assert!(
            values(&o, "", "", &names)
                .iter()
                .all(|(k, _)| k != "VOMS_SERIAL")
        );
        assert!(values(&VomsOutcome::default(), "/CN=u", "", &names).is_empty());
    }

    #[test]
    fn normalisation() {
        assert_eq!(normalise_fqan("/vo/Role=NULL/Capability=NULL"), "/vo");
        assert_eq!(
            normalise_fqan("/vo/g/Role=r/Capability=NULL"),
            "/vo/g/Role=r"
        );
        assert_eq!(normalise_fqan("/vo/Role=NULL"), "/vo");
        assert_eq!(normalise_fqan("/vo/g"), "/vo/g");
    }

    #[test]
    fn requirement() {
        let r: RouteVoms = toml::from_str("require_fqan = '^/fedcloud.egi.eu/.*'").unwrap();
        let mut o = VomsOutcome {
            carrier: Some(0),
            acs: vec![ac(&["/fedcloud.egi.eu/Role=NULL"])],
            refused: vec![],
        };
        assert!(r.check(&o).is_ok());
        o.acs.clear();
        o.refused.push("expired".into());
        let e = r.check(&o).unwrap_err();
        assert!(e.contains("1 attribute certificate(s) refused"), "{e}");
        assert!(toml::from_str::<RouteVoms>("require_fqan = '('").is_err());
        assert!(RouteVoms::default().check(&VomsOutcome::default()).is_ok());
    }
}
