//! `[x509]`: how client chains are validated.
//!
//! Defaults are deliberately stricter than Apache + gridsite where gridsite
//! is unsafe: CRLs are required for every CA of a chain (Apache's default
//! `SSLCARevocationCheck none` accepts revoked users), namespaces and
//! signing policies are enforced (canl-c never enforced them), and GT3
//! draft and independent proxies are refused. Each has a switch back.

use serde::Deserialize;

use super::crl::CrlMode;
use crate::problem::{Problems, Source};

/// Which IGTF policy files constrain issuers (canl-java's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NamespaceMode {
    /// Neither file is consulted (gridsite's actual behaviour).
    Ignore,
    /// Only `.signing_policy`.
    Globus,
    /// Only `.namespaces`.
    Eugridpma,
    /// `.signing_policy` if it has rules for the issuer, else `.namespaces`.
    #[default]
    GlobusEugridpma,
    /// `.namespaces` first, then `.signing_policy`.
    EugridpmaGlobus,
    /// Both must permit when both have rules.
    EugridpmaAndGlobus,
    GlobusRequire,
    EugridpmaRequire,
    GlobusEugridpmaRequire,
    EugridpmaGlobusRequire,
    EugridpmaAndGlobusRequire,
}

/// What to do with limited proxies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitedProxies {
    /// Accepted, as gridsite does (job-submission semantics do not apply here).
    #[default]
    Accept,
    Reject,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct X509Config {
    /// CRL checking for every CA-issued certificate (end-entity, intermediates,
    /// VOMS server chains): `require` (default), `if_valid`, `ignore`.
    #[serde(default)]
    pub crl: CrlMode,
    /// Seconds a CRL stays usable after its nextUpdate (fetch-crl delays).
    #[serde(default)]
    pub crl_grace_secs: u64,
    #[serde(default)]
    pub namespaces: NamespaceMode,
    /// Maximum number of proxies below the end-entity certificate; absent =
    /// unlimited, 0 = no proxies.
    #[serde(default)]
    pub max_proxy_depth: Option<u32>,
    #[serde(default)]
    pub limited_proxies: LimitedProxies,
    /// Accept RFC 3820 proxies with the independent or a restricted policy.
    #[serde(default)]
    pub allow_independent_proxies: bool,
    /// Accept pre-RFC GT3 draft proxies (gridsite refuses them).
    #[serde(default)]
    pub allow_gt3_proxies: bool,
    /// Tolerance for client clocks, applied to notBefore/notAfter.
    #[serde(default)]
    pub clock_skew_secs: u64,
}

impl X509Config {
    pub(crate) fn validate(&self, _src: &Source, p: &mut Problems) {
        let week = 7 * 24 * 3600;
        if self.clock_skew_secs > 3600 {
            p.push(crate::problem::Problem::file(
                &_src.path,
                "x509.clock_skew_secs above 3600 would accept long-expired proxies",
            ));
        }
        if self.crl_grace_secs > week {
            p.push(crate::problem::Problem::file(
                &_src.path,
                "x509.crl_grace_secs above one week defeats revocation",
            ));
        }
    }
}

impl NamespaceMode {
    /// (use signing_policy, use namespaces, signing first, both, require)
    pub(crate) fn plan(self) -> Option<(bool, bool, bool, bool, bool)> {
        use NamespaceMode::*;
        Some(match self {
            Ignore => return None,
            Globus => (true, false, true, false, false),
            Eugridpma => (false, true, false, false, false),
            GlobusEugridpma => (true, true, true, false, false),
            EugridpmaGlobus => (true, true, false, false, false),
            EugridpmaAndGlobus => (true, true, true, true, false),
            GlobusRequire => (true, false, true, false, true),
            EugridpmaRequire => (false, true, false, false, true),
            GlobusEugridpmaRequire => (true, true, true, false, true),
            EugridpmaGlobusRequire => (true, true, false, false, true),
            EugridpmaAndGlobusRequire => (true, true, true, true, true),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_names() {
        let c: X509Config = toml::from_str("").unwrap();
        assert_eq!(c.crl, CrlMode::Require);
        assert_eq!(c.namespaces, NamespaceMode::GlobusEugridpma);
        assert_eq!(c.limited_proxies, LimitedProxies::Accept);
        assert!(
            !c.allow_gt3_proxies && !c.allow_independent_proxies && c.max_proxy_depth.is_none()
        );
        let c: X509Config = toml::from_str(
            "crl = \"if_valid\"\nnamespaces = \"ignore\"\nmax_proxy_depth = 4\nlimited_proxies = \"reject\"",
        )
        .unwrap();
        assert_eq!(
            (c.crl, c.namespaces, c.max_proxy_depth),
            (CrlMode::IfValid, NamespaceMode::Ignore, Some(4))
        );
        assert!(toml::from_str::<X509Config>("crl = \"sometimes\"").is_err());
        assert!(toml::from_str::<X509Config>("crl_mode = \"require\"").is_err());
    }
}
