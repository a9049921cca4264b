//! The real `fedgate` binary in front of recording upstreams (uwsgi and
//! HTTP): environ, spoofing, forwarding headers, bodies, errors.

mod common;

use common::upstream::{Seen, Upstream, http_echo, uwsgi_echo};
use common::{Conf, Gateway, Pki, pki};
use std::time::Duration;

fn both() -> [(&'static str, Upstream); 2] {
    [("uwsgi", uwsgi_echo()), ("http", http_echo())]
}

fn url(kind: &str, up: &Upstream) -> String {
    format!("{kind}://{}", up.addr)
}

#[test]
fn uwsgi_environ_is_what_mod_proxy_uwsgi_sets() {
    let pki = pki();
    let up = uwsgi_echo();
    let gw = Gateway::start(&pki, &Conf::new(url("uwsgi", &up)));
    let mut c = gw.client(&pki);
    let host = format!("localhost:{}", gw.port());
    let r = c.request(
        "POST",
        "/v3/auth/some%20path/%C3%A9?a=1&b=%2F",
        &[
            ("Host", &host),
            ("Content-Type", "application/json"),
            ("X-Auth-Token", "tok"),
            ("Accept", "a/b"),
            ("Accept", "c/d"),
        ],
        b"{\"x\":1}",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-echo"), Some("uwsgi"));
    let s = up.record.last();
    let want = [
        ("REQUEST_METHOD", "POST"),
        ("PATH_INFO", "/v3/auth/some path/é"),
        ("QUERY_STRING", "a=1&b=%2F"),
        ("REQUEST_URI", "/v3/auth/some%20path/%C3%A9?a=1&b=%2F"),
        ("SCRIPT_NAME", ""),
        ("SERVER_NAME", "localhost"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("HTTPS", "on"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("CONTENT_TYPE", "application/json"),
        ("CONTENT_LENGTH", "7"),
        ("HTTP_HOST", host.as_str()),
        ("HTTP_X_AUTH_TOKEN", "tok"),
        ("HTTP_ACCEPT", "a/b, c/d"),
        ("HTTP_X_FORWARDED_FOR", "127.0.0.1"),
        ("HTTP_X_FORWARDED_PROTO", "https"),
        ("HTTP_X_FORWARDED_HOST", host.as_str()),
    ];
    for (k, v) in want {
        assert_eq!(s.get(k), Some(v), "{k} in {:?}", s.vars);
    }
    assert_eq!(s.get("SERVER_PORT"), Some(gw.port().to_string().as_str()));
    assert_eq!(
        s.get("HTTP_X_FORWARDED_PORT"),
        Some(gw.port().to_string().as_str())
    );
    assert_eq!(s.body, b"{\"x\":1}");
    assert!(s.get("HTTP_CONTENT_TYPE").is_none() && s.get("HTTP_CONTENT_LENGTH").is_none());
    // No identity at all on an auth = "none" route.
    assert!(s.get("REMOTE_USER").is_none());
    // The response says which request it was.
    assert!(
        r.header("x-fedgate-request-id")
            .is_some_and(|v| v.len() == 16)
    );
}

/// Every spelling a client could use to pose as an identity, on every
/// method, over both upstream kinds: none may reach the upstream.
#[test]
fn spoofed_identity_headers_never_reach_the_upstream() {
    let pki = pki();
    let variants = [
        "OIDC-iss",
        "OIDC-sub",
        "oidc-sub",
        "Oidc-Claim-Sub",
        "OIDC_CLAIM_sub",
        "OIDC-eduperson_entitlement",
        "OIDC-eduperson-entitlement",
        "oidc_eduperson_entitlement",
        "oidc.iss",
        "HTTP_OIDC_ISS",
        "HTTP_OIDC_SUB",
        "HTTP-OIDC-ISS",
        "Http-Oidc-Sub",
        "OIDC_access_token",
        "GRST_CONN_AURI_0",
        "GRST-CONN-AURI-0",
        "grst-voms-fqans",
        "GRST_VOMS_FQANS",
        "Grst-Cred-0",
        "HTTP-GRST-VOMS-FQANS",
        "SSL_CLIENT_S_DN",
        "SSL-Client-S-DN",
        "ssl-client-verify",
        "SSL_CLIENT_CERT",
        "REMOTE_USER",
        "Remote-User",
        "remote-user",
        "X-Remote-User",
        "x-remote-group",
        "X_Remote_User",
        "X-Site-Identity",
        "x-site-identity-dn",
        "X_SITE_IDENTITY",
        "X-Fedgate-Id-Sub",
    ];
    let methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
    for (kind, up) in both() {
        let mut conf = Conf::new(url(kind, &up));
        conf.scrub = "prefixes = [\"X-Site-Identity\"]";
        conf.upstream_extra = if kind == "http" {
            "identity_header_prefix = \"X-Fedgate-Id-\"\n"
        } else {
            ""
        };
        let gw = Gateway::start(&pki, &conf);
        let mut c = gw.client(&pki);
        // The identity header prefix is configured for the HTTP kind only.
        let headers: Vec<(String, String)> = variants
            .iter()
            .filter(|n| kind == "http" || !n.starts_with("X-Fedgate-Id"))
            .enumerate()
            .map(|(i, n)| (n.to_string(), format!("spoofed{i}")))
            .collect();
        let hs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .chain([("X-Auth-Token", "legit-token")])
            .collect();
        for m in methods {
            up.record.clear();
            let r = c.request(
                m,
                "/v3/OS-FEDERATION/identity_providers/egi.eu/protocols/openid/auth",
                &hs,
                b"",
            );
            assert_eq!(r.status, 200, "{kind} {m}: {}", r.text());
            let s: Seen = up.record.last();
            let raw = String::from_utf8_lossy(&s.raw);
            assert!(
                !raw.contains("spoofed"),
                "{kind} {m}: a spoofed value reached the upstream: {raw}"
            );
            assert!(
                raw.contains("legit-token"),
                "{kind} {m}: ordinary header lost"
            );
            if kind == "uwsgi" {
                assert_eq!(s.get("REQUEST_METHOD"), Some(m));
                for (k, _) in &s.vars {
                    let up = k.to_ascii_uppercase().replace('-', "_");
                    for bad in [
                        "OIDC",
                        "HTTP_OIDC",
                        "GRST",
                        "HTTP_GRST",
                        "SSL_CLIENT",
                        "REMOTE_USER",
                        "HTTP_X_REMOTE",
                        "HTTP_X_SITE",
                    ] {
                        assert!(!up.starts_with(bad), "{kind} {m}: environ has {k}");
                    }
                }
            } else {
                assert_eq!(s.get("@method"), Some(m));
            }
        }
        let dropped = gw
            .logs
            .wait_for("dropped client headers", Duration::from_secs(5));
        let line = dropped.expect("one log line names the dropped headers");
        assert!(
            !line.contains("spoofed"),
            "values must not be logged: {line}"
        );
    }
}

/// A site that renames the nginx-voms values (`[voms.export]`) must not
/// open a way in: with `fqans = "X_FQANS"` and an HTTP upstream, fedgate
/// sends FQANs as `X-FQANS`, so a client's `X-Fqans` must never arrive.
#[test]
fn renamed_voms_export_names_cannot_be_sent_by_clients() {
    let pki = pki();
    let up = http_echo();
    let mut conf = Conf::new(format!("http://{}", up.addr));
    conf.routes = "[voms.export]\nfqans = \"X_FQANS\"\nvo = \"Grid-VO\"\n\n[[route]]\nname = \"keystone\"\npath = \"^/\"\nauth = \"none\"\n";
    let gw = Gateway::start(&pki, &conf);
    let mut c = gw.client(&pki);
    let r = c.request(
        "GET",
        "/v3/OS-FEDERATION/identity_providers/egi.eu/protocols/mapped/auth",
        &[
            ("X-Fqans", "/fedcloud.egi.eu/Role=VMManager"),
            ("grid-vo", "fedcloud.egi.eu"),
            ("X-Auth-Token", "legit-token"),
        ],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let raw = String::from_utf8_lossy(&up.record.last().raw).into_owned();
    assert!(
        !raw.contains("VMManager"),
        "a client FQAN reached the upstream: {raw}"
    );
    assert!(
        !raw.contains("fedcloud.egi.eu"),
        "a client VO reached the upstream: {raw}"
    );
    assert!(raw.contains("legit-token"), "{raw}");
}

#[test]
fn client_forwarding_headers_are_replaced() {
    let pki = pki();
    for (kind, up) in both() {
        let gw = Gateway::start(&pki, &Conf::new(url(kind, &up)));
        let r = gw.client(&pki).request(
            "GET",
            "/v3",
            &[
                ("Host", "keystone.example:5000"),
                ("X-Forwarded-For", "6.6.6.6"),
                ("X-Forwarded-Proto", "http"),
                ("X-Forwarded-Host", "evil.example"),
                ("X-Forwarded-Port", "1"),
                ("Forwarded", "for=6.6.6.6;proto=http;host=evil.example"),
            ],
            b"",
        );
        assert_eq!(r.status, 200);
        let s = up.record.last();
        let (pre, fwd) = if kind == "uwsgi" {
            ("HTTP_X_FORWARDED_", "HTTP_FORWARDED")
        } else {
            ("x-forwarded-", "forwarded")
        };
        let f = |n: &str| {
            let key = if kind == "uwsgi" {
                format!("{pre}{}", n.to_uppercase())
            } else {
                format!("{pre}{n}")
            };
            s.get(&key).map(str::to_string)
        };
        assert_eq!(f("for").as_deref(), Some("127.0.0.1"), "{kind}");
        assert_eq!(f("proto").as_deref(), Some("https"), "{kind}");
        assert_eq!(
            f("host").as_deref(),
            Some("keystone.example:5000"),
            "{kind}"
        );
        assert_eq!(
            f("port").as_deref(),
            Some(gw.port().to_string().as_str()),
            "{kind}"
        );
        assert!(
            s.get(fwd).is_none(),
            "{kind}: Forwarded from a client must go"
        );
        assert!(
            !String::from_utf8_lossy(&s.raw).contains("6.6.6.6"),
            "{kind}"
        );
    }
}

#[test]
fn bodies_stream_and_the_limit_gives_413() {
    let pki = pki();
    for (kind, up) in both() {
        let mut conf = Conf::new(url(kind, &up));
        conf.server = "max_body_bytes = 300000\n";
        let gw = Gateway::start(&pki, &conf);
        // Streaming: the upstream has the head before the client sent the rest.
        let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut c = gw.client(&pki);
        let head = format!(
            "PUT /v3/blob HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        c.write_all(head.as_bytes()).unwrap();
        c.write_all(&body[..100_000]).unwrap();
        let t0 = std::time::Instant::now();
        while up.record.heads() == 0 && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            up.record.heads(),
            1,
            "{kind}: upstream saw nothing before the body ended"
        );
        assert!(
            up.record.last().body_at.is_none(),
            "{kind}: body must not be complete yet"
        );
        c.write_all(&body[100_000..]).unwrap();
        let r = c.read_response(false).unwrap();
        assert_eq!(r.status, 200, "{kind}: {}", r.text());
        let j = r.json();
        assert_eq!(j["body_len"], 200_000);
        assert_eq!(j["body_sum"], body.iter().map(|&b| b as u64).sum::<u64>());

        // Declared too large: 413 in Keystone's JSON format, upstream untouched.
        up.record.clear();
        let big = vec![b'x'; 300_001];
        let r = gw
            .client(&pki)
            .request("POST", "/v3/x", &[("Content-Type", "text/plain")], &big);
        assert_eq!(r.status, 413, "{kind}");
        assert_eq!(r.json()["error"]["code"], 413);
        assert_eq!(
            up.record.heads(),
            0,
            "{kind}: an oversized body must not be forwarded"
        );

        // Chunked, under the limit: arrives whole (uwsgi: with CONTENT_LENGTH).
        up.record.clear();
        let r = send_chunked(&gw, &pki, &[&[b'a'; 1000][..], &[b'b'; 70_000][..], b"end"]);
        assert_eq!(r.status, 200, "{kind}: {}", r.text());
        assert_eq!(r.json()["body_len"], 71_003);
        if kind == "uwsgi" {
            assert_eq!(up.record.last().get("CONTENT_LENGTH"), Some("71003"));
        }
        // Chunked, over the limit: 413.
        let r = send_chunked(
            &gw,
            &pki,
            &[&vec![b'z'; 200_000][..], &vec![b'z'; 200_000][..]],
        );
        assert_eq!(
            r.status,
            413,
            "{kind}: chunked over the limit: {}",
            r.text()
        );
    }
}

fn send_chunked(gw: &Gateway, pki: &Pki, chunks: &[&[u8]]) -> common::Resp {
    let mut c = gw.client(pki);
    let mut raw =
        b"POST /v3/chunked HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for ch in chunks {
        raw.extend_from_slice(format!("{:x}\r\n", ch.len()).as_bytes());
        raw.extend_from_slice(ch);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    // The gateway may answer 413 before reading everything.
    let _ = c.write_all(&raw);
    c.read_response(false).expect("a response")
}

#[test]
fn http2_is_negotiated_by_alpn() {
    let pki = pki();
    let up = uwsgi_echo();
    let gw = Gateway::start(&pki, &Conf::new(url("uwsgi", &up)));
    let port = gw.port();
    let out = std::process::Command::new("curl")
        .args(["-sS", "--http2", "--cacert"])
        .arg(&pki.ca_file)
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .args([
            "-H",
            "OIDC-sub: spoofed-h2",
            "-w",
            "\n%{http_version} %{http_code}",
        ])
        .arg(format!("https://localhost:{port}/v3/h2?x=1"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.trim_end().ends_with("2 200"),
        "curl: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = up.record.last();
    assert_eq!(s.get("SERVER_PROTOCOL"), Some("HTTP/2.0"));
    assert_eq!(s.get("PATH_INFO"), Some("/v3/h2"));
    assert_eq!(
        s.get("HTTP_HOST"),
        Some(format!("localhost:{port}").as_str())
    );
    assert!(!String::from_utf8_lossy(&s.raw).contains("spoofed"));
    // And the rustls client agrees on the protocol.
    let c = common::Client::connect(
        gw.addr,
        common::client::config(&pki.ca_file, None, &[b"h2", b"http/1.1"], None),
    )
    .unwrap();
    assert_eq!(c.tls().unwrap().alpn_protocol(), Some(&b"h2"[..]));
}

#[test]
fn keystone_down_gives_502_in_keystone_json() {
    let pki = pki();
    for kind in ["uwsgi", "http"] {
        let gw = Gateway::start(
            &pki,
            &Conf::new(format!("{kind}://{}", common::dead_addr())),
        );
        let r = gw.get(&pki, "/v3/auth/tokens");
        assert_eq!(r.status, 502, "{kind}");
        assert_eq!(r.header("content-type"), Some("application/json"));
        let j = r.json();
        assert_eq!(j["error"]["code"], 502);
        assert_eq!(j["error"]["title"], "Bad Gateway");
        assert!(
            j["error"]["message"].as_str().unwrap().contains("Keystone"),
            "{j}"
        );
        assert!(
            gw.logs
                .wait_for("upstream request failed", Duration::from_secs(5))
                .is_some()
        );
    }
}

/// The access line's duration is milliseconds to the microsecond:
/// `ms=0.334`, never the 17 digits of a binary fraction
/// (`ms=0.33443900000000004`, as it read before).
#[test]
fn the_access_line_gives_milliseconds_to_the_microsecond() {
    let pki = pki();
    let gw = Gateway::start(&pki, &Conf::new(format!("uwsgi://{}", common::dead_addr())));
    for _ in 0..20 {
        assert_eq!(gw.get(&pki, "/v3/auth/tokens").status, 502);
    }
    let access = || -> Vec<String> {
        gw.logs
            .all()
            .into_iter()
            .filter(|l| l.contains(" request ") && l.contains("status=502"))
            .collect()
    };
    // Lines are written by the log thread: wait for all of them.
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while access().len() < 20 && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    let lines = access();
    assert_eq!(lines.len(), 20, "{lines:#?}");
    for l in lines {
        let ms = l.rsplit_once(" ms=").expect("an ms field").1.trim();
        let v: f64 = ms.parse().unwrap_or_else(|_| panic!("{l}"));
        assert!(v >= 0.0, "{l}");
        let decimals = ms.split_once('.').map_or(0, |(_, d)| d.len());
        assert!(decimals <= 3, "more than microseconds: {l}");
    }
}

#[test]
fn malformed_requests_get_400_and_unknown_paths_404() {
    let pki = pki();
    let up = uwsgi_echo();
    let mut conf = Conf::new(url("uwsgi", &up));
    conf.routes = "[[route]]\nname = \"v3\"\npath = \"^/v3(/|$)\"\nauth = \"none\"\n";
    let gw = Gateway::start(&pki, &conf);
    // Not UTF-8 once percent-decoded: fedgate's own JSON 400.
    let r = gw.get(&pki, "/v3/%FF%FE");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], 400);
    let r = gw.get(&pki, "/v3/a%00b");
    assert_eq!(r.status, 400);
    // Broken HTTP: 400 from the HTTP layer, and nothing forwarded.
    for raw in [
        &b"GET /v3 HTTP/1.1\r\nHost: localhost\r\nContent-Length: abc\r\n\r\n"[..],
        b"GET /v3 HTTP/1.1\r\nHost: localhost\r\nBad Header Name: x\r\n\r\n",
        b"GET /v3 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx",
        b"\x16\x03garbage\r\n\r\n",
    ] {
        let mut c = gw.client(&pki);
        c.write_all(raw).unwrap();
        let r = c.read_response(false).expect("a 400 response");
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(raw));
    }
    assert_eq!(up.record.heads(), 0);
    let r = gw.get(&pki, "/v2.0/tenants");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], 404);
    assert_eq!(up.record.heads(), 0);
    assert_eq!(gw.get(&pki, "/v3").status, 200);
}

/// The README's first command: `fedgate demo` answers through TLS.
#[test]
fn demo_answers_through_tls() {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(common::fedgate_bin())
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut port, mut ca) = (None, None);
    for line in lines.by_ref().map_while(Result::ok) {
        if let Some(rest) = line.split("https://localhost:").nth(1) {
            port.get_or_insert(
                rest.split(|c: char| !c.is_ascii_digit())
                    .next()
                    .unwrap()
                    .to_string(),
            );
        }
        if let Some(rest) = line.trim().strip_prefix("CA certificate:") {
            ca = Some(rest.trim().to_string());
        }
        if port.is_some() && ca.is_some() {
            break;
        }
    }
    let (port, ca) = (
        port.expect("demo prints its URL"),
        ca.expect("demo prints its CA"),
    );
    let curl = |args: &[&str], path: &str| {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--cacert", &ca])
            .args(args)
            .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
            .arg(format!("https://localhost:{port}{path}"))
            .output()
            .unwrap();
        let j: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
        (j, out.stdout)
    };
    let (j, raw) = curl(&["-H", "OIDC-sub: mallory"], "/v3");
    assert_eq!(j["environ"]["PATH_INFO"], "/v3");
    assert_eq!(j["environ"]["HTTPS"], "on");
    assert!(!raw.windows(7).any(|w| w == b"mallory"));

    // The X.509 route: the demo user's certificate becomes gridsite values
    // (the demo CA ships an empty CRL, which the default `crl = "require"`
    // needs); without a certificate the route answers 401 with the reason.
    let dir = std::path::Path::new(&ca).parent().unwrap();
    let (cert, key) = (dir.join("usercert.pem"), dir.join("userkey.pem"));
    let x509 = fedgate::demo::X509_PATH;
    let (j, _) = curl(
        &[
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
        x509,
    );
    assert_eq!(
        j["environ"]["GRST_CONN_AURI_0"], "dn:/O=fedgate+demo/CN=Demo+User",
        "{j}"
    );
    let (j, _) = curl(&[], x509);
    assert_eq!(j["error"]["code"], 401, "{j}");
    let _ = child.kill();
    let _ = child.wait();
}

/// uWSGI's `http-socket` (and other simple servers) answer HTTP/1.1 without
/// `Connection: close` and then close, a little later. fedgate pools the
/// connection and sends the next request into it: that request must not
/// become a 502 (nginx retries such requests on a fresh connection).
#[test]
fn http_upstream_closing_after_each_response_is_not_a_502() {
    use std::io::{BufRead, BufReader, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut rd = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                while rd.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    line.clear();
                }
                let mut s = s;
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}");
                // Like uWSGI: log, clean up, then close without reading more.
                std::thread::sleep(Duration::from_millis(100));
                let _ = s.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    let pki = pki();
    let gw = Gateway::start(&pki, &Conf::new(format!("http://{addr}")));
    let mut c = gw.client(&pki);
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(c.request("GET", "/v3", &[], b"").status);
    }
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
}

const MAPPED_AUTH: &str = "/v3/OS-FEDERATION/identity_providers/egi.eu/protocols/mapped/auth";

/// issue 10 item 3: a path Keystone routes to a protected handler is
/// routed by fedgate to the protected route too, whatever its spelling:
/// each variant gets the x509 route's own refusal (no client certificate
/// here) or 400, and none reaches the upstream. A path that is not
/// canonical is forwarded in canonical form.
#[test]
fn path_variants_get_the_protected_route_or_400() {
    let pki = pki();
    let variants = [
        format!("/{MAPPED_AUTH}"),
        format!("{MAPPED_AUTH}/"),
        format!("{MAPPED_AUTH}//"),
        format!("{MAPPED_AUTH}/."),
        format!("{MAPPED_AUTH}/x/.."),
        format!("{MAPPED_AUTH}%2F"),
        format!("{MAPPED_AUTH}%2f"),
        format!("{MAPPED_AUTH}%00"),
        "/v3//OS-FEDERATION/identity_providers/egi.eu/protocols/mapped/auth".into(),
        "/v3/./OS-FEDERATION/identity_providers/egi.eu/protocols/mapped/auth".into(),
        "/v3/x/../OS-FEDERATION/identity_providers/egi.eu/protocols/mapped/auth".into(),
        "/v3/%2e%2e/v3/OS-FEDERATION/identity_providers/egi.eu/protocols/mapped/auth".into(),
        "/v3/OS-FEDERATION%2Fidentity_providers/egi.eu/protocols/mapped/auth".into(),
        "/v3/OS-FEDERATION/identity_providers/egi.eu/protocols/mapped/%61uth".into(),
    ];
    for (kind, up) in both() {
        let mut conf = Conf::new(url(kind, &up));
        let routes = format!(
            "[[route]]\nname = \"voms\"\n\
             path = \"^/v3/OS-FEDERATION/identity_providers/[^/]+/protocols/mapped/auth$\"\n\
             auth = \"x509\"\n{}",
            common::ROUTE_ALL
        );
        conf.routes = &routes;
        let gw = Gateway::start(&pki, &conf);
        // The control: the canonical path itself.
        let r = gw.get(&pki, MAPPED_AUTH);
        assert_eq!(r.status, 401, "{kind}: {}", r.text());
        let refusal = r.json()["error"]["message"].clone();
        for p in &variants {
            let r = gw.get(&pki, p);
            match r.status {
                401 => assert_eq!(
                    r.json()["error"]["message"],
                    refusal,
                    "{kind} {p}: not the x509 route's refusal"
                ),
                400 => assert_eq!(r.json()["error"]["code"], 400, "{kind} {p}"),
                s => panic!("{kind} {p}: {s} {}", r.text()),
            }
        }
        assert_eq!(
            up.record.heads(),
            0,
            "{kind}: a variant reached the upstream"
        );

        // Forwarded in canonical form, query untouched.
        let r = gw.get(&pki, "/v3//auth/./x/../tokens/?a=%2F&b=/..//");
        assert_eq!(r.status, 200, "{kind}: {}", r.text());
        let s = up.record.last();
        if kind == "uwsgi" {
            assert_eq!(s.get("PATH_INFO"), Some("/v3/auth/tokens"));
            assert_eq!(s.get("REQUEST_URI"), Some("/v3/auth/tokens?a=%2F&b=/..//"));
        } else {
            assert_eq!(s.get("@target"), Some("/v3/auth/tokens?a=%2F&b=/..//"));
        }
        // Canonical requests are forwarded byte for byte.
        let r = gw.get(&pki, "/v3/users/%41%20b?x");
        assert_eq!(r.status, 200);
        let s = up.record.last();
        if kind == "uwsgi" {
            assert_eq!(s.get("REQUEST_URI"), Some("/v3/users/%41%20b?x"));
        } else {
            assert_eq!(s.get("@target"), Some("/v3/users/%41%20b?x"));
        }
    }
}

/// issue 10 item 5: the Host Keystone builds its links from is one valid
/// authority, agrees with HTTP/2's `:authority`, and is one of
/// `server.public_names` when those are set.
#[test]
fn host_must_be_one_valid_authority() {
    let pki = pki();
    for (kind, up) in both() {
        let gw = Gateway::start(&pki, &Conf::new(url(kind, &up)));
        for bad in [
            "evil.example/x?y",
            "a@evil.example",
            "evil.example:99999",
            "evil example",
            "localhost, evil.example",
            "[::1",
        ] {
            let r = gw.client(&pki).request("GET", "/v3", &[("Host", bad)], b"");
            assert_eq!(r.status, 400, "{kind} Host {bad:?}: {}", r.text());
            assert_eq!(r.json()["error"]["code"], 400);
        }
        let r = gw.client(&pki).request(
            "GET",
            "/v3",
            &[("Host", "localhost"), ("Host", "evil.example")],
            b"",
        );
        assert_eq!(r.status, 400, "{kind}: two Host headers: {}", r.text());
        // An absolute-form target names the host too (RFC 9112 §3.2.2).
        let r = gw
            .client(&pki)
            .request("GET", "https://evil.example/v3", &[], b"");
        assert_eq!(r.status, 400, "{kind}: absolute-form: {}", r.text());
        assert_eq!(up.record.heads(), 0, "{kind}: a bad Host was forwarded");

        // HTTP/2: a Host that disagrees with :authority.
        let h2 = |host: Option<&str>| {
            let mut b = http::Request::get(common::h2::uri(gw.addr, "/v3"));
            if let Some(h) = host {
                b = b.header("host", h);
            }
            common::h2::request(gw.addr, &pki.ca_file, b.body(Default::default()).unwrap()).unwrap()
        };
        let r = h2(Some("evil.example"));
        assert_eq!(r.status, 400, "{kind}: h2 Host vs :authority");
        assert_eq!(r.json()["error"]["code"], 400);
        assert_eq!(up.record.heads(), 0);
        let same = format!("localhost:{}", gw.port());
        assert_eq!(h2(Some(&same)).status, 200, "{kind}: an agreeing Host");
        assert_eq!(h2(None).status, 200, "{kind}: :authority alone");
    }
}

/// issue 10 item 5: `server.public_names` — a Host outside it gets 421
/// with a JSON reason; names match case-insensitively, on any port unless
/// the name has one.
#[test]
fn public_names_refuse_other_hosts_with_421() {
    let pki = pki();
    let up = uwsgi_echo();
    let mut conf = Conf::new(url("uwsgi", &up));
    conf.server = "public_names = [\"localhost\", \"keystone.example.org:5000\"]\n";
    let gw = Gateway::start(&pki, &conf);
    let host = format!("LocalHost:{}", gw.port());
    for (h, want) in [
        (host.as_str(), 200),
        ("keystone.example.org:5000", 200),
        ("keystone.example.org", 421),
        ("evil.example", 421),
        ("127.0.0.1", 421),
    ] {
        let r = gw.client(&pki).request("GET", "/v3", &[("Host", h)], b"");
        assert_eq!(r.status, want, "Host {h}: {}", r.text());
        if want == 421 {
            assert_eq!(r.json()["error"]["code"], 421);
        }
    }
    assert_eq!(up.record.heads(), 2);
    let r = common::h2::request(
        gw.addr,
        &pki.ca_file,
        http::Request::get(format!("https://evil.example:{}/v3", gw.port()))
            .body(Default::default())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(r.status, 421, "h2 :authority outside public_names");
    assert!(
        gw.logs
            .wait_for("server.public_names", Duration::from_secs(5))
            .is_some()
    );
}

/// issue 10 item 5: a client's own X-Forwarded-* headers (Prefix, Server,
/// any other) never reach Keystone unless the client is a trusted proxy.
#[test]
fn client_x_forwarded_headers_are_dropped_unless_trusted() {
    let pki = pki();
    for (kind, up) in both() {
        for trusted in [false, true] {
            let mut conf = Conf::new(url(kind, &up));
            conf.server = if trusted {
                "trusted_proxies = [\"127.0.0.1\"]\n"
            } else {
                ""
            };
            let gw = Gateway::start(&pki, &conf);
            let r = gw.client(&pki).request(
                "GET",
                "/v3",
                &[
                    ("X-Forwarded-Prefix", "//evil.example/x"),
                    ("X-Forwarded-Server", "evil.example"),
                    ("x-forwarded-ssl", "marker-ssl"),
                ],
                b"",
            );
            assert_eq!(r.status, 200);
            let raw = String::from_utf8_lossy(&up.record.last().raw).into_owned();
            assert_eq!(
                raw.contains("evil.example"),
                trusted,
                "{kind} trusted={trusted}: {raw}"
            );
            assert_eq!(
                raw.contains("marker-ssl"),
                trusted,
                "{kind} trusted={trusted}"
            );
        }
    }
}

/// issue 10 item 9: a malformed chunked request body is the client's
/// fault: 400 in Keystone's JSON format, on both upstream kinds (the HTTP
/// upstream answered 502 "Keystone sent an invalid response").
#[test]
fn malformed_chunked_body_is_400() {
    let pki = pki();
    for (kind, up) in both() {
        let gw = Gateway::start(&pki, &Conf::new(url(kind, &up)));
        for (what, body) in [
            ("bad size", &b"zz\r\nabc\r\n0\r\n\r\n"[..]),
            ("bad chunk end", b"3\r\nabcXY0\r\n\r\n"),
            ("size overflow", b"fffffffffffffffffff\r\nabc\r\n0\r\n\r\n"),
        ] {
            let mut c = gw.client(&pki);
            let mut raw = b"POST /v3/x HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            raw.extend_from_slice(body);
            c.write_all(&raw).unwrap();
            let r = c.read_response(false).expect("an answer");
            assert_eq!(r.status, 400, "{kind} {what}: {}", r.text());
            assert_eq!(r.json()["error"]["code"], 400, "{kind} {what}");
        }
    }
}

/// issue 10 item 10: HEAD over HTTP/2 answers the head only, though the
/// upstream (uWSGI does) sends the GET body with it; it was a stream
/// PROTOCOL_ERROR. HTTP/1.1 HEAD keeps working on the same connection.
#[test]
fn head_over_http2_has_no_body() {
    let pki = pki();
    for (kind, up) in both() {
        let gw = Gateway::start(&pki, &Conf::new(url(kind, &up)));
        let r = common::h2::request(
            gw.addr,
            &pki.ca_file,
            http::Request::head(common::h2::uri(gw.addr, "/v3"))
                .body(Default::default())
                .unwrap(),
        )
        .unwrap_or_else(|e| panic!("{kind}: HEAD over h2: {e}"));
        assert_eq!(r.status, 200, "{kind}");
        assert!(r.body.is_empty(), "{kind}");
        assert_eq!(
            up.record.last().get(if kind == "uwsgi" {
                "REQUEST_METHOD"
            } else {
                "@method"
            }),
            Some("HEAD")
        );
        let mut c = gw.client(&pki);
        let r = c.request("HEAD", "/v3", &[], b"");
        assert_eq!(r.status, 200, "{kind}");
        assert!(
            r.header("content-length").is_some_and(|n| n != "0"),
            "{kind}: {:?}",
            r.headers
        );
        assert_eq!(
            c.request("GET", "/v3", &[], b"").status,
            200,
            "{kind}: same connection"
        );
    }
}

/// issue 10 item 11: an HTTP/2 request's `cookie` fields reach the
/// upstream as one Cookie header, joined with "; " (RFC 9113 §8.2.3).
#[test]
fn http2_cookie_fields_are_joined() {
    let pki = pki();
    for (kind, up) in both() {
        let mut conf = Conf::new(url(kind, &up));
        conf.upstream_extra = "forward_cookies = [\"a\", \"b\", \"c\"]\n";
        let gw = Gateway::start(&pki, &conf);
        let r = common::h2::request(
            gw.addr,
            &pki.ca_file,
            http::Request::get(common::h2::uri(gw.addr, "/v3"))
                .header("cookie", "a=1")
                .header("cookie", "b=2; c=3")
                .body(Default::default())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(r.status, 200, "{kind}");
        let s = up.record.last();
        let cookies: Vec<&str> = s
            .vars
            .iter()
            .filter(|(k, _)| k == "cookie" || k == "HTTP_COOKIE")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(cookies, ["a=1; b=2; c=3"], "{kind}");
    }
}

/// issue 10 item 16: cookies are dropped on the way to Keystone unless
/// `[upstream] forward_cookies` names them (Horizon's `sessionid` and
/// `csrftoken` on a shared host name reached Keystone's debug log).
#[test]
fn cookies_are_dropped_unless_allowed() {
    let pki = pki();
    for (kind, up) in both() {
        for allow in ["", "forward_cookies = [\"keep\"]\n"] {
            let mut conf = Conf::new(url(kind, &up));
            conf.upstream_extra = allow;
            let gw = Gateway::start(&pki, &conf);
            let r = gw.client(&pki).request(
                "GET",
                "/v3",
                &[
                    ("Cookie", "sessionid=horizon-session; keep=1"),
                    ("Cookie", "csrftoken=horizon-csrf"),
                ],
                b"",
            );
            assert_eq!(r.status, 200);
            let s = up.record.last();
            let raw = String::from_utf8_lossy(&s.raw).into_owned();
            assert!(!raw.contains("horizon-"), "{kind} {allow:?}: {raw}");
            let cookie = s.get(if kind == "uwsgi" {
                "HTTP_COOKIE"
            } else {
                "cookie"
            });
            if allow.is_empty() {
                assert_eq!(cookie, None, "{kind}: no Cookie by default");
            } else {
                assert_eq!(cookie, Some("keep=1"), "{kind}");
            }
        }
    }
}

/// issue 10 item 14: the answers hyper writes itself to requests it cannot
/// parse (400, 414, 431) carry fedgate's JSON error body too.
#[test]
fn http_layer_errors_have_a_json_body() {
    let pki = pki();
    let up = uwsgi_echo();
    let gw = Gateway::start(&pki, &Conf::new(url("uwsgi", &up)));
    let long_uri = format!("/v3/{}", "a".repeat(70_000));
    let big_header = "b".repeat(140_000);
    let cases: Vec<(u16, Vec<u8>)> = vec![
        (
            400,
            b"GET /v3 HTTP/1.1\r\nHost: localhost\r\nBad Header Name: x\r\n\r\n".to_vec(),
        ),
        (400, b"\x16\x03garbage\r\n\r\n".to_vec()),
        (
            414,
            format!("GET {long_uri} HTTP/1.1\r\nHost: localhost\r\n\r\n").into_bytes(),
        ),
        (
            431,
            format!("GET /v3 HTTP/1.1\r\nHost: localhost\r\nX-Big: {big_header}\r\n\r\n")
                .into_bytes(),
        ),
    ];
    for (want, raw) in cases {
        for keep_alive_first in [false, true] {
            let mut c = gw.client(&pki);
            if keep_alive_first {
                // A good request first: the error is not the connection's
                // first bytes.
                assert_eq!(c.request("GET", "/v3", &[], b"").status, 200);
            }
            let _ = c.write_all(&raw);
            let r = c.read_response(false).expect("an answer");
            assert_eq!(r.status, want, "{}", String::from_utf8_lossy(&raw[..40]));
            assert_eq!(
                r.header("content-type"),
                Some("application/json"),
                "{want}: {:?}",
                r.headers
            );
            let j = r.json();
            assert_eq!(j["error"]["code"], want, "{j}");
            assert!(
                j["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty())
            );
        }
    }
    assert!(
        gw.logs
            .wait_for(
                "refused a request hyper could not parse",
                Duration::from_secs(5)
            )
            .is_some()
    );
}
