//! The real OpenStack dashboard (Horizon 27.0.0) through fedgate, in
//! headless Chromium: Horizon's login page → "EGI Check-in" → fedgate →
//! the IdP's login (oidc-provider) → fedgate → Keystone's callback form →
//! Horizon's project overview as the federated user; for the generic and
//! the IdP-specific WebSSO URL (Horizon's `WEBSSO_CHOICES` /
//! `WEBSSO_IDP_MAPPING`). Then sign-out: Horizon's "Sign Out" ends
//! Horizon's session, fedgate's and the IdP's (its LOGIN_URL is fedgate's
//! logout path, see docs/horizon.md), so "EGI Check-in" asks for the
//! password again; a link on another site cannot sign the user out.
//!
//! Needs the Keystone harness (FEDGATE_E2E_KEYSTONE_UWSGI) and the Horizon
//! harness (tests/harness/horizon/setup.sh; its env.sh exports
//! FEDGATE_E2E_HORIZON_*), both started by scripts/test.sh, plus node with
//! the harness packages and /usr/bin/chromium. Without them the test says
//! why and passes, unless FEDGATE_REQUIRE_HORIZON=1 (scripts/test.sh sets
//! it when it started Horizon).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Gateway;
use common::idp::Proc;

const ALICE: &str = "a11ce0000000000000000000000000001@egi.test";
const PROJECT: &str = "fedcloud.egi.eu";

fn require(ok: bool, what: &str) -> bool {
    common::require(
        ok,
        "FEDGATE_REQUIRE_HORIZON",
        &format!("horizon e2e: {what}"),
    )
}

struct Site {
    horizon: String,
    pki: PathBuf,
    fedgate_port: u16,
    idp_port: u16,
}

impl Site {
    fn horizon_origin(&self) -> String {
        let u = url::Url::parse(&self.horizon).unwrap();
        u.origin().ascii_serialization()
    }
    fn dashboard(&self) -> String {
        format!("{}auth/websso/", self.horizon)
    }
    fn login_page(&self) -> String {
        format!("{}auth/login/", self.horizon)
    }
    fn fedgate(&self) -> String {
        format!("https://localhost:{}", self.fedgate_port)
    }
}

fn start_idp(site: &Site, state: &Path) -> Proc {
    let mut cmd = Command::new("node");
    cmd.arg(common::root().join("tests/harness/idp/idp.js"))
        .arg(format!("egi={}", site.idp_port))
        .env(
            "IDP_REDIRECT_URIS",
            format!(
                "{}/v3/auth/OS-FEDERATION/websso/openid/redirect",
                site.fedgate()
            ),
        )
        .env("IDP_POST_LOGOUT_REDIRECT_URIS", site.login_page())
        .env("IDP_STATE_DIR", state)
        .env("IDP_QUIET", "1");
    common::idp::spawn_listening(cmd, "the IdP", &[site.idp_port])
}

fn start_gate(site: &Site, uwsgi: &str) -> Gateway {
    let cfg = format!(
        r#"[server]
listen = ["127.0.0.1:{port}"]
[admin]
listen = ["127.0.0.1:0"]
[tls]
certificate = "{pki}/host.pem"
private_key = "{pki}/host.key"
ca_dir = "{pki}/certificates"
client_auth = "none"
[upstream]
url = "uwsgi://{uwsgi}"
[[idp]]
name = "egi"
display_name = "EGI Check-in (test)"
issuer = "http://127.0.0.1:{idp}"
client_id = "gateway"
client_secret = "gateway-secret"
[oidc]
trusted_dashboards = ["{dashboard}"]
post_logout_url = "{login}"
[[route]]
name = "websso"
path = "^/v3/auth/OS-FEDERATION/(websso/openid|identity_providers/egi\\.eu/protocols/openid/websso)$"
auth = "oidc"
[[route]]
name = "keystone"
path = "^/"
auth = "none"
"#,
        port = site.fedgate_port,
        pki = site.pki.display(),
        idp = site.idp_port,
        dashboard = site.dashboard(),
        login = site.login_page(),
    );
    Gateway::start_text(&cfg)
}

/// One run of the browser script; its JSON.
fn browser(site: &Site, choice: &str, extra: &[&str], screens: &Path) -> serde_json::Value {
    let out = Command::new("node")
        .arg(common::root().join("tests/harness/horizon/login.mjs"))
        .args(["--horizon", &site.horizon, "--fedgate", &site.fedgate()])
        .args(["--choice", choice, "--screens"])
        .arg(screens.join(choice))
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

fn hops(v: &serde_json::Value) -> Vec<serde_json::Value> {
    v.as_array().cloned().unwrap_or_default()
}

fn visited(v: &serde_json::Value, needle: &str) -> bool {
    hops(v)
        .iter()
        .any(|h| h["url"].as_str().is_some_and(|u| u.contains(needle)))
}

fn has_text(v: &serde_json::Value, needle: &str) -> bool {
    match v {
        serde_json::Value::String(s) => s.contains(needle),
        serde_json::Value::Array(a) => a.iter().any(|x| has_text(x, needle)),
        _ => false,
    }
}

#[test]
fn horizon_login_and_sign_out() {
    let Ok(uwsgi) = std::env::var("FEDGATE_E2E_KEYSTONE_UWSGI") else {
        require(
            false,
            "FEDGATE_E2E_KEYSTONE_UWSGI is not set (run scripts/test.sh)",
        );
        return;
    };
    let (Ok(horizon), Ok(pki)) = (
        std::env::var("FEDGATE_E2E_HORIZON_URL"),
        std::env::var("FEDGATE_E2E_HORIZON_PKI"),
    ) else {
        require(
            false,
            "the Horizon harness is not running (FEDGATE_E2E_HORIZON_URL; scripts/test.sh starts it)",
        );
        return;
    };
    let port = |name: &str, default: u16| {
        std::env::var(name)
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(default)
    };
    let site = Site {
        horizon,
        pki: PathBuf::from(pki),
        fedgate_port: port("FEDGATE_E2E_HORIZON_FEDGATE_PORT", 19081),
        idp_port: port("FEDGATE_E2E_HORIZON_IDP_PORT", 19082),
    };
    if !require(
        Path::new("/usr/bin/chromium").exists() || std::env::var("CHROMIUM").is_ok(),
        "chromium is not installed",
    ) || !require(
        Command::new("node").arg("--version").output().is_ok(),
        "node is not installed",
    ) || !require(
        common::root()
            .join("tests/harness/websso/node_modules/playwright-core")
            .exists(),
        "npm packages of tests/harness/websso are not installed",
    ) || !require(
        common::root()
            .join("tests/harness/idp/node_modules/oidc-provider")
            .exists(),
        "npm packages of tests/harness/idp are not installed",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let screens = std::env::var("FEDGATE_E2E_HORIZON_LOGS")
        .map(|l| PathBuf::from(l).join("screens"))
        .unwrap_or_else(|_| dir.path().join("screens"));
    let _idp = start_idp(&site, &dir.path().join("idp"));
    let gate = start_gate(&site, &uwsgi);
    let idp = format!("127.0.0.1:{}", site.idp_port);
    let horizon_origin = site.horizon_origin();

    let mut failures: Vec<String> = Vec::new();
    let mut check = |name: &str, ok: bool, detail: &dyn std::fmt::Display| {
        eprintln!(
            "{} horizon: {name}{}",
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

    // 1. The generic WebSSO URL ("EGI Check-in"); before that, an anonymous
    // visit to the dashboard's root goes by LOGIN_URL (fedgate's logout
    // path) and comes back to Horizon's login page, without a loop.
    let r = browser(&site, "openid", &["--anonymous-first"], &screens);
    eprintln!(
        "horizon: generic URL run took {} ms (login {} ms)",
        r["ms"], r["login_ms"]
    );
    check(
        "an anonymous visitor of the dashboard lands on Horizon's login page",
        r["anonymous"]["chooser"] == true
            && r["anonymous"]["url"]
                .as_str()
                .is_some_and(|u| u.starts_with(&site.login_page())),
        &r,
    );
    check(
        "Horizon's chooser offers both WebSSO choices",
        has_text(&r["choices"], "openid") && has_text(&r["choices"], "egi_openid"),
        &r["choices"],
    );
    let generic = "/v3/auth/OS-FEDERATION/websso/openid?origin=";
    check(
        "\"EGI Check-in\" goes through fedgate's generic WebSSO URL to the IdP",
        visited(&r["hops"], generic)
            && r["idp_login_url"]
                .as_str()
                .is_some_and(|u| u.contains(&idp)),
        &r["hops"],
    );
    let overview = |r: &serde_json::Value| {
        r["ok_ran"] == true
            && r["overview"]["url"]
                .as_str()
                .is_some_and(|u| u.starts_with(&format!("{}project/", site.horizon)))
            && r["overview"]["title"]
                .as_str()
                .is_some_and(|t| t.contains("Overview"))
            && has_text(&r["overview"]["user_menu"], ALICE)
            && has_text(&r["overview"]["project_menu"], PROJECT)
    };
    check(
        "generic URL: Horizon's project overview as the federated user",
        overview(&r),
        &r,
    );
    check(
        "fedgate's session cookie is set after the login",
        r["session_cookie_after_login"] == true,
        &r,
    );

    // 2. The IdP-specific URL, then a cross-site link to the logout path,
    // then Horizon's "Sign Out", then "Sign In" again.
    let r = browser(
        &site,
        "egi_openid",
        &["--cross-site-logout", "--logout", "--relogin"],
        &screens,
    );
    eprintln!(
        "horizon: IdP-specific URL run took {} ms (login {} ms, sign-out {} ms)",
        r["ms"], r["login_ms"], r["logout"]["ms"]
    );
    check(
        "\"EGI Check-in (egi.eu)\" goes through the IdP-specific WebSSO URL",
        visited(
            &r["hops"],
            "/v3/auth/OS-FEDERATION/identity_providers/egi.eu/protocols/openid/websso?origin=",
        ) && !visited(&r["hops"], generic),
        &r["hops"],
    );
    check(
        "IdP-specific URL: Horizon's project overview as the federated user",
        overview(&r),
        &r,
    );
    let x = &r["cross_site"];
    check(
        "a link on another site gets fedgate's confirmation page and signs nobody out",
        x["confirmation_page"] == true
            && x["session_cookie"] == true
            && x["still_in_horizon"] == true
            && !visited(&x["hops"], "/session/end"),
        x,
    );
    let l = &r["logout"];
    let fedgate_logout = hops(&l["hops"])
        .into_iter()
        .find(|h| {
            h["url"]
                .as_str()
                .is_some_and(|u| u.contains("/websso/logout"))
        })
        .unwrap_or_default();
    check(
        "Horizon's Sign Out reaches fedgate's logout path as a same-site navigation",
        visited(
            &l["hops"],
            &format!("{horizon_origin}/dashboard/auth/logout/"),
        ) && fedgate_logout["sec_fetch_site"] == "same-site"
            && fedgate_logout["sec_fetch_mode"] == "navigate",
        l,
    );
    check(
        "fedgate ends the IdP's session too (RP-initiated logout) and the user is back on Horizon's login page",
        l["first_stop"] == "idp_question"
            && visited(&l["hops"], &format!("{idp}/session/end"))
            && l["on_login_page"] == true,
        l,
    );
    check(
        "fedgate's session cookie is gone after the sign-out",
        l["session_cookie"] == false,
        l,
    );
    check(
        "\"EGI Check-in\" after the sign-out asks for the password again",
        r["relogin"]["outcome"] == "idp_asks_password",
        &r["relogin"],
    );
    drop(gate);

    assert!(failures.is_empty(), "failed: {failures:?}");
}
