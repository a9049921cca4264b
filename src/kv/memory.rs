//! One node: entries in moka with a TTL per entry. Nothing leaves the
//! process, so nothing is sealed.

use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;

use super::{Backend, BoxFuture, KvError};

#[derive(Clone)]
struct Entry {
    value: Vec<u8>,
    ttl: Duration,
}

struct PerEntry;

impl Expiry<String, Entry> for PerEntry {
    fn expire_after_create(&self, _k: &String, v: &Entry, _at: Instant) -> Option<Duration> {
        Some(v.ttl)
    }
    fn expire_after_update(
        &self,
        _k: &String,
        v: &Entry,
        _at: Instant,
        _left: Option<Duration>,
    ) -> Option<Duration> {
        Some(v.ttl)
    }
}

pub struct Memory {
    cache: Cache<String, Entry>,
}

impl Memory {
    pub fn new(max_entries: u64) -> Memory {
        Memory {
            cache: Cache::builder()
                .max_capacity(max_entries)
                .expire_after(PerEntry)
                .build(),
        }
    }
}

impl Backend for Memory {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, KvError>> {
        Box::pin(async move { Ok(self.cache.get(key).map(|e| e.value)) })
    }

    fn set<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), KvError>> {
        Box::pin(async move {
            self.cache.insert(
                key.to_string(),
                Entry {
                    value: value.to_vec(),
                    ttl,
                },
            );
            Ok(())
        })
    }

    fn add<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, KvError>> {
        Box::pin(async move {
            let e = self.cache.entry(key.to_string()).or_insert_with(|| Entry {
                value: value.to_vec(),
                ttl,
            });
            Ok(e.is_fresh())
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), KvError>> {
        Box::pin(async move {
            self.cache.invalidate(key);
            Ok(())
        })
    }

    fn probe(&self) -> BoxFuture<'_, Result<String, KvError>> {
        Box::pin(async { Ok("in process memory".to_string()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn add_stores_once_and_entries_expire() {
        let m = Memory::new(100);
        let t = Duration::from_millis(200);
        assert!(m.add("k", b"1", t).await.unwrap());
        assert!(!m.add("k", b"2", t).await.unwrap(), "already present");
        assert_eq!(m.get("k").await.unwrap().as_deref(), Some(&b"1"[..]));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(m.get("k").await.unwrap(), None, "expired");
        assert!(
            m.add("k", b"3", t).await.unwrap(),
            "free again once expired"
        );
        m.delete("k").await.unwrap();
        assert_eq!(m.get("k").await.unwrap(), None);
    }
}
