//! Horizon WebSSO end to end: headless Chromium logs in through fedgate at
//! two real OpenID providers (oidc-provider), fedgate replays the WebSSO
//! request to a real Keystone, and Keystone's callback form posts a token
//! to the dashboard, which the test then uses against Keystone.
//!
//! Needs the Keystone harness (FEDGATE_E2E_KEYSTONE_URL and
//! FEDGATE_E2E_KEYSTONE_UWSGI, set by scripts/test.sh), node with the
//! harness packages, and /usr/bin/chromium. Without them the test says why
//! and passes, except under CI, where a missing part is a failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::Gateway;
use common::idp::{Proc, wait_port};

const ORIGIN: &str = "https://horizon.test/dashboard/auth/websso/";
const IDP_A: u16 = 18850;
const IDP_B: u16 = 18851;
const GATE: u16 = 18852;
const GATE_SHORT: u16 = 18853;
const ALICE_A: &str = "a11ce0000000000000000000000000001@egi.test";
const ALICE_B: &str = "idpb-alice-7d3f9c1e";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Skips (or, under CI, fails) when a prerequisite is missing.
fn require(ok: bool, what: &str) -> bool {
    if !ok {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("websso e2e prerequisite missing under CI: {what}");
        }
        eprintln!("SKIP websso e2e: {what}");
    }
    ok
}

fn start_idps(state: &Path) -> Proc {
    let redirects: Vec<String> = [GATE, GATE_SHORT]
        .iter()
        .map(|p| format!("https://localhost:{p}/v3/auth/OS-FEDERATION/websso/openid/redirect"))
        .collect();
    let child = Command::new("node")
        .arg(root().join("tests/harness/idp/idp.js"))
        .arg(format!("a={IDP_A}"))
        .arg(format!("b={IDP_B}:b"))
        .env("IDP_REDIRECT_URIS", redirects.join(","))
        .env("IDP_STATE_DIR", state)
        .env("IDP_QUIET", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("node starts");
    let k = Proc(child);
    wait_port(IDP_A, "IdP a");
    wait_port(IDP_B, "IdP b");
    k
}

fn start_gate(dir: &Path, port: u16, uwsgi: &str, inactivity: u64) -> Gateway {
    let pki = fedgate::demo::pki::create(&dir.join(format!("pki{port}"))).expect("pki");
    let cfg = format!(
        r#"[server]
listen = ["127.0.0.1:{port}"]
[admin]
listen = ["127.0.0.1:0"]
[tls]
certificate = "{cert}"
private_key = "{key}"
ca_dir = "{ca}"
client_auth = "none"
[upstream]
url = "uwsgi://{uwsgi}"
[[idp]]
name = "egi"
display_name = "EGI Check-in (test)"
issuer = "http://127.0.0.1:{IDP_A}"
client_id = "gateway"
client_secret = "gateway-secret"
[[idp]]
name = "idp-b"
issuer = "http://127.0.0.1:{IDP_B}"
client_id = "gateway"
client_secret = "gateway-secret"
[oidc]
trusted_dashboards = ["{ORIGIN}"]
[oidc.session]
inactivity_timeout_secs = {inactivity}
[[route]]
name = "websso"
path = "^/v3/auth/OS-FEDERATION/(websso/openid|identity_providers/[^/]+/protocols/openid/websso)$"
auth = "oidc"
[[route]]
name = "keystone"
path = "^/"
auth = "none"
"#,
        cert = pki.host_cert.display(),
        key = pki.host_key.display(),
        ca = pki.ca_dir.display(),
    );
    Gateway::start_text(&cfg)
}

/// One browser login; returns the script's JSON.
fn browser(url: &str, extra: &[&str]) -> serde_json::Value {
    let out = Command::new("node")
        .arg(root().join("tests/harness/websso/login.mjs"))
        .args(["--url", url])
        .args(extra)
        .output()
        .expect("node runs");
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|_| {
        panic!(
            "browser script output: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn websso_url(port: u16, generic: bool, iss_port: Option<u16>) -> String {
    let path = if generic {
        "/v3/auth/OS-FEDERATION/websso/openid".to_string()
    } else {
        "/v3/auth/OS-FEDERATION/identity_providers/egi.eu/protocols/openid/websso".to_string()
    };
    let mut u = format!("https://localhost:{port}{path}?origin={ORIGIN}");
    if let Some(p) = iss_port {
        u.push_str(&format!("&iss=http%3A%2F%2F127.0.0.1%3A{p}"));
    }
    u
}

/// curl: status, headers and body.
fn curl(url: &str, args: &[&str]) -> (u16, String, String) {
    let out = Command::new("curl")
        .args(["-sk", "-D", "-", "-o", "-", "--max-time", "20"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl");
    let all = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = all.split_once("\r\n\r\n").unwrap_or((&all, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// The Keystone user a token belongs to, and its projects.
fn keystone_user(ks: &str, token: &str) -> (String, Vec<String>) {
    let (s, _, b) = curl(
        &format!("{ks}/v3/auth/tokens"),
        &[
            "-H",
            &format!("X-Auth-Token: {token}"),
            "-H",
            &format!("X-Subject-Token: {token}"),
        ],
    );
    assert_eq!(s, 200, "Keystone refused the WebSSO token: {b}");
    let v: serde_json::Value = serde_json::from_str(&b).unwrap();
    let user = v["token"]["user"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (_, _, p) = curl(
        &format!("{ks}/v3/auth/projects"),
        &["-H", &format!("X-Auth-Token: {token}")],
    );
    let pv: serde_json::Value = serde_json::from_str(&p).unwrap_or_default();
    let projects = pv["projects"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    (user, projects)
}

fn cookie_header(file: &Path) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            c["domain"]
                .as_str()
                .is_some_and(|d| d.contains("localhost"))
        })
        .map(|c| {
            format!(
                "{}={}",
                c["name"].as_str().unwrap(),
                c["value"].as_str().unwrap()
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn idp_auth_requests(port: u16) -> u64 {
    let (_, _, b) = curl(&format!("http://127.0.0.1:{port}/_harness/stats"), &[]);
    let v: serde_json::Value = serde_json::from_str(&b).unwrap_or_default();
    v["counts"]["auth"].as_u64().unwrap_or(0)
}

#[test]
fn websso_end_to_end() {
    let (Ok(ks), Ok(uwsgi)) = (
        std::env::var("FEDGATE_E2E_KEYSTONE_URL"),
        std::env::var("FEDGATE_E2E_KEYSTONE_UWSGI"),
    ) else {
        require(
            false,
            "FEDGATE_E2E_KEYSTONE_URL/UWSGI not set (run scripts/test.sh)",
        );
        return;
    };
    if !require(
        Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is not installed",
    ) || !require(
        root()
            .join("tests/harness/websso/node_modules/playwright-core")
            .exists(),
        "npm packages of tests/harness/websso are not installed",
    ) || !require(
        root()
            .join("tests/harness/idp/node_modules/oidc-provider")
            .exists(),
        "npm packages of tests/harness/idp are not installed",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let _idps = start_idps(&dir.path().join("idp"));
    let gate = start_gate(dir.path(), GATE, &uwsgi, 300);
    let _short = start_gate(dir.path(), GATE_SHORT, &uwsgi, 8);
    let mut failures: Vec<String> = Vec::new();
    let mut check = |name: &str, ok: bool, detail: String| {
        eprintln!(
            "{} websso: {name}{}",
            if ok { "PASS" } else { "FAIL" },
            if ok {
                String::new()
            } else {
                format!(" -- {detail}")
            }
        );
        if !ok {
            failures.push(name.to_string());
        }
    };

    // 1. Alice at IdP A through the generic URL: a token Keystone accepts.
    let cookies = dir.path().join("alice-a.cookies.json");
    let r = browser(
        &websso_url(GATE, true, Some(IDP_A)),
        &["--cookies-out", cookies.to_str().unwrap()],
    );
    match r["token"].as_str() {
        Some(t) => {
            let (user, projects) = keystone_user(&ks, t);
            check(
                "alice at IdP A gets a usable token",
                user == ALICE_A && projects.contains(&"fedcloud.egi.eu".into()),
                format!("{user} {projects:?}"),
            );
        }
        None => check("alice at IdP A gets a usable token", false, r.to_string()),
    }

    // 2. Alice at IdP B through the per-IdP URL: her IdP-B subject.
    let r = browser(&websso_url(GATE, false, Some(IDP_B)), &[]);
    let user = r["token"]
        .as_str()
        .map(|t| keystone_user(&ks, t).0)
        .unwrap_or_default();
    check(
        "alice at IdP B gets a usable token",
        user == ALICE_B,
        r.to_string(),
    );

    // 3. The session is reused: no new visit to the IdP.
    let before = idp_auth_requests(IDP_A);
    let r = browser(
        &websso_url(GATE, true, Some(IDP_A)),
        &["--cookies-in", cookies.to_str().unwrap()],
    );
    let ok = r["token"]
        .as_str()
        .is_some_and(|t| keystone_user(&ks, t).0 == ALICE_A)
        && idp_auth_requests(IDP_A) == before;
    check(
        "a live session logs in again without the IdP",
        ok,
        r.to_string(),
    );

    // 3b. A reload keeps sessions: the same cookie still logs in, and a
    // login in progress when the reload happens still completes.
    let reload = |gw: &Gateway| {
        let before = gw.logs.count("configuration reloaded");
        gw.signal(1);
        let t0 = std::time::Instant::now();
        while gw.logs.count("configuration reloaded") == before
            && t0.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        gw.logs.count("configuration reloaded") > before
    };
    let reloaded = reload(&gate);
    let cookie = format!("Cookie: {}", cookie_header(&cookies));
    let (s, _, body) = curl(
        &websso_url(GATE, true, Some(IDP_A)),
        &["-H", &cookie, "-H", "Accept: application/json"],
    );
    check(
        "a session survives a reload",
        reloaded && s == 200 && body.contains("name=\"token\""),
        format!("reloaded {reloaded}, then {s}"),
    );
    let marker = dir.path().join("paused");
    let url = websso_url(GATE, true, Some(IDP_A));
    let m = marker.clone();
    let login =
        std::thread::spawn(move || browser(&url, &["--pause-before-return", m.to_str().unwrap()]));
    let t0 = std::time::Instant::now();
    while !marker.exists() && t0.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let paused = marker.exists();
    let reloaded = reload(&gate);
    std::fs::write(format!("{}.go", marker.display()), "go").unwrap();
    let r = login.join().unwrap();
    let user = r["token"]
        .as_str()
        .map(|t| keystone_user(&ks, t).0)
        .unwrap_or_default();
    check(
        "a login in progress survives a reload",
        paused && reloaded && user == ALICE_A,
        format!("paused {paused}, reloaded {reloaded}: {r}"),
    );

    // 4. Forged identity headers never reach Keystone.
    let r = browser(
        &websso_url(GATE, true, Some(IDP_A)),
        &[
            "--header",
            "OIDC-sub: mallory@evil.example",
            "--header",
            "HTTP-OIDC-ISS: https://evil.example",
            "--header",
            "OIDC_CLAIM_sub: mallory2",
        ],
    );
    let user = r["token"]
        .as_str()
        .map(|t| keystone_user(&ks, t).0)
        .unwrap_or_default();
    check(
        "forged OIDC headers are ignored",
        user == ALICE_A,
        format!("{user} {r}"),
    );

    // 5. An untrusted origin is refused before the IdP is ever contacted.
    let before = idp_auth_requests(IDP_A);
    let r = browser(
        &format!(
            "https://localhost:{GATE}/v3/auth/OS-FEDERATION/websso/openid?origin=https://evil.example/&iss=http%3A%2F%2F127.0.0.1%3A{IDP_A}"
        ),
        &[],
    );
    let ok = r["outcome"] == "error_page"
        && r["status"] == 403
        && r["text"]
            .as_str()
            .is_some_and(|t| t.contains("not a trusted dashboard"))
        && idp_auth_requests(IDP_A) == before;
    check(
        "an untrusted origin gets a clear page and no login",
        ok,
        r.to_string(),
    );

    // 6. A login response cannot be replayed.
    let rec = dir.path().join("redirect.url");
    let c2 = dir.path().join("replay.cookies.json");
    let r = browser(
        &websso_url(GATE, true, Some(IDP_A)),
        &[
            "--record-redirect",
            rec.to_str().unwrap(),
            "--cookies-out",
            c2.to_str().unwrap(),
        ],
    );
    let replay = std::fs::read_to_string(&rec).unwrap_or_default();
    let (s, _, body) = curl(
        &replay,
        &[
            "-H",
            "Accept: text/html",
            "-H",
            &format!("Cookie: {}", cookie_header(&c2)),
        ],
    );
    check(
        "a replayed login response is refused",
        r["token"].is_string() && s == 400 && body.contains("already used"),
        format!(
            "{s} {}",
            body.split("<p id=\"reason\">")
                .nth(1)
                .unwrap_or(&body)
                .chars()
                .take(200)
                .collect::<String>()
        ),
    );

    // 7. An error from the IdP (the user denies consent) is explained.
    let r = browser(
        &websso_url(GATE, true, Some(IDP_A)),
        &["--user", "bob", "--abort"],
    );
    let ok = r["outcome"] == "error_page"
        && r["status"] == 401
        && r["text"]
            .as_str()
            .is_some_and(|t| t.contains("refused the login") && t.contains("access_denied"));
    check("an IdP error gets a clear page", ok, r.to_string());

    // 8. Scripts get 401, not a redirect; several IdPs give a chooser page.
    let (s, head, _) = curl(
        &websso_url(GATE, true, None),
        &["-H", "Accept: application/json"],
    );
    check(
        "non-browser clients get 401 with WWW-Authenticate",
        s == 401 && head.to_ascii_lowercase().contains("www-authenticate"),
        head.clone(),
    );
    let (s, _, body) = curl(&websso_url(GATE, true, None), &["-H", "Accept: text/html"]);
    check(
        "several IdPs give a chooser page",
        s == 200 && body.contains("EGI Check-in (test)") && body.contains("idp-b"),
        body.clone(),
    );

    // 9. An expired session is refused (inactivity 8 s on the second gateway).
    let c3 = dir.path().join("short.cookies.json");
    let r = browser(
        &websso_url(GATE_SHORT, true, Some(IDP_A)),
        &["--cookies-out", c3.to_str().unwrap()],
    );
    let cookie = format!("Cookie: {}", cookie_header(&c3));
    let fresh = curl(
        &websso_url(GATE_SHORT, true, Some(IDP_A)),
        &["-H", &cookie, "-H", "Accept: application/json"],
    );
    std::thread::sleep(Duration::from_secs(10));
    let stale = curl(
        &websso_url(GATE_SHORT, true, Some(IDP_A)),
        &["-H", &cookie, "-H", "Accept: application/json"],
    );
    let ok = r["token"].is_string()
        && fresh.0 == 200
        && fresh.2.contains("name=\"token\"")
        && stale.0 == 401;
    check(
        "an expired session is refused",
        ok,
        format!("fresh {} stale {}", fresh.0, stale.0),
    );

    // 10. Logout: only a same-site navigation or the confirmation page's
    // POST ends a session; another site cannot sign a user out.
    let logout_url =
        format!("https://localhost:{GATE}/v3/auth/OS-FEDERATION/websso/logout?origin={ORIGIN}");
    let cookie = format!("Cookie: {}", cookie_header(&cookies));
    let alive = |cookie: &str| {
        curl(
            &websso_url(GATE, true, Some(IDP_A)),
            &["-H", cookie, "-H", "Accept: application/json"],
        )
        .0 == 200
    };
    let (s, _, body) = curl(
        &logout_url,
        &[
            "-H",
            &cookie,
            "-H",
            "Sec-Fetch-Site: cross-site",
            "-H",
            "Sec-Fetch-Mode: no-cors",
            "-H",
            "Sec-Fetch-Dest: image",
        ],
    );
    check(
        "a cross-site image request does not sign the user out",
        s == 200 && body.contains("id=\"logout\"") && alive(&cookie),
        format!("{s} {}", body.chars().take(200).collect::<String>()),
    );
    let (s, _, _) = curl(&logout_url, &["-H", &cookie, "-d", "csrf=forged"]);
    check(
        "a cross-site POST without the page's token is refused",
        s == 403 && alive(&cookie),
        format!("{s}"),
    );
    let (s, head, _) = curl(
        &logout_url,
        &[
            "-H",
            &cookie,
            "-H",
            "Sec-Fetch-Site: same-site",
            "-H",
            "Sec-Fetch-Mode: navigate",
            "-H",
            "Sec-Fetch-Dest: document",
        ],
    );
    let after = alive(&cookie);
    let dashboard_root = "post_logout_redirect_uri=https%3A%2F%2Fhorizon.test%2Fdashboard%2F";
    let ok = s == 302
        && head.contains(&format!("127.0.0.1:{IDP_A}"))
        && head.contains(dashboard_root)
        && !after;
    check(
        "logout from the dashboard ends the session (RP-initiated logout at the IdP, back to the dashboard's root)",
        ok,
        format!("{s} {head} then alive={after}"),
    );
    // The confirmation page's own POST ends the session (the replay test's
    // login, still alive).
    let c2_cookie = format!("Cookie: {}", cookie_header(&c2));
    let (_, _, page) = curl(&logout_url, &["-H", &c2_cookie]);
    let token = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_default()
        .replace("&#39;", "'");
    let (s, head, _) = curl(
        &logout_url,
        &[
            "-H",
            &c2_cookie,
            "--data-urlencode",
            &format!("csrf={token}"),
        ],
    );
    check(
        "the confirmation page's POST ends the session",
        !token.is_empty() && s == 302 && head.contains(dashboard_root) && !alive(&c2_cookie),
        format!("token {} then {s}", !token.is_empty()),
    );
    // Signed out already: nothing to end, so straight on to the
    // dashboard's root (not to its POST-only WebSSO callback); with no
    // dashboard known, the "signed out" page.
    let (s, head, _) = curl(&logout_url, &[]);
    check(
        "without a session the logout path goes straight to the dashboard's root",
        s == 302
            && head
                .to_ascii_lowercase()
                .contains("location: https://horizon.test/dashboard/\r\n"),
        head,
    );
    let (s, _, body) = curl(
        &format!("https://localhost:{GATE}/v3/auth/OS-FEDERATION/websso/logout"),
        &[],
    );
    check(
        "without a session or a dashboard: the signed-out page",
        s == 200 && body.contains("You are signed out"),
        body.chars().take(300).collect(),
    );

    assert!(failures.is_empty(), "failed: {failures:?}");
}
