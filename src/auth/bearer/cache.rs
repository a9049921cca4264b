//! The validation cache: per-token results in moka, with per-entry TTL =
//! min(exp − now, cap), a short negative cache, single-flight filling
//! (`try_get_with`: N concurrent requests with a new token cause one
//! validation), and an optional shared layer (`[state]`) for several nodes.
//!
//! Keys are SHA-256 hashes of the token (plus the IdP list it was tried
//! against, for opaque tokens); a token itself is never stored or logged.

use std::sync::Arc;
use std::time::Duration;

use moka::Expiry;
use moka::future::Cache;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use toml::Spanned;

use super::shared::SharedCache;
use crate::identity::Identity;
use crate::oidc::TokenError;
use crate::secret::Secret;

pub type Key = [u8; 32];

/// SHA-256 over the parts, each followed by a NUL.
pub fn key(parts: &[&[u8]]) -> Key {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for p in parts {
        ctx.update(p);
        ctx.update(&[0]);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

fn default_max_ttl() -> u64 {
    300
}
fn default_negative_ttl() -> u64 {
    10
}
fn default_max_entries() -> u64 {
    100_000
}

/// `[cache]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Longest time a validated token is trusted without asking again.
    #[serde(default = "default_max_ttl")]
    pub max_ttl_secs: u64,
    /// How long a refused token stays refused without asking again.
    #[serde(default = "default_negative_ttl")]
    pub negative_ttl_secs: u64,
    #[serde(default = "default_max_entries")]
    pub max_entries: u64,
    /// Deprecated shorthand for `[state] backend = "redis"` + `url`.
    #[serde(default)]
    pub redis_url: Option<Spanned<Secret>>,
    /// Deprecated: `[state] prefix`.
    #[serde(default)]
    pub redis_prefix: Option<Spanned<String>>,
    /// Deprecated: `[state] timeout_ms`.
    #[serde(default)]
    pub redis_timeout_ms: Option<Spanned<u64>>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        toml::from_str("").unwrap_or_else(|_| unreachable!("all fields have defaults"))
    }
}

/// A validation result, as stored in the shared layer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Validated {
    /// Name of the IdP that vouched for the token.
    pub idp: String,
    /// Token expiry (seconds since the epoch), when known.
    pub exp: Option<u64>,
    pub claims: Map<String, Value>,
}

impl Validated {
    pub fn new(idp: &str, claims: Map<String, Value>) -> Validated {
        let exp = claims
            .get("exp")
            .and_then(|v| v.as_u64().or_else(|| v.as_f64().map(|f| f as u64)));
        Validated {
            idp: idp.to_string(),
            exp,
            claims,
        }
    }

    /// Remaining trust: min(exp − now, cap), zero once expired.
    pub fn ttl(&self, now: u64, cap: Duration) -> Duration {
        match self.exp {
            Some(e) => Duration::from_secs(e.saturating_sub(now)).min(cap),
            None => cap,
        }
    }
}

/// A cached result with the identity built from it.
#[derive(Debug)]
pub struct Entry {
    pub validated: Validated,
    pub identity: Arc<Identity>,
}

struct TtlPolicy {
    cap: Duration,
}

impl Expiry<Key, Arc<Entry>> for TtlPolicy {
    fn expire_after_create(
        &self,
        _k: &Key,
        v: &Arc<Entry>,
        _at: std::time::Instant,
    ) -> Option<Duration> {
        Some(v.validated.ttl(now(), self.cap))
    }
}

pub fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// The two in-process caches and the optional shared one.
pub struct TokenCache {
    positive: Cache<Key, Arc<Entry>>,
    negative: Cache<Key, TokenError>,
    shared: Option<SharedCache>,
    cap: Duration,
}

impl TokenCache {
    /// The caches of `[cache]`; `state` adds the shared layer when it
    /// leaves the host (a memory store would only duplicate `positive`).
    pub fn new(cfg: &CacheConfig, state: Option<&crate::kv::Store>) -> TokenCache {
        let cap = Duration::from_secs(cfg.max_ttl_secs);
        let shared = state
            .filter(|s| s.is_shared())
            .map(|s| SharedCache::new(s.clone()));
        TokenCache {
            positive: Cache::builder()
                .max_capacity(cfg.max_entries)
                .expire_after(TtlPolicy { cap })
                .build(),
            negative: Cache::builder()
                .max_capacity(cfg.max_entries)
                .time_to_live(Duration::from_secs(cfg.negative_ttl_secs.max(1)))
                .build(),
            shared,
            cap,
        }
    }

    /// The cached result for `key`, or the result of `validate` (run once
    /// for all concurrent callers with the same key; checked first in the
    /// shared cache) turned into an entry by `build`.
    /// The entry of a token validated already, if this node holds it: the
    /// hot path, with nothing parsed or validated.
    pub async fn cached(&self, key: &Key) -> Option<Arc<Entry>> {
        self.positive.get(key).await
    }

    pub async fn get_or_validate<V, B>(
        &self,
        key: Key,
        validate: V,
        build: B,
    ) -> Result<Arc<Entry>, TokenError>
    where
        V: Future<Output = Result<Validated, TokenError>>,
        B: Fn(Validated) -> Result<Entry, TokenError>,
    {
        if let Some(e) = self.negative.get(&key).await {
            return Err(e);
        }
        let fill = async {
            if let Some(s) = &self.shared
                && let Some(v) = self.shared_get(s, &key).await
                && v.exp.is_none_or(|e| e > now())
            {
                return build(v).map(Arc::new);
            }
            let v = validate.await?;
            if let Some(s) = &self.shared {
                let ttl = v.ttl(now(), self.cap);
                if let (false, Ok(body)) = (ttl.is_zero(), serde_json::to_vec(&v)) {
                    s.put(&key, &body, ttl).await;
                }
            }
            build(v).map(Arc::new)
        };
        match self.positive.try_get_with(key, fill).await {
            Ok(e) => Ok(e),
            Err(e) => {
                let e = (*e).clone();
                // One line per validation, not per cached refusal; the
                // label lets an operator follow one token across lines.
                tracing::debug!(token = %label(&key), error = %e, "token refused");
                if e.cacheable() {
                    self.negative.insert(key, e.clone()).await;
                }
                Err(e)
            }
        }
    }

    async fn shared_get(&self, s: &SharedCache, key: &Key) -> Option<Validated> {
        let bytes = s.get(key).await?;
        match serde_json::from_slice(&bytes) {
            Ok(v) => Some(v),
            Err(_) => {
                s.corrupt();
                None
            }
        }
    }

    /// A cached positive result, without validating (the ESACO endpoint
    /// and tests use it).
    pub async fn peek(&self, key: &Key) -> Option<Arc<Entry>> {
        self.positive.get(key).await
    }

    pub fn cap(&self) -> Duration {
        self.cap
    }

    pub fn has_shared(&self) -> bool {
        self.shared.is_some()
    }
}

/// For logs only: a short, non-reversible token label.
pub fn label(k: &Key) -> String {
    hex::encode(&k[..6])
}

#[cfg(test)]
mod tests;
