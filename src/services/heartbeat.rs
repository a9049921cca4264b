//! `[plugins.heartbeat]`: writes the current Unix time to a file at an
//! interval.
//!
//! The smallest useful service: a site's monitoring (`check_file_age`,
//! monit's `timestamp` test) can see that fedgate's service host is alive
//! and scheduling, which is what the accounting and image plugins rely on.
//! The file is replaced atomically (write beside it, then rename), so a
//! reader never sees it half-written.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{Service, ServiceError, Stop};
use crate::problem::{Problems, Source};

fn default_interval() -> u64 {
    60
}

/// `[plugins.heartbeat]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatConfig {
    /// The file to write; its directory must exist.
    pub path: Spanned<PathBuf>,
    /// Seconds between writes.
    #[serde(default = "default_interval")]
    pub interval_secs: u64,
}

impl HeartbeatConfig {
    pub(crate) fn validate(&self, src: &Source, p: &mut Problems) {
        if self.interval_secs == 0 {
            p.push(src.problem(
                &self.path,
                "plugins.heartbeat.interval_secs must be at least 1",
            ));
        }
        match self.path.get_ref().parent() {
            Some(d) if d.as_os_str().is_empty() || d.is_dir() => {}
            _ => p.push(src.problem(
                &self.path,
                format!(
                    "plugins.heartbeat.path {}: its directory does not exist",
                    self.path.get_ref().display()
                ),
            )),
        }
    }
}

/// The heartbeat service.
pub struct Heartbeat {
    path: PathBuf,
    every: Duration,
}

/// Replaces `path` with `text` in one rename.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

impl Service for Heartbeat {
    type Config = HeartbeatConfig;
    const NAME: &'static str = "heartbeat";

    fn build(cfg: &HeartbeatConfig) -> Result<Self, ServiceError> {
        if cfg.interval_secs == 0 {
            return Err(ServiceError::new(
                Self::NAME,
                "interval_secs must be at least 1",
            ));
        }
        Ok(Heartbeat {
            path: cfg.path.get_ref().clone(),
            every: Duration::from_secs(cfg.interval_secs),
        })
    }

    async fn run(self: Arc<Self>, stop: Stop) {
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait() => return,
            }
            let now = crate::pki::unix_now();
            match write_atomically(&self.path, &format!("{now}\n")) {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!(service = Self::NAME, path = %self.path.display(), "heartbeat written again");
                }
                Ok(()) => {}
                // One line per outage, not one per tick.
                Err(e) if !failing => {
                    failing = true;
                    tracing::error!(service = Self::NAME, path = %self.path.display(), error = %e, "cannot write the heartbeat file");
                }
                Err(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_checks() {
        let src = Source::default();
        let cfg: HeartbeatConfig =
            toml::from_str("path = \"/nonexistent-dir/x\"\ninterval_secs = 0").unwrap();
        let mut p = Problems::default();
        cfg.validate(&src, &mut p);
        assert_eq!(p.0.len(), 2, "{p}");
        assert!(Heartbeat::build(&cfg).is_err());
        assert!(toml::from_str::<HeartbeatConfig>("path = \"/tmp/x\"\nevery = 3").is_err());
    }
}
