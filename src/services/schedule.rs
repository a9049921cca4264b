//! Scheduled plugins: a [`Plugin`] does one unit of work per
//! [`run_once`](Plugin::run_once) (an accounting extraction, an image-list
//! sync), and [`Scheduled`] turns it into a [`Service`] that runs it on a
//! [`Schedule`].
//!
//! * Runs of one plugin never overlap: the next run is planned when the
//!   previous one has returned. A run that outlasts its interval delays the
//!   next one instead of piling runs up. A reload that changes the section
//!   stops the old service (waiting for its run, see
//!   [`ServiceSet`](super::ServiceSet)) before the new one starts.
//! * Stopping is cooperative: `run_once` gets the stop signal and must
//!   return promptly, leaving no state advanced for work it did not finish.
//! * Each plugin's status (last and next run, last error, counts) is kept in
//!   a process-wide board, because the admin listener and the metrics
//!   encoder, above this layer, read it while services are built from their
//!   sections alone.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;
use tokio::time::Instant;

use super::{Service, ServiceError, Stop};

// `Schedule::parse` reads the accounting and image plugins' `schedule`
// keys, which come with those plugins; until then only the tests and
// `Every` (heartbeat) use the rest.
/// When a plugin runs.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// At start, then this long after each run started (later if a run
    /// took longer).
    Every(Duration),
    /// At these minutes past every hour (UTC), sorted.
    Hourly(Vec<u32>),
    /// At these seconds of every day (UTC), sorted.
    Daily(Vec<u32>),
}

impl std::fmt::Display for Schedule {
    /// The form [`Schedule::parse`] reads.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Schedule::Every(d) => write!(f, "every {}s", d.as_secs()),
            Schedule::Hourly(m) => {
                let m: Vec<String> = m.iter().map(u32::to_string).collect();
                write!(f, "hourly {}", m.join(","))
            }
            Schedule::Daily(s) => {
                let t: Vec<String> = s
                    .iter()
                    .map(|s| format!("{:02}:{:02}", s / 3600, s % 3600 / 60))
                    .collect();
                write!(f, "daily {}", t.join(","))
            }
        }
    }
}

/// A schedule that does not parse.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("schedule {text:?}: {reason} (expected \"every 30m\", \"hourly 5,35\" or \"daily 03:15\")")]
pub struct ScheduleError {
    pub text: String,
    pub reason: &'static str,
}

#[cfg_attr(not(test), allow(dead_code))]
impl Schedule {
    /// `every <n>s|m|h|d`, `hourly <minute>[,<minute>...]` or
    /// `daily <HH:MM>[,<HH:MM>...]`, times in UTC.
    pub fn parse(text: &str) -> Result<Schedule, ScheduleError> {
        let err = |reason| ScheduleError {
            text: text.into(),
            reason,
        };
        let (kind, arg) = text.trim().split_once(' ').ok_or(err("no argument"))?;
        let arg = arg.trim();
        match kind {
            "every" => {
                let split = arg
                    .find(|c: char| !c.is_ascii_digit())
                    .ok_or(err("no unit"))?;
                let n: u64 = arg[..split].parse().map_err(|_| err("not a number"))?;
                let unit = match &arg[split..] {
                    "s" => 1,
                    "m" => 60,
                    "h" => 3600,
                    "d" => 86400,
                    _ => return Err(err("unknown unit")),
                };
                let secs = n.checked_mul(unit).ok_or(err("too long"))?;
                if secs == 0 {
                    return Err(err("the interval must be at least 1s"));
                }
                Ok(Schedule::Every(Duration::from_secs(secs)))
            }
            "hourly" | "daily" => {
                let mut at = Vec::new();
                for t in arg.split(',') {
                    let t = t.trim();
                    let v = if kind == "hourly" {
                        t.parse::<u32>()
                            .ok()
                            .filter(|m| *m < 60 && !t.is_empty())
                            .ok_or(err("a minute is 0 to 59"))?
                    } else {
                        let (h, m) = t.split_once(':').ok_or(err("a time is HH:MM"))?;
                        match (h.parse::<u32>(), m.parse::<u32>()) {
                            (Ok(h), Ok(m)) if h < 24 && m < 60 && m.to_string().len() <= 2 => {
                                h * 3600 + m * 60
                            }
                            _ => return Err(err("a time is HH:MM")),
                        }
                    };
                    at.push(v);
                }
                at.sort_unstable();
                at.dedup();
                Ok(if kind == "hourly" {
                    Schedule::Hourly(at)
                } else {
                    Schedule::Daily(at)
                })
            }
            _ => Err(err("unknown kind")),
        }
    }

    /// Seconds from `now` (Unix) to the next wall-clock run strictly after
    /// it; `None` for [`Schedule::Every`], which is not tied to the clock.
    pub fn wall_delay(&self, now: u64) -> Option<u64> {
        let (period, offsets): (u64, Vec<u64>) = match self {
            Schedule::Every(_) => return None,
            Schedule::Hourly(m) => (3600, m.iter().map(|m| u64::from(*m) * 60).collect()),
            Schedule::Daily(s) => (86400, s.iter().map(|s| u64::from(*s)).collect()),
        };
        let into = now % period;
        let next = offsets
            .iter()
            .find(|o| **o > into)
            .map(|o| o - into)
            .or_else(|| offsets.first().map(|o| period - into + o))
            .unwrap_or(period);
        Some(next)
    }
}

/// What a successful run reports: counts by name (records, messages, ...).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunReport {
    pub counts: BTreeMap<String, u64>,
}

/// A plugin run on a schedule.
pub trait Plugin: Send + Sync + Sized + 'static {
    type Config: Clone + PartialEq + Send + Sync + 'static;
    /// Its key under `[plugins]`, its log field, metrics label and admin
    /// path (`/plugins/<name>`).
    const NAME: &'static str;

    fn build(cfg: &Self::Config) -> Result<Self, ServiceError>;

    fn schedule(&self) -> &Schedule;

    /// One unit of work. On error, nothing the run did may count as done
    /// (state such as an accounting window does not advance).
    fn run_once(&self, stop: &Stop) -> impl Future<Output = Result<RunReport, String>> + Send;
}

/// A plugin's status, as `/plugins/<name>` serves it. Times are Unix
/// seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PluginStatus {
    pub name: String,
    pub schedule: String,
    /// `idle`, `running` or `stopped`.
    pub state: &'static str,
    pub runs: u64,
    pub failures: u64,
    pub last_start: Option<u64>,
    pub last_end: Option<u64>,
    pub last_duration_secs: Option<f64>,
    pub last_success: Option<u64>,
    /// `ok` or `error`.
    pub last_result: Option<&'static str>,
    pub last_error: Option<String>,
    pub last_error_at: Option<u64>,
    pub next_run: Option<u64>,
    /// The counts of the last successful run.
    pub counts: BTreeMap<String, u64>,
}

static BOARD: Mutex<BTreeMap<&'static str, PluginStatus>> = Mutex::new(BTreeMap::new());

fn board() -> MutexGuard<'static, BTreeMap<&'static str, PluginStatus>> {
    // A panic while holding the lock leaves a status, not a broken
    // invariant: keep serving it.
    BOARD.lock().unwrap_or_else(|p| p.into_inner())
}

fn update(name: &'static str, f: impl FnOnce(&mut PluginStatus)) {
    let mut b = board();
    let s = b.entry(name).or_insert_with(|| PluginStatus {
        name: name.into(),
        state: "idle",
        ..Default::default()
    });
    f(s);
}

/// The status of one plugin, if it ever ran in this process.
pub fn status(name: &str) -> Option<PluginStatus> {
    board().get(name).cloned()
}

/// Every plugin's status, by name.
pub fn statuses() -> Vec<PluginStatus> {
    board().values().cloned().collect()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabel {
    plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    plugin: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CountLabels {
    plugin: String,
    count: String,
}

/// The plugins' metrics (prefix `fedgate_plugin_`), built from the board
/// at each scrape.
pub fn metrics_registry() -> Registry {
    let mut reg = Registry::with_prefix("fedgate_plugin");
    let runs = Family::<RunLabels, Counter>::default();
    let running = Family::<PluginLabel, Gauge>::default();
    let last_success = Family::<PluginLabel, Gauge>::default();
    let next_run = Family::<PluginLabel, Gauge>::default();
    let duration = Family::<PluginLabel, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    let counts = Family::<CountLabels, Gauge>::default();
    for s in statuses() {
        let p = || PluginLabel {
            plugin: s.name.clone(),
        };
        for (result, n) in [("ok", s.runs - s.failures), ("error", s.failures)] {
            runs.get_or_create(&RunLabels {
                plugin: s.name.clone(),
                result: result.into(),
            })
            .inc_by(n);
        }
        running
            .get_or_create(&p())
            .set(i64::from(s.state == "running"));
        let secs = |t: Option<u64>| t.map_or(0, |t| i64::try_from(t).unwrap_or(i64::MAX));
        last_success.get_or_create(&p()).set(secs(s.last_success));
        next_run.get_or_create(&p()).set(secs(s.next_run));
        duration
            .get_or_create(&p())
            .set(s.last_duration_secs.unwrap_or(0.0));
        for (k, v) in &s.counts {
            counts
                .get_or_create(&CountLabels {
                    plugin: s.name.clone(),
                    count: k.clone(),
                })
                .set(i64::try_from(*v).unwrap_or(i64::MAX));
        }
    }
    reg.register("runs", "Plugin runs, by plugin and result", runs);
    reg.register("running", "1 while a plugin run is in progress", running);
    reg.register(
        "last_success_timestamp_seconds",
        "Unix time a plugin last finished a run successfully (0: never)",
        last_success,
    );
    reg.register(
        "next_run_timestamp_seconds",
        "Unix time of a plugin's next planned run (0: none planned)",
        next_run,
    );
    reg.register(
        "last_run_duration_seconds",
        "How long a plugin's last run took",
        duration,
    );
    reg.register(
        "count",
        "Counts reported by a plugin's last successful run",
        counts,
    );
    reg
}

/// A [`Plugin`] run as a [`Service`] on its schedule.
pub struct Scheduled<P>(pub P);

impl<P: Plugin> Service for Scheduled<P> {
    type Config = P::Config;
    const NAME: &'static str = P::NAME;

    fn build(cfg: &P::Config) -> Result<Self, ServiceError> {
        P::build(cfg).map(Scheduled)
    }

    async fn run(self: Arc<Self>, stop: Stop) {
        let plugin = &self.0;
        let sched = plugin.schedule().clone();
        let planned = |sched: &Schedule, last_start: Option<Instant>| -> Instant {
            let now = Instant::now();
            match (sched, last_start) {
                (Schedule::Every(d), Some(s)) => (s + *d).max(now),
                (Schedule::Every(_), None) => now,
                (wall, _) => now + Duration::from_secs(wall.wall_delay(unix_now()).unwrap_or(60)),
            }
        };
        update(P::NAME, |s| {
            s.schedule = sched.to_string();
            s.state = "idle";
        });
        let mut next = planned(&sched, None);
        loop {
            let wait = next.saturating_duration_since(Instant::now());
            update(P::NAME, |s| s.next_run = Some(unix_now() + wait.as_secs()));
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = stop.wait() => break,
            }
            let started = Instant::now();
            let started_unix = unix_now();
            update(P::NAME, |s| {
                s.state = "running";
                s.next_run = None;
                s.last_start = Some(started_unix);
            });
            let result = plugin.run_once(&stop).await;
            let took = started.elapsed();
            let end = unix_now();
            // One error line per outage, not one per run.
            let was_failing = status(P::NAME).and_then(|s| s.last_result) == Some("error");
            match &result {
                Ok(r) if was_failing => {
                    tracing::info!(plugin = P::NAME, counts = ?r.counts, "plugin run succeeded again")
                }
                Ok(r) => {
                    tracing::debug!(plugin = P::NAME, seconds = took.as_secs_f64(), counts = ?r.counts, "plugin run finished")
                }
                Err(e) if !was_failing => {
                    tracing::error!(plugin = P::NAME, seconds = took.as_secs_f64(), error = %e, "plugin run failed")
                }
                Err(e) => tracing::debug!(plugin = P::NAME, error = %e, "plugin run failed again"),
            }
            update(P::NAME, |s| {
                s.state = "idle";
                s.runs += 1;
                s.last_end = Some(end);
                s.last_duration_secs = Some(took.as_secs_f64());
                match result {
                    Ok(r) => {
                        s.last_result = Some("ok");
                        s.last_success = Some(end);
                        s.counts = r.counts;
                    }
                    Err(e) => {
                        s.last_result = Some("error");
                        s.failures += 1;
                        s.last_error = Some(e);
                        s.last_error_at = Some(end);
                    }
                }
            });
            if stop.is_triggered() {
                break;
            }
            next = planned(&sched, Some(started));
        }
        update(P::NAME, |s| {
            s.state = "stopped";
            s.next_run = None;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    #[test]
    fn schedules_parse() {
        assert_eq!(
            Schedule::parse("every 90s"),
            Ok(Schedule::Every(Duration::from_secs(90)))
        );
        assert_eq!(
            Schedule::parse(" every 2h "),
            Ok(Schedule::Every(Duration::from_secs(7200)))
        );
        assert_eq!(
            Schedule::parse("hourly 35, 5"),
            Ok(Schedule::Hourly(vec![5, 35]))
        );
        assert_eq!(
            Schedule::parse("daily 03:15,00:00"),
            Ok(Schedule::Daily(vec![0, 3 * 3600 + 15 * 60]))
        );
        for bad in [
            "every",
            "every 0s",
            "every 5",
            "every 5w",
            "every x1s",
            "hourly 60",
            "hourly ",
            "daily 24:00",
            "daily 3",
            "daily 03:155",
            "weekly 1",
            "",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn wall_clock_delays() {
        let h = Schedule::parse("hourly 5,35").unwrap();
        // 10:00:00 → 10:05; 10:05:00 → 10:35; 10:50 → 11:05.
        let ten = 1_714_557_600; // 2024-05-01T10:00:00Z
        assert_eq!(h.wall_delay(ten), Some(300));
        assert_eq!(h.wall_delay(ten + 300), Some(1800));
        assert_eq!(h.wall_delay(ten + 3000), Some(900));
        let d = Schedule::parse("daily 03:15").unwrap();
        assert_eq!(d.wall_delay(ten), Some(86400 - 10 * 3600 + 3 * 3600 + 900));
        assert_eq!(d.wall_delay(ten - 7 * 3600 + 900 - 1), Some(1));
        assert_eq!(Schedule::parse("every 1s").unwrap().wall_delay(ten), None);
        for text in ["every 90s", "hourly 5,35", "daily 00:00,03:15"] {
            assert_eq!(Schedule::parse(text).unwrap().to_string(), text);
        }
    }

    /// Counts runs and overlapping runs; fails every other run; its runs
    /// take `busy`, longer than the interval.
    struct Probe {
        schedule: Schedule,
        busy: Duration,
        runs: Arc<AtomicUsize>,
        inside: Arc<AtomicBool>,
        overlapped: Arc<AtomicBool>,
    }

    impl Plugin for Probe {
        type Config = ();
        const NAME: &'static str = "schedule-probe";
        fn build(_: &()) -> Result<Self, ServiceError> {
            unreachable!("built by hand")
        }
        fn schedule(&self) -> &Schedule {
            &self.schedule
        }
        async fn run_once(&self, stop: &Stop) -> Result<RunReport, String> {
            if self.inside.swap(true, Ordering::SeqCst) {
                self.overlapped.store(true, Ordering::SeqCst);
            }
            let n = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::select! {
                _ = tokio::time::sleep(self.busy) => {}
                _ = stop.wait() => {}
            }
            self.inside.store(false, Ordering::SeqCst);
            if n % 2 == 0 {
                return Err(format!("run {n} failed"));
            }
            Ok(RunReport {
                counts: [("records".to_string(), n as u64)].into(),
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn runs_never_overlap_report_status_and_stop() {
        let runs = Arc::new(AtomicUsize::new(0));
        let overlapped = Arc::new(AtomicBool::new(false));
        let svc = Arc::new(Scheduled(Probe {
            schedule: Schedule::Every(Duration::from_secs(10)),
            busy: Duration::from_secs(15),
            runs: runs.clone(),
            inside: Arc::new(AtomicBool::new(false)),
            overlapped: overlapped.clone(),
        }));
        let stop = Stop::new();
        let task = tokio::spawn(svc.run(stop.clone()));
        // Runs start at 0, 15, 30, 45, ... (each delayed by the previous).
        tokio::time::sleep(Duration::from_secs(50)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 4);
        assert!(!overlapped.load(Ordering::SeqCst));
        let s = status("schedule-probe").unwrap();
        assert_eq!((s.runs, s.failures), (3, 1));
        assert_eq!(s.state, "running");
        assert_eq!(s.last_result, Some("ok"));
        assert_eq!(s.last_error.as_deref(), Some("run 2 failed"));
        assert_eq!(s.counts.get("records"), Some(&3));
        assert_eq!(s.last_duration_secs, Some(15.0));
        let text = {
            let mut out = String::new();
            prometheus_client::encoding::text::encode(&mut out, &metrics_registry()).unwrap();
            out
        };
        assert!(
            text.contains(
                "fedgate_plugin_runs_total{plugin=\"schedule-probe\",result=\"error\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("fedgate_plugin_running{plugin=\"schedule-probe\"} 1"));
        assert!(
            text.contains("fedgate_plugin_count{plugin=\"schedule-probe\",count=\"records\"} 3")
        );
        // Stop mid-run: the run is told, finishes, the service returns.
        stop.trigger();
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("stops promptly")
            .unwrap();
        let s = status("schedule-probe").unwrap();
        assert_eq!((s.state, s.runs, s.next_run), ("stopped", 4, None));
        assert_eq!(s.last_result, Some("error"), "run 4 fails");
        assert_eq!(
            s.counts.get("records"),
            Some(&3),
            "a failed run keeps the last counts"
        );
    }
}
