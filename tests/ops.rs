//! Operations with the real binary: check-config, config errors, SIGHUP
//! reload, SIGTERM drain, the admin endpoints.

mod common;

use std::time::{Duration, Instant};

use common::upstream::{http_echo, uwsgi_echo};
use common::{Conf, Gateway, pki, run_fedgate};

const SIGHUP: i32 = 1;
const SIGTERM: i32 = 15;
const SIGSTOP: i32 = 19;
const SIGCONT: i32 = 18;

#[test]
fn check_config_ok_and_problems_with_lines() {
    let pki = pki();
    let up = uwsgi_echo();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        Conf::new(format!("uwsgi://{}", up.addr)).render(&pki),
    )
    .unwrap();
    let (code, out, err) = run_fedgate(&["check-config"], &good);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("configuration OK"), "{out}");

    // Several problems at once, each with file:line.
    let mut conf = Conf::new(format!("uwsgi://{}", common::dead_addr()));
    conf.routes = "[[route]]\nname = \"bad\"\npath = \"^/v3(\"\nauth = \"none\"\n";
    let text = conf.render(&pki).replace(
        &pki.host_key.display().to_string(),
        &pki.user_key.display().to_string(),
    );
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, &text).unwrap();
    let (code, out, err) = run_fedgate(&["check-config"], &bad);
    assert_ne!(code, 0, "{out}{err}");
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let at = |needle: &str| format!("{}:{}:", bad.display(), line_of(needle));
    assert!(
        err.contains(&at("path = \"^/v3(\"")),
        "regex problem at its line: {err}"
    );
    assert!(
        err.contains(&at("private_key")),
        "key mismatch at its line: {err}"
    );
    assert!(
        err.contains(&at("url = ")),
        "unreachable upstream at its line: {err}"
    );

    // A missing certificate file.
    let text = Conf::new(format!("uwsgi://{}", up.addr))
        .render(&pki)
        .replace(
            &pki.host_cert.display().to_string(),
            "/nonexistent/hostcert.pem",
        );
    std::fs::write(&bad, &text).unwrap();
    let (code, _, err) = run_fedgate(&["check-config"], &bad);
    assert_ne!(code, 0);
    let line = text
        .lines()
        .position(|l| l.starts_with("certificate"))
        .unwrap()
        + 1;
    assert!(err.contains(&format!("{}:{line}:", bad.display())), "{err}");
    assert!(err.contains("/nonexistent/hostcert.pem"), "{err}");
}

#[test]
fn broken_config_exits_non_zero_naming_file_and_line() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fedgate.toml");
    let base = Conf::new("uwsgi://127.0.0.1:5001").render(&pki);
    for (broken, needle) in [
        (
            base.replace("[upstream]\n", "[upstream]\nuryl = \"x\"\n"),
            "uryl",
        ),
        (
            base.replace("client_auth = \"optional\"", "client_auth = \"sometimes\""),
            "client_auth",
        ),
        (
            base.replace(
                "[admin]\nlisten = [\"127.0.0.1:0\"]",
                "[admin]\nlisten = [\"127.0.0.1:0\"] junk",
            ),
            "junk",
        ),
        (
            base.replace("url = \"uwsgi://127.0.0.1:5001\"", "url = \"ftp://k:1\""),
            "url =",
        ),
    ] {
        std::fs::write(&path, &broken).unwrap();
        let line = broken.lines().position(|l| l.contains(needle)).unwrap() + 1;
        for cmd in ["run", "check-config"] {
            let (code, out, err) = run_fedgate(&[cmd], &path);
            assert_ne!(code, 0, "{cmd} {needle}: {out}{err}");
            let want = format!("{}:{}", path.display(), line);
            let close = (line.saturating_sub(1)..=line + 1)
                .any(|l| err.contains(&format!("{}:{l}:", path.display())));
            assert!(
                close,
                "{cmd}: `{needle}` should be reported near {want}: {err}"
            );
        }
    }
}

#[test]
fn sighup_swaps_routes_without_dropping_a_keep_alive_connection() {
    let pki = pki();
    let up = uwsgi_echo();
    let mut conf = Conf::new(format!("uwsgi://{}", up.addr));
    conf.routes = "[[route]]\nname = \"v3\"\npath = \"^/v3\"\nauth = \"none\"\n";
    let gw = Gateway::start(&pki, &conf);
    let mut c = gw.client(&pki);
    assert_eq!(c.request("GET", "/v3", &[], b"").status, 200);
    assert_eq!(c.request("GET", "/new", &[], b"").status, 404);

    conf.routes = "[[route]]\nname = \"v3\"\npath = \"^/v3\"\nauth = \"none\"\n\
                   [[route]]\nname = \"new\"\npath = \"^/new\"\nauth = \"none\"\n";
    std::fs::write(&gw.config, conf.render(&pki)).unwrap();
    gw.signal(SIGHUP);
    assert!(
        gw.logs
            .wait_for("configuration reloaded", Duration::from_secs(10))
            .is_some()
    );
    // Same TCP+TLS connection: the client never reconnects on its own.
    let r = c.request("GET", "/new/thing", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(up.record.last().get("PATH_INFO"), Some("/new/thing"));
    assert_eq!(c.request("GET", "/v3", &[], b"").status, 200);
    let m = gw.admin_get("/metrics").text();
    assert!(
        m.contains("fedgate_config_reloads_total{result=\"ok\"} 1"),
        "{m}"
    );
}

#[test]
fn bad_new_config_is_refused_and_the_old_one_kept() {
    let pki = pki();
    let up = uwsgi_echo();
    let conf = Conf::new(format!("uwsgi://{}", up.addr));
    let gw = Gateway::start(&pki, &conf);
    let mut c = gw.client(&pki);
    assert_eq!(c.request("GET", "/v3", &[], b"").status, 200);
    for broken in [
        conf.render(&pki).replace("path = \"^/\"", "path = \"^/(\""),
        conf.render(&pki).replace("[server]", "[sever]"),
        conf.render(&pki)
            .replace(&pki.host_key.display().to_string(), "/nonexistent/key.pem"),
    ] {
        let before = gw.logs.count("reload refused");
        std::fs::write(&gw.config, broken).unwrap();
        gw.signal(SIGHUP);
        let t0 = Instant::now();
        while gw.logs.count("reload refused") == before && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let line = gw
            .logs
            .all()
            .into_iter()
            .rfind(|l| l.contains("reload refused"));
        let line = line.expect("a log line says the reload was refused");
        assert!(
            line.contains("fedgate.toml"),
            "the line names the file: {line}"
        );
        assert_eq!(
            c.request("GET", "/v3", &[], b"").status,
            200,
            "old config still serves"
        );
        assert_eq!(
            gw.get(&pki, "/v3/new-conn").status,
            200,
            "and new connections too"
        );
    }
    let m = gw.admin_get("/metrics").text();
    assert!(
        m.contains("fedgate_config_reloads_total{result=\"failed\"} 3"),
        "{m}"
    );
}

#[test]
fn sigterm_drains_an_in_flight_request() {
    let pki = pki();
    let up = http_echo();
    let mut gw = Gateway::start(&pki, &Conf::new(format!("http://{}", up.addr)));
    let addr = gw.addr;
    let cfg = common::client::config(&pki.ca_file, None, &[b"http/1.1"], None);
    let slow = std::thread::spawn(move || {
        let mut c = common::Client::connect(addr, cfg).unwrap();
        let t0 = Instant::now();
        let r = c.request("GET", "/slow/2000", &[], b"");
        (r, t0.elapsed())
    });
    let t0 = Instant::now();
    while up.record.heads() == 0 && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        up.record.heads(),
        1,
        "the slow request reached the upstream"
    );
    gw.signal(SIGTERM);
    assert!(
        gw.logs
            .wait_for("SIGTERM", Duration::from_secs(5))
            .is_some()
    );
    std::thread::sleep(Duration::from_millis(300));
    // No new connections while draining.
    let refused = common::Client::connect(
        gw.addr,
        common::client::config(&pki.ca_file, None, &[], None),
    )
    .and_then(|mut c| c.try_request("GET", "/v3", &[], b""));
    assert!(refused.is_err(), "a new connection was served during drain");
    let (r, took) = slow.join().unwrap();
    assert_eq!(
        r.status,
        200,
        "the in-flight request completed: {}",
        r.text()
    );
    assert!(took >= Duration::from_millis(1900));
    assert_eq!(
        gw.wait_exit(Duration::from_secs(10)),
        Some(0),
        "clean exit after drain"
    );
}

#[test]
fn admin_health_readiness_and_metrics() {
    let pki = pki();
    let up = uwsgi_echo();
    let gw = Gateway::start(&pki, &Conf::new(format!("uwsgi://{}", up.addr)));
    let r = gw.admin_get("/healthz");
    assert_eq!((r.status, r.text().trim()), (200, "ok"));
    assert_eq!(gw.admin_get("/readyz").status, 200);
    for _ in 0..3 {
        assert_eq!(gw.get(&pki, "/v3").status, 200);
    }
    assert_eq!(gw.get(&pki, "/v3/%FF").status, 400);
    // Two TCP health checks (connect, close without a byte; the second
    // with a reset, as haproxy closes its checks): counted as `closed`,
    // and no "TLS handshake failed" line for them.
    drop(std::net::TcpStream::connect(gw.addr).unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    rt.block_on(async {
        let probe = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        probe.set_zero_linger().unwrap();
        drop(probe);
    });
    let want = "fedgate_tls_handshakes_total{result=\"closed\"} 2";
    let t0 = std::time::Instant::now();
    while !gw.admin_get("/metrics").text().contains(want)
        && t0.elapsed() < std::time::Duration::from_secs(5)
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        gw.logs.count("TLS handshake failed"),
        0,
        "a probe is not a failed handshake: {:#?}",
        gw.logs.all()
    );
    // A failed handshake: a client that does not trust the host certificate.
    let mut bad = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut bad, b"").unwrap();
    let _ = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "--tls-max", "1.2"])
        .arg(format!("https://127.0.0.1:{}/", gw.port()))
        .status();
    let m = gw.admin_get("/metrics");
    assert_eq!(m.status, 200);
    assert!(m.header("content-type").unwrap().contains("openmetrics"));
    let m = m.text();
    assert!(
        m.contains("fedgate_tls_handshakes_total{result=\"closed\"} 2"),
        "{m}"
    );
    for want in [
        "fedgate_requests_total{route=\"keystone\",status=\"200\"} 3",
        "fedgate_requests_total{route=\"-\",status=\"400\"} 1",
        "fedgate_request_duration_seconds_bucket{",
        "fedgate_request_duration_seconds_count{route=\"keystone\"} 3",
        "fedgate_tls_handshakes_total{result=\"ok\"} 4",
        "fedgate_tls_handshakes_total{result=\"failed\"} 1",
    ] {
        assert!(m.contains(want), "metrics lack `{want}`:\n{m}");
    }

    // Upstream down: not ready, and the error is counted.
    let gw = Gateway::start(&pki, &Conf::new(format!("uwsgi://{}", common::dead_addr())));
    let r = gw.admin_get("/readyz");
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(
        gw.admin_get("/healthz").status,
        200,
        "live even when not ready"
    );
    assert_eq!(gw.get(&pki, "/v3").status, 502);
    let m = gw.admin_get("/metrics").text();
    assert!(
        m.contains("fedgate_upstream_errors_total{kind=\"connect\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("fedgate_requests_total{route=\"keystone\",status=\"502\"} 1"),
        "{m}"
    );
}

/// `server.header_timeout_secs` bounds how long a request head may take:
/// a client that sends half a head and stops is disconnected after it, not
/// after hyper's own 30 s.
#[test]
fn a_slow_request_head_is_cut_off_after_header_timeout_secs() {
    let pki = pki();
    let up = uwsgi_echo();
    let gw = started_with_header_timeout(&pki, &up, 1);
    let cfg = common::client::config(&pki.ca_file, None, &[b"http/1.1"], None);

    // A complete request is answered as usual.
    let mut ok = common::Client::connect(gw.addr, cfg.clone()).unwrap();
    assert_eq!(ok.request("GET", "/v3", &[], b"").status, 200);

    let mut c = common::Client::connect(gw.addr, cfg).unwrap();
    c.write_all(b"GET /v3 HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .unwrap();
    let t0 = Instant::now();
    let r = c.read_response(false);
    let waited = t0.elapsed();
    assert!(r.is_err(), "no answer to half a request head: {r:?}");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(10),
        "the connection closed after {waited:?}, not after about 1 s"
    );
}

/// issue 10 item 8: `server.max_connections` changed by a reload applies
/// to the next connection (it used to size a semaphore once, at start).
#[test]
fn max_connections_changed_by_reload_applies() {
    let pki = pki();
    let up = uwsgi_echo();
    let mut conf = Conf::new(format!("uwsgi://{}", up.addr));
    conf.server = "max_connections = 2\n";
    let gw = Gateway::start(&pki, &conf);
    let cfg = common::client::config(&pki.ca_file, None, &[b"http/1.1"], None);
    let connect = || {
        common::Client::connect(gw.addr, cfg.clone())
            .and_then(|mut c| c.try_request("GET", "/v3", &[], b"").map(|r| (c, r)))
    };
    let (c1, r) = connect().unwrap();
    assert_eq!(r.status, 200);
    let (c2, r) = connect().unwrap();
    assert_eq!(r.status, 200);
    assert!(connect().is_err(), "a third connection over the limit of 2");

    conf.server = "max_connections = 3\n";
    std::fs::write(&gw.config, conf.render(&pki)).unwrap();
    gw.signal(SIGHUP);
    assert!(
        gw.logs
            .wait_for("configuration reloaded", Duration::from_secs(10))
            .is_some()
    );
    let (c3, r) = connect().expect("the reloaded limit of 3 admits a third connection");
    assert_eq!(r.status, 200);
    assert!(
        connect().is_err(),
        "a fourth connection over the limit of 3"
    );

    // Lowered below what is open: nothing is closed, nothing new admitted
    // until enough connections have ended.
    conf.server = "max_connections = 1\n";
    std::fs::write(&gw.config, conf.render(&pki)).unwrap();
    gw.signal(SIGHUP);
    let t0 = Instant::now();
    while gw.logs.count("configuration reloaded") < 2 && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut c1 = c1;
    assert_eq!(c1.request("GET", "/v3", &[], b"").status, 200);
    drop((c2, c3));
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        connect().is_err(),
        "c1 is still open: the limit of 1 is reached"
    );
    drop(c1);
    let t0 = Instant::now();
    let mut last = connect();
    while last.is_err() && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
        last = connect();
    }
    assert_eq!(last.expect("admitted once the others closed").1.status, 200);
    let m = gw.admin_get("/metrics").text();
    assert!(
        m.contains("fedgate_connections_refused_total{kind=\"max_connections\"}"),
        "{m}"
    );
}

/// HTTP/2 frames, written by hand so that a test controls every byte and
/// never answers a PING.
mod h2raw {
    pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    pub const SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];
    pub const PING: u8 = 6;
    pub const GOAWAY: u8 = 7;

    /// HEADERS (END_STREAM | END_HEADERS) for `GET https://localhost<path>`
    /// on `stream`: HPACK indexed :method GET and :scheme https, literal
    /// :path and :authority without indexing or Huffman (RFC 7541 §6).
    pub fn get(stream: u32, path: &str) -> Vec<u8> {
        let mut block = vec![0x82, 0x87];
        for (index, value) in [(4u8, path), (1, "localhost")] {
            block.push(index);
            block.push(value.len() as u8);
            block.extend_from_slice(value.as_bytes());
        }
        let mut f = (block.len() as u32).to_be_bytes()[1..].to_vec();
        f.extend_from_slice(&[1, 0x5]);
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(&block);
        f
    }

    /// Types and flags of the complete frames in `b`.
    pub fn frames(mut b: &[u8]) -> Vec<(u8, u8)> {
        let mut out = Vec::new();
        while b.len() >= 9 {
            let len = u32::from_be_bytes([0, b[0], b[1], b[2]]) as usize;
            out.push((b[3], b[4]));
            if b.len() < 9 + len {
                break;
            }
            b = &b[9 + len..];
        }
        out
    }
}

/// A gateway in front of `up` with `server.header_timeout_secs = secs`.
fn started_with_header_timeout(
    pki: &common::Pki,
    up: &common::upstream::Upstream,
    secs: u64,
) -> Gateway {
    let mut conf = Conf::new(format!("uwsgi://{}", up.addr));
    let server = format!("header_timeout_secs = {secs}\n");
    conf.server = &server;
    Gateway::start(pki, &conf)
}

/// issue 10 item 1: a TLS connection that negotiates HTTP/2 and sends
/// nothing, or only the preface, and one that negotiates no ALPN protocol
/// and sends nothing, are closed after header_timeout_secs, as an idle
/// HTTP/1.1 connection is.
#[test]
fn silent_http2_and_no_alpn_connections_are_closed() {
    let pki = pki();
    let up = uwsgi_echo();
    let gw = started_with_header_timeout(&pki, &up, 1);
    let connect = |alpn: &[&[u8]]| {
        common::Client::connect(
            gw.addr,
            common::client::config(&pki.ca_file, None, alpn, None),
        )
        .unwrap()
    };
    for (what, alpn, first) in [
        ("h2, no bytes", &[&b"h2"[..]][..], &b""[..]),
        ("no ALPN, no bytes", &[][..], &b""[..]),
        ("no ALPN, half a preface", &[][..], &h2raw::PREFACE[..10]),
        ("http/1.1, no bytes", &[&b"http/1.1"[..]][..], &b""[..]),
    ] {
        let mut c = connect(alpn);
        if !first.is_empty() {
            c.write_all(first).unwrap();
        }
        let t0 = Instant::now();
        let (_, closed) = c.read_until_close(Duration::from_secs(8));
        assert!(closed, "{what}: still open after 8 s");
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(800) && took < Duration::from_secs(5),
            "{what}: closed after {took:?}"
        );
    }
    // HTTP/2 with a finished request and then nothing: GOAWAY, then closed.
    let mut c = connect(&[b"h2"]);
    c.write_all(h2raw::PREFACE).unwrap();
    c.write_all(h2raw::SETTINGS).unwrap();
    c.write_all(&h2raw::get(1, "/v3")).unwrap();
    let t0 = Instant::now();
    let (bytes, closed) = c.read_until_close(Duration::from_secs(8));
    assert!(closed, "idle h2 connection still open after 8 s");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    let frames = h2raw::frames(&bytes);
    assert!(
        frames.iter().any(|&(t, _)| t == h2raw::GOAWAY),
        "a GOAWAY before closing: {frames:?}"
    );
    assert_eq!(up.record.heads(), 1, "the request itself was served");
}

/// issue 10 item 1: an HTTP/2 client with a request open that stops
/// reading (and so never answers PING) is closed after a PING goes
/// unanswered for header_timeout_secs, not held until the response.
#[test]
fn an_unanswered_http2_ping_closes_the_connection() {
    let pki = pki();
    let up = uwsgi_echo();
    let gw = started_with_header_timeout(&pki, &up, 1);
    let mut c = common::Client::connect(
        gw.addr,
        common::client::config(&pki.ca_file, None, &[b"h2"], None),
    )
    .unwrap();
    c.write_all(h2raw::PREFACE).unwrap();
    c.write_all(h2raw::SETTINGS).unwrap();
    c.write_all(&h2raw::get(1, "/slow/8000")).unwrap();
    let t0 = Instant::now();
    let (bytes, closed) = c.read_until_close(Duration::from_secs(12));
    let took = t0.elapsed();
    assert!(closed, "still open after 12 s");
    assert!(
        took < Duration::from_secs(6),
        "closed after {took:?}, not by the PING"
    );
    let frames = h2raw::frames(&bytes);
    assert!(
        frames
            .iter()
            .any(|&(t, flags)| t == h2raw::PING && flags & 1 == 0),
        "a PING was sent: {frames:?}"
    );
    assert!(
        !frames.iter().any(|&(t, _)| t == 1),
        "no response HEADERS: the request was still open: {frames:?}"
    );
}

/// issue 10 item 1: `server.max_connections_per_ip` — one client address
/// cannot take every slot; a trusted proxy is exempt.
#[test]
fn one_client_address_cannot_take_every_connection() {
    let pki = pki();
    let up = uwsgi_echo();
    for trusted in [false, true] {
        let mut conf = Conf::new(format!("uwsgi://{}", up.addr));
        conf.server = if trusted {
            "max_connections_per_ip = 2\ntrusted_proxies = [\"127.0.0.0/8\"]\n"
        } else {
            "max_connections_per_ip = 2\n"
        };
        let gw = Gateway::start(&pki, &conf);
        let cfg = common::client::config(&pki.ca_file, None, &[b"http/1.1"], None);
        let connect = || {
            common::Client::connect(gw.addr, cfg.clone())
                .and_then(|mut c| c.try_request("GET", "/v3", &[], b"").map(|r| (c, r)))
        };
        let a = connect().unwrap();
        let b = connect().unwrap();
        assert_eq!((a.1.status, b.1.status), (200, 200));
        let third = connect();
        if trusted {
            assert_eq!(third.unwrap().1.status, 200, "trusted proxies are exempt");
            continue;
        }
        assert!(third.is_err(), "a third connection from one address");
        assert!(
            gw.logs
                .wait_for("max_connections_per_ip", Duration::from_secs(5))
                .is_some()
        );
        let m = gw.admin_get("/metrics").text();
        assert!(
            m.contains("fedgate_connections_refused_total{kind=\"max_connections_per_ip\"} 1"),
            "{m}"
        );
        drop(a);
        let t0 = Instant::now();
        let mut again = connect();
        while again.is_err() && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(100));
            again = connect();
        }
        assert_eq!(
            again.unwrap().1.status,
            200,
            "a slot freed by a closed connection"
        );
    }
}

/// issue 10 item 13: configurations that cannot work are refused by
/// check-config (and by run), each problem at its file:line.
#[test]
fn check_config_refuses_configurations_that_cannot_work() {
    let pki = pki();
    let up = uwsgi_echo();
    let dir = tempfile::tempdir().unwrap();
    let empty_ca_dir = dir.path().join("no-cas");
    std::fs::create_dir(&empty_ca_dir).unwrap();
    let x509_route = "[[route]]\nname = \"voms\"\npath = \"^/v3/x509$\"\nauth = \"x509\"\n\
                      [[route]]\npath = \"^/\"\nauth = \"none\"\n";
    let base = Conf::new(format!("uwsgi://{}", up.addr));
    let cases: Vec<(String, &str, &str)> = vec![
        (
            Conf {
                server: "max_connections = 0\n",
                ..Conf::new(base.upstream.clone())
            }
            .render(&pki),
            "max_connections = 0",
            "max_connections",
        ),
        (
            Conf {
                server: "max_connections_per_ip = 0\n",
                ..Conf::new(base.upstream.clone())
            }
            .render(&pki),
            "max_connections_per_ip = 0",
            "max_connections_per_ip",
        ),
        (
            Conf {
                server: "handshake_timeout_secs = 0\n",
                ..Conf::new(base.upstream.clone())
            }
            .render(&pki),
            "handshake_timeout_secs = 0",
            "handshake_timeout_secs",
        ),
        (
            Conf {
                server: "header_timeout_secs = 0\n",
                ..Conf::new(base.upstream.clone())
            }
            .render(&pki),
            "header_timeout_secs = 0",
            "header_timeout_secs",
        ),
        (
            Conf {
                routes: x509_route,
                ..Conf::new(base.upstream.clone())
            }
            .render(&pki)
            .replace(
                &pki.ca_dir.display().to_string(),
                &empty_ca_dir.display().to_string(),
            ),
            "ca_dir = ",
            "no usable CA certificate",
        ),
    ];
    let path = dir.path().join("fedgate.toml");
    for (text, line_needle, message) in cases {
        std::fs::write(&path, &text).unwrap();
        let line = text.lines().position(|l| l.contains(line_needle)).unwrap() + 1;
        let at = format!("{}:{line}:", path.display());
        for cmd in ["check-config", "run"] {
            let (code, out, err) = run_fedgate(&[cmd], &path);
            assert_ne!(code, 0, "{cmd} `{line_needle}`: {out}{err}");
            let found = err.lines().any(|l| l.contains(&at) && l.contains(message));
            assert!(found, "{cmd} `{line_needle}` at {at}: {err}");
        }
    }
    // Without an x509 route, an empty CA directory is no problem.
    let text = Conf::new(base.upstream.clone()).render(&pki).replace(
        &pki.ca_dir.display().to_string(),
        &empty_ca_dir.display().to_string(),
    );
    std::fs::write(&path, &text).unwrap();
    let (code, out, err) = run_fedgate(&["check-config"], &path);
    assert_eq!(code, 0, "{out}{err}");
}

/// issue 10 item 1 ("every connection state has a timeout"): a client
/// that stops sending its request body half-way holds neither its
/// connection nor a Keystone worker: 408 after header_timeout_secs of
/// silence, on both upstream kinds and both HTTP versions' framing.
#[test]
fn a_stalled_request_body_gets_408() {
    let pki = pki();
    for kind in ["uwsgi", "http"] {
        let up = if kind == "uwsgi" {
            uwsgi_echo()
        } else {
            http_echo()
        };
        let mut conf = Conf::new(format!("{kind}://{}", up.addr));
        conf.server = "header_timeout_secs = 1\n";
        let gw = Gateway::start(&pki, &conf);
        for (framing, head, part) in [
            ("length", "Content-Length: 10\r\n", &b"12345"[..]),
            (
                "chunked",
                "Transfer-Encoding: chunked\r\n",
                b"5\r\n12345\r\n",
            ),
        ] {
            let mut c = gw.client(&pki);
            let raw = format!(
                "POST /v3/x HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n{head}\r\n"
            );
            c.write_all(raw.as_bytes()).unwrap();
            c.write_all(part).unwrap();
            let t0 = Instant::now();
            let r = c.read_response(false).expect("an answer");
            let took = t0.elapsed();
            assert_eq!(r.status, 408, "{kind} {framing}: {}", r.text());
            assert_eq!(r.json()["error"]["code"], 408);
            assert!(
                took < Duration::from_secs(5),
                "{kind} {framing}: after {took:?}"
            );
        }
    }
}

/// issue 14 item 3: check-config keeps configuration errors (exit 1)
/// apart from environment probes. An unreachable upstream is a warning
/// (exit 0, so a config management run or ExecReload can check while
/// Keystone restarts), a failure with `--strict` (exit 2), and not even
/// tried with `--offline`.
#[test]
fn check_config_separates_probes_from_configuration_errors() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let dead = common::dead_addr();
    let text = Conf::new(format!("uwsgi://{dead}")).render(&pki);
    let path = dir.path().join("fedgate.toml");
    std::fs::write(&path, &text).unwrap();
    let url_line = text.lines().position(|l| l.starts_with("url = ")).unwrap() + 1;
    let at = format!("{}:{url_line}:", path.display());

    let (code, out, err) = run_fedgate(&["check-config"], &path);
    assert_eq!(code, 0, "a probe failure alone is a warning: {out}{err}");
    assert!(
        err.lines()
            .any(|l| l.contains(&at) && l.contains("warning")),
        "the unreachable upstream is a warning at its line: {err}"
    );
    assert!(out.contains("configuration OK"), "{out}");

    let (code, out, err) = run_fedgate(&["check-config", "--strict"], &path);
    assert_eq!(code, 2, "--strict fails on a probe: {out}{err}");
    assert!(err.contains(&at), "{err}");

    let (code, out, err) = run_fedgate(&["check-config", "--offline"], &path);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        !err.contains(&at) && !out.contains("upstream"),
        "--offline probes nothing: {out}{err}"
    );
    let (code, out, err) = run_fedgate(&["check-config", "--offline", "--strict"], &path);
    assert_eq!(code, 0, "nothing probed, nothing failed: {out}{err}");

    // A configuration error is exit 1 whatever the flags, also before
    // parsing finishes (an unknown key).
    let bad = text.replace(
        "[[route]]\nname = \"keystone\"\npath = \"^/\"",
        "[[route]]\nname = \"keystone\"\npath = \"^/(\"",
    );
    std::fs::write(&path, &bad).unwrap();
    for flags in [&["check-config"][..], &["check-config", "--offline"]] {
        let (code, out, err) = run_fedgate(flags, &path);
        assert_eq!(code, 1, "{flags:?}: {out}{err}");
    }
    std::fs::write(
        &path,
        text.replace("[upstream]\n", "[upstream]\nuryl = 1\n"),
    )
    .unwrap();
    let (code, out, err) = run_fedgate(&["check-config", "--offline"], &path);
    assert_eq!(code, 1, "{out}{err}");
}

/// issue 14 item 3: a single address is accepted wherever a list of
/// listen addresses is expected (`listen = "0.0.0.0:443"`), with the same
/// meaning as a one-element list.
#[test]
fn a_single_listen_address_needs_no_list() {
    let pki = pki();
    let up = uwsgi_echo();
    let text = Conf::new(format!("uwsgi://{}", up.addr))
        .render(&pki)
        .replace(
            "[server]\nlisten = [\"127.0.0.1:0\"]",
            "[server]\nlisten = \"127.0.0.1:0\"",
        )
        .replace(
            "[admin]\nlisten = [\"127.0.0.1:0\"]",
            "[admin]\nlisten = \"127.0.0.1:0\"",
        );
    assert!(
        text.contains("listen = \"127.0.0.1:0\"\n\n[admin]"),
        "{text}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fedgate.toml");
    std::fs::write(&path, &text).unwrap();
    let (code, out, err) = run_fedgate(&["check-config", "--offline"], &path);
    assert_eq!(code, 0, "{out}{err}");
    let cfg = fedgate::Config::load(&path).unwrap();
    assert_eq!(cfg.server.listen_addrs().len(), 1);
    assert_eq!(cfg.admin.listen_addrs().len(), 1);
    // A wrong type is still an error at its line.
    std::fs::write(
        &path,
        text.replace(
            "listen = \"127.0.0.1:0\"\n\n[admin]",
            "listen = 5\n\n[admin]",
        ),
    )
    .unwrap();
    let (code, _, err) = run_fedgate(&["check-config", "--offline"], &path);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("{}:2:", path.display())) && err.contains("a string or a list"),
        "{err}"
    );
}

/// issue 16: `server.worker_threads` is the number of serving threads
/// (one per core when unset), each with its own event loop; it is refused at file:line when 0, and a reload that changes it
/// says the running threads are kept.
#[test]
fn worker_threads_sizes_the_runtime() {
    let pki = pki();
    let up = uwsgi_echo();
    let workers = |gw: &Gateway| {
        let line = gw
            .logs
            .wait_for("fedgate serving", Duration::from_secs(10))
            .expect("the serving line");
        let at = line.find("workers=").expect("workers= in the serving line") + 8;
        let said = line[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse::<usize>()
            .unwrap();
        // The threads themselves, by name, as `ps -L` shows them.
        let running = serving_threads_cpu(gw).len();
        assert_eq!(
            running, said,
            "serving threads running against the serving line"
        );
        said
    };
    let cores = std::thread::available_parallelism().unwrap().get();
    let gw = Gateway::start(&pki, &Conf::new(format!("uwsgi://{}", up.addr)));
    assert_eq!(workers(&gw), cores, "unset: one worker per core");
    drop(gw);

    let mut conf = Conf::new(format!("uwsgi://{}", up.addr));
    conf.server = "worker_threads = 3\n";
    let gw = Gateway::start(&pki, &conf);
    assert_eq!(workers(&gw), 3);
    conf.server = "worker_threads = 1\n";
    std::fs::write(&gw.config, conf.render(&pki)).unwrap();
    gw.signal(SIGHUP);
    assert!(
        gw.logs
            .wait_for("worker_threads changed", Duration::from_secs(10))
            .is_some(),
        "a reload says the running threads are kept"
    );
    drop(gw);

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("fedgate.toml");
    conf.server = "worker_threads = 0\n";
    let text = conf.render(&pki);
    std::fs::write(&bad, &text).unwrap();
    let (code, out, err) = run_fedgate(&["check-config", "--offline"], &bad);
    assert_eq!(code, 1, "{out}{err}");
    let line = text
        .lines()
        .position(|l| l.contains("worker_threads = 0"))
        .unwrap()
        + 1;
    assert!(
        err.contains(&format!("{}:{line}:", bad.display()))
            && err.contains("worker_threads = 0 is not between 1 and 1024"),
        "{err}"
    );
}

/// issue 16: the serving threads share a burst of connections. All of
/// them wait on the same listening socket and the kernel wakes them all;
/// without balancing, the one that is already awake took every connection
/// of a burst and the other cores stayed idle.
#[test]
fn serving_threads_share_a_burst_of_connections() {
    let pki = pki();
    let up = uwsgi_echo();
    let mut conf = Conf::new(format!("uwsgi://{}", up.addr));
    conf.server = "worker_threads = 2\n";
    let gw = Gateway::start(&pki, &conf);
    let before = serving_threads_cpu(&gw);
    assert_eq!(before.len(), 2);
    // A burst: eight connections queued while the gateway is stopped, so
    // that both threads wake to all of them at once.
    let clients = 8;
    gw.signal(SIGSTOP);
    let socks: Vec<_> = (0..clients)
        .map(|_| std::net::TcpStream::connect(gw.addr).unwrap())
        .collect();
    gw.signal(SIGCONT);
    let cfg = common::client::config(&pki.ca_file, None, &[b"http/1.1"], None);
    std::thread::scope(|s| {
        for tcp in socks {
            let cfg = cfg.clone();
            s.spawn(move || {
                let mut c = common::client::Client::over(tcp, cfg).unwrap();
                // Enough requests for a clear CPU figure per thread (150
                // became too few to judge once a request got cheaper).
                for _ in 0..400 {
                    assert_eq!(c.request("GET", "/v3", &[], b"").status, 200);
                }
            });
        }
    });
    let after = serving_threads_cpu(&gw);
    let used: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    let total: u64 = used.iter().sum();
    assert!(total >= 10, "too little CPU to judge: {used:?}");
    for u in &used {
        assert!(
            *u * 5 >= total,
            "every serving thread takes a share of the connections: CPU ticks {used:?}"
        );
    }
}

/// CPU ticks (utime + stime) of each of the gateway's `fedgate-serve-N`
/// threads, from /proc.
fn serving_threads_cpu(gw: &Gateway) -> Vec<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{}/task", gw.child.id())).unwrap();
    let mut out = Vec::new();
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if !comm.starts_with("fedgate-serve-") {
            continue;
        }
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap();
        // utime and stime: fields 14 and 15, counted after the `(comm)`.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<u64> = rest
            .split(' ')
            .skip(11)
            .take(2)
            .map(|x| x.parse().unwrap())
            .collect();
        out.push(f[0] + f[1]);
    }
    out
}

/// The value of an unlabelled gauge in the admin `/metrics` text.
fn gauge(gw: &Gateway, name: &str) -> i64 {
    let m = gw.admin_get("/metrics").text();
    m.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {m}"))
}

/// issue 16 goal 4: an HTTP/1.1 keep-alive connection idle for a second is
/// parked (hyper's buffers given back) and serves its next request as
/// before, including one whose head was half sent before a pause; a parked
/// connection still closes at the idle deadline counted from its last
/// response, not from when it was parked or woken.
#[test]
fn idle_http11_connections_are_parked_and_served_again() {
    let pki = pki();
    let up = uwsgi_echo();
    let gw = started_with_header_timeout(&pki, &up, 4);
    let cfg = common::client::config(&pki.ca_file, None, &[b"http/1.1"], None);
    let parked = || gauge(&gw, "fedgate_parked_connections");
    let mut c = common::Client::connect(gw.addr, cfg).unwrap();
    assert_eq!(c.request("GET", "/v3", &[], b"").status, 200);
    assert_eq!(parked(), 0, "busy a moment ago");
    std::thread::sleep(Duration::from_millis(1600));
    assert_eq!(parked(), 1, "idle for over a second: parked");
    assert_eq!(
        c.request("GET", "/v3/a", &[], b"").status,
        200,
        "the same connection serves again"
    );
    assert_eq!(parked(), 0);

    // Half a head, a pause past the park delay, then the rest.
    std::thread::sleep(Duration::from_millis(1600));
    assert_eq!(parked(), 1);
    c.write_all(b"GET /v3/b HTTP/1.1\r\nHost: localhost\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    c.write_all(b"X-After-Pause: yes\r\n\r\n").unwrap();
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 200);
    let seen = up.record.last();
    assert_eq!(seen.get("PATH_INFO"), Some("/v3/b"));
    assert_eq!(
        seen.get("HTTP_X_AFTER_PAUSE"),
        Some("yes"),
        "nothing was lost"
    );
    assert_eq!(up.record.heads(), 3);

    // Idle again: parked after a second, closed at 4 s.
    let t0 = Instant::now();
    let (_, closed) = c.read_until_close(Duration::from_secs(10));
    let took = t0.elapsed();
    assert!(closed, "still open after 10 s");
    assert!(
        took >= Duration::from_millis(3500) && took < Duration::from_millis(6000),
        "closed after {took:?}, not at header_timeout_secs = 4"
    );
    assert_eq!(parked(), 0);

    // A head trickled in a byte at a time across parks is still cut off at
    // the idle deadline: parking must not restart the clock.
    let cfg = common::client::config(&pki.ca_file, None, &[b"http/1.1"], None);
    let mut c = common::Client::connect(gw.addr, cfg).unwrap();
    assert_eq!(c.request("GET", "/v3", &[], b"").status, 200);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_millis(1200));
    let mut sent = 0;
    for b in b"GET /v3 HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
        if c.write_all(&[*b]).is_err() {
            break;
        }
        sent += 1;
        std::thread::sleep(Duration::from_millis(300));
        if t0.elapsed() > Duration::from_secs(9) {
            break;
        }
    }
    let (_, closed) = c.read_until_close(Duration::from_secs(10));
    assert!(closed);
    let took = t0.elapsed();
    assert!(
        took < Duration::from_millis(6000),
        "a trickled head held the connection for {took:?} ({sent} bytes sent)"
    );
    assert_eq!(up.record.heads(), 4, "the trickled head was never served");
}
