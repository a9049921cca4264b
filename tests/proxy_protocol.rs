//! The PROXY protocol on the TLS listeners, with the real haproxy (Debian
//! package `haproxy`, run as our own process with `-db`) in TCP mode with
//! TLS passthrough in front of the real `fedgate` binary. Loopback
//! addresses keep the parties apart: haproxy connects to fedgate from
//! 127.0.0.2 (the trusted proxy), clients come from 127.0.0.3 and
//! 127.0.0.5, an untrusted peer from 127.0.0.4. Ports 19100-19109.
//! Without haproxy the tests print SKIPPED.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::upstream::{Upstream, uwsgi_echo};
use common::{Conf, Gateway, Pki, pki};

const SIGHUP: i32 = 1;
const HAPROXY: &str = "127.0.0.2";
const CLIENT: &str = "127.0.0.3";
const UNTRUSTED: &str = "127.0.0.4";
const OTHER_CLIENT: &str = "127.0.0.5";
const X509: &str = fedgate::demo::X509_PATH;

fn have_haproxy() -> bool {
    let ok = Command::new("haproxy")
        .arg("-v")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIPPED: haproxy is not installed (scripts/test.sh installs it)");
    }
    ok
}

/// haproxy in the foreground, killed on drop.
struct Haproxy {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two frontends on 127.0.0.2: `v2_port` forwards with `send-proxy-v2`
/// (and health-checks fedgate with a PROXY v2 LOCAL header every 300 ms),
/// `v1_port` with `send-proxy`. TCP mode: TLS passes through untouched.
fn haproxy(fedgate: SocketAddr, v2_port: u16, v1_port: u16) -> Haproxy {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global\n  log stderr format raw local0 info\n\
             defaults\n  mode tcp\n  log global\n  option tcplog\n\
               timeout connect 2s\n  timeout client 20s\n  timeout server 20s\n\
             frontend fe_v2\n  bind {HAPROXY}:{v2_port}\n  default_backend be_v2\n\
             frontend fe_v1\n  bind {HAPROXY}:{v1_port}\n  default_backend be_v1\n\
             backend be_v2\n  source {HAPROXY}\n\
               server fedgate {fedgate} send-proxy-v2 check check-send-proxy inter 300ms\n\
             backend be_v1\n  source {HAPROXY}\n  server fedgate {fedgate} send-proxy\n"
        ),
    )
    .unwrap();
    let check = Command::new("haproxy")
        .args(["-c", "-f"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "haproxy -c: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let child = Command::new("haproxy")
        .args(["-db", "-f"])
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn haproxy");
    for port in [v2_port, v1_port] {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect((HAPROXY, port)).is_err() {
            assert!(Instant::now() < deadline, "haproxy not listening on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Haproxy { child, _dir: dir }
}

/// A TCP connection from the loopback address `src`.
fn connect_from(src: &str, dst: SocketAddr) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let s = rt.block_on(async {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind(format!("{src}:0").parse().unwrap()).unwrap();
        s.connect(dst).await.unwrap().into_std().unwrap()
    });
    s.set_nonblocking(false).unwrap();
    s
}

/// Whether the peer closed `s` within `limit` without sending a byte.
fn closed_silently(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

/// Waits until `needle` has been logged `n` times.
fn wait_count(gw: &Gateway, needle: &str, n: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(5);
    while gw.logs.count(needle) < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    gw.logs.count(needle)
}

/// curl from `src` to `https://localhost:{port}{path}` with the demo user's
/// certificate; `extra` adds options. Returns (exit code, body).
fn curl(pki: &Pki, src: &str, to: SocketAddr, path: &str, extra: &[&str]) -> (i32, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--interface", src])
        .arg("--cacert")
        .arg(&pki.ca_file)
        .arg("--cert")
        .arg(&pki.user_cert)
        .arg("--key")
        .arg(&pki.user_key)
        .args(["--resolve", &format!("localhost:{}:{}", to.port(), to.ip())])
        .args(extra)
        .arg(format!("https://localhost:{}{path}", to.port()))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn server(trusted: &str, proxy_protocol: bool, extra: &str) -> String {
    format!(
        "trusted_proxies = [{trusted}]\nproxy_protocol = {proxy_protocol}\n\
         handshake_timeout_secs = 2\n{extra}"
    )
}

const ROUTES: &str = "[[route]]\nname = \"x509\"\npath = \"^/v3/OS-FEDERATION/identity_providers/demo/protocols/x509/auth$\"\nauth = \"x509\"\n\
                      [[route]]\nname = \"keystone\"\npath = \"^/\"\nauth = \"none\"\n";

fn gateway(pki: &Pki, up: &Upstream, server: &str) -> Gateway {
    let mut conf = Conf::new(format!("uwsgi://{}", up.addr));
    conf.server = server;
    conf.routes = ROUTES;
    Gateway::start(pki, &conf)
}

fn rewrite(gw: &Gateway, pki: &Pki, up: &Upstream, server: &str) {
    let before = gw.logs.count("configuration reloaded");
    let mut conf = Conf::new(format!("uwsgi://{}", up.addr));
    conf.server = server;
    conf.routes = ROUTES;
    std::fs::write(&gw.config, conf.render(pki)).unwrap();
    gw.signal(SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(15);
    while gw.logs.count("configuration reloaded") == before {
        assert!(Instant::now() < deadline, "no reload: {:#?}", gw.logs.all());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Through haproxy with `send-proxy-v2` and with `send-proxy`, the client
/// certificate reaches fedgate (the x509 route's gridsite values) and
/// Keystone sees the client's own address, not haproxy's, in REMOTE_ADDR
/// and X-Forwarded-For; haproxy's v2 health checks (LOCAL) are accepted.
#[test]
fn through_haproxy_the_client_address_and_certificate_arrive() {
    if !have_haproxy() {
        return;
    }
    let pki = pki();
    let up = uwsgi_echo();
    let gw = gateway(&pki, &up, &server(&format!("\"{HAPROXY}\""), true, ""));
    let _hap = haproxy(gw.addr, 19100, 19101);
    for port in [19100, 19101] {
        let to: SocketAddr = format!("{HAPROXY}:{port}").parse().unwrap();
        let (code, out) = curl(&pki, CLIENT, to, X509, &[]);
        assert_eq!(code, 0, "port {port}: {out}");
        let seen = up.record.last();
        assert_eq!(seen.get("REMOTE_ADDR"), Some(CLIENT), "port {port}");
        assert_eq!(
            seen.get("HTTP_X_FORWARDED_FOR"),
            Some(CLIENT),
            "port {port}"
        );
        assert!(
            seen.get("GRST_CONN_AURI_0")
                .is_some_and(|v| v.starts_with("dn:/")),
            "port {port}: the client certificate did not reach fedgate: {:?}",
            seen.vars
        );
        let port_seen: u16 = seen.get("REMOTE_PORT").unwrap().parse().unwrap();
        assert_ne!(port_seen, 0);
    }
    // haproxy's health checks carry a LOCAL header: they are the balancer
    // itself and are not refused as garbled. Each one closes before a TLS
    // byte: counted as `closed`, not logged as a failed handshake (every
    // 300 ms here, every few seconds in production, per node).
    let closed = |m: &str| {
        m.lines()
            .find_map(|l| l.strip_prefix("fedgate_tls_handshakes_total{result=\"closed\"} "))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while closed(&gw.admin_get("/metrics").text()) < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        closed(&gw.admin_get("/metrics").text()) >= 2,
        "no health check seen: {}",
        gw.admin_get("/metrics").text()
    );
    assert_eq!(
        gw.logs.count("TLS handshake failed"),
        0,
        "{:#?}",
        gw.logs.all()
    );
    assert_eq!(
        gw.logs.count("PROXY header refused"),
        0,
        "{:#?}",
        gw.logs.all()
    );
}

/// The per-IP limit applies to the client behind haproxy: one connection
/// held open by 127.0.0.3 through haproxy stops a second from 127.0.0.3
/// while 127.0.0.5, through the same haproxy, is served.
#[test]
fn the_per_ip_limit_counts_the_real_client() {
    if !have_haproxy() {
        return;
    }
    let pki = pki();
    let up = uwsgi_echo();
    let gw = gateway(
        &pki,
        &up,
        &server(
            &format!("\"{HAPROXY}\""),
            true,
            "max_connections_per_ip = 1\nheader_timeout_secs = 20\n",
        ),
    );
    let _hap = haproxy(gw.addr, 19102, 19103);
    let to: SocketAddr = format!("{HAPROXY}:19102").parse().unwrap();
    // Open, with the PROXY header sent by haproxy, waiting in the handshake.
    let _held = connect_from(CLIENT, to);
    std::thread::sleep(Duration::from_millis(500));
    let (code, out) = curl(&pki, CLIENT, to, "/v3", &[]);
    assert_ne!(code, 0, "a second connection from the same client: {out}");
    // The refusal names the client. Other refusals may come first: the
    // readiness probes in `haproxy()` connect from 127.0.0.1, and haproxy
    // passes them on with that address, so two of them at once exceed the
    // limit for 127.0.0.1 (this test once read that line instead).
    let deadline = Instant::now() + Duration::from_secs(5);
    let refused_client = || {
        gw.logs.all().iter().any(|l| {
            l.contains("connection refused after its PROXY header")
                && l.contains(&format!("peer={CLIENT}:"))
        })
    };
    while !refused_client() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(refused_client(), "{:#?}", gw.logs.all());
    let (code, out) = curl(&pki, OTHER_CLIENT, to, "/v3", &[]);
    assert_eq!(code, 0, "another client through the same haproxy: {out}");
    assert_eq!(up.record.last().get("REMOTE_ADDR"), Some(OTHER_CLIENT));
}

/// Only `trusted_proxies` may send a PROXY header: any other peer is closed
/// before the TLS handshake, with one log line, whatever it sends; a
/// trusted peer without a header, with a garbled one or silent past the
/// handshake timeout is closed too.
#[test]
fn untrusted_peers_and_bad_headers_are_closed() {
    if !have_haproxy() {
        return;
    }
    let pki = pki();
    let up = uwsgi_echo();
    let gw = gateway(&pki, &up, &server(&format!("\"{HAPROXY}\""), true, ""));
    // An untrusted peer, with and without a (v1) header of its own.
    for extra in [&[][..], &["--haproxy-protocol"][..]] {
        let (code, out) = curl(&pki, UNTRUSTED, gw.addr, "/v3", extra);
        assert_ne!(code, 0, "{extra:?}: {out}");
    }
    let refused = wait_count(&gw, "not in server.trusted_proxies", 2);
    assert_eq!(refused, 2, "{:#?}", gw.logs.all());
    assert!(gw.logs.all().iter().any(|l| {
        l.contains("not in server.trusted_proxies") && l.contains(&format!("peer={UNTRUSTED}:"))
    }));
    // The trusted address without a header: its ClientHello is no header.
    let (code, _) = curl(&pki, HAPROXY, gw.addr, "/v3", &[]);
    assert_ne!(code, 0);
    assert!(
        gw.logs
            .wait_for(
                "does not start with a PROXY protocol header",
                Duration::from_secs(5)
            )
            .is_some()
    );
    // Garbled.
    let mut s = connect_from(HAPROXY, gw.addr);
    s.write_all(b"PROXY TCP4 300.1.2.3 127.0.0.1 1 2\r\n")
        .unwrap();
    assert!(closed_silently(&mut s, Duration::from_secs(5)));
    assert!(
        gw.logs
            .wait_for("bad PROXY v1 header", Duration::from_secs(5))
            .is_some()
    );
    // Silent: closed after handshake_timeout_secs (2).
    let mut s = connect_from(HAPROXY, gw.addr);
    let t0 = Instant::now();
    assert!(closed_silently(&mut s, Duration::from_secs(8)));
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(6),
        "{waited:?}"
    );
    assert!(
        gw.logs
            .wait_for("PROXY header timed out", Duration::from_secs(2))
            .is_some()
    );
    // A trusted peer with a valid header of its own (curl's v1) is served,
    // as the address it names.
    let (code, out) = curl(&pki, HAPROXY, gw.addr, "/v3", &["--haproxy-protocol"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(up.record.last().get("REMOTE_ADDR"), Some(HAPROXY));
}

/// With `proxy_protocol = false` a PROXY header is not TLS: the connection
/// fails cleanly. A reload turns it on (and later changes trusted_proxies)
/// for new connections.
#[test]
fn off_a_header_is_refused_and_a_reload_switches_it() {
    if !have_haproxy() {
        return;
    }
    let pki = pki();
    let up = uwsgi_echo();
    let gw = gateway(&pki, &up, &server(&format!("\"{HAPROXY}\""), false, ""));
    let _hap = haproxy(gw.addr, 19104, 19105);
    let via: SocketAddr = format!("{HAPROXY}:19104").parse().unwrap();
    // Direct, no header: served, as the TCP peer.
    let (code, out) = curl(&pki, CLIENT, gw.addr, "/v3", &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(up.record.last().get("REMOTE_ADDR"), Some(CLIENT));
    // A header in front of TLS: the handshake fails, the process lives on.
    let (code, out) = curl(&pki, CLIENT, gw.addr, "/v3", &["--haproxy-protocol"]);
    assert_ne!(code, 0, "{out}");
    assert!(
        gw.logs
            .wait_for("TLS handshake failed", Duration::from_secs(5))
            .is_some()
    );
    let (code, _) = curl(&pki, CLIENT, via, "/v3", &[]);
    assert_ne!(code, 0, "through haproxy with proxy_protocol off");

    rewrite(&gw, &pki, &up, &server(&format!("\"{HAPROXY}\""), true, ""));
    let (code, out) = curl(&pki, CLIENT, via, "/v3", &[]);
    assert_eq!(code, 0, "after the reload: {out}");
    assert_eq!(up.record.last().get("REMOTE_ADDR"), Some(CLIENT));
    let (code, _) = curl(&pki, CLIENT, gw.addr, "/v3", &[]);
    assert_ne!(code, 0, "direct, untrusted, after the reload");

    // haproxy no longer trusted: refused.
    rewrite(&gw, &pki, &up, &server("\"127.0.0.9\"", true, ""));
    let before = gw.logs.count("not in server.trusted_proxies");
    let (code, _) = curl(&pki, CLIENT, via, "/v3", &[]);
    assert_ne!(code, 0);
    assert!(wait_count(&gw, "not in server.trusted_proxies", before + 1) > before);
}
