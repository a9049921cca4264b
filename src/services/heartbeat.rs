//! `[plugins.heartbeat]`: writes the current Unix time to a file at an
//! interval.
//!
//! The smallest useful service: a site's monitoring (`check_file_age`,
//! monit's `timestamp` test) can see that fedgate's service host is alive
//! and scheduling, which is what the accounting and image plugins rely on.
//! The file is replaced atomically (write beside it, then rename), so a
//! reader never sees it half-written.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::schedule::{Plugin, RunReport, Schedule};
use super::{ServiceError, Stop};
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

/// The heartbeat plugin, run by [`Scheduled`](super::schedule::Scheduled).
pub struct Heartbeat {
    path: PathBuf,
    schedule: Schedule,
}

/// Replaces `path` with `text` in one rename.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

impl Plugin for Heartbeat {
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
            schedule: Schedule::Every(Duration::from_secs(cfg.interval_secs)),
        })
    }

    fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    async fn run_once(&self, _stop: &Stop) -> Result<RunReport, String> {
        let now = crate::pki::unix_now();
        write_atomically(&self.path, &format!("{now}\n"))
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))?;
        Ok(RunReport::default())
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
