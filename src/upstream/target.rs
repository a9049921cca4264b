//! Where Keystone listens, and how to reach it.

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use thiserror::Error;

use super::outbound::UpstreamError;

/// Where Keystone listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Uwsgi {
        host: String,
        port: u16,
    },
    /// `uwsgi:///run/keystone/uwsgi.sock`: uWSGI's socket on this host, as
    /// it is often deployed beside its front end. No TCP handshake per
    /// request (the protocol has no keep-alive), and the socket file's
    /// permissions say who may speak to Keystone.
    UwsgiUnix {
        path: PathBuf,
    },
    Http {
        host: String,
        port: u16,
    },
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
    #[error(
        "upstream.url `{0}`: a unix socket is written uwsgi:///absolute/path.sock (no host, no port)"
    )]
    UnixSocket(String),
}

impl Target {
    pub fn parse(s: &str) -> Result<Target, TargetError> {
        let u = url::Url::parse(s).map_err(|e| TargetError::NotUrl(s.into(), e.to_string()))?;
        if u.scheme() != "uwsgi" && u.scheme() != "http" {
            return Err(TargetError::Scheme(u.scheme().into()));
        }
        if u.query().is_some() || !u.username().is_empty() || u.password().is_some() {
            return Err(TargetError::Extra(s.into()));
        }
        // `uwsgi:///path`: no host, and the path is the socket.
        if u.scheme() == "uwsgi" && u.host_str().is_none_or(str::is_empty) {
            let path = u.path();
            if u.port().is_some() || path.len() < 2 || u.fragment().is_some() {
                return Err(TargetError::UnixSocket(s.into()));
            }
            let path = percent_encoding::percent_decode_str(path)
                .decode_utf8()
                .map_err(|_| TargetError::UnixSocket(s.into()))?;
            return Ok(Target::UwsgiUnix {
                path: PathBuf::from(path.as_ref()),
            });
        }
        let host = u
            .host_str()
            .ok_or_else(|| TargetError::HostPort(s.into()))?
            .to_string();
        if u.path() != "/" && !u.path().is_empty() {
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

    /// Where Keystone is, for logs and connecting: `host:port`, or
    /// `unix:/path` for a socket.
    pub fn authority(&self) -> String {
        match self {
            Target::Uwsgi { host, port } | Target::Http { host, port } => {
                format!("{host}:{port}")
            }
            Target::UwsgiUnix { path } => format!("unix:{}", path.display()),
        }
    }

    /// Resolves and connects once, for readiness and `check-config`; the
    /// address reached.
    pub async fn probe(&self, timeout: Duration) -> Result<String, UpstreamError> {
        match self {
            Target::UwsgiUnix { path } => {
                connect_unix(path, timeout).await?;
                Ok(format!("unix:{}", path.display()))
            }
            _ => {
                let stream = connect(&self.authority(), timeout).await?;
                stream
                    .peer_addr()
                    .map(|a| a.to_string())
                    .map_err(UpstreamError::Connect)
            }
        }
    }
}

/// A connection to uWSGI, over TCP or a unix socket.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for S {}

pub(crate) async fn connect_unix(
    path: &std::path::Path,
    timeout: Duration,
) -> Result<tokio::net::UnixStream, UpstreamError> {
    match tokio::time::timeout(timeout, tokio::net::UnixStream::connect(path)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(UpstreamError::Connect(e)),
        Err(_) => Err(UpstreamError::ConnectTimeout),
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
