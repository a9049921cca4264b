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
        identity: Identity::new(AuthMethod::Bearer, "s"),
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
