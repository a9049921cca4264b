//! VOMS attribute certificates: parsing, validation against the vomsdir,
//! and the FQANs exported to Keystone.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use crate::config::{Problems, Source};

/// `[voms]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VomsConfig {
    /// The vomsdir: `<vo>/<host>.lsc` files naming each VO's trusted servers.
    #[serde(default = "default_dir")]
    pub dir: Spanned<PathBuf>,
}

fn default_dir() -> Spanned<PathBuf> {
    Spanned::new(0..0, PathBuf::from("/etc/grid-security/vomsdir"))
}

impl Default for VomsConfig {
    fn default() -> Self {
        VomsConfig { dir: default_dir() }
    }
}

impl VomsConfig {
    pub(crate) fn validate(&self, _src: &Source, _p: &mut Problems) {}
}
