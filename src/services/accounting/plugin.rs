//! The scheduled accounting plugin (`[plugins.accounting]`, name
//! `accounting`): on its schedule, one [`run`](super::run::run) against
//! OpenStack through the extractor.

use std::sync::Arc;

use super::config::{AccountingConfig, Settings};
use super::extract::Extractor;
use super::run::{RunOptions, UsageSource, run};
use super::source::{IdentityLookup, NoIdentities, ProjectRef, Usage, Window};
use crate::services::ServiceError;
use crate::services::schedule::{Plugin, RunReport, Schedule};
use crate::shutdown::Shutdown;

/// The extractor as the run's [`UsageSource`].
pub struct OpenStackSource {
    pub extractor: Extractor,
    /// The gateway's identity store; [`NoIdentities`] until it is wired.
    pub identities: Arc<dyn IdentityLookup>,
}

impl OpenStackSource {
    /// Authenticates with the section's Keystone credentials.
    pub async fn connect(settings: &Settings) -> Result<OpenStackSource, String> {
        let extractor = Extractor::connect(settings.extract.clone())
            .await
            .map_err(|e| e.to_string())?;
        Ok(OpenStackSource {
            extractor,
            identities: Arc::new(NoIdentities),
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
        Ok(RunReport {
            counts: summary.counts(),
        })
    }
}
