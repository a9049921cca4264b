//! Server-side session storage, in the shared-state [`Store`] (`[state]`):
//! in process for one node, memcached or Redis so that several fedgate
//! nodes behind a load balancer share sessions. The cookie only carries a
//! random session id, sealed; the store holds the session under a hash of
//! that id, sealed again by the store with its key as associated data.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::kv::Store;

/// What fedgate remembers about a logged-in browser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionData {
    /// Name of the `[[idp]]` the user logged in with.
    pub idp: String,
    /// Verified claims (ID token + userinfo), as the IdP gave them.
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// Kept for RP-initiated logout (`id_token_hint`); never logged.
    pub id_token: Option<String>,
    /// Unix seconds.
    pub created: i64,
    pub last_seen: i64,
}

#[derive(Debug, Error)]
pub enum StoreError {
    /// The store did not answer (in time): callers fail closed with 503.
    #[error("session store unavailable: {0}")]
    Unavailable(#[from] crate::kv::KvError),
    #[error("stored session is unreadable: {0}")]
    Corrupt(String),
}

#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub inactivity: Duration,
    pub max_duration: Duration,
}

impl Lifetimes {
    /// Whether a session may still be used at `now` (Unix seconds).
    pub fn alive(&self, s: &SessionData, now: i64) -> bool {
        now - s.last_seen <= self.inactivity.as_secs() as i64
            && now - s.created <= self.max_duration.as_secs() as i64
    }

    /// How stale `last_seen` may get before a visit rewrites the session.
    /// Rewriting on every request would cost a store write (and a copy of
    /// the claims) each time; a coarse `last_seen` can only end a session
    /// early, by at most this much, never late.
    pub fn touch_granularity(&self) -> i64 {
        (self.inactivity.as_secs() / 10).clamp(1, 60) as i64
    }

    /// How long a store should keep it after a touch at `now`.
    pub fn ttl(&self, s: &SessionData, now: i64) -> Duration {
        let to_max = (s.created + self.max_duration.as_secs() as i64 - now).max(1) as u64;
        Duration::from_secs(to_max.min(self.inactivity.as_secs().max(1)))
    }
}

/// A live session as read from the store.
#[derive(Debug, Clone)]
pub struct Session {
    pub data: Arc<SessionData>,
    /// SHA-256 of the stored value: equal digests mean equal contents, so
    /// what is derived from a session (its identity) can be remembered
    /// under it and is never reused for a changed or different session.
    pub digest: [u8; 32],
}

impl std::ops::Deref for Session {
    type Target = SessionData;
    fn deref(&self) -> &SessionData {
        &self.data
    }
}

/// How many parsed sessions a store remembers, and for how long unused.
const PARSED_ENTRIES: u64 = 4096;
const PARSED_IDLE: Duration = Duration::from_secs(600);

fn digest(bytes: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The hash a session id is stored under, so the store never holds the
/// bearer value of the cookie itself.
pub fn id_hash(id: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, id);
    hex::encode(d.as_ref())
}

/// Sessions in the shared-state store.
#[derive(Clone, Debug)]
pub struct SessionStore {
    store: Store,
    /// Stored value's digest → its parse. A browser sends the same session
    /// with every request, and parsing its claims as JSON cost more than
    /// the rest of the session check (docs/performance.md). Keyed by the
    /// value's digest, so it can only answer for identical bytes; the
    /// store is still read on every request, so a logout or expiry (the
    /// value gone) is seen at once.
    parsed: moka::sync::Cache<[u8; 32], Arc<SessionData>>,
}

impl SessionStore {
    pub fn new(store: Store) -> Self {
        SessionStore {
            store,
            parsed: moka::sync::Cache::builder()
                .max_capacity(PARSED_ENTRIES)
                .time_to_idle(PARSED_IDLE)
                .build(),
        }
    }

    /// Sessions in this process only.
    #[cfg(test)]
    pub fn memory(max_entries: u64) -> Self {
        SessionStore::new(Store::memory(max_entries))
    }

    /// The store, for the used-login-state marks of the flow.
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn key(&self, id: &[u8]) -> String {
        self.store.key("session", &id_hash(id))
    }

    /// Fetches a live session and records the visit (see
    /// [`Lifetimes::touch_granularity`]); expired ones are removed.
    pub async fn touch(
        &self,
        id: &[u8],
        lifetimes: Lifetimes,
        now: i64,
    ) -> Result<Option<Session>, StoreError> {
        let key = self.key(id);
        let Some(s) = self.get(&key).await? else {
            return Ok(None);
        };
        if !lifetimes.alive(&s, now) {
            self.store.delete(&key).await?;
            return Ok(None);
        }
        if now - s.last_seen < lifetimes.touch_granularity() {
            return Ok(Some(s));
        }
        let mut seen = (*s.data).clone();
        seen.last_seen = now;
        let ttl = lifetimes.ttl(&seen, now);
        Ok(Some(self.put(&key, seen, ttl).await?))
    }

    pub async fn insert(
        &self,
        id: &[u8],
        s: &SessionData,
        lifetimes: Lifetimes,
        now: i64,
    ) -> Result<(), StoreError> {
        self.put(&self.key(id), s.clone(), lifetimes.ttl(s, now))
            .await
            .map(drop)
    }

    pub async fn remove(&self, id: &[u8]) -> Result<(), StoreError> {
        Ok(self.store.delete(&self.key(id)).await?)
    }

    async fn get(&self, key: &str) -> Result<Option<Session>, StoreError> {
        let Some(j) = self.store.get(key).await? else {
            return Ok(None);
        };
        let digest = digest(&j);
        if let Some(data) = self.parsed.get(&digest) {
            return Ok(Some(Session { data, digest }));
        }
        let data: Arc<SessionData> = serde_json::from_slice(&j)
            .map(Arc::new)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.parsed.insert(digest, data.clone());
        Ok(Some(Session { data, digest }))
    }

    async fn put(&self, key: &str, s: SessionData, ttl: Duration) -> Result<Session, StoreError> {
        let j = serde_json::to_vec(&s).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.store.set(key, &j, ttl).await?;
        let session = Session {
            data: Arc::new(s),
            digest: digest(&j),
        };
        self.parsed.insert(session.digest, session.data.clone());
        Ok(session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(created: i64, last_seen: i64) -> SessionData {
        SessionData {
            idp: "egi".into(),
            claims: Default::default(),
            id_token: None,
            created,
            last_seen,
        }
    }

    const L: Lifetimes = Lifetimes {
        inactivity: Duration::from_secs(300),
        max_duration: Duration::from_secs(3600),
    };

    #[test]
    fn lifetime_rules() {
        assert!(L.alive(&data(0, 0), 300));
        assert!(!L.alive(&data(0, 0), 301), "inactive too long");
        assert!(
            !L.alive(&data(0, 3500), 3601),
            "past the maximum duration even if active"
        );
        assert_eq!(L.ttl(&data(0, 0), 0), Duration::from_secs(300));
        assert_eq!(L.ttl(&data(0, 3500), 3500), Duration::from_secs(100));
    }

    #[tokio::test]
    async fn memory_store_expires_by_inactivity() {
        let s = SessionStore::memory(100);
        s.insert(b"id1", &data(1000, 1000), L, 1000).await.unwrap();
        assert!(s.touch(b"id1", L, 1200).await.unwrap().is_some());
        assert!(
            s.touch(b"id1", L, 1450).await.unwrap().is_some(),
            "the touch at 1200 extended it"
        );
        assert!(s.touch(b"id1", L, 1751).await.unwrap().is_none());
        assert!(
            s.touch(b"id1", L, 1752).await.unwrap().is_none(),
            "removed once expired"
        );
        assert!(s.touch(b"other", L, 1000).await.unwrap().is_none());
        assert!(!s.key(b"id1").contains("id1"));
    }

    #[tokio::test]
    async fn a_visit_rewrites_the_session_only_past_the_granularity() {
        assert_eq!(L.touch_granularity(), 30);
        let s = SessionStore::memory(100);
        s.insert(b"id", &data(1000, 1000), L, 1000).await.unwrap();
        let a = s.touch(b"id", L, 1029).await.unwrap().unwrap();
        assert_eq!(a.last_seen, 1000, "within the granularity: not rewritten");
        let b = s.touch(b"id", L, 1030).await.unwrap().unwrap();
        assert_eq!(b.last_seen, 1030);
        // Unchanged contents are parsed once; a rewrite is a new digest.
        let c = s.touch(b"id", L, 1031).await.unwrap().unwrap();
        assert!(
            Arc::ptr_eq(&b.data, &c.data),
            "the same stored bytes, one parse"
        );
        assert_eq!(b.digest, c.digest);
        assert_ne!(a.digest, b.digest);
        // The coarse last_seen can end a session early, never late.
        assert!(s.touch(b"id", L, 1030 + 300).await.unwrap().is_some());
        assert!(s.touch(b"id", L, 1030 + 300 + 301).await.unwrap().is_none());
    }
}
