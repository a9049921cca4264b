//! `fedgate x509-info`: what fedgate concludes about a proxy or chain
//! file, certificate by certificate, and the exact values Keystone would
//! see. Admins use it to answer "what user name will this DN map to?".

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::auth::x509::{ConnVerdict, X509Authenticator};
use crate::pki::cert::{Cert, ProxyPolicy};
use crate::pki::{TrustStore, Validator, X509Config, unix_now};

fn role(c: &Cert, idx: usize, eec: usize) -> String {
    match &c.proxy {
        Some(p) => {
            let pol = match p.policy {
                ProxyPolicy::InheritAll => "full",
                ProxyPolicy::Limited => "limited",
                ProxyPolicy::Independent => "independent",
                ProxyPolicy::Restricted => "restricted",
            };
            format!("{} proxy ({pol})", p.kind.as_str())
        }
        None if idx == eec => "end-entity".into(),
        None if c.ca => "CA".into(),
        None => "other".into(),
    }
}

fn cert_json(c: &Cert, role: String) -> Value {
    json!({
        "role": role,
        "subject": c.subject,
        "issuer": c.issuer,
        "serial": c.serial_hex(),
        "not_before": c.not_before,
        "not_after": c.not_after,
        "signature": crate::pki::verify::alg_name(&c.sig_alg),
        "proxy_path_len": c.proxy.as_ref().and_then(|p| p.path_len),
        "key_usage": c.key_usage.map(crate::pki::cert::key_usage_names),
        "extended_key_usage": c.ext_key_usage.as_ref().map(|e| e.names.clone()),
        "voms_extension": c.has_voms_ext,
    })
}

/// The JSON report for a chain (leaf first) evaluated at `now`.
pub fn report(auth: &X509Authenticator, cv: &ConnVerdict, peer: Option<std::net::IpAddr>) -> Value {
    let v = &cv.verdict;
    let certs: Vec<Value> = v
        .certs
        .iter()
        .enumerate()
        .map(|(i, c)| cert_json(c, role(c, i, v.eec)))
        .collect();
    let path: Vec<Value> = v
        .path
        .iter()
        .map(|c| cert_json(c, "CA (path)".into()))
        .collect();
    let mut env = Map::new();
    if v.valid() {
        for (k, val) in auth.env(cv, peer) {
            env.insert(k, Value::String(String::from_utf8_lossy(&val).into_owned()));
        }
    }
    let mut reasons = v.reasons();
    if let Some(o) = &cv.voms {
        reasons.extend(o.refused.iter().cloned());
    }
    json!({
        "valid": v.valid(),
        "reasons": reasons,
        "notes": v.notes,
        "proxies": v.eec,
        "certificates": certs,
        "ca_path": path,
        "voms": cv.voms.as_ref().map(|o| json!({
            "carrier": o.carrier,
            "acs": o.acs.iter().map(|a| json!({"vo": a.vo, "uri": a.uri, "fqans": a.fqans,
                "not_before": a.not_before, "not_after": a.not_after, "server": a.server})).collect::<Vec<_>>(),
            "refused": o.refused,
        })),
        "env": env,
    })
}

/// Where x509-info finds its trust and how it reports.
pub struct Options {
    pub ca_dir: PathBuf,
    pub voms_dir: Option<PathBuf>,
    /// Names of this service for AC targets: the host certificate's
    /// subjectAltName, plus `targets`.
    pub host_cert: Option<PathBuf>,
    pub targets: Vec<String>,
    pub json: bool,
}

/// Runs the subcommand; returns the process exit code (0 valid, 1 invalid,
/// 2 usage or I/O error).
pub fn run(file: &Path, opts: &Options, cfg: X509Config) -> u8 {
    let (ca_dir, as_json) = (opts.ca_dir.as_path(), opts.json);
    let data = match std::fs::read(file) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", file.display());
            return 2;
        }
    };
    let chain = match crate::pki::cert::certs_from_pem(&data) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {}: {e}", file.display());
            return 2;
        }
    };
    let (store, problems) = match TrustStore::load(ca_dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot read CA directory {}: {e}", ca_dir.display());
            return 2;
        }
    };
    for p in &problems {
        eprintln!("warning: skipped {p}");
    }
    let mut vc = crate::voms::VomsConfig::default();
    if let Some(d) = &opts.voms_dir {
        vc.dir = toml::Spanned::new(0..0, d.clone());
    }
    vc.targets = opts.targets.clone();
    let mut voms = crate::voms::VomsSettings::from_config(&vc);
    if let Some(h) = &opts.host_cert {
        match crate::tls::host_names(h) {
            Ok(names) => voms.add_targets(names),
            Err(e) => {
                eprintln!("error: {e}");
                return 2;
            }
        }
    }
    let voms = Arc::new(voms);
    let auth = X509Authenticator::new(Arc::new(Validator::new(Arc::new(store), cfg)), voms);
    let now = unix_now();
    let cv = auth.evaluate(&chain, now);
    let rep = report(&auth, &cv, None);
    if !as_json {
        if let (Some(o), Some(eec)) = (&cv.voms, cv.verdict.eec()) {
            print!("{}", crate::voms::info::describe(o, &eec.subject, now));
        }
    }
    if as_json {
        println!("{}", serde_json::to_string_pretty(&rep).unwrap_or_default());
    } else {
        print_text(&rep);
    }
    if cv.verdict.valid() { 0 } else { 1 }
}

fn print_text(rep: &Value) {
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    for (i, c) in rep["certificates"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        println!("=== certificate #{i}: {} ===", s(&c["role"]));
        println!("subject   : {}", s(&c["subject"]));
        println!("issuer    : {}", s(&c["issuer"]));
        println!("serial    : {}", s(&c["serial"]));
        println!("validity  : {} .. {}", c["not_before"], c["not_after"]);
        println!("signature : {}", s(&c["signature"]));
        let names =
            |v: &Value| -> Vec<String> { v.as_array().into_iter().flatten().map(&s).collect() };
        let (ku, eku) = (names(&c["key_usage"]), names(&c["extended_key_usage"]));
        if !ku.is_empty() || !eku.is_empty() {
            println!("key usage : {}; {}", ku.join(", "), eku.join(", "));
        }
    }
    for c in rep["ca_path"].as_array().into_iter().flatten() {
        println!("trusted via: {}", s(&c["subject"]));
    }
    let valid = rep["valid"].as_bool().unwrap_or(false);
    println!("verdict   : {}", if valid { "VALID" } else { "INVALID" });
    for r in rep["reasons"].as_array().into_iter().flatten() {
        println!("reason    : {}", s(r));
    }
    for r in rep["notes"].as_array().into_iter().flatten() {
        println!("note      : {}", s(r));
    }
    if let Some(env) = rep["env"].as_object() {
        println!("--- values handed to Keystone ---");
        for (k, v) in env {
            if k.starts_with("SSL_CLIENT_CERT") {
                continue;
            }
            println!("{k}={}", s(v));
        }
    }
}
