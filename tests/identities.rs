//! `[plugins.identities]` end to end, against the real Keystone of
//! tests/harness/keystone: a VOMS proxy (X.509) and a bearer token from a
//! real OpenID provider log in through an in-process fedgate; the store
//! then holds the user ids Keystone itself reports for those tokens (asked
//! as admin with `GET /v3/auth/tokens`), with the DN and FQANs, or
//! `sub@issuer` and the entitlements' VO. `fedgate accounting identities`
//! lists them. A second gateway shows that an unusable store and a stalled
//! writer (another process holding SQLite's write lock) never delay or
//! fail a login.
//!
//! Needs FEDGATE_E2E_KEYSTONE_UWSGI and _URL (tests/harness/keystone/setup.sh
//! with KEYSTONE_OIDC_ISSUERS listing http://127.0.0.1:18771), node for the
//! IdP harness, and the grid tools of tests/fixtures/pki. Skipped otherwise.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::gridpki::{self, openssl};
use common::idp::{Kind, idp_toml, issuer, mint, start_idps};
use fedgate::internal::accounting::identities::store::{Entry, Store};
use fedgate::internal::accounting::identities::{GatewayIdentity, IdentityLookup};
use serde_json::Value;

const IDP_PORT: u16 = 18771;
/// The second test's IdP: tests of one binary run in parallel.
const IDP2_PORT: u16 = 18772;
/// The IdP of the accounting chain test.
const IDP3_PORT: u16 = 18774;
const VOMS_AUTH: &str = "/v3/OS-FEDERATION/identity_providers/egi.eu/protocols/mapped/auth";
const OIDC_AUTH: &str = "/v3/OS-FEDERATION/identity_providers/egi.eu/protocols/openid/auth";
/// The first test's gateway: the IdP's registered WebSSO redirect URI
/// names it.
const GATE_PORT: u16 = 18773;
/// Keystone's `[federation] trusted_dashboard` (setup.sh's default).
const ORIGIN: &str = "https://horizon.test/dashboard/auth/websso/";
const FQ1: &str = "/fedcloud.egi.eu/Role=NULL/Capability=NULL";
const FQ2: &str = "/fedcloud.egi.eu/group1/Role=VMManager";

/// A finished curl: status, response headers (lower-case names), body.
struct Curl {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
    took: Duration,
}

impl Curl {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_default()
    }
}

async fn curl(args: &[&str]) -> Curl {
    let t = Instant::now();
    let out = tokio::process::Command::new("curl")
        .args(["-s", "-D", "-", "--max-time", "30"])
        .args(args)
        .output()
        .await
        .expect("curl");
    let took = t.elapsed();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // With -L, one header block per response: the last one counts.
    let (mut head, mut body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    while body.starts_with("HTTP/") {
        (head, body) = body.split_once("\r\n\r\n").unwrap_or((body, ""));
    }
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Curl {
        status,
        headers,
        body: body.to_string(),
        took,
    }
}

/// fedgate in this process in front of the real Keystone: VOMS on the
/// `mapped` protocol, bearer tokens of the harness IdP on `openid`.
struct Gate {
    port: u16,
    admin: std::net::SocketAddr,
    ca_file: PathBuf,
    config: PathBuf,
    bound: fedgate::Bound,
    _dir: tempfile::TempDir,
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.bound.shutdown.trigger();
    }
}

/// `port` 0: any. The WebSSO route needs a fixed one (the IdP knows the
/// redirect URI).
async fn gate(uwsgi: &str, grid: &Path, port: u16, idp_port: u16, identities: &str) -> Gate {
    fedgate::internal::crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let host = fedgate::demo::pki::create(dir.path()).unwrap();
    let text = format!(
        r#"[server]
listen = ["127.0.0.1:{port}"]
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
{idp}
[oidc]
trusted_dashboards = ["{ORIGIN}"]
{identities}
[[route]]
name = "websso"
path = "^/v3/auth/OS-FEDERATION/(websso/openid|identity_providers/[^/]+/protocols/openid/websso)$"
auth = "oidc"
[[route]]
name = "voms"
path = "^/v3/OS-FEDERATION/identity_providers/[^/]+/protocols/mapped/auth$"
auth = "x509"
[[route]]
name = "openid"
path = "^/v3/OS-FEDERATION/identity_providers/[^/]+/protocols/openid/auth$"
auth = "bearer"
[[route]]
path = "^/"
auth = "none"
"#,
        cert = host.host_cert.display(),
        key = host.host_key.display(),
        grid = grid.display(),
        idp = idp_toml("a", idp_port, "claims = [\"eduperson_entitlement\"]"),
    );
    let config = dir.path().join("fedgate.toml");
    std::fs::write(&config, &text).unwrap();
    let cfg = fedgate::Config::parse(&config, text).expect("config parses");
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        if let Err(e) = Box::pin(fedgate::serve_config(cfg, Some(tx))).await {
            panic!("fedgate did not start: {e:?}");
        }
    });
    let bound = rx.await.expect("fedgate started");
    Gate {
        port: bound.listen[0].port(),
        admin: bound.admin[0],
        ca_file: host.ca_file.clone(),
        config,
        bound,
        _dir: dir,
    }
}

impl Gate {
    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }
    async fn voms_login(&self, cred: &Path) -> Curl {
        let (c, ca) = (cred.to_str().unwrap(), self.ca_file.to_str().unwrap());
        curl(&[
            "-X",
            "POST",
            "--cacert",
            ca,
            "--cert",
            c,
            "--key",
            c,
            &self.url(VOMS_AUTH),
        ])
        .await
    }
    async fn bearer_login(&self, token: &str) -> Curl {
        let auth = format!("Authorization: Bearer {token}");
        let ca = self.ca_file.to_str().unwrap();
        curl(&[
            "-X",
            "POST",
            "--cacert",
            ca,
            "-H",
            &auth,
            &self.url(OIDC_AUTH),
        ])
        .await
    }
    async fn metric(&self, name: &str) -> f64 {
        let c = curl(&[&format!("http://{}/metrics", self.admin)]).await;
        c.body
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(-1.0)
    }
}

/// Keystone's own view: the user id of `token`, asked as admin.
async fn keystone_user_of(keystone: &str, token: &str) -> String {
    let body = r#"{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"admin","domain":{"id":"default"},"password":"admin-pw"}}},"scope":{"project":{"name":"admin","domain":{"id":"default"}}}}}"#;
    let admin = curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        body,
        &format!("{keystone}/v3/auth/tokens"),
    ])
    .await;
    assert_eq!(admin.status, 201, "admin login: {}", admin.body);
    let admin = admin.header("x-subject-token").unwrap().to_string();
    let v = curl(&[
        "-H",
        &format!("X-Auth-Token: {admin}"),
        "-H",
        &format!("X-Subject-Token: {token}"),
        &format!("{keystone}/v3/auth/tokens"),
    ])
    .await;
    assert_eq!(v.status, 200, "token validation: {}", v.body);
    v.json()["token"]["user"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The store's entries once `want` of them are there (10 s at most).
async fn stored(path: &Path, want: usize) -> Vec<Entry> {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let got = Store::open_read_only(path)
            .and_then(|s| s.list(None))
            .unwrap_or_default();
        if got.len() >= want || Instant::now() > until {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn fedgate_cli(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fedgate"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The harness IdP on IDP_PORT, with the first test's gateway as a
/// registered redirect URI (browser logins).
fn start_idp_for_websso() -> common::idp::Proc {
    common::idp::npm_ci();
    let state = tempfile::tempdir().unwrap().keep();
    let child = std::process::Command::new("node")
        .arg("idp.js")
        .arg(format!("a={IDP_PORT}:a"))
        .current_dir(common::idp::harness_dir())
        .env("IDP_QUIET", "1")
        .env("IDP_STATE_DIR", &state)
        .env(
            "IDP_REDIRECT_URIS",
            format!("https://localhost:{GATE_PORT}/v3/auth/OS-FEDERATION/websso/openid/redirect"),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("node");
    let p = common::idp::Proc(child);
    common::idp::wait_port(IDP_PORT, "IdP a");
    p
}

/// A browser's WebSSO login, done with curl: Horizon's URL at fedgate, the
/// IdP's login and consent forms, the callback to fedgate, Keystone's
/// callback form. Returns the token id the form carries.
async fn websso_login(g: &Gate, user: &str) -> String {
    let jar = tempfile::NamedTempFile::new().unwrap();
    let jar = jar.path().to_str().unwrap().to_string();
    let ca = g.ca_file.to_str().unwrap().to_string();
    let step = |url: String, form: Option<String>| {
        let (jar, ca) = (jar.clone(), ca.clone());
        async move {
            let mut args: Vec<String> = ["-L", "-c", &jar, "-b", &jar, "--cacert", &ca]
                .iter()
                .map(|s| s.to_string())
                .collect();
            args.extend(["-H".into(), "Accept: text/html".into()]);
            args.extend(["-w".into(), "\n%{url_effective}".into()]);
            if let Some(f) = form {
                args.extend(["-d".into(), f]);
            }
            args.push(url);
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let c = curl(&refs).await;
            let (body, url) = c.body.rsplit_once('\n').unwrap_or((&c.body, ""));
            (c.status, body.to_string(), url.to_string())
        }
    };
    let iss = format!("http%3A%2F%2F127.0.0.1%3A{IDP_PORT}");
    let mut at = step(
        g.url(&format!(
            "/v3/auth/OS-FEDERATION/websso/openid?origin={ORIGIN}&iss={iss}"
        )),
        None,
    )
    .await;
    for _ in 0..4 {
        let (_, body, url) = &at;
        if body.contains("id=\"login\"") {
            at = step(
                format!("{url}/login"),
                Some(format!("username={user}&password={user}-pw")),
            )
            .await;
        } else if body.contains("id=\"consent\"") {
            at = step(format!("{url}/confirm"), Some(String::new())).await;
        } else {
            break;
        }
    }
    let (status, body, url) = at;
    assert_eq!(status, 200, "{url}: {body}");
    let v = body
        .split("name=\"token\"")
        .nth(1)
        .and_then(|r| r.split("value=\"").nth(1));
    v.and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("no token in {url}: {body}"))
        .to_string()
}

fn prerequisites() -> Option<(String, String, &'static gridpki::Pki)> {
    let (Ok(uwsgi), Ok(url)) = (
        std::env::var("FEDGATE_E2E_KEYSTONE_UWSGI"),
        std::env::var("FEDGATE_E2E_KEYSTONE_URL"),
    ) else {
        eprintln!("SKIP: FEDGATE_E2E_KEYSTONE_UWSGI/_URL are not set (run scripts/test.sh)");
        return None;
    };
    Some((uwsgi, url, gridpki::pki()?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keystone_user_ids_are_recorded_with_the_verified_identity() {
    let Some((uwsgi, keystone, grid)) = prerequisites() else {
        return;
    };
    let _idp = start_idp_for_websso();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("identities.sqlite");
    let g = gate(
        &uwsgi,
        &grid.dir,
        GATE_PORT,
        IDP_PORT,
        &format!(
            "[plugins.identities]\npath = {:?}\n",
            db.display().to_string()
        ),
    )
    .await;

    // X.509: a VOMS proxy, then a proxy of it (the same person).
    let x = g.voms_login(&grid.cred("rfc_voms")).await;
    assert_eq!(x.status, 201, "{}", x.body);
    let x_user = keystone_user_of(&keystone, x.header("x-subject-token").unwrap()).await;
    assert_eq!(x.json()["token"]["user"]["id"], x_user.as_str());
    let dn = openssl(&[
        "x509",
        "-in",
        grid.dir.join("users/alice.pem").to_str().unwrap(),
        "-noout",
        "-subject",
        "-nameopt",
        "compat",
    ]);
    let dn = dn.trim_start_matches("subject=").trim().to_string();
    assert!(dn.starts_with('/') && dn.contains("CN="), "{dn}");

    // Bearer: a JWT access token of the harness IdP.
    let token = mint(IDP_PORT, "alice", Kind::Jwt, None).await;
    let b = g.bearer_login(&token).await;
    assert_eq!(b.status, 201, "{}", b.body);
    let b_user = keystone_user_of(&keystone, b.header("x-subject-token").unwrap()).await;
    assert_ne!(b_user, x_user);
    let sub_at_iss = format!(
        "a11ce0000000000000000000000000001@egi.test@{}",
        issuer(IDP_PORT)
    );

    let entries = stored(&db, 2).await;
    assert_eq!(entries.len(), 2, "{entries:?}");
    let x509 = entries
        .iter()
        .find(|e| e.kind == "x509")
        .expect("x509 entry");
    assert_eq!(x509.keystone_user_id, x_user);
    assert_eq!(x509.global_user_name, dn);
    assert_eq!(x509.fqan.as_deref(), Some(FQ1));
    assert_eq!(x509.attributes, vec![FQ1.to_string(), FQ2.to_string()]);
    let oidc = entries
        .iter()
        .find(|e| e.kind == "oidc")
        .expect("oidc entry");
    assert_eq!(oidc.keystone_user_id, b_user);
    assert_eq!(oidc.global_user_name, sub_at_iss);
    assert_eq!(oidc.fqan.as_deref(), Some("fedcloud.egi.eu"));
    assert_eq!(oidc.attributes.len(), 3, "{:?}", oidc.attributes);

    // The same person again: one entry, last_seen moves, first_seen stays.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let again = g.voms_login(&grid.cred("depth2_voms")).await;
    assert_eq!(again.status, 201, "{}", again.body);
    assert_eq!(again.json()["token"]["user"]["id"], x_user.as_str());
    let until = Instant::now() + Duration::from_secs(10);
    let x509_again = loop {
        let e = stored(&db, 2).await;
        let x = e.into_iter().find(|e| e.kind == "x509").unwrap();
        if x.last_seen > x509.last_seen || Instant::now() > until {
            break x;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(x509_again.first_seen, x509.first_seen);
    assert!(x509_again.last_seen > x509.last_seen, "{x509_again:?}");
    assert_eq!(stored(&db, 2).await.len(), 2);

    // WebSSO: Keystone's answer is a form with the token id only; fedgate
    // asks Keystone whose it is. dave's first member VO is bulk-vo-001.test.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let sso_token = websso_login(&g, "dave").await;
    let d_user = keystone_user_of(&keystone, &sso_token).await;
    assert!(d_user != x_user && d_user != b_user);
    let entries = stored(&db, 3).await;
    let dave = entries
        .iter()
        .find(|e| e.keystone_user_id == d_user)
        .unwrap_or_else(|| panic!("no entry for the WebSSO user: {entries:?}"));
    assert_eq!(
        (
            dave.kind.as_str(),
            dave.global_user_name.as_str(),
            dave.fqan.as_deref()
        ),
        (
            "oidc",
            format!(
                "da4e0000000000000000000000000004@egi.test@{}",
                issuer(IDP_PORT)
            )
            .as_str(),
            Some("bulk-vo-001.test")
        )
    );
    assert_eq!(dave.attributes.len(), 101);

    // What accounting asks.
    let store = Store::open_read_only(&db).unwrap();
    let lookup: &dyn IdentityLookup = &store;
    assert_eq!(
        lookup.lookup(&x_user),
        Some(GatewayIdentity {
            global_user_name: dn.clone(),
            fqan: Some(FQ1.into())
        })
    );
    assert_eq!(
        lookup.lookup(&b_user),
        Some(GatewayIdentity {
            global_user_name: sub_at_iss.clone(),
            fqan: Some("fedcloud.egi.eu".into())
        })
    );
    assert_eq!(lookup.lookup("no-such-user"), None);

    // A login Keystone refuses (bob has no vm_operator entitlement) and a
    // non-login answer are not recorded.
    let bob = mint(IDP_PORT, "bob", Kind::Jwt, None).await;
    let refused = g.bearer_login(&bob).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        Store::open_read_only(&db)
            .unwrap()
            .list(None)
            .unwrap()
            .len(),
        3
    );

    // The listing command.
    let cfg = g.config.to_str().unwrap();
    let (code, out, err) = fedgate_cli(&["accounting", "identities", "--config", cfg, "--json"]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3, "{out}");
    assert_eq!(
        rows[0]["keystone_user_id"],
        d_user.as_str(),
        "most recent first"
    );
    assert_eq!(rows[1]["keystone_user_id"], x_user.as_str());
    assert_eq!(rows[1]["global_user_name"], dn.as_str());
    assert!(
        rows[0]["last_seen"].as_str().unwrap().ends_with('Z'),
        "{}",
        rows[0]
    );
    let (code, out, _) = fedgate_cli(&[
        "accounting",
        "identities",
        "--config",
        cfg,
        "--user",
        &b_user,
    ]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "header and one row: {out}");
    assert!(lines[0].starts_with("KEYSTONE USER ID"), "{out}");
    assert!(
        lines[1].starts_with(&b_user) && lines[1].contains(&sub_at_iss),
        "{out}"
    );
    let (code, out, _) = fedgate_cli(&[
        "accounting",
        "identities",
        "--config",
        cfg,
        "--user",
        "nobody",
    ]);
    assert_eq!((code, out.lines().count()), (1, 1), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broken_or_stalled_store_never_delays_a_login() {
    let Some((uwsgi, _keystone, grid)) = prerequisites() else {
        return;
    };
    let _idp = start_idps(&[("a", IDP2_PORT, "a")]);

    // A store that cannot be created: /proc takes no new files, even from root.
    let g = gate(
        &uwsgi,
        &grid.dir,
        0,
        IDP2_PORT,
        "[plugins.identities]\npath = \"/proc/fedgate-identities.sqlite\"\n",
    )
    .await;
    let token = mint(IDP2_PORT, "alice", Kind::Jwt, None).await;
    for _ in 0..3 {
        let b = g.bearer_login(&token).await;
        assert_eq!(b.status, 201, "{}", b.body);
        let x = g.voms_login(&grid.cred("rfc_voms")).await;
        assert_eq!(x.status, 201, "{}", x.body);
    }
    assert!(!Path::new("/proc/fedgate-identities.sqlite").exists());
    drop(g);

    // A stalled writer: another process holds SQLite's write lock for 6 s
    // (longer than the writer's 5 s busy wait), and the queue holds 1.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("identities.sqlite");
    let g = gate(
        &uwsgi,
        &grid.dir,
        0,
        IDP2_PORT,
        &format!(
            "[plugins.identities]\npath = {:?}\nqueue = 1\n",
            db.display().to_string()
        ),
    )
    .await;
    // Creates the store and its table, as the gateway would.
    Store::open(&db).unwrap();
    let mut locker = tokio::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys, time\n\
             c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
             c.execute('BEGIN EXCLUSIVE')\n\
             print('locked', flush=True)\n\
             time.sleep(120)\n\
             c.execute('COMMIT')\n",
        ])
        .arg(&db)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    {
        use tokio::io::AsyncBufReadExt;
        let mut line = String::new();
        tokio::io::BufReader::new(locker.stdout.take().unwrap())
            .read_line(&mut line)
            .await
            .unwrap();
        assert_eq!(line.trim(), "locked");
    }
    let mut took = Vec::new();
    for _ in 0..4 {
        let b = g.bearer_login(&token).await;
        assert_eq!(b.status, 201, "{}", b.body);
        took.push(b.took);
    }
    eprintln!("bearer logins through fedgate with the writer stalled: {took:?}");
    // A login that waited for the writer would wait out SQLite's busy
    // timeout (5 s) every time; the fastest of four shows whether any
    // login got through without it. (Not the slowest: under load a
    // federated login alone can take seconds inside Keystone.) And all of
    // them completed while the lock was still held.
    let fastest = took.iter().min().copied().unwrap();
    assert!(fastest < Duration::from_secs(5), "logins took {took:?}");
    assert!(
        locker.try_wait().unwrap().is_none(),
        "the lock holder finished before the logins did ({took:?})"
    );
    let dropped = g.metric("fedgate_identity_records_dropped_total").await;
    assert!(
        dropped >= 1.0,
        "queue = 1 with a stalled writer drops: {dropped}"
    );
    // Ending the holder releases SQLite's lock.
    let _ = locker.kill().await;
    let _ = locker.wait().await;
    // Once the lock is gone, logins are recorded again.
    let b = g.bearer_login(&token).await;
    assert_eq!(b.status, 201, "{}", b.body);
    let until = Instant::now() + Duration::from_secs(15);
    while stored(&db, 1).await.is_empty() && Instant::now() < until {}
    assert_eq!(stored(&db, 1).await.len(), 1);
}

/// A Keystone admin token (the harness's admin/admin-pw).
async fn admin_token(keystone: &str) -> String {
    let body = r#"{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"admin","domain":{"id":"default"},"password":"admin-pw"}}},"scope":{"project":{"name":"admin","domain":{"id":"default"}}}}}"#;
    let c = curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        body,
        &format!("{keystone}/v3/auth/tokens"),
    ])
    .await;
    assert_eq!(c.status, 201, "admin login: {}", c.body);
    c.header("x-subject-token").unwrap().to_string()
}

/// The issue's chain, end to end with real parts: a researcher logs in
/// through fedgate with a VOMS proxy (Keystone maps them to a federated
/// user with a role on the VO's project), scopes the token to that project
/// and creates a server in the real Nova of tests/harness/nova; the
/// accounting extraction then reports that server with the certificate DN
/// as GlobalUserName and the proxy's primary FQAN, which only the gateway
/// knew. Needs the Nova harness too (FEDGATE_E2E_NOVA_ENV).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_of_a_voms_login_is_accounted_with_its_dn_and_fqan() {
    use fedgate::internal::accounting::extract::Extractor;
    use fedgate::internal::accounting::source::{
        ExtractOptions, Extractor as Kind, GlobalUserSource, SpecKeys, Window,
    };
    use fedgate::internal::openstack::Secret;
    use fedgate::internal::openstack::session::{AuthOptions, Credentials, Scope};

    let Some((uwsgi, keystone, grid)) = prerequisites() else {
        return;
    };
    let Some(env) = common::nova_env() else {
        return;
    };
    let cloud: Value = serde_json::from_slice(
        &std::fs::read(Path::new(&env["FEDGATE_E2E_NOVA_DIR"]).join("objects-cloud.json")).unwrap(),
    )
    .unwrap();
    // The gateway's configuration names an IdP (the bearer route); this
    // test's own, on a port no other test uses.
    let _idp = start_idps(&[("a", IDP3_PORT, "a")]);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("identities.sqlite");
    let g = gate(
        &uwsgi,
        &grid.dir,
        0,
        IDP3_PORT,
        &format!(
            "[plugins.identities]\npath = {:?}\n",
            db.display().to_string()
        ),
    )
    .await;
    let from = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        - 1;

    // The login through fedgate, and the store's entry for it.
    let x = g.voms_login(&grid.cred("rfc_voms")).await;
    assert_eq!(x.status, 201, "{}", x.body);
    let unscoped = x.header("x-subject-token").unwrap().to_string();
    let user_id = x.json()["token"]["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let entries = stored(&db, 1).await;
    let entry = entries
        .iter()
        .find(|e| e.keystone_user_id == user_id)
        .unwrap_or_else(|| panic!("no entry for {user_id}: {entries:?}"))
        .clone();

    // The researcher scopes the token to the VO's project (the mapping's
    // group has `member` there) and creates a server in the real Nova.
    let scope = serde_json::json!({"auth": {
        "identity": {"methods": ["token"], "token": {"id": unscoped}},
        "scope": {"project": {"name": "fedcloud.egi.eu", "domain": {"id": "default"}}}}});
    let s = curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        &scope.to_string(),
        &format!("{keystone}/v3/auth/tokens"),
    ])
    .await;
    assert_eq!(s.status, 201, "scoping the federated token: {}", s.body);
    let token = s.header("x-subject-token").unwrap().to_string();
    let st = s.json();
    let project = st["token"]["project"]["id"].as_str().unwrap().to_string();
    let nova = st["token"]["catalog"]
        .as_array()
        .unwrap()
        .iter()
        .find(|svc| svc["type"] == "compute")
        .and_then(|svc| {
            svc["endpoints"]
                .as_array()?
                .iter()
                .find(|e| e["interface"] == "public")
        })
        .and_then(|e| e["url"].as_str())
        .expect("compute endpoint in the catalog")
        .trim_end_matches('/')
        .to_string();
    let auth_h = format!("X-Auth-Token: {token}");
    let mv = "X-OpenStack-Nova-API-Version: 2.37";
    let body = serde_json::json!({"server": {"name": "vm-voms-user",
        "imageRef": cloud["images"]["tiny-raw"], "flavorRef": cloud["flavors"]["m1.tiny"],
        "networks": "none"}});
    // Nova on SQLite can fail a build with "database is locked" on a busy
    // box (its fault, not the gateway's): such a server is deleted and the
    // build tried again, at most three times.
    let mut server = String::new();
    'build: for attempt in 1..=3 {
        let c = curl(&[
            "-X",
            "POST",
            "-H",
            &auth_h,
            "-H",
            mv,
            "-H",
            "Content-Type: application/json",
            "-d",
            &body.to_string(),
            &format!("{nova}/servers"),
        ])
        .await;
        assert_eq!(c.status, 202, "server create: {}", c.body);
        server = c.json()["server"]["id"].as_str().unwrap().to_string();
        let until = Instant::now() + Duration::from_secs(240);
        loop {
            let v = curl(&["-H", &auth_h, "-H", mv, &format!("{nova}/servers/{server}")]).await;
            let status = v.json()["server"]["status"]
                .as_str()
                .unwrap_or("")
                .to_string();
            if status == "ACTIVE" {
                break 'build;
            }
            if status == "ERROR" {
                assert!(attempt < 3, "three builds went to ERROR: {}", v.body);
                eprintln!("build {attempt} went to ERROR, retrying: {}", v.body);
                let _ = curl(&[
                    "-X",
                    "DELETE",
                    "-H",
                    &auth_h,
                    &format!("{nova}/servers/{server}"),
                ])
                .await;
                continue 'build;
            }
            assert!(
                Instant::now() < until,
                "server never became ACTIVE: {}",
                v.body
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    // The accounting user reads the project (cASO's documented roles).
    let admin = admin_token(&keystone).await;
    let ah = format!("X-Auth-Token: {admin}");
    let u = curl(&["-H", &ah, &format!("{keystone}/v3/users?name=accounting")]).await;
    let acct = u.json()["users"][0]["id"].as_str().unwrap().to_string();
    let r = curl(&["-H", &ah, &format!("{keystone}/v3/roles?name=reader")]).await;
    let reader = r.json()["roles"][0]["id"].as_str().unwrap().to_string();
    let grant = curl(&[
        "-X",
        "PUT",
        "-H",
        &ah,
        &format!("{keystone}/v3/projects/{project}/users/{acct}/roles/{reader}"),
    ])
    .await;
    assert_eq!(grant.status, 204, "{}", grant.body);

    let to = from + 3600;
    let opts = ExtractOptions {
        auth: AuthOptions {
            auth_url: keystone.clone(),
            credentials: Credentials::Password {
                username: "accounting".into(),
                user_domain: "Default".into(),
                password: Secret::new("accounting-pw"),
            },
            scope: Scope::System,
            region: Some("RegionOne".into()),
            interface: "public".into(),
            ca_file: None,
            timeout: Duration::from_secs(120),
        },
        site_name: "FEDGATE-TEST".into(),
        service_name: "fedgate.test".into(),
        cloud_type: "fedgate/test (OpenStack)".into(),
        projects: vec![project.clone()],
        project_tag: None,
        vo_property: "VO".into(),
        vo_mapping: [(project.clone(), "fedcloud.egi.eu".to_string())].into(),
        extractors: [Kind::Nova].into(),
        spec_keys: SpecKeys::default(),
        global_user: GlobalUserSource::Gateway,
        caso_compat: false,
    };
    let ex = Extractor::connect(opts.clone())
        .await
        .expect("accounting login");
    let p = ex
        .projects()
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.id == project)
        .expect("the VO's project is accounted");
    let store = Store::open_read_only(&db).unwrap();
    let usage = ex
        .extract(&p, Window { from, to }, &store)
        .await
        .expect("extraction");
    let rec = usage
        .cloud
        .iter()
        .find(|r| r.vm_uuid == server)
        .unwrap_or_else(|| panic!("no record for {server}: {:?}", usage.cloud));
    assert_eq!(rec.local_user_id, user_id);
    assert_eq!(
        rec.global_user_name.as_deref(),
        Some(entry.global_user_name.as_str())
    );
    assert!(entry.global_user_name.contains("CN="), "{entry:?}");
    assert_eq!(Some(rec.fqan.as_str()), entry.fqan.as_deref(), "{rec:?}");
    assert!(rec.fqan.starts_with("/fedcloud.egi.eu"), "{rec:?}");

    // Without the gateway's store, the same record carries cASO's values:
    // the Keystone user name, and the project's VO.
    let plain = ex
        .extract(
            &p,
            Window { from, to },
            &fedgate::internal::accounting::source::NoIdentities,
        )
        .await
        .unwrap();
    let rec = plain.cloud.iter().find(|r| r.vm_uuid == server).unwrap();
    assert_ne!(
        rec.global_user_name.as_deref(),
        Some(entry.global_user_name.as_str())
    );
    assert_eq!(rec.fqan, "fedcloud.egi.eu");

    let _ = curl(&[
        "-X",
        "DELETE",
        "-H",
        &auth_h,
        &format!("{nova}/servers/{server}"),
    ])
    .await;
}
