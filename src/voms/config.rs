//! `[voms]`: where the vomsdir is and how ACs are checked and exported.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::export::ExportNames;
use crate::problem::{Problems, Source};

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
    /// Names this service answers to besides the DNS names and IP addresses
    /// of the server certificate's subjectAltName, which always count: an
    /// AC with targets must name one of them (RFC 5755 §4.3.2). ACs without
    /// targets are accepted regardless.
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
                p.push(crate::problem::Problem::file(
                    &src.path,
                    format!("voms.export name `{name}` may only hold letters, digits, `_` and `-`"),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::voms::VomsSettings;

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
