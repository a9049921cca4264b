//! Two fedgate nodes behind one haproxy, sharing their state, in front of
//! the real Keystone: the real `fedgate` binary twice (separate processes,
//! so one can be SIGKILLed), the real haproxy (Debian 2.6) in TCP mode with
//! `send-proxy-v2`, the oidc-provider IdP harness (tests/harness/idp), VOMS
//! proxies of the grid test PKI (tests/common/gridpki.rs), and memcached
//! (two servers), then Redis, as the shared state. Every scenario runs once
//! per backend:
//!
//! 1. a WebSSO login started on node A completes on node B (the pending
//!    login cookie is sealed with the shared `[oidc.session] keys`), the
//!    session cookie then works on A and on B without the IdP; the same
//!    IdP answer replayed on A is refused without reaching the IdP (used
//!    login states are shared); signing out on B ends the session on A;
//!    the store holds the values and both nodes report it up;
//! 2. a bearer token used on A then on B is introspected once;
//! 3. a VOMS proxy gets the Keystone token of its own user through either
//!    node;
//! 4. fedgate's request log shows the client's address, not haproxy's;
//! 5. node A is SIGKILLed while four threads send requests with four
//!    different credentials through haproxy: every answer carries the
//!    Keystone user of the credential that was sent, the errors during the
//!    switch are bounded, and node B serves the rest without new
//!    introspections.
//!
//! Addresses: haproxy binds and connects from 127.0.0.2 (the trusted
//! proxy), the client is 127.0.0.3. Fixed ports 19130-19138: IdP 19130,
//! haproxy 19131 (balanced), 19132 (node A only), 19133 (node B only),
//! memcached 19134/19135, Redis 19136, the nodes 19137 (A) and 19138 (B):
//! fixed, so that docs/operations.md can show the haproxy configuration
//! verbatim (checked by the second test).
//!
//! Needs FEDGATE_E2E_KEYSTONE_URL and FEDGATE_E2E_KEYSTONE_UWSGI (set by
//! scripts/test.sh; without them the test prints SKIPPED and passes), whose
//! IdP egi.eu lists http://127.0.0.1:19130 as a remote id and whose trusted
//! dashboards include https://horizon.test/dashboard/auth/websso/. A
//! missing tool (haproxy, memcached, redis-server, node harness, grid
//! tools) skips the test, except under CI=true or FEDGATE_REQUIRE_MULTINODE=1,
//! where it fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::Gateway;
use common::gridpki::openssl;
use common::idp::{Proc, harness_dir, wait_port};
use serde_json::Value;

const HAPROXY: &str = "127.0.0.2";
const CLIENT: &str = "127.0.0.3";
const IDP: u16 = 19130;
const LB: u16 = 19131;
const VIA_A: u16 = 19132;
const VIA_B: u16 = 19133;
const MEMCACHED: [u16; 2] = [19134, 19135];
const REDIS: u16 = 19136;
const NODE_A: u16 = 19137;
const NODE_B: u16 = 19138;
const ORIGIN: &str = "https://horizon.test/dashboard/auth/websso/";
const ALICE: &str = "a11ce0000000000000000000000000001@egi.test";
const DAVE: &str = "da4e0000000000000000000000000004@egi.test";
const WEBSSO: &str = "/v3/auth/OS-FEDERATION/websso/openid";
const OPENID: &str = "/v3/OS-FEDERATION/identity_providers/egi.eu/protocols/openid/auth";
const MAPPED: &str = "/v3/OS-FEDERATION/identity_providers/egi.eu/protocols/mapped/auth";
/// The sealing key every node shares (32 bytes, base64).
const KEY: &str = "bXVsdGlub2RlLXRlc3Qtc2Vzc2lvbi1rZXktMzJieSE=";
const SIGKILL: i32 = 9;

/// Skips (or, under CI / FEDGATE_REQUIRE_MULTINODE=1, fails) when a
/// prerequisite is missing.
fn require(ok: bool, what: &str) -> bool {
    if !ok {
        let strict = std::env::var("CI").is_ok_and(|v| v == "true")
            || std::env::var("FEDGATE_REQUIRE_MULTINODE").is_ok_and(|v| v == "1");
        if strict {
            panic!("multinode prerequisite missing: {what}");
        }
        eprintln!("SKIPPED multinode: {what}");
    }
    ok
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Backend {
    Memcached,
    Redis,
}

/// The `[state]` table of a backend.
fn state_toml(b: Backend) -> String {
    match b {
        Backend::Memcached => format!(
            "[state]\nbackend = \"memcached\"\nservers = [\"127.0.0.1:{}\", \"127.0.0.1:{}\"]\n\
             timeout_ms = 500\nprefix = \"multinode:\"\nkeys = [\"{KEY}\"]\n",
            MEMCACHED[0], MEMCACHED[1]
        ),
        Backend::Redis => format!(
            "[state]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:{REDIS}/0\"\n\
             timeout_ms = 500\nprefix = \"multinode:\"\nkeys = [\"{KEY}\"]\n"
        ),
    }
}

/// One node's configuration: PROXY protocol from haproxy only, the grid
/// PKI's CAs and vomsdir, the harness IdP, the shared keys and state.
fn node_toml(
    port: u16,
    host: &fedgate::demo::pki::DemoPki,
    grid: &Path,
    uwsgi: &str,
    state: &str,
) -> String {
    format!(
        r#"[server]
listen = ["127.0.0.1:{port}"]
trusted_proxies = ["{HAPROXY}"]
proxy_protocol = true
[admin]
listen = ["127.0.0.1:0"]
[tls]
certificate = "{cert}"
private_key = "{key}"
ca_dir = "{grid}/certificates"
client_auth = "optional"
[voms]
dir = "{grid}/vomsdir"
[upstream]
url = "uwsgi://{uwsgi}"
[[idp]]
name = "egi"
issuer = "http://127.0.0.1:{IDP}"
client_id = "gateway"
client_secret = "gateway-secret"
[oidc]
trusted_dashboards = ["{ORIGIN}"]
redirect_uri = "https://localhost:{LB}/v3/auth/OS-FEDERATION/websso/openid/redirect"
[oidc.session]
keys = ["{KEY}"]
{state}
[[route]]
name = "websso"
path = "^/v3/auth/OS-FEDERATION/(websso/openid|identity_providers/[^/]+/protocols/openid/websso)$"
auth = "oidc"
[[route]]
name = "openid"
path = "^/v3/OS-FEDERATION/identity_providers/[^/]+/protocols/openid/auth$"
auth = "bearer"
[[route]]
name = "voms"
path = "^/v3/OS-FEDERATION/identity_providers/[^/]+/protocols/mapped/auth$"
auth = "x509"
[route.x509]
require_fqan = "^/fedcloud.egi.eu(/|$)"
[[route]]
name = "keystone"
path = "^/"
auth = "none"
"#,
        cert = host.host_cert.display(),
        key = host.host_key.display(),
        grid = grid.display(),
    )
}

/// haproxy in the foreground, killed on drop. `lb` balances both nodes
/// (health checks every 200 ms with a PROXY v2 LOCAL header; a failed
/// connect is retried on the other node); `via_a` and `via_b` reach one
/// node each, so a test can pick the node a request lands on.
struct Haproxy {
    _proc: Proc,
    _dir: tempfile::TempDir,
}

/// The configuration docs/operations.md shows verbatim.
fn haproxy_cfg() -> String {
    let (a, b) = (NODE_A, NODE_B);
    format!(
        "defaults
  mode tcp
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  retries 3
  option redispatch 1
frontend lb
  bind {HAPROXY}:{LB}
  default_backend fedgate
frontend via_a
  bind {HAPROXY}:{VIA_A}
  default_backend node_a
frontend via_b
  bind {HAPROXY}:{VIA_B}
  default_backend node_b
backend fedgate
  balance roundrobin
  source {HAPROXY}
  default-server send-proxy-v2 check check-send-proxy inter 200ms fall 2 rise 2
  server a 127.0.0.1:{a}
  server b 127.0.0.1:{b}
backend node_a
  source {HAPROXY}
  server a 127.0.0.1:{a} send-proxy-v2
backend node_b
  source {HAPROXY}
  server b 127.0.0.1:{b} send-proxy-v2
"
    )
}

fn start_haproxy() -> Haproxy {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("haproxy.cfg");
    let text = haproxy_cfg();
    std::fs::write(&cfg, &text).unwrap();
    let check = Command::new("haproxy")
        .args(["-c", "-f"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "haproxy -c: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let child = Command::new("haproxy")
        .args(["-db", "-f"])
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn haproxy");
    let p = Proc(child);
    for port in [LB, VIA_A, VIA_B] {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect((HAPROXY, port)).is_err() {
            assert!(Instant::now() < deadline, "haproxy not listening on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Haproxy {
        _proc: p,
        _dir: dir,
    }
}

/// The harness IdP (account set "a") with fedgate's redirect URI registered.
fn start_idp(state: &Path) -> Proc {
    let child = Command::new("node")
        .arg("idp.js")
        .arg(format!("egi={IDP}:a"))
        .current_dir(harness_dir())
        .env(
            "IDP_REDIRECT_URIS",
            format!("https://localhost:{LB}/v3/auth/OS-FEDERATION/websso/openid/redirect"),
        )
        .env("IDP_STATE_DIR", state)
        .env("IDP_QUIET", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("node");
    let p = Proc(child);
    wait_port(IDP, "the IdP harness");
    p
}

fn start_memcached(port: u16) -> Proc {
    let mut c = Command::new("memcached");
    c.args([
        "-l",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-U",
        "0",
        "-m",
        "16",
    ]);
    // memcached refuses to run as root without naming a user.
    if std::env::var("USER").is_ok_and(|u| u == "root")
        || Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
    {
        c.args(["-u", "root"]);
    }
    let p = Proc(
        c.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("memcached"),
    );
    wait_port(port, "memcached");
    p
}

fn start_redis(port: u16) -> Proc {
    let p = Proc(
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server"),
    );
    wait_port(port, "redis-server");
    p
}

/// The CA of the nodes' host certificate, which curl trusts.
static CA: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// A curl answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

/// curl to `url`; a URL on https://localhost:{LB} is sent from the client
/// address to haproxy's `port` (LB, VIA_A or VIA_B). `jar`: a cookie file
/// read and written.
fn curl(url: &str, port: u16, jar: Option<&Path>, args: &[&str]) -> Result<Answer, String> {
    let mut c = Command::new("curl");
    c.args(["-sS", "-D", "-", "-o", "-", "--max-time", "30"])
        .args(["--interface", CLIENT])
        .args(["--connect-to", &format!("localhost:{LB}:{HAPROXY}:{port}")]);
    if let Some(j) = jar {
        c.arg("-b").arg(j).arg("-c").arg(j);
    }
    if let Some(ca) = CA.get() {
        c.arg("--cacert").arg(ca);
    }
    let out = c.args(args).arg(url).output().expect("curl");
    if !out.status.success() {
        return Err(format!(
            "curl exit {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let all = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = all.split_once("\r\n\r\n").unwrap_or((&all, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok(Answer {
        status,
        head: head.to_string(),
        body: body.to_string(),
    })
}

fn url(path: &str) -> String {
    format!("https://localhost:{LB}{path}")
}

/// The IdP harness's request counters.
fn idp_count(what: &str) -> u64 {
    let a = curl(
        &format!("http://127.0.0.1:{IDP}/_harness/stats"),
        0,
        None,
        &[],
    )
    .expect("IdP stats");
    let v: Value = serde_json::from_str(&a.body).unwrap_or_default();
    v["counts"][what].as_u64().unwrap_or(0)
}

/// An opaque access token of `user` (introspected by fedgate).
fn mint(user: &str) -> String {
    let a = curl(
        &format!("http://127.0.0.1:{IDP}/token"),
        0,
        None,
        &[
            "-u",
            "cli:cli-secret",
            "-d",
            "grant_type=password",
            "-d",
            &format!("username={user}"),
            "-d",
            &format!("password={user}-pw"),
            "-d",
            "resource=urn:fedgate:opaque",
        ],
    )
    .unwrap();
    assert_eq!(a.status, 200, "{}", a.body);
    let v: Value = serde_json::from_str(&a.body).unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

/// The value of attribute `attr` in the first tag after `marker`.
fn attr_after(body: &str, marker: &str, attr: &str) -> Option<String> {
    let rest = &body[body.find(marker)?..];
    let rest = &rest[rest.find(&format!("{attr}=\""))? + attr.len() + 2..];
    Some(rest[..rest.find('"')?].replace("&amp;", "&"))
}

/// Drives the IdP from fedgate's redirect to the redirect back to fedgate,
/// as a browser would (login form, consent); returns the callback URL.
fn at_idp(mut location: String, jar: &Path, user: &str) -> String {
    for _ in 0..12 {
        if location.starts_with(&url("")) {
            return location;
        }
        let a = curl(&location, 0, Some(jar), &["-H", "Accept: text/html"]).unwrap();
        if let Some(l) = a.header("location") {
            location = if l.starts_with('/') {
                format!("http://127.0.0.1:{IDP}{l}")
            } else {
                l
            };
            continue;
        }
        let (form, fields) = if a.body.contains("id=\"login\"") {
            (
                "id=\"login\"",
                format!("username={user}&password={user}-pw"),
            )
        } else if a.body.contains("id=\"consent\"") {
            ("id=\"consent\"", String::new())
        } else {
            panic!("unexpected IdP page {}: {}", a.status, a.body);
        };
        let action = attr_after(&a.body, form, "action").expect("form action");
        let a = curl(
            &format!("http://127.0.0.1:{IDP}{action}"),
            0,
            Some(jar),
            &["-H", "Accept: text/html", "--data", &fields],
        )
        .unwrap();
        location = a
            .header("location")
            .unwrap_or_else(|| panic!("no redirect after the IdP form: {}", a.body));
        if location.starts_with('/') {
            location = format!("http://127.0.0.1:{IDP}{location}");
        }
    }
    panic!("the IdP never sent the browser back");
}

/// The Keystone token in a WebSSO callback form.
fn form_token(a: &Answer) -> String {
    attr_after(&a.body, "name=\"token\"", "value")
        .unwrap_or_else(|| panic!("no token form ({}): {}", a.status, a.body))
}

/// The Keystone user name a token belongs to.
fn keystone_user(ks: &str, token: &str) -> String {
    let a = curl(
        &format!("{ks}/v3/auth/tokens"),
        0,
        None,
        &[
            "-H",
            &format!("X-Auth-Token: {token}"),
            "-H",
            &format!("X-Subject-Token: {token}"),
        ],
    )
    .unwrap();
    assert_eq!(a.status, 200, "Keystone refused the token: {}", a.body);
    let v: Value = serde_json::from_str(&a.body).unwrap();
    v["token"]["user"]["name"].as_str().unwrap().to_string()
}

/// A credential: an access token, or a VOMS proxy file (certificate, key
/// and chain in one PEM).
#[derive(Clone)]
enum Cred {
    Bearer(String),
    Proxy(PathBuf),
}

/// A federated login through haproxy's `port`: the user name in Keystone's
/// answer, or why there is none.
fn login(cred: &Cred, port: u16) -> Result<String, String> {
    let a = match cred {
        Cred::Bearer(t) => curl(
            &url(OPENID),
            port,
            None,
            &["-X", "POST", "-H", &format!("Authorization: Bearer {t}")],
        )?,
        Cred::Proxy(p) => {
            let p = p.to_str().unwrap();
            curl(
                &url(MAPPED),
                port,
                None,
                &["-X", "POST", "--cert", p, "--key", p],
            )?
        }
    };
    if a.status != 201 {
        return Err(format!("{}: {}", a.status, a.body));
    }
    let v: Value = serde_json::from_str(&a.body).map_err(|e| e.to_string())?;
    Ok(v["token"]["user"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

/// Keystone's user name for a grid certificate: `dn:<gridsite DN>`.
fn dn_user(cert: &Path) -> String {
    let dn = openssl(&[
        "x509",
        "-in",
        cert.to_str().unwrap(),
        "-noout",
        "-subject",
        "-nameopt",
        "compat",
    ]);
    format!(
        "dn:{}",
        fedgate::internal::pki::dn::mild_encode(
            dn.trim_start_matches("subject=").trim().as_bytes()
        )
    )
}

/// How many values the shared store holds under the test's prefix: the
/// items of both memcached servers (each printed), or Redis keys matching
/// `multinode:*`.
fn stored(backend: Backend) -> u64 {
    match backend {
        Backend::Memcached => MEMCACHED
            .iter()
            .map(|port| {
                use std::io::{Read, Write};
                let mut s = std::net::TcpStream::connect(("127.0.0.1", *port)).unwrap();
                s.write_all(b"stats\r\nquit\r\n").unwrap();
                let mut text = String::new();
                s.read_to_string(&mut text).unwrap();
                let n = text
                    .lines()
                    .find_map(|l| l.strip_prefix("STAT total_items "))
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or(0);
                eprintln!("multinode: memcached {port} stored {n} items");
                n
            })
            .sum(),
        Backend::Redis => {
            let out = Command::new("redis-cli")
                .args([
                    "-p",
                    &REDIS.to_string(),
                    "--scan",
                    "--pattern",
                    "multinode:*",
                ])
                .output()
                .expect("redis-cli");
            String::from_utf8_lossy(&out.stdout).lines().count() as u64
        }
    }
}

/// Seconds from `killed` to `at`, negative before.
fn offset(at: Instant, killed: Instant) -> f64 {
    if at >= killed {
        (at - killed).as_secs_f64()
    } else {
        -(killed - at).as_secs_f64()
    }
}

/// `check-config --offline` on a node's configuration: a refused `[state]`
/// table fails the test with fedgate's own message.
fn state_supported(cfg: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("probe.toml");
    std::fs::write(&f, cfg).unwrap();
    let (code, out, err) = common::run_fedgate(&["check-config", "--offline"], &f);
    if code == 0 {
        Ok(())
    } else {
        Err(format!("{out}{err}"))
    }
}

struct Env {
    ks: String,
    uwsgi: String,
    grid: &'static common::gridpki::Pki,
    host: fedgate::demo::pki::DemoPki,
    _dir: tempfile::TempDir,
}

#[test]
fn two_nodes_behind_haproxy_share_state() {
    let (Ok(ks), Ok(uwsgi)) = (
        std::env::var("FEDGATE_E2E_KEYSTONE_URL"),
        std::env::var("FEDGATE_E2E_KEYSTONE_UWSGI"),
    ) else {
        eprintln!(
            "SKIPPED: FEDGATE_E2E_KEYSTONE_URL/UWSGI not set (run scripts/test.sh, or start tests/harness/keystone/setup.sh)"
        );
        return;
    };
    for tool in ["haproxy", "memcached", "redis-server", "node", "curl"] {
        if !require(
            have(tool),
            &format!("{tool} is not installed (scripts/test.sh installs it)"),
        ) {
            return;
        }
    }
    if !require(
        harness_dir().join("node_modules/oidc-provider").exists(),
        "npm packages of tests/harness/idp are not installed",
    ) {
        return;
    }
    let Some(grid) = common::gridpki::pki() else {
        require(false, "grid tools for the test PKI");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let host = fedgate::demo::pki::create(&dir.path().join("host")).expect("host pki");
    CA.set(host.ca_file.clone()).unwrap();
    let _idp = start_idp(&dir.path().join("idp"));
    let env = Env {
        ks,
        uwsgi,
        grid,
        host,
        _dir: dir,
    };
    let t0 = Instant::now();
    for backend in [Backend::Memcached, Backend::Redis] {
        let state = state_toml(backend);
        let probe = node_toml(NODE_A, &env.host, &env.grid.dir, &env.uwsgi, &state);
        if let Err(e) = state_supported(&probe) {
            panic!("fedgate refuses the [state] table for {backend:?}: {e}");
        }
        let _servers: Vec<Proc> = match backend {
            Backend::Memcached => MEMCACHED.iter().map(|p| start_memcached(*p)).collect(),
            Backend::Redis => vec![start_redis(REDIS)],
        };
        let t = Instant::now();
        scenarios(&env, backend, &state);
        eprintln!("multinode {backend:?}: {:.1} s", t.elapsed().as_secs_f64());
    }
    eprintln!(
        "multinode: both backends in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}

fn scenarios(env: &Env, backend: Backend, state: &str) {
    let node = |port| node_toml(port, &env.host, &env.grid.dir, &env.uwsgi, state);
    let mut a = Gateway::start_text(&node(NODE_A));
    let b = Gateway::start_text(&node(NODE_B));
    let _hap = start_haproxy();
    let jars = tempfile::tempdir().unwrap();
    let tag = format!("{backend:?}");

    // 1. WebSSO: started on A, completed on B.
    let jar = jars.path().join("browser");
    let start = format!(
        "{}?origin={ORIGIN}&iss=http%3A%2F%2F127.0.0.1%3A{IDP}",
        url(WEBSSO)
    );
    let r = curl(&start, VIA_A, Some(&jar), &["-H", "Accept: text/html"]).unwrap();
    assert_eq!(r.status, 302, "{tag}: {r:?}");
    let callback = at_idp(r.header("location").unwrap(), &jar, "alice");
    let before_callback = jars.path().join("before-callback");
    std::fs::copy(&jar, &before_callback).unwrap();
    let r = curl(&callback, VIA_B, Some(&jar), &["-H", "Accept: text/html"]).unwrap();
    assert_eq!(
        r.status, 200,
        "{tag}: the login did not complete on B: {r:?}"
    );
    assert_eq!(keystone_user(&env.ks, &form_token(&r)), ALICE, "{tag}");
    assert!(
        b.logs
            .wait_for("login completed", Duration::from_secs(5))
            .is_some(),
        "{tag}: B did not complete the login"
    );
    assert_eq!(a.logs.count("login completed"), 0, "{tag}");
    // The session cookie, on A and on B: no new visit to the IdP.
    let auths = idp_count("auth");
    for (node, port) in [("A", VIA_A), ("B", VIA_B)] {
        let r = curl(&start, port, Some(&jar), &["-H", "Accept: text/html"]).unwrap();
        assert_eq!(r.status, 200, "{tag}: the session on {node}: {r:?}");
        assert_eq!(
            keystone_user(&env.ks, &form_token(&r)),
            ALICE,
            "{tag} {node}"
        );
    }
    assert_eq!(
        idp_count("auth"),
        auths,
        "{tag}: the session went back to the IdP"
    );
    // The same IdP answer (code and state, with the pending-login cookie it
    // was sent with) replayed on A: refused before the code is spent.
    let tokens = idp_count("token");
    let r = curl(
        &callback,
        VIA_A,
        Some(&before_callback),
        &["-H", "Accept: text/html"],
    )
    .unwrap();
    assert!(
        (400..500).contains(&r.status),
        "{tag}: a replayed login response: {r:?}"
    );
    assert_eq!(
        idp_count("token"),
        tokens,
        "{tag}: the replay reached the IdP's token endpoint"
    );

    // Signing out on B ends the session on A too: A sends the browser back
    // to the IdP, though the cookie (kept from before the logout, which
    // clears it) is still sent.
    let signed_in = jars.path().join("signed-in");
    std::fs::copy(&jar, &signed_in).unwrap();
    let out = format!(
        "{}?origin={ORIGIN}",
        url("/v3/auth/OS-FEDERATION/websso/logout")
    );
    let r = curl(
        &out,
        VIA_B,
        Some(&jar),
        &[
            "-H",
            "Accept: text/html",
            "-H",
            "Sec-Fetch-Site: none",
            "-H",
            "Sec-Fetch-Mode: navigate",
        ],
    )
    .unwrap();
    assert!(matches!(r.status, 302 | 303), "{tag}: logout on B: {r:?}");
    let r = curl(&start, VIA_A, Some(&jar), &["-H", "Accept: text/html"]).unwrap();
    assert_eq!(
        r.status, 302,
        "{tag}: the session outlived its logout on A: {r:?}"
    );
    assert!(
        r.header("location")
            .is_some_and(|l| l.starts_with(&format!("http://127.0.0.1:{IDP}/"))),
        "{tag}: {r:?}"
    );

    // 2. A bearer token on A then on B: one introspection.
    let alice = mint("alice");
    let before = idp_count("introspection");
    assert_eq!(
        login(&Cred::Bearer(alice.clone()), VIA_A).as_deref(),
        Ok(ALICE),
        "{tag}"
    );
    assert_eq!(
        login(&Cred::Bearer(alice.clone()), VIA_B).as_deref(),
        Ok(ALICE),
        "{tag}"
    );
    assert_eq!(
        idp_count("introspection") - before,
        1,
        "{tag}: B did not use A's validation"
    );

    // What the nodes shared went through the store (under the prefix),
    // and the nodes say the store is up.
    assert!(stored(backend) > 0, "{tag}: nothing in the shared store");
    let name = format!("{backend:?}").to_lowercase();
    for (node, gw) in [("A", &a), ("B", &b)] {
        let m = String::from_utf8_lossy(&gw.admin_get("/metrics").body).into_owned();
        assert!(
            m.lines().any(|l| l.starts_with("fedgate_shared_state_up{")
                && l.contains(&format!("backend=\"{name}\""))
                && l.ends_with(" 1")),
            "{tag}: node {node} does not report the store up:\n{}",
            m.lines()
                .filter(|l| l.contains("shared_state"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    // 3. A VOMS proxy through either node: its own Keystone user.
    let alice_dn = dn_user(&env.grid.dir.join("users/alice.pem"));
    let dave_dn = dn_user(&env.grid.dir.join("users/dave.pem"));
    for port in [VIA_A, VIA_B] {
        assert_eq!(
            login(&Cred::Proxy(env.grid.cred("rfc_voms")), port).as_deref(),
            Ok(alice_dn.as_str()),
            "{tag} via {port}"
        );
    }

    // 4. The client's address, not haproxy's, in fedgate's request log.
    let r = curl(&url("/v3"), VIA_B, None, &[]).unwrap();
    let id = r.header("x-fedgate-request-id").expect("a request id");
    let line = b
        .logs
        .wait_for(&format!("id={id}"), Duration::from_secs(5))
        .map(|l| common::strip_ansi(&l))
        .expect("the request's log line");
    assert!(
        line.contains(&format!("peer={CLIENT}:")) && !line.contains(HAPROXY),
        "{tag}: {line}"
    );

    // 5. Node A killed under load through the balanced port.
    let dave = mint("dave");
    let creds = [
        (Cred::Bearer(alice.clone()), ALICE.to_string()),
        (Cred::Bearer(dave), DAVE.to_string()),
        (Cred::Proxy(env.grid.cred("rfc_voms")), alice_dn.clone()),
        (Cred::Proxy(env.grid.cred("intermediate_voms")), dave_dn),
    ];
    // Each credential once on each node first: dave's token is validated
    // (once), so the load below needs no introspection at all.
    for (cred, want) in &creds {
        for port in [VIA_A, VIA_B] {
            assert_eq!(
                login(cred, port).as_ref(),
                Ok(want),
                "{tag} warm-up via {port}"
            );
        }
    }
    let introspections = idp_count("introspection");
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = creds
        .iter()
        .cloned()
        .map(|(cred, want)| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut out = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let at = Instant::now();
                    out.push((at, login(&cred, LB), want.clone()));
                }
                out
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    let before_kill = b.logs.count("status=201");
    a.signal(SIGKILL);
    let killed = Instant::now();
    assert!(a.wait_exit(Duration::from_secs(5)).is_some());
    std::thread::sleep(Duration::from_secs(5));
    stop.store(true, Ordering::Relaxed);
    let mut results = Vec::new();
    for w in workers {
        results.extend(w.join().unwrap());
    }
    let mut errors = Vec::new();
    let (mut before_n, mut after_n) = (0, 0);
    for (at, got, want) in &results {
        match got {
            Ok(user) => {
                assert_eq!(user, want, "{tag}: an answer for another identity");
                if *at < killed {
                    before_n += 1;
                } else {
                    after_n += 1;
                }
            }
            Err(e) => errors.push((offset(*at, killed), e.clone())),
        }
    }
    eprintln!(
        "multinode {tag}: {} requests, {before_n} answered before the kill, {after_n} after, {} errors: {errors:?}",
        results.len(),
        errors.len()
    );
    assert!(before_n >= 4 && after_n >= 8, "{tag}: too few answers");
    // Only requests that met A dying may fail: the ones in flight, and a
    // connection A's listen queue took just before the process ended (at
    // most two per client); haproxy's checks take A out within 400 ms, and
    // until then a refused connect is retried on B, so nothing sent a
    // second after the kill fails.
    assert!(errors.len() <= 2 * creds.len(), "{tag}: {errors:#?}");
    assert!(
        errors.iter().all(|(t, _)| *t < 1.0),
        "{tag}: errors after the switch: {errors:#?}"
    );
    assert!(b.logs.count("status=201") >= before_kill + after_n, "{tag}");
    assert_eq!(
        idp_count("introspection"),
        introspections,
        "{tag}: the load needed introspections"
    );
}

/// docs/operations.md shows the haproxy configuration this test runs,
/// byte for byte.
#[test]
fn the_documented_haproxy_configuration_is_the_tested_one() {
    let doc = include_str!("../docs/operations.md");
    assert!(
        doc.contains(&haproxy_cfg()),
        "docs/operations.md (\"Several nodes behind haproxy\") must show, verbatim:\n{}",
        haproxy_cfg()
    );
}
