//! The gateway end to end over TLS with real grid credentials and curl:
//! with `client_auth = "required"` provably bad chains die in the handshake
//! with gridsite's alert; with "optional" an x509 route answers 401 JSON
//! with the reason; accepted chains reach the upstream with exactly the
//! values `fedgate x509-info` predicts. Ports 18700-18705.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::client;
use common::gridpki::{Pki, grid_gateway, pki};

const ECHO: u16 = 18700;
const REQUIRED: u16 = 18701;
const OPTIONAL: u16 = 18702;

fn config(p: &Pki, port: u16, mode: &str) -> String {
    format!(
        r#"[server]
listen = ["127.0.0.1:{port}"]
[admin]
listen = []
[tls]
certificate = "{d}/host.pem"
private_key = "{d}/host.key"
ca_dir = "{d}/certificates"
client_auth = "{mode}"
[upstream]
url = "uwsgi://127.0.0.1:{ECHO}"
[[route]]
name = "voms"
path = "^/x509"
auth = "x509"
[[route]]
path = "^/"
auth = "none"
"#,
        d = p.dir.display()
    )
}

/// Starts the echo upstream and both gateways once for this test binary.
fn servers(p: &'static Pki) {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            fedgate::internal::crypto_provider();
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::bind(("127.0.0.1", ECHO))
                    .await
                    .unwrap();
                tokio::spawn(fedgate::demo::echo::serve_uwsgi_echo(l));
                let mut readies = Vec::new();
                for (port, mode) in [(REQUIRED, "required"), (OPTIONAL, "optional")] {
                    let cfg =
                        fedgate::Config::parse(Path::new("t.toml"), config(p, port, mode)).unwrap();
                    let (rtx, rrx) = tokio::sync::oneshot::channel();
                    tokio::spawn(async move {
                        if let Err(e) = Box::pin(fedgate::serve_config(cfg, Some(rtx))).await {
                            panic!("serve: {e:?}");
                        }
                    });
                    readies.push(rrx);
                }
                for r in readies {
                    r.await.unwrap();
                }
                tx.send(()).unwrap();
                std::future::pending::<()>().await;
            });
        });
        rx.recv().unwrap();
    });
}

struct Reply {
    exit: i32,
    status: u16,
    body: String,
    stderr: String,
}

fn curl(p: &Pki, port: u16, cred: Option<&str>, path: &str, tls12: bool) -> Reply {
    let mut c = Command::new("curl");
    c.args(["-sS", "-o", "-", "-w", "\n%{http_code}", "--cacert"])
        .arg(p.dir.join("ca/rootA/ca.pem"));
    if let Some(cred) = cred {
        let f = p.cred(cred);
        c.arg("--cert").arg(&f).arg("--key").arg(&f);
    }
    if tls12 {
        // TLS 1.2 so the alert arrives in the handshake; -v so curl prints
        // OpenSSL's alert text (its own message is generic).
        c.args(["-v", "--tlsv1.2", "--tls-max", "1.2"]);
    }
    c.arg(format!("https://localhost:{port}{path}"));
    let out = c.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", "0"));
    Reply {
        exit: out.status.code().unwrap_or(-1),
        status: code.trim().parse().unwrap_or(0),
        body: body.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn have_curl() -> bool {
    Command::new("curl").arg("--version").output().is_ok()
}

#[test]
fn required_mode_refuses_bad_chains_with_gridsite_alerts() {
    let Some(p) = pki() else { return };
    if !have_curl() {
        eprintln!("SKIP: curl not installed");
        return;
    }
    servers(p);
    let cases = [
        ("eec_carol_expired", "certificate expired"),
        ("expired_proxy", "certificate expired"),
        ("expired_user_voms", "certificate expired"),
        ("eec_bob_revoked", "certificate revoked"),
        ("revoked_voms", "certificate revoked"),
        ("eec_untrusted", "unknown ca"),
        ("gt3_voms", "unknown ca"),
        ("depth3_pathlen", "certificate unknown"),
        ("limited_signs_full", "certificate unknown"),
        ("depth2_limited", "certificate unknown"),
        // Leaf key usage: OpenSSL's purpose check sends the same alert.
        ("eec_keyusage_keyenc", "unsupported certificate"),
        ("eec_eku_serverauth", "unsupported certificate"),
        ("proxy_keyusage_keyenc", "unsupported certificate"),
    ];
    for (case, alert) in cases {
        let r = curl(p, REQUIRED, Some(case), "/x509", true);
        assert_ne!(r.exit, 0, "{case} was accepted: {}", r.body);
        assert!(
            r.stderr.contains(alert),
            "{case}: expected alert {alert:?}, curl said {}",
            r.stderr
        );
    }
    // No certificate at all: the handshake fails too.
    let r = curl(p, REQUIRED, None, "/x509", true);
    assert_ne!(r.exit, 0);
    // Good chains pass.
    for case in [
        "eec_alice",
        "rfc_voms",
        "depth2_voms",
        "legacy_voms",
        "limited_rfc_voms",
        "intermediate_voms",
        "eec_eku_any",
    ] {
        let r = curl(p, REQUIRED, Some(case), "/x509", false);
        assert_eq!(
            (r.exit, r.status),
            (0, 200),
            "{case}: {} {}",
            r.stderr,
            r.body
        );
    }
}

#[test]
fn optional_mode_answers_401_json_with_the_reason() {
    let Some(p) = pki() else { return };
    if !have_curl() {
        eprintln!("SKIP: curl not installed");
        return;
    }
    servers(p);
    let r = curl(p, OPTIONAL, Some("eec_bob_revoked"), "/x509", false);
    assert_eq!(r.status, 401, "{} {}", r.stderr, r.body);
    let j: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert!(
        j["error"]["message"].as_str().unwrap().contains("revoked"),
        "{j}"
    );
    let r = curl(p, OPTIONAL, None, "/x509", false);
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.body.contains("no client certificate"), "{}", r.body);
    // A route without x509 auth still serves the revoked user (no identity).
    let r = curl(p, OPTIONAL, Some("eec_bob_revoked"), "/v3", false);
    assert_eq!(r.status, 200, "{}", r.body);
    let j: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert!(j["environ"].get("GRST_CONN_AURI_0").is_none(), "{j}");
}

#[test]
fn upstream_sees_what_x509_info_predicts() {
    let Some(p) = pki() else { return };
    if !have_curl() {
        eprintln!("SKIP: curl not installed");
        return;
    }
    servers(p);
    let bin = env!("CARGO_BIN_EXE_fedgate");
    for case in [
        "eec_alice",
        "rfc_voms",
        "depth2_voms",
        "limited_legacy_voms",
        "eec_dave",
        "eec_frank_ec",
    ] {
        let r = curl(p, OPTIONAL, Some(case), "/x509/auth", false);
        assert_eq!(r.status, 200, "{case}: {} {}", r.stderr, r.body);
        let got: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        let env = got["environ"].as_object().unwrap();
        let out = Command::new(bin)
            .args(["x509-info", "--json", "--ca-dir"])
            .arg(p.certs())
            .arg(p.cred(case))
            .output()
            .unwrap();
        let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let want: BTreeMap<_, _> = info["env"].as_object().unwrap().iter().collect();
        assert!(!want.is_empty());
        for (k, v) in &want {
            assert_eq!(env.get(*k), Some(*v), "{case}: {k}");
        }
        // Only the ip: credential differs (x509-info has no client address),
        // and the root curl appends when the file holds a single cert.
        let sent = std::fs::read_to_string(p.cred(case)).unwrap();
        let extra: Vec<_> = env
            .iter()
            .filter(|(k, _)| {
                (k.starts_with("GRST_") || k.starts_with("SSL_CLIENT_")) && !want.contains_key(*k)
            })
            .filter(|(k, v)| {
                !k.starts_with("SSL_CLIENT_CERT_CHAIN_")
                    || sent.contains(v.as_str().unwrap().trim_end())
            })
            .map(|(k, _)| k)
            .collect();
        let n = info["proxies"].as_u64().unwrap() + 1;
        assert_eq!(
            extra,
            vec![
                &format!("GRST_CRED_AURI_{n}"),
                &format!("GRST_CRED_VALID_{n}")
            ],
            "{case}"
        );
        assert_eq!(env[&format!("GRST_CRED_AURI_{n}")], "ip:127.0.0.1");
    }
}

/// With the default `voms.targets = []`, an AC targeted at this server (a
/// DNS name or IP address of its certificate's subjectAltName, here
/// `localhost` and 127.0.0.1) is accepted and one targeted elsewhere
/// refused; `voms.targets` adds names (issue 11, class 4).
#[test]
fn ac_targets_default_to_the_server_certificate_names() {
    let Some(p) = pki() else { return };
    if !have_curl() {
        eprintln!("SKIP: curl not installed");
        return;
    }
    let fqans = |port: u16, case: &str| {
        let r = curl(p, port, Some(case), "/x509/auth", false);
        assert_eq!(r.status, 200, "{case}: {} {}", r.stderr, r.body);
        let got: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        got["environ"]["GRST_VOMS_FQANS"]
            .as_str()
            .map(str::to_string)
    };
    let want = Some(
        "/fedcloud.egi.eu/group1/Role=VMManager;/fedcloud.egi.eu/Role=NULL/Capability=NULL"
            .to_string(),
    );
    let default = grid_gateway(p, "");
    assert_eq!(fqans(default, "voms_targeted_here"), want);
    assert_eq!(fqans(default, "voms_targeted_elsewhere"), None);
    assert_eq!(fqans(default, "rfc_voms"), want, "no targets: for everyone");
    let more = grid_gateway(p, "targets = [\"Elsewhere.Example\"]");
    assert_eq!(fqans(more, "voms_targeted_elsewhere"), want);
    assert_eq!(
        fqans(more, "voms_targeted_here"),
        want,
        "the SAN names still count"
    );
}

/// mod_ssl's connection and host-certificate values (issue 11, class 5),
/// on every TLS request (as `+StdEnvVars` sets them), checked against the
/// openssl CLI's view of the host certificate; the client ones come with
/// the x509 route only. tests/x509_gridsite_interop.rs compares all of them
/// with a live Apache.
#[test]
fn mod_ssl_connection_and_server_values() {
    let Some(p) = pki() else { return };
    if !have_curl() {
        eprintln!("SKIP: curl not installed");
        return;
    }
    let port = grid_gateway(p, "");
    let host = p.dir.join("host.pem");
    let host = host.to_str().unwrap();
    let openssl = |args: &[&str]| {
        common::gridpki::openssl(&[&["x509", "-in", host, "-noout"][..], args].concat())
            .split_once('=')
            .map(|(_, v)| v.to_string())
            .unwrap()
    };
    let mut c = Command::new("curl");
    c.args(["-sS", "--tlsv1.2", "--tls-max", "1.2", "--ciphers"])
        .arg("ECDHE-RSA-AES128-GCM-SHA256")
        .arg("--cacert")
        .arg(p.dir.join("ca/rootA/ca.pem"))
        .arg(format!("https://localhost:{port}/plain"));
    let out = c.output().unwrap();
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let env = &got["environ"];
    let want = [
        ("SSL_PROTOCOL", "TLSv1.2".to_string()),
        ("SSL_CIPHER", "ECDHE-RSA-AES128-GCM-SHA256".into()),
        ("SSL_CIPHER_EXPORT", "false".into()),
        ("SSL_CIPHER_USEKEYSIZE", "128".into()),
        ("SSL_CIPHER_ALGKEYSIZE", "128".into()),
        ("SSL_COMPRESS_METHOD", "NULL".into()),
        ("SSL_SESSION_RESUMED", "Initial".into()),
        ("SSL_TLS_SNI", "localhost".into()),
        ("SSL_SERVER_M_VERSION", "3".into()),
        ("SSL_SERVER_M_SERIAL", openssl(&["-serial"])),
        ("SSL_SERVER_V_START", openssl(&["-startdate"])),
        ("SSL_SERVER_V_END", openssl(&["-enddate"])),
        (
            "SSL_SERVER_S_DN",
            openssl(&["-subject", "-nameopt", "RFC2253"]),
        ),
        (
            "SSL_SERVER_I_DN",
            openssl(&["-issuer", "-nameopt", "RFC2253"]),
        ),
        ("SSL_SERVER_S_DN_CN", "localhost".into()),
        ("SSL_SERVER_S_DN_O", "Hosts".into()),
        ("SSL_SERVER_I_DN_CN", "Fedgate Test Root CA".into()),
        ("SSL_SERVER_SAN_DNS_0", "localhost".into()),
        ("SSL_SERVER_A_KEY", "rsaEncryption".into()),
        ("SSL_SERVER_A_SIG", "sha256WithRSAEncryption".into()),
    ];
    for (k, v) in want {
        assert_eq!(env[k].as_str(), Some(v.as_str()), "{k}: {env}");
    }
    assert!(
        env["SSL_CLIENT_S_DN"].is_null(),
        "no client values off x509 routes"
    );
}

/// A connection authenticated before a CRL update must not keep its
/// identity after the reload that brings the CRL in: the cached
/// per-connection verdict is judged again.
#[test]
fn a_revocation_reaches_open_connections_on_reload() {
    const PORT: u16 = 18705;
    let Some(p) = pki() else { return };
    servers(p); // the echo upstream
    // A CA directory whose rootA CRL predates Bob's revocation.
    let tmp = tempfile::tempdir().unwrap();
    let ca_dir = tmp.path().join("certificates");
    let st = Command::new("cp")
        .arg("-a")
        .arg(p.certs())
        .arg(&ca_dir)
        .status()
        .unwrap();
    assert!(st.success());
    let hashes: Vec<String> = ["hash", "hash_old"]
        .iter()
        .map(|f| {
            std::fs::read_to_string(p.dir.join("ca/rootA").join(f))
                .unwrap()
                .trim()
                .to_string()
        })
        .collect();
    let set_crl = |file: &str| {
        for h in &hashes {
            std::fs::copy(
                p.dir.join("ca/rootA").join(file),
                ca_dir.join(format!("{h}.r0")),
            )
            .unwrap();
        }
    };
    set_crl("crl-before-revocation.pem");
    let cfg = config(p, PORT, "optional").replace(
        &format!("ca_dir = \"{}\"", p.certs().display()),
        &format!("ca_dir = \"{}\"", ca_dir.display()),
    );
    assert!(cfg.contains(tmp.path().to_str().unwrap()));
    let cfg_path = tmp.path().join("fedgate.toml");
    std::fs::write(&cfg_path, cfg).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let cfg = fedgate::Config::load(&cfg_path).unwrap();
            let (rtx, rrx) = tokio::sync::oneshot::channel();
            tokio::spawn(fedgate::serve_config(cfg, Some(rtx)));
            tx.send(rrx.await.unwrap()).unwrap();
            std::future::pending::<()>().await;
        });
    });
    let bound = rx.recv().unwrap();

    let cred = p.cred("eec_bob_revoked");
    let tls = client::config(
        &p.dir.join("ca/rootA/ca.pem"),
        None,
        &[b"http/1.1"],
        Some((client::certs(&cred), client::key(&cred))),
    );
    let mut c = client::Client::connect(([127, 0, 0, 1], PORT).into(), tls).unwrap();
    let r = c.request("GET", "/x509/a", &[], b"");
    assert_eq!(r.status, 200, "before the CRL lists Bob: {}", r.text());
    assert!(r.text().contains("Bob Revoked"), "{}", r.text());

    set_crl("crl.pem");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(bound.shared.reload()).expect("reload");
    let r = c.request("GET", "/x509/b", &[], b"");
    assert_eq!(
        r.status,
        401,
        "same connection after the reload: {}",
        r.text()
    );
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("revoked"),
        "{}",
        r.text()
    );
}

/// Writes at most 4 kB per call, as OpenSSL's client does: a flight
/// bigger than that (a proxy chain with a VOMS AC) leaves in two writes.
struct OpenSslLikeWrites<'a>(&'a std::net::TcpStream);

impl std::io::Write for OpenSslLikeWrites<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (&mut &*self.0).write(&buf[..buf.len().min(4096)])
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One request on a new connection from a client that leaves Nagle's
/// algorithm on and writes its handshake in 4 kB pieces; the time to the
/// answer's first bytes.
fn nagle_client_request(p: &Pki, port: u16, cred: &str) -> std::time::Duration {
    use std::io::{Read, Write};
    let cred = p.cred(cred);
    let cfg = client::config(
        &p.dir.join("ca/rootA/ca.pem"),
        Some(&[&rustls::version::TLS13]),
        &[b"http/1.1"],
        Some((client::certs(&cred), client::key(&cred))),
    );
    let t0 = std::time::Instant::now();
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_nodelay(false).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let name = "localhost".try_into().unwrap();
    let mut conn = rustls::ClientConnection::new(cfg, name).unwrap();
    conn.writer()
        .write_all(b"GET /x509/a HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    loop {
        while conn.wants_write() {
            conn.write_tls(&mut OpenSslLikeWrites(&tcp)).unwrap();
        }
        if conn.read_tls(&mut tcp).unwrap() == 0 {
            break;
        }
        conn.process_new_packets().unwrap();
        let mut buf = [0u8; 4096];
        match conn.reader().read(&mut buf) {
            Ok(n) if n > 0 => {
                answer.extend_from_slice(&buf[..n]);
                break;
            }
            _ => {}
        }
    }
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    t0.elapsed()
}

/// Issue 16: a client with Nagle's algorithm on whose handshake flight
/// exceeds its 4 kB write buffer (a 2-level proxy with an AC) waited for
/// the server's delayed ACK, about 40 ms, on every new connection, before
/// fedgate acknowledged handshake reads at once (`TCP_QUICKACK`). The
/// median of five connections stays well under that delay (a handshake
/// here takes a few ms).
#[test]
fn a_nagle_client_with_a_large_chain_is_not_held_by_delayed_acks() {
    let Some(p) = pki() else { return };
    servers(p);
    let flight: usize = client::certs(&p.cred("depth2_voms"))
        .iter()
        .map(|c| c.len())
        .sum();
    assert!(
        flight > 4096,
        "the chain must not fit one write ({flight} bytes)"
    );
    nagle_client_request(p, OPTIONAL, "depth2_voms"); // warm the caches
    let mut times: Vec<_> = (0..5)
        .map(|_| nagle_client_request(p, OPTIONAL, "depth2_voms"))
        .collect();
    times.sort();
    assert!(
        times[2] < std::time::Duration::from_millis(30),
        "new connections wait for delayed ACKs: {times:?}"
    );
}
