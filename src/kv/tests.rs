//! The store's sealing, with an in-process backend that stands for an
//! off-host one (the real servers are in tests/shared_state.rs).

use std::sync::Arc;
use std::time::Duration;

use super::*;

/// Memory, under another name: the store seals for it as for memcached.
struct OffHost(memory::Memory);

impl Backend for OffHost {
    fn name(&self) -> &'static str {
        "offhost"
    }
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, KvError>> {
        self.0.get(key)
    }
    fn set<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), KvError>> {
        self.0.set(key, value, ttl)
    }
    fn add<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, KvError>> {
        self.0.add(key, value, ttl)
    }
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), KvError>> {
        self.0.delete(key)
    }
    fn probe(&self) -> BoxFuture<'_, Result<String, KvError>> {
        self.0.probe()
    }
}

const T: Duration = Duration::from_secs(60);

fn ring(b: u8) -> KeyRing {
    KeyRing::from_raw(&[[b; 32]])
}

#[tokio::test]
async fn values_are_sealed_bound_to_their_key_and_to_the_ring() {
    let raw = Arc::new(OffHost(memory::Memory::new(100)));
    let store = Store::new(raw.clone(), "p:", Some(ring(1)), T).unwrap();
    let (a, b) = (store.key("session", "a"), store.key("session", "b"));
    assert_eq!(a, "p:session:a");
    store.set(&a, b"{\"idp\":\"egi\"}", T).await.unwrap();
    assert_eq!(
        store.get(&a).await.unwrap().as_deref(),
        Some(&b"{\"idp\":\"egi\"}"[..])
    );
    // What the backend holds is not the plain value.
    let held = raw.get(&a).await.unwrap().unwrap();
    assert!(!String::from_utf8_lossy(&held).contains("egi"));
    // Copied to another key: does not open.
    raw.set(&b, &held, T).await.unwrap();
    assert_eq!(store.get(&b).await.unwrap(), None, "moved value refused");
    // Written by hand: does not open.
    raw.set(&b, b"{\"idp\":\"egi\"}", T).await.unwrap();
    assert_eq!(store.get(&b).await.unwrap(), None, "forged value refused");
    // Sealed with another ring (another cluster's keys): does not open.
    let other = Store::new(raw.clone(), "p:", Some(ring(2)), T).unwrap();
    other.set(&b, b"{}", T).await.unwrap();
    assert_eq!(store.get(&b).await.unwrap(), None, "other ring refused");
    // Rotation: a ring that still holds the old key opens it.
    let rotated = Store::new(
        raw.clone(),
        "p:",
        Some(KeyRing::from_raw(&[[3; 32], [1; 32]])),
        T,
    )
    .unwrap();
    assert!(rotated.get(&a).await.unwrap().is_some());
}

#[test]
fn an_off_host_store_needs_keys() {
    let raw = Arc::new(OffHost(memory::Memory::new(10)));
    assert!(matches!(
        Store::new(raw, "p:", None, T),
        Err(KvError::Config { .. })
    ));
}

#[test]
fn settings_debug_hides_the_password() {
    let s = Settings {
        backend: BackendKind::Redis,
        servers: vec![],
        url: Some("redis://u:hunter2@h:6379/0".into()),
        sentinels: vec![],
        master_name: None,
        db: None,
        username: Some("u".into()),
        password: Some("sekrit".into()),
        tls: false,
        tls_ca_pem: None,
        timeout: T,
        prefix: "p:".into(),
        max_entries: 10,
    };
    let d = format!("{s:?}");
    assert!(!d.contains("hunter2") && !d.contains("sekrit"), "{d}");
}
