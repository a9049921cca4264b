//! The shared layer of the token cache, for sites with several fedgate
//! nodes: a token validated on one node is accepted on the others without
//! asking the IdP again.
//!
//! Keys are `<prefix>token:<hex sha256>`, values the validated claims as
//! JSON, sealed by the [`Store`] with the key as associated data, so that
//! whoever can write to memcached or Redis cannot make up an identity or
//! move one to another token. The layer is an optimisation: any error or
//! slow answer (bounded by `[state] timeout_ms`) is counted in
//! `fedgate_shared_state_errors_total`, logged at most every 30 s, and the
//! request goes on with the node's memory cache and the IdP.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::kv::Store;

/// Opaque values under hashed keys. The cache above it decides what the
/// values are and how long they live.
pub struct SharedCache {
    store: Store,
    last_warning: Mutex<Option<Instant>>,
}

impl SharedCache {
    pub fn new(store: Store) -> SharedCache {
        SharedCache {
            store,
            last_warning: Mutex::new(None),
        }
    }

    fn name(&self, k: &[u8; 32]) -> String {
        self.store.key("token", &hex::encode(k))
    }

    fn warn(&self, e: &str) {
        let mut last = self.last_warning.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() > Duration::from_secs(30)) {
            *last = Some(Instant::now());
            tracing::warn!(backend = self.store.backend_name(), error = %e, "shared token cache unavailable; validating at the IdP");
        }
    }

    /// The value stored under `k`, or `None` if absent, unreachable or
    /// not sealed by us.
    pub async fn get(&self, k: &[u8; 32]) -> Option<Vec<u8>> {
        match self.store.get(&self.name(k)).await {
            Ok(v) => v,
            Err(e) => {
                self.warn(&e.to_string());
                None
            }
        }
    }

    /// Stores `value` under `k` for `ttl`; failures are only logged.
    pub async fn put(&self, k: &[u8; 32], value: &[u8], ttl: Duration) {
        if let Err(e) = self.store.set(&self.name(k), value, ttl).await {
            self.warn(&e.to_string());
        }
    }

    /// For a value that opened but that the layer above could not read.
    pub fn corrupt(&self) {
        self.warn("an entry is not valid JSON");
    }
}
