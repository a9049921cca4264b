//! Interop against the real thing: Apache + mod_ssl + mod_gridsite
//! (tests/harness/gridsite/apache.sh) and `fedgate x509-info` judge the
//! same generated credentials. Verdicts must agree except for the
//! documented, deliberate differences; for chains both accept, every
//! gridsite/mod_ssl value fedgate exports must be byte-identical. Skips
//! with a message when apache2, mod_gridsite or root is unavailable.
//! Ports 18710-18711.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::gridpki::{Pki, pki};

const CGI: u16 = 18710;
const STATIC: u16 = 18711;

/// Cases where fedgate deliberately differs from gridsite:
/// (case, gridsite accepts, fedgate accepts, why).
const DIFFERENCES: &[(&str, bool, bool, &str)] = &[
    (
        "limited_signs_full",
        true,
        false,
        "a full proxy signed by a limited proxy is refused (canl-java)",
    ),
    (
        "mixed_legacy_under_rfc",
        true,
        false,
        "proxy types may not be mixed (canl-java)",
    ),
    (
        "independent",
        true,
        false,
        "independent proxies refused by default",
    ),
    (
        "eec_mallory_namespace",
        true,
        false,
        "namespaces/signing_policy enforced (gridsite never enforces)",
    ),
    (
        "eec_erin_sha1",
        false,
        true,
        "SHA-1 CA signatures accepted (IGTF still issues them; OpenSSL's SECLEVEL refuses)",
    ),
    ("sha1_user_voms", false, true, "as eec_erin_sha1"),
];

struct Apache {
    run: PathBuf,
}

impl Drop for Apache {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(&self.run)
            .status();
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/harness/gridsite/apache.sh")
}

fn start(p: &Pki) -> Option<Apache> {
    let run = std::env::temp_dir().join(format!("fedgate-gridsite-{CGI}"));
    let _ = Command::new("bash")
        .arg(script())
        .arg("stop")
        .arg(&run)
        .status();
    let out = Command::new("bash")
        .arg(script())
        .args(["start"])
        .arg(&p.dir)
        .arg(&run)
        .args([CGI.to_string(), STATIC.to_string()])
        .output()
        .unwrap();
    match out.status.code() {
        Some(0) => Some(Apache { run }),
        Some(3) => {
            eprintln!(
                "SKIP: gridsite interop: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            None
        }
        _ => panic!(
            "apache.sh start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// gridsite's environment for a credential, or `None` if Apache refused it.
fn gridsite_env(p: &Pki, case: &str) -> Option<BTreeMap<String, String>> {
    let f = p.cred(case);
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--cacert"])
        .arg(p.dir.join("ca/rootA/ca.pem"))
        .arg("--cert")
        .arg(&f)
        .arg("--key")
        .arg(&f)
        .arg(format!("https://localhost:{CGI}/env"))
        .output()
        .unwrap();
    if !out.status.success() {
        return None;
    }
    Some(
        out.stdout
            .split(|&b| b == 0)
            .filter_map(|kv| {
                let s = String::from_utf8_lossy(kv);
                s.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect(),
    )
}

fn fedgate_info(p: &Pki, case: &str) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_fedgate"))
        .args(["x509-info", "--json", "--ca-dir"])
        .arg(p.certs())
        .arg("--voms-dir")
        .arg(p.dir.join("vomsdir"))
        .arg(p.cred(case))
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The gridsite values fedgate is expected to reproduce: GRST_* of the
/// `dn:` and `fqan:` credentials, and mod_ssl's
/// client values. `dns:`/`ip:` entries are request-level (fedgate omits
/// `dns:` on purpose; x509-info has no client address).
fn comparable(env: &BTreeMap<String, String>, with_voms: bool) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut skip_idx = Vec::new();
    for (k, v) in env {
        if let Some(i) = k.strip_prefix("GRST_CRED_AURI_") {
            if v.starts_with("dns:")
                || v.starts_with("ip:")
                || (!with_voms && v.starts_with("fqan:"))
            {
                skip_idx.push(i.to_string());
            }
        }
        if !with_voms && k.starts_with("GRST_CONN_AURI_") && v.starts_with("fqan:") {
            skip_idx.push(format!("conn{}", &k["GRST_CONN_AURI_".len()..]));
        }
    }
    for (k, v) in env {
        let idx = |p: &str| k.strip_prefix(p).map(str::to_string);
        let keep = if let Some(i) = idx("GRST_CRED_AURI_").or(idx("GRST_CRED_VALID_")) {
            !skip_idx.contains(&i)
        } else if let Some(i) = idx("GRST_CONN_AURI_").or(idx("GRST_CONN_VALID_")) {
            !skip_idx.contains(&format!("conn{i}"))
        } else if k.starts_with("GRST_CRED_") {
            with_voms || !v.starts_with("VOMS ")
        } else if k == "GRST_VOMS_FQANS" {
            with_voms
        } else {
            matches!(
                k.as_str(),
                "SSL_CLIENT_S_DN"
                    | "SSL_CLIENT_I_DN"
                    | "SSL_CLIENT_CERT"
                    | "SSL_CLIENT_VERIFY"
                    | "SSL_CLIENT_M_SERIAL"
            ) || k.starts_with("SSL_CLIENT_CERT_CHAIN_")
                || k == "GRST_ROBOT_DN"
        };
        if keep {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

#[test]
fn fedgate_agrees_with_apache_gridsite() {
    let Some(p) = pki() else { return };
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("SKIP: curl not installed");
        return;
    }
    let Some(_apache) = start(p) else { return };
    let mut cases: Vec<String> = std::fs::read_dir(p.dir.join("creds"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".pem") && !n.starts_with('.'))
        .map(|n| n.trim_end_matches(".pem").to_string())
        .collect();
    cases.sort();
    assert!(cases.len() >= 30, "{cases:?}");
    let mut compared = 0;
    let mut compared_fqans = 0;
    let mut report = Vec::new();
    for case in &cases {
        let gs = gridsite_env(p, case);
        let fg = fedgate_info(p, case);
        let fg_ok = fg["valid"].as_bool().unwrap();
        let gs_ok = gs.is_some();
        report.push(format!(
            "{case}: gridsite {gs_ok} fedgate {fg_ok} {}",
            fg["reasons"]
        ));
        match DIFFERENCES.iter().find(|d| d.0 == case) {
            Some(&(_, g, f, why)) => {
                assert_eq!(
                    (gs_ok, fg_ok),
                    (g, f),
                    "{case}: documented difference ({why}) no longer holds"
                );
                continue;
            }
            None => assert_eq!(
                gs_ok, fg_ok,
                "{case}: gridsite and fedgate disagree; fedgate: {}",
                fg["reasons"]
            ),
        }
        let Some(gs) = gs else { continue };
        let with_voms = !fg["voms"].is_null();
        let mut want = comparable(&gs, with_voms);
        // curl (OpenSSL) appends its own trust anchor when the credential
        // file holds a single certificate; x509-info only sees the file.
        let sent = std::fs::read_to_string(p.cred(case)).unwrap();
        want.retain(|k, v| !k.starts_with("SSL_CLIENT_CERT_CHAIN_") || sent.contains(v.trim_end()));
        let got: BTreeMap<String, String> = fg["env"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let got = comparable(&got, with_voms);
        assert!(want.contains_key("GRST_CONN_AURI_0"), "{case}: {gs:?}");
        assert_eq!(got, want, "{case}: values differ from gridsite");
        compared += 1;
        if got.values().any(|v| v.starts_with("fqan:")) {
            compared_fqans += 1;
        }
    }
    eprintln!("{}", report.join("\n"));
    eprintln!("{compared} cases compared, {compared_fqans} of them with fqan: credentials");
    assert!(compared >= 15, "only {compared} cases compared");
    // The VOMS cases must be among them: FQAN credentials (GRST_CONN_AURI_n
    // = fqan:..., GRST_CRED_n = VOMS ..., GRST_VOMS_FQANS) compared live.
    assert!(
        compared_fqans >= 3,
        "only {compared_fqans} VOMS cases compared"
    );
}
