//! `[tls]`: the host credentials and the trust store the front end uses.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::problem::{Problems, Source};

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
    /// How changes to `ca_dir`, the vomsdir, the host credentials and the
    /// configuration file are noticed: fetch-crl and IGTF updates must
    /// reach the trust store without an operator sending SIGHUP.
    #[serde(default)]
    pub watch: WatchMode,
    /// Poll period in `watch = "poll"` mode, and when inotify cannot be
    /// set up.
    #[serde(default = "default_watch_interval")]
    pub watch_interval_secs: Spanned<u64>,
    /// Quiet time after the last change before reloading: a package update
    /// writing hundreds of files is one reload, and a file is not read
    /// while it is being written.
    #[serde(default = "default_watch_debounce")]
    pub watch_debounce_ms: Spanned<u64>,
    /// Host certificate, CA certificates and CRLs (nextUpdate) closer than
    /// this to their end are logged as warnings at start and each reload.
    #[serde(default = "default_expiry_warning")]
    pub expiry_warning_days: u64,
}

/// `[tls] watch`: how file changes trigger a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum WatchMode {
    /// inotify, falling back to polling when it cannot be set up.
    #[default]
    Inotify,
    /// Compare modification times every `watch_interval_secs`.
    Poll,
    /// No watching: only SIGHUP reloads.
    Off,
}

impl WatchMode {
    pub fn name(self) -> &'static str {
        match self {
            WatchMode::Inotify => "inotify",
            WatchMode::Poll => "poll",
            WatchMode::Off => "off",
        }
    }
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
fn default_watch_interval() -> Spanned<u64> {
    Spanned::new(0..0, 30)
}
fn default_watch_debounce() -> Spanned<u64> {
    Spanned::new(0..0, 2000)
}
fn default_expiry_warning() -> u64 {
    14
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            certificate: default_cert(),
            private_key: default_key(),
            ca_dir: default_ca_dir(),
            client_auth: ClientAuth::default(),
            send_ca_hints: true,
            watch: WatchMode::default(),
            watch_interval_secs: default_watch_interval(),
            watch_debounce_ms: default_watch_debounce(),
            expiry_warning_days: default_expiry_warning(),
        }
    }
}

impl TlsConfig {
    pub fn watch_interval(&self) -> Duration {
        Duration::from_secs(*self.watch_interval_secs.get_ref())
    }

    pub fn watch_debounce(&self) -> Duration {
        Duration::from_millis(*self.watch_debounce_ms.get_ref())
    }

    /// The warning window for expiring certificates and CRLs, in seconds.
    pub fn expiry_warning_secs(&self) -> i64 {
        i64::try_from(self.expiry_warning_days.saturating_mul(86_400)).unwrap_or(i64::MAX)
    }

    pub(crate) fn validate(&self, src: &Source, p: &mut Problems) {
        if *self.watch_interval_secs.get_ref() == 0 {
            p.push(src.problem(
                &self.watch_interval_secs,
                "tls.watch_interval_secs = 0 would poll without pause",
            ));
        }
        // A debounce longer than the poll period makes sense; one longer
        // than an hour would leave a new CRL unused for that long.
        if *self.watch_debounce_ms.get_ref() > 3_600_000 {
            p.push(src.problem(
                &self.watch_debounce_ms,
                "tls.watch_debounce_ms above one hour would delay new CRLs for that long",
            ));
        }
    }
}

fn yes() -> bool {
    true
}
