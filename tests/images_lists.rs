//! Signed HEPiX image lists made at test time (tests/fixtures/images/
//! mkpki.sh and `openssl smime`), judged through the library and through
//! `fedgate images verify --json`: each bad list refused with its reason.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use fedgate::internal::images::accept::{self, Code, Pinned, Subscription, TrustedEndorser};
use fedgate::internal::pki::{TrustStore, Validator, X509Config};
use serde_json::{Value, json};

const ENDORSER: &str = "/DC=org/DC=fedgate-test/O=Hosts/CN=lists.fedgate-test.org";
const CA: &str = "/DC=org/DC=fedgate-test/CN=Fedgate Images Test CA";
const LIST_ID: &str = "1b4e28ba-2fa1-11d2-883f-0016d3cca427";

fn pki() -> Option<&'static PathBuf> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        if Command::new("openssl").arg("version").output().is_err() {
            eprintln!("SKIP: openssl is not installed");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("fedgate-img-")
            .tempdir()
            .unwrap()
            .keep();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/images/mkpki.sh");
        let out = Command::new("bash").arg(script).arg(&dir).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(dir)
    })
    .as_ref()
}

fn date(offset_days: i64) -> String {
    let out = Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("{offset_days} days"),
            "+%Y-%m-%dT%H:%M:%SZ",
        ])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn list(id: &str, version: &str, expires_days: i64, images: &[&str]) -> Value {
    let images: Vec<Value> = images
        .iter()
        .map(|i| {
            json!({"hv:image": {"dc:identifier": i, "dc:title": format!("Image {i}"),
            "hv:uri": format!("https://cdn.example.org/{i}.qcow2"), "hv:size": "1024",
            "hv:version": "1.0", "hv:format": "QCOW2", "sl:checksum:sha512": "ab".repeat(64)}})
        })
        .collect();
    json!({"hv:imagelist": {"dc:identifier": id, "dc:title": "test list",
        "dc:description": "images", "dc:source": "https://appdb.example.org/", "ad:vo": "vo.example.org",
        "dc:date:created": date(-1), "dc:date:expires": date(expires_days), "hv:version": version,
        "hv:uri": "https://lists.example.org/image.list",
        "hv:endorser": {"hv:x509": {"dc:creator": "test", "hv:email": "ops@example.org",
            "hv:dn": ENDORSER, "hv:ca": CA}},
        "hv:images": images}})
}

/// Signs `v` (pretty-printed, LF line ends) as `signer`; returns the file.
fn sign(name: &str, v: &Value, signer: &str, extra: &[&str]) -> PathBuf {
    let dir = pki().unwrap();
    let json = dir.join(format!("{name}.json"));
    std::fs::write(&json, serde_json::to_string_pretty(v).unwrap() + "\n").unwrap();
    let out = dir.join(format!("{name}.smime"));
    let s = dir.join("signers");
    let st = Command::new("openssl")
        .args(["smime", "-sign", "-in"])
        .arg(&json)
        .arg("-signer")
        .arg(s.join(format!("{signer}.pem")))
        .arg("-inkey")
        .arg(s.join(format!("{signer}.key")))
        .args(extra)
        .arg("-out")
        .arg(&out)
        .env("OPENSSL_CONF", "/dev/null")
        .status()
        .unwrap();
    assert!(st.success());
    out
}

fn validator() -> Validator {
    let (store, problems) = TrustStore::load(&pki().unwrap().join("certificates")).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    Validator::new(Arc::new(store), X509Config::default())
}

fn trusted() -> Subscription {
    Subscription {
        trusted: vec![TrustedEndorser {
            dn: ENDORSER.into(),
            ca: Some(CA.into()),
        }],
        ..Subscription::default()
    }
}

fn judge(file: &Path, sub: &Subscription) -> accept::Decision {
    accept::evaluate(
        &std::fs::read(file).unwrap(),
        &validator(),
        sub,
        fedgate::internal::pki::unix_now(),
    )
}

fn cli(file: &Path, extra: &[&str]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_fedgate"))
        .args(["images", "verify", "--json", "--ca-dir"])
        .arg(pki().unwrap().join("certificates"))
        .args(extra)
        .arg(file)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), v)
}

fn codes(v: &Value) -> Vec<String> {
    v["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().split(':').next().unwrap().to_string())
        .collect()
}

#[test]
fn valid_lists_are_accepted_in_every_form() {
    if pki().is_none() {
        return;
    }
    let v = list(LIST_ID, "20250110", 30, &["img-a", "img-b"]);
    let detached = sign("valid", &v, "endorser", &[]);
    let opaque = sign("opaque", &v, "endorser", &["-nodetach"]);
    let crlf = pki().unwrap().join("valid-crlf.smime");
    let text = std::fs::read_to_string(&detached).unwrap();
    std::fs::write(&crlf, text.replace('\n', "\r\n")).unwrap();
    for f in [&detached, &opaque, &crlf] {
        let d = judge(f, &trusted());
        assert!(d.accepted(), "{f:?}: {:?}", d.reasons);
        assert_eq!(d.images.iter().filter(|i| i.refused.is_none()).count(), 2);
    }
    let (code, j) = cli(&detached, &["--trusted-endorser", ENDORSER]);
    assert_eq!(code, 0, "{j}");
    assert_eq!(j["accepted"], true);
    assert_eq!(j["list"]["identifier"], LIST_ID);
    assert_eq!(j["list"]["version"], "20250110");
    assert_eq!(j["images"][0]["identifier"], "img-a");
    assert_eq!(j["images"][0]["sha512"], "ab".repeat(64));
    assert_eq!(j["images"][1]["accepted"], true);
    // No trusted endorser: refused, and said so.
    let (code, j) = cli(&detached, &[]);
    assert_eq!(
        (code, codes(&j)),
        (1, vec!["EndorserUntrusted".to_string()])
    );
}

#[test]
fn every_bad_list_is_refused_with_its_reason() {
    if pki().is_none() {
        return;
    }
    let good = list(LIST_ID, "20250110", 30, &["img-a"]);
    // Tampered: one byte of the signed JSON changed after signing.
    let tampered = sign("tampered", &good, "endorser", &[]);
    let t = std::fs::read_to_string(&tampered)
        .unwrap()
        .replace("20250110", "20250111");
    std::fs::write(&tampered, t).unwrap();
    let cases: Vec<(&str, PathBuf, Vec<&str>, Code)> = vec![
        ("tampered", tampered, vec![], Code::SignatureInvalid),
        (
            "wrong signer",
            sign("other", &good, "other", &[]),
            vec![],
            Code::EndorserMismatch,
        ),
        (
            "rogue CA",
            sign("rogue", &good, "rogue", &[]),
            vec![],
            Code::SignerUntrusted,
        ),
        (
            "expired signer",
            sign("expired", &good, "expired", &[]),
            vec![],
            Code::SignerExpired,
        ),
        (
            "revoked signer",
            sign("revoked", &good, "revoked", &[]),
            vec![],
            Code::SignerRevoked,
        ),
        (
            "expired list",
            sign(
                "old",
                &list(LIST_ID, "20250110", -1, &["img-a"]),
                "endorser",
                &[],
            ),
            vec![],
            Code::Expired,
        ),
    ];
    for (what, file, extra, code) in &cases {
        let d = judge(file, &trusted());
        assert!(d.has(*code), "{what}: {:?}", d.reasons);
        let mut args = vec!["--trusted-endorser", ENDORSER];
        args.extend(extra);
        let (rc, j) = cli(file, &args);
        assert_eq!(rc, 1, "{what}: {j}");
        assert!(
            codes(&j).contains(&code.as_str().to_string()),
            "{what}: {j}"
        );
        assert_eq!(j["accepted"], false);
    }
    // The wrong signer is also not a trusted endorser.
    assert!(judge(&cases[1].1, &trusted()).has(Code::EndorserUntrusted));
    // An expired list's images count as expired.
    let (_, j) = cli(&cases[5].1, &["--trusted-endorser", ENDORSER]);
    assert!(
        j["images"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("ListExpired")
    );
}

#[test]
fn subscription_state_rules() {
    if pki().is_none() {
        return;
    }
    let previous = sign(
        "prev",
        &list(LIST_ID, "2025.1.10", 30, &["img-a"]),
        "endorser",
        &[],
    );
    let older = sign(
        "older",
        &list(LIST_ID, "2025.1.9", 30, &["img-a"]),
        "endorser",
        &[],
    );
    let renamed = sign(
        "renamed",
        &list("another-id", "2025.2.1", 30, &["img-a"]),
        "endorser",
        &[],
    );
    let dup = sign(
        "dup",
        &list(LIST_ID, "2025.2.1", 30, &["img-a", "img-a", "img-x"]),
        "endorser",
        &[],
    );
    let other_list = sign(
        "otherlist",
        &list("other-list", "1", 30, &["img-x"]),
        "endorser",
        &[],
    );
    let pinned = Subscription {
        previous: Some(Pinned {
            identifier: LIST_ID.into(),
            version: "2025.1.10".into(),
        }),
        ..trusted()
    };
    assert!(judge(&older, &pinned).has(Code::VersionRollback));
    assert!(judge(&renamed, &pinned).has(Code::ListIdChanged));
    let prev = previous.to_str().unwrap();
    let (rc, j) = cli(
        &older,
        &["--trusted-endorser", ENDORSER, "--previous", prev],
    );
    assert_eq!((rc, codes(&j)), (1, vec!["VersionRollback".to_string()]));
    let (rc, j) = cli(
        &renamed,
        &["--trusted-endorser", ENDORSER, "--previous", prev],
    );
    assert_eq!((rc, codes(&j)), (1, vec!["ListIdChanged".to_string()]));
    // Duplicates: the later copy in the list, and an identifier another
    // subscribed list already publishes; the list itself stays acceptable.
    let (rc, j) = cli(
        &dup,
        &[
            "--trusted-endorser",
            ENDORSER,
            "--previous",
            prev,
            "--other",
            other_list.to_str().unwrap(),
        ],
    );
    assert_eq!(rc, 0, "{j}");
    let reasons: Vec<Value> = j["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["reason"].clone())
        .collect();
    assert_eq!(reasons[0], Value::Null);
    for r in &reasons[1..] {
        assert!(r.as_str().unwrap().starts_with("DuplicateImageId"), "{j}");
    }
    let d = judge(&dup, &trusted());
    assert_eq!(
        d.images[1].refused.as_ref().unwrap().code,
        Code::DuplicateImageId
    );
    // A malformed list that is properly signed.
    let mut bad = list(LIST_ID, "3", 30, &["img-a"]);
    bad["hv:imagelist"]["hv:images"][0]["hv:image"]["hv:size"] = json!("big");
    let (rc, j) = cli(
        &sign("malformed", &bad, "endorser", &[]),
        &["--trusted-endorser", ENDORSER],
    );
    assert_eq!((rc, codes(&j)), (1, vec!["Malformed".to_string()]));
}
