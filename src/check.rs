//! `fedgate check-config`: everything that can be checked without serving.

use std::path::Path;
use std::process::ExitCode;

use crate::config::{Config, Problems};
use crate::pki::TrustStore;

/// Runs every check and prints problems (with file and line) and a summary.
pub async fn check_config(path: &Path) -> ExitCode {
    let cfg = match Config::load(path) {
        Ok(c) => c,
        Err(p) => {
            crate::cli::report(&p);
            return ExitCode::from(2);
        }
    };
    let (problems, notes) = check(&cfg).await;
    for n in &notes {
        println!("{n}");
    }
    if problems.is_empty() {
        println!("{}: configuration OK", path.display());
        ExitCode::SUCCESS
    } else {
        crate::cli::report(&problems);
        eprintln!("{}: {} problem(s)", path.display(), problems.0.len());
        ExitCode::from(2)
    }
}

/// All problems found, plus informational lines for the summary.
pub async fn check(cfg: &Config) -> (Problems, Vec<String>) {
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
    if let Ok(t) = crate::upstream::Target::parse(cfg.upstream.url.get_ref()) {
        match t.probe(cfg.upstream.connect_timeout()).await {
            Ok(a) => notes.push(format!("upstream {} reachable at {a}", t.authority())),
            Err(e) => {
                problems.push(src.problem(&cfg.upstream.url, format!("{e} ({})", t.authority())))
            }
        }
    }
    (problems, notes)
}
