//! The accounting plugin's outputs against their consumers: messages
//! checked by `fedgate accounting validate` (the binary), and the outgoing
//! queue read by the real Python `dirq` 1.8 that `ssmsend` uses.
//!
//! `scripts/test.sh` installs Debian's `python3-dirq` and sets
//! `FEDGATE_REQUIRE_DIRQ=1`, so there a missing dirq fails the test instead
//! of skipping it.

#![cfg(feature = "accounting")]

use std::path::{Path, PathBuf};
use std::process::Command;

use fedgate::internal::accounting::dirq::Queue;
use fedgate::internal::accounting::record::*;
use fedgate::internal::accounting::wire;

fn cloud(n: u32) -> CloudRecord {
    CloudRecord {
        vm_uuid: format!("00000000-0000-4000-8000-{n:012}"),
        site_name: "TEST-SITE".into(),
        cloud_compute_service: "cloud.example.org".into(),
        cloud_type: "fedgate/0.1.0 (OpenStack)".into(),
        machine_name: format!("vm-{n}-é"),
        local_user_id: "4f1b77".into(),
        local_group_id: "9c3ae1".into(),
        global_user_name: Some("/DC=org/DC=example/CN=Jürgen".into()),
        fqan: "/vo.example.org/Role=NULL".into(),
        status: VmStatus::from_nova("ACTIVE"),
        start_time: 1714521600,
        end_time: 0,
        wall_duration: 3600,
        cpu_duration: 7200,
        cpu_count: 2,
        memory: 4096,
        disk: 25,
        public_ip_count: 1,
        benchmark_type: Some("HEPscore23".into()),
        benchmark: Some(10.0),
        image_id: None,
    }
}

fn messages() -> Vec<(&'static str, String)> {
    let recs: Vec<_> = (0..5).map(cloud).collect();
    let ip = IpRecord {
        site_name: "TEST-SITE".into(),
        cloud_type: "fedgate/0.1.0 (OpenStack)".into(),
        cloud_compute_service: "cloud.example.org".into(),
        uuid: None,
        local_group: "9c3ae1".into(),
        fqan: "vo.example.org".into(),
        ip_version: 6,
        ip_count: 2,
        measurement_time: 1714737600,
    };
    let acc = AcceleratorRecord {
        measurement_month: 4,
        measurement_year: 2024,
        associated_record: "00000000-0000-4000-8000-000000000001".into(),
        global_user_name: Some("sub@https://aai.egi.eu/auth/realms/egi".into()),
        fqan: "vo.example.org".into(),
        site_name: "TEST-SITE".into(),
        cloud_compute_service: "cloud.example.org".into(),
        cloud_type: "fedgate/0.1.0 (OpenStack)".into(),
        count: 1,
        available_duration: 86400,
        active_duration: 86400,
        kind: "GPU".into(),
        model: "NVIDIA T4".into(),
    };
    let vol = StorageRecord {
        record_id: "7a1c0a52-7d9e-4b0e-9b7a-3c2d1e0f9a8b".into(),
        create_time: (1714737600, 0),
        storage_system: "cloud.example.org".into(),
        site: "TEST-SITE".into(),
        local_user: "4f1b77".into(),
        local_group: "9c3ae1".into(),
        user_identity: None,
        group: "vo.example.org".into(),
        start_time: 1714521600,
        end_time: 1714737600,
        capacity_used: 1 << 30,
    };
    let mut out: Vec<(&'static str, String)> = wire::batches(&recs, 2, wire::cloud_message)
        .into_iter()
        .map(|m| ("cloud", m))
        .collect();
    out.push(("ip", wire::ip_message(&[ip])));
    out.push(("accelerator", wire::accelerator_message(&[acc])));
    out.push(("storage", wire::storage_message(&[vol])));
    out
}

fn validate(args: &[&Path], json: bool) -> (i32, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fedgate"));
    c.args(["accounting", "validate"]);
    if json {
        c.arg("--json");
    }
    let o = c.args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8(o.stdout).unwrap(),
    )
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn validate_accepts_every_message_we_render() {
    let tmp = tempfile::tempdir().unwrap();
    let msgs = messages();
    assert_eq!(
        msgs.len(),
        6,
        "5 cloud records in batches of 2, then one of each"
    );
    let files: Vec<PathBuf> = msgs
        .iter()
        .enumerate()
        .map(|(i, (k, m))| {
            assert!(m.is_ascii(), "{k}: {m}");
            write(tmp.path(), &format!("{i}-{k}"), m)
        })
        .collect();
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let (code, out) = validate(&refs, true);
    assert_eq!(code, 0, "{out}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let counts: Vec<u64> = lines
        .iter()
        .map(|v| v["records"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [2, 2, 1, 1, 1, 1]);
    for v in &lines {
        assert_eq!(v["valid"], true);
        assert_eq!(v["errors"], serde_json::json!([]));
    }
    let (code, text) = validate(&refs[..1], false);
    assert_eq!(code, 0);
    assert!(text.contains("valid, 2 records (cloud v0.4)"), "{text}");
}

#[test]
fn validate_refuses_broken_messages_with_their_field() {
    let tmp = tempfile::tempdir().unwrap();
    let good = write(tmp.path(), "good", &messages()[0].1);
    let bad_cloud = write(
        tmp.path(),
        "bad-cloud",
        &messages()[0]
            .1
            .replacen("Memory: 4096", "Memory: 4 GB", 1)
            .replacen("SiteName: TEST-SITE\n", "", 1),
    );
    let (code, out) = validate(&[&good, &bad_cloud], true);
    assert_eq!(code, 1, "{out}");
    let last: serde_json::Value = serde_json::from_str(out.lines().nth(1).unwrap()).unwrap();
    assert_eq!(last["valid"], false);
    assert_eq!(last["records"], 2);
    assert_eq!(
        last["errors"],
        serde_json::json!([
            {"record": 1, "field": "Memory", "reason": "\"4 GB\" is not an integer"},
            {"record": 1, "field": "SiteName", "reason": "mandatory field missing or null"}
        ])
    );
    // Text output names the record and field; an unreadable file fails.
    let (code, text) = validate(&[&bad_cloud], false);
    assert_eq!(code, 1);
    assert!(
        text.contains("INVALID") && text.contains("record 1, Memory: "),
        "{text}"
    );
    let (code, out) = validate(&[&tmp.path().join("missing")], true);
    assert_eq!(code, 1);
    assert!(out.contains("cannot read the file"), "{out}");
    // Non-ASCII bytes: ssmsend would refuse the file.
    let nonascii = write(
        tmp.path(),
        "nonascii",
        &messages()[0].1.replace("vm-0", "vm-ö"),
    );
    let (code, out) = validate(&[&nonascii], true);
    assert_eq!(code, 1);
    assert!(out.contains("not ASCII"), "{out}");
}

/// The validator, as the fuzz target drives it: any bytes get a verdict
/// that agrees with itself, never a panic.
#[test]
fn validate_never_panics_on_junk() {
    use fedgate::internal::accounting::validate::validate;
    let mut inputs: Vec<Vec<u8>> = messages()
        .into_iter()
        .flat_map(|(_, m)| {
            let b = m.into_bytes();
            (0..b.len())
                .step_by(7)
                .map(move |i| b[..i].to_vec())
                .collect::<Vec<_>>()
        })
        .collect();
    inputs.push(vec![0xff; 10]);
    inputs.push(b"{\"Type\": 1}".to_vec());
    inputs.push("[".repeat(10_000).into_bytes());
    inputs.push(format!("<a>{}</a>", "<b>".repeat(5000)).into_bytes());
    for i in inputs {
        let (_, r) = validate(&i);
        assert_eq!(r.valid, r.errors.is_empty());
    }
}

/// A Python 3 that can import dirq 1.8: `FEDGATE_PYTHON` alone when set,
/// else Debian's `/usr/bin/python3` (where `python3-dirq` installs), then
/// `python3`.
fn python_with_dirq() -> Option<String> {
    let candidates = match std::env::var("FEDGATE_PYTHON") {
        Ok(py) => vec![py],
        Err(_) => vec!["/usr/bin/python3".to_string(), "python3".to_string()],
    };
    for py in candidates {
        let ok = Command::new(&py)
            .args(["-c", "import dirq, sys; sys.exit(dirq.VERSION != '1.8')"])
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(py);
        }
    }
    None
}

/// Consumes a queue the way ssmsend does (lock, get, ASCII-decode,
/// remove, purge) and prints what it saw.
const CONSUME: &str = r#"
import json, sys
from dirq.QueueSimple import QueueSimple
q = QueueSimple(sys.argv[1])
out = {"count": q.count(), "elements": []}
name = q.first()
while name:
    if q.lock(name):
        out["elements"].append([name, q.get(name).decode("ascii")])
        q.remove(name)
    name = q.next()
q.purge()
out["after"] = q.count()
print(json.dumps(out))
"#;

const PRODUCE: &str = r#"
import sys
from dirq.QueueSimple import QueueSimple
q = QueueSimple(sys.argv[1])
for m in sys.argv[2:]:
    print(q.add(m.encode("ascii")))
"#;

#[test]
fn python_dirq_reads_our_queue_and_we_read_its() {
    let Some(py) = python_with_dirq() else {
        assert!(
            std::env::var("FEDGATE_REQUIRE_DIRQ").is_err(),
            "FEDGATE_REQUIRE_DIRQ is set but no Python 3 imports dirq 1.8 \
             (install python3-dirq, or set FEDGATE_PYTHON)"
        );
        eprintln!("SKIPPED: no Python 3 with dirq 1.8 (apt-get install python3-dirq)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("outgoing");
    let q = Queue::open(&root).unwrap();
    let msgs = messages();
    let mut names = Vec::new();
    for (_, m) in &msgs {
        names.push(q.add(m.as_bytes()).unwrap());
    }
    let o = Command::new(&py)
        .arg("-c")
        .arg(CONSUME)
        .arg(&root)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["count"], msgs.len());
    assert_eq!(v["after"], 0);
    let seen: Vec<(String, String)> = v["elements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e[0].as_str().unwrap().to_owned(),
                e[1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = names
        .iter()
        .cloned()
        .zip(msgs.iter().map(|(_, m)| m.clone()))
        .collect();
    assert_eq!(seen, expected, "dirq sees our elements, in our order");
    assert!(q.elements().unwrap().is_empty());

    // The other way: elements that dirq (so cASO) wrote, consumed by us.
    let o = Command::new(&py)
        .arg("-c")
        .arg(PRODUCE)
        .arg(&root)
        .args([
            "APEL-cloud-message: v0.4\nVMUUID: a\nSiteName: S\n",
            "second",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let theirs: Vec<String> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(q.elements().unwrap(), theirs);
    assert!(q.lock(&theirs[1]).unwrap());
    assert_eq!(q.get(&theirs[1]).unwrap(), b"second");
    q.remove(&theirs[1]).unwrap();
    assert_eq!(q.elements().unwrap(), theirs[..1]);
}
