//! Background services in the real binary: `[plugins.heartbeat]` starts
//! with the gateway, a reload that changes its section restarts it with the
//! new one, and a reload that removes the section stops it.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::upstream::uwsgi_echo;
use common::{Conf, Gateway, pki};

const SIGHUP: i32 = 1;

fn heartbeat(path: &Path) -> String {
    format!(
        "\n[plugins.heartbeat]\npath = \"{}\"\ninterval_secs = 1\n",
        path.display()
    )
}

/// Waits until `path` holds a Unix time newer than `after`.
fn beat_after(path: &Path, after: u64) -> Option<u64> {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        if let Some(t) = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .filter(|t| *t > after)
        {
            return Some(t);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn reload(gw: &Gateway, text: &str) {
    let before = gw.logs.count("configuration reloaded");
    std::fs::write(&gw.config, text).unwrap();
    gw.signal(SIGHUP);
    let t0 = Instant::now();
    while gw.logs.count("configuration reloaded") == before {
        assert!(t0.elapsed() < Duration::from_secs(10), "no reload");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn heartbeat_starts_restarts_on_a_changed_section_and_stops() {
    let pki = pki();
    let up = uwsgi_echo();
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("a"), dir.path().join("b"));
    let base = Conf::new(format!("uwsgi://{}", up.addr)).render(&pki);
    let gw = Gateway::start_text(&(base.clone() + &heartbeat(&first)));

    // Started with the gateway, and ticking.
    let t1 = beat_after(&first, 0).expect("the heartbeat file is written");
    beat_after(&first, t1).expect("and written again a second later");
    assert!(gw.logs.count("background services running") == 1);

    // Its status and metrics on the admin listener.
    let r = gw.admin_get("/plugins/heartbeat");
    assert_eq!(r.status, 200);
    let s: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(s["name"], "heartbeat");
    assert_eq!(s["schedule"], "every 1s");
    assert!(s["runs"].as_u64().unwrap() >= 2, "{s}");
    assert_eq!(
        (s["failures"].as_u64(), &s["last_result"]),
        (Some(0), &"ok".into())
    );
    assert!(
        s["next_run"].as_u64().is_some() || s["state"] == "running",
        "{s}"
    );
    assert_eq!(gw.admin_get("/plugins/nope").status, 404);
    let m = String::from_utf8(gw.admin_get("/metrics").body).unwrap();
    assert!(
        m.contains("fedgate_plugin_runs_total{plugin=\"heartbeat\",result=\"ok\"}"),
        "{m}"
    );
    assert_eq!(m.matches("# EOF").count(), 1);
    assert!(m.ends_with("# EOF\n"));

    // A changed section: the service now writes the new file only.
    reload(&gw, &(base.clone() + &heartbeat(&second)));
    let t2 = beat_after(&second, 0).expect("the new path is written after the reload");
    let frozen = std::fs::read_to_string(&first).unwrap();
    beat_after(&second, t2 + 1).expect("the restarted service keeps ticking");
    assert_eq!(
        std::fs::read_to_string(&first).unwrap(),
        frozen,
        "the old service was stopped"
    );

    // No section: the service stops.
    reload(&gw, &base);
    let last = std::fs::read_to_string(&second).unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(std::fs::read_to_string(&second).unwrap(), last);
    assert_eq!(gw.logs.count("its section was removed"), 1);

    // An unchanged section leaves the service alone across a reload.
    reload(&gw, &(base.clone() + &heartbeat(&first)));
    let restarts = gw.logs.count("service running");
    reload(&gw, &(base + &heartbeat(&first)));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(gw.logs.count("service running"), restarts);
}

#[test]
fn a_bad_heartbeat_section_is_a_config_error_with_its_line() {
    let pki = pki();
    let up = uwsgi_echo();
    let dir = tempfile::tempdir().unwrap();
    let text = Conf::new(format!("uwsgi://{}", up.addr)).render(&pki)
        + "\n[plugins.heartbeat]\npath = \"/nonexistent-dir/beat\"\n";
    let cfg = dir.path().join("fedgate.toml");
    std::fs::write(&cfg, &text).unwrap();
    let (code, out, err) = common::run_fedgate(&["check-config"], &cfg);
    assert_ne!(code, 0, "{out}{err}");
    let line = text
        .lines()
        .position(|l| l.contains("nonexistent-dir"))
        .unwrap()
        + 1;
    assert!(
        err.contains(&format!("fedgate.toml:{line}:")) && err.contains("plugins.heartbeat.path"),
        "{err}"
    );
}
