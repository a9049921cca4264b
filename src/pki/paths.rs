//! The validated-path cache: what [`super::Validator::validate`] concluded
//! about a presented chain (CA → EEC → proxies), kept across connections.
//!
//! A grid client presents the same chain, a proxy that lives for hours, on
//! every new TLS connection; validating it again costs parsing every
//! certificate, an RSA verification per certificate and per CRL, and the
//! policy lookups. Apart from the clock, the outcome depends only on the
//! chain's bytes, the trust store and the `[x509]` settings, and both of
//! the latter are fixed for one [`super::Validator`]: a reload (new CAs,
//! CRLs, policy files or settings) builds a new validator with an empty
//! cache, so nothing judged under the old trust store survives it.
//!
//! The clock is handled on every use: each certificate's validity window
//! (proxies included) is checked again, and an entry is never used past
//! the earliest `notAfter` (plus skew) of its certificates or the
//! `nextUpdate` (plus grace) of a CRL of its CAs; a hit past either runs the
//! full validation, which reports the expiry. A clock that went back
//! before the validation misses too: a CRL skipped then as past its
//! `nextUpdate` would count again at such a time. Only successes are kept (a
//! refusal is cheap to repeat and may become a success only by a reload,
//! which empties the cache anyway). Proof of possession, the handshake's
//! CertificateVerify, is never cached: it is checked per handshake.
//!
//! The x509 authenticator keeps what it builds on a valid chain (the VOMS
//! evaluation and gridsite's values) in a cache of the same kind, under
//! the same key and with the same rules of time (see
//! [`crate::auth::x509`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::sync::Cache;

/// Chains kept per validator. An entry holds the parsed certificates of
/// one chain (a few kB): this bounds the cache to some MB. A site with more
/// distinct chains active at once pays the full validation for the rest.
const CAPACITY: u64 = 4096;

/// An entry lives at most this long (memory: chains of clients gone);
/// correctness does not depend on it.
const MAX_AGE: Duration = Duration::from_secs(3600);

/// The key of a presented chain ([`key`]).
pub type Key = [u8; 32];

/// Full validations and cache answers since start, process-wide (a
/// reload starts a new cache, not new counters).
static FULL: AtomicU64 = AtomicU64::new(0);
static CACHED: AtomicU64 = AtomicU64::new(0);

/// (full validations, answers from the cache) since the process started.
pub fn counts() -> (u64, u64) {
    (FULL.load(Ordering::Relaxed), CACHED.load(Ordering::Relaxed))
}

pub(crate) fn count_full() {
    FULL.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn count_cached() {
    CACHED.fetch_add(1, Ordering::Relaxed);
}

/// One cached answer (`V`: the validator's verdict). The cache does not
/// know what a verdict is, so that it does not depend on the validator
/// that uses it.
#[derive(Debug)]
pub(crate) struct Entry<V> {
    pub value: V,
    /// Unix time after which the entry must not answer (see module doc).
    pub until: i64,
    /// Unix time of the validation; the entry does not answer before it.
    pub since: i64,
    ttl: Duration,
}

struct PerEntry;

impl<V> moka::Expiry<Key, Arc<Entry<V>>> for PerEntry {
    fn expire_after_create(&self, _k: &Key, v: &Arc<Entry<V>>, _at: Instant) -> Option<Duration> {
        Some(v.ttl)
    }
}

#[derive(Clone)]
pub(crate) struct PathCache<V>(Cache<Key, Arc<Entry<V>>>);

impl<V> std::fmt::Debug for PathCache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PathCache")
            .field("entries", &self.0.entry_count())
            .finish()
    }
}

impl<V: Clone + Send + Sync + 'static> Default for PathCache<V> {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

/// The key of a chain: SHA-256 over the whole presented chain, each
/// certificate prefixed with its length (so no two different chains share
/// a key).
pub fn key(chain: &[impl AsRef<[u8]>]) -> Key {
    let mut h = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for c in chain {
        let c = c.as_ref();
        h.update(&(c.len() as u64).to_be_bytes());
        h.update(c);
    }
    h.finish().as_ref().try_into().expect("SHA-256 is 32 bytes")
}

impl<V: Clone + Send + Sync + 'static> PathCache<V> {
    /// A cache of at most `capacity` chains.
    pub fn with_capacity(capacity: u64) -> Self {
        PathCache(
            Cache::builder()
                .max_capacity(capacity)
                .expire_after(PerEntry)
                .build(),
        )
    }

    /// The cached verdict for `key` if it may answer at `now` and
    /// `still_valid` accepts it (the caller checks every certificate's
    /// validity window again on each use).
    pub fn get(&self, key: &Key, now: i64, still_valid: impl Fn(&V) -> bool) -> Option<V> {
        let e = self.0.get(key)?;
        if now > e.until || now < e.since || !still_valid(&e.value) {
            return None;
        }
        Some(e.value.clone())
    }

    /// Keeps a verdict until `until` (Unix time). Only successes may be
    /// kept: the caller inserts nothing else.
    pub fn insert(&self, key: Key, verdict: &V, until: i64, now: i64) {
        let Ok(left) = u64::try_from(until.saturating_sub(now)) else {
            return;
        };
        if left == 0 {
            return;
        }
        let ttl = Duration::from_secs(left).min(MAX_AGE);
        self.0.insert(
            key,
            Arc::new(Entry {
                value: verdict.clone(),
                until,
                since: now,
                ttl,
            }),
        );
    }

    /// Entries (approximate; for tests).
    pub fn len(&self) -> u64 {
        self.0.run_pending_tasks();
        self.0.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry answers only between its validation and its `until`: a
    /// clock set back before the validation gets a full validation again.
    #[test]
    fn an_entry_answers_only_between_its_validation_and_its_end() {
        let c = PathCache::<&str>::default();
        let key = key(&[b"chain".as_slice()]);
        c.insert(key, &"valid", 2000, 1000);
        let hit = |now| c.get(&key, now, |_| true).is_some();
        assert!(hit(1000) && hit(1500) && hit(2000));
        assert!(!hit(2001), "past until");
        assert!(!hit(999), "before the validation");
        assert!(
            c.get(&key, 1500, |_| false).is_none(),
            "a certificate out of its window"
        );
    }

    #[test]
    fn a_spent_entry_is_not_kept_and_keys_do_not_collide() {
        let c = PathCache::<&str>::default();
        let key = key(&[b"chain".as_slice()]);
        c.insert(key, &"valid", 1000, 1000);
        assert!(c.get(&key, 1000, |_| true).is_none());
        assert_ne!(key, super::key(&[b"cha".as_slice(), b"in".as_slice()]));
    }
}
