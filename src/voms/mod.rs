//! VOMS attribute certificates: parsing, validation against the vomsdir,
//! and the FQANs exported to Keystone.
//!
//! The PKI module validates the client chain, then calls [`evaluate`] with
//! its [`AaVerifier`]. Only the leaf-most proxy carrying ACs counts; each
//! of its ACs is checked on its own (spec voms-gsi §3.3, in order:
//! [`profile`], signature, issuer binding and AA chain via [`lsc`], holder,
//! time, extensions, targets, FQAN prefix — see [`validate`]) and a refused
//! AC only loses its FQANs, as with gridsite. Where fedgate is stricter
//! than gridsite, on purpose: the LSC file is `<vo>/<host>.lsc` from the
//! AC's policyAuthority (not any `.lsc` of the VO), all its lines and
//! chains are read, a present LSC that does not match is final, `.pem`
//! fallback AA certificates are path-validated, unknown critical AC
//! extensions and targets naming other services are refused.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use crate::config::{Problems, Source};

pub mod asn1;
mod cache;
mod evaluate;
pub mod export;
pub mod info;
pub mod lsc;
pub mod profile;
pub mod validate;

pub use cache::VomsSettings;
pub use evaluate::{MAX_ACS, evaluate};
pub use export::{ExportNames, FqanRequirement, RouteVoms};

/// `[voms]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VomsConfig {
    /// The vomsdir: `<vo>/<host>.lsc` files naming each VO's trusted servers.
    #[serde(default = "default_dir")]
    pub dir: Spanned<PathBuf>,
    /// Tolerated clock difference for AC validity, seconds (VOMS C++ and
    /// voms-api-java use 5 minutes).
    #[serde(default = "default_skew")]
    pub clock_skew_secs: Spanned<u64>,
    /// Names this service answers to: an AC with targets must name one.
    /// ACs without targets are accepted regardless.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Without `<vo>/<host>.lsc`, accept an AA certificate installed as a
    /// `.pem` in `<vo>/` or the vomsdir (still path-validated).
    #[serde(default = "default_true")]
    pub pem_fallback: bool,
    /// Names of the nginx-voms style values.
    #[serde(default)]
    pub export: ExportNames,
    /// Validated ACs kept in memory, keyed by the hash of the AC.
    #[serde(default = "default_cache_entries")]
    pub cache_entries: u64,
    /// Longest time a validated AC is trusted without re-checking its
    /// signer (vomsdir, trust store and CRL changes show up after this),
    /// seconds. Never past the AC's own notAfter.
    #[serde(default = "default_cache_ttl")]
    pub cache_ttl_secs: Spanned<u64>,
}

fn default_dir() -> Spanned<PathBuf> {
    Spanned::new(0..0, PathBuf::from("/etc/grid-security/vomsdir"))
}
fn default_skew() -> Spanned<u64> {
    Spanned::new(0..0, 300)
}
fn default_true() -> bool {
    true
}
fn default_cache_entries() -> u64 {
    10_000
}
fn default_cache_ttl() -> Spanned<u64> {
    Spanned::new(0..0, 300)
}

impl Default for VomsConfig {
    fn default() -> Self {
        VomsConfig {
            dir: default_dir(),
            clock_skew_secs: default_skew(),
            targets: Vec::new(),
            pem_fallback: true,
            export: ExportNames::default(),
            cache_entries: default_cache_entries(),
            cache_ttl_secs: default_cache_ttl(),
        }
    }
}

impl VomsConfig {
    pub(crate) fn validate(&self, src: &Source, p: &mut Problems) {
        if *self.clock_skew_secs.get_ref() > 86_400 {
            p.push(src.problem(&self.clock_skew_secs, "voms.clock_skew_secs above one day"));
        }
        if *self.cache_ttl_secs.get_ref() > 86_400 {
            p.push(src.problem(&self.cache_ttl_secs, "voms.cache_ttl_secs above one day"));
        }
        for name in self.export.all() {
            if !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                p.push(crate::config::Problem::file(
                    &src.path,
                    format!("voms.export name `{name}` may only hold letters, digits, `_` and `-`"),
                ));
            }
        }
    }
}

/// A generic attribute (`-ga name=value (qualifier)`), as nginx-voms exports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenericAttribute {
    pub name: String,
    pub value: String,
    pub qualifier: String,
}

/// One attribute certificate that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidAc {
    /// VO name, from the policyAuthority URI scheme part.
    pub vo: String,
    /// `host:port` of the VOMS server, from the policyAuthority URI.
    pub uri: String,
    /// One-line subject and issuer of the AA (VOMS server) certificate.
    pub server: String,
    pub server_ca: String,
    /// FQANs exactly as in the AC, in AC order (first = primary).
    pub fqans: Vec<String>,
    /// AC validity as Unix times, and as the raw GeneralizedTime text.
    pub not_before: i64,
    pub not_after: i64,
    pub not_before_raw: String,
    pub not_after_raw: String,
    /// AC serial as upper-case hex with an even number of digits.
    pub serial_hex: String,
    pub generic: Vec<GenericAttribute>,
}

/// What the VOMS module concluded about a validated client chain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VomsOutcome {
    /// Index (leaf first) of the leaf-most proxy carrying a VOMS extension.
    pub carrier: Option<usize>,
    /// Valid ACs in extension order.
    pub acs: Vec<ValidAc>,
    /// One human-readable reason per refused AC (the AC is dropped, the
    /// connection is not failed, as gridsite does).
    pub refused: Vec<String>,
}

/// Validation of a VOMS server (AA) certificate chain, provided by the PKI
/// module: full path validation against the trust store, CRLs included.
/// `helpers` are the other certificates embedded in the AC, usable as
/// untrusted intermediates only.
pub trait AaVerifier {
    fn verify_aa(&self, aa_der: &[u8], helpers: &[&[u8]], now: i64) -> Result<(), String>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keys_and_defaults() {
        let c: VomsConfig = toml::from_str(
            "dir = '/v'\nclock_skew_secs = 60\ntargets = ['ks.example']\npem_fallback = false\n\
             [export]\nfqans = 'X_FQANS'\nserial = ''\n",
        )
        .unwrap();
        let s = VomsSettings::from_config(&c);
        assert_eq!((s.skew, s.pem_fallback), (60, false));
        assert_eq!(s.targets, vec!["ks.example".to_string()]);
        assert_eq!(s.export.fqans, "X_FQANS");
        assert_eq!(s.export.vo, "VOMS_VO");
        assert!(s.export.serial.is_empty());
        let d = VomsSettings::from_config(&VomsConfig::default());
        assert_eq!(
            (d.skew, d.pem_fallback, d.cache_ttl.as_secs()),
            (300, true, 300)
        );
        assert!(toml::from_str::<VomsConfig>("skew = 1").is_err());

        let bad: VomsConfig =
            toml::from_str("clock_skew_secs = 90000\n[export]\nvo = 'a b'\n").unwrap();
        let mut p = Problems::default();
        bad.validate(&Source::default(), &mut p);
        assert_eq!(p.0.len(), 2, "{p}");
    }
}
