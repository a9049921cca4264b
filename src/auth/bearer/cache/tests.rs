use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::identity::AuthMethod;

fn cfg(max_ttl: u64, neg: u64) -> CacheConfig {
    CacheConfig {
        max_ttl_secs: max_ttl,
        negative_ttl_secs: neg,
        ..CacheConfig::default()
    }
}

fn v(exp: Option<u64>) -> Validated {
    let mut m = Map::new();
    m.insert("sub".into(), "s".into());
    if let Some(e) = exp {
        m.insert("exp".into(), e.into());
    }
    Validated::new("a", m)
}

fn build(v: Validated) -> Result<Entry, TokenError> {
    Ok(Entry {
        validated: v,
        identity: Identity::new(AuthMethod::Bearer, "s").into(),
    })
}

#[test]
fn ttl_is_min_of_exp_and_cap() {
    let cap = Duration::from_secs(300);
    assert_eq!(v(Some(1000 + 60)).ttl(1000, cap), Duration::from_secs(60));
    assert_eq!(v(Some(1000 + 6000)).ttl(1000, cap), cap);
    assert_eq!(v(Some(900)).ttl(1000, cap), Duration::ZERO);
    assert_eq!(v(None).ttl(1000, cap), cap);
    assert_eq!(v(Some(5)).exp, Some(5));
}

#[tokio::test]
async fn single_flight_and_positive_hits() {
    let c = TokenCache::new(&cfg(300, 10), None);
    let calls = AtomicUsize::new(0);
    let k = key(&[b"tok"]);
    let run = || async {
        c.get_or_validate(
            k,
            async {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok(v(Some(now() + 100)))
            },
            build,
        )
        .await
    };
    let results = futures_util::future::join_all((0..200).map(|_| run())).await;
    assert!(results.iter().all(|r| r.is_ok()));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(run().await.is_ok());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn expired_results_are_not_kept() {
    let c = TokenCache::new(&cfg(300, 10), None);
    let calls = AtomicUsize::new(0);
    let k = key(&[b"short"]);
    for _ in 0..2 {
        let r = c
            .get_or_validate(
                k,
                async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Ok(v(Some(now() + 1)))
                },
                build,
            )
            .await;
        assert!(r.is_ok());
        tokio::time::sleep(Duration::from_millis(2100)).await;
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "an expired entry must be validated again"
    );
}

#[tokio::test]
async fn negative_cache_remembers_refusals_briefly() {
    let c = TokenCache::new(&cfg(300, 1), None);
    let calls = AtomicUsize::new(0);
    let k = key(&[b"junk"]);
    let run = |e: TokenError| {
        let calls = &calls;
        let c = &c;
        async move {
            c.get_or_validate(
                k,
                async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err(e)
                },
                build,
            )
            .await
        }
    };
    for _ in 0..5 {
        assert_eq!(
            run(TokenError::Inactive).await.err(),
            Some(TokenError::Inactive)
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let _ = run(TokenError::Inactive).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // An unavailable IdP is never remembered.
    let k2 = key(&[b"down"]);
    for _ in 0..3 {
        let r = c
            .get_or_validate(
                k2,
                async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err(TokenError::Unavailable("x".into()))
                },
                build,
            )
            .await;
        assert!(matches!(r, Err(TokenError::Unavailable(_))));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 5);
}

#[test]
fn keys_separate_parts() {
    assert_ne!(key(&[b"ab", b"c"]), key(&[b"a", b"bc"]));
    assert_eq!(label(&key(&[b"x"])).len(), 12);
}

/// The shared layer over a real Redis (`redis-server` on port 19122):
/// shared between nodes, never trusted for a value it did not seal, and
/// skipped (to the IdP) while the store does not answer.
mod shared {
    use super::*;
    use crate::kv::testing::Redis;
    use crate::kv::{BackendKind, KeyRing, Settings, Store};

    fn store(port: u16) -> Store {
        let s = Settings {
            backend: BackendKind::Redis,
            servers: vec![],
            url: Some(format!("redis://127.0.0.1:{port}/0")),
            sentinels: vec![],
            master_name: None,
            db: None,
            username: None,
            password: None,
            tls: false,
            tls_ca_pem: None,
            timeout: Duration::from_millis(300),
            prefix: "t:".into(),
            max_entries: 100,
        };
        Store::from_settings(&s, Some(KeyRing::from_raw(&[[5; 32]]))).unwrap()
    }

    fn sub(e: &Entry) -> &str {
        e.validated.claims["sub"].as_str().unwrap()
    }

    fn who(s: &str) -> Validated {
        let mut m = Map::new();
        m.insert("sub".into(), s.into());
        m.insert("exp".into(), (now() + 100).into());
        Validated::new("a", m)
    }

    async fn raw(port: u16) -> redis::aio::MultiplexedConnection {
        redis::Client::open(format!("redis://127.0.0.1:{port}/0"))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn shared_forged_and_down() {
        let redis = Redis::start(19122);
        let st = store(19122);
        let calls = AtomicUsize::new(0);
        let validate = |s: &'static str| {
            let calls = &calls;
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(who(s))
            }
        };
        let node = || TokenCache::new(&cfg(300, 10), Some(&st));
        let (a, b) = (node(), node());
        let k = key(&[b"alice-token"]);
        let e = a
            .get_or_validate(k, validate("alice"), build)
            .await
            .unwrap();
        assert_eq!(sub(&e), "alice");
        let e = b.get_or_validate(k, validate("x"), build).await.unwrap();
        assert_eq!(sub(&e), "alice", "node b used node a's entry");
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        // Forged by hand, or alice's sealed entry copied under another
        // token's key: neither is taken; the IdP is asked.
        let mut r = raw(19122).await;
        let name = |k: &Key| format!("t:token:{}", hex::encode(k));
        let held: Vec<u8> = redis::cmd("GET")
            .arg(name(&k))
            .query_async(&mut r)
            .await
            .unwrap();
        let forged = key(&[b"mallory-token"]);
        let body = serde_json::to_vec(&who("alice")).unwrap();
        let _: () = redis::cmd("SET")
            .arg(name(&forged))
            .arg(body)
            .query_async(&mut r)
            .await
            .unwrap();
        let moved = key(&[b"eve-token"]);
        let _: () = redis::cmd("SET")
            .arg(name(&moved))
            .arg(held)
            .query_async(&mut r)
            .await
            .unwrap();
        let c = node();
        let e = c
            .get_or_validate(forged, validate("mallory"), build)
            .await
            .unwrap();
        assert_eq!(sub(&e), "mallory");
        let e = c
            .get_or_validate(moved, validate("eve"), build)
            .await
            .unwrap();
        assert_eq!(sub(&e), "eve");
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        // The store stops answering: a new token is still validated (at
        // the IdP), each store call bounded, and the errors are counted.
        let errors = || {
            crate::kv::snapshot()
                .errors
                .iter()
                .filter(|(b, op, _)| *b == "redis" && *op != "open")
                .map(|(_, _, n)| n)
                .sum::<u64>()
        };
        let before = errors();
        redis.pause(true);
        let d = node();
        let t0 = std::time::Instant::now();
        let e = d
            .get_or_validate(key(&[b"bob-token"]), validate("bob"), build)
            .await
            .unwrap();
        assert_eq!(sub(&e), "bob");
        assert!(
            t0.elapsed() < Duration::from_millis(900),
            "{:?}",
            t0.elapsed()
        );
        assert!(errors() >= before + 2, "get and set failed: counted");
        assert!(
            crate::kv::snapshot().up.contains(&("redis", false)),
            "fedgate_shared_state_up is 0"
        );
        redis.pause(false);
    }
}
