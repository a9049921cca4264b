//! fedgate in front of a real Keystone (tests/harness/keystone/setup.sh),
//! over both upstream kinds. Needs FEDGATE_E2E_KEYSTONE_URL (uWSGI
//! http-socket) and FEDGATE_E2E_KEYSTONE_UWSGI (its uwsgi-socket); skips
//! with a printed reason when they are unset. scripts/test.sh sets them.

mod common;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Command;

use common::{Conf, Gateway, Pki, pki};

const OIDC_AUTH: &str = "/v3/OS-FEDERATION/identity_providers/egi.eu/protocols/openid/auth";
const VOMS_AUTH: &str = "/v3/OS-FEDERATION/identity_providers/egi.eu/protocols/mapped/auth";
const ENTITLEMENT: &str = "urn:mace:egi.eu:group:fedcloud.egi.eu:role=vm_operator#aai.egi.eu";
const DN: &str = "dn:/DC=org/DC=example/CN=Mallory";
const FQAN: &str = "/fedcloud.egi.eu/Role=NULL/Capability=NULL";

struct Keystone {
    http: String,
    uwsgi: String,
    openstack: PathBuf,
    issuer: String,
    password: String,
}

fn keystone() -> Option<Keystone> {
    let (Ok(url), Ok(uwsgi)) = (
        std::env::var("FEDGATE_E2E_KEYSTONE_URL"),
        std::env::var("FEDGATE_E2E_KEYSTONE_UWSGI"),
    ) else {
        eprintln!(
            "SKIPPED: FEDGATE_E2E_KEYSTONE_URL / FEDGATE_E2E_KEYSTONE_UWSGI are not set; \
             run scripts/test.sh, or tests/harness/keystone/setup.sh and source its env.sh"
        );
        return None;
    };
    let venv = std::env::var("FEDGATE_E2E_KEYSTONE_VENV").unwrap_or_else(|_| {
        format!(
            "{}/.cache/fedgate/keystone-venv",
            std::env::var("HOME").unwrap()
        )
    });
    let openstack = PathBuf::from(venv).join("bin/openstack");
    assert!(
        openstack.exists(),
        "{} is missing: the e2e test needs the real openstack CLI",
        openstack.display()
    );
    Some(Keystone {
        http: url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .into(),
        uwsgi,
        openstack,
        issuer: std::env::var("FEDGATE_E2E_OIDC_ISSUER")
            .unwrap_or_else(|_| "http://127.0.0.1:18500".into()),
        password: std::env::var("OS_PASSWORD").unwrap_or_else(|_| "admin-pw".into()),
    })
}

fn gateway(pki: &Pki, upstream: String) -> Gateway {
    let mut conf = Conf::new(upstream);
    conf.upstream_extra = "response_timeout_secs = 60\n";
    Gateway::start(pki, &conf)
}

fn password_auth(pw: &str) -> String {
    serde_json::json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"id": "default"}, "password": pw}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}})
    .to_string()
}

fn api_through(ks: &Keystone, pki: &Pki, gw: &Gateway) {
    let port = gw.port();
    let host = format!("localhost:{port}");
    let mut c = gw.client(pki);
    // Keystone builds its links from what fedgate tells it (HTTPS=on and
    // Host for uwsgi, X-Forwarded-* for http): they must point at fedgate.
    let r = c.request("GET", "/v3", &[("Host", &host)], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let href = r.json()["version"]["links"][0]["href"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(href, format!("https://{host}/v3/"));

    let body = password_auth(&ks.password);
    let hs = [
        ("Host", host.as_str()),
        ("Content-Type", "application/json"),
    ];
    let r = c.request("POST", "/v3/auth/tokens", &hs, body.as_bytes());
    assert_eq!(r.status, 201, "{}", r.text());
    let token = r.header("x-subject-token").expect("token").to_string();
    let catalog = r.json()["token"]["catalog"].clone();
    assert!(
        catalog
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["type"] == "identity"),
        "{catalog}"
    );

    let auth = [("Host", host.as_str()), ("X-Auth-Token", token.as_str())];
    let r = c.request("GET", "/v3/auth/catalog", &auth, b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["catalog"], catalog);
    let r = c.request("GET", "/v3/projects", &auth, b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let mut names: Vec<String> = r.json()["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    for want in ["admin", "fedcloud.egi.eu", "ops"] {
        assert!(names.iter().any(|n| n == want), "{names:?}");
    }
    let check = [
        ("Host", host.as_str()),
        ("X-Auth-Token", token.as_str()),
        ("X-Subject-Token", token.as_str()),
    ];
    assert_eq!(c.request("GET", "/v3/auth/tokens", &check, b"").status, 200);
    // A Keystone error passes through unchanged.
    let r = c.request(
        "POST",
        "/v3/auth/tokens",
        &hs,
        password_auth("wrong").as_bytes(),
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], 401);
}

fn openstack_cli(ks: &Keystone, pki: &Pki, gw: &Gateway) {
    let run = |args: &[&str]| {
        let out = Command::new(&ks.openstack)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", std::env::var("HOME").unwrap_or_default())
            .env("OS_AUTH_URL", format!("https://localhost:{}/v3", gw.port()))
            .env("OS_CACERT", &pki.ca_file)
            .env("OS_IDENTITY_API_VERSION", "3")
            .env("OS_USERNAME", "admin")
            .env("OS_PASSWORD", &ks.password)
            .env("OS_USER_DOMAIN_ID", "default")
            .env("OS_PROJECT_NAME", "admin")
            .env("OS_PROJECT_DOMAIN_ID", "default")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "openstack {args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let before = gw.logs.count("path=/v3/auth/tokens status=201");
    let issued: serde_json::Value =
        serde_json::from_str(&run(&["token", "issue", "-f", "json"])).unwrap();
    assert!(
        issued["id"].as_str().is_some_and(|t| t.len() > 20),
        "{issued}"
    );
    assert!(issued["project_id"].as_str().is_some(), "{issued}");
    let catalog = run(&["catalog", "list", "-f", "json"]);
    assert!(catalog.contains("\"identity\""), "{catalog}");
    let t0 = std::time::Instant::now();
    let mut posted = 0;
    while posted < 2 && t0.elapsed() < std::time::Duration::from_secs(5) {
        std::thread::sleep(std::time::Duration::from_millis(50));
        posted = gw.logs.count("path=/v3/auth/tokens status=201") - before;
    }
    assert!(
        posted >= 2,
        "each CLI run got its token through fedgate: {posted}"
    );
}

/// Identity values a client sends, in every spelling, must never reach
/// Keystone: the federation auth calls carrying them get Keystone's 401.
fn spoofing(ks: &Keystone, pki: &Pki, gw: &Gateway) {
    let iss = ks.issuer.as_str();
    let oidc = [
        ("OIDC-iss", iss),
        ("OIDC-sub", "mallory"),
        ("OIDC-eduperson_entitlement", ENTITLEMENT),
        ("OIDC-eduperson-entitlement", ENTITLEMENT),
        ("oidc_eduperson_entitlement", ENTITLEMENT),
        ("HTTP_OIDC_ISS", iss),
        ("HTTP_OIDC_SUB", "mallory"),
        ("HTTP-OIDC-ISS", iss),
        ("Http-Oidc-Sub", "mallory"),
        ("REMOTE_USER", "mallory"),
        ("Remote-User", "mallory"),
        ("X-Remote-User", "mallory"),
    ];
    let voms = [
        ("GRST_CONN_AURI_0", DN),
        ("GRST-CONN-AURI-0", DN),
        ("grst-conn-auri-0", DN),
        ("GRST_VOMS_FQANS", FQAN),
        ("GRST-VOMS-FQANS", FQAN),
        ("HTTP_GRST_VOMS_FQANS", FQAN),
        ("Grst-Cred-0", "X509USER 1 2 1 /CN=Mallory"),
        ("SSL_CLIENT_S_DN", "CN=Mallory"),
        ("SSL-Client-Verify", "SUCCESS"),
    ];
    for (path, headers) in [
        (OIDC_AUTH, &oidc[..]),
        (VOMS_AUTH, &voms[..]),
        (OIDC_AUTH, &[&oidc[..], &voms[..]].concat()[..]),
    ] {
        for method in ["POST", "GET"] {
            let r = gw.client(pki).request(method, path, headers, b"");
            assert_eq!(r.status, 401, "{method} {path}: {}", r.text());
            let j = r.json();
            assert_eq!(
                j["error"]["title"], "Unauthorized",
                "Keystone's own 401: {j}"
            );
            assert!(r.header("x-subject-token").is_none());
        }
    }
}

/// The control: the same values as real environ variables, written
/// straight to Keystone's uwsgi socket, DO log in. So the 401s above are
/// fedgate's doing, not a broken Keystone or mapping.
fn direct_uwsgi_control(ks: &Keystone, who: &str) {
    let dn = format!("{DN}-{who}");
    let oidc = [
        ("HTTP_OIDC_ISS", ks.issuer.as_str()),
        ("HTTP_OIDC_SUB", who),
        ("OIDC-eduperson_entitlement", ENTITLEMENT),
    ];
    let voms = [("GRST_CONN_AURI_0", dn.as_str()), ("GRST_VOMS_FQANS", FQAN)];
    for (path, vars) in [(OIDC_AUTH, &oidc[..]), (VOMS_AUTH, &voms[..])] {
        let (status, head) = uwsgi_post(&ks.uwsgi, path, vars);
        assert_eq!(status, 201, "{path}: {head}");
        assert!(
            head.to_ascii_lowercase().contains("x-subject-token"),
            "{head}"
        );
    }
}

/// A minimal uwsgi client: header, vars block, empty body; returns the
/// status and response head.
fn uwsgi_post(addr: &str, path: &str, extra: &[(&str, &str)]) -> (u16, String) {
    let mut vars: Vec<(&str, &str)> = vec![
        ("REQUEST_METHOD", "POST"),
        ("REQUEST_URI", path),
        ("PATH_INFO", path),
        ("QUERY_STRING", ""),
        ("SCRIPT_NAME", ""),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("SERVER_NAME", "localhost"),
        ("SERVER_PORT", "443"),
        ("HTTPS", "on"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("HTTP_HOST", "localhost"),
        ("CONTENT_LENGTH", "0"),
    ];
    vars.extend_from_slice(extra);
    let mut block = Vec::new();
    for (k, v) in vars {
        for s in [k, v] {
            block.extend_from_slice(&(s.len() as u16).to_le_bytes());
            block.extend_from_slice(s.as_bytes());
        }
    }
    let mut packet = vec![0u8];
    packet.extend_from_slice(&(block.len() as u16).to_le_bytes());
    packet.push(0);
    packet.extend_from_slice(&block);
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(&packet).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let head = text
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_string();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head)
}

/// issue 10 item 3: every spelling of a federation auth path that
/// Keystone routes to its federation handler (the control, straight to
/// Keystone, proves it does) gets the protected route's authentication in
/// fedgate, or 400. And a non-canonical path that fedgate forwards works
/// the way the canonical one does.
fn path_variants(ks: &Keystone, pki: &Pki, kind: &str, target: &str) {
    let mut conf = Conf::new(format!("{kind}://{target}"));
    conf.upstream_extra = "response_timeout_secs = 60\n";
    let routes = format!(
        "[[route]]\nname = \"federation\"\n\
         path = \"^/v3/OS-FEDERATION/identity_providers/[^/]+/protocols/[^/]+/auth$\"\n\
         auth = \"x509\"\n{}",
        common::ROUTE_ALL
    );
    conf.routes = &routes;
    let gw = Gateway::start(pki, &conf);
    let keystone_refusal = "The request you have made requires authentication.";
    for auth in [OIDC_AUTH, VOMS_AUTH] {
        let r = gw.client(pki).request("POST", auth, &[], b"");
        assert_eq!(r.status, 401, "{auth}: {}", r.text());
        let refusal = r.json()["error"]["message"].clone();
        assert_ne!(refusal, keystone_refusal, "fedgate's own refusal");
        let (head, tail) = auth.split_at(3);
        let mut handled_by_keystone = 0;
        for p in [
            format!("/{auth}"),
            format!("{auth}/"),
            format!("{auth}//"),
            format!("{auth}%2F"),
            format!("{head}/{tail}"),
            format!("{head}/.{tail}"),
            format!("{head}/x/..{tail}"),
            format!("{head}/%2e%2e{head}{tail}"),
        ] {
            // The control: Keystone itself runs its federation handler.
            let mut direct = common::Client::plain(ks.http.parse().unwrap()).unwrap();
            let d = direct.request("POST", &p, &[], b"");
            let reaches = d.status == 401 && d.text().contains(keystone_refusal);
            handled_by_keystone += usize::from(reaches);
            let r = gw.client(pki).request("POST", &p, &[], b"");
            match r.status {
                401 => assert_eq!(
                    r.json()["error"]["message"],
                    refusal,
                    "{kind} {p}: not the protected route's refusal: {}",
                    r.text()
                ),
                400 => {}
                s => panic!("{kind} {p}: {s} {}", r.text()),
            }
            eprintln!(
                "{kind} {p}: Keystone direct {}{}, through fedgate {}",
                d.status,
                if reaches { " (federation handler)" } else { "" },
                r.status
            );
        }
        assert!(
            handled_by_keystone >= 5,
            "the control: Keystone runs its federation handler for most variants"
        );
    }
    // A non-canonical path is forwarded canonical: Keystone answers it as
    // the canonical one (werkzeug would redirect `//` inside the path).
    let body = password_auth(&ks.password);
    let hs = [("Content-Type", "application/json")];
    let r = gw
        .client(pki)
        .request("POST", "/v3//auth/./tokens/", &hs, body.as_bytes());
    assert_eq!(r.status, 201, "{kind}: {}", r.text());
}

fn scenario(kind: &str) {
    let Some(ks) = keystone() else { return };
    let pki = pki();
    let target = if kind == "uwsgi" {
        ks.uwsgi.clone()
    } else {
        ks.http.clone()
    };
    let gw = gateway(&pki, format!("{kind}://{target}"));
    api_through(&ks, &pki, &gw);
    openstack_cli(&ks, &pki, &gw);
    spoofing(&ks, &pki, &gw);
    path_variants(&ks, &pki, kind, &target);
    direct_uwsgi_control(&ks, &format!("mallory-{kind}"));
}

#[test]
fn keystone_over_uwsgi() {
    scenario("uwsgi");
}

#[test]
fn keystone_over_http() {
    scenario("http");
}

/// `uwsgi:///path`: the same Keystone through uWSGI's unix socket (the
/// harness gives uWSGI a second `uwsgi-socket` there). Logins, the CLI and
/// the scrubbing of client-sent identity values behave as over TCP.
#[test]
fn keystone_over_a_unix_socket() {
    let Some(ks) = keystone() else { return };
    let Ok(sock) = std::env::var("FEDGATE_E2E_KEYSTONE_UWSGI_UNIX") else {
        eprintln!("SKIPPED: FEDGATE_E2E_KEYSTONE_UWSGI_UNIX is not set (an older harness env.sh)");
        return;
    };
    assert!(sock.starts_with('/'), "{sock}");
    let pki = pki();
    let gw = gateway(&pki, format!("uwsgi://{sock}"));
    api_through(&ks, &pki, &gw);
    openstack_cli(&ks, &pki, &gw);
    spoofing(&ks, &pki, &gw);
    // Keystone saw fedgate's values, not a TCP peer of its own: the
    // request log names the socket as the upstream.
    assert!(
        gw.logs
            .all()
            .iter()
            .any(|l| l.contains(&format!("unix:{sock}"))),
        "{:#?}",
        gw.logs.all()
    );
}
