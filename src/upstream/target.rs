//! Where Keystone listens, and how to reach it.

use std::net::SocketAddr;
use std::time::Duration;

use thiserror::Error;

use super::outbound::UpstreamError;

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
