//! The upstream phase: hand a request and its identity to Keystone.
//!
//! Two encoders share one entry point. [`uwsgi`] speaks the uwsgi protocol
//! to Keystone under uWSGI and sets the WSGI environ exactly as Apache's
//! mod_proxy_uwsgi would, so federation mappings written for mod_wsgi work
//! unchanged. [`http`] forwards plain HTTP/1.1 to any other server and
//! passes the identity as headers.

mod config;
pub mod environ;
pub mod http;
mod outbound;
mod pool;
mod target;
pub mod uwsgi;

pub use config::UpstreamConfig;
pub use outbound::{Outbound, UpstreamError};
pub use target::{Target, TargetError};

use std::time::Duration;

use crate::http::body::Body;

/// The configured Keystone connection.
pub enum Upstream {
    Uwsgi(uwsgi::UwsgiUpstream),
    Http(Box<http::HttpUpstream>),
}

impl Upstream {
    pub fn new(cfg: &UpstreamConfig, max_body: u64) -> Result<Upstream, TargetError> {
        Ok(match Target::parse(cfg.url.get_ref())? {
            t @ (Target::Uwsgi { .. } | Target::UwsgiUnix { .. }) => {
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
        assert_eq!(
            Target::parse("uwsgi:///run/keystone/uwsgi.sock").unwrap(),
            Target::UwsgiUnix {
                path: "/run/keystone/uwsgi.sock".into()
            }
        );
        assert_eq!(
            Target::parse("uwsgi:///run/key%20stone.sock")
                .unwrap()
                .authority(),
            "unix:/run/key stone.sock"
        );
        for bad in [
            "uwsgi:///",
            "uwsgi://:5001/run/k.sock",
            "uwsgi:///run/k.sock?x=1",
            "uwsgi:///run/k.sock#f",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            Target::parse("uwsgi://host:5001/run/k.sock"),
            Err(TargetError::Extra(_))
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
