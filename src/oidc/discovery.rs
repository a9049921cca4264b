//! OpenID Provider discovery (`/.well-known/openid-configuration`), fetched
//! on first use and refreshed in the background once older than the
//! refresh interval. A refresh that fails keeps the last good document:
//! an IdP hiccup must not take endpoints away from tokens already trusted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use serde::{Deserialize, Serialize};

use crate::http::client::HttpClient;

/// The discovery fields fedgate uses; the rest is kept for the browser flow.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct ProviderMetadata {
    pub issuer: String,
    #[serde(default)]
    pub jwks_uri: Option<String>,
    #[serde(default)]
    pub introspection_endpoint: Option<String>,
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
    #[serde(default)]
    pub token_endpoint: Option<String>,
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum DiscoveryError {
    #[error("discovery at {0} failed: {1}")]
    Fetch(String, String),
    #[error("discovery at {0} answered HTTP {1}")]
    Status(String, u16),
    #[error("discovery document at {0} is not valid: {1}")]
    Parse(String, String),
    #[error("discovery document names issuer {found}, expected {expected}")]
    IssuerMismatch { expected: String, found: String },
    #[error("the IdP publishes no {0}")]
    Missing(&'static str),
}

struct Fetched {
    doc: Arc<ProviderMetadata>,
    at: Instant,
}

/// One IdP's discovery document.
pub struct Discovery {
    issuer: String,
    url: String,
    http: HttpClient,
    refresh: Duration,
    /// Documents from a metadata directory are used as is, like
    /// mod_auth_openidc does by default.
    fixed: bool,
    current: ArcSwapOption<Fetched>,
    fetching: tokio::sync::Mutex<()>,
    refreshing: std::sync::atomic::AtomicBool,
}

/// `<issuer>/.well-known/openid-configuration`, appended to a path issuer.
pub fn well_known(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

impl Discovery {
    pub fn new(
        issuer: &str,
        url: Option<String>,
        fixed: Option<ProviderMetadata>,
        http: HttpClient,
        refresh: Duration,
    ) -> Discovery {
        let is_fixed = fixed.is_some();
        Discovery {
            issuer: issuer.to_string(),
            url: url.unwrap_or_else(|| well_known(issuer)),
            http,
            refresh,
            fixed: is_fixed,
            current: ArcSwapOption::new(fixed.map(|d| {
                Arc::new(Fetched {
                    doc: Arc::new(d),
                    at: Instant::now(),
                })
            })),
            fetching: tokio::sync::Mutex::new(()),
            refreshing: false.into(),
        }
    }

    /// The document, fetching it on first use. A stale document is
    /// returned at once while a background task refreshes it.
    pub async fn get(self: &Arc<Self>) -> Result<Arc<ProviderMetadata>, DiscoveryError> {
        if let Some(f) = self.current.load_full() {
            if !self.fixed
                && f.at.elapsed() >= self.refresh
                && !self
                    .refreshing
                    .swap(true, std::sync::atomic::Ordering::AcqRel)
                && let Ok(h) = tokio::runtime::Handle::try_current()
            {
                let me = self.clone();
                h.spawn(async move {
                    if let Err(e) = me.fetch().await {
                        tracing::warn!(issuer = %me.issuer, error = %e, "discovery refresh failed; keeping the last good document");
                    }
                    me.refreshing.store(false, std::sync::atomic::Ordering::Release);
                });
            }
            return Ok(f.doc.clone());
        }
        let _g = self.fetching.lock().await;
        if let Some(f) = self.current.load_full() {
            return Ok(f.doc.clone());
        }
        self.fetch().await
    }

    /// Fetches and installs a new document.
    pub async fn fetch(&self) -> Result<Arc<ProviderMetadata>, DiscoveryError> {
        let a = self
            .http
            .get(&self.url, None)
            .await
            .map_err(|e| DiscoveryError::Fetch(self.url.clone(), e.to_string()))?;
        if !a.status.is_success() {
            return Err(DiscoveryError::Status(self.url.clone(), a.status.as_u16()));
        }
        let doc = parse(&a.body, &self.issuer).map_err(|e| match e {
            DiscoveryError::Parse(_, m) => DiscoveryError::Parse(self.url.clone(), m),
            other => other,
        })?;
        let doc = Arc::new(doc);
        self.current.store(Some(Arc::new(Fetched {
            doc: doc.clone(),
            at: Instant::now(),
        })));
        tracing::debug!(issuer = %self.issuer, "discovery document loaded");
        Ok(doc)
    }
}

/// Parses a discovery document and checks it belongs to `issuer`
/// (OpenID Connect Discovery §4.3: exact match).
pub fn parse(body: &[u8], issuer: &str) -> Result<ProviderMetadata, DiscoveryError> {
    let doc: ProviderMetadata = serde_json::from_slice(body)
        .map_err(|e| DiscoveryError::Parse(String::new(), e.to_string()))?;
    if doc.issuer != issuer {
        return Err(DiscoveryError::IssuerMismatch {
            expected: issuer.into(),
            found: doc.issuer,
        });
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_appends_to_path_issuers() {
        assert_eq!(
            well_known("https://a.b/realms/egi"),
            "https://a.b/realms/egi/.well-known/openid-configuration"
        );
        assert_eq!(
            well_known("https://a.b/"),
            "https://a.b/.well-known/openid-configuration"
        );
    }

    #[test]
    fn issuer_must_match_exactly() {
        let d = br#"{"issuer":"https://a.b/","jwks_uri":"https://a.b/jwks"}"#;
        assert!(parse(d, "https://a.b/").is_ok());
        assert!(matches!(
            parse(d, "https://a.b"),
            Err(DiscoveryError::IssuerMismatch { .. })
        ));
        assert!(parse(b"[]", "https://a.b").is_err());
    }
}
