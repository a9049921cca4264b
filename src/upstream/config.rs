//! `[upstream]`: where Keystone is and how identity reaches it.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// `uwsgi://host:port` or `uwsgi:///path/to/uwsgi.sock` (Keystone under
    /// uWSGI, exact mod_wsgi environ), or `http://host:port` (any server;
    /// identity as headers).
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
    /// Names of the request cookies passed to Keystone; every other
    /// cookie is dropped. Keystone uses none, so the default is none.
    #[serde(default)]
    pub forward_cookies: Vec<String>,
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
