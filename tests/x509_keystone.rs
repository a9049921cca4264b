//! VOMS proxies get a Keystone token through fedgate with the EGI VOMS
//! mapping unchanged (`GRST_CONN_AURI_0` as the user name,
//! `GRST_VOMS_FQANS` matched by `^/fedcloud.egi.eu/.*`), exactly as EGI's
//! documentation does it: `curl --cert $X509_USER_PROXY .../mapped/auth`.
//!
//! Needs the Keystone harness (FEDGATE_E2E_KEYSTONE_UWSGI/_URL, set by
//! scripts/test.sh) and the grid tools the test PKI is minted with.

mod common;

use std::process::Command;

use common::Gateway;
use common::gridpki::{openssl, pki};

const AUTH: &str = "/v3/OS-FEDERATION/identity_providers/egi.eu/protocols/mapped/auth";
const PORT: u16 = 18730;

/// POST with a client credential file (proxy or certificate + key in one
/// PEM, as grid tools write them): status and body.
fn post(cred: &std::path::Path, ca: &std::path::Path, extra: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args([
            "-s",
            "-X",
            "POST",
            "-w",
            "\n%{http_code}",
            "--max-time",
            "30",
            "--cacert",
        ])
        .arg(ca)
        .arg("--cert")
        .arg(cred)
        .arg("--key")
        .arg(cred)
        .args(extra)
        .arg(format!("https://localhost:{PORT}{AUTH}"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn voms_proxies_get_keystone_tokens_with_the_egi_mapping() {
    let Ok(uwsgi) = std::env::var("FEDGATE_E2E_KEYSTONE_UWSGI") else {
        eprintln!("SKIP: FEDGATE_E2E_KEYSTONE_UWSGI is not set (run scripts/test.sh)");
        return;
    };
    let Some(p) = pki() else { return };
    let dir = tempfile::tempdir().unwrap();
    let host = fedgate::demo::pki::create(dir.path()).expect("host pki");
    let cfg = format!(
        r#"[server]
listen = ["127.0.0.1:{PORT}"]
[admin]
listen = ["127.0.0.1:0"]
[tls]
certificate = "{cert}"
private_key = "{key}"
ca_dir = "{ca}"
client_auth = "optional"
[voms]
dir = "{vomsdir}"
[upstream]
url = "uwsgi://{uwsgi}"
[[route]]
name = "voms"
path = "^/v3/OS-FEDERATION/identity_providers/[^/]+/protocols/mapped/auth$"
auth = "x509"
[route.x509]
require_fqan = "^/fedcloud.egi.eu(/|$)"
[[route]]
path = "^/"
auth = "none"
"#,
        cert = host.host_cert.display(),
        key = host.host_key.display(),
        ca = p.certs().display(),
        vomsdir = p.vomsdir().display(),
    );
    let _gate = Gateway::start_text(&cfg);
    let dn = openssl(&[
        "x509",
        "-in",
        p.dir.join("users/alice.pem").to_str().unwrap(),
        "-noout",
        "-subject",
        "-nameopt",
        "compat",
    ]);
    let want_user = format!(
        "dn:{}",
        fedgate::internal::pki::dn::mild_encode(
            dn.trim_start_matches("subject=").trim().as_bytes()
        )
    );

    // A VOMS proxy and a proxy of it: the same Keystone user as under gridsite.
    for case in ["rfc_voms", "depth2_voms"] {
        let (code, body) = post(&p.cred(case), &host.ca_file, &[]);
        assert_eq!(code, 201, "{case}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["token"]["user"]["name"], want_user.as_str(), "{case}");
        assert_eq!(
            v["token"]["methods"],
            serde_json::json!(["mapped"]),
            "{case}"
        );
    }

    // Refusals, each with its reason.
    let (code, body) = post(
        &p.cred("rfc_noac"),
        &host.ca_file,
        &[
            "-H",
            "GRST-VOMS-FQANS: /fedcloud.egi.eu/Role=NULL",
            "-H",
            "GRST_CONN_AURI_0: dn:/CN=mallory",
        ],
    );
    assert_eq!(code, 403, "a proxy without VOMS attributes: {body}");
    assert!(body.contains("no valid VOMS FQAN"), "{body}");
    let (code, body) = post(&p.cred("expired_proxy"), &host.ca_file, &[]);
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("expired"), "{body}");
    let (code, body) = post(&p.cred("eec_bob_revoked"), &host.ca_file, &[]);
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("revoked"), "{body}");
}
