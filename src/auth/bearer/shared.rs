//! The optional Redis layer of the token cache, for sites with several
//! fedgate nodes: a token validated on one node is accepted on the others
//! without asking the IdP again.
//!
//! Keys are `<prefix><hex sha256>`, values the validated claims as JSON
//! with the same TTL as in memory. Redis is an optimisation: any Redis
//! error or slow answer is logged (at most every 30 s) and the request
//! goes on as if the entry were absent. Redis must be trusted like the
//! IdP itself, since its values become identities.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::kv::{KvError, Redis};

/// The Redis layer: opaque values under hashed keys. The cache above it
/// decides what the values are and how long they live.
pub struct SharedCache {
    redis: Redis,
    prefix: String,
    last_warning: Mutex<Option<Instant>>,
}

impl SharedCache {
    pub fn new(url: &str, prefix: &str, timeout: Duration) -> Result<SharedCache, KvError> {
        Ok(SharedCache {
            redis: Redis::new(url, timeout)?,
            prefix: prefix.to_string(),
            last_warning: Mutex::new(None),
        })
    }

    fn name(&self, k: &[u8; 32]) -> String {
        format!("{}{}", self.prefix, hex::encode(k))
    }

    fn warn(&self, e: &str) {
        let mut last = self.last_warning.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() > Duration::from_secs(30)) {
            *last = Some(Instant::now());
            tracing::warn!(error = %e, "shared token cache (Redis) unavailable; validating locally");
        }
    }

    /// The value stored under `k`, or `None` if absent or unreachable.
    pub async fn get(&self, k: &[u8; 32]) -> Option<Vec<u8>> {
        match self.redis.get(&self.name(k)).await {
            Ok(v) => v,
            Err(e) => {
                self.warn(&e.to_string());
                None
            }
        }
    }

    /// Stores `value` under `k` for `ttl`; failures are only logged.
    pub async fn put(&self, k: &[u8; 32], value: &[u8], ttl: Duration) {
        if let Err(e) = self.redis.set_ex(&self.name(k), value, ttl).await {
            self.warn(&e.to_string());
        }
    }

    /// For a value that the layer above could not read.
    pub fn corrupt(&self) {
        self.warn("an entry is not valid JSON");
    }
}
