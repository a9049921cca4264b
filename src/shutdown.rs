//! A stop signal shared by accept loops, the admin listener and background
//! services: fired once, observed by any number of waiters, including those
//! that start waiting after it fired.

use tokio::sync::watch;

/// A shutdown trigger. Clones share one signal.
#[derive(Clone)]
pub struct Shutdown {
    tx: watch::Sender<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    pub fn new() -> Self {
        Shutdown {
            tx: watch::channel(false).0,
        }
    }

    /// Fires the signal; every current and future `wait` returns.
    pub fn trigger(&self) {
        // `send` drops the value when nobody waits at that moment, so
        // `is_triggered` would stay false: replace it unconditionally.
        self.tx.send_replace(true);
    }

    /// Whether the signal has fired.
    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }

    /// Returns once the signal has fired.
    pub async fn wait(&self) {
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(|v| *v).await;
    }
}
