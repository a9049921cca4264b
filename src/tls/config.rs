//! `[tls]`: the host credentials and the trust store the front end uses.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

/// Whether the TLS handshake asks for a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    None,
    #[default]
    Optional,
    Required,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Host certificate, PEM; may hold the chain after the leaf.
    #[serde(default = "default_cert")]
    pub certificate: Spanned<PathBuf>,
    #[serde(default = "default_key")]
    pub private_key: Spanned<PathBuf>,
    /// IGTF-layout CA directory: trust anchors, CRLs, policies.
    #[serde(default = "default_ca_dir")]
    pub ca_dir: Spanned<PathBuf>,
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// Send the subjects of the CAs in `ca_dir` as acceptable-CA hints.
    #[serde(default = "yes")]
    pub send_ca_hints: bool,
}

fn default_cert() -> Spanned<PathBuf> {
    Spanned::new(0..0, PathBuf::from("/etc/grid-security/hostcert.pem"))
}
fn default_key() -> Spanned<PathBuf> {
    Spanned::new(0..0, PathBuf::from("/etc/grid-security/hostkey.pem"))
}
fn default_ca_dir() -> Spanned<PathBuf> {
    Spanned::new(0..0, PathBuf::from("/etc/grid-security/certificates"))
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            certificate: default_cert(),
            private_key: default_key(),
            ca_dir: default_ca_dir(),
            client_auth: ClientAuth::default(),
            send_ca_hints: true,
        }
    }
}

fn yes() -> bool {
    true
}
