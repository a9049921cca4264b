//! Server-side session storage: in process (moka) for one node, or Redis
//! so that several fedgate nodes behind a load balancer share sessions.
//! The cookie only carries a random session id, sealed.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

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
    #[error("session store (Redis) failed: {0}")]
    Redis(String),
    #[error("stored session is unreadable: {0}")]
    Corrupt(String),
}

/// Lifetime rules shared by both backends.
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

/// Storage key for a session id: a hash, so the store never holds the
/// bearer value of the cookie itself.
pub fn storage_key(id: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, id);
    format!("fedgate:session:{}", hex::encode(d.as_ref()))
}

#[derive(Clone)]
pub enum SessionStore {
    Memory(moka::future::Cache<String, Arc<SessionData>>),
    Redis(crate::kv::Redis),
}

impl SessionStore {
    pub fn memory(max_entries: u64, lifetimes: Lifetimes) -> Self {
        SessionStore::Memory(
            moka::future::Cache::builder()
                .max_capacity(max_entries)
                .time_to_live(lifetimes.max_duration)
                .build(),
        )
    }

    /// Sessions in Redis, shared by several nodes. Connecting is lazy:
    /// while Redis is down, session lookups fail (closed) rather than the
    /// gateway refusing to start.
    pub fn redis(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        crate::kv::Redis::new(url, timeout)
            .map(SessionStore::Redis)
            .map_err(|e| StoreError::Redis(e.to_string()))
    }

    /// Fetches a live session and records the visit (see
    /// [`Lifetimes::touch_granularity`]); expired ones are removed.
    pub async fn touch(
        &self,
        id: &[u8],
        lifetimes: Lifetimes,
        now: i64,
    ) -> Result<Option<Arc<SessionData>>, StoreError> {
        let key = storage_key(id);
        let Some(s) = self.get(&key).await? else {
            return Ok(None);
        };
        if !lifetimes.alive(&s, now) {
            self.remove_key(&key).await?;
            return Ok(None);
        }
        if now - s.last_seen < lifetimes.touch_granularity() {
            return Ok(Some(s));
        }
        let mut seen = (*s).clone();
        seen.last_seen = now;
        let seen = Arc::new(seen);
        self.put(&key, &seen, lifetimes.ttl(&seen, now)).await?;
        Ok(Some(seen))
    }

    pub async fn insert(
        &self,
        id: &[u8],
        s: &SessionData,
        lifetimes: Lifetimes,
        now: i64,
    ) -> Result<(), StoreError> {
        self.put(
            &storage_key(id),
            &Arc::new(s.clone()),
            lifetimes.ttl(s, now),
        )
        .await
    }

    pub async fn remove(&self, id: &[u8]) -> Result<(), StoreError> {
        self.remove_key(&storage_key(id)).await
    }

    async fn get(&self, key: &str) -> Result<Option<Arc<SessionData>>, StoreError> {
        match self {
            SessionStore::Memory(c) => Ok(c.get(key).await),
            SessionStore::Redis(r) => {
                let v = r
                    .get(key)
                    .await
                    .map_err(|e| StoreError::Redis(e.to_string()))?;
                v.map(|j| {
                    serde_json::from_slice(&j)
                        .map(Arc::new)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))
                })
                .transpose()
            }
        }
    }

    async fn put(&self, key: &str, s: &Arc<SessionData>, ttl: Duration) -> Result<(), StoreError> {
        match self {
            SessionStore::Memory(c) => {
                c.insert(key.to_string(), s.clone()).await;
                Ok(())
            }
            SessionStore::Redis(r) => {
                let j = serde_json::to_vec(&**s).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                r.set_ex(key, &j, ttl)
                    .await
                    .map_err(|e| StoreError::Redis(e.to_string()))
            }
        }
    }

    async fn remove_key(&self, key: &str) -> Result<(), StoreError> {
        match self {
            SessionStore::Memory(c) => {
                c.invalidate(key).await;
                Ok(())
            }
            SessionStore::Redis(r) => r
                .del(key)
                .await
                .map_err(|e| StoreError::Redis(e.to_string())),
        }
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
        let s = SessionStore::memory(100, L);
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
        assert!(
            storage_key(b"id1").starts_with("fedgate:session:")
                && !storage_key(b"id1").contains("id1")
        );
    }

    #[tokio::test]
    async fn a_visit_rewrites_the_session_only_past_the_granularity() {
        assert_eq!(L.touch_granularity(), 30);
        let s = SessionStore::memory(100, L);
        s.insert(b"id", &data(1000, 1000), L, 1000).await.unwrap();
        let a = s.touch(b"id", L, 1029).await.unwrap().unwrap();
        assert_eq!(a.last_seen, 1000, "within the granularity: not rewritten");
        let b = s.touch(b"id", L, 1030).await.unwrap().unwrap();
        assert_eq!(b.last_seen, 1030);
        // The coarse last_seen can end a session early, never late.
        assert!(s.touch(b"id", L, 1030 + 300).await.unwrap().is_some());
        assert!(s.touch(b"id", L, 1030 + 300 + 301).await.unwrap().is_none());
    }
}
