//! Shared by the integration tests: a throwaway PKI, the real `fedgate`
//! binary as a child process, a small TLS HTTP/1.1 client that sends
//! exactly the bytes a test wants, and two recording upstreams (uwsgi and
//! HTTP) so a test can see what reached "Keystone". Submodules: `client`,
//! `upstream`, `idp` (real IdPs and Redis, fedgate in process) and
//! `gridpki` (the grid PKI and VOMS proxies of tests/fixtures/pki).
//!
//! Every listener binds 127.0.0.1 port 0: the kernel hands out free
//! ephemeral ports (32768+), so parallel tests never collide with each
//! other or with the fixed ports of the Keystone and benchmark harnesses.

#![allow(dead_code)]

pub mod client;
pub mod gridpki;
pub mod h2;
pub mod idp;
pub mod upstream;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub use client::{Client, Resp};

/// Test PKI: the demo's CA, host and user certificates, plus a second CA
/// in the CA directory so the hint list has more than one name.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca_file: PathBuf,
    pub ca_dir: PathBuf,
    pub host_cert: PathBuf,
    pub host_key: PathBuf,
    pub user_cert: PathBuf,
    pub user_key: PathBuf,
}

pub const SECOND_CA_CN: &str = "fedgate second test CA";

pub fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let p = fedgate::demo::pki::create(dir.path()).expect("demo PKI");
    // A second, unrelated CA: its subject must appear in the hints too.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, SECOND_CA_CN);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    let hash = fedgate::internal::pki::hash::subject_hash(cert.der()).unwrap();
    std::fs::write(p.ca_dir.join(format!("{hash:08x}.0")), cert.pem()).unwrap();
    Pki {
        ca_file: p.ca_file,
        ca_dir: p.ca_dir,
        host_cert: p.host_cert,
        host_key: p.host_key,
        user_cert: p.user_cert,
        user_key: p.user_key,
        dir,
    }
}

/// The parts of a configuration a test varies.
pub struct Conf<'a> {
    pub upstream: String,
    pub server: &'a str,
    pub upstream_extra: &'a str,
    pub tls_extra: &'a str,
    pub scrub: &'a str,
    pub routes: &'a str,
}

pub const ROUTE_ALL: &str = "[[route]]\nname = \"keystone\"\npath = \"^/\"\nauth = \"none\"\n";

impl<'a> Conf<'a> {
    pub fn new(upstream: impl Into<String>) -> Self {
        Conf {
            upstream: upstream.into(),
            server: "",
            upstream_extra: "",
            tls_extra: "client_auth = \"optional\"\n",
            scrub: "",
            routes: ROUTE_ALL,
        }
    }

    pub fn render(&self, pki: &Pki) -> String {
        format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n{server}\n\
             [admin]\nlisten = [\"127.0.0.1:0\"]\n\n\
             [tls]\ncertificate = \"{cert}\"\nprivate_key = \"{key}\"\nca_dir = \"{cadir}\"\n{tls}\n\
             [upstream]\nurl = \"{up}\"\nconnect_timeout_secs = 2\n{upx}\n\
             [scrub]\n{scrub}\n\n{routes}",
            server = self.server,
            cert = pki.host_cert.display(),
            key = pki.host_key.display(),
            cadir = pki.ca_dir.display(),
            tls = self.tls_extra,
            up = self.upstream,
            upx = self.upstream_extra,
            scrub = self.scrub,
            routes = self.routes,
        )
    }
}

/// Log lines of a child process, with a way to wait for one.
#[derive(Clone, Default)]
pub struct Logs(Arc<(Mutex<Vec<String>>, Condvar)>);

impl Logs {
    fn push(&self, line: String) {
        let (m, c) = &*self.0;
        m.lock().unwrap().push(line);
        c.notify_all();
    }

    pub fn all(&self) -> Vec<String> {
        self.0.0.lock().unwrap().clone()
    }

    /// Waits for a line containing `needle`, returns it.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let (m, c) = &*self.0;
        let mut lines = m.lock().unwrap();
        loop {
            if let Some(l) = lines.iter().find(|l| l.contains(needle)) {
                return Some(l.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            lines = c.wait_timeout(lines, deadline - now).unwrap().0;
        }
    }

    pub fn count(&self, needle: &str) -> usize {
        self.all().iter().filter(|l| l.contains(needle)).count()
    }
}

pub fn fedgate_bin() -> &'static str {
    env!("CARGO_BIN_EXE_fedgate")
}

/// A running `fedgate run`, killed on drop.
pub struct Gateway {
    pub child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub logs: Logs,
    pub config: PathBuf,
    _dir: tempfile::TempDir,
}

fn bracket_addr(line: &str, key: &str) -> Option<SocketAddr> {
    let start = line.find(&format!("{key}=["))? + key.len() + 2;
    let rest = &line[start..];
    rest[..rest.find(']')?]
        .split(',')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Collects a child's stderr into `Logs` (and echoes it for failed tests).
pub fn collect_stderr(child: &mut Child) -> Logs {
    let logs = Logs::default();
    let err = child.stderr.take().unwrap();
    let l = logs.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            eprintln!("[fedgate] {line}");
            l.push(line);
        }
    });
    logs
}

impl Gateway {
    pub fn start(pki: &Pki, conf: &Conf<'_>) -> Gateway {
        Self::start_text(&conf.render(pki))
    }

    pub fn start_text(text: &str) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("fedgate.toml");
        std::fs::write(&config, text).unwrap();
        let mut child = Command::new(fedgate_bin())
            .args(["run", "--config"])
            .arg(&config)
            .env(
                "RUST_LOG",
                std::env::var("FEDGATE_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn fedgate");
        let logs = collect_stderr(&mut child);
        let Some(line) = logs.wait_for("fedgate serving", Duration::from_secs(20)) else {
            let _ = child.kill();
            panic!("fedgate did not start: {:#?}", logs.all());
        };
        let line = strip_ansi(&line);
        Gateway {
            addr: bracket_addr(&line, "listen").expect("listen address in log"),
            admin: bracket_addr(&line, "admin").expect("admin address in log"),
            child,
            logs,
            config,
            _dir: dir,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Sends `sig` to the gateway process (kill(2) has no safe wrapper in
    /// libc).
    #[allow(unsafe_code)]
    pub fn signal(&self, sig: i32) {
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    /// Waits for the process to exit, returning its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait().unwrap() {
                return Some(st.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// A new TLS connection with the test CA trusted.
    pub fn client(&self, pki: &Pki) -> Client {
        Client::connect(
            self.addr,
            client::config(&pki.ca_file, None, &[b"http/1.1"], None),
        )
        .unwrap()
    }

    /// One request on a fresh connection.
    pub fn get(&self, pki: &Pki, path: &str) -> Resp {
        self.client(pki).request("GET", path, &[], b"")
    }

    /// GET on the plain-HTTP admin listener.
    pub fn admin_get(&self, path: &str) -> Resp {
        let mut c = Client::plain(self.admin).unwrap();
        c.request("GET", path, &[], b"")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// An address nobody listens on (bound, then released).
pub fn dead_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// Runs `fedgate` with arguments, returning (exit code, stdout, stderr).
pub fn run_fedgate(args: &[&str], cfg: &Path) -> (i32, String, String) {
    let out = Command::new(fedgate_bin())
        .args(args)
        .arg("--config")
        .arg(cfg)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The repository's root.
pub fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether a test's prerequisite is there. When it is not, the test skips
/// with `what` printed, unless the environment variable `strict` is `1`
/// (scripts/test.sh sets such FEDGATE_REQUIRE_* flags where it provides
/// the part): then it fails.
pub fn require(ok: bool, strict: &str, what: &str) -> bool {
    if !ok {
        if std::env::var(strict).is_ok_and(|v| v == "1") {
            panic!("{strict}=1 but {what}");
        }
        eprintln!("SKIPPED: {what}");
    }
    ok
}

/// The variables of the Nova harness's env.sh (tests/harness/nova),
/// named by FEDGATE_E2E_NOVA_ENV; `None` (skip) without it, a failure
/// with FEDGATE_REQUIRE_NOVA=1.
pub fn nova_env() -> Option<std::collections::BTreeMap<String, String>> {
    let path = std::env::var("FEDGATE_E2E_NOVA_ENV").unwrap_or_default();
    if !require(
        !path.is_empty(),
        "FEDGATE_REQUIRE_NOVA",
        "FEDGATE_E2E_NOVA_ENV is not set (run scripts/test.sh, or tests/harness/nova/setup.sh \
         DIR up and export FEDGATE_E2E_NOVA_ENV=DIR/env.sh)",
    ) {
        return None;
    }
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("FEDGATE_E2E_NOVA_ENV={path}: {e}"));
    Some(
        text.lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
            .collect(),
    )
}
