//! `fedgate run` under a service manager (sd_notify(3), `Type=notify`):
//! the real binary is started with `NOTIFY_SOCKET` pointing at a datagram
//! socket this test owns, as systemd would, and every message it sends is
//! read back: `READY=1` only once the port accepts connections, `RELOADING=1`
//! with `MONOTONIC_USEC=` and then `READY=1` around a SIGHUP reload (also a
//! refused one), `STOPPING=1` on SIGTERM, `WATCHDOG=1` pings when
//! `WATCHDOG_USEC` is set. Both socket forms are covered: a path and a
//! Linux abstract name (`@name`).
//!
//! PID 1 here is not systemd, so the unit itself cannot be started; this is
//! the protocol it relies on. `tests/packaging.rs` checks the unit file.

mod common;

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::upstream::uwsgi_echo;
use common::{Conf, Logs, collect_stderr, fedgate_bin, pki};

const SIGHUP: i32 = 1;
const SIGTERM: i32 = 15;

/// The supervisor's end: a bound datagram socket and the messages read.
struct Supervisor {
    sock: UnixDatagram,
    seen: Vec<String>,
}

impl Supervisor {
    fn new(sock: UnixDatagram) -> Supervisor {
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Supervisor {
            sock,
            seen: Vec::new(),
        }
    }

    /// The next message (one datagram, `KEY=value` lines) for which `pick`
    /// holds, skipping others; every message is kept in `seen`.
    fn next(&mut self, timeout: Duration, pick: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 4096];
        while Instant::now() < deadline {
            match self.sock.recv(&mut buf) {
                Ok(n) => {
                    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                    self.seen.push(msg.clone());
                    if pick(&msg) {
                        return Some(msg);
                    }
                }
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) => panic!("recv: {e}"),
            }
        }
        None
    }

    /// Like `next`, for messages other than watchdog pings.
    fn next_state(&mut self, timeout: Duration) -> Option<String> {
        self.next(timeout, |m| m != "WATCHDOG=1\n")
    }
}

fn field<'a>(msg: &'a str, key: &str) -> Option<&'a str> {
    msg.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

/// A running `fedgate run` with the given notify environment, killed on
/// drop.
struct Run {
    child: Child,
    logs: Logs,
    config: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Run {
    fn start(text: &str, env: &[(&str, &str)]) -> Run {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("fedgate.toml");
        std::fs::write(&config, text).unwrap();
        let mut cmd = Command::new(fedgate_bin());
        cmd.args(["run", "--config"])
            .arg(&config)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn fedgate");
        let logs = collect_stderr(&mut child);
        Run {
            child,
            logs,
            config,
            _dir: dir,
        }
    }

    #[allow(unsafe_code)]
    fn signal(&self, sig: i32) {
        // kill(2) has no safe wrapper in libc.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait().unwrap() {
                return Some(st.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `serving on 127.0.0.1:PORT (admin: ...)` → the first listen address.
fn listen_of(status: &str) -> std::net::SocketAddr {
    let rest = status
        .strip_prefix("serving on ")
        .unwrap_or_else(|| panic!("STATUS: {status}"));
    rest.split([' ', ','])
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|e| panic!("{status}: {e}"))
}

fn monotonic_now_usec() -> i128 {
    match sd_notify::NotifyState::monotonic_usec_now().unwrap() {
        sd_notify::NotifyState::MonotonicUsec(u) => u,
        _ => unreachable!(),
    }
}

#[test]
fn notify_ready_reload_watchdog_and_stop_on_a_path_socket() {
    let pki = pki();
    let up = uwsgi_echo();
    let conf = Conf::new(format!("uwsgi://{}", up.addr));
    let text = conf.render(&pki);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let mut sup = Supervisor::new(UnixDatagram::bind(&path).unwrap());
    // 600 ms: pings every 300 ms.
    let mut run = Run::start(
        &text,
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            ("WATCHDOG_USEC", "600000"),
        ],
    );

    // READY=1 once serving; the port named in STATUS already accepts.
    let ready = sup
        .next_state(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no READY=1: {:#?}", run.logs.all()));
    assert_eq!(field(&ready, "READY"), Some("1"), "{ready}");
    let status = field(&ready, "STATUS").expect("STATUS with READY");
    let addr = listen_of(status);
    std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .expect("the port accepts connections when READY=1 arrives");
    assert!(status.contains("admin: 127.0.0.1:"), "{status}");
    assert!(status.contains("1 routes"), "{status}");
    assert!(
        run.logs
            .wait_for("fedgate serving", Duration::from_secs(1))
            .is_some()
    );

    // Watchdog pings, about every 300 ms.
    let t0 = Instant::now();
    for _ in 0..3 {
        assert!(
            sup.next(Duration::from_secs(3), |m| m == "WATCHDOG=1\n")
                .is_some(),
            "no WATCHDOG=1: {:?}",
            sup.seen
        );
    }
    let took = t0.elapsed();
    assert!(
        took < Duration::from_millis(2500),
        "3 pings took {took:?}, interval 600 ms"
    );

    // SIGHUP: RELOADING=1 with the monotonic time, then READY=1.
    let before = monotonic_now_usec();
    run.signal(SIGHUP);
    let reloading = sup.next_state(Duration::from_secs(10)).expect("RELOADING");
    assert_eq!(field(&reloading, "RELOADING"), Some("1"), "{reloading}");
    let usec: i128 = field(&reloading, "MONOTONIC_USEC")
        .expect("MONOTONIC_USEC with RELOADING=1")
        .parse()
        .unwrap();
    let after = monotonic_now_usec();
    assert!(
        before <= usec && usec <= after,
        "MONOTONIC_USEC {usec} outside [{before}, {after}]"
    );
    let done = sup.next_state(Duration::from_secs(20)).expect("READY");
    assert_eq!(field(&done, "READY"), Some("1"), "{done}");
    assert!(
        field(&done, "STATUS").unwrap().contains("reloaded"),
        "{done}"
    );

    // A refused reload still ends with READY=1, and says so.
    std::fs::write(
        &run.config,
        text.replace("[upstream]", "[upstream]\nbogus = 1"),
    )
    .unwrap();
    run.signal(SIGHUP);
    let reloading = sup.next_state(Duration::from_secs(10)).expect("RELOADING");
    assert_eq!(field(&reloading, "RELOADING"), Some("1"), "{reloading}");
    let kept = sup.next_state(Duration::from_secs(20)).expect("READY");
    assert_eq!(field(&kept, "READY"), Some("1"), "{kept}");
    let status = field(&kept, "STATUS").unwrap();
    assert!(
        status.contains("reload refused") && status.contains("bogus"),
        "{status}"
    );
    std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .expect("still serving after a refused reload");

    // SIGTERM: STOPPING=1 before the drain, then a clean exit.
    run.signal(SIGTERM);
    let stopping = sup.next_state(Duration::from_secs(10)).expect("STOPPING");
    assert_eq!(field(&stopping, "STOPPING"), Some("1"), "{stopping}");
    assert_eq!(run.wait_exit(Duration::from_secs(20)), Some(0));
    assert!(
        sup.seen.iter().filter(|m| m.contains("READY=1")).count() == 3,
        "{:?}",
        sup.seen
    );
}

#[test]
fn notify_to_an_abstract_socket_and_no_watchdog_unless_asked() {
    let pki = pki();
    let up = uwsgi_echo();
    let text = Conf::new(format!("uwsgi://{}", up.addr)).render(&pki);
    let name = format!("fedgate-systemd-test-{}", std::process::id());
    let addr = UnixAddr::from_abstract_name(name.as_bytes()).unwrap();
    let mut sup = Supervisor::new(UnixDatagram::bind_addr(&addr).unwrap());
    let mut run = Run::start(&text, &[("NOTIFY_SOCKET", &format!("@{name}"))]);
    let ready = sup
        .next_state(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no READY=1 on @{name}: {:#?}", run.logs.all()));
    assert_eq!(field(&ready, "READY"), Some("1"), "{ready}");
    // No WATCHDOG_USEC: no pings.
    assert!(
        sup.next(Duration::from_secs(1), |m| m.contains("WATCHDOG"))
            .is_none(),
        "{:?}",
        sup.seen
    );
    run.signal(SIGTERM);
    let stopping = sup.next_state(Duration::from_secs(10)).expect("STOPPING");
    assert_eq!(field(&stopping, "STOPPING"), Some("1"), "{stopping}");
    assert_eq!(run.wait_exit(Duration::from_secs(20)), Some(0));
}

#[test]
fn a_missing_supervisor_socket_does_not_stop_the_gateway() {
    let pki = pki();
    let up = uwsgi_echo();
    let text = Conf::new(format!("uwsgi://{}", up.addr)).render(&pki);
    let mut run = Run::start(
        &text,
        &[
            ("NOTIFY_SOCKET", "/nonexistent/fedgate-notify"),
            ("WATCHDOG_USEC", "200000"),
        ],
    );
    assert!(
        run.logs
            .wait_for("cannot notify the service manager", Duration::from_secs(30))
            .is_some(),
        "{:#?}",
        run.logs.all()
    );
    let line = run
        .logs
        .wait_for("fedgate serving", Duration::from_secs(5))
        .unwrap();
    let line = common::strip_ansi(&line);
    let start = line.find("listen=[").unwrap() + 8;
    let addr: std::net::SocketAddr = line[start..]
        .split([']', ','])
        .next()
        .unwrap()
        .parse()
        .unwrap();
    std::thread::sleep(Duration::from_millis(600));
    std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("still serving");
    assert!(run.child.try_wait().unwrap().is_none(), "fedgate exited");
    run.signal(SIGTERM);
    assert_eq!(run.wait_exit(Duration::from_secs(20)), Some(0));
}
