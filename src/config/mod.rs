//! fedgate's TOML configuration.
//!
//! Every table rejects unknown keys, so a typo is an error naming its line
//! rather than a silently ignored setting. Values that need checking beyond
//! their type (regexes, URLs, files) keep their span, so that
//! [`Config::validate`] can name the line to fix.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::http::host::PublicNames;
use crate::logging::LoggingConfig;
use crate::problem::{Problem, Problems, Source};
use crate::tls::TlsConfig;
use crate::upstream::UpstreamConfig;

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
    pub oidc: crate::auth::websso::OidcConfig,
    /// Token validation cache (in memory; shared through `[state]`).
    #[serde(default)]
    pub cache: crate::auth::bearer::CacheConfig,
    /// Where several nodes share state (`memory`, `memcached`, `redis`).
    #[serde(default)]
    pub state: state::StateConfig,
    /// Background services, one section each (`[plugins.<name>]`).
    #[serde(default)]
    pub plugins: crate::services::PluginsConfig,
    /// Where this configuration was read from, for error messages.
    #[serde(skip)]
    pub source: Source,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Addresses to listen on with TLS.
    #[serde(default = "default_listen", deserialize_with = "one_or_many")]
    pub listen: Vec<Spanned<String>>,
    /// Largest request body forwarded to Keystone, in bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: u64,
    /// Seconds allowed for the TLS handshake.
    #[serde(default = "default_handshake_timeout")]
    pub handshake_timeout_secs: Spanned<u64>,
    /// Seconds allowed to receive a request head.
    #[serde(default = "default_header_timeout")]
    pub header_timeout_secs: Spanned<u64>,
    /// Concurrent client connections; more are refused at accept.
    #[serde(default = "default_max_connections")]
    pub max_connections: Spanned<usize>,
    /// Concurrent connections from one client address (an IPv6 /64);
    /// trusted proxies are exempt.
    #[serde(default = "default_max_connections_per_ip")]
    pub max_connections_per_ip: Spanned<usize>,
    /// On SIGTERM, in-flight requests get this long to finish.
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout_secs: u64,
    /// Peers whose X-Forwarded-For is extended rather than replaced
    /// (a load balancer in front of fedgate). Addresses or CIDRs.
    #[serde(default, deserialize_with = "one_or_many")]
    pub trusted_proxies: Vec<Spanned<String>>,
    /// Every TLS connection starts with a PROXY protocol header (v1 or
    /// v2), accepted only from `trusted_proxies`: a load balancer in TCP
    /// mode passes the client's address this way.
    #[serde(default = "default_proxy_protocol")]
    pub proxy_protocol: Spanned<bool>,
    /// Names (`host` or `host:port`) this service answers to. When set, a
    /// request for any other host gets 421, and URLs fedgate builds about
    /// itself use the first one. Empty: any valid Host is served.
    #[serde(default, deserialize_with = "one_or_many")]
    pub public_names: Vec<Spanned<String>>,
    /// Threads that serve connections. Unset: one per CPU core. Read at
    /// start only (a reload keeps the running threads and says so).
    #[serde(default)]
    pub worker_threads: Option<Spanned<usize>>,
}

/// A list of strings that may also be written as one string
/// (`listen = "0.0.0.0:443"`), as administrators do for the usual single
/// address. Each element keeps its span for problems at file:line.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Spanned<String>>, D::Error> {
    enum Inner {
        One(String),
        Many(Vec<Spanned<String>>),
    }
    impl<'de> Deserialize<'de> for Inner {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Inner;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a string or a list of strings")
                }
                fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Inner, E> {
                    Ok(Inner::One(v.to_string()))
                }
                fn visit_seq<A: serde::de::SeqAccess<'de>>(
                    self,
                    mut seq: A,
                ) -> Result<Inner, A::Error> {
                    let mut out = Vec::new();
                    while let Some(e) = seq.next_element::<Spanned<String>>()? {
                        out.push(e);
                    }
                    Ok(Inner::Many(out))
                }
            }
            d.deserialize_any(V)
        }
    }
    let outer = Spanned::<Inner>::deserialize(d)?;
    let span = outer.span();
    Ok(match outer.into_inner() {
        Inner::One(s) => vec![Spanned::new(span, s)],
        Inner::Many(v) => v,
    })
}

/// More threads than this is a typo, not a machine.
const MAX_WORKER_THREADS: usize = 1024;

fn default_listen() -> Vec<Spanned<String>> {
    vec![Spanned::new(0..0, "0.0.0.0:5000".to_string())]
}
fn default_max_body() -> u64 {
    1 << 20
}
fn default_handshake_timeout() -> Spanned<u64> {
    Spanned::new(0..0, 10)
}
fn default_header_timeout() -> Spanned<u64> {
    Spanned::new(0..0, 30)
}
fn default_max_connections() -> Spanned<usize> {
    Spanned::new(0..0, 4096)
}
fn default_max_connections_per_ip() -> Spanned<usize> {
    Spanned::new(0..0, 256)
}
fn default_proxy_protocol() -> Spanned<bool> {
    Spanned::new(0..0, false)
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
            max_connections_per_ip: default_max_connections_per_ip(),
            shutdown_timeout_secs: default_shutdown_timeout(),
            trusted_proxies: Vec::new(),
            proxy_protocol: default_proxy_protocol(),
            public_names: Vec::new(),
            worker_threads: None,
        }
    }
}

impl ServerConfig {
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(*self.handshake_timeout_secs.get_ref())
    }
    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs(*self.header_timeout_secs.get_ref())
    }
    pub fn max_connections(&self) -> usize {
        *self.max_connections.get_ref()
    }
    pub fn max_connections_per_ip(&self) -> usize {
        *self.max_connections_per_ip.get_ref()
    }
    /// `worker_threads`, when set: the number of serving threads, each
    /// with its own event loop (`crate::server::Workers`).
    pub fn worker_threads(&self) -> Option<usize> {
        self.worker_threads.as_ref().map(|w| *w.get_ref())
    }
    pub fn proxy_protocol(&self) -> bool {
        *self.proxy_protocol.get_ref()
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
    /// `public_names`, parsed (invalid entries were refused by
    /// [`Config::validate`] and are skipped). Its `url_for` builds URLs
    /// about this service from configuration, never from a request.
    pub fn public_names(&self) -> PublicNames {
        PublicNames::parse(
            self.public_names
                .iter()
                .map(|n| n.get_ref().as_str())
                .filter(|n| crate::http::host::Authority::parse(n).is_ok()),
        )
        .unwrap_or_default()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Plain-HTTP listener for /healthz, /readyz and /metrics. Empty disables it.
    #[serde(default = "default_admin_listen", deserialize_with = "one_or_many")]
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

    /// The problem with a CA directory that holds `usable` CA certificates:
    /// none while an `auth = "x509"` route exists means that route refuses
    /// every client.
    pub fn check_ca_count(&self, usable: usize) -> Option<Problem> {
        if usable > 0 {
            return None;
        }
        let route = self
            .routes
            .iter()
            .enumerate()
            .find(|(_, r)| *r.auth.get_ref() == crate::route::AuthKind::X509)?;
        let name = route
            .1
            .name
            .clone()
            .unwrap_or_else(|| format!("route{}", route.0));
        Some(self.source.problem(
            &self.tls.ca_dir,
            format!(
                "tls.ca_dir {} holds no usable CA certificate, so the x509 route `{name}` would refuse every client",
                self.tls.ca_dir.get_ref().display()
            ),
        ))
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
        let s = &self.server;
        for (v, what) in [
            (
                &s.max_connections,
                "server.max_connections = 0 would refuse every connection",
            ),
            (
                &s.max_connections_per_ip,
                "server.max_connections_per_ip = 0 would refuse every connection",
            ),
        ] {
            if *v.get_ref() == 0 {
                p.push(src.problem(v, what));
            }
        }
        for (v, what) in [
            (
                &s.handshake_timeout_secs,
                "server.handshake_timeout_secs = 0 would fail every TLS handshake",
            ),
            (
                &s.header_timeout_secs,
                "server.header_timeout_secs = 0 would close every connection before its first request",
            ),
        ] {
            if *v.get_ref() == 0 {
                p.push(src.problem(v, what));
            }
        }
        if let Some(w) = &s.worker_threads
            && !(1..=MAX_WORKER_THREADS).contains(w.get_ref())
        {
            p.push(src.problem(
                w,
                format!(
                    "server.worker_threads = {} is not between 1 and {MAX_WORKER_THREADS}",
                    w.get_ref()
                ),
            ));
        }
        for t in &self.server.trusted_proxies {
            if crate::http::forwarded::Cidr::parse(t.get_ref()).is_none() {
                p.push(src.problem(t, format!("`{}` is not an IP address or CIDR", t.get_ref())));
            }
        }
        if self.server.proxy_protocol() && self.server.trusted_proxies.is_empty() {
            p.push(src.problem(
                &self.server.proxy_protocol,
                "server.proxy_protocol = true needs server.trusted_proxies: a PROXY header is accepted only from them, so every connection would be refused",
            ));
        }
        for n in &self.server.public_names {
            if let Err(e) = crate::http::host::Authority::parse(n.get_ref()) {
                p.push(src.problem(
                    n,
                    format!(
                        "server.public_names: `{}` is not a host or host:port ({e})",
                        n.get_ref()
                    ),
                ));
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
        let ctx = crate::route::Context {
            idp_names: self
                .metadata_dir
                .is_none()
                .then(|| self.idps.iter().map(|i| i.name.as_str()).collect()),
            any_idp: !self.idps.is_empty() || self.metadata_dir.is_some(),
            dashboards: !self.oidc.trusted_dashboards.is_empty(),
        };
        for r in &self.routes {
            r.validate(src, &ctx, &mut p);
        }
        self.tls.validate(src, &mut p);
        self.x509.validate(src, &mut p);
        self.voms.validate(src, &mut p);
        crate::oidc::idp::validate_all(&self.idps, src, &mut p);
        self.oidc.validate(src, &mut p);
        self.plugins.validate(src, &mut p);
        if let Err(e) = self.state() {
            p.extend(e);
        }
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

mod state;
pub use state::Resolved as StateResolved;

impl Config {
    fn state_sections(&self) -> state::Sections<'_> {
        state::Sections {
            state: &self.state,
            cache: &self.cache,
            session: &self.oidc.session,
            source: &self.source,
        }
    }

    /// `[state]` with its defaults and the legacy keys applied (see
    /// `state.rs`), or every problem with its line.
    pub fn state(&self) -> Result<StateResolved, Problems> {
        self.state_sections().resolve()
    }

    /// `check-config`'s notes about the legacy Redis keys still in use.
    pub fn state_deprecations(&self) -> Vec<String> {
        self.state_sections().deprecations()
    }
}

#[cfg(test)]
mod tests;
