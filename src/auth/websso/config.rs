//! `[oidc]` (the browser flow) and `[route.oidc]`.

use serde::Deserialize;

use crate::problem::{Problem, Problems, Source};
use crate::secret::Secret;

fn redirect_path() -> String {
    "/v3/auth/OS-FEDERATION/websso/openid/redirect".into()
}
fn logout_path() -> String {
    "/v3/auth/OS-FEDERATION/websso/logout".into()
}
fn scopes() -> String {
    "openid profile email eduperson_entitlement".into()
}
fn state_timeout() -> u64 {
    300
}
fn max_pending() -> usize {
    3
}
fn iat_slack() -> u64 {
    600
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// Path of fedgate's redirect URI (register `https://<host><path>` at
    /// each IdP). The default is mod_auth_openidc's usual Keystone choice.
    #[serde(default = "redirect_path")]
    pub redirect_path: String,
    /// Full redirect URI, when it cannot be derived from the Host header.
    #[serde(default)]
    pub redirect_uri: Option<String>,
    /// Ends the session (and, where the IdP offers it, the IdP session).
    #[serde(default = "logout_path")]
    pub logout_path: String,
    /// Where a signed-out user goes (and the IdP's
    /// `post_logout_redirect_uri`). Default: the root of the dashboard the
    /// logout came from (its trusted dashboard URL without `auth/websso/`).
    #[serde(default)]
    pub post_logout_url: Option<String>,
    /// Dashboards Keystone may post tokens to; same strings as Keystone's
    /// `[federation] trusted_dashboard`.
    #[serde(default)]
    pub trusted_dashboards: Vec<String>,
    #[serde(default = "scopes")]
    pub scopes: String,
    /// Seconds a login may take at the IdP.
    #[serde(default = "state_timeout")]
    pub state_timeout_secs: u64,
    /// Logins in progress remembered per browser (oldest dropped).
    #[serde(default = "max_pending")]
    pub max_pending_logins: usize,
    /// Tolerance for the ID token's `iat`, in seconds.
    #[serde(default = "iat_slack")]
    pub iat_slack_secs: u64,
    #[serde(default)]
    pub session: SessionConfig,
}

impl Default for OidcConfig {
    fn default() -> Self {
        toml::from_str("").expect("defaults")
    }
}

fn cookie_name() -> String {
    "fedgate_session".into()
}
fn inactivity() -> u64 {
    300
}
fn max_duration() -> u64 {
    8 * 3600
}
fn max_sessions() -> u64 {
    100_000
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionConfig {
    #[serde(default = "cookie_name")]
    pub cookie_name: String,
    /// Base64 32-byte keys; the first seals, all open (rotation). Without
    /// keys a random one is made at start: sessions then end on restart
    /// and are not shared between nodes.
    #[serde(default)]
    pub keys: Vec<Secret>,
    #[serde(default = "inactivity")]
    pub inactivity_timeout_secs: u64,
    #[serde(default = "max_duration")]
    pub max_duration_secs: u64,
    /// Sessions kept in memory at most (memory store).
    #[serde(default = "max_sessions")]
    pub max_sessions: u64,
    /// Deprecated shorthand for `[state] backend = "redis"` + `url`.
    #[serde(default)]
    pub redis_url: Option<toml::Spanned<Secret>>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        toml::from_str("").expect("defaults")
    }
}

/// `[route.oidc]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteOidc {
    /// Names of the `[[idp]]`s users may choose here; empty allows all.
    #[serde(default)]
    pub idps: Vec<String>,
}

impl OidcConfig {
    pub fn validate(&self, src: &Source, p: &mut Problems) {
        for (what, path) in [
            ("redirect_path", &self.redirect_path),
            ("logout_path", &self.logout_path),
        ] {
            if !path.starts_with('/') {
                p.push(Problem::file(
                    &src.path,
                    format!("oidc.{what} must be an absolute path starting with /"),
                ));
            }
        }
        for d in &self.trusted_dashboards {
            if url::Url::parse(d)
                .map(|u| u.scheme() != "https" && u.scheme() != "http")
                .unwrap_or(true)
            {
                p.push(Problem::file(
                    &src.path,
                    format!("oidc.trusted_dashboards: `{d}` is not an http(s) URL"),
                ));
            }
        }
        if let Some(u) = &self.post_logout_url
            && url::Url::parse(u)
                .map(|u| u.scheme() != "https" && u.scheme() != "http")
                .unwrap_or(true)
        {
            p.push(Problem::file(
                &src.path,
                format!("oidc.post_logout_url: `{u}` is not an http(s) URL"),
            ));
        }
        if let Some(u) = &self.redirect_uri {
            if !u.starts_with("https://") {
                p.push(Problem::file(
                    &src.path,
                    "oidc.redirect_uri must be an https:// URL",
                ));
            }
        }
        if crate::session::KeyRing::from_base64(self.session.keys.iter().map(|k| k.expose()))
            .is_err()
        {
            p.push(Problem::file(&src.path, "oidc.session.keys: each key must be 32 random bytes in base64 (openssl rand -base64 32)"));
        }
    }
}
