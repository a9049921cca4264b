//! The upstream phase: hand a request and its identity to Keystone.
//!
//! Two encoders share one entry point. [`uwsgi`] speaks the uwsgi protocol
//! to Keystone under uWSGI and sets the WSGI environ exactly as Apache's
//! mod_proxy_uwsgi would, so federation mappings written for mod_wsgi work
//! unchanged. [`http`] forwards plain HTTP/1.1 to any other server and
//! passes the identity as headers.

pub mod environ;
pub mod http;
pub mod uwsgi;

use std::net::SocketAddr;
use std::time::Duration;

use ::http::StatusCode;
use thiserror::Error;

use crate::config::UpstreamConfig;
use crate::conn::ConnInfo;
use crate::identity::Identity;
use crate::server::body::Body;

/// Where Keystone listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Uwsgi { host: String, port: u16 },
    Http { host: String, port: u16 },
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TargetError {
    #[error("upstream.url `{0}` is not a URL: {1}")]
    NotUrl(String, String),
    #[error(
        "upstream.url scheme `{0}` is not supported: use uwsgi://host:port or http://host:port"
    )]
    Scheme(String),
    #[error("upstream.url `{0}` needs a host and a port, e.g. uwsgi://127.0.0.1:5001")]
    HostPort(String),
    #[error("upstream.url `{0}` must not have a path, query or credentials")]
    Extra(String),
}

impl Target {
    pub fn parse(s: &str) -> Result<Target, TargetError> {
        let u = url::Url::parse(s).map_err(|e| TargetError::NotUrl(s.into(), e.to_string()))?;
        if u.scheme() != "uwsgi" && u.scheme() != "http" {
            return Err(TargetError::Scheme(u.scheme().into()));
        }
        let host = u
            .host_str()
            .ok_or_else(|| TargetError::HostPort(s.into()))?
            .to_string();
        if (u.path() != "/" && !u.path().is_empty())
            || u.query().is_some()
            || !u.username().is_empty()
        {
            return Err(TargetError::Extra(s.into()));
        }
        match u.scheme() {
            "uwsgi" => Ok(Target::Uwsgi {
                host,
                port: u.port().ok_or_else(|| TargetError::HostPort(s.into()))?,
            }),
            "http" => Ok(Target::Http {
                host,
                port: u.port().unwrap_or(80),
            }),
            other => Err(TargetError::Scheme(other.into())),
        }
    }

    pub fn authority(&self) -> String {
        match self {
            Target::Uwsgi { host, port } | Target::Http { host, port } => {
                format!("{host}:{port}")
            }
        }
    }

    /// Resolves and connects once, for readiness and `check-config`.
    pub async fn probe(&self, timeout: Duration) -> Result<SocketAddr, UpstreamError> {
        let stream = connect(&self.authority(), timeout).await?;
        stream.peer_addr().map_err(UpstreamError::Connect)
    }
}

pub(crate) async fn connect(
    authority: &str,
    timeout: Duration,
) -> Result<tokio::net::TcpStream, UpstreamError> {
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(authority)).await {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        Ok(Err(e)) => Err(UpstreamError::Connect(e)),
        Err(_) => Err(UpstreamError::ConnectTimeout),
    }
}

/// Why a request could not be forwarded.
#[derive(Debug, Error)]
pub enum UpstreamError {
    #[error("Keystone is unreachable: {0}")]
    Connect(std::io::Error),
    #[error("Keystone did not accept the connection in time")]
    ConnectTimeout,
    #[error("Keystone did not answer in time")]
    ResponseTimeout,
    #[error("Keystone sent an invalid response: {0}")]
    BadResponse(String),
    #[error("connection to Keystone failed: {0}")]
    Io(std::io::Error),
    #[error("request body is larger than the limit of {0} bytes")]
    BodyTooLarge(u64),
    #[error("request body could not be read: {0}")]
    ClientBody(String),
    #[error("request headers and identity are {0} bytes, more than the uwsgi limit of 65535")]
    EnvironTooLarge(usize),
    #[error("request cannot be forwarded: {0}")]
    BadRequest(String),
}

impl UpstreamError {
    pub fn status(&self) -> StatusCode {
        match self {
            UpstreamError::Connect(_)
            | UpstreamError::ConnectTimeout
            | UpstreamError::BadResponse(_)
            | UpstreamError::Io(_) => StatusCode::BAD_GATEWAY,
            UpstreamError::ResponseTimeout => StatusCode::GATEWAY_TIMEOUT,
            UpstreamError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            UpstreamError::ClientBody(_) | UpstreamError::BadRequest(_) => StatusCode::BAD_REQUEST,
            UpstreamError::EnvironTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        }
    }

    /// Short label for the `fedgate_upstream_errors_total` metric.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Connect(_) => "connect",
            UpstreamError::ConnectTimeout => "connect_timeout",
            UpstreamError::ResponseTimeout => "response_timeout",
            UpstreamError::BadResponse(_) => "bad_response",
            UpstreamError::Io(_) => "io",
            UpstreamError::BodyTooLarge(_) => "body_too_large",
            UpstreamError::ClientBody(_) => "client_body",
            UpstreamError::EnvironTooLarge(_) => "environ_too_large",
            UpstreamError::BadRequest(_) => "bad_request",
        }
    }

    /// Whether Keystone (rather than the client) is at fault.
    pub fn is_upstream_fault(&self) -> bool {
        self.status().is_server_error()
    }
}

/// A request ready to leave: scrubbed headers, forwarding headers set,
/// identity verified.
pub struct Outbound<'a> {
    pub parts: ::http::request::Parts,
    pub body: Body,
    pub conn: &'a ConnInfo,
    pub identity: Option<&'a Identity>,
}

/// The configured Keystone connection.
pub enum Upstream {
    Uwsgi(uwsgi::UwsgiUpstream),
    Http(Box<http::HttpUpstream>),
}

impl Upstream {
    pub fn new(cfg: &UpstreamConfig, max_body: u64) -> Result<Upstream, TargetError> {
        Ok(match Target::parse(cfg.url.get_ref())? {
            t @ Target::Uwsgi { .. } => {
                Upstream::Uwsgi(uwsgi::UwsgiUpstream::new(t, cfg, max_body))
            }
            t @ Target::Http { .. } => {
                Upstream::Http(Box::new(http::HttpUpstream::new(t, cfg, max_body)))
            }
        })
    }

    pub fn target(&self) -> &Target {
        match self {
            Upstream::Uwsgi(u) => &u.target,
            Upstream::Http(h) => &h.target,
        }
    }

    pub fn connect_timeout(&self) -> Duration {
        match self {
            Upstream::Uwsgi(u) => u.connect_timeout,
            Upstream::Http(h) => h.connect_timeout,
        }
    }

    pub async fn send(&self, req: Outbound<'_>) -> Result<::http::Response<Body>, UpstreamError> {
        match self {
            Upstream::Uwsgi(u) => u.send(req).await,
            Upstream::Http(h) => h.send(req).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            Target::parse("uwsgi://127.0.0.1:5001").unwrap(),
            Target::Uwsgi {
                host: "127.0.0.1".into(),
                port: 5001
            }
        );
        assert_eq!(
            Target::parse("http://keystone:5000/").unwrap(),
            Target::Http {
                host: "keystone".into(),
                port: 5000
            }
        );
        assert_eq!(
            Target::parse("http://[::1]:5000").unwrap().authority(),
            "[::1]:5000"
        );
        assert!(matches!(
            Target::parse("uwsgi://127.0.0.1"),
            Err(TargetError::HostPort(_))
        ));
        assert!(matches!(
            Target::parse("https://k:5000"),
            Err(TargetError::Scheme(_))
        ));
        assert!(matches!(
            Target::parse("http://k:5000/v3"),
            Err(TargetError::Extra(_))
        ));
        assert!(matches!(
            Target::parse("keystone:5000"),
            Err(TargetError::Scheme(_)) | Err(TargetError::NotUrl(..))
        ));
    }
}
