//! `[plugins.identities]`: where the identities store lives, how long an
//! identity is kept, and how many logins may wait to be written.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::problem::{Problems, Source};

fn default_path() -> Spanned<PathBuf> {
    Spanned::new(0..0, PathBuf::from("/var/lib/fedgate/identities.sqlite"))
}

/// 400 days: APEL republishes up to a year back, and an identity must
/// outlive the last record it names.
fn default_retention() -> Spanned<u64> {
    Spanned::new(0..0, 400)
}

fn default_queue() -> Spanned<usize> {
    Spanned::new(0..0, 1024)
}

/// The largest accepted `queue`: each waiting login holds a few hundred
/// bytes, so this bounds the memory a stalled writer can pin.
const MAX_QUEUE: usize = 1 << 20;
/// The longest accepted retention, 100 years: beyond it the cutoff
/// arithmetic means "never".
const MAX_RETENTION_DAYS: u64 = 36_500;

/// `[plugins.identities]`. When the section is absent nothing is recorded.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentitiesConfig {
    /// The SQLite file; its directory must exist. SQLite adds `-wal` and
    /// `-shm` files beside it.
    #[serde(default = "default_path")]
    pub path: Spanned<PathBuf>,
    /// Entries not seen for this many days are deleted.
    #[serde(default = "default_retention")]
    pub retention_days: Spanned<u64>,
    /// Logins waiting to be written; when full, further logins are not
    /// recorded (`fedgate_identity_records_dropped_total`), never delayed.
    #[serde(default = "default_queue")]
    pub queue: Spanned<usize>,
}

impl Default for IdentitiesConfig {
    fn default() -> Self {
        IdentitiesConfig {
            path: default_path(),
            retention_days: default_retention(),
            queue: default_queue(),
        }
    }
}

impl IdentitiesConfig {
    pub fn path(&self) -> &std::path::Path {
        self.path.get_ref()
    }

    pub fn retention(&self) -> Duration {
        Duration::from_secs(
            self.retention_days
                .get_ref()
                .min(&MAX_RETENTION_DAYS)
                .saturating_mul(86_400),
        )
    }

    pub fn queue(&self) -> usize {
        (*self.queue.get_ref()).clamp(1, MAX_QUEUE)
    }

    pub(crate) fn validate(&self, src: &Source, p: &mut Problems) {
        let days = *self.retention_days.get_ref();
        if !(1..=MAX_RETENTION_DAYS).contains(&days) {
            p.push(src.problem(
                &self.retention_days,
                format!("plugins.identities.retention_days must be 1 to {MAX_RETENTION_DAYS}"),
            ));
        }
        let q = *self.queue.get_ref();
        if !(1..=MAX_QUEUE).contains(&q) {
            p.push(src.problem(
                &self.queue,
                format!("plugins.identities.queue must be 1 to {MAX_QUEUE}"),
            ));
        }
        let path = self.path.get_ref();
        if path.as_os_str().is_empty() || path.is_dir() {
            p.push(src.problem(
                &self.path,
                format!(
                    "plugins.identities.path {:?} must name a file",
                    path.display().to_string()
                ),
            ));
        } else {
            match path.parent() {
                Some(d) if d.as_os_str().is_empty() || d.is_dir() => {}
                _ => p.push(src.problem(
                    &self.path,
                    format!(
                        "plugins.identities.path {}: its directory does not exist",
                        path.display()
                    ),
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(toml_text: &str) -> Vec<String> {
        let src = Source {
            path: "fedgate.toml".into(),
            text: toml_text.into(),
        };
        let cfg: IdentitiesConfig = toml::from_str(toml_text).unwrap();
        let mut p = Problems::default();
        cfg.validate(&src, &mut p);
        p.0.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn defaults() {
        let c: IdentitiesConfig = toml::from_str("").unwrap();
        assert_eq!(
            c.path(),
            std::path::Path::new("/var/lib/fedgate/identities.sqlite")
        );
        assert_eq!(c.retention(), Duration::from_secs(400 * 86_400));
        assert_eq!(c.queue(), 1024);
        assert_eq!(c, IdentitiesConfig::default());
    }

    #[test]
    fn keys_are_read_and_checked_with_their_line() {
        let c: IdentitiesConfig =
            toml::from_str("path = \"/tmp/x.sqlite\"\nretention_days = 7\nqueue = 3").unwrap();
        assert_eq!(c.path(), std::path::Path::new("/tmp/x.sqlite"));
        assert_eq!(c.retention(), Duration::from_secs(7 * 86_400));
        assert_eq!(c.queue(), 3);
        assert!(problems("path = \"/tmp/x.sqlite\"").is_empty());
        let p = problems("path = \"/nonexistent-dir/x.sqlite\"\nretention_days = 0\nqueue = 0");
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(
            p[0].starts_with("fedgate.toml:2: plugins.identities.retention_days"),
            "{p:?}"
        );
        assert!(
            p[1].starts_with("fedgate.toml:3: plugins.identities.queue"),
            "{p:?}"
        );
        assert!(
            p[2].starts_with("fedgate.toml:1:") && p[2].contains("directory"),
            "{p:?}"
        );
        let p = problems("path = \"/tmp\"");
        assert!(p[0].contains("must name a file"), "{p:?}");
        assert!(toml::from_str::<IdentitiesConfig>("paht = \"/tmp/x\"").is_err());
    }

    /// The section is validated with the other plugins' sections.
    #[test]
    fn plugins_validate_the_section() {
        let text = "[heartbeat]\npath = \"/tmp/beat\"\n[identities]\nqueue = 0\npath = \"/tmp/ids.sqlite\"\n";
        let plugins: crate::services::PluginsConfig = toml::from_str(text).unwrap();
        let src = Source {
            path: "fedgate.toml".into(),
            text: text.into(),
        };
        let mut p = Problems::default();
        plugins.validate(&src, &mut p);
        assert_eq!(p.0.len(), 1, "{p}");
        assert!(
            p.0[0]
                .to_string()
                .starts_with("fedgate.toml:4: plugins.identities.queue"),
            "{p}"
        );
        let none: crate::services::PluginsConfig = toml::from_str("").unwrap();
        assert!(none.identities.is_none(), "absent: nothing is recorded");
    }
}
