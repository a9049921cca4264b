//! systemd's readiness protocol (sd_notify(3)) for `Type=notify` units:
//! `READY=1` once serving, `RELOADING=1` and `READY=1` around a reload,
//! `STOPPING=1` before draining, and `WATCHDOG=1` pings.
//!
//! Without `NOTIFY_SOCKET` in the environment every call is a no-op, so
//! the same binary runs under systemd, a container runtime or a shell.
//! Messages are formatted by the `sd-notify` crate; sending is done here
//! because the crate only connects to socket *paths*, while the protocol
//! also allows an abstract-namespace name written `@name` (used by some
//! service managers and by `systemd-run --user` set-ups). A failed send is
//! logged and otherwise ignored: the gateway must not stop serving because
//! its supervisor went away.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sd_notify::NotifyState;

/// The environment variable naming the supervisor's datagram socket.
const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// `READY=1` with a status line: the service is up (first start), or a
/// reload has ended (successfully or not: `status` says which).
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// `RELOADING=1` with the monotonic time systemd wants beside it (it
/// matches the reload to this message), then a status line.
pub fn reloading(status: &str) {
    let mut states = vec![NotifyState::Reloading];
    if let Ok(now) = NotifyState::monotonic_usec_now() {
        states.push(now);
    }
    states.push(NotifyState::Status(status));
    send(&states);
}

/// `STOPPING=1`: no new connections from now on, in-flight requests drain.
pub fn stopping(status: &str) {
    send(&[NotifyState::Stopping, NotifyState::Status(status)]);
}

/// The watchdog interval systemd asked for (`WATCHDOG_USEC`, for this
/// process when `WATCHDOG_PID` is set), if any.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().filter(|d| !d.is_zero())
}

/// Pings the watchdog every half interval for as long as the async runtime
/// is healthy: each ping first needs a freshly spawned task to run to
/// completion on the runtime, so a runtime whose workers are all stuck (a
/// blocking call, a deadlock) stops pinging and systemd restarts the
/// service. Returns at once when no watchdog is configured.
pub async fn watchdog() {
    let Some(every) = watchdog_interval() else {
        return;
    };
    let half = every / 2;
    tracing::info!(
        interval_ms = every.as_millis() as u64,
        "systemd watchdog enabled"
    );
    loop {
        tokio::time::sleep(half).await;
        // A round trip through the scheduler: a new task must be polled
        // by some worker and finish within the half interval.
        let probe = tokio::spawn(async {});
        match tokio::time::timeout(half, probe).await {
            Ok(Ok(())) => send(&[NotifyState::Watchdog]),
            _ => tracing::error!("runtime probe did not finish: watchdog ping withheld"),
        }
    }
}

/// Sends one notification datagram; a no-op without `NOTIFY_SOCKET`.
fn send(states: &[NotifyState<'_>]) {
    let Some(target) = std::env::var_os(NOTIFY_SOCKET) else {
        return;
    };
    let mut msg = String::new();
    for s in states {
        msg.push_str(&s.to_string());
        msg.push('\n');
    }
    if let Err(e) = send_to(target.as_encoded_bytes(), msg.as_bytes()) {
        // Once: a watchdog ping to a missing socket would repeat it forever.
        static LOGGED: AtomicBool = AtomicBool::new(false);
        if !LOGGED.swap(true, Ordering::Relaxed) {
            tracing::warn!(socket = %target.to_string_lossy(), error = %e, "cannot notify the service manager (further failures are not logged)");
        }
    }
}

/// `/path` (a file-system socket) or `@name` (Linux abstract namespace).
fn send_to(target: &[u8], msg: &[u8]) -> io::Result<usize> {
    let sock = UnixDatagram::unbound()?;
    match target.split_first() {
        Some((b'@', name)) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(msg, &addr)
        }
        Some((b'/', _)) => {
            use std::os::unix::ffi::OsStrExt;
            sock.send_to(msg, std::ffi::OsStr::from_bytes(target))
        }
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "NOTIFY_SOCKET must be an absolute path or an @abstract name",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_a_path_and_to_an_abstract_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        send_to(path.as_os_str().as_encoded_bytes(), b"READY=1\n").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\n");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("fedgate-notify-unit-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        send_to(format!("@{name}").as_bytes(), b"WATCHDOG=1\n").unwrap();
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"WATCHDOG=1\n");
    }

    #[test]
    fn a_relative_target_is_refused() {
        assert!(send_to(b"notify", b"READY=1\n").is_err());
        assert!(send_to(b"", b"READY=1\n").is_err());
    }
}
