//! Shared pieces of the bearer-token end-to-end tests: real oidc-provider
//! IdPs (tests/harness/idp), real redis-server, and fedgate in process in
//! front of the demo's uwsgi echo upstream (which returns the environ
//! Keystone would have received).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use fedgate::internal::http_client::{Answer, HttpClient};
use serde_json::Value;

pub fn harness_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/harness/idp")
}

static NPM: Once = Once::new();

/// `npm ci` once per test binary when node_modules is missing.
pub fn npm_ci() {
    NPM.call_once(|| {
        if harness_dir().join("node_modules/oidc-provider").exists() {
            return;
        }
        let st = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(harness_dir())
            .status()
            .expect("npm must be installed for the IdP harness");
        assert!(st.success(), "npm ci failed in tests/harness/idp");
    });
}

/// Waits (30 s at most) until something listens on `port`.
pub fn wait_port(port: u16, what: &str) {
    let until = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < until,
            "{what} did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A child process killed (by its own pid) when dropped.
pub struct Proc(pub Child);

/// Starts `cmd` with its output in a temporary log file and waits (60 s at
/// most) until it listens on every port of `ports`. A child that exits
/// first or never listens fails the test with its exit status and the end
/// of its log, instead of a bare timeout.
pub fn spawn_listening(mut cmd: Command, what: &str, ports: &[u16]) -> Proc {
    let log = tempfile::NamedTempFile::new()
        .unwrap()
        .into_temp_path()
        .keep()
        .unwrap();
    let out = std::fs::File::create(&log).unwrap();
    let child = cmd
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("{what} does not start: {e}"));
    let mut p = Proc(child);
    let until = Instant::now() + Duration::from_secs(60);
    let tail = |log: &Path| {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    };
    for &port in ports {
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(st)) = p.0.try_wait() {
                panic!(
                    "{what} exited ({st}) before listening on port {port}:\n{}",
                    tail(&log)
                );
            }
            assert!(
                Instant::now() < until,
                "{what} did not start on port {port} within 60 s:\n{}",
                tail(&log)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    p
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts harness IdPs, e.g. `&[("a", 18760, "a"), ("b", 18761, "b")]`.
pub fn start_idps(specs: &[(&str, u16, &str)]) -> Proc {
    npm_ci();
    let state = tempfile::tempdir().unwrap().keep();
    let mut c = Command::new("node");
    c.arg("idp.js")
        .current_dir(harness_dir())
        .env("IDP_QUIET", "1")
        .env("IDP_STATE_DIR", &state);
    for (n, p, set) in specs {
        c.arg(format!("{n}={p}:{set}"));
    }
    let ports: Vec<u16> = specs.iter().map(|s| s.1).collect();
    spawn_listening(c, "the harness IdP", &ports)
}

/// A throwaway redis-server on `port`.
pub fn start_redis(port: u16) -> Proc {
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server");
    let p = Proc(child);
    wait_port(port, "redis-server");
    p
}

pub fn issuer(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// Token kinds the harness mints.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// opaque, no audience (EGI-like CLI token)
    Userinfo,
    /// opaque, aud urn:fedgate:opaque
    Opaque,
    /// RFC 9068 JWT, aud urn:fedgate:jwt
    Jwt,
}

pub fn plain() -> HttpClient {
    HttpClient::new(None, Duration::from_secs(10)).unwrap()
}

pub async fn mint(port: u16, user: &str, kind: Kind, ttl: Option<u32>) -> String {
    let pw = format!("{user}-pw");
    let ttl_s = ttl.map(|t| t.to_string()).unwrap_or_default();
    let mut form = vec![
        ("grant_type", "password"),
        ("username", user),
        ("password", pw.as_str()),
    ];
    match kind {
        Kind::Userinfo => {}
        Kind::Opaque => form.push(("resource", "urn:fedgate:opaque")),
        Kind::Jwt => form.push(("resource", "urn:fedgate:jwt")),
    }
    if ttl.is_some() {
        form.push(("ttl", &ttl_s));
    }
    let v = token_endpoint(port, &form).await;
    v["access_token"].as_str().unwrap().to_string()
}

/// The harness client's call to the token endpoint; its JSON answer.
async fn token_endpoint(port: u16, form: &[(&str, &str)]) -> Value {
    let a = plain()
        .post_form(
            &format!("{}/token", issuer(port)),
            Some(("cli", "cli-secret")),
            form,
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    serde_json::from_slice(&a.body).unwrap()
}

/// The ID token the IdP would return with a login of `user` (audience:
/// the harness client `cli`; carries `nonce` and `at_hash`).
pub async fn mint_id_token(port: u16, user: &str) -> String {
    let pw = format!("{user}-pw");
    let form = [
        ("grant_type", "password"),
        ("username", user),
        ("password", pw.as_str()),
        ("id_token", "1"),
    ];
    let v = token_endpoint(port, &form).await;
    v["id_token"].as_str().expect("an id_token").to_string()
}

pub async fn revoke(port: u16, token: &str) {
    let a = plain()
        .post_form(
            &format!("{}/token/revocation", issuer(port)),
            Some(("cli", "cli-secret")),
            &[("token", token)],
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200);
}

pub async fn introspections(port: u16) -> u64 {
    let a = plain()
        .get(&format!("{}/_harness/stats", issuer(port)), None)
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&a.body).unwrap();
    v["counts"]["introspection"].as_u64().unwrap_or(0)
}

pub async fn set_down(port: u16, down: bool) {
    let u = format!(
        "{}/_harness/fault?down={}",
        issuer(port),
        if down { 1 } else { 0 }
    );
    let a = plain().post_form(&u, None, &[]).await.unwrap();
    assert_eq!(a.status, 200);
}

/// An `[[idp]]` table for a harness IdP.
pub fn idp_toml(name: &str, port: u16, extra: &str) -> String {
    format!(
        "[[idp]]\nname = \"{name}\"\nissuer = \"{}\"\nclient_id = \"gateway\"\nclient_secret = \"gateway-secret\"\n{extra}\n",
        issuer(port)
    )
}

/// fedgate serving in this process.
pub struct Gate {
    pub addr: SocketAddr,
    pub ca_file: PathBuf,
    pub client: HttpClient,
    pub bound: fedgate::Bound,
    _dir: tempfile::TempDir,
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.bound.shutdown.trigger();
    }
}

impl Gate {
    /// `top` goes before the tables (e.g. `metadata_dir`), `tables` after
    /// the upstream (idps, cache, routes).
    pub async fn start(tables: &str) -> Gate {
        let up = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let up_port = up.local_addr().unwrap().port();
        tokio::spawn(fedgate::demo::echo::serve_uwsgi_echo(up));
        Self::start_with_upstream(&format!("uwsgi://127.0.0.1:{up_port}"), tables).await
    }

    /// Same, in front of another upstream (a real Keystone).
    pub async fn start_with_upstream(upstream: &str, tables: &str) -> Gate {
        fedgate::internal::crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let pki = fedgate::demo::pki::create(dir.path()).unwrap();
        let text = format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\nmax_connections = 8192\nmax_connections_per_ip = 8192\n[admin]\nlisten = []\n[tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"\nca_dir = \"{}\"\n[upstream]\nurl = \"{upstream}\"\n{tables}",
            pki.host_cert.display(),
            pki.host_key.display(),
            pki.ca_dir.display()
        );
        // Written out too, so a test can edit it and reload.
        let path = dir.path().join("fedgate.toml");
        std::fs::write(&path, &text).unwrap();
        let cfg = fedgate::Config::parse(&path, text).expect("config parses");
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            if let Err(e) = Box::pin(fedgate::serve_config(cfg, Some(tx))).await {
                panic!("fedgate did not start: {e:?}");
            }
        });
        let bound = rx.await.expect("fedgate started");
        let addr = bound.listen[0];
        let client = HttpClient::new(Some(&pki.ca_file), Duration::from_secs(30)).unwrap();
        Gate {
            addr,
            ca_file: pki.ca_file.clone(),
            client,
            bound,
            _dir: dir,
        }
    }

    /// The configuration file the gateway reloads from.
    pub fn config_path(&self) -> PathBuf {
        self._dir.path().join("fedgate.toml")
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.client.get(&self.url(path), token).await.unwrap()
    }

    /// The environ the upstream received (status must be 200).
    pub async fn environ(&self, path: &str, token: &str) -> serde_json::Map<String, Value> {
        let a = self.get(path, Some(token)).await;
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
        let v: Value = serde_json::from_slice(&a.body).unwrap();
        v["environ"].as_object().unwrap().clone()
    }
}

/// The JSON error message of a fedgate refusal.
pub fn reason(a: &Answer) -> String {
    let v: Value = serde_json::from_slice(&a.body).unwrap_or_default();
    v["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

pub fn challenge(a: &Answer) -> String {
    a.headers
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

pub const ROUTE: &str =
    "[[route]]\nname = \"fed\"\npath = \"^/v3/OS-FEDERATION/\"\nauth = \"bearer\"\n";
pub const AUTH_PATH: &str = "/v3/OS-FEDERATION/identity_providers/egi.eu/protocols/openid/auth";
