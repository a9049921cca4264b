//! The outgoing queue that APEL's `ssmsend` reads: a directory queue in
//! the layout of Python `dirq.QueueSimple` (dirq 1.8, the queue SSM uses).
//!
//! An element is the file `<root>/<dir>/<name>`: `<dir>` is 8 hex digits,
//! the Unix time rounded down to 60 s; `<name>` is 14 hex digits, the Unix
//! seconds (8), the microseconds (5) and one digit chosen per process.
//! Readers ignore any other name. A writer creates `<name>.tmp` exclusively,
//! then hard-links it to `<name>` and unlinks the temporary, so a reader
//! never sees a partial element. A consumer locks an element with a hard
//! link `<name>.lck` and removes both links when done.
//!
//! We also fsync the element and its directories before reporting it
//! queued: the accounting window advances only after this returns, so a
//! crash must not lose an element that was reported queued.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Why the queue could not be written or read.
#[derive(Debug, thiserror::Error)]
#[error("queue {}: {source}", path.display())]
pub struct QueueError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> QueueError + '_ {
    move |source| QueueError {
        path: path.to_owned(),
        source,
    }
}

const GRANULARITY: u64 = 60;
const LOCKED: &str = ".lck";
const TEMPORARY: &str = ".tmp";

fn is_hex_name(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A `QueueSimple` directory queue.
pub struct Queue {
    root: PathBuf,
    rndhex: u32,
}

impl Queue {
    /// Opens the queue at `root`, creating the directory if needed.
    pub fn open(root: impl Into<PathBuf>) -> Result<Queue, QueueError> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(io(&root))?;
        Ok(Queue {
            root,
            // The last digit keeps two processes adding in the same
            // microsecond apart; dirq picks it per queue object.
            rndhex: std::process::id() & 0xf,
        })
    }

    fn name(&self) -> (u64, String) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let secs = now.as_secs();
        (
            secs,
            format!("{secs:08x}{:05x}{:01x}", now.subsec_micros(), self.rndhex),
        )
    }

    /// Adds one element holding `data`, durably, and returns its
    /// `<dir>/<name>`.
    pub fn add(&self, data: &[u8]) -> Result<String, QueueError> {
        let (secs, name) = self.name();
        let dir_name = format!("{:08x}", secs - secs % GRANULARITY);
        let dir = self.root.join(&dir_name);
        let created = match std::fs::create_dir(&dir) {
            Ok(()) => true,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => false,
            Err(e) => return Err(io(&dir)(e)),
        };
        // The temporary's name only has to be unique; retry on a clash.
        let mut tmp = dir.join(format!("{name}{TEMPORARY}"));
        let mut file = loop {
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o666)
                .open(&tmp)
            {
                Ok(f) => break f,
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    tmp = dir.join(format!("{}{TEMPORARY}", self.name().1));
                }
                Err(e) => return Err(io(&tmp)(e)),
            }
        };
        let written = file
            .write_all(data)
            .and_then(|()| file.sync_all())
            .map_err(io(&tmp));
        drop(file);
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        let linked = loop {
            let name = self.name().1;
            let path = dir.join(&name);
            match std::fs::hard_link(&tmp, &path) {
                Ok(()) => break Ok(name),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => break Err(io(&path)(e)),
            }
        };
        let _ = std::fs::remove_file(&tmp);
        let name = linked?;
        sync_dir(&dir)?;
        if created {
            sync_dir(&self.root)?;
        }
        Ok(format!("{dir_name}/{name}"))
    }

    /// Every element, oldest first, as `<dir>/<name>`.
    pub fn elements(&self) -> Result<Vec<String>, QueueError> {
        let mut out = Vec::new();
        let mut dirs: Vec<String> = names(&self.root)?
            .into_iter()
            .filter(|d| is_hex_name(d, 8))
            .collect();
        dirs.sort();
        for d in dirs {
            let path = self.root.join(&d);
            let mut els: Vec<String> = match names(&path) {
                Ok(n) => n.into_iter().filter(|e| is_hex_name(e, 14)).collect(),
                // Removed by a concurrent purge.
                Err(e) if e.source.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            els.sort();
            out.extend(els.into_iter().map(|e| format!("{d}/{e}")));
        }
        Ok(out)
    }

    /// Locks an element; false when another consumer holds it or it is
    /// gone.
    pub fn lock(&self, element: &str) -> Result<bool, QueueError> {
        let path = self.root.join(element);
        let lock = self.root.join(format!("{element}{LOCKED}"));
        match std::fs::hard_link(&path, &lock) {
            Ok(()) => Ok(true),
            Err(e) if matches!(e.kind(), ErrorKind::AlreadyExists | ErrorKind::NotFound) => {
                Ok(false)
            }
            Err(e) => Err(io(&lock)(e)),
        }
    }

    /// The content of a locked element.
    pub fn get(&self, element: &str) -> Result<Vec<u8>, QueueError> {
        let lock = self.root.join(format!("{element}{LOCKED}"));
        std::fs::read(&lock).map_err(io(&lock))
    }

    /// Removes a locked element.
    pub fn remove(&self, element: &str) -> Result<(), QueueError> {
        let path = self.root.join(element);
        std::fs::remove_file(&path).map_err(io(&path))?;
        let lock = self.root.join(format!("{element}{LOCKED}"));
        std::fs::remove_file(&lock).map_err(io(&lock))
    }
}

fn names(dir: &Path) -> Result<Vec<String>, QueueError> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io(dir))? {
        let e = e.map_err(io(dir))?;
        if let Ok(n) = e.file_name().into_string() {
            out.push(n);
        }
    }
    Ok(out)
}

/// Makes a directory's new entries durable (fsync(2) on the directory).
fn sync_dir(dir: &Path) -> Result<(), QueueError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_have_dirq_names_and_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let q = Queue::open(tmp.path().join("outgoing")).unwrap();
        let a = q.add(b"first").unwrap();
        let b = q.add(b"second").unwrap();
        let (d, n) = a.split_once('/').unwrap();
        assert!(is_hex_name(d, 8) && is_hex_name(n, 14), "{a}");
        let secs = u64::from_str_radix(d, 16).unwrap();
        assert_eq!(secs % 60, 0);
        assert_eq!(u64::from_str_radix(&n[..8], 16).unwrap() / 60 * 60, secs);
        assert!(a < b, "names increase: {a} {b}");
        // No temporary is left behind, and strangers are ignored.
        std::fs::write(tmp.path().join("outgoing").join(d).join("junk"), "x").unwrap();
        std::fs::create_dir(tmp.path().join("outgoing/notadir")).unwrap();
        let els = q.elements().unwrap();
        assert_eq!(els, vec![a.clone(), b.clone()]);
        assert!(
            std::fs::read_dir(tmp.path().join("outgoing").join(d))
                .unwrap()
                .all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".tmp"))
        );
        assert!(q.lock(&a).unwrap());
        assert!(!q.lock(&a).unwrap(), "locked twice");
        assert_eq!(q.get(&a).unwrap(), b"first");
        q.remove(&a).unwrap();
        assert_eq!(q.elements().unwrap(), vec![b]);
        assert!(!q.lock(&a).unwrap(), "a removed element cannot be locked");
    }

    #[test]
    fn an_unwritable_queue_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("file");
        std::fs::write(&file, "").unwrap();
        let e = Queue::open(file.join("q")).err().unwrap();
        assert!(e.to_string().contains("file/q"), "{e}");
    }
}
