//! The accounting state, in caso's own files so that a site switching
//! from caso continues where it stopped (spec A3):
//!
//! * `<spooldir>/lastrun.<project-id>`: where the next window starts, as
//!   Python's `str(datetime)` of an aware UTC time,
//!   `2024-05-05 00:00:01+00:00` (no newline). We write it durably: a
//!   temporary beside it, fsync, rename, fsync of the directory; a crash
//!   leaves the old or the new content, never a torn one.
//! * `<lock_path>/caso_should_not_run_in_parallel`: one run at a time.
//!   We hold both a `flock` and a POSIX `lockf` lock on it: caso's
//!   oslo.concurrency external lock (fasteners) is a POSIX lock, so a caso
//!   still installed is kept out too, and `flock` also excludes a second
//!   run inside this process (POSIX locks are per process). Both go away
//!   with the process, so a killed run leaves no stale lock.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The lock file's name, caso's.
pub const LOCK_NAME: &str = "caso_should_not_run_in_parallel";
/// The lastrun files' prefix.
pub const LASTRUN_PREFIX: &str = "lastrun.";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: cannot parse {text:?} as a time: {reason}", path.display())]
    Unparseable {
        path: PathBuf,
        text: String,
        reason: &'static str,
    },
    #[error("another run holds {}", path.display())]
    Locked { path: PathBuf },
    #[error("project id {0:?} cannot name a file")]
    BadProjectId(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_owned(),
        source,
    }
}

/// `<spooldir>/lastrun.<project-id>`.
pub fn lastrun_path(spooldir: &Path, project_id: &str) -> Result<PathBuf, StateError> {
    if project_id.is_empty() || project_id.starts_with('.') || project_id.contains(['/', '\0']) {
        return Err(StateError::BadProjectId(project_id.into()));
    }
    Ok(spooldir.join(format!("{LASTRUN_PREFIX}{project_id}")))
}

/// `2024-05-05 00:00:01+00:00`, as caso writes it.
pub fn format_lastrun(t: i64) -> String {
    let d =
        time::OffsetDateTime::from_unix_timestamp(t).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}+00:00",
        d.year(),
        u8::from(d.month()),
        d.day(),
        d.hour(),
        d.minute(),
        d.second()
    )
}

fn num(s: &str, len: usize) -> Option<i64> {
    (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// A time as caso writes (`str(datetime)`) and as dateutil reads the
/// usual forms: `YYYY-MM-DD[( |T)HH:MM[:SS[.ffffff]]][Z|±HH:MM|±HHMM]`,
/// naive = UTC. Fractions of a second are dropped (the window then
/// starts up to a second early; APEL replaces the duplicate). Unix
/// seconds.
pub fn parse_time(text: &str) -> Result<i64, &'static str> {
    let s = text.trim();
    let (date, rest) = match s.find([' ', 'T']) {
        Some(i) => (&s[..i], s[i + 1..].trim_start()),
        None => (s, ""),
    };
    let mut d = date.split('-');
    let (Some(y), Some(m), Some(dd), None) = (d.next(), d.next(), d.next(), d.next()) else {
        return Err("the date is not YYYY-MM-DD");
    };
    let (Some(y), Some(m), Some(dd)) = (num(y, 4), num(m, 2), num(dd, 2)) else {
        return Err("the date is not YYYY-MM-DD");
    };
    let month = u8::try_from(m)
        .ok()
        .and_then(|m| time::Month::try_from(m).ok())
        .ok_or("no such month")?;
    let date =
        time::Date::from_calendar_date(y as i32, month, dd as u8).map_err(|_| "no such day")?;
    // Split the zone off the time.
    let (clock, zone) = match rest.find(['+', '-', 'Z']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let mut secs = 0;
    if !clock.is_empty() {
        let clock = clock.split('.').next().unwrap_or("");
        let parts: Vec<&str> = clock.split(':').collect();
        let field = |i: usize, max: i64| -> Result<i64, &'static str> {
            match parts.get(i) {
                None => Ok(0),
                Some(p) => num(p, 2)
                    .filter(|v| *v < max)
                    .ok_or("the time is not HH:MM:SS"),
            }
        };
        if parts.len() < 2 || parts.len() > 3 {
            return Err("the time is not HH:MM:SS");
        }
        secs = field(0, 24)? * 3600 + field(1, 60)? * 60 + field(2, 61)?;
    }
    let offset = match zone {
        "" | "Z" => 0,
        z => {
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let z = z[1..].replace(':', "");
            let (Some(h), Some(m)) = (
                z.get(..2).and_then(|h| num(h, 2)),
                z.get(2..).and_then(|m| num(m, 2)),
            ) else {
                return Err("the zone is not ±HH:MM");
            };
            if h > 23 || m > 59 {
                return Err("the zone is not ±HH:MM");
            }
            sign * (h * 3600 + m * 60)
        }
    };
    let midnight = date.midnight().assume_utc().unix_timestamp();
    Ok(midnight + secs - offset)
}

/// A project's lastrun: `None` when there is no file (a first run).
pub fn read_lastrun(spooldir: &Path, project_id: &str) -> Result<Option<i64>, StateError> {
    let path = lastrun_path(spooldir, project_id)?;
    let text = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&path)(e)),
    };
    let text = String::from_utf8_lossy(&text).into_owned();
    parse_time(&text)
        .map(Some)
        .map_err(|reason| StateError::Unparseable { path, text, reason })
}

/// Replaces a project's lastrun with `t`, durably.
pub fn write_lastrun(spooldir: &Path, project_id: &str, t: i64) -> Result<(), StateError> {
    let path = lastrun_path(spooldir, project_id)?;
    // Not a `lastrun.` name, so a reader listing projects never takes it
    // for one.
    let tmp = spooldir.join(format!(".{LASTRUN_PREFIX}{project_id}.tmp"));
    let mut f = File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(format_lastrun(t).as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(io(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    File::open(spooldir)
        .and_then(|d| d.sync_all())
        .map_err(io(spooldir))
}

/// A project id and its lastrun (or why it cannot be read).
pub type Lastrun = (String, Result<i64, StateError>);

/// Every `lastrun.<project-id>` in the spool directory, by project id.
pub fn lastruns(spooldir: &Path) -> Result<Vec<Lastrun>, StateError> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(spooldir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io(spooldir)(e)),
    };
    for e in entries {
        let e = e.map_err(io(spooldir))?;
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        if let Some(id) = name.strip_prefix(LASTRUN_PREFIX) {
            let t = read_lastrun(spooldir, id)
                .and_then(|t| t.ok_or_else(|| io(&e.path())(std::io::ErrorKind::NotFound.into())));
            out.push((id.to_string(), t));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The run lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Takes `<dir>/caso_should_not_run_in_parallel` without waiting.
    pub fn acquire(dir: &Path) -> Result<RunLock, StateError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join(LOCK_NAME);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io(&path))?;
        let fd = file.as_raw_fd();
        let busy = |e: std::io::Error| match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) | Some(libc::EACCES) => {
                StateError::Locked { path: path.clone() }
            }
            _ => io(&path)(e),
        };
        if flock(fd) != 0 {
            return Err(busy(std::io::Error::last_os_error()));
        }
        if lockf(fd) != 0 {
            return Err(busy(std::io::Error::last_os_error()));
        }
        Ok(RunLock { _file: file })
    }
}

#[allow(unsafe_code)]
fn flock(fd: i32) -> i32 {
    // SAFETY: flock(2) on an open descriptor owned by the caller.
    unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) }
}

#[allow(unsafe_code)]
fn lockf(fd: i32) -> i32 {
    // SAFETY: lockf(3) on an open descriptor owned by the caller; length 0
    // locks the whole file, as Python's fcntl.lockf does.
    unsafe { libc::lockf(fd, libc::F_TLOCK, 0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caso_format_round_trips() {
        assert_eq!(format_lastrun(1714867201), "2024-05-05 00:00:01+00:00");
        assert_eq!(parse_time("2024-05-05 00:00:01+00:00"), Ok(1714867201));
        for (text, t) in [
            ("2024-05-05 00:00:01.123456+00:00", 1714867201),
            ("2024-05-05T00:00:01Z", 1714867201),
            ("2024-05-05 02:00:01+02:00", 1714867201),
            ("2024-05-04 22:00:01-0200", 1714867201),
            ("2024-05-05 00:00:01-0200", 1714867201 + 2 * 3600),
            ("2024-05-05 00:00:01\n", 1714867201),
            ("2024-05-05", 1714867200),
            ("2024-05-05 00:00", 1714867200),
            ("1970-01-01 00:00:00+00:00", 0),
        ] {
            assert_eq!(parse_time(text), Ok(t), "{text}");
        }
        for bad in [
            "",
            "yesterday",
            "2024-13-01",
            "2024-02-30 00:00:00",
            "2024-05-05 25:00:00",
            "2024-05-05 00:00:00+99:00",
            "1714867201",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lastrun_files_are_casos() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        assert_eq!(read_lastrun(dir, "p1").unwrap(), None);
        // A file caso wrote is read.
        std::fs::write(dir.join("lastrun.p1"), "2024-05-05 00:00:01+00:00").unwrap();
        assert_eq!(read_lastrun(dir, "p1").unwrap(), Some(1714867201));
        write_lastrun(dir, "p1", 1714953601).unwrap();
        assert_eq!(
            std::fs::read(dir.join("lastrun.p1")).unwrap(),
            b"2024-05-06 00:00:01+00:00"
        );
        // No temporary stays behind.
        let names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["lastrun.p1"]);
        std::fs::write(dir.join("lastrun.p2"), "garbage").unwrap();
        let e = read_lastrun(dir, "p2").unwrap_err();
        assert!(e.to_string().contains("lastrun.p2"), "{e}");
        let all = lastruns(dir).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].1.as_ref().ok(), Some(&1714953601));
        assert!(all[1].1.is_err());
        assert!(lastrun_path(dir, "../x").is_err());
        assert!(lastrun_path(dir, "").is_err());
    }

    #[test]
    fn one_lock_holder_at_a_time() {
        let tmp = tempfile::tempdir().unwrap();
        let a = RunLock::acquire(tmp.path()).unwrap();
        let e = RunLock::acquire(tmp.path()).unwrap_err();
        assert!(matches!(e, StateError::Locked { .. }), "{e}");
        drop(a);
        let _b = RunLock::acquire(tmp.path()).unwrap();
        assert!(tmp.path().join(LOCK_NAME).is_file());
    }
}
