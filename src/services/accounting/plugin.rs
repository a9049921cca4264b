//! The scheduled accounting plugin (`[plugins.accounting]`, name
//! `accounting`): on its schedule, one [`run`](super::run::run) against
//! OpenStack through the extractor.

use std::sync::Arc;

use super::config::{AccountingConfig, Settings};
use super::extract::Extractor;
use super::identities::store::Store;
use super::run::{RunOptions, UsageSource, run};
use super::send::Sender;
use super::source::{IdentityLookup, NoIdentities, ProjectRef, Usage, Window};
use crate::services::ServiceError;
use crate::services::schedule::{Plugin, RunReport, Schedule};
use crate::shutdown::Shutdown;

/// The extractor as the run's [`UsageSource`].
pub struct OpenStackSource {
    pub extractor: Extractor,
    /// The gateway's identity store (`identities`), or [`NoIdentities`].
    pub identities: Arc<dyn IdentityLookup>,
}

/// The identities store of `settings`, read-only. A store that is not
/// there (the gateway has recorded nothing yet) or cannot be opened is
/// not a reason to withhold accounting: the records then carry cASO's
/// values, and one log line says why.
fn identities(settings: &Settings) -> Arc<dyn IdentityLookup> {
    let Some(path) = &settings.identities else {
        return Arc::new(NoIdentities);
    };
    match Store::open_read_only(path) {
        Ok(store) => Arc::new(store),
        Err(e) => {
            tracing::warn!(
                plugin = "accounting",
                path = %path.display(),
                "identities store not readable, GlobalUserName falls back to Keystone names: {e}"
            );
            Arc::new(NoIdentities)
        }
    }
}

impl OpenStackSource {
    /// Authenticates with the section's Keystone credentials.
    pub async fn connect(settings: &Settings) -> Result<OpenStackSource, String> {
        let extractor = Extractor::connect(settings.extract.clone())
            .await
            .map_err(|e| e.to_string())?;
        Ok(OpenStackSource {
            extractor,
            identities: identities(settings),
        })
    }
}

impl UsageSource for OpenStackSource {
    async fn projects(&self) -> Result<Vec<ProjectRef>, String> {
        self.extractor.projects().await.map_err(|e| e.to_string())
    }
    async fn extract(&self, project: &ProjectRef, window: Window) -> Result<Usage, String> {
        self.extractor
            .extract(project, window, self.identities.as_ref())
            .await
            .map_err(|e| e.to_string())
    }
}

/// The plugin, run by [`Scheduled`](crate::services::schedule::Scheduled).
pub struct Accounting {
    settings: Settings,
}

impl Plugin for Accounting {
    type Config = AccountingConfig;
    const NAME: &'static str = "accounting";

    fn build(cfg: &AccountingConfig) -> Result<Self, ServiceError> {
        let settings = cfg
            .settings()
            .map_err(|e| ServiceError::new(Self::NAME, e.0))?;
        Ok(Accounting { settings })
    }

    fn schedule(&self) -> &Schedule {
        &self.settings.schedule
    }

    /// Fails when a project failed (its reason in the error, its lastrun
    /// kept); the projects that succeeded have advanced.
    async fn run_once(&self, stop: &Shutdown) -> Result<RunReport, String> {
        let source = OpenStackSource::connect(&self.settings).await?;
        let summary = run(&self.settings, &source, &RunOptions::default(), None, stop)
            .await
            .map_err(|e| e.to_string())?;
        let failures = summary.failures();
        if !failures.is_empty() {
            return Err(format!(
                "{} of {} projects failed (lastrun kept): {}",
                failures.len(),
                summary.projects.len(),
                failures.join("; ")
            ));
        }
        if summary.stopped {
            return Err("stopped before every project was done".into());
        }
        let mut counts = summary.counts();
        // ssmsend's job, when configured: what is queued now (this run's
        // messages and any a previous send left) goes to AMS. A failed send
        // keeps the elements queued for the next run; lastrun has already
        // advanced, because the records are safe in the queue.
        if let Some(ams) = &self.settings.ams {
            let queues: Vec<std::path::PathBuf> = self
                .settings
                .queues
                .values()
                .cloned()
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let mut sender = Sender::new(ams).map_err(|e| format!("AMS: {e}"))?;
            let report = sender.run(&queues).await;
            let sent = report.count(|o| matches!(o, super::send::Outcome::Sent { .. }));
            counts.insert("messages_sent".into(), sent as u64);
            if !report.all_sent() {
                return Err(format!(
                    "records queued, but {} of {} messages were not sent to AMS (kept in the queue): {}",
                    report.elements.len() - sent,
                    report.elements.len(),
                    report.errors.join("; ")
                ));
            }
        }
        Ok(RunReport { counts })
    }
}
