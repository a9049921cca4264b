//! One accounting run (spec A3): lock → projects → per project: window →
//! extract → messages of at most `max_size` records per type → each
//! message durably into its type's queue → only then lastrun = to + 1 s.
//!
//! Nothing lost, nothing doubled:
//! * a project's lastrun moves only after all its messages are in their
//!   queues and fsynced ([`Queue::add`]), so lastrun is never ahead of the
//!   queue;
//! * a process killed at any point leaves lastrun at the start of the
//!   window it was working on, so the next run repeats at most that
//!   window; the APEL repository replaces a repeated record (cloud records
//!   are cumulative, keyed by VM and month);
//! * a project whose extraction, serialisation or queueing fails keeps its
//!   lastrun; its reason is reported and the other projects go on;
//! * an explicit `--from` later than the stored lastrun would leave a gap,
//!   so such a run does not move lastrun; nor does a window that ends
//!   before it (a republished month) move it back.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;

use super::config::{RecordType, Settings};
use super::dirq::Queue;
use super::source::{ProjectRef, Usage, Window};
use super::state::{self, RunLock, StateError};
use super::wire;
use crate::shutdown::Shutdown;
/// The stop signal a run obeys.
pub use crate::shutdown::Shutdown as Stop;

/// Where projects and their usage come from: the extractor in
/// production, anything in tests.
pub trait UsageSource: Send + Sync {
    /// The projects to account, with their VOs.
    fn projects(&self) -> impl Future<Output = Result<Vec<ProjectRef>, String>> + Send;
    /// One project's records for a window.
    fn extract(
        &self,
        project: &ProjectRef,
        window: Window,
    ) -> impl Future<Output = Result<Usage, String>> + Send;
}

/// What the caller asks of a run (the CLI's flags; empty for the
/// scheduled plugin).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Window start; default the project's lastrun, else 1970.
    pub from: Option<i64>,
    /// Window end; default now; clamped to now.
    pub to: Option<i64>,
    /// Only these projects (id or name); empty: all.
    pub only: Vec<String>,
    /// Extract and render, but queue nothing and keep lastrun.
    pub dry_run: bool,
    /// Keep each project's usage and messages in the outcome (the CLI
    /// prints them).
    pub keep: bool,
}

/// How one project fared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectStatus {
    /// Queued (or rendered, in a dry run); lastrun advanced unless
    /// `advanced` is false.
    Ok { advanced: bool },
    /// Nothing to do (window empty or in the future).
    Skipped(String),
    /// Kept its lastrun.
    Failed(String),
}

#[derive(Debug, Clone)]
pub struct ProjectOutcome {
    pub project: ProjectRef,
    pub window: Option<Window>,
    pub status: ProjectStatus,
    /// Records queued (or rendered), per type.
    pub records: BTreeMap<RecordType, u64>,
    pub messages: BTreeMap<RecordType, u64>,
    /// With [`RunOptions::keep`]: the usage and the rendered messages.
    pub usage: Option<Usage>,
    pub rendered: Vec<(RecordType, String)>,
}

/// A whole run.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    pub projects: Vec<ProjectOutcome>,
    /// Stopped before every project was done (those not reached are
    /// absent and kept their lastrun).
    pub stopped: bool,
}

impl RunSummary {
    /// `records_<type>`, `messages_<type>`, `projects_ok`,
    /// `projects_failed`, `projects_skipped`: the plugin's report.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        let mut c = BTreeMap::new();
        for t in RecordType::ALL {
            c.insert(format!("records_{}", t.as_str()), 0);
            c.insert(format!("messages_{}", t.as_str()), 0);
        }
        for k in ["projects_ok", "projects_failed", "projects_skipped"] {
            c.insert(k.to_string(), 0);
        }
        for p in &self.projects {
            let k = match p.status {
                ProjectStatus::Ok { .. } => "projects_ok",
                ProjectStatus::Failed(_) => "projects_failed",
                ProjectStatus::Skipped(_) => "projects_skipped",
            };
            *c.entry(k.into()).or_default() += 1;
            for (t, n) in &p.records {
                *c.entry(format!("records_{}", t.as_str())).or_default() += n;
            }
            for (t, n) in &p.messages {
                *c.entry(format!("messages_{}", t.as_str())).or_default() += n;
            }
        }
        c
    }

    /// The failed projects and why, one line.
    pub fn failures(&self) -> Vec<String> {
        self.projects
            .iter()
            .filter_map(|p| match &p.status {
                ProjectStatus::Failed(r) => Some(format!("{}: {r}", p.project.id)),
                _ => None,
            })
            .collect()
    }
}

/// Why a run did nothing at all.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("lock: {0}")]
    Lock(#[source] StateError),
    #[error("cannot list the projects: {0}")]
    Projects(String),
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The messages of one usage, per type, in queue order.
pub fn render(usage: &Usage, max_size: usize) -> Vec<(RecordType, String)> {
    let mut out = Vec::new();
    let mut add = |t, msgs: Vec<String>| out.extend(msgs.into_iter().map(|m| (t, m)));
    add(
        RecordType::Cloud,
        wire::batches(&usage.cloud, max_size, wire::cloud_message),
    );
    add(
        RecordType::Ip,
        wire::batches(&usage.ip, max_size, wire::ip_message),
    );
    add(
        RecordType::Accelerator,
        wire::batches(&usage.accelerator, max_size, wire::accelerator_message),
    );
    add(
        RecordType::Storage,
        wire::batches(&usage.storage, max_size, wire::storage_message),
    );
    out
}

fn count(usage: &Usage, t: RecordType) -> usize {
    match t {
        RecordType::Cloud => usage.cloud.len(),
        RecordType::Ip => usage.ip.len(),
        RecordType::Accelerator => usage.accelerator.len(),
        RecordType::Storage => usage.storage.len(),
    }
}

/// Runs once at time `now` (Unix seconds; `None`: the clock).
pub async fn run<S: UsageSource>(
    settings: &Settings,
    source: &S,
    opts: &RunOptions,
    now: Option<i64>,
    stop: &Shutdown,
) -> Result<RunSummary, RunError> {
    let now = now.unwrap_or_else(unix_now);
    let _lock = if opts.dry_run {
        None
    } else {
        Some(RunLock::acquire(&settings.lock_path).map_err(RunError::Lock)?)
    };
    let mut projects = source.projects().await.map_err(RunError::Projects)?;
    if !opts.only.is_empty() {
        projects.retain(|p| opts.only.iter().any(|o| *o == p.id || *o == p.name));
    }
    let mut queues: BTreeMap<PathBuf, Queue> = BTreeMap::new();
    let mut summary = RunSummary::default();
    for project in projects {
        if stop.is_triggered() {
            summary.stopped = true;
            break;
        }
        let mut out = ProjectOutcome {
            project: project.clone(),
            window: None,
            status: ProjectStatus::Ok { advanced: false },
            records: BTreeMap::new(),
            messages: BTreeMap::new(),
            usage: None,
            rendered: Vec::new(),
        };
        let result = one_project(settings, source, opts, now, stop, &mut queues, &mut out).await;
        match result {
            Ok(status) => out.status = status,
            Err(Stopped) => {
                summary.stopped = true;
                break;
            }
        }
        if let ProjectStatus::Failed(r) = &out.status {
            tracing::warn!(plugin = "accounting", project = %project.id, reason = %r, "project not accounted; its lastrun is kept");
        }
        summary.projects.push(out);
    }
    Ok(summary)
}

/// Stopped mid-project: nothing of it counts.
struct Stopped;

async fn one_project<S: UsageSource>(
    settings: &Settings,
    source: &S,
    opts: &RunOptions,
    now: i64,
    stop: &Shutdown,
    queues: &mut BTreeMap<PathBuf, Queue>,
    out: &mut ProjectOutcome,
) -> Result<ProjectStatus, Stopped> {
    let project = &out.project;
    let failed = |r: String| Ok(ProjectStatus::Failed(r));
    let stored = match state::read_lastrun(&settings.spooldir, &project.id) {
        Ok(t) => t,
        // An explicit --from does not need the file, but a broken file is
        // still worth failing on: the operator must look at it.
        Err(e) => return failed(format!("lastrun: {e}")),
    };
    let from = opts.from.or(stored).unwrap_or(0);
    let to = opts.to.unwrap_or(now).min(now);
    if from >= now {
        return Ok(ProjectStatus::Skipped(format!(
            "the window starts at {} (now {})",
            state::format_lastrun(from),
            state::format_lastrun(now)
        )));
    }
    if from > to {
        return Ok(ProjectStatus::Skipped(
            "the window is empty (from > to)".into(),
        ));
    }
    let window = Window { from, to };
    out.window = Some(window);
    if project.vo.is_none() {
        return failed("no VO: neither the project property nor the mapping names one".into());
    }
    let usage = tokio::select! {
        u = source.extract(project, window) => u,
        () = stop.wait() => return Err(Stopped),
    };
    let usage = match usage {
        Ok(u) => u,
        Err(e) => return failed(format!("extraction: {e}")),
    };
    let mut messages = render(&usage, settings.max_size);
    // Types that are not queued are dropped here (`record_types`).
    messages.retain(|(t, _)| settings.queues.contains_key(t));
    for (t, m) in &messages {
        // ssmsend gives up on a file at its first non-ASCII byte; wire.rs
        // never writes one, and we never queue one.
        if !m.is_ascii() {
            return failed(format!("a {} message is not ASCII", t.as_str()));
        }
        *out.messages.entry(*t).or_default() += 1;
    }
    for t in RecordType::ALL {
        if settings.queues.contains_key(&t) && count(&usage, t) > 0 {
            out.records.insert(t, count(&usage, t) as u64);
        }
    }
    if opts.keep {
        out.usage = Some(usage);
        out.rendered = messages.clone();
    }
    if opts.dry_run {
        return Ok(ProjectStatus::Ok { advanced: false });
    }
    for (t, m) in &messages {
        let path = &settings.queues[t];
        if !queues.contains_key(path) {
            match Queue::open(path.clone()) {
                Ok(q) => {
                    queues.insert(path.clone(), q);
                }
                Err(e) => return failed(e.to_string()),
            }
        }
        if let Err(e) = queues[path].add(m.as_bytes()) {
            return failed(e.to_string());
        }
    }
    // Every message is durable: the window may move on.
    let gap = matches!(stored, Some(s) if from > s);
    let behind = matches!(stored, Some(s) if to < s);
    if gap || behind {
        return Ok(ProjectStatus::Ok { advanced: false });
    }
    if let Err(e) = std::fs::create_dir_all(&settings.spooldir)
        .map_err(|e| format!("{}: {e}", settings.spooldir.display()))
        .and_then(|()| {
            state::write_lastrun(&settings.spooldir, &project.id, to + 1).map_err(|e| e.to_string())
        })
    {
        return failed(format!(
            "lastrun: {e} (its records are queued and will be sent again)"
        ));
    }
    Ok(ProjectStatus::Ok { advanced: true })
}

#[cfg(test)]
mod tests {
    use super::super::wire::samples;
    use super::*;
    use std::sync::Mutex;

    /// Projects and usage given in advance; records the windows asked.
    #[derive(Default)]
    struct Fixed {
        projects: Vec<ProjectRef>,
        usage: BTreeMap<String, Result<Usage, String>>,
        asked: Mutex<Vec<(String, Window)>>,
    }

    impl UsageSource for Fixed {
        async fn projects(&self) -> Result<Vec<ProjectRef>, String> {
            Ok(self.projects.clone())
        }
        async fn extract(&self, p: &ProjectRef, w: Window) -> Result<Usage, String> {
            self.asked.lock().unwrap().push((p.id.clone(), w));
            self.usage
                .get(&p.id)
                .cloned()
                .unwrap_or(Ok(Usage::default()))
        }
    }

    fn project(id: &str) -> ProjectRef {
        ProjectRef {
            id: id.into(),
            name: format!("name-{id}"),
            vo: Some("vo.example.org".into()),
        }
    }

    fn settings(dir: &std::path::Path) -> Settings {
        let text = format!(
            "site_name = \"S\"\nspooldir = \"{0}/spool\"\noutput_path = \"{0}/out\"\n\
             max_size = 3\nqueue_path = {{ storage = \"{0}/storage\" }}\n\
             [keystone]\nauth_url = \"http://k\"\nusername = \"u\"\npassword = \"p\"\n",
            dir.display()
        );
        toml::from_str::<super::super::config::AccountingConfig>(&text)
            .unwrap()
            .settings()
            .unwrap()
    }

    fn usage(n: u32) -> Usage {
        Usage {
            cloud: (0..n).map(samples::cloud).collect(),
            ip: vec![samples::ip(4), samples::ip(6)],
            accelerator: vec![samples::accelerator()],
            storage: vec![samples::storage()],
        }
    }

    const NOW: i64 = 1_714_867_200; // 2024-05-05 00:00:00

    #[tokio::test]
    async fn queues_then_advances_and_failures_keep_lastrun() {
        let tmp = tempfile::tempdir().unwrap();
        let s = settings(tmp.path());
        let src = Fixed {
            projects: vec![project("a"), project("b"), project("c")],
            usage: [
                ("a".to_string(), Ok(usage(7))),
                ("b".to_string(), Err("nova: 500".to_string())),
            ]
            .into(),
            ..Default::default()
        };
        std::fs::create_dir_all(&s.spooldir).unwrap();
        std::fs::write(s.spooldir.join("lastrun.a"), "2024-05-04 00:00:00+00:00").unwrap();
        std::fs::write(s.spooldir.join("lastrun.b"), "2024-05-04 00:00:00+00:00").unwrap();
        let stop = Shutdown::new();
        let sum = run(&s, &src, &RunOptions::default(), Some(NOW), &stop)
            .await
            .unwrap();
        let c = sum.counts();
        assert_eq!(c["records_cloud"], 7);
        assert_eq!(c["messages_cloud"], 3, "7 records, 3 a message");
        assert_eq!(c["records_ip"], 2);
        assert_eq!(c["records_storage"], 1);
        assert_eq!((c["projects_ok"], c["projects_failed"]), (2, 1));
        assert_eq!(sum.failures(), ["b: extraction: nova: 500"]);
        // a: window from its lastrun; lastrun = to + 1.
        let asked = src.asked.lock().unwrap().clone();
        assert_eq!(
            asked[0],
            (
                "a".into(),
                Window {
                    from: NOW - 86400,
                    to: NOW
                }
            )
        );
        assert_eq!(asked[2], ("c".into(), Window { from: 0, to: NOW }));
        assert_eq!(
            std::fs::read_to_string(s.spooldir.join("lastrun.a")).unwrap(),
            "2024-05-05 00:00:01+00:00"
        );
        assert_eq!(
            std::fs::read_to_string(s.spooldir.join("lastrun.b")).unwrap(),
            "2024-05-04 00:00:00+00:00",
            "a failed extraction keeps lastrun"
        );
        assert!(s.spooldir.join("lastrun.c").exists());
        let out = Queue::open(tmp.path().join("out")).unwrap();
        let storage = Queue::open(tmp.path().join("storage")).unwrap();
        // 3 cloud + 1 ip + 1 accelerator; storage on its own.
        assert_eq!(out.elements().unwrap().len(), 5);
        assert_eq!(storage.elements().unwrap().len(), 1);
        // Running again right away: a's window starts after now: skipped.
        let sum = run(&s, &src, &RunOptions::default(), Some(NOW), &stop)
            .await
            .unwrap();
        assert!(matches!(sum.projects[0].status, ProjectStatus::Skipped(_)));
        assert_eq!(out.elements().unwrap().len(), 5, "nothing doubled");
    }

    #[tokio::test]
    async fn broken_lastrun_no_vo_and_unwritable_queue_fail_the_project() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = settings(tmp.path());
        let mut novo = project("n");
        novo.vo = None;
        let src = Fixed {
            projects: vec![project("x"), novo, project("q")],
            usage: [("q".to_string(), Ok(usage(1)))].into(),
            ..Default::default()
        };
        std::fs::create_dir_all(&s.spooldir).unwrap();
        std::fs::write(s.spooldir.join("lastrun.x"), "not a time").unwrap();
        // The storage queue is below a file: it cannot be created.
        std::fs::write(tmp.path().join("file"), "").unwrap();
        s.queues
            .insert(RecordType::Storage, tmp.path().join("file/storage"));
        let sum = run(
            &s,
            &src,
            &RunOptions::default(),
            Some(NOW),
            &Shutdown::new(),
        )
        .await
        .unwrap();
        let f = sum.failures();
        assert_eq!(f.len(), 3, "{f:?}");
        assert!(f[0].starts_with("x: lastrun:"), "{f:?}");
        assert!(f[1].starts_with("n: no VO"), "{f:?}");
        assert!(f[2].contains("file/storage"), "{f:?}");
        assert_eq!(src.asked.lock().unwrap().len(), 1, "only q was extracted");
        assert!(!s.spooldir.join("lastrun.q").exists());
        assert!(!s.spooldir.join("lastrun.n").exists());
    }

    #[tokio::test]
    async fn dry_run_explicit_windows_and_filters() {
        let tmp = tempfile::tempdir().unwrap();
        let s = settings(tmp.path());
        let src = Fixed {
            projects: vec![project("a"), project("b")],
            usage: [("a".to_string(), Ok(usage(2)))].into(),
            ..Default::default()
        };
        let stop = Shutdown::new();
        let dry = RunOptions {
            dry_run: true,
            keep: true,
            only: vec!["name-a".into()],
            from: Some(NOW - 3600),
            to: Some(NOW + 3600),
        };
        let sum = run(&s, &src, &dry, Some(NOW), &stop).await.unwrap();
        assert_eq!(sum.projects.len(), 1);
        assert_eq!(
            sum.projects[0].window,
            Some(Window {
                from: NOW - 3600,
                to: NOW
            }),
            "to is clamped to now"
        );
        assert_eq!(sum.projects[0].rendered.len(), 4);
        assert!(!tmp.path().join("out").exists(), "a dry run queues nothing");
        assert!(!s.spooldir.join("lastrun.a").exists());
        // Republishing an old window does not move lastrun back; a --from
        // after lastrun (a gap) does not move it forward.
        std::fs::create_dir_all(&s.spooldir).unwrap();
        state::write_lastrun(&s.spooldir, "a", NOW - 100).unwrap();
        let old = RunOptions {
            from: Some(NOW - 86400 * 30),
            to: Some(NOW - 86400 * 29),
            ..Default::default()
        };
        run(&s, &src, &old, Some(NOW), &stop).await.unwrap();
        assert_eq!(
            state::read_lastrun(&s.spooldir, "a").unwrap(),
            Some(NOW - 100)
        );
        let gap = RunOptions {
            from: Some(NOW - 50),
            ..Default::default()
        };
        let sum = run(&s, &src, &gap, Some(NOW), &stop).await.unwrap();
        assert_eq!(
            sum.projects[0].status,
            ProjectStatus::Ok { advanced: false }
        );
        assert_eq!(
            state::read_lastrun(&s.spooldir, "a").unwrap(),
            Some(NOW - 100)
        );
        // A stopped run touches nothing.
        stop.trigger();
        let sum = run(&s, &src, &RunOptions::default(), Some(NOW), &stop)
            .await
            .unwrap();
        assert!(sum.stopped && sum.projects.is_empty());
        assert_eq!(
            state::read_lastrun(&s.spooldir, "a").unwrap(),
            Some(NOW - 100)
        );
    }

    /// The queue is written before lastrun: when lastrun cannot be
    /// written, the records are queued, the project fails, and the next
    /// run repeats exactly that window (never skips it).
    #[tokio::test]
    async fn lastrun_is_never_ahead_of_the_queue() {
        let tmp = tempfile::tempdir().unwrap();
        let s = settings(tmp.path());
        let src = Fixed {
            projects: vec![project("a")],
            usage: [("a".to_string(), Ok(usage(2)))].into(),
            ..Default::default()
        };
        std::fs::create_dir_all(&s.spooldir).unwrap();
        state::write_lastrun(&s.spooldir, "a", NOW - 3600).unwrap();
        // The temporary lastrun cannot be created: a directory is in its way.
        let blocker = s.spooldir.join(".lastrun.a.tmp");
        std::fs::create_dir(&blocker).unwrap();
        let stop = Shutdown::new();
        let sum = run(&s, &src, &RunOptions::default(), Some(NOW), &stop)
            .await
            .unwrap();
        assert!(
            sum.failures()[0].starts_with("a: lastrun:"),
            "{:?}",
            sum.failures()
        );
        let out = Queue::open(tmp.path().join("out")).unwrap();
        assert_eq!(out.elements().unwrap().len(), 3, "queued before lastrun");
        assert_eq!(
            state::read_lastrun(&s.spooldir, "a").unwrap(),
            Some(NOW - 3600)
        );
        std::fs::remove_dir(&blocker).unwrap();
        let sum = run(&s, &src, &RunOptions::default(), Some(NOW + 60), &stop)
            .await
            .unwrap();
        assert!(sum.failures().is_empty());
        let asked = src.asked.lock().unwrap().clone();
        assert_eq!(asked[0].1, asked[1].1.with_to(NOW), "the same window again");
        assert_eq!(
            out.elements().unwrap().len(),
            6,
            "one window repeated, no more"
        );
        assert_eq!(
            state::read_lastrun(&s.spooldir, "a").unwrap(),
            Some(NOW + 61)
        );
    }

    trait WithTo {
        fn with_to(self, to: i64) -> Window;
    }
    impl WithTo for Window {
        fn with_to(self, to: i64) -> Window {
            Window { to, ..self }
        }
    }

    #[tokio::test]
    async fn a_second_run_waits_for_none_and_fails_on_the_lock() {
        let tmp = tempfile::tempdir().unwrap();
        let s = settings(tmp.path());
        let _held = RunLock::acquire(&s.lock_path).unwrap();
        let src = Fixed {
            projects: vec![project("a")],
            ..Default::default()
        };
        let e = run(
            &s,
            &src,
            &RunOptions::default(),
            Some(NOW),
            &Shutdown::new(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(e, RunError::Lock(StateError::Locked { .. })),
            "{e}"
        );
        assert!(src.asked.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn non_ascii_fields_never_reach_the_queue() {
        let tmp = tempfile::tempdir().unwrap();
        let s = settings(tmp.path());
        let mut u = usage(1);
        u.cloud[0].machine_name = "vm-ñ-日本".into();
        u.cloud[0].global_user_name = Some("Jürgen".into());
        u.ip[0].fqan = "vö".into();
        u.accelerator[0].model = "Ünicode".into();
        u.storage[0].local_user = "ü".into();
        let src = Fixed {
            projects: vec![project("a")],
            usage: [("a".to_string(), Ok(u))].into(),
            ..Default::default()
        };
        run(
            &s,
            &src,
            &RunOptions::default(),
            Some(NOW),
            &Shutdown::new(),
        )
        .await
        .unwrap();
        for dir in ["out", "storage"] {
            let q = Queue::open(tmp.path().join(dir)).unwrap();
            for e in q.elements().unwrap() {
                let b = std::fs::read(tmp.path().join(dir).join(&e)).unwrap();
                assert!(b.is_ascii(), "{}", String::from_utf8_lossy(&b));
            }
        }
        let out = std::fs::read_dir(tmp.path().join("out")).unwrap().count();
        assert!(out > 0);
    }
}
