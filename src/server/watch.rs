//! Reload when the files behind the configuration change: fetch-crl
//! rewrites CRLs every few hours and certificates get renewed, and neither
//! should need an operator to send SIGHUP.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::Shared;

/// Modification times and sizes of every watched file.
fn fingerprint(paths: &[PathBuf]) -> Vec<(PathBuf, Option<SystemTime>, u64)> {
    let mut out = Vec::new();
    for p in paths {
        push(p, &mut out);
        if p.is_dir() {
            if let Ok(rd) = std::fs::read_dir(p) {
                let mut entries: Vec<_> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
                entries.sort();
                for e in entries {
                    push(&e, &mut out);
                }
            }
        }
    }
    out
}

fn push(p: &Path, out: &mut Vec<(PathBuf, Option<SystemTime>, u64)>) {
    let md = std::fs::metadata(p).ok();
    out.push((
        p.to_path_buf(),
        md.as_ref().and_then(|m| m.modified().ok()),
        md.map(|m| m.len()).unwrap_or(0),
    ));
}

fn watched(shared: &Shared) -> Vec<PathBuf> {
    let rt = shared.runtime.load();
    let c = &rt.config;
    vec![
        c.source.path.clone(),
        c.tls.certificate.get_ref().clone(),
        c.tls.private_key.get_ref().clone(),
        c.tls.ca_dir.get_ref().clone(),
        c.voms.dir.get_ref().clone(),
    ]
}

/// Polls every `every` and reloads once a change has been stable for one
/// period (so a half-written file is not picked up).
pub async fn watch_files(shared: Arc<Shared>, every: Duration) {
    let mut last = fingerprint(&watched(&shared));
    let mut pending = false;
    loop {
        tokio::time::sleep(every).await;
        let now = fingerprint(&watched(&shared));
        if now != last {
            last = now;
            pending = true;
            continue;
        }
        if pending {
            pending = false;
            tracing::info!("watched files changed: reloading");
            let _ = shared.reload().await;
            last = fingerprint(&watched(&shared));
        }
    }
}
