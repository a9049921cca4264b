//! `fedgate images verify`: judges a signed HEPiX image list offline, as
//! the image plugin would, and prints what would be accepted and why.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::pki::{TrustStore, Validator, X509Config, unix_now};
use crate::services::images::accept::{self, Decision, Pinned, Subscription, TrustedEndorser};
use crate::services::images::{list, smime};

/// The arguments of `images verify`.
pub struct VerifyArgs {
    pub list: PathBuf,
    pub ca_dir: PathBuf,
    pub trusted: Vec<String>,
    pub previous: Option<PathBuf>,
    pub others: Vec<PathBuf>,
    pub json: bool,
}

fn read(p: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
}

/// The JSON of a list file kept as state (previously accepted, or another
/// subscription's): signed or plain; its signature is not checked again.
fn state_list(p: &Path) -> Result<list::ImageList, String> {
    let data = read(p)?;
    let content = match smime::parse(&data) {
        Ok(smime::Envelope::Detached { content, .. }) => content,
        _ => data,
    };
    list::parse(smime::json_body(&content)).map_err(|e| format!("{}: {e}", p.display()))
}

fn subscription(a: &VerifyArgs) -> Result<Subscription, String> {
    let mut sub = Subscription {
        trusted: a
            .trusted
            .iter()
            .map(|dn| TrustedEndorser {
                dn: dn.clone(),
                ca: None,
            })
            .collect(),
        ..Subscription::default()
    };
    if let Some(p) = &a.previous {
        let l = state_list(p)?;
        sub.previous = Some(Pinned {
            identifier: l.identifier,
            version: l.version,
        });
    }
    let mut taken = HashMap::new();
    for p in &a.others {
        let l = state_list(p)?;
        for i in l.images {
            taken.insert(i.identifier, l.identifier.clone());
        }
    }
    sub.taken = taken;
    Ok(sub)
}

/// Runs the subcommand; returns the exit code: 0 acceptable, 1 refused,
/// 2 usage or I/O error.
pub fn verify(a: &VerifyArgs) -> u8 {
    let prepared = read(&a.list).and_then(|msg| Ok((msg, subscription(a)?)));
    let (msg, sub) = match prepared {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let (store, problems) = match TrustStore::load(&a.ca_dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "error: cannot read CA directory {}: {e}",
                a.ca_dir.display()
            );
            return 2;
        }
    };
    for p in &problems {
        eprintln!("warning: skipped {p}");
    }
    let validator = Validator::new(Arc::new(store), X509Config::default());
    let d = accept::evaluate(&msg, &validator, &sub, unix_now());
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&d.to_json()).unwrap_or_default()
        );
    } else {
        print_text(&d);
    }
    if d.accepted() { 0 } else { 1 }
}

fn print_text(d: &Decision) {
    if let Some((s, i)) = &d.signer {
        println!("signer    : {s}");
        println!("issuer    : {i}");
    }
    if let Some(l) = &d.list {
        println!("list      : {} ({})", l.identifier, l.title);
        println!("version   : {}", l.version);
        println!("expires   : {}", l.expires_text);
    }
    println!(
        "verdict   : {}",
        if d.accepted() { "ACCEPTED" } else { "REFUSED" }
    );
    for r in &d.reasons {
        println!("reason    : {r}");
    }
    for n in &d.notes {
        println!("note      : {n}");
    }
    for v in &d.images {
        let title = v.image.title.as_deref().unwrap_or("");
        match &v.refused {
            None => println!(
                "image     : {} {title:?} {}: accepted",
                v.image.identifier, v.image.version
            ),
            Some(r) => println!(
                "image     : {} {title:?} {}: refused, {r}",
                v.image.identifier, v.image.version
            ),
        }
    }
}

/// The arguments of `images fetch`.
pub struct FetchArgs {
    pub config: PathBuf,
    pub url: String,
    pub sha512: String,
    pub size: u64,
    pub format: Option<String>,
    pub id: Option<String>,
}

/// Runs `images fetch`; returns the exit code: 0 staged, 1 refused, 2
/// usage or configuration error.
pub async fn fetch(a: FetchArgs) -> u8 {
    use crate::services::images::candidate::{Candidate, Location, SourceKind};
    use crate::services::images::download::Stager;
    use crate::services::images::fetch_config::FetchConfig;

    let cfg = match read(&a.config).and_then(|t| {
        let text = String::from_utf8_lossy(&t).into_owned();
        toml::from_str::<FetchConfig>(&text).map_err(|e| format!("{}: {e}", a.config.display()))
    }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let stager = match Stager::new(&cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let id = a.id.clone().unwrap_or_else(|| a.url.clone());
    let c = Candidate {
        identifier: id.clone(),
        kind: SourceKind::HepixList,
        title: id.clone(),
        description: None,
        version: String::new(),
        vo: None,
        declared_format: a.format,
        mpuri: None,
        arch: None,
        os_distro: None,
        os_version: None,
        expires: None,
        list_identifier: String::new(),
        attributes: Default::default(),
        location: Location::Http {
            url: a.url,
            sha512: a.sha512.to_ascii_lowercase(),
            size: a.size,
        },
    };
    match stager.stage(&c, None).await {
        Ok(s) => {
            let v = serde_json::json!({
                "path": s.path,
                "size": s.size,
                "disk_format": s.disk_format,
                "container_format": s.container_format,
                "downloaded_format": s.downloaded_format.glance(),
                "mislabelled": s.mislabelled,
                "checksum": s.checksum,
                "reused": s.reused,
                "converted": s.converted,
            });
            println!("{v}");
            0
        }
        Err(e) => {
            eprintln!("refused: {e}");
            1
        }
    }
}
