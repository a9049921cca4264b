//! An in-memory log buffer with one writer thread.
//!
//! tracing formats each event into one complete line and hands it over in
//! one `write`. Appending that line to a shared `Vec` under a mutex costs a
//! memcpy; the writer thread is woken only when the buffer goes from empty
//! to non-empty, and writes whatever has piled up since in one call. Under
//! load this batches hundreds of lines per system call, and no thread spins
//! waiting for work (a channel's spin-then-park receiver cost several per
//! cent of a core on a 2-core host).
//!
//! Nothing is dropped: past [`HIGH_WATER`] bytes, producers wait for the
//! writer. After the guard is dropped, lines are written synchronously.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use tracing_subscriber::fmt::MakeWriter;

/// Producers wait for the writer beyond this many buffered bytes.
pub const HIGH_WATER: usize = 4 << 20;

/// How long the writer lets lines gather after the first one arrives
/// (nginx's `access_log ... flush=` in spirit). Without it, a busy server
/// pays a wake-up and a `write(2)` per line.
const LINGER: std::time::Duration = std::time::Duration::from_millis(20);

/// A batch this large is written without lingering.
const BATCH: usize = 256 * 1024;

struct State {
    buf: Vec<u8>,
    closed: bool,
}

struct Inner {
    state: Mutex<State>,
    /// Signalled when the buffer becomes non-empty, or on close.
    ready: Condvar,
    /// Signalled when the writer has taken the buffer.
    room: Condvar,
    out: Mutex<Box<dyn Write + Send>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves a byte buffer, which is still
    // fine to use: logging must keep working.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The `MakeWriter` handed to tracing-subscriber.
#[derive(Clone)]
pub struct LogSink {
    inner: Arc<Inner>,
}

/// Drains the buffer and stops the writer thread when dropped.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    inner: Option<Arc<Inner>>,
    thread: Option<JoinHandle<()>>,
}

impl LogGuard {
    /// A guard that owns nothing (logging was already set up).
    pub fn inert() -> LogGuard {
        LogGuard {
            inner: None,
            thread: None,
        }
    }
}

impl LogSink {
    /// Starts the writer thread over `out`.
    pub fn start(out: impl Write + Send + 'static) -> (LogSink, LogGuard) {
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                buf: Vec::with_capacity(64 * 1024),
                closed: false,
            }),
            ready: Condvar::new(),
            room: Condvar::new(),
            out: Mutex::new(Box::new(out)),
        });
        let worker = inner.clone();
        let thread = std::thread::Builder::new()
            .name("fedgate-log".into())
            .spawn(move || writer_loop(&worker))
            .ok();
        if thread.is_none() {
            // No thread: write synchronously rather than lose lines.
            lock(&inner.state).closed = true;
        }
        let guard = LogGuard {
            inner: Some(inner.clone()),
            thread,
        };
        (LogSink { inner }, guard)
    }

    fn append(&self, line: &[u8]) {
        let mut st = lock(&self.inner.state);
        while !st.closed && st.buf.len() > HIGH_WATER {
            st = self
                .inner
                .room
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if st.closed {
            drop(st);
            let mut out = lock(&self.inner.out);
            let _ = out.write_all(line);
            let _ = out.flush();
            return;
        }
        let was_empty = st.buf.is_empty();
        st.buf.extend_from_slice(line);
        drop(st);
        if was_empty {
            self.inner.ready.notify_one();
        }
    }
}

fn writer_loop(inner: &Inner) {
    let mut batch = Vec::with_capacity(64 * 1024);
    loop {
        let mut st = lock(&inner.state);
        while st.buf.is_empty() && !st.closed {
            st = inner.ready.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
        if !st.closed && st.buf.len() < BATCH {
            drop(st);
            std::thread::sleep(LINGER);
            st = lock(&inner.state);
        }
        let last = st.closed;
        std::mem::swap(&mut batch, &mut st.buf);
        drop(st);
        inner.room.notify_all();
        if !batch.is_empty() {
            let mut out = lock(&inner.out);
            // A failing stderr cannot be reported anywhere better.
            let _ = out.write_all(&batch);
            let _ = out.flush();
            batch.clear();
        }
        if last {
            return;
        }
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        if let Some(inner) = &self.inner {
            lock(&inner.state).closed = true;
            inner.ready.notify_one();
            inner.room.notify_all();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One event's line, appended on `write`.
pub struct SinkWriter<'a>(&'a LogSink);

impl Write for SinkWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogSink {
    type Writer = SinkWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        SinkWriter(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            lock(&self.0).extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_arrives_whole_and_in_order_per_thread() {
        let out = Shared::default();
        let (sink, guard) = LogSink::start(out.clone());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let sink = sink.clone();
                std::thread::spawn(move || {
                    for i in 0..5000 {
                        let line = format!("t{t} line {i} {}\n", "x".repeat(i % 300));
                        sink.make_writer().write_all(line.as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let text = String::from_utf8(lock(&out.0).clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 20_000);
        for t in 0..4 {
            let mine: Vec<usize> = lines
                .iter()
                .filter(|l| l.starts_with(&format!("t{t} ")))
                .map(|l| l.split(' ').nth(2).unwrap().parse().unwrap())
                .collect();
            assert_eq!(mine, (0..5000).collect::<Vec<_>>(), "thread {t}");
        }
    }

    #[test]
    fn lines_after_the_guard_are_written_at_once() {
        let out = Shared::default();
        let (sink, guard) = LogSink::start(out.clone());
        sink.make_writer().write_all(b"before\n").unwrap();
        drop(guard);
        assert_eq!(&*lock(&out.0), b"before\n");
        sink.make_writer().write_all(b"after\n").unwrap();
        assert_eq!(&*lock(&out.0), b"before\nafter\n");
    }

    #[test]
    fn a_full_buffer_waits_instead_of_dropping() {
        // A writer slower than the producer: the producer must block, and
        // every byte still arrives.
        #[derive(Clone, Default)]
        struct Slow(Shared);
        impl Write for Slow {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                std::thread::sleep(std::time::Duration::from_millis(5));
                self.0.write(b)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let out = Slow::default();
        let (sink, guard) = LogSink::start(out.clone());
        let line = vec![b'y'; 64 * 1024];
        for _ in 0..200 {
            sink.make_writer().write_all(&line).unwrap();
        }
        drop(guard);
        assert_eq!(lock(&out.0.0).len(), 200 * 64 * 1024);
    }
}
