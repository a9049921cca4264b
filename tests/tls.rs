//! The TLS front end of the real binary: protocol versions, the
//! client-certificate request and its CA hints, proof of key possession.

mod common;

use common::client::{certs, config, key};
use common::upstream::uwsgi_echo;
use common::{Client, Conf, Gateway, SECOND_CA_CN, pki};

#[test]
fn tls12_and_tls13_both_work() {
    let pki = pki();
    let up = uwsgi_echo();
    let gw = Gateway::start(&pki, &Conf::new(format!("uwsgi://{}", up.addr)));
    for (v, name) in [
        (&rustls::version::TLS12, "TLSv1.2"),
        (&rustls::version::TLS13, "TLSv1.3"),
    ] {
        let mut c = Client::connect(gw.addr, config(&pki.ca_file, Some(&[v]), &[], None)).unwrap();
        assert_eq!(
            c.tls()
                .unwrap()
                .protocol_version()
                .map(|p| format!("{p:?}")),
            Some(name.replace("v1.", "v1_"))
        );
        let r = c.request("GET", "/v3", &[], b"");
        assert_eq!(r.status, 200);
        assert_eq!(up.record.last().get("SSL_PROTOCOL"), Some(name));
    }
    // Nothing older: openssl with TLS 1.1 at most is refused.
    let out = std::process::Command::new("openssl")
        .args(["s_client", "-connect", &gw.addr.to_string(), "-tls1_1"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() || text.contains("Cipher is (NONE)"),
        "TLS 1.1 must fail: {text}"
    );
}

fn s_client(gw: &Gateway, extra: &[&str]) -> String {
    let out = std::process::Command::new("openssl")
        .args(["s_client", "-connect", &gw.addr.to_string()])
        .args(extra)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// EGI monitoring reads this list; it must name every CA in ca_dir.
#[test]
fn client_certificate_request_carries_the_ca_hints() {
    let pki = pki();
    let up = uwsgi_echo();
    let gw = Gateway::start(&pki, &Conf::new(format!("uwsgi://{}", up.addr)));
    for version in ["-tls1_2", "-tls1_3"] {
        let out = s_client(&gw, &[version]);
        let list = out
            .split("Acceptable client certificate CA names")
            .nth(1)
            .unwrap_or_else(|| panic!("{version}: no CA names in:\n{out}"));
        let list: String = list.lines().take(4).collect::<Vec<_>>().join("\n");
        assert!(list.contains("CN = fedgate demo CA"), "{version}: {list}");
        assert!(list.contains(SECOND_CA_CN), "{version}: {list}");
    }
    // client_auth = "none": no request at all.
    let mut conf = Conf::new(format!("uwsgi://{}", up.addr));
    conf.tls_extra = "client_auth = \"none\"\n";
    let gw = Gateway::start(&pki, &conf);
    let out = s_client(&gw, &["-tls1_2"]);
    assert!(out.contains("No client certificate CA names sent"), "{out}");
    assert!(!out.contains("Client Certificate Types"), "{out}");
    // send_ca_hints = false: a request, but an empty list.
    conf.tls_extra = "client_auth = \"optional\"\nsend_ca_hints = false\n";
    let gw = Gateway::start(&pki, &conf);
    let out = s_client(&gw, &["-tls1_2"]);
    assert!(out.contains("Client Certificate Types"), "{out}");
    assert!(
        !out.contains("Acceptable client certificate CA names"),
        "{out}"
    );
}

/// A forged CertificateVerify cannot be produced by normal clients; a
/// certificate signed for with another key is the same attack.
#[test]
fn client_cert_with_a_key_that_does_not_match_is_refused() {
    let pki = pki();
    let up = uwsgi_echo();
    let gw = Gateway::start(&pki, &Conf::new(format!("uwsgi://{}", up.addr)));
    let other = rcgen::KeyPair::generate().unwrap();
    let other_pem = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(other_pem.path(), other.serialize_pem()).unwrap();
    for v in [&rustls::version::TLS12, &rustls::version::TLS13] {
        // Control: the matching key works, so the refusal below is about the key.
        let good = config(
            &pki.ca_file,
            Some(&[v]),
            &[],
            Some((certs(&pki.user_cert), key(&pki.user_key))),
        );
        let mut c = Client::connect(gw.addr, good).unwrap();
        assert_eq!(c.request("GET", "/v3", &[], b"").status, 200, "{v:?}");

        up.record.clear();
        let bad = config(
            &pki.ca_file,
            Some(&[v]),
            &[],
            Some((certs(&pki.user_cert), key(other_pem.path()))),
        );
        let result =
            Client::connect(gw.addr, bad).and_then(|mut c| c.try_request("GET", "/v3", &[], b""));
        assert!(
            result.is_err(),
            "{v:?}: served with a mismatched key: {result:?}"
        );
        assert_eq!(up.record.heads(), 0, "{v:?}: nothing forwarded");
    }
    // With TLS 1.3 the client learns of the refusal before the server's
    // handshake task has counted it: wait for the count, briefly.
    let want = "fedgate_tls_handshakes_total{result=\"failed\"} 2";
    let t0 = std::time::Instant::now();
    let mut m = gw.admin_get("/metrics").text();
    while !m.contains(want) && t0.elapsed() < std::time::Duration::from_secs(5) {
        std::thread::sleep(std::time::Duration::from_millis(50));
        m = gw.admin_get("/metrics").text();
    }
    assert!(m.contains(want), "{m}");
}

#[test]
fn required_client_auth_refuses_clients_without_a_certificate() {
    let pki = pki();
    let up = uwsgi_echo();
    let mut conf = Conf::new(format!("uwsgi://{}", up.addr));
    conf.tls_extra = "client_auth = \"required\"\n";
    // In required mode the chain is validated in the handshake; this test
    // PKI publishes no CRL, so CRLs are optional here (the CRL modes have
    // tests of their own in x509_chains.rs).
    conf.routes = "[x509]\ncrl = \"if_valid\"\n[[route]]\nname = \"keystone\"\npath = \"^/\"\nauth = \"none\"\n";
    let gw = Gateway::start(&pki, &conf);
    let none = Client::connect(gw.addr, config(&pki.ca_file, None, &[], None))
        .and_then(|mut c| c.try_request("GET", "/v3", &[], b""));
    assert!(none.is_err(), "{none:?}");
    let with = config(
        &pki.ca_file,
        None,
        &[],
        Some((certs(&pki.user_cert), key(&pki.user_key))),
    );
    let r = Client::connect(gw.addr, with)
        .unwrap()
        .request("GET", "/v3", &[], b"");
    assert_eq!(r.status, 200);
}
