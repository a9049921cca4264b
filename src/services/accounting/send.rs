//! The built-in `ssmsend`: publishes every element of the outgoing dirq
//! queues to AMS, signed with the host certificate.
//!
//! Per element: lock, read, check ASCII, pick the topic, sign, publish,
//! and remove only after AMS answered 200; at the end, purge. So an
//! element that failed stays queued (nothing lost) and one AMS accepted is
//! gone before the next element starts (nothing doubled). The one window
//! left is a crash between AMS's 200 and the unlink, microseconds wide:
//! AMS has no idempotency key, so that element would go again; the APEL
//! loader's `REPLACE` on (VMUUID, month, year) makes that harmless for
//! cloud records, as it is for `ssmsend`.
//!
//! **Topic by content**, not by queue: StAR XML (`<`) goes to
//! `storage_topic`; the cloud message (`APEL-cloud-message:`), the public
//! IP and accelerator JSON (`{`) go to `cloud_topic`. This serves a cASO
//! queue holding every type as well as one queue per type, and a message
//! can never reach the wrong topic because of a misplaced directory.
//!
//! **Set aside, not sent**: an element that is not ASCII (`ssmsend` would
//! abort on it) or whose type is unknown is moved to `<queue>/rejected/`
//! with a `.reason` file beside it. dirq ignores that directory (not 8 hex
//! digits), the run reports it, and an operator can fix and requeue it.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::ams::{AmsClient, AmsError};
use super::ams_options::AmsOptions;
use super::dirq::Queue;
use super::smime_sign::Signer;

/// dirq's `purge()` defaults: temporaries and locks older than these are
/// left over by a crashed writer or consumer.
const MAX_TEMP: Duration = Duration::from_secs(300);
const MAX_LOCK: Duration = Duration::from_secs(600);
/// Where rejected elements go, inside the queue root.
pub const REJECTED: &str = "rejected";

/// Which topic a message belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicKind {
    Cloud,
    Storage,
}

/// The topic of a message by its first bytes; `None` for anything the
/// APEL loader would not recognise.
pub fn topic_kind(msg: &[u8]) -> Option<TopicKind> {
    let start = msg.iter().position(|b| !b.is_ascii_whitespace())?;
    let body = &msg[start..];
    if body.starts_with(b"<") {
        Some(TopicKind::Storage)
    } else if body.starts_with(b"{") || body.starts_with(b"APEL-cloud-message:") {
        Some(TopicKind::Cloud)
    } else {
        None
    }
}

/// What became of one element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Published (AMS message id) and removed.
    Sent { topic: String, id: String },
    /// Moved to `rejected/` for this reason.
    Rejected(String),
    /// Still queued, for this reason.
    Failed(String),
    /// Locked by another consumer; left alone.
    Busy,
}

/// One line of the run's report.
#[derive(Debug, Clone)]
pub struct ElementReport {
    pub queue: PathBuf,
    pub element: String,
    pub outcome: Outcome,
}

/// The run's report, element by element.
#[derive(Debug, Default)]
pub struct SendReport {
    pub elements: Vec<ElementReport>,
    /// Queue-level failures (unreadable queue, purge errors).
    pub errors: Vec<String>,
}

impl SendReport {
    pub fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.elements.iter().filter(|e| f(&e.outcome)).count()
    }
    /// True when nothing failed and nothing was set aside.
    pub fn all_sent(&self) -> bool {
        self.errors.is_empty()
            && self
                .elements
                .iter()
                .all(|e| matches!(e.outcome, Outcome::Sent { .. } | Outcome::Busy))
    }
}

fn older_than(p: &Path, age: Duration, now: SystemTime) -> bool {
    std::fs::symlink_metadata(p)
        .and_then(|m| m.modified())
        .is_ok_and(|t| now.duration_since(t).is_ok_and(|d| d > age))
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Releases a lock taken with [`Queue::lock`] (dirq's `unlock`).
pub fn unlock(root: &Path, element: &str) -> std::io::Result<()> {
    match std::fs::remove_file(root.join(format!("{element}.lck"))) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// dirq's `QueueSimple.purge()`: drops temporaries older than 5 min and
/// locks older than 10 min, then empty intermediate directories but the
/// newest (a writer may be about to use it).
pub fn purge(root: &Path) -> std::io::Result<()> {
    let now = SystemTime::now();
    let mut dirs: Vec<String> = std::fs::read_dir(root)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|d| is_hex(d, 8))
        .collect();
    dirs.sort();
    for (i, d) in dirs.iter().enumerate() {
        let dir = root.join(d);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut left = 0;
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            let stale = (name.ends_with(".tmp") && older_than(&e.path(), MAX_TEMP, now))
                || (name.ends_with(".lck") && older_than(&e.path(), MAX_LOCK, now));
            if stale {
                tracing::warn!(path = %e.path().display(), "queue purge: removing a stale file");
                std::fs::remove_file(e.path())?;
            } else {
                left += 1;
            }
        }
        if left == 0 && i + 1 < dirs.len() {
            // Raced by a writer that just added to it: then it stays.
            let _ = std::fs::remove_dir(&dir);
        }
    }
    Ok(())
}

/// Moves a locked element to `rejected/` with its reason; the element
/// is never deleted.
fn set_aside(root: &Path, element: &str, reason: &str) -> std::io::Result<PathBuf> {
    let dir = root.join(REJECTED);
    std::fs::create_dir_all(&dir)?;
    let to = dir.join(element.replace('/', "-"));
    std::fs::write(to.with_extension("reason"), format!("{reason}\n"))?;
    std::fs::rename(root.join(element), &to)?;
    unlock(root, element)?;
    Ok(to)
}

/// Why a message cannot be sent as it is, before any network use.
fn refuse(data: &[u8]) -> Option<String> {
    if let Some(pos) = data.iter().position(|b| !b.is_ascii()) {
        return Some(format!(
            "byte 0x{:02x} at offset {pos} is not ASCII; ssmsend would refuse the message",
            data[pos]
        ));
    }
    if topic_kind(data).is_none() {
        return Some(
            "not an APEL message (neither `APEL-cloud-message:`, JSON nor StAR XML)".into(),
        );
    }
    None
}

/// The sender: a signer and an AMS client for one run over some queues.
pub struct Sender {
    opts: AmsOptions,
    signer: Signer,
    ams: AmsClient,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

impl Sender {
    pub fn new(opts: &AmsOptions) -> Result<Sender, AmsError> {
        let signer = Signer::from_pem_files(opts.cert.get_ref(), opts.key.get_ref())
            .map_err(|e| AmsError::Setup(e.to_string()))?;
        Ok(Sender {
            opts: opts.clone(),
            signer,
            ams: AmsClient::new(opts)?,
        })
    }

    /// One element, locked by the caller: sent and removed, set aside, or
    /// unlocked and left queued. The error is returned when it should stop
    /// the run.
    async fn one(&mut self, q: &Queue, root: &Path, element: &str) -> (Outcome, Option<AmsError>) {
        let data = match q.get(element) {
            Ok(d) => d,
            Err(e) => {
                let _ = unlock(root, element);
                return (Outcome::Failed(e.to_string()), None);
            }
        };
        if let Some(reason) = refuse(&data) {
            return match set_aside(root, element, &reason) {
                Ok(to) => {
                    tracing::error!(element, to = %to.display(), "AMS send: not sent, set aside: {reason}");
                    (Outcome::Rejected(reason), None)
                }
                Err(e) => {
                    let _ = unlock(root, element);
                    let why = format!("{reason}; and it could not be set aside: {e}");
                    tracing::error!(element, "AMS send: not sent: {why}");
                    (Outcome::Failed(why), None)
                }
            };
        }
        let topic = match topic_kind(&data) {
            Some(TopicKind::Storage) => self.opts.storage_topic.get_ref().clone(),
            _ => self.opts.cloud_topic.get_ref().clone(),
        };
        let signed = match self.signer.sign_text(&data) {
            Ok(s) => s,
            Err(e) => {
                let _ = unlock(root, element);
                tracing::error!(element, "AMS send: {e}");
                return (Outcome::Failed(e.to_string()), None);
            }
        };
        match self.ams.publish(&topic, element, &signed).await {
            Ok(id) => {
                if let Err(e) = q.remove(element) {
                    // Published but still queued: the next run sends it
                    // again. Say so loudly; the lock stays until purge.
                    tracing::error!(element, "AMS send: published as {id} but not removed: {e}");
                    return (
                        Outcome::Failed(format!("published as {id} but not removed: {e}")),
                        None,
                    );
                }
                tracing::info!(element, topic, id, "AMS send: published");
                (Outcome::Sent { topic, id }, None)
            }
            Err(e) => {
                let _ = unlock(root, element);
                tracing::error!(element, topic, "AMS send: not sent: {e}");
                let stop = e.stops_run();
                (Outcome::Failed(e.to_string()), stop.then_some(e))
            }
        }
    }

    /// Sends every element of every queue, oldest first per queue, then
    /// purges the queues. A failure that would repeat for every element
    /// (credentials, AMS down) ends the run: the rest stays queued.
    pub async fn run(&mut self, queues: &[PathBuf]) -> SendReport {
        let mut report = SendReport::default();
        let mut stopped: Option<String> = None;
        for root in queues {
            let q = match Queue::open(root) {
                Ok(q) => q,
                Err(e) => {
                    tracing::error!("AMS send: {e}");
                    report.errors.push(e.to_string());
                    continue;
                }
            };
            let elements = match q.elements() {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!("AMS send: {e}");
                    report.errors.push(e.to_string());
                    continue;
                }
            };
            for element in elements {
                let outcome = if let Some(why) = &stopped {
                    Outcome::Failed(format!("not attempted: {why}"))
                } else {
                    match q.lock(&element) {
                        Ok(false) => Outcome::Busy,
                        Err(e) => Outcome::Failed(e.to_string()),
                        Ok(true) => {
                            let (o, stop) = self.one(&q, root, &element).await;
                            if let Some(e) = stop {
                                stopped = Some(e.to_string());
                            }
                            o
                        }
                    }
                };
                report.elements.push(ElementReport {
                    queue: root.clone(),
                    element,
                    outcome,
                });
            }
            if let Err(e) = purge(root) {
                let e = format!("queue {}: purge: {e}", root.display());
                tracing::error!("AMS send: {e}");
                report.errors.push(e);
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_by_content() {
        assert_eq!(
            topic_kind(b"APEL-cloud-message: v0.4\n"),
            Some(TopicKind::Cloud)
        );
        assert_eq!(
            topic_kind(b"{\"Type\": \"APEL Public IP message\"}"),
            Some(TopicKind::Cloud)
        );
        assert_eq!(
            topic_kind(b"\n<sr:StorageUsageRecords"),
            Some(TopicKind::Storage)
        );
        assert_eq!(topic_kind(b"APEL-individual-job-message: v0.3\n"), None);
        assert_eq!(topic_kind(b"  \n"), None);
        assert!(
            refuse("APEL-cloud-message: v0.4\nMachineName: é\n".as_bytes())
                .unwrap()
                .contains("0xc3")
        );
        assert!(refuse(b"APEL-cloud-message: v0.4\n").is_none());
    }

    #[test]
    fn rejected_elements_are_kept_aside_and_purge_keeps_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("q");
        let q = Queue::open(&root).unwrap();
        let el = q.add(b"junk").unwrap();
        assert!(q.lock(&el).unwrap());
        let to = set_aside(&root, &el, "why").unwrap();
        assert_eq!(std::fs::read(&to).unwrap(), b"junk");
        assert_eq!(
            std::fs::read_to_string(to.with_extension("reason")).unwrap(),
            "why\n"
        );
        assert!(q.elements().unwrap().is_empty());
        // A fresh lock survives purge; unlock releases it.
        let el = q.add(b"x").unwrap();
        assert!(q.lock(&el).unwrap());
        purge(&root).unwrap();
        assert!(!q.lock(&el).unwrap(), "still locked");
        unlock(&root, &el).unwrap();
        assert!(q.lock(&el).unwrap());
        assert_eq!(q.elements().unwrap(), vec![el]);
    }
}
