//! Unattended trust-store reload (issue 14, part 4), with the real binary
//! and the grid PKI of tests/fixtures/pki: a CRL installed the way
//! fetch-crl installs it (a temporary file renamed over `<hash>.r0`)
//! reaches an open keep-alive connection with no signal sent; inotify
//! reacts within the debounce time, not the poll interval; `poll` and
//! `off` do what they say; a burst of writes is one reload; a broken CRL
//! keeps the last good one; certificate and CRL end dates are logged and
//! exported as `fedgate_certificate_expiry_seconds`. Issue 16: TLS
//! sessions survive a reload, a resumed session keeps its chain and is
//! judged again under the new trust store, and the validated-path cache
//! does not outlive the trust store it was filled under.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::gridpki::{Pki, openssl, pki};
use common::{Gateway, client};

const RELOADED: &str = "configuration reloaded";

/// The uwsgi echo upstream, once per test binary.
fn echo() -> u16 {
    static PORT: OnceLock<u16> = OnceLock::new();
    *PORT.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::bind(("127.0.0.1", 0))
                    .await
                    .unwrap();
                tx.send(l.local_addr().unwrap().port()).unwrap();
                fedgate::demo::echo::serve_uwsgi_echo(l).await;
            });
        });
        rx.recv().unwrap()
    })
}

/// A private copy of the PKI's CA directory whose rootA CRL predates Bob's
/// revocation.
struct CaDir {
    tmp: tempfile::TempDir,
    hashes: Vec<String>,
}

impl CaDir {
    fn new(p: &Pki) -> CaDir {
        let tmp = tempfile::tempdir().unwrap();
        let st = Command::new("cp")
            .arg("-a")
            .arg(p.certs())
            .arg(tmp.path().join("certificates"))
            .status()
            .unwrap();
        assert!(st.success());
        let hashes = ["hash", "hash_old"]
            .iter()
            .map(|f| {
                std::fs::read_to_string(p.dir.join("ca/rootA").join(f))
                    .unwrap()
                    .trim()
                    .to_string()
            })
            .collect();
        let d = CaDir { tmp, hashes };
        d.install_crl(&std::fs::read(p.dir.join("ca/rootA/crl-before-revocation.pem")).unwrap());
        d
    }

    fn path(&self) -> PathBuf {
        self.tmp.path().join("certificates")
    }

    /// Installs rootA's CRL under both its hash names as fetch-crl does:
    /// written to a temporary file in the directory, then renamed.
    fn install_crl(&self, data: &[u8]) {
        for h in &self.hashes {
            let tmp = self.path().join(format!("{h}.r0.fetch-crl-tmp"));
            std::fs::write(&tmp, data).unwrap();
            std::fs::rename(&tmp, self.path().join(format!("{h}.r0"))).unwrap();
        }
    }
}

fn config(p: &Pki, ca: &CaDir, tls_extra: &str, voms_dir: &Path) -> String {
    config_auth(p, ca, "optional", tls_extra, voms_dir)
}

fn config_auth(p: &Pki, ca: &CaDir, client_auth: &str, tls_extra: &str, voms_dir: &Path) -> String {
    format!(
        r#"[server]
listen = ["127.0.0.1:0"]
[admin]
listen = ["127.0.0.1:0"]
[tls]
certificate = "{d}/host.pem"
private_key = "{d}/host.key"
ca_dir = "{ca}"
client_auth = "{client_auth}"
{tls_extra}
[upstream]
url = "uwsgi://127.0.0.1:{echo}"
[voms]
dir = "{voms}"
[[route]]
name = "x509"
path = "^/x509"
auth = "x509"
[[route]]
path = "^/"
auth = "none"
"#,
        d = p.dir.display(),
        ca = ca.path().display(),
        echo = echo(),
        voms = voms_dir.display(),
    )
}

/// A keep-alive TLS connection with `cred`'s certificate.
fn connect(p: &Pki, gw: &Gateway, cred: &str) -> client::Client {
    client::Client::connect(gw.addr, client_tls(p, cred)).unwrap()
}

/// A client configuration presenting `cred`'s chain. Connections made
/// with the same one resume the TLS session of the previous one (rustls
/// keeps sessions in the configuration).
fn client_tls(p: &Pki, cred: &str) -> std::sync::Arc<rustls::ClientConfig> {
    let cred = p.cred(cred);
    client::config(
        &p.dir.join("ca/rootA/ca.pem"),
        None,
        &[b"http/1.1"],
        Some((client::certs(&cred), client::key(&cred))),
    )
}

/// Waits until the log holds `n` lines with `needle`; the time it took.
fn wait_count(gw: &Gateway, needle: &str, n: usize, limit: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if gw.logs.count(needle) >= n {
            return Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn metric(gw: &Gateway, line_start: &str) -> Option<String> {
    gw.admin_get("/metrics")
        .text()
        .lines()
        .find(|l| l.starts_with(line_start))
        .map(str::to_string)
}

fn reloads_ok(gw: &Gateway) -> u64 {
    metric(gw, "fedgate_config_reloads_total{result=\"ok\"}")
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

/// The issue's scenario: Bob's keep-alive connection gets 200, fetch-crl
/// installs the CRL that revokes him, and the next request on the same
/// connection gets 401, without SIGHUP, within about the debounce time
/// (the poll interval is an hour). Then a truncated CRL written over it
/// keeps the last good one: Bob stays revoked and Alice stays in.
#[test]
fn a_fetch_crl_revocation_reaches_an_open_connection_without_a_signal() {
    let Some(p) = pki() else { return };
    let ca = CaDir::new(p);
    let gw = Gateway::start_text(&config(
        p,
        &ca,
        "watch = \"inotify\"\nwatch_interval_secs = 3600\nwatch_debounce_ms = 200",
        &p.vomsdir(),
    ));
    assert!(
        gw.logs
            .wait_for("with inotify", Duration::from_secs(5))
            .is_some()
    );
    let mut bob = connect(p, &gw, "eec_bob_revoked");
    let r = bob.request("GET", "/x509/a", &[], b"");
    assert_eq!(r.status, 200, "before the CRL lists Bob: {}", r.text());
    assert!(r.text().contains("Bob Revoked"));

    ca.install_crl(&std::fs::read(p.dir.join("ca/rootA/crl.pem")).unwrap());
    let took = wait_count(&gw, RELOADED, 1, Duration::from_secs(20)).expect("reloaded by itself");
    eprintln!("revoking CRL installed -> reloaded in {took:?}");
    assert!(
        took < Duration::from_millis(1900),
        "inotify with a 200 ms debounce took {took:?} (the default debounce is 2 s)"
    );
    let r = bob.request("GET", "/x509/b", &[], b"");
    assert_eq!(r.status, 401, "same connection after the CRL: {}", r.text());
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("revoked"),
        "{}",
        r.text()
    );

    // A truncated CRL (a full disk, a writer that does not rename).
    let good = std::fs::read(p.dir.join("ca/rootA/crl.pem")).unwrap();
    ca.install_crl(&good[..good.len() / 2]);
    wait_count(&gw, RELOADED, 2, Duration::from_secs(20)).expect("second reload");
    assert!(gw.logs.count("last good version stays in use") >= 1);
    let r = connect(p, &gw, "eec_alice").request("GET", "/x509/c", &[], b"");
    assert_eq!(r.status, 200, "Alice, rootA's CRL kept: {}", r.text());
    let r = connect(p, &gw, "eec_bob_revoked").request("GET", "/x509/d", &[], b"");
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(r.text().contains("revoked"), "{}", r.text());
    assert_eq!(reloads_ok(&gw), 2);
}

/// `watch_debounce_ms` is waited for: nothing reloads before it.
#[test]
fn inotify_waits_for_the_debounce_time() {
    let Some(p) = pki() else { return };
    let ca = CaDir::new(p);
    let gw = Gateway::start_text(&config(
        p,
        &ca,
        "watch_interval_secs = 3600\nwatch_debounce_ms = 4000",
        &p.vomsdir(),
    ));
    assert!(
        gw.logs
            .wait_for("with inotify", Duration::from_secs(5))
            .is_some()
    );
    ca.install_crl(&std::fs::read(p.dir.join("ca/rootA/crl.pem")).unwrap());
    std::thread::sleep(Duration::from_millis(2800));
    assert_eq!(
        gw.logs.count(RELOADED),
        0,
        "reloaded before the 4 s debounce"
    );
    let took =
        wait_count(&gw, RELOADED, 1, Duration::from_secs(20)).expect("reload after the debounce");
    eprintln!("debounce 4 s: reloaded {took:?} after the 2.8 s mark");
}

/// An IGTF update writes many files: one reload, after they are quiet.
#[test]
fn a_burst_of_writes_is_one_reload() {
    let Some(p) = pki() else { return };
    let ca = CaDir::new(p);
    let gw = Gateway::start_text(&config(
        p,
        &ca,
        "watch_interval_secs = 3600\nwatch_debounce_ms = 1000",
        &p.vomsdir(),
    ));
    assert!(
        gw.logs
            .wait_for("with inotify", Duration::from_secs(5))
            .is_some()
    );
    let crl = std::fs::read(p.dir.join("ca/rootA/crl.pem")).unwrap();
    let ca_pem = std::fs::read(p.dir.join("ca/rootA/ca.pem")).unwrap();
    // 100 files over about 1.5 s, never 1 s apart.
    for i in 0..50u32 {
        std::fs::write(
            ca.path().join(format!("{:08x}.0", 0xdead_0000u32 + i)),
            &ca_pem,
        )
        .unwrap();
        std::fs::write(
            ca.path().join(format!("{:08x}.r0", 0xdead_0000u32 + i)),
            &crl,
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(30));
    }
    wait_count(&gw, RELOADED, 1, Duration::from_secs(20)).expect("one reload");
    std::thread::sleep(Duration::from_millis(3000));
    assert_eq!(gw.logs.count(RELOADED), 1, "{:#?}", gw.logs.all());
    assert_eq!(gw.logs.count("watched files changed"), 1);
    assert_eq!(reloads_ok(&gw), 1);
    // Bob's revocation came with the burst.
    let r = connect(p, &gw, "eec_bob_revoked").request("GET", "/x509/a", &[], b"");
    assert_eq!(r.status, 401, "{}", r.text());
}

/// `watch = "poll"` polls at `watch_interval_secs` (the 30 s default would
/// miss this test's deadline).
#[test]
fn poll_mode_reloads_at_its_interval() {
    let Some(p) = pki() else { return };
    let ca = CaDir::new(p);
    let gw = Gateway::start_text(&config(
        p,
        &ca,
        "watch = \"poll\"\nwatch_interval_secs = 1\nwatch_debounce_ms = 200",
        &p.vomsdir(),
    ));
    assert!(
        gw.logs
            .wait_for("by polling", Duration::from_secs(5))
            .is_some()
    );
    assert_eq!(gw.logs.count("with inotify"), 0);
    let mut bob = connect(p, &gw, "eec_bob_revoked");
    assert_eq!(bob.request("GET", "/x509/a", &[], b"").status, 200);
    ca.install_crl(&std::fs::read(p.dir.join("ca/rootA/crl.pem")).unwrap());
    let took = wait_count(&gw, RELOADED, 1, Duration::from_secs(8)).expect("poll reload");
    eprintln!("poll every 1 s: reloaded in {took:?}");
    assert_eq!(bob.request("GET", "/x509/b", &[], b"").status, 401);
    assert!(gw.logs.count("trigger=\"poll\"") + gw.logs.count("trigger=poll") >= 1);
}

/// When inotify cannot watch (here: the vomsdir's parent does not exist),
/// fedgate polls instead, at `watch_interval_secs`.
#[test]
fn inotify_falls_back_to_polling() {
    let Some(p) = pki() else { return };
    let ca = CaDir::new(p);
    let gw = Gateway::start_text(&config(
        p,
        &ca,
        "watch_interval_secs = 1\nwatch_debounce_ms = 200",
        Path::new("/nonexistent-fedgate-test/grid-security/vomsdir"),
    ));
    assert!(
        gw.logs
            .wait_for("polling instead", Duration::from_secs(5))
            .is_some()
    );
    ca.install_crl(&std::fs::read(p.dir.join("ca/rootA/crl.pem")).unwrap());
    wait_count(&gw, RELOADED, 1, Duration::from_secs(8)).expect("reload by polling");
}

/// `watch = "off"`: a new CRL waits for SIGHUP.
#[test]
fn off_does_not_reload() {
    let Some(p) = pki() else { return };
    let ca = CaDir::new(p);
    let gw = Gateway::start_text(&config(
        p,
        &ca,
        "watch = \"off\"\nwatch_interval_secs = 1\nwatch_debounce_ms = 100",
        &p.vomsdir(),
    ));
    assert!(
        gw.logs
            .wait_for("are not watched", Duration::from_secs(5))
            .is_some()
    );
    ca.install_crl(&std::fs::read(p.dir.join("ca/rootA/crl.pem")).unwrap());
    std::thread::sleep(Duration::from_millis(3000));
    assert_eq!(gw.logs.count(RELOADED), 0);
    let r = connect(p, &gw, "eec_bob_revoked").request("GET", "/x509/a", &[], b"");
    assert_eq!(r.status, 200, "the old CRL is still in use: {}", r.text());
    gw.signal(1); // SIGHUP
    wait_count(&gw, RELOADED, 1, Duration::from_secs(10)).expect("SIGHUP reloads");
    let r = connect(p, &gw, "eec_bob_revoked").request("GET", "/x509/a", &[], b"");
    assert_eq!(r.status, 401, "{}", r.text());
}

fn expiry_value(gw: &Gateway, kind: &str, subject: &str) -> Option<i64> {
    metric(
        gw,
        &format!("fedgate_certificate_expiry_seconds{{kind=\"{kind}\",subject=\"{subject}\"}} "),
    )
    .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

fn enddate(file: &Path) -> i64 {
    let e = openssl(&["x509", "-in", file.to_str().unwrap(), "-noout", "-enddate"]);
    common::gridpki::epoch(e.trim_start_matches("notAfter="))
}

/// End dates: the gauge per host certificate, CA and CRL, seconds to
/// notAfter/nextUpdate; warnings within `expiry_warning_days` at start and
/// at each reload; a CA removed from the directory leaves the metric.
#[test]
fn expiry_is_logged_and_exported() {
    let Some(p) = pki() else { return };
    let now = fedgate::internal::pki::unix_now();
    let root_a = "/DC=org/DC=fedgate-test/CN=Fedgate Test Root CA";
    let root_e = "/DC=org/DC=fedgate-ec/CN=Fedgate EC Root CA";
    let host = "/DC=org/DC=fedgate-test/O=Hosts/CN=localhost";
    // The default window (14 days): nothing in this PKI is that close.
    let ca = CaDir::new(p);
    let quiet = Gateway::start_text(&config(p, &ca, "", &p.vomsdir()));
    assert_eq!(
        quiet.logs.count("expires soon"),
        0,
        "{:#?}",
        quiet.logs.all()
    );
    let host_left = expiry_value(&quiet, "host", host).expect("host gauge");
    let want = enddate(&p.dir.join("host.pem")) - now;
    assert!((host_left - want).abs() < 120, "{host_left} vs {want}");
    let ca_left = expiry_value(&quiet, "ca", root_a).expect("CA gauge");
    let want = enddate(&p.dir.join("ca/rootA/ca.pem")) - now;
    assert!((ca_left - want).abs() < 120, "{ca_left} vs {want}");
    // rootA's CRLs are due in 30 days (openssl's default_crl_days here).
    let crl_left = expiry_value(&quiet, "crl", root_a).expect("CRL gauge");
    assert!(
        (crl_left - 30 * 86_400).abs() < 7200,
        "CRL due in {crl_left} s"
    );
    drop(quiet);

    // A 31-day window: the CRLs (due in 30 days) are warned about, not
    // the CAs (8 years) nor the host certificate (1 year).
    let ca = CaDir::new(p);
    let gw = Gateway::start_text(&config(
        p,
        &ca,
        "expiry_warning_days = 31\nwatch_debounce_ms = 200",
        &p.vomsdir(),
    ));
    let at_start = gw.logs.count("expires soon");
    assert!(at_start >= 1, "{:#?}", gw.logs.all());
    assert!(
        gw.logs.all().iter().any(|l| l.contains("expires soon")
            && (l.contains("kind=\"crl\"") || l.contains("kind=crl"))
            && l.contains(root_a)),
        "{:#?}",
        gw.logs.all()
    );
    assert_eq!(gw.logs.count("host certificate expires soon"), 0);
    assert_eq!(gw.logs.count("CA certificate expires soon"), 0);
    assert!(expiry_value(&gw, "ca", root_e).is_some());
    assert!(expiry_value(&gw, "crl", root_e).is_some());
    // The EC root leaves the directory (an IGTF update withdrawing a CA).
    let hash = std::fs::read_to_string(p.dir.join("ca/rootE/hash")).unwrap();
    let hash_old = std::fs::read_to_string(p.dir.join("ca/rootE/hash_old")).unwrap();
    for h in [hash.trim(), hash_old.trim()] {
        for ext in ["0", "r0", "namespaces", "signing_policy"] {
            let _ = std::fs::remove_file(ca.path().join(format!("{h}.{ext}")));
        }
    }
    wait_count(&gw, RELOADED, 1, Duration::from_secs(20)).expect("reload after the removal");
    assert!(
        expiry_value(&gw, "ca", root_e).is_none(),
        "a removed CA leaves the metric"
    );
    assert!(expiry_value(&gw, "crl", root_e).is_none());
    assert!(expiry_value(&gw, "ca", root_a).is_some());
    assert!(
        gw.logs.count("expires soon") > at_start,
        "the warnings are repeated at each reload"
    );
}

fn counter(gw: &Gateway, line_start: &str) -> u64 {
    metric(gw, line_start)
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

/// Full chain validations so far (`fedgate_x509_path_validations_total`).
fn full_validations(gw: &Gateway) -> u64 {
    counter(gw, "fedgate_x509_path_validations_total{result=\"full\"}")
}

fn resumed_handshakes(gw: &Gateway) -> u64 {
    counter(gw, "fedgate_tls_resumed_handshakes_total ")
}

/// One request on a new connection made with `tls`; whether the session
/// was resumed, and the answer (`None`: the connection was refused).
fn fresh_request(
    gw: &Gateway,
    tls: &std::sync::Arc<rustls::ClientConfig>,
    path: &str,
) -> (bool, Option<client::Resp>) {
    let mut c = client::Client::connect(gw.addr, tls.clone()).unwrap();
    let r = c.try_request("GET", path, &[], b"").ok();
    let resumed = c.tls().and_then(|t| t.handshake_kind()) == Some(rustls::HandshakeKind::Resumed);
    (resumed, r)
}

/// Issue 16: a returning client resumes its TLS session; fedgate still
/// has the client's chain (the same identity and VOMS attributes reach
/// Keystone, with mod_ssl's SSL_SESSION_RESUMED) and judges it without a
/// new path validation, from the validated-path cache.
#[test]
fn a_resumed_session_keeps_its_chain_without_a_new_validation() {
    let Some(p) = pki() else { return };
    let ca = CaDir::new(p);
    let gw = Gateway::start_text(&config(p, &ca, "watch = \"off\"", &p.vomsdir()));
    let tls = client_tls(p, "depth2_voms");
    let (resumed, first) = fresh_request(&gw, &tls, "/x509/a");
    let first = first.expect("answered");
    assert!(!resumed);
    assert_eq!(first.status, 200, "{}", first.text());
    let env = first.json()["environ"].clone();
    assert_eq!(env["SSL_SESSION_RESUMED"], "Initial");
    let full = full_validations(&gw);
    assert_eq!(full, 1, "the first connection validates the chain");

    let (resumed, again) = fresh_request(&gw, &tls, "/x509/b");
    let again = again.expect("answered");
    assert!(resumed, "the second connection resumes the session");
    assert_eq!(again.status, 200, "{}", again.text());
    let env2 = again.json()["environ"].clone();
    assert_eq!(env2["SSL_SESSION_RESUMED"], "Resumed");
    for k in [
        "SSL_CLIENT_S_DN",
        "GRST_CRED_0",
        "GRST_CRED_2",
        "GRST_VOMS_FQANS",
    ] {
        assert!(env[k].is_string(), "{k} missing: {env}");
        assert_eq!(env2[k], env[k], "{k} after resumption");
    }
    assert_eq!(resumed_handshakes(&gw), 1);
    assert_eq!(
        full_validations(&gw),
        full,
        "a resumed session is judged from the validated-path cache"
    );
    assert!(
        counter(
            &gw,
            "fedgate_x509_path_validations_total{result=\"cached\"}"
        ) >= 1
    );
}

fn verdicts(gw: &Gateway, result: &str) -> u64 {
    counter(
        gw,
        &format!("fedgate_x509_verdicts_total{{result=\"{result}\"}}"),
    )
}

/// Issue 16: a grid client's new connections (full handshakes, no
/// resumption) with the same proxy share the first one's verdict: the
/// VOMS attributes and gridsite values are built once, and every
/// connection still gets them, byte for byte. After a reload that revokes
/// the user, the next new connection is refused: nothing shared outlives
/// the trust store it was judged under.
#[test]
fn new_connections_with_one_chain_share_its_verdict_until_a_reload() {
    let Some(p) = pki() else { return };
    let ca = CaDir::new(p);
    let gw = Gateway::start_text(&config(p, &ca, "watch = \"off\"", &p.vomsdir()));
    let environ = |cred: &str| {
        let r = connect(p, &gw, cred).request("GET", "/x509/a", &[], b"");
        (r.status, r.json()["environ"].clone())
    };
    let (status, first) = environ("revoked_voms");
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        (verdicts(&gw, "evaluated"), verdicts(&gw, "shared")),
        (1, 0)
    );
    for n in 1..=2 {
        let (status, again) = environ("revoked_voms");
        assert_eq!(status, 200);
        assert_eq!(again["SSL_SESSION_RESUMED"], "Initial", "a full handshake");
        assert_eq!(
            verdicts(&gw, "shared"),
            n,
            "connection {n} shares the verdict"
        );
        for k in [
            "SSL_CLIENT_S_DN",
            "SSL_CLIENT_CERT",
            "GRST_CRED_0",
            "GRST_CRED_2",
            "GRST_CONN_AURI_0",
            "GRST_VOMS_FQANS",
            "GRST_CRED_1",
        ] {
            assert!(first[k].is_string(), "{k} missing: {first}");
            assert_eq!(again[k], first[k], "{k} on connection {n}");
        }
    }
    assert_eq!(verdicts(&gw, "evaluated"), 1);

    ca.install_crl(&std::fs::read(p.dir.join("ca/rootA/crl.pem")).unwrap());
    gw.signal(1); // SIGHUP
    wait_count(&gw, RELOADED, 1, Duration::from_secs(10)).expect("SIGHUP reloads");
    let (status, refused) = environ("revoked_voms");
    assert_eq!(status, 401, "revoked after the reload: {refused}");
    assert_eq!(
        verdicts(&gw, "shared"),
        2,
        "nothing shared across the reload"
    );
}

/// Issue 16: TLS sessions outlive a reload, but a resumed session is
/// judged under the trust store of the moment: Bob resumes after the CRL
/// that revokes him was installed and gets 401 (`client_auth =
/// "optional"`) or no connection at all (`"required"`, here on a route
/// without authentication, where only the TLS layer judges the chain).
#[test]
fn a_resumed_session_is_refused_after_a_reload_that_revokes_its_user() {
    let Some(p) = pki() else { return };
    for client_auth in ["optional", "required"] {
        let ca = CaDir::new(p);
        let gw = Gateway::start_text(&config_auth(
            p,
            &ca,
            client_auth,
            "watch = \"off\"",
            &p.vomsdir(),
        ));
        let tls = client_tls(p, "revoked_voms");
        let path = if client_auth == "optional" {
            "/x509/a"
        } else {
            "/open"
        };
        let (_, r) = fresh_request(&gw, &tls, path);
        let r = r.expect("answered");
        assert_eq!(r.status, 200, "{client_auth}, before the CRL: {}", r.text());
        if client_auth == "optional" {
            assert!(r.text().contains("Bob Revoked"), "{}", r.text());
        }
        let (resumed, r) = fresh_request(&gw, &tls, path);
        assert!(resumed, "{client_auth}: resumes before the reload");
        assert_eq!(r.expect("answered").status, 200);

        ca.install_crl(&std::fs::read(p.dir.join("ca/rootA/crl.pem")).unwrap());
        gw.signal(1); // SIGHUP
        wait_count(&gw, RELOADED, 1, Duration::from_secs(10)).expect("SIGHUP reloads");
        let before = resumed_handshakes(&gw);
        let (resumed, r) = fresh_request(&gw, &tls, path);
        if client_auth == "optional" {
            assert!(resumed, "the session outlives the reload");
            let r = r.expect("answered");
            assert_eq!(r.status, 401, "resumed after the revocation: {}", r.text());
            assert!(r.text().contains("revoked"), "{}", r.text());
            assert_eq!(resumed_handshakes(&gw), before + 1);
        } else {
            assert!(
                r.is_none(),
                "a resumed session of a revoked user is refused: {:?}",
                r.map(|r| (r.status, r.text()))
            );
            assert!(
                gw.logs
                    .wait_for("resumed TLS session refused", Duration::from_secs(5))
                    .is_some(),
                "{:#?}",
                gw.logs.all()
            );
        }
    }
}

/// Issue 16: the validated-path cache dies with its trust store. Bob's
/// chain, accepted (and cached) before, is refused on a new connection
/// (full handshake) right after the reload that revokes him; Alice's is
/// validated again, once, and then served from the new cache.
#[test]
fn a_reload_empties_the_validated_path_cache() {
    let Some(p) = pki() else { return };
    let ca = CaDir::new(p);
    let gw = Gateway::start_text(&config(p, &ca, "watch = \"off\"", &p.vomsdir()));
    for _ in 0..2 {
        assert_eq!(
            connect(p, &gw, "revoked_voms")
                .request("GET", "/x509/a", &[], b"")
                .status,
            200
        );
        assert_eq!(
            connect(p, &gw, "eec_alice")
                .request("GET", "/x509/a", &[], b"")
                .status,
            200
        );
    }
    assert_eq!(
        full_validations(&gw),
        2,
        "the second round is served from the cache"
    );
    ca.install_crl(&std::fs::read(p.dir.join("ca/rootA/crl.pem")).unwrap());
    gw.signal(1); // SIGHUP
    wait_count(&gw, RELOADED, 1, Duration::from_secs(10)).expect("SIGHUP reloads");
    let r = connect(p, &gw, "revoked_voms").request("GET", "/x509/b", &[], b"");
    assert_eq!(
        r.status,
        401,
        "a new connection right after the reload: {}",
        r.text()
    );
    assert!(r.text().contains("revoked"), "{}", r.text());
    for _ in 0..2 {
        assert_eq!(
            connect(p, &gw, "eec_alice")
                .request("GET", "/x509/b", &[], b"")
                .status,
            200
        );
    }
    assert_eq!(
        full_validations(&gw),
        4,
        "Bob and Alice once each under the new store"
    );
}
