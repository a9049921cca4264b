//! The shared-state store (`[state]`) against real servers: memcached
//! (Debian `memcached`), Redis and Redis Sentinel (Debian `redis-server`),
//! started here as throwaway processes on this test's ports (19110-19129).
//!
//! What it proves: consistent hashing spreads keys over three memcached
//! servers and losing one moves only its keys; a Sentinel failover is
//! survived within a bounded time; Redis AUTH (password, ACL user, wrong
//! password), `db`, TLS with a site CA (`tls_ca_file`); values written by
//! hand, copied from another key or sealed with another key ring are not
//! accepted; a server that accepts but never answers costs at most
//! `timeout_ms`.
//!
//! Run alone with `cargo test --test shared_state`.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::idp::{Proc, wait_port};
use fedgate::internal::kv::{
    self, Backend, BackendKind, KeyRing, KvError, Settings, Store, memcached::Memcached,
};

const T: Duration = Duration::from_secs(60);

fn ring(b: u8) -> KeyRing {
    KeyRing::from_raw(&[[b; 32]])
}

fn have(bin: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {bin}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn start_memcached(port: u16) -> Proc {
    let child = Command::new("memcached")
        .args([
            "-l",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "0",
            "-m",
            "16",
        ])
        .args(if nix_root() {
            &["-u", "root"][..]
        } else {
            &[][..]
        })
        .stdout(Stdio::null())
        .spawn()
        .expect("memcached");
    let p = Proc(child);
    wait_port(port, "memcached");
    p
}

/// memcached refuses to run as root without `-u`.
fn nix_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// A throwaway redis-server; its files (a replica's copy of the master's
/// data) go to a temporary directory, not the work tree.
fn start_redis(port: u16, extra: &[&str]) -> Proc {
    let dir = tempfile::tempdir().unwrap().keep();
    let child = Command::new("redis-server")
        .current_dir(&dir)
        .args([
            "--dir",
            dir.to_str().unwrap(),
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server");
    let p = Proc(child);
    wait_port(port, "redis-server");
    p
}

fn settings(backend: BackendKind) -> Settings {
    Settings {
        backend,
        servers: vec![],
        url: None,
        sentinels: vec![],
        master_name: None,
        db: None,
        username: None,
        password: None,
        tls: false,
        tls_ca_pem: None,
        timeout: Duration::from_millis(500),
        prefix: "t:".into(),
        max_entries: 1000,
    }
}

fn redis_store(url: &str, f: impl FnOnce(&mut Settings)) -> Result<Store, KvError> {
    let mut s = settings(BackendKind::Redis);
    s.url = Some(url.into());
    f(&mut s);
    Store::from_settings(&s, Some(ring(1)))
}

async fn raw_redis(port: u16, db: u8) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://127.0.0.1:{port}/{db}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test]
async fn memcached_spreads_keys_and_losing_a_server_moves_only_its_keys() {
    if !have("memcached") {
        println!("SKIPPED: memcached is not installed (scripts/test.sh installs it)");
        return;
    }
    let ports = [19110u16, 19111, 19112];
    let mut procs: Vec<Option<Proc>> = ports.iter().map(|p| Some(start_memcached(*p))).collect();
    let servers: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let mc = Arc::new(Memcached::new(&servers, Duration::from_millis(500)).unwrap());
    let store = Store::new(mc.clone(), "t:", Some(ring(1)), Duration::from_millis(500)).unwrap();
    let keys: Vec<String> = (0..300)
        .map(|i| store.key("token", &format!("{i:04}")))
        .collect();
    for k in &keys {
        store.set(k, k.as_bytes(), T).await.unwrap();
    }
    // Each key is on the server the hashing names, and only there.
    let mut raw = Vec::new();
    for s in &servers {
        raw.push(
            async_memcached::Client::new(format!("tcp://{s}"))
                .await
                .unwrap(),
        );
    }
    let before: Vec<String> = keys.iter().map(|k| mc.server_for(k).to_string()).collect();
    for (k, home) in keys.iter().zip(&before) {
        for (s, c) in servers.iter().zip(raw.iter_mut()) {
            use async_memcached::AsciiProtocol;
            let held = c.get(k).await.unwrap().is_some();
            assert_eq!(held, s == home, "{k} on {s}? home is {home}");
        }
    }
    for s in &servers {
        let n = before.iter().filter(|h| *h == s).count();
        assert!(n > 60, "{s} holds {n} of 300: keys are spread");
    }
    // Lose the second server.
    drop(procs[1].take());
    let lost = &servers[1];
    let mut moved = 0;
    for (k, home) in keys.iter().zip(&before) {
        let got = store.get(k).await.unwrap();
        if home == lost {
            assert_eq!(got, None, "{k} was on the lost server");
            assert_ne!(mc.server_for(k), lost);
            moved += 1;
        } else {
            assert_eq!(got.as_deref(), Some(k.as_bytes()), "{k} stayed on {home}");
            assert_eq!(mc.server_for(k), home, "only the lost server's keys move");
        }
    }
    assert_eq!(moved, before.iter().filter(|h| *h == lost).count());
    // Written again, they live on the others meanwhile.
    for k in &keys {
        store.set(k, k.as_bytes(), T).await.unwrap();
        assert!(store.get(k).await.unwrap().is_some());
    }
    // Back up: after the down period its keys come home (empty: a cache
    // loses them, which is what a cache may do).
    procs[1] = Some(start_memcached(ports[1]));
    tokio::time::sleep(kv::memcached::DOWN_FOR + Duration::from_millis(200)).await;
    for (k, home) in keys.iter().zip(&before) {
        let _ = store.get(k).await.unwrap();
        assert_eq!(mc.server_for(k), home);
    }
    let probe = store.probe().await.unwrap();
    assert!(probe.contains("127.0.0.1:19112"), "{probe}");
}

#[tokio::test]
async fn redis_auth_acl_user_and_db() {
    let _r = start_redis(
        19113,
        &[
            "--requirepass",
            "s3cret",
            "--user",
            "fedgate",
            "on",
            ">u-pw",
            "~*",
            "&*",
            "+@all",
        ],
    );
    let url = "redis://127.0.0.1:19113";
    // Password only (the default user).
    let s = redis_store(url, |s| s.password = Some("s3cret".into())).unwrap();
    s.set("t:session:a", b"one", T).await.unwrap();
    assert_eq!(
        s.get("t:session:a").await.unwrap().as_deref(),
        Some(&b"one"[..])
    );
    // Wrong password: a clear error, not a hang or a miss.
    let bad = redis_store(url, |s| s.password = Some("wrong".into())).unwrap();
    let e = bad.get("t:session:a").await.unwrap_err().to_string();
    assert!(
        e.to_ascii_lowercase().contains("wrongpass") || e.contains("auth"),
        "{e}"
    );
    assert!(
        !e.contains("wrong\""),
        "the password is not in the error: {e}"
    );
    // No password at all: refused too.
    let none = redis_store(url, |_| {}).unwrap();
    assert!(none.get("t:session:a").await.is_err());
    // ACL user and db.
    let acl = redis_store(url, |s| {
        s.username = Some("fedgate".into());
        s.password = Some("u-pw".into());
        s.db = Some(2);
    })
    .unwrap();
    acl.set("t:session:b", b"two", T).await.unwrap();
    let mut raw = redis::Client::open("redis://default:s3cret@127.0.0.1:19113/2")
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let n: i64 = redis::cmd("EXISTS")
        .arg("t:session:b")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(n, 1, "written to db 2");
    let ttl: i64 = redis::cmd("TTL")
        .arg("t:session:b")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 60, "{ttl}");
    assert_eq!(
        s.get("t:session:b").await.unwrap(),
        None,
        "db 0 does not have it"
    );
    // add-if-absent is atomic on the server: once.
    assert!(acl.add("t:login:x", b"1", T).await.unwrap());
    assert!(!acl.add("t:login:x", b"1", T).await.unwrap());
}

#[tokio::test]
async fn redis_over_tls_with_the_site_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = fedgate::demo::pki::create(dir.path()).unwrap();
    let _r = start_redis(
        19114,
        &[
            "--port",
            "0",
            "--tls-port",
            "19114",
            "--tls-cert-file",
            pki.host_cert.to_str().unwrap(),
            "--tls-key-file",
            pki.host_key.to_str().unwrap(),
            "--tls-ca-cert-file",
            pki.ca_file.to_str().unwrap(),
            "--tls-auth-clients",
            "no",
        ],
    );
    let ca = std::fs::read(&pki.ca_file).unwrap();
    let s = redis_store("rediss://127.0.0.1:19114/0", |s| {
        s.tls = true;
        s.tls_ca_pem = Some(ca);
    })
    .unwrap();
    s.set("t:token:a", b"over tls", T).await.unwrap();
    assert_eq!(
        s.get("t:token:a").await.unwrap().as_deref(),
        Some(&b"over tls"[..])
    );
    assert!(s.probe().await.unwrap().contains("master"));
    // Without the site CA the certificate is not trusted.
    let s = redis_store("rediss://127.0.0.1:19114/0", |s| s.tls = true).unwrap();
    assert!(s.get("t:token:a").await.is_err());
    // Plain TCP to a TLS port fails (within the deadline).
    let s = redis_store("redis://127.0.0.1:19114/0", |_| {}).unwrap();
    assert!(s.get("t:token:a").await.is_err());
}

#[tokio::test]
async fn values_written_by_hand_moved_or_sealed_elsewhere_do_not_open() {
    let _r = start_redis(19118, &[]);
    let s = redis_store("redis://127.0.0.1:19118/0", |_| {}).unwrap();
    let (a, b) = (s.key("session", "aa"), s.key("session", "bb"));
    s.set(&a, br#"{"idp":"egi","sub":"alice"}"#, T)
        .await
        .unwrap();
    let mut raw = raw_redis(19118, 0).await;
    let held: Vec<u8> = redis::cmd("GET")
        .arg(&a)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(!String::from_utf8_lossy(&held).contains("alice"), "sealed");
    // Copied to another key.
    let _: () = redis::cmd("SET")
        .arg(&b)
        .arg(&held)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(s.get(&b).await.unwrap(), None);
    // Forged.
    let _: () = redis::cmd("SET")
        .arg(&b)
        .arg(r#"{"idp":"egi","sub":"mallory"}"#)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(s.get(&b).await.unwrap(), None);
    // Another cluster's keys.
    let other = Store::from_settings(
        &{
            let mut x = settings(BackendKind::Redis);
            x.url = Some("redis://127.0.0.1:19118/0".into());
            x
        },
        Some(ring(9)),
    )
    .unwrap();
    other.set(&b, b"{}", T).await.unwrap();
    assert_eq!(s.get(&b).await.unwrap(), None);
    let snap = kv::snapshot();
    assert!(
        snap.errors
            .iter()
            .any(|(b, op, n)| *b == "redis" && *op == "open" && *n >= 3),
        "{snap:?}"
    );
}

/// A server that accepts connections but never answers: every call ends
/// within the deadline.
#[tokio::test]
async fn a_silent_server_costs_at_most_the_timeout() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let timeout = Duration::from_millis(300);
    let mut r = settings(BackendKind::Redis);
    r.url = Some(format!("redis://{addr}/0"));
    r.timeout = timeout;
    let mut m = settings(BackendKind::Memcached);
    m.servers = vec![addr.to_string()];
    m.timeout = timeout;
    for s in [r, m] {
        let store = Store::from_settings(&s, Some(ring(1))).unwrap();
        for _ in 0..2 {
            let t0 = Instant::now();
            let e = store.get("t:token:x").await.unwrap_err();
            let took = t0.elapsed();
            assert!(
                took < timeout + Duration::from_millis(150),
                "{:?} took {took:?}: {e}",
                s.backend
            );
            assert!(took >= timeout - Duration::from_millis(20), "{took:?}");
            let t0 = Instant::now();
            assert!(store.set("t:token:x", b"v", T).await.is_err());
            assert!(t0.elapsed() < timeout + Duration::from_millis(150));
        }
    }
    let snap = kv::snapshot();
    assert!(
        snap.up.iter().any(|(b, up)| *b == "memcached" && !up),
        "{snap:?}"
    );
    drop(silent);
}

fn write_sentinel_conf(dir: &std::path::Path, port: u16, master: u16) -> std::path::PathBuf {
    let f = dir.join(format!("sentinel-{port}.conf"));
    std::fs::write(
        &f,
        format!(
            "port {port}\nbind 127.0.0.1\ndir {}\n\
             sentinel monitor mymaster 127.0.0.1 {master} 1\n\
             sentinel down-after-milliseconds mymaster 1000\n\
             sentinel failover-timeout mymaster 5000\n",
            dir.display()
        ),
    )
    .unwrap();
    f
}

async fn connected_replicas(port: u16) -> usize {
    let mut c = raw_redis(port, 0).await;
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query_async(&mut c)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("connected_slaves:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn sentinel_failover_is_survived_in_bounded_time() {
    let dir = tempfile::tempdir().unwrap();
    let master = start_redis(19115, &[]);
    let _replica = start_redis(19116, &["--replicaof", "127.0.0.1", "19115"]);
    let until = Instant::now() + Duration::from_secs(20);
    while connected_replicas(19115).await < 1 {
        assert!(Instant::now() < until, "the replica did not connect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let conf = write_sentinel_conf(dir.path(), 19117, 19115);
    let _sentinel = Proc(
        Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server --sentinel"),
    );
    wait_port(19117, "sentinel");
    let mut s = settings(BackendKind::Redis);
    // The first sentinel is dead: the next one is asked.
    s.sentinels = vec!["127.0.0.1:19129".into(), "127.0.0.1:19117".into()];
    s.master_name = Some("mymaster".into());
    let store = Store::from_settings(&s, Some(ring(1))).unwrap();
    store.set("t:session:before", b"kept", T).await.unwrap();
    assert!(store.probe().await.unwrap().contains("Sentinel"));
    // Let the write reach the replica and the sentinel see the replica.
    let until = Instant::now() + Duration::from_secs(10);
    let mut rep = raw_redis(19116, 0).await;
    loop {
        let n: i64 = redis::cmd("EXISTS")
            .arg("t:session:before")
            .query_async(&mut rep)
            .await
            .unwrap();
        if n == 1 {
            break;
        }
        assert!(
            Instant::now() < until,
            "the write did not reach the replica"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(master);
    let t0 = Instant::now();
    let bound = Duration::from_secs(30);
    loop {
        if store.set("t:session:after", b"new", T).await.is_ok() {
            break;
        }
        assert!(t0.elapsed() < bound, "no failover within {bound:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let took = t0.elapsed();
    println!("store usable again {took:?} after the master died");
    assert_eq!(
        store.get("t:session:after").await.unwrap().as_deref(),
        Some(&b"new"[..])
    );
    assert_eq!(
        store.get("t:session:before").await.unwrap().as_deref(),
        Some(&b"kept"[..]),
        "written before the failover, replicated"
    );
    // The new master is the former replica.
    let mut c = raw_redis(19116, 0).await;
    let role: redis::Value = redis::cmd("ROLE").query_async(&mut c).await.unwrap();
    assert!(format!("{role:?}").contains("master"), "{role:?}");
}

#[test]
fn a_backend_has_the_name_the_metrics_use() {
    let m = Memcached::new(&["127.0.0.1:1".into()], Duration::from_millis(10)).unwrap();
    assert_eq!(m.name(), "memcached");
    assert!(Memcached::new(&[], Duration::from_millis(10)).is_err());
}

/// `check-config` connects to the configured backend like its other
/// probes: a live one is a note, a dead one a failed probe on the
/// `backend` line; the legacy keys are noted as deprecated.
#[tokio::test]
async fn check_config_probes_the_backend() {
    use fedgate::internal::{Probes, check};
    let _r = start_redis(19124, &[]);
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let cfg = |state: &str| {
        let text = format!(
            "[upstream]\nurl = \"uwsgi://127.0.0.1:1\"\n[[route]]\npath = \"^/\"\nauth = \"none\"\n{state}"
        );
        fedgate::Config::parse(std::path::Path::new("f.toml"), text).unwrap()
    };
    let live = cfg(&format!(
        "[state]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:19124/0\"\nkeys = [\"{key}\"]\n"
    ));
    let r = Box::pin(check(&live, Probes::Run)).await;
    assert!(
        r.notes
            .iter()
            .any(|n| n.starts_with("state: redis reachable")),
        "{:?}",
        r.notes
    );
    assert!(
        r.probes.0.iter().all(|p| !p.message.contains("[state]")),
        "{:?}",
        r.probes
    );
    let dead = cfg(&format!(
        "[state]\nbackend = \"memcached\"\nservers = [\"127.0.0.1:19125\"]\nkeys = [\"{key}\"]\n"
    ));
    let r = Box::pin(check(&dead, Probes::Run)).await;
    let p = r
        .probes
        .0
        .iter()
        .find(|p| p.message.contains("[state]"))
        .unwrap_or_else(|| panic!("{:?}", r.probes));
    assert_eq!(p.line, Some(7), "{p}");
    assert!(p.message.contains("127.0.0.1:19125"), "{p}");
    // Offline: not probed.
    let r = Box::pin(check(&dead, Probes::Skip)).await;
    assert!(r.probes.0.iter().all(|p| !p.message.contains("[state]")));
    // Legacy keys: noted.
    let legacy = cfg(&format!(
        "[oidc.session]\nkeys = [\"{key}\"]\nredis_url = \"redis://127.0.0.1:19124/0\"\n"
    ));
    let r = Box::pin(check(&legacy, Probes::Skip)).await;
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("f.toml:8: oidc.session.redis_url is deprecated")),
        "{:?}",
        r.notes
    );
}
