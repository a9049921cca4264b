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

/// Loads the configuration and checks its `[plugins.images]` section.
#[cfg(feature = "accounting")]
fn images_section(
    config: &Path,
) -> Result<
    (
        crate::config::Config,
        crate::services::images::plugin::ImagesConfig,
    ),
    u8,
> {
    let cfg = match crate::config::Config::load(config) {
        Ok(c) => c,
        Err(p) => {
            p.report();
            return Err(2);
        }
    };
    let Some(section) = cfg.plugins.images.clone() else {
        eprintln!("error: {}: no [plugins.images] section", config.display());
        return Err(2);
    };
    let mut p = crate::problem::Problems::default();
    section.validate(&cfg.source, &mut p);
    if !p.0.is_empty() {
        p.report();
        return Err(2);
    }
    Ok((cfg, section))
}

/// `fedgate images sync [--dry-run] [--json]`: 0 all steps succeeded,
/// 1 a step failed, 2 configuration or connection error.
#[cfg(feature = "accounting")]
pub async fn sync(config: &Path, dry_run: bool, json: bool) -> u8 {
    use crate::services::images::plugin::{Context, commit_pins, gather};
    let (_, section) = match images_section(config) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let stop = crate::shutdown::Shutdown::new();
    let now = unix_now();
    let run = async {
        let ctx = Context::connect(&section).await?;
        let g = gather(&section, now, &stop).await?;
        let out = ctx.sync(&g, dry_run, now, &stop).await?;
        if !dry_run && out.errors.is_empty() {
            commit_pins(&g)?;
        }
        Ok::<_, String>(out)
    };
    let out = match run.await {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    if json {
        let v = serde_json::json!({
            "dry_run": dry_run,
            "plan": out.plan,
            "counts": out.counts,
            "errors": out.errors,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        if out.plan.is_empty() {
            println!("nothing to do: Glance already holds the desired images");
        }
        for line in &out.plan {
            println!("{}{line}", if dry_run { "would " } else { "" });
        }
        let counts: Vec<String> = out.counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("counts: {}", counts.join(" "));
        for e in &out.errors {
            println!("failed: {e}");
        }
    }
    if out.errors.is_empty() { 0 } else { 1 }
}

/// `fedgate images status`: the managed images, and the running plugin's
/// last run from the admin listener (`--admin-url`, else the first
/// `admin.listen` address of the configuration).
#[cfg(feature = "accounting")]
pub async fn status(config: &Path, json: bool, admin_url: Option<&str>) -> u8 {
    use crate::services::images::plugin::Context;
    let (cfg, section) = match images_section(config) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let mut v = match Context::connect(&section).await {
        Ok(ctx) => match ctx.status().await {
            Ok(v) => v,
            Err(e) => {
                eprintln!("error: {e}");
                return 2;
            }
        },
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let admin = admin_url.map(str::to_string).or_else(|| {
        cfg.admin
            .listen
            .first()
            .map(|a| format!("http://{}", a.get_ref()))
    });
    let mut last_run = serde_json::Value::Null;
    if let Some(base) = &admin {
        let url = format!("{}/plugins/images", base.trim_end_matches('/'));
        if let Ok(c) = crate::http::client::HttpClient::new(None, std::time::Duration::from_secs(3))
        {
            if let Ok(a) = c.get(&url, None).await {
                if a.status.is_success() {
                    last_run = serde_json::from_slice(&a.body).unwrap_or_default();
                }
            }
        }
    }
    v["last_run"] = last_run.clone();
    if json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return 0;
    }
    println!("glance    : {}", v["glance_url"].as_str().unwrap_or(""));
    println!("tag       : {}", v["tag"].as_str().unwrap_or(""));
    let images = v["images"].as_array().cloned().unwrap_or_default();
    if images.is_empty() {
        println!("images    : none managed");
    }
    for i in images {
        let s = |k: &str| i[k].as_str().unwrap_or("-").to_string();
        let members: Vec<String> = i["members"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                format!(
                    "{}:{}",
                    m["project"].as_str().unwrap_or(""),
                    m["status"].as_str().unwrap_or("")
                )
            })
            .collect();
        let retired = i["retired_at"]
            .as_i64()
            .map(|t| format!(" retired_at={t}"))
            .unwrap_or_default();
        println!(
            "image     : {} version {} glance {} {}{} vo {} members [{}]",
            s("identifier"),
            s("version"),
            s("glance_id"),
            s("state"),
            retired,
            s("vo"),
            members.join(", ")
        );
    }
    match (&admin, last_run.is_null()) {
        (_, false) => println!(
            "last run  : result {} at {} counts {}",
            last_run["last_result"].as_str().unwrap_or("-"),
            last_run["last_end"],
            last_run["counts"]
        ),
        (Some(a), true) => println!("last run  : no running fedgate reported one at {a}"),
        (None, true) => println!("last run  : unknown (no admin listener)"),
    }
    0
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
