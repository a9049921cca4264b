//! Background services: work that runs beside the gateway in the same
//! process, such as the accounting and image plugins.
//!
//! Modelled on pingora's `BackgroundService`, a [`Service`] is small: a
//! name, its configuration section (`[plugins.<name>]`), a constructor, and
//! a `run` future that returns when told to stop. The application owns a
//! [`ServiceSet`]: at start it builds the services whose sections are
//! present, and on every reload it [`applies`](ServiceSet::apply) the new
//! sections, restarting a service whose section changed, starting one that
//! appeared and stopping one that went away. A service whose section did
//! not change keeps running, untouched by the reload.
//!
//! Services live below authentication in the layering: they may use the
//! OpenStack client, the upstream, TLS, OIDC, VOMS and PKI pieces and the
//! shared HTTP client, but never the request path.

#[cfg(feature = "accounting")]
pub mod accounting;
pub mod heartbeat;
pub mod images;
pub mod schedule;

use std::any::Any;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::problem::{Problems, Source};
pub use crate::shutdown::Shutdown as Stop;

/// A background service. `NAME` is its key under `[plugins]`, its log
/// field and its metrics label.
pub trait Service: Send + Sync + Sized + 'static {
    /// The service's configuration section.
    type Config: Clone + PartialEq + Send + Sync + 'static;
    const NAME: &'static str;

    /// Builds the service from its section. Nothing runs yet.
    fn build(cfg: &Self::Config) -> Result<Self, ServiceError>;

    /// Runs until `stop` fires, then returns promptly. A service must
    /// finish or abandon its current unit of work without leaving state
    /// half-written: it may be stopped at any await point after its grace
    /// time.
    fn run(self: Arc<Self>, stop: Stop) -> impl Future<Output = ()> + Send;
}

/// Why a service could not be built.
#[derive(Debug, thiserror::Error)]
#[error("plugins.{service}: {reason}")]
pub struct ServiceError {
    pub service: &'static str,
    pub reason: String,
}

impl ServiceError {
    pub fn new(service: &'static str, reason: impl Into<String>) -> Self {
        ServiceError {
            service,
            reason: reason.into(),
        }
    }
}

/// `[plugins]`: one optional section per built-in service. A service runs
/// when its section is present.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsConfig {
    #[serde(default)]
    pub heartbeat: Option<heartbeat::HeartbeatConfig>,
    /// The identities store, written by the gateway itself rather than by
    /// a background service (see `accounting::identities`).
    #[cfg(feature = "accounting")]
    #[serde(default)]
    pub identities: Option<accounting::identities::config::IdentitiesConfig>,
    /// The image sync (cloudkeeper's replacement).
    #[cfg(feature = "accounting")]
    #[serde(default)]
    pub images: Option<images::plugin::ImagesConfig>,
    #[cfg(feature = "accounting")]
    #[serde(default)]
    pub accounting: Option<accounting::config::AccountingConfig>,
}

impl PluginsConfig {
    /// `[plugins.accounting]` as the plugin runs it: its `identities`
    /// defaults to the store `[plugins.identities]` writes, so a site that
    /// records identities gets them in its records without saying so twice.
    #[cfg(feature = "accounting")]
    pub fn accounting(&self) -> Option<accounting::config::AccountingConfig> {
        let mut a = self.accounting.clone()?;
        if a.identities.is_none() {
            if let Some(i) = &self.identities {
                a.identities = Some(toml::Spanned::new(0..0, i.path().to_path_buf()));
            }
        }
        Some(a)
    }

    /// Checks that need no I/O.
    pub fn validate(&self, src: &Source, p: &mut Problems) {
        if let Some(h) = &self.heartbeat {
            h.validate(src, p);
        }
        #[cfg(feature = "accounting")]
        if let Some(i) = &self.identities {
            i.validate(src, p);
        }
        #[cfg(feature = "accounting")]
        if let Some(i) = &self.images {
            i.validate(src, p);
        }
        #[cfg(feature = "accounting")]
        if let Some(a) = &self.accounting {
            a.validate(src, p);
        }
    }
}

/// What [`ServiceSet::apply`] did with one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Unchanged,
    Started,
    Restarted,
    Stopped,
}

struct Running {
    section: Box<dyn Any + Send + Sync>,
    stop: Stop,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Asks the service to stop and waits up to `grace` before aborting it.
    async fn stop(self, name: &str, grace: Duration) {
        self.stop.trigger();
        let mut task = self.task;
        if tokio::time::timeout(grace, &mut task).await.is_err() {
            tracing::warn!(
                service = name,
                seconds = grace.as_secs(),
                "service did not stop in time; aborted"
            );
            task.abort();
            let _ = task.await;
        }
    }
}

/// The running services, by name.
pub struct ServiceSet {
    running: BTreeMap<&'static str, Running>,
    grace: Duration,
}

impl ServiceSet {
    /// An empty set; a stopping service gets `grace` to return.
    pub fn new(grace: Duration) -> Self {
        ServiceSet {
            running: BTreeMap::new(),
            grace,
        }
    }

    /// Names of the running services.
    pub fn names(&self) -> Vec<&'static str> {
        self.running.keys().copied().collect()
    }

    /// Brings service `S` in line with its section: absent stops it, a
    /// new or changed one (re)starts it, an equal one leaves it running.
    /// A section that fails to build leaves the running service as it is.
    pub async fn apply<S: Service>(
        &mut self,
        section: Option<&S::Config>,
    ) -> Result<Change, ServiceError> {
        let current = self
            .running
            .get(S::NAME)
            .and_then(|r| r.section.downcast_ref::<S::Config>());
        if current == section {
            return Ok(Change::Unchanged);
        }
        let Some(cfg) = section else {
            if let Some(r) = self.running.remove(S::NAME) {
                r.stop(S::NAME, self.grace).await;
                tracing::info!(
                    service = S::NAME,
                    "service stopped: its section was removed"
                );
            }
            return Ok(Change::Stopped);
        };
        let service = Arc::new(S::build(cfg)?);
        let change = match self.running.remove(S::NAME) {
            Some(r) => {
                r.stop(S::NAME, self.grace).await;
                Change::Restarted
            }
            None => Change::Started,
        };
        let stop = Stop::new();
        let task = tokio::spawn(service.run(stop.clone()));
        self.running.insert(
            S::NAME,
            Running {
                section: Box::new(cfg.clone()),
                stop,
                task,
            },
        );
        tracing::info!(service = S::NAME, change = ?change, "service running");
        Ok(change)
    }

    /// Applies every built-in service's section.
    pub async fn apply_all(&mut self, plugins: &PluginsConfig) -> Vec<ServiceError> {
        let mut errors = Vec::new();
        if let Err(e) = self
            .apply::<schedule::Scheduled<heartbeat::Heartbeat>>(plugins.heartbeat.as_ref())
            .await
        {
            errors.push(e);
        }
        #[cfg(feature = "accounting")]
        if let Err(e) = self
            .apply::<schedule::Scheduled<images::plugin::Images>>(plugins.images.as_ref())
            .await
        {
            errors.push(e);
        }
        #[cfg(feature = "accounting")]
        // Boxed: the plugin's future would otherwise grow every caller's.
        if let Err(e) = Box::pin(
            self.apply::<schedule::Scheduled<accounting::plugin::Accounting>>(
                plugins.accounting().as_ref(),
            ),
        )
        .await
        {
            errors.push(e);
        }
        errors
    }

    /// Stops every service, each with the grace time.
    pub async fn stop_all(&mut self) {
        let running = std::mem::take(&mut self.running);
        for (name, r) in running {
            r.stop(name, self.grace).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts its starts and stops, and records the section it ran with.
    struct Probe {
        cfg: u32,
    }

    static STARTS: AtomicUsize = AtomicUsize::new(0);
    static STOPS: AtomicUsize = AtomicUsize::new(0);
    static LAST: AtomicUsize = AtomicUsize::new(0);

    impl Service for Probe {
        type Config = u32;
        const NAME: &'static str = "probe";
        fn build(cfg: &u32) -> Result<Self, ServiceError> {
            if *cfg == 0 {
                return Err(ServiceError::new(Self::NAME, "0 is refused"));
            }
            Ok(Probe { cfg: *cfg })
        }
        async fn run(self: Arc<Self>, stop: Stop) {
            STARTS.fetch_add(1, Ordering::SeqCst);
            LAST.store(self.cfg as usize, Ordering::SeqCst);
            stop.wait().await;
            STOPS.fetch_add(1, Ordering::SeqCst);
        }
    }

    async fn settle() {
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn start_reload_and_stop() {
        let mut set = ServiceSet::new(Duration::from_secs(1));
        assert_eq!(set.apply::<Probe>(None).await.unwrap(), Change::Unchanged);
        assert_eq!(set.apply::<Probe>(Some(&1)).await.unwrap(), Change::Started);
        settle().await;
        assert_eq!(
            (STARTS.load(Ordering::SeqCst), LAST.load(Ordering::SeqCst)),
            (1, 1)
        );
        // The same section: the service is not touched.
        assert_eq!(
            set.apply::<Probe>(Some(&1)).await.unwrap(),
            Change::Unchanged
        );
        settle().await;
        assert_eq!(STARTS.load(Ordering::SeqCst), 1);
        // A changed section restarts it with the new one.
        assert_eq!(
            set.apply::<Probe>(Some(&2)).await.unwrap(),
            Change::Restarted
        );
        settle().await;
        assert_eq!(STOPS.load(Ordering::SeqCst), 1);
        assert_eq!(
            (STARTS.load(Ordering::SeqCst), LAST.load(Ordering::SeqCst)),
            (2, 2)
        );
        // A section that does not build keeps the running service.
        assert!(set.apply::<Probe>(Some(&0)).await.is_err());
        settle().await;
        assert_eq!(set.names(), vec!["probe"]);
        assert_eq!(STOPS.load(Ordering::SeqCst), 1);
        // Removing the section stops it.
        assert_eq!(set.apply::<Probe>(None).await.unwrap(), Change::Stopped);
        assert_eq!(STOPS.load(Ordering::SeqCst), 2);
        assert!(set.names().is_empty());
    }

    /// A service that ignores its stop signal is aborted after the grace.
    struct Stubborn;
    impl Service for Stubborn {
        type Config = ();
        const NAME: &'static str = "stubborn";
        fn build(_: &()) -> Result<Self, ServiceError> {
            Ok(Stubborn)
        }
        async fn run(self: Arc<Self>, _stop: Stop) {
            std::future::pending::<()>().await;
        }
    }

    #[tokio::test]
    async fn a_service_that_does_not_stop_is_aborted() {
        let mut set = ServiceSet::new(Duration::from_millis(50));
        set.apply::<Stubborn>(Some(&())).await.unwrap();
        let t = std::time::Instant::now();
        set.stop_all().await;
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(set.names().is_empty());
    }
}
