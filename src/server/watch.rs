//! Reload when the files behind the configuration change: fetch-crl
//! rewrites CRLs every few hours (a temporary file renamed over
//! `<hash>.rN`), IGTF package updates replace hundreds of files at once,
//! certificates get renewed, and none of it should need an operator to send
//! SIGHUP.
//!
//! `[tls] watch` picks the way: inotify (default) on the CA directory, the
//! vomsdir (with its VO subdirectories) and the directories holding the host
//! certificate, key and configuration file; polling every
//! `watch_interval_secs` when asked or when inotify cannot be set up (no
//! such directory, too many watches); or nothing. Either way a reload waits
//! until the files have been quiet for `watch_debounce_ms`, so a burst of
//! writes is one reload and no file is read half-written, and it happens
//! only when the files really differ from those of the last reload
//! (modification time, size, inode and change time). A reload that fails is
//! logged by [`Shared::reload`], which keeps the running state.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher, event::AccessKind, event::AccessMode};
use tokio::sync::mpsc;

use super::Shared;
use crate::config::Config;
use crate::shutdown::Shutdown;
use crate::tls::WatchMode;

/// Modification time, change time, size and inode of one path (`None`:
/// missing). A file renamed into place has a new inode and change time,
/// even when a package preserved its modification time.
type Stamp = Option<(i64, i64, i64, i64, u64, u64)>;

/// The stamps of every watched path, directories with their entries (and
/// the vomsdir's VO subdirectories with theirs).
type Fingerprint = Vec<(PathBuf, Stamp)>;

fn stamp(p: &Path) -> Stamp {
    let m = std::fs::metadata(p).ok()?;
    Some((
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
        m.len(),
        m.ino(),
    ))
}

fn fingerprint_into(p: &Path, depth: u8, out: &mut Fingerprint) {
    out.push((p.to_path_buf(), stamp(p)));
    if depth == 0 || !p.is_dir() {
        return;
    }
    if let Ok(rd) = std::fs::read_dir(p) {
        let mut entries: Vec<_> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        entries.sort();
        for e in entries {
            fingerprint_into(&e, depth - 1, out);
        }
    }
}

/// What is watched, and how, for one configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Plan {
    mode: WatchMode,
    interval: Duration,
    debounce: Duration,
    /// Host certificate, key and configuration file.
    files: Vec<PathBuf>,
    /// CA directory (entries) and vomsdir (VO subdirectories too).
    dirs: Vec<(PathBuf, bool)>,
    /// Which of `dirs` exist: one that appears changes the inotify set-up.
    present: Vec<bool>,
}

impl Plan {
    fn of(c: &Config) -> Plan {
        let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        let dirs = vec![
            (abs(c.tls.ca_dir.get_ref()), false),
            (abs(c.voms.dir.get_ref()), true),
        ];
        Plan {
            mode: c.tls.watch,
            interval: c.tls.watch_interval(),
            debounce: c.tls.watch_debounce(),
            files: vec![
                abs(&c.source.path),
                abs(c.tls.certificate.get_ref()),
                abs(c.tls.private_key.get_ref()),
            ],
            present: dirs.iter().map(|(d, _)| d.is_dir()).collect(),
            dirs,
        }
    }

    fn fingerprint(&self) -> Fingerprint {
        let mut out = Vec::new();
        for f in &self.files {
            fingerprint_into(f, 0, &mut out);
        }
        for (d, recursive) in &self.dirs {
            fingerprint_into(d, if *recursive { 2 } else { 1 }, &mut out);
        }
        out
    }

    /// Whether a path an event names is one of ours.
    fn concerns(&self, p: &Path) -> bool {
        self.files.iter().any(|f| f == p) || self.dirs.iter().any(|(d, _)| p.starts_with(d))
    }

    /// Directories to give inotify: each watched directory that exists
    /// (the vomsdir recursively) and the parent of every watched path, so
    /// that a file or directory replaced by rename is seen. `None`: a path
    /// whose parent is missing, which only polling can follow.
    fn inotify_dirs(&self) -> Option<BTreeMap<PathBuf, bool>> {
        let mut out: BTreeMap<PathBuf, bool> = BTreeMap::new();
        let parents = self
            .files
            .iter()
            .chain(self.dirs.iter().map(|(d, _)| d))
            .map(|p| p.parent().map(Path::to_path_buf));
        for parent in parents {
            let parent = parent?;
            if !parent.is_dir() {
                return None;
            }
            out.entry(parent).or_insert(false);
        }
        for ((d, recursive), present) in self.dirs.iter().zip(&self.present) {
            if *present {
                let r = out.entry(d.clone()).or_insert(false);
                *r |= *recursive;
            }
        }
        Some(out)
    }
}

/// Whether an inotify event can change what a reload reads. Opening and
/// reading (a reload's own reads among them) cannot.
fn changes(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// What the inotify thread tells the watcher task.
enum Signal {
    Changed,
    /// inotify failed (a queue overflow is `Changed`; this is an error,
    /// such as no watch left for a new VO directory).
    Failed(String),
}

/// How a watching loop ended.
enum End {
    /// A reload brought other watch settings: set up again.
    Replan,
    /// inotify failed after set-up: poll instead.
    Fallback,
    Shutdown,
}

/// Watches the files of the running configuration and reloads when they
/// change, until `shutdown`. Follows the watch settings across reloads.
pub async fn watch_files(shared: Arc<Shared>, shutdown: Shutdown) {
    let mut force_poll = false;
    loop {
        let plan = Plan::of(&shared.runtime.load().config);
        let end = match plan.mode {
            WatchMode::Off => {
                tracing::info!("tls.watch = \"off\": files are not watched; SIGHUP reloads");
                idle(&shared, &plan, &shutdown).await
            }
            WatchMode::Inotify if !force_poll => match Inotify::start(&plan) {
                Ok(w) => {
                    tracing::info!(
                        debounce_ms = plan.debounce.as_millis() as u64,
                        "watching the CA directory, vomsdir, host credentials and configuration with inotify"
                    );
                    w.run(&shared, &plan, &shutdown).await
                }
                Err(e) => {
                    tracing::warn!(error = %e, interval_secs = plan.interval.as_secs(), "inotify cannot watch the files: polling instead");
                    poll(&shared, &plan, &shutdown).await
                }
            },
            WatchMode::Inotify | WatchMode::Poll => {
                tracing::info!(
                    interval_secs = plan.interval.as_secs(),
                    debounce_ms = plan.debounce.as_millis() as u64,
                    "watching the CA directory, vomsdir, host credentials and configuration by polling"
                );
                poll(&shared, &plan, &shutdown).await
            }
        };
        match end {
            End::Shutdown => return,
            End::Fallback => force_poll = true,
            End::Replan => force_poll = false,
        }
    }
}

/// Whether a reload (by SIGHUP or by us) changed the watch settings.
fn replanned(shared: &Shared, plan: &Plan) -> bool {
    Plan::of(&shared.runtime.load().config) != *plan
}

/// `watch = "off"`: only waits for a reload that turns watching on.
async fn idle(shared: &Shared, plan: &Plan, shutdown: &Shutdown) -> End {
    let mut reloads = shared.reloads();
    loop {
        tokio::select! {
            r = reloads.changed() => {
                if r.is_err() { return End::Shutdown; }
                if replanned(shared, plan) { return End::Replan; }
            }
            _ = shutdown.wait() => return End::Shutdown,
        }
    }
}

/// Reloads when the files differ from `base`, the fingerprint of the last
/// reload; returns the new base.
async fn reload_if_changed(
    shared: &Shared,
    plan: &Plan,
    base: Fingerprint,
    why: &str,
) -> Fingerprint {
    let now = plan.fingerprint();
    if now == base {
        tracing::debug!(trigger = why, "watched files unchanged: no reload");
        return base;
    }
    let changed: Vec<String> = changed_paths(&base, &now);
    tracing::info!(trigger = why, changed = %changed.join(" "), "watched files changed: reloading");
    // Failures are logged there, and the running state is kept.
    let _ = shared.reload().await;
    now
}

/// Up to 5 paths that differ between two fingerprints, for the log line.
fn changed_paths(a: &Fingerprint, b: &Fingerprint) -> Vec<String> {
    let old: BTreeMap<_, _> = a.iter().cloned().collect();
    let new: BTreeMap<_, _> = b.iter().cloned().collect();
    let mut out: Vec<String> = new
        .iter()
        .filter(|(p, s)| old.get(*p) != Some(s))
        .chain(old.iter().filter(|(p, _)| !new.contains_key(*p)))
        .map(|(p, _)| p.display().to_string())
        .collect();
    out.sort();
    out.dedup();
    if out.len() > 5 {
        let n = out.len() - 5;
        out.truncate(5);
        out.push(format!("(+{n} more)"));
    }
    out
}

/// The longest a continuous stream of changes can postpone a reload.
fn max_wait(debounce: Duration) -> Duration {
    (debounce * 10).max(Duration::from_secs(10))
}

/// Polls every `plan.interval`; a change is reloaded once the files have
/// been stable for `plan.debounce`.
async fn poll(shared: &Shared, plan: &Plan, shutdown: &Shutdown) -> End {
    let mut reloads = shared.reloads();
    let mut base = plan.fingerprint();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(plan.interval) => {}
            r = reloads.changed() => {
                if r.is_err() { return End::Shutdown; }
                if replanned(shared, plan) { return End::Replan; }
                base = plan.fingerprint();
                continue;
            }
            _ = shutdown.wait() => return End::Shutdown,
        }
        let mut last = plan.fingerprint();
        if last == base {
            continue;
        }
        let deadline = tokio::time::Instant::now() + max_wait(plan.debounce);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(plan.debounce) => {}
                _ = shutdown.wait() => return End::Shutdown,
            }
            let now = plan.fingerprint();
            if now == last || tokio::time::Instant::now() >= deadline {
                break;
            }
            last = now;
        }
        base = reload_if_changed(shared, plan, base, "poll").await;
        reloads.borrow_and_update();
        if replanned(shared, plan) {
            return End::Replan;
        }
    }
}

/// An inotify watcher on the plan's directories, reporting through a
/// channel of capacity one: a signal already waiting says it all.
struct Inotify {
    _watcher: notify::RecommendedWatcher,
    rx: mpsc::Receiver<Signal>,
}

impl Inotify {
    fn start(plan: &Plan) -> Result<Inotify, String> {
        let dirs = plan
            .inotify_dirs()
            .ok_or_else(|| "a watched path's parent directory does not exist".to_string())?;
        let (tx, rx) = mpsc::channel(1);
        let filter = plan.clone();
        let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            let signal = match ev {
                Ok(ev) if ev.need_rescan() => Signal::Changed,
                Ok(ev)
                    if changes(&ev.kind)
                        && (ev.paths.is_empty() || ev.paths.iter().any(|p| filter.concerns(p))) =>
                {
                    Signal::Changed
                }
                Ok(_) => return,
                Err(e) => Signal::Failed(e.to_string()),
            };
            let _ = tx.try_send(signal);
        })
        .map_err(|e| e.to_string())?;
        for (d, recursive) in &dirs {
            let mode = if *recursive {
                RecursiveMode::Recursive
            } else {
                RecursiveMode::NonRecursive
            };
            watcher
                .watch(d, mode)
                .map_err(|e| format!("{}: {e}", d.display()))?;
        }
        Ok(Inotify {
            _watcher: watcher,
            rx,
        })
    }

    async fn run(mut self, shared: &Shared, plan: &Plan, shutdown: &Shutdown) -> End {
        let mut reloads = shared.reloads();
        let mut base = plan.fingerprint();
        loop {
            tokio::select! {
                s = self.rx.recv() => match s {
                    Some(Signal::Changed) => {}
                    Some(Signal::Failed(e)) => {
                        tracing::warn!(error = %e, interval_secs = plan.interval.as_secs(), "inotify failed: polling instead");
                        return End::Fallback;
                    }
                    None => return End::Fallback,
                },
                r = reloads.changed() => {
                    if r.is_err() { return End::Shutdown; }
                    if replanned(shared, plan) { return End::Replan; }
                    base = plan.fingerprint();
                    continue;
                }
                _ = shutdown.wait() => return End::Shutdown,
            }
            // Quiet for the debounce time, or the longest wait.
            let deadline = tokio::time::sleep(max_wait(plan.debounce));
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    s = self.rx.recv() => match s {
                        Some(Signal::Changed) => continue,
                        Some(Signal::Failed(e)) => {
                            tracing::warn!(error = %e, "inotify failed: polling instead");
                            return End::Fallback;
                        }
                        None => return End::Fallback,
                    },
                    _ = tokio::time::sleep(plan.debounce) => break,
                    _ = &mut deadline => break,
                    _ = shutdown.wait() => return End::Shutdown,
                }
            }
            base = reload_if_changed(shared, plan, base, "inotify").await;
            reloads.borrow_and_update();
            if replanned(shared, plan) {
                return End::Replan;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(dir: &Path) -> Plan {
        let d = |n: &str| dir.join(n);
        Plan {
            mode: WatchMode::Inotify,
            interval: Duration::from_secs(30),
            debounce: Duration::from_millis(10),
            files: vec![d("fedgate.toml"), d("hostcert.pem"), d("hostkey.pem")],
            dirs: vec![(d("certificates"), false), (d("vomsdir"), true)],
            present: vec![true, true],
        }
    }

    #[test]
    fn events_of_reads_are_not_changes() {
        assert!(!changes(&EventKind::Access(AccessKind::Open(
            notify::event::AccessMode::Any
        ))));
        assert!(!changes(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(changes(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(changes(&EventKind::Create(notify::event::CreateKind::File)));
        assert!(changes(&EventKind::Remove(notify::event::RemoveKind::Any)));
    }

    #[test]
    fn only_our_paths_concern_us() {
        let p = plan(Path::new("/etc/grid-security"));
        assert!(p.concerns(Path::new("/etc/grid-security/hostcert.pem")));
        assert!(p.concerns(Path::new("/etc/grid-security/certificates/1234abcd.r0")));
        assert!(p.concerns(Path::new("/etc/grid-security/vomsdir/vo/x.lsc")));
        assert!(!p.concerns(Path::new("/etc/grid-security/.hostcert.pem.swp")));
        assert!(!p.concerns(Path::new("/etc/grid-security/other.pem")));
    }

    #[test]
    fn a_vo_file_changes_the_fingerprint() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("vomsdir/vo")).unwrap();
        std::fs::create_dir_all(t.path().join("certificates")).unwrap();
        let p = plan(t.path());
        let a = p.fingerprint();
        assert_eq!(a, p.fingerprint());
        std::fs::write(t.path().join("vomsdir/vo/voms.lsc"), "/CN=x\n").unwrap();
        let b = p.fingerprint();
        assert_ne!(a, b);
        assert_eq!(
            changed_paths(&a, &b),
            vec![
                t.path().join("vomsdir/vo").display().to_string(),
                t.path().join("vomsdir/vo/voms.lsc").display().to_string()
            ]
        );
    }

    #[test]
    fn a_missing_parent_needs_polling() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("certificates")).unwrap();
        let mut p = plan(t.path());
        p.present = vec![true, false];
        let dirs = p.inotify_dirs().unwrap();
        assert_eq!(dirs.get(t.path()), Some(&false));
        assert_eq!(dirs.get(&t.path().join("certificates")), Some(&false));
        assert!(!dirs.contains_key(&t.path().join("vomsdir")));
        p.dirs[1].0 = t.path().join("missing/vomsdir");
        assert!(p.inotify_dirs().is_none());
    }
}
