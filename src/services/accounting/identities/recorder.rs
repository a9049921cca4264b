//! The asynchronous, bounded writer between the gateway and the store.
//!
//! A login must never wait for the disk. The gateway [`offers`]
//! (Recorder::offer) each observation to a bounded channel without
//! waiting; a full channel drops it and counts
//! `fedgate_identity_records_dropped_total`. One task takes what is queued
//! in batches and writes each batch in one transaction on the blocking
//! pool, so a slow, locked, read-only or full disk only ever fills the
//! queue. A batch that cannot be written is dropped with one log line,
//! and the store is opened again for the next one. The same task deletes
//! expired entries at start and hourly.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;

use super::config::IdentitiesConfig;
use super::model::Federated;
use super::store::{Observation, Store, StoreError};

/// At most this many logins per transaction.
const MAX_BATCH: usize = 256;
/// Expired entries are deleted at start and then this often.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// The gateway's handle on the writer. Dropping every handle ends the
/// writer once it has written what was queued.
pub struct Recorder {
    tx: mpsc::Sender<Observation>,
    dropped: Counter,
    config: IdentitiesConfig,
}

impl Recorder {
    /// Starts the writer task on the current Tokio runtime. Never fails:
    /// a store that cannot be opened is reported by the writer, once per
    /// batch it could not write.
    pub fn start(config: &IdentitiesConfig, dropped: Counter) -> Recorder {
        let (tx, rx) = mpsc::channel(config.queue());
        tokio::spawn(write_loop(
            config.path().to_path_buf(),
            config.retention(),
            rx,
        ));
        Recorder {
            tx,
            dropped,
            config: config.clone(),
        }
    }

    /// The section this recorder was started from: a reload restarts it
    /// only when the section changed.
    pub fn config(&self) -> &IdentitiesConfig {
        &self.config
    }

    /// Counts a login that could not be recorded before it reached the
    /// queue (its WebSSO token could not be resolved in time).
    pub fn count_dropped(&self) {
        self.dropped.inc();
    }

    /// Queues one login for writing, without waiting. `false` when the
    /// queue is full or the writer is gone: the login is not recorded.
    pub fn offer(&self, keystone_user_id: &str, identity: Federated) -> bool {
        let o = Observation {
            keystone_user_id: keystone_user_id.to_string(),
            identity,
            seen: crate::pki::unix_now(),
        };
        match self.tx.try_send(o) {
            Ok(()) => true,
            Err(_) => {
                self.dropped.inc();
                false
            }
        }
    }
}

/// Runs `f` on the store on the blocking pool, opening the store first
/// when needed. The store comes back unless the call failed: it is then
/// opened afresh next time (the file may have been replaced or repaired).
async fn on_store<T: Send + 'static>(
    path: &std::path::Path,
    store: Option<Arc<Store>>,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> (Option<Arc<Store>>, Result<T, String>) {
    let path = path.to_path_buf();
    let joined = tokio::task::spawn_blocking(move || {
        let store = match store {
            Some(s) => s,
            None => Arc::new(Store::open(&path)?),
        };
        let r = f(&store)?;
        Ok::<_, StoreError>((store, r))
    })
    .await;
    match joined {
        Ok(Ok((s, r))) => (Some(s), Ok(r)),
        Ok(Err(e)) => (None, Err(e.to_string())),
        Err(e) => (None, Err(format!("the writer failed: {e}"))),
    }
}

/// Deletes the entries not seen within `retention`.
async fn purge(
    path: &std::path::Path,
    retention: Duration,
    store: Option<Arc<Store>>,
) -> Option<Arc<Store>> {
    let cutoff = crate::pki::unix_now()
        .saturating_sub(i64::try_from(retention.as_secs()).unwrap_or(i64::MAX));
    let (store, r) = on_store(path, store, move |st| st.purge(cutoff)).await;
    match r {
        Ok(0) => {}
        Ok(n) => tracing::info!(deleted = n, "expired identities deleted"),
        Err(e) => tracing::warn!(error = %e, "expired identities not deleted"),
    }
    store
}

async fn write_loop(path: PathBuf, retention: Duration, mut rx: mpsc::Receiver<Observation>) {
    // First the purge, so that a store full of expired entries is cleaned
    // before it grows.
    let mut store = purge(&path, retention, None).await;
    let start = tokio::time::Instant::now() + PURGE_EVERY;
    let mut purge_tick = tokio::time::interval_at(start, PURGE_EVERY);
    purge_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        tokio::select! {
            biased;
            n = rx.recv_many(&mut batch, MAX_BATCH) => {
                if n == 0 {
                    break;
                }
                let b = std::mem::take(&mut batch);
                let count = b.len();
                let (s, r) = on_store(&path, store.take(), move |st| st.record(&b)).await;
                store = s;
                if let Err(e) = r {
                    tracing::warn!(error = %e, dropped = count, "identities not recorded");
                }
            }
            _ = purge_tick.tick() => {
                store = purge(&path, retention, store.take()).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn cfg(path: &std::path::Path, queue: usize, retention_days: u64) -> IdentitiesConfig {
        toml::from_str(&format!(
            "path = {:?}\nqueue = {queue}\nretention_days = {retention_days}",
            path.display().to_string()
        ))
        .unwrap()
    }

    fn dn(n: usize) -> Federated {
        Federated::X509 {
            dn: format!("/CN=user {n}"),
            fqans: vec!["/vo.example.org".into()],
        }
    }

    /// Polls the store until `want` entries are there.
    async fn entries(path: &std::path::Path, want: usize) -> usize {
        let mut n = 0;
        for _ in 0..200 {
            if let Ok(s) = Store::open_read_only(path) {
                n = s.list(None).unwrap().len();
                if n >= want {
                    return n;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        n
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn logins_are_written_and_expired_ones_purged_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ids.sqlite");
        {
            let s = Store::open(&path).unwrap();
            let now = crate::pki::unix_now();
            s.record(&[
                Observation {
                    keystone_user_id: "stale".into(),
                    identity: dn(0),
                    seen: now - 3 * 86_400,
                },
                Observation {
                    keystone_user_id: "recent".into(),
                    identity: dn(1),
                    seen: now - 86_400 / 2,
                },
            ])
            .unwrap();
        }
        // retention_days = 2: the entry seen 3 days ago goes, the other stays.
        let r = Recorder::start(&cfg(&path, 8, 2), Counter::default());
        assert!(r.offer("u-new", dn(2)));
        // The purge runs before the first write: once the new login is
        // there, the stale entry is gone.
        let s = Store::open_read_only(&path).unwrap();
        let users = || -> Vec<String> {
            let mut u: Vec<String> = s
                .list(None)
                .unwrap()
                .into_iter()
                .map(|e| e.keystone_user_id)
                .collect();
            u.sort();
            u
        };
        for _ in 0..200 {
            if users().contains(&"u-new".to_string()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let users = users();
        assert_eq!(users, vec!["recent".to_string(), "u-new".to_string()]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unwritable_store_never_blocks_and_is_retried() {
        let dir = tempfile::tempdir().unwrap();
        // The "directory" is a file: every open fails (even as root).
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let dropped = Counter::default();
        let r = Recorder::start(&cfg(&file.join("ids.sqlite"), 4, 400), dropped.clone());
        let t = Instant::now();
        let mut accepted = 0;
        for n in 0..1000 {
            accepted += usize::from(r.offer("u", dn(n)));
        }
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(accepted as u64 + dropped.get(), 1000);
        assert!(dropped.get() > 0);
        // The writer is still alive and keeps draining the queue.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            r.offer("u", dn(1)),
            "the failing writer keeps taking logins"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stalled_writer_fills_the_queue_and_logins_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ids.sqlite");
        let dropped = Counter::default();
        let r = Recorder::start(&cfg(&path, 2, 400), dropped.clone());
        assert!(r.offer("u0", dn(0)));
        assert_eq!(entries(&path, 1).await, 1, "the writer runs");
        // Another process takes the write lock: the writer waits in SQLite.
        let blocker = Store::open(&path).unwrap();
        blocker.conn().execute_batch("BEGIN IMMEDIATE").unwrap();
        // The writer takes the next login and stalls on the lock.
        assert!(r.offer("u1", dn(1)));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let t = Instant::now();
        let accepted: Vec<bool> = (2..=6).map(|n| r.offer(&format!("u{n}"), dn(n))).collect();
        assert!(
            t.elapsed() < Duration::from_millis(100),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(accepted, vec![true, true, false, false, false], "queue = 2");
        assert_eq!(dropped.get(), 3);
        // The lock goes: what was queued is written, nothing else.
        blocker.conn().execute_batch("COMMIT").unwrap();
        assert_eq!(entries(&path, 4).await, 4);
        let mut users: Vec<String> = blocker
            .list(None)
            .unwrap()
            .into_iter()
            .map(|e| e.keystone_user_id)
            .collect();
        users.sort();
        assert_eq!(users, vec!["u0", "u1", "u2", "u3"]);
    }
}
