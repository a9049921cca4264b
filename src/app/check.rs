//! `fedgate check-config`: everything that can be checked without serving.
//!
//! Two kinds of findings are kept apart, because automation treats them
//! differently. A **configuration problem** (a bad value, a missing file,
//! a key that does not match its certificate) means the file must not be
//! deployed: exit 1. A **probe failure** (the upstream or an IdP does not
//! answer right now) says something about the environment: Keystone may be
//! restarting while a config management run or `ExecReload` checks the
//! file, so it is a warning (exit 0) unless `--strict` asks otherwise
//! (exit 2), and `--offline` does not probe at all.

use std::path::Path;
use std::process::ExitCode;

use crate::config::Config;
use crate::pki::TrustStore;
use crate::problem::Problems;

/// Whether to reach the upstream and the IdPs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probes {
    Run,
    Skip,
}

/// What `check` found.
#[derive(Debug, Default)]
pub struct Report {
    /// Configuration problems: the file must not be used.
    pub problems: Problems,
    /// Environment probes that failed (upstream, IdPs), with the line of
    /// the setting they probed.
    pub probes: Problems,
    /// Informational lines for the summary.
    pub notes: Vec<String>,
}

/// Exit status for configuration problems (also an unreadable file).
const EXIT_CONFIG: u8 = 1;
/// Exit status for a failed probe under `--strict`.
const EXIT_PROBE: u8 = 2;

/// Runs every check and prints problems (with file and line) and a summary.
pub async fn check_config(path: &Path, probes: Probes, strict: bool) -> ExitCode {
    let cfg = match Config::load(path) {
        Ok(c) => c,
        Err(p) => {
            p.report();
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let report = check(&cfg, probes).await;
    for n in &report.notes {
        println!("{n}");
    }
    for p in &report.probes.0 {
        eprintln!("warning: {p}");
    }
    if !report.problems.is_empty() {
        report.problems.report();
        eprintln!("{}: {} problem(s)", path.display(), report.problems.0.len());
        return ExitCode::from(EXIT_CONFIG);
    }
    if strict && !report.probes.is_empty() {
        eprintln!(
            "{}: configuration OK, but {} probe(s) failed (--strict)",
            path.display(),
            report.probes.0.len()
        );
        return ExitCode::from(EXIT_PROBE);
    }
    println!("{}: configuration OK", path.display());
    ExitCode::SUCCESS
}

/// All problems and probe failures found, plus informational lines.
pub async fn check(cfg: &Config, probes: Probes) -> Report {
    let mut problems = cfg.validate();
    let mut notes = Vec::new();
    let src = &cfg.source;
    let trust = match TrustStore::load(cfg.tls.ca_dir.get_ref()) {
        Ok((t, bad)) => {
            for b in bad {
                notes.push(format!("warning: {b} (skipped)"));
            }
            notes.push(format!(
                "ca_dir {}: {} CA certificates",
                cfg.tls.ca_dir.get_ref().display(),
                t.len()
            ));
            if let Some(p) = cfg.check_ca_count(t.len()) {
                problems.push(p);
            }
            t
        }
        Err(e) => {
            problems.push(src.problem(
                &cfg.tls.ca_dir,
                format!(
                    "tls.ca_dir {} cannot be read: {e}",
                    cfg.tls.ca_dir.get_ref().display()
                ),
            ));
            TrustStore::default()
        }
    };
    match crate::tls::server_config(&cfg.tls, &trust) {
        Ok(_) => notes.push(format!(
            "certificate {} and key match",
            cfg.tls.certificate.get_ref().display()
        )),
        Err(e) => problems.push(src.problem(e.config_key(&cfg.tls), e.to_string())),
    }
    for d in cfg.state_deprecations() {
        notes.push(format!("warning: {d}"));
    }
    let mut failed = Problems::default();
    if probes == Probes::Run {
        // The shared-state backend: connected like the upstream (under
        // Sentinel, the master is looked up first), so a wrong address,
        // password or CA shows up before the first login.
        if let Ok(state) = cfg.state()
            && state.settings.backend != crate::kv::BackendKind::Memory
        {
            let at = |m: String| match &cfg.state.backend {
                Some(b) => src.problem(b, m),
                None => src.file_problem(m),
            };
            match state.store() {
                Ok(store) => match store.probe().await {
                    Ok(a) => notes.push(format!(
                        "state: {} reachable: {a}",
                        state.settings.backend.as_str()
                    )),
                    Err(e) => failed.push(at(format!("[state]: {e}"))),
                },
                Err(e) => failed.push(at(format!("[state]: {e}"))),
            }
        }
        if let Ok(t) = crate::upstream::Target::parse(cfg.upstream.url.get_ref()) {
            match t.probe(cfg.upstream.connect_timeout()).await {
                Ok(a) => notes.push(format!("upstream {} reachable at {a}", t.authority())),
                Err(e) => {
                    failed.push(src.problem(&cfg.upstream.url, format!("{e} ({})", t.authority())))
                }
            }
        }
        for c in &cfg.idps {
            match probe_idp(c).await {
                Ok(note) => notes.push(note),
                Err(e) => failed.push(src.problem(&c.issuer, e)),
            }
        }
    }
    Report {
        problems,
        probes: failed,
        notes,
    }
}

/// Fetches an IdP's discovery document and key set the way the
/// authenticators will, so an unreachable IdP, an issuer mismatch or an
/// empty JWKS shows up before users do.
async fn probe_idp(c: &crate::oidc::IdpConfig) -> Result<String, String> {
    let idp = crate::oidc::Idp::build(c.clone()).map_err(|e| e.to_string())?;
    let name = &c.name;
    if c.static_metadata.is_none() {
        idp.discovery
            .fetch()
            .await
            .map_err(|e| format!("idp `{name}`: {e}"))?;
    }
    // Keys matter unless every token is introspected; the browser login
    // (ID tokens) needs them too, so a failure is still worth a warning.
    let needs_keys = c.validation != crate::oidc::Validation::Introspection;
    let keys: Result<usize, String> = match idp.jwks.keys_for(None).await {
        Ok(k) if !k.keys.is_empty() => Ok(k.keys.len()),
        Ok(_) => Err("its JWKS holds no key fedgate can use (RSA or EC signing keys)".into()),
        Err(e) => Err(e.to_string()),
    };
    let iss = c.issuer();
    match keys {
        Ok(n) => Ok(format!(
            "idp `{name}` ({iss}): discovery OK, {n} signing key(s)"
        )),
        Err(e) if needs_keys => Err(format!("idp `{name}`: {e}")),
        Err(e) => Ok(format!(
            "warning: idp `{name}` ({iss}): discovery OK, but {e} (tokens are only introspected)"
        )),
    }
}
