//! Giving freed heap memory back to the operating system.
//!
//! The binary's allocator (mimalloc) returns free pages to the OS only
//! `purge_delay` (1 s) after they were freed, and only when it is next
//! called. A gateway that goes quiet after a burst of connections would
//! therefore keep the burst's peak RSS for good: `bench/idle-memory.sh`
//! measured 208 MB still resident after 4,000 idle connections had closed,
//! against 77 MB before them. While serving, [`release_loop`] asks the
//! allocator every [`EVERY`] to purge what has been free long enough.
//!
//! The allocator is the binary's choice, so the binary registers the call
//! ([`set_release`]); the library stays free of `unsafe`. Without one (the
//! integration tests, the system allocator) the loop does nothing.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

static RELEASE: OnceLock<fn()> = OnceLock::new();

/// How often free memory is handed back: twice mimalloc's purge delay, so
/// that pages freed by one burst are purged by the next tick or the one
/// after. One call costs microseconds (it walks the calling thread's heap
/// and the arenas' purge lists).
pub const EVERY: Duration = Duration::from_secs(2);

/// Registers the allocator's "return free memory to the OS" call. The
/// first registration wins; the binary makes it before anything runs.
pub fn set_release(release: fn()) {
    let _ = RELEASE.set(release);
}

/// Calls the registered release every [`EVERY`] until `stop` completes
/// (the server's shutdown).
pub async fn release_loop(stop: impl Future<Output = ()>) {
    if let Some(release) = RELEASE.get().copied() {
        run(release, EVERY, stop).await;
    }
}

async fn run(release: fn(), every: Duration, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick of an interval is immediate: skip it.
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => release(),
            _ = &mut stop => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static CALLS: AtomicUsize = AtomicUsize::new(0);

    fn count() {
        CALLS.fetch_add(1, Ordering::SeqCst);
    }

    #[tokio::test(start_paused = true)]
    async fn releases_on_every_tick_until_shutdown() {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run(count, EVERY, async move {
            let _ = stopped.await;
        }));
        tokio::time::sleep(EVERY * 5 + EVERY / 2).await;
        assert_eq!(CALLS.load(Ordering::SeqCst), 5);
        stop.send(()).unwrap();
        task.await.unwrap();
        tokio::time::sleep(EVERY * 3).await;
        assert_eq!(CALLS.load(Ordering::SeqCst), 5, "no call after shutdown");
    }
}
