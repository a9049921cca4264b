//! fedgate's TOML configuration.
//!
//! Every table rejects unknown keys, so a typo is an error naming its line
//! rather than a silently ignored setting. Values that need checking beyond
//! their type (regexes, URLs, files) keep their span, so that
//! [`Config::validate`] can name the line to fix.

mod problem;
mod secret;

pub use problem::{Problem, Problems};
pub use secret::Secret;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub tls: TlsConfig,
    #[serde(default)]
    pub x509: crate::pki::X509Config,
    #[serde(default)]
    pub voms: crate::voms::VomsConfig,
    pub upstream: UpstreamConfig,
    #[serde(default)]
    pub logging: LoggingConfig,
    #[serde(default)]
    pub scrub: ScrubConfig,
    /// Ordered: the first route whose `path` matches decides.
    #[serde(default, rename = "route")]
    pub routes: Vec<crate::route::RouteConfig>,
    /// Trusted OpenID providers (bearer tokens and browser login).
    #[serde(default, rename = "idp")]
    pub idps: Vec<crate::oidc::IdpConfig>,
    /// mod_auth_openidc `OIDCMetadataDir`: more IdPs, read as is.
    #[serde(default)]
    pub metadata_dir: Option<Spanned<PathBuf>>,
    /// The browser login (Horizon WebSSO) and its sessions.
    #[serde(default)]
    pub oidc: crate::oidc::websso::config::OidcConfig,
    /// Token validation cache (memory, optionally Redis).
    #[serde(default)]
    pub cache: crate::token::CacheConfig,
    /// Where this configuration was read from, for error messages.
    #[serde(skip)]
    pub source: Source,
}

/// The file a configuration came from, kept to turn spans into lines.
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub path: PathBuf,
    pub text: String,
}

impl Source {
    /// 1-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    /// A problem located at a spanned value. Defaults (empty span) have no
    /// line of their own, so the problem names the file only.
    pub fn problem<T>(&self, at: &Spanned<T>, message: impl Into<String>) -> Problem {
        let span = at.span();
        if span.is_empty() && span.start == 0 {
            Problem::file(&self.path, message)
        } else {
            Problem::at(&self.path, self.line_of(span.start), message)
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Addresses to listen on with TLS.
    #[serde(default = "default_listen")]
    pub listen: Vec<Spanned<String>>,
    /// Largest request body forwarded to Keystone, in bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: u64,
    /// Seconds allowed for the TLS handshake.
    #[serde(default = "default_handshake_timeout")]
    pub handshake_timeout_secs: u64,
    /// Seconds allowed to receive a request head.
    #[serde(default = "default_header_timeout")]
    pub header_timeout_secs: u64,
    /// Concurrent client connections; more are refused at accept.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// On SIGTERM, in-flight requests get this long to finish.
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout_secs: u64,
    /// Peers whose X-Forwarded-For is extended rather than replaced
    /// (a load balancer in front of fedgate). Addresses or CIDRs.
    #[serde(default)]
    pub trusted_proxies: Vec<Spanned<String>>,
}

fn default_listen() -> Vec<Spanned<String>> {
    vec![Spanned::new(0..0, "0.0.0.0:5000".to_string())]
}
fn default_max_body() -> u64 {
    1 << 20
}
fn default_handshake_timeout() -> u64 {
    10
}
fn default_header_timeout() -> u64 {
    30
}
fn default_max_connections() -> usize {
    4096
}
fn default_shutdown_timeout() -> u64 {
    30
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            max_body_bytes: default_max_body(),
            handshake_timeout_secs: default_handshake_timeout(),
            header_timeout_secs: default_header_timeout(),
            max_connections: default_max_connections(),
            shutdown_timeout_secs: default_shutdown_timeout(),
            trusted_proxies: Vec::new(),
        }
    }
}

impl ServerConfig {
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.handshake_timeout_secs)
    }
    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.header_timeout_secs)
    }
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        self.listen
            .iter()
            .filter_map(|l| l.get_ref().parse().ok())
            .collect()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Plain-HTTP listener for /healthz, /readyz and /metrics. Empty disables it.
    #[serde(default = "default_admin_listen")]
    pub listen: Vec<Spanned<String>>,
}

fn default_admin_listen() -> Vec<Spanned<String>> {
    vec![Spanned::new(0..0, "127.0.0.1:9090".to_string())]
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: default_admin_listen(),
        }
    }
}

impl AdminConfig {
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        self.listen
            .iter()
            .filter_map(|l| l.get_ref().parse().ok())
            .collect()
    }
}

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
pub(crate) fn yes() -> bool {
    true
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// `uwsgi://host:port` (Keystone under uWSGI, exact mod_wsgi environ) or
    /// `http://host:port` (any server; identity as headers).
    pub url: Spanned<String>,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    /// Time allowed for Keystone to start answering.
    #[serde(default = "default_response_timeout")]
    pub response_timeout_secs: u64,
    /// HTTP upstream only: prefix of the identity header names. An environ
    /// name becomes a header by dropping a leading `HTTP_` and writing `_`
    /// as `-`: `GRST_CONN_AURI_0` becomes `<prefix>GRST-CONN-AURI-0`.
    #[serde(default)]
    pub identity_header_prefix: String,
    /// HTTP upstream only: explicit header names for given environ names.
    #[serde(default)]
    pub identity_headers: std::collections::BTreeMap<String, String>,
}

fn default_connect_timeout() -> u64 {
    5
}
fn default_response_timeout() -> u64 {
    60
}

impl UpstreamConfig {
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }
    pub fn response_timeout(&self) -> Duration {
        Duration::from_secs(self.response_timeout_secs)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    #[serde(default)]
    pub format: LogFormat,
    /// tracing filter directive, e.g. "info" or "fedgate=debug".
    #[serde(default = "default_level")]
    pub level: String,
}

fn default_level() -> String {
    "info".into()
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            format: LogFormat::Text,
            level: default_level(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrubConfig {
    /// Extra header-name prefixes to drop from every request, on top of
    /// OIDC, GRST, SSL_CLIENT, REMOTE_USER and X-Remote.
    #[serde(default)]
    pub prefixes: Vec<String>,
}

impl Config {
    /// Reads and parses a file. Syntax and type errors come back with
    /// their line; call [`Config::validate`] for the semantic checks.
    pub fn load(path: &Path) -> Result<Config, Problems> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Problems::one(Problem::file(
                path,
                format!("cannot read configuration: {e}"),
            ))
        })?;
        Self::parse(path, text)
    }

    /// Parses configuration text; `path` is used in messages only.
    pub fn parse(path: &Path, text: String) -> Result<Config, Problems> {
        let source = Source {
            path: path.to_path_buf(),
            text,
        };
        let mut cfg: Config = toml::from_str(&source.text).map_err(|e| {
            let msg = e.message().trim().to_string();
            Problems::one(match e.span() {
                Some(s) => Problem::at(path, source.line_of(s.start), msg),
                None => Problem::file(path, msg),
            })
        })?;
        cfg.source = source;
        Ok(cfg)
    }

    /// Loads and validates: what `run` and a reload need.
    pub fn load_valid(path: &Path) -> Result<Config, Problems> {
        let cfg = Self::load(path)?;
        cfg.validate().into_result()?;
        Ok(cfg)
    }

    /// Checks that need no I/O: addresses, URLs, regexes and cross-field
    /// rules. File and network checks belong to `check-config`.
    pub fn validate(&self) -> Problems {
        let mut p = Problems::default();
        let src = &self.source;
        for l in self.server.listen.iter().chain(&self.admin.listen) {
            if l.get_ref().parse::<SocketAddr>().is_err() {
                p.push(src.problem(
                    l,
                    format!(
                        "`{}` is not an address:port such as 0.0.0.0:5000",
                        l.get_ref()
                    ),
                ));
            }
        }
        if self.server.listen.is_empty() {
            p.push(Problem::file(
                &src.path,
                "server.listen is empty: fedgate would serve nothing",
            ));
        }
        for t in &self.server.trusted_proxies {
            if crate::server::forwarded::Cidr::parse(t.get_ref()).is_none() {
                p.push(src.problem(t, format!("`{}` is not an IP address or CIDR", t.get_ref())));
            }
        }
        if let Err(e) = crate::upstream::Target::parse(self.upstream.url.get_ref()) {
            p.push(src.problem(&self.upstream.url, e.to_string()));
        }
        if self.routes.is_empty() {
            p.push(Problem::file(
                &src.path,
                "no [[route]] is configured, so every request would get 404; add at least \
                 `[[route]]` with `path = \"^/\"` and `auth = \"none\"`",
            ));
        }
        for r in &self.routes {
            r.validate(self, &mut p);
        }
        self.x509.validate(src, &mut p);
        self.voms.validate(src, &mut p);
        crate::oidc::idp::validate_all(&self.idps, src, &mut p);
        self.oidc.validate(src, &mut p);
        if let Some(d) = &self.metadata_dir
            && !d.get_ref().is_dir()
        {
            p.push(src.problem(
                d,
                format!("metadata_dir {} is not a directory", d.get_ref().display()),
            ));
        }
        p
    }
}

#[cfg(test)]
mod tests;
