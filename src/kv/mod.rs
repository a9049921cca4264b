//! Shared state: the bearer-token cache, the browser sessions and the used
//! login states, which several fedgate nodes behind one load balancer must
//! agree on.
//!
//! One small trait, [`Backend`] (get, set with a TTL, add-if-absent,
//! delete), has three implementations: [`memory`] (one node, moka),
//! [`memcached`] (several servers, consistent hashing) and [`redis`]
//! (standalone or Sentinel, AUTH/ACL, TLS). Callers never see a backend:
//! they use a [`Store`], which prefixes every key, seals every value that
//! leaves the host (XChaCha20-Poly1305 with the full storage key as
//! associated data: see [`seal`]), bounds every call by one deadline, and
//! records the errors and the up/down state for the metrics.
//!
//! Connecting is lazy everywhere, so a node starts (and a reload
//! succeeds) while the store is down; callers decide what an error means
//! to them (the token cache validates at the IdP, a session lookup fails
//! closed with 503).

pub mod memcached;
pub mod memory;
pub mod redis;
pub mod seal;
mod stats;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub use seal::KeyRing;
pub use stats::{Snapshot, snapshot};

#[cfg(test)]
pub mod testing;
#[cfg(test)]
mod tests;

/// A boxed future, so that [`Backend`] stays object-safe without a macro
/// crate: one allocation per call is nothing next to a network round trip.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a shared-state call failed. Never carries a value, a key's secret
/// part or a password.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KvError {
    #[error("{backend} settings are not usable: {reason}")]
    Config {
        backend: &'static str,
        reason: String,
    },
    #[error("{backend}: {reason}")]
    Backend {
        backend: &'static str,
        reason: String,
    },
    #[error("{backend} did not answer within {timeout:?}")]
    Timeout {
        backend: &'static str,
        timeout: Duration,
    },
    #[error("cannot seal a value for the shared store: {0}")]
    Seal(#[from] seal::SealError),
}

/// The operations a shared-state backend offers. Values are opaque bytes;
/// keys are ASCII without spaces (memcached's rule), at most 250 bytes.
pub trait Backend: Send + Sync {
    /// `memory`, `memcached` or `redis`: the metrics' `backend` label.
    fn name(&self) -> &'static str;
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, KvError>>;
    /// Stores `value` for `ttl` (at least one second), replacing any value.
    fn set<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), KvError>>;
    /// Stores `value` only if `key` holds nothing: `true` if stored. The
    /// one atomic operation the nodes need (a login state is used once).
    fn add<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, KvError>>;
    /// Removes `key`; absent is fine.
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), KvError>>;
    /// Connects and asks the server(s) something harmless, for
    /// `check-config`: what answered, or why nothing did.
    fn probe(&self) -> BoxFuture<'_, Result<String, KvError>>;
}

/// Which backend and how to reach it: `[state]` after the configuration
/// resolved defaults and the legacy keys. The password is redacted in
/// Debug.
#[derive(Clone, PartialEq, Eq)]
pub struct Settings {
    pub backend: BackendKind,
    pub servers: Vec<String>,
    pub url: Option<String>,
    pub sentinels: Vec<String>,
    pub master_name: Option<String>,
    pub db: Option<i64>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub tls: bool,
    /// PEM of the CA that signed the Redis certificate (read by the
    /// configuration, so a missing file is a configuration error).
    pub tls_ca_pem: Option<Vec<u8>>,
    pub timeout: Duration,
    pub prefix: String,
    /// Memory backend only: most entries kept.
    pub max_entries: u64,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("backend", &self.backend)
            .field("servers", &self.servers)
            .field("url", &self.url.as_deref().map(redact_url))
            .field("sentinels", &self.sentinels)
            .field("master_name", &self.master_name)
            .field("db", &self.db)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .field("tls_ca_pem", &self.tls_ca_pem.as_ref().map(|p| p.len()))
            .field("timeout", &self.timeout)
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// `redis://user:secret@host/0` → `redis://user:<redacted>@host/0`, for
/// logs and Debug.
pub fn redact_url(u: &str) -> String {
    match url::Url::parse(u) {
        Ok(mut p) if p.password().is_some() => {
            let _ = p.set_password(Some("<redacted>"));
            p.to_string()
        }
        Ok(p) => p.to_string(),
        Err(_) => "<unparsable URL>".into(),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Memory,
    Memcached,
    Redis,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Memory => "memory",
            BackendKind::Memcached => "memcached",
            BackendKind::Redis => "redis",
        }
    }
}

/// Builds the backend `s` names. Nothing is connected yet.
pub fn backend(s: &Settings) -> Result<Arc<dyn Backend>, KvError> {
    Ok(match s.backend {
        BackendKind::Memory => Arc::new(memory::Memory::new(s.max_entries)),
        BackendKind::Memcached => Arc::new(memcached::Memcached::new(&s.servers, s.timeout)?),
        BackendKind::Redis => Arc::new(redis::Redis::new(s)?),
    })
}

/// The store every subsystem uses: key prefix, sealing, one deadline per
/// call, metrics. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
    prefix: String,
    /// `None` for the memory backend: its values never leave the process.
    keys: Option<KeyRing>,
    timeout: Duration,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend.name())
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl Store {
    /// A store over `backend`. `keys` must be given for every backend but
    /// memory: a value another host holds must not be readable or forgeable
    /// by whoever can write to that host.
    pub fn new(
        backend: Arc<dyn Backend>,
        prefix: &str,
        keys: Option<KeyRing>,
        timeout: Duration,
    ) -> Result<Store, KvError> {
        let name = backend.name();
        if name != "memory" && keys.is_none() {
            return Err(KvError::Config {
                backend: name,
                reason: "sealing keys are required when the state leaves the host".into(),
            });
        }
        stats::register(name);
        Ok(Store {
            backend,
            prefix: prefix.to_string(),
            keys: if name == "memory" { None } else { keys },
            timeout,
        })
    }

    /// From configuration: the backend and the store in one step.
    pub fn from_settings(s: &Settings, keys: Option<KeyRing>) -> Result<Store, KvError> {
        Store::new(backend(s)?, &s.prefix, keys, s.timeout)
    }

    /// A memory store, for one node (and for tests).
    pub fn memory(max_entries: u64) -> Store {
        Store {
            backend: Arc::new(memory::Memory::new(max_entries)),
            prefix: String::new(),
            keys: None,
            timeout: Duration::from_secs(1),
        }
    }

    /// Whether both are the same running store (not merely equal settings).
    pub fn same(&self, other: &Store) -> bool {
        Arc::ptr_eq(&self.backend, &other.backend)
    }

    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// Whether several nodes can see what this store holds.
    pub fn is_shared(&self) -> bool {
        self.backend.name() != "memory"
    }

    /// The full storage key of `id` in namespace `ns` (`token`, `session`,
    /// `login`): `<prefix><ns>:<id>`.
    pub fn key(&self, ns: &str, id: &str) -> String {
        format!("{}{ns}:{id}", self.prefix)
    }

    /// One backend call under the deadline, recorded for the metrics.
    async fn call<T>(
        &self,
        op: &'static str,
        f: BoxFuture<'_, Result<T, KvError>>,
    ) -> Result<T, KvError> {
        let name = self.backend.name();
        // The backends bound connect + command themselves; this is the
        // backstop for one that does not.
        let r = match tokio::time::timeout(self.timeout + Duration::from_millis(50), f).await {
            Ok(r) => r,
            Err(_) => Err(KvError::Timeout {
                backend: name,
                timeout: self.timeout,
            }),
        };
        stats::record(name, op, r.is_ok());
        r
    }

    /// The value under `key`. A value that does not open (forged, copied
    /// from another key, sealed with keys this node does not have) is
    /// treated as absent, and logged: it must never become a session or a
    /// token's identity.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let Some(v) = self.call("get", self.backend.get(key)).await? else {
            return Ok(None);
        };
        let Some(keys) = &self.keys else {
            return Ok(Some(v));
        };
        match std::str::from_utf8(&v)
            .map_err(|_| seal::SealError::Encoding)
            .and_then(|s| keys.open(key, s))
        {
            Ok(plain) => Ok(Some(plain)),
            Err(e) => {
                stats::record(self.backend.name(), "open", false);
                tracing::warn!(backend = self.backend.name(), reason = %e, "a shared-state value did not open (forged, moved from another key, or sealed with other keys); ignored");
                Ok(None)
            }
        }
    }

    fn sealed(&self, key: &str, value: &[u8]) -> Result<Vec<u8>, KvError> {
        match &self.keys {
            Some(k) => Ok(k.seal(key, value)?.into_bytes()),
            None => Ok(value.to_vec()),
        }
    }

    pub async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), KvError> {
        let v = self.sealed(key, value)?;
        self.call("set", self.backend.set(key, &v, ttl)).await
    }

    /// Stores only if absent; `true` if this call stored it.
    pub async fn add(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, KvError> {
        let v = self.sealed(key, value)?;
        self.call("add", self.backend.add(key, &v, ttl)).await
    }

    pub async fn delete(&self, key: &str) -> Result<(), KvError> {
        self.call("delete", self.backend.delete(key)).await
    }

    /// For `check-config`: connects and asks something harmless.
    pub async fn probe(&self) -> Result<String, KvError> {
        self.call("probe", self.backend.probe()).await
    }
}

/// At least one second: both memcached and Redis count TTLs in seconds,
/// and 0 means "forever" to memcached.
fn ttl_secs(ttl: Duration) -> u64 {
    ttl.as_secs().max(1)
}
