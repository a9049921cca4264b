//! Runtime VOMS settings and the cache of validated ACs.
//!
//! A VOMS proxy is presented on every new TLS connection for hours; its
//! ACs do not change, and checking one costs an RSA verification, file
//! reads and an AA chain validation. The cache keeps the outcome of the
//! connection-independent checks, keyed by the SHA-256 of the AC's DER;
//! holder and time are re-checked on every use. Only successes are cached
//! (a refusal may be fixed by a vomsdir change), and an entry lives at most
//! `cache_ttl_secs` and never past the AC's notAfter plus skew.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::sync::Cache;

use super::VomsConfig;
use super::export::ExportNames;
use super::validate::Checked;

pub(crate) type AcKey = [u8; 32];

#[derive(Debug)]
pub(crate) struct Entry {
    pub checked: Checked,
    ttl: Duration,
}

struct PerEntry;

impl moka::Expiry<AcKey, Arc<Entry>> for PerEntry {
    fn expire_after_create(&self, _k: &AcKey, v: &Arc<Entry>, _at: Instant) -> Option<Duration> {
        Some(v.ttl)
    }
}

/// Everything [`super::evaluate`] needs, built once from [`VomsConfig`].
#[derive(Clone)]
pub struct VomsSettings {
    pub dir: PathBuf,
    pub skew: i64,
    pub targets: Vec<String>,
    pub pem_fallback: bool,
    pub export: ExportNames,
    pub cache_ttl: Duration,
    cache: Cache<AcKey, Arc<Entry>>,
}

impl std::fmt::Debug for VomsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VomsSettings")
            .field("dir", &self.dir)
            .field("skew", &self.skew)
            .field("targets", &self.targets)
            .field("pem_fallback", &self.pem_fallback)
            .field("cache_entries", &self.cache.entry_count())
            .finish()
    }
}

impl VomsSettings {
    pub fn from_config(c: &VomsConfig) -> VomsSettings {
        VomsSettings {
            dir: c.dir.get_ref().clone(),
            skew: i64::try_from(*c.clock_skew_secs.get_ref()).unwrap_or(i64::MAX),
            targets: c.targets.clone(),
            pem_fallback: c.pem_fallback,
            export: c.export.clone(),
            cache_ttl: Duration::from_secs(*c.cache_ttl_secs.get_ref()),
            cache: Cache::builder()
                .max_capacity(c.cache_entries)
                .expire_after(PerEntry)
                .build(),
        }
    }

    /// Adds names this service answers to (the server certificate's), so
    /// that ACs targeted at them are accepted; `voms.targets` adds to them.
    pub fn add_targets(&mut self, names: impl IntoIterator<Item = String>) {
        for n in names {
            if !self.targets.iter().any(|t| t.eq_ignore_ascii_case(&n)) {
                self.targets.push(n);
            }
        }
    }

    /// Drops every cached AC (e.g. after the vomsdir or trust store changed).
    pub fn clear_cache(&self) {
        self.cache.invalidate_all();
    }

    /// Number of cached ACs (approximate, for metrics and tests).
    pub fn cached_acs(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }

    pub(crate) fn cached(&self, key: &AcKey) -> Option<Arc<Entry>> {
        self.cache.get(key)
    }

    pub(crate) fn remember(&self, key: AcKey, checked: Checked, now: i64) {
        let left = checked
            .valid
            .not_after
            .saturating_add(self.skew)
            .saturating_sub(now);
        let Ok(left) = u64::try_from(left) else {
            return;
        };
        let ttl = self.cache_ttl.min(Duration::from_secs(left));
        if ttl.is_zero() {
            return;
        }
        self.cache.insert(key, Arc::new(Entry { checked, ttl }));
    }
}
