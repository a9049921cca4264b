//! The accounting run end to end, with real components: the per-type
//! queues read back by the real Python `dirq` 1.8 (what `ssmsend` uses),
//! the run lock against Python's `fcntl` locks (what caso's
//! oslo.concurrency lock uses), `import-caso` on the caso.conf that ran
//! against the real Nova harness, its TOML accepted by `check-config`,
//! `accounting status` through the binary, and, against the real Nova
//! harness (`FEDGATE_E2E_NOVA_ENV`), `accounting extract` SIGKILLed at
//! many points and rerun: nothing lost, nothing doubled beyond one window.
//!
//! Run alone with `cargo test --test accounting_run`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::upstream::uwsgi_echo;
use common::{Conf, pki};
use fedgate::internal::accounting::caso_conf;
use fedgate::internal::accounting::config::{AccountingConfig, Settings};
use fedgate::internal::accounting::dirq::Queue;
use fedgate::internal::accounting::record::{
    AcceleratorRecord, CloudRecord, IpRecord, StorageRecord, VmStatus,
};
use fedgate::internal::accounting::run::{RunOptions, UsageSource, run};
use fedgate::internal::accounting::source::{ProjectRef, Usage, Window};
use fedgate::internal::accounting::state::{self, RunLock, StateError};

fn python_with_dirq() -> Option<String> {
    let candidates = match std::env::var("FEDGATE_PYTHON") {
        Ok(py) => vec![py],
        Err(_) => vec!["/usr/bin/python3".to_string(), "python3".to_string()],
    };
    candidates.into_iter().find(|py| {
        Command::new(py)
            .args(["-c", "import dirq, sys; sys.exit(dirq.VERSION != '1.8')"])
            .status()
            .is_ok_and(|s| s.success())
    })
}

fn python_or_skip() -> Option<String> {
    let py = python_with_dirq();
    if py.is_none() {
        assert!(
            std::env::var("FEDGATE_REQUIRE_DIRQ").is_err(),
            "FEDGATE_REQUIRE_DIRQ is set but no Python 3 imports dirq 1.8"
        );
        eprintln!("SKIPPED: no Python 3 with dirq 1.8 (apt-get install python3-dirq)");
    }
    py
}

/// Reads a queue as ssmsend does (lock, get, ASCII-decode, remove) and
/// prints the messages as a JSON list.
const CONSUME: &str = r#"
import json, sys
from dirq.QueueSimple import QueueSimple
q = QueueSimple(sys.argv[1])
out = []
name = q.first()
while name:
    if q.lock(name):
        out.append(q.get(name).decode("ascii"))
        q.remove(name)
    name = q.next()
q.purge()
print(json.dumps(out))
"#;

fn consume(py: &str, root: &Path) -> Vec<String> {
    if !root.exists() {
        return Vec::new();
    }
    let o = Command::new(py)
        .arg("-c")
        .arg(CONSUME)
        .arg(root)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn cloud(n: u32, project: &str) -> CloudRecord {
    CloudRecord {
        vm_uuid: format!("00000000-0000-4000-8000-{n:012}"),
        site_name: "TEST-SITE".into(),
        cloud_compute_service: "cloud.example.org".into(),
        cloud_type: "fedgate (OpenStack)".into(),
        machine_name: format!("vm-{n}-é"),
        local_user_id: "u1".into(),
        local_group_id: project.into(),
        global_user_name: Some("Jürgen@example.org".into()),
        fqan: "vo.example.org".into(),
        status: VmStatus::Started,
        start_time: 1_714_521_600,
        end_time: 0,
        wall_duration: 3600,
        cpu_duration: 3600,
        cpu_count: 1,
        memory: 512,
        disk: 1,
        public_ip_count: 0,
        benchmark_type: None,
        benchmark: None,
        image_id: None,
    }
}

fn usage(project: &str, vms: u32) -> Usage {
    Usage {
        cloud: (0..vms).map(|n| cloud(n, project)).collect(),
        ip: vec![IpRecord {
            site_name: "TEST-SITE".into(),
            cloud_type: "fedgate (OpenStack)".into(),
            cloud_compute_service: "cloud.example.org".into(),
            uuid: None,
            local_group: project.into(),
            fqan: "vö.example.org".into(),
            ip_version: 4,
            ip_count: 2,
            measurement_time: 1_714_867_200,
        }],
        accelerator: vec![AcceleratorRecord {
            measurement_month: 5,
            measurement_year: 2024,
            associated_record: "00000000-0000-4000-8000-000000000000".into(),
            global_user_name: None,
            fqan: "vo.example.org".into(),
            site_name: "TEST-SITE".into(),
            cloud_compute_service: "cloud.example.org".into(),
            cloud_type: "fedgate (OpenStack)".into(),
            count: 1,
            available_duration: 3600,
            active_duration: 3600,
            kind: "GPU".into(),
            model: "NVIDIA A100 ünï".into(),
        }],
        storage: (0..3)
            .map(|n| StorageRecord {
                record_id: format!("vol-{n}"),
                create_time: (1_714_867_200, 0),
                storage_system: "cloud.example.org".into(),
                site: "TEST-SITE".into(),
                local_user: "u1".into(),
                local_group: project.into(),
                user_identity: None,
                group: "vo.example.org".into(),
                start_time: 1_714_521_600,
                end_time: 1_714_867_200,
                capacity_used: 1 << 30,
            })
            .collect(),
    }
}

/// Fixed projects and usage.
struct Fixed(BTreeMap<String, Usage>);

impl UsageSource for Fixed {
    async fn projects(&self) -> Result<Vec<ProjectRef>, String> {
        Ok(self
            .0
            .keys()
            .map(|id| ProjectRef {
                id: id.clone(),
                name: id.clone(),
                vo: Some("vo.example.org".into()),
            })
            .collect())
    }
    async fn extract(&self, p: &ProjectRef, _: Window) -> Result<Usage, String> {
        Ok(self.0[&p.id].clone())
    }
}

fn settings(dir: &Path, extra: &str) -> Settings {
    let text = format!(
        "site_name = \"TEST-SITE\"\nspooldir = \"{0}/spool\"\n{extra}\n\
         [keystone]\nauth_url = \"http://127.0.0.1:1/v3\"\nusername = \"u\"\npassword = \"p\"\n",
        dir.display()
    );
    toml::from_str::<AccountingConfig>(&text)
        .unwrap()
        .settings()
        .unwrap()
}

#[tokio::test]
async fn per_type_queues_are_read_by_python_dirq_in_batches_of_max_size() {
    let Some(py) = python_or_skip() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().display();
    let s = settings(
        tmp.path(),
        &format!(
            "max_size = 4\nqueue_path = {{ cloud = \"{d}/cloud\", ip = \"{d}/ip\", \
             accelerator = \"{d}/acc\", storage = \"{d}/star\" }}"
        ),
    );
    let src = Fixed(
        [
            ("p1".to_string(), usage("p1", 9)),
            ("p2".to_string(), usage("p2", 4)),
        ]
        .into(),
    );
    let sum = run(&s, &src, &RunOptions::default(), None, &fedgate_stop())
        .await
        .unwrap();
    assert!(sum.failures().is_empty(), "{:?}", sum.failures());
    let c = sum.counts();
    assert_eq!(c["records_cloud"], 13);
    assert_eq!(c["messages_cloud"], 3 + 1, "9 = 4+4+1 and 4");
    let cloud = consume(&py, &tmp.path().join("cloud"));
    assert_eq!(cloud.len(), 4);
    for m in &cloud {
        assert!(m.starts_with("APEL-cloud-message: v0.4\n"), "{m}");
        assert!(m.matches("VMUUID: ").count() <= 4);
        assert!(m.contains("MachineName: vm-") && !m.contains('é'));
    }
    let total: usize = cloud.iter().map(|m| m.matches("VMUUID: ").count()).sum();
    assert_eq!(total, 13);
    let ip = consume(&py, &tmp.path().join("ip"));
    assert_eq!(ip.len(), 2);
    assert!(
        ip[0].contains("\"FQAN\": \"v\\u00f6.example.org\""),
        "{}",
        ip[0]
    );
    let acc = consume(&py, &tmp.path().join("acc"));
    assert_eq!(acc.len(), 2);
    assert!(acc[0].starts_with("{\"Type\": \"APEL-accelerator-message\""));
    let star = consume(&py, &tmp.path().join("star"));
    assert_eq!(star.len(), 2, "storage has its own queue");
    assert!(star[0].starts_with("<sr:StorageUsageRecords"));
    assert_eq!(star[0].matches("<sr:StorageUsageRecord>").count(), 3);
    // Every message the APEL loader would parse is acceptable to it.
    for m in cloud.iter().chain(&star) {
        let (_, r) = fedgate::internal::accounting::validate::validate(m.as_bytes());
        assert!(r.valid, "{m}\n{:?}", r.errors);
    }
    // lastrun advanced, in caso's format.
    let lr = std::fs::read_to_string(tmp.path().join("spool/lastrun.p1")).unwrap();
    assert!(
        state::parse_time(&lr).is_ok() && lr.ends_with("+00:00"),
        "{lr}"
    );
}

fn fedgate_stop() -> fedgate::internal::accounting::run::Stop {
    fedgate::internal::accounting::run::Stop::new()
}

#[test]
fn the_run_lock_excludes_caso_and_caso_excludes_it() {
    let Some(py) = python_or_skip() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let lock = tmp.path().join(state::LOCK_NAME);
    let try_lock = r#"
import fcntl, sys
f = open(sys.argv[1], "a")
try:
    fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    print("got")
except OSError:
    print("busy")
"#;
    let held = RunLock::acquire(tmp.path()).unwrap();
    let o = Command::new(&py)
        .args(["-c", try_lock])
        .arg(&lock)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "busy");
    drop(held);
    // caso (fasteners: a POSIX lock) holds it: we do not run.
    let mut child = Command::new(&py)
        .args([
            "-c",
            "import fcntl, sys, time\nf = open(sys.argv[1], 'a')\n\
             fcntl.lockf(f, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(30)",
        ])
        .arg(&lock)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "held");
    let e = RunLock::acquire(tmp.path()).unwrap_err();
    assert!(matches!(e, StateError::Locked { .. }), "{e}");
    // Killed holder: the lock is gone with it (no stale lock).
    child.kill().unwrap();
    child.wait().unwrap();
    RunLock::acquire(tmp.path()).unwrap();
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/caso")
        .join(name)
}

#[test]
fn import_caso_translates_the_real_caso_conf_for_check_config() {
    let pki = pki();
    let up = uwsgi_echo();
    let dir = tempfile::tempdir().unwrap();
    let voms = dir.path().join("voms.json");
    std::fs::write(
        &voms,
        r#"{"vo.a.test": {"projects": ["acct-a"]}, "vo.b.test": {"tenant": "acct-b"}}"#,
    )
    .unwrap();
    for (conf, voms, untranslated) in [
        // debug and log_file are fedgate's own logging; messengers noop.
        ("caso.conf", Some(&voms), vec![11, 12]),
        ("caso-docs-options.conf", None, vec![9, 15, 16, 17]),
    ] {
        let mut cmd = Command::new(common::fedgate_bin());
        cmd.args(["accounting", "import-caso"]).arg(fixture(conf));
        if let Some(v) = voms {
            cmd.arg(v);
        }
        let o = cmd.output().unwrap();
        let toml = String::from_utf8(o.stdout).unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        let lines: Vec<usize> = err
            .lines()
            .filter_map(|l| l.split(':').nth(1)?.parse().ok())
            .collect();
        assert_eq!(lines, untranslated, "{conf}: {err}");
        assert_eq!(o.status.code(), Some(1), "{err}");
        // Appended to a gateway configuration, check-config accepts it.
        let text = Conf::new(format!("uwsgi://{}", up.addr)).render(&pki) + "\n" + &toml;
        let cfg = dir.path().join(format!("{conf}.toml"));
        std::fs::write(&cfg, &text).unwrap();
        let (code, out, err) = common::run_fedgate(&["check-config"], &cfg);
        assert_eq!(code, 0, "{conf}:\n{toml}\n{out}{err}");
        let parsed = fedgate::Config::parse(&cfg, text).unwrap();
        let s = parsed.plugins.accounting.unwrap().settings().unwrap();
        if conf == "caso.conf" {
            assert_eq!(s.extract.site_name, "NOVA-AIO-TEST");
            assert_eq!(s.extract.service_name, "nova-aio.test");
            assert_eq!(s.extract.projects.len(), 2);
            assert_eq!(s.extract.vo_mapping["acct-b"], "vo.b.test");
            assert_eq!(s.extract.auth.region.as_deref(), Some("RegionOne"));
            assert_eq!(s.spooldir, Path::new("/tmp/nova-aio/caso/spool"));
            // caso queues every type into output_path.
            assert!(
                s.queues
                    .values()
                    .all(|p| p == Path::new("/tmp/nova-aio/caso/outgoing"))
            );
        } else {
            assert_eq!(s.extract.project_tag.as_deref(), Some("accounting"));
            assert_eq!(s.extract.vo_property, "egi.eu:VO");
            assert_eq!(s.lock_path, Path::new("/var/lock/caso"));
            assert_eq!(s.extract.auth.interface, "internal");
            assert_eq!(s.extract.auth.timeout, Duration::from_secs(30));
            assert_eq!(s.queues.len(), 4);
        }
    }
    // The parser on its own, for the reasons.
    let ini =
        caso_conf::parse_ini(&std::fs::read_to_string(fixture("caso.conf")).unwrap()).unwrap();
    let r = caso_conf::translate(&ini, None).unwrap();
    assert!(r.skipped.iter().any(|s| s.option == "[DEFAULT] log_file"));
}

#[test]
fn status_shows_lastrun_and_pending_per_queue() {
    let pki = pki();
    let up = uwsgi_echo();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    std::fs::create_dir_all(dir.path().join("spool")).unwrap();
    std::fs::write(
        dir.path().join("spool/lastrun.p1"),
        "2024-05-05 00:00:01+00:00",
    )
    .unwrap();
    std::fs::write(dir.path().join("spool/lastrun.bad"), "yesterday").unwrap();
    let q = Queue::open(dir.path().join("out")).unwrap();
    q.add(b"x").unwrap();
    q.add(b"y").unwrap();
    let text = Conf::new(format!("uwsgi://{}", up.addr)).render(&pki)
        + &format!(
            "\n[plugins.accounting]\nsite_name = \"S\"\nspooldir = \"{d}/spool\"\n\
             output_path = \"{d}/out\"\nvo_mapping = {{ p1 = \"vo.one\" }}\n\
             [plugins.accounting.keystone]\nauth_url = \"http://127.0.0.1:1/v3\"\n\
             username = \"u\"\npassword = \"p\"\n"
        );
    let cfg = dir.path().join("fedgate.toml");
    std::fs::write(&cfg, text).unwrap();
    let (code, out, err) = common::run_fedgate(&["accounting", "status", "--json"], &cfg);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let p = &v["projects"];
    assert_eq!(p[0]["project"], "bad");
    assert!(p[0]["error"].as_str().unwrap().contains("yesterday"));
    assert_eq!(p[1]["lastrun"], "2024-05-05 00:00:01+00:00");
    assert_eq!(p[1]["vo"], "vo.one");
    let queues: BTreeMap<String, u64> = v["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| {
            (
                q["type"].as_str().unwrap().to_string(),
                q["pending"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(queues["cloud"], 2);
    assert_eq!(
        queues["ip"], 2,
        "cloud, ip and accelerator share output_path"
    );
    assert_eq!(queues["storage"], 0);
    let (code, out, _) = common::run_fedgate(&["accounting", "status"], &cfg);
    assert_eq!(code, 0);
    assert!(
        out.contains("project p1: lastrun 2024-05-05 00:00:01+00:00 (vo.one)"),
        "{out}"
    );
    assert!(out.contains("project bad: lastrun UNREADABLE"), "{out}");
}

// ---------------------------------------------------------------------
// Kill test against the real Nova harness.
// ---------------------------------------------------------------------

/// Every cloud record's VMUUID in a queue, with how often it appears,
/// read by Python dirq.
fn vm_counts(py: &str, root: &Path) -> (BTreeMap<String, usize>, usize) {
    let msgs = consume(py, root);
    let mut out = BTreeMap::new();
    for m in &msgs {
        for l in m.lines() {
            if let Some(id) = l.strip_prefix("VMUUID: ") {
                *out.entry(id.to_string()).or_default() += 1;
            }
        }
    }
    (out, msgs.len())
}

#[test]
fn sigkill_at_any_point_loses_nothing_and_repeats_at_most_one_window() {
    let Some(env) = common::nova_env() else {
        return;
    };
    let Some(py) = python_or_skip() else { return };
    let pki = pki();
    let up = uwsgi_echo();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let text = Conf::new(format!("uwsgi://{}", up.addr)).render(&pki)
        + &format!(
            "\n[plugins.accounting]\nsite_name = \"KILL-TEST\"\nspooldir = \"{d}/spool\"\n\
             output_path = \"{d}/out\"\nqueue_path = {{ storage = \"{d}/star\" }}\n\
             projects = [\"acct-a\", \"acct-b\"]\nproject_tag = \"\"\nmax_size = 1\n\
             [plugins.accounting.keystone]\nauth_url = \"{}\"\n\
             username = \"accounting\"\npassword = \"accounting-pw\"\n",
            env["FEDGATE_E2E_NOVA_KEYSTONE"]
        );
    let cfg = dir.path().join("fedgate.toml");
    std::fs::write(&cfg, text).unwrap();
    // A fixed window, so that a rerun finds a finished project's window
    // empty rather than a new second of running servers.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let to = state::format_lastrun(now - 1);
    let to = to.as_str();
    let extract = || {
        let mut c = Command::new(common::fedgate_bin());
        c.args(["accounting", "extract", "--to", to, "--config"])
            .arg(&cfg)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        c
    };
    // The reference: one uninterrupted run.
    let t0 = Instant::now();
    let st = extract().status().unwrap();
    let full = t0.elapsed();
    assert!(st.success(), "reference run failed");
    let (reference, _) = vm_counts(&py, &dir.path().join("out"));
    assert!(!reference.is_empty(), "the harness has servers");
    assert!(reference.values().all(|n| *n == 1));
    eprintln!(
        "reference run: {:.0} ms, {} VMs",
        full.as_secs_f64() * 1000.0,
        reference.len()
    );
    let mut repeated_runs = 0;
    let steps = 12;
    for i in 0..steps {
        let _ = std::fs::remove_dir_all(dir.path().join("spool"));
        let _ = std::fs::remove_dir_all(dir.path().join("out"));
        let delay = full.mul_f64(i as f64 / steps as f64);
        let mut child = extract().spawn().unwrap();
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let after_kill = dir.path().join("spool").read_dir().map_or(0, |d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("lastrun."))
            })
            .count()
        });
        let st = extract().status().unwrap();
        assert!(st.success(), "the rerun after a kill at {delay:?} failed");
        let (seen, _) = vm_counts(&py, &dir.path().join("out"));
        // Nothing lost.
        for vm in reference.keys() {
            assert!(seen.contains_key(vm), "kill at {delay:?}: {vm} lost");
        }
        // Nothing doubled beyond one repeated window (one project's).
        assert!(
            seen.values().all(|n| *n <= 2),
            "kill at {delay:?}: {seen:?}"
        );
        if seen.values().any(|n| *n == 2) {
            repeated_runs += 1;
        }
        eprintln!(
            "kill at {:>5.0} ms: {after_kill} project(s) done before the kill; {} VM record(s) repeated",
            delay.as_secs_f64() * 1000.0,
            seen.values().filter(|n| **n == 2).count()
        );
    }
    eprintln!("{repeated_runs} of {steps} kills left a window to repeat");
}
