//! `[plugins.images]`: the scheduled image sync, and the one-shot runs of
//! `fedgate images sync` and `fedgate images status`.
//!
//! ```toml
//! [plugins.images]
//! schedule = "every 4h"
//! glance_url = "https://glance.example.org:9292"   # else the catalog's `image`
//! tag = "fedgate"                                   # marks the managed images
//! grace_period = "7d"                               # retired → deleted
//! vo_map_file = "/etc/fedgate/voms.json"            # cloudkeeper-os / cASO / atrope JSON
//!
//! [plugins.images.projects]                         # VO → member projects (names or ids)
//! "vo.example.org" = ["vo-example-1", "vo-example-2"]
//!
//! [plugins.images.auth]
//! url = "https://keystone.example.org:5000/v3"
//! username = "fedgate-images"
//! password = "env:FEDGATE_IMAGES_PASSWORD"
//! project = "fedgate-images"                        # owns the images
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use toml::Spanned;

use super::accept::{Code, Pinned, Subscription, TrustedEndorser};
use super::candidate::Candidate;
use super::download::{StagedImage, Stager};
use super::fetch;
use super::fetch_config::FetchConfig;
use super::glance::Glance;
use super::mapping::{self, ProjectRef};
use super::plan::{Desired, ID_PROP, RETIRED_PROP, SOURCE_PROP};
use super::registry::Registry;
use super::sync::{self, Outcome, SyncOptions};
use super::transport::Transport;
use crate::openstack::session::{AuthOptions, Credentials, Scope, Session};
use crate::pki::{TrustStore, Validator, X509Config};
use crate::problem::{Problems, Source};
use crate::secret::Secret;
use crate::services::ServiceError;
use crate::services::schedule::{Plugin, RunReport, Schedule};
use crate::shutdown::Shutdown;

fn default_schedule() -> Spanned<String> {
    Spanned::new(0..0, "every 4h".into())
}
fn default_tag() -> String {
    "fedgate".into()
}
fn default_grace() -> Spanned<String> {
    Spanned::new(0..0, "7d".into())
}
fn default_domain() -> String {
    "Default".into()
}
fn default_interface() -> String {
    "public".into()
}
fn default_timeout() -> u64 {
    60
}

/// `[plugins.images.auth]`: the Keystone user (or application
/// credential) that owns the images. Sharing needs a password user with a
/// role on each member project: Glance lets only the member accept.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Keystone's URL, with or without `/v3`.
    pub url: Spanned<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default = "default_domain")]
    pub user_domain: String,
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default)]
    pub application_credential_id: Option<String>,
    #[serde(default)]
    pub application_credential_secret: Option<Secret>,
    /// The project that owns the images: by name (with `project_domain`)
    /// or by id.
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub project_id: Option<String>,
    #[serde(default = "default_domain")]
    pub project_domain: String,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default = "default_interface")]
    pub interface: String,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

/// `[plugins.images]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImagesConfig {
    /// `every 4h`, `hourly 5`, `daily 03:15`.
    #[serde(default = "default_schedule")]
    pub schedule: Spanned<String>,
    pub auth: AuthConfig,
    /// Glance's URL; without it, the catalog's `image` endpoint.
    #[serde(default)]
    pub glance_url: Option<Spanned<String>>,
    /// The Glance tag of the images the sync manages; it never touches
    /// others.
    #[serde(default = "default_tag")]
    pub tag: String,
    /// How long a retired (deactivated) image is kept before it is
    /// deleted: `<n>s|m|h|d`.
    #[serde(default = "default_grace")]
    pub grace_period: Spanned<String>,
    /// VO → member projects (names or ids).
    #[serde(default)]
    pub projects: BTreeMap<String, Vec<String>>,
    /// A VO → project JSON file (cloudkeeper-os `mapping.json`, cASO
    /// `voms.json`, atrope's), merged with `projects`.
    #[serde(default)]
    pub vo_map_file: Option<Spanned<PathBuf>>,
    /// IGTF CA directory that list signatures chain to.
    #[serde(default = "default_ca_dir")]
    pub ca_dir: Spanned<PathBuf>,
    /// Downloading and staging (`[plugins.images.staging]`): staging_dir,
    /// max_image_size, disk_budget, convert_to, appdb_token, ...
    #[serde(default)]
    pub staging: Option<FetchConfig>,
    /// Signed HEPiX image lists (`[[plugins.images.subscription]]`).
    #[serde(default, rename = "subscription")]
    pub subscriptions: Vec<SubscriptionConfig>,
}

fn default_ca_dir() -> Spanned<PathBuf> {
    Spanned::new(0..0, "/etc/grid-security/certificates".into())
}

/// `[[plugins.images.subscription]]`: one signed image list.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionConfig {
    pub url: Spanned<String>,
    /// The VO whose projects get the images; default: the list's `ad:vo`.
    #[serde(default)]
    pub vo: Option<String>,
    /// Signer subject DNs trusted for this list (OpenSSL one-line form),
    /// each optionally with its issuer: `{ dn = "...", ca = "..." }`.
    pub endorsers: Vec<EndorserConfig>,
    /// AppDB token for this list (else `staging.appdb_token`).
    #[serde(default)]
    pub token: Option<Secret>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndorserConfig {
    pub dn: String,
    #[serde(default)]
    pub ca: Option<String>,
}

/// `<n>s|m|h|d` in seconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?}: no unit (s, m, h or d)"))?;
    let n: u64 = t[..split]
        .parse()
        .map_err(|_| format!("{text:?}: not a number"))?;
    let unit = match &t[split..] {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        u => return Err(format!("{text:?}: unknown unit {u:?} (s, m, h or d)")),
    };
    n.checked_mul(unit)
        .ok_or_else(|| format!("{text:?}: too long"))
}

impl ImagesConfig {
    pub(crate) fn validate(&self, src: &Source, p: &mut Problems) {
        if let Err(e) = Schedule::parse(self.schedule.get_ref()) {
            p.push(src.problem(&self.schedule, format!("plugins.images.schedule: {e}")));
        }
        if let Err(e) = parse_duration(self.grace_period.get_ref()) {
            p.push(src.problem(
                &self.grace_period,
                format!("plugins.images.grace_period: {e}"),
            ));
        }
        if let Some(u) = &self.glance_url {
            if !(u.get_ref().starts_with("http://") || u.get_ref().starts_with("https://")) {
                p.push(src.problem(u, "plugins.images.glance_url must be an http(s) URL"));
            }
        }
        let a = &self.auth;
        if !(a.url.get_ref().starts_with("http://") || a.url.get_ref().starts_with("https://")) {
            p.push(src.problem(&a.url, "plugins.images.auth.url must be an http(s) URL"));
        }
        if let Err(e) = self.credentials() {
            p.push(src.problem(&a.url, format!("plugins.images.auth: {e}")));
        }
        if a.timeout_secs == 0 {
            p.push(src.problem(
                &a.url,
                "plugins.images.auth.timeout_secs must be at least 1",
            ));
        }
        if let Some(f) = &self.vo_map_file {
            if let Err(e) = read_map_file(f.get_ref()) {
                p.push(src.problem(f, format!("plugins.images.vo_map_file: {e}")));
            }
        }
        for sub in &self.subscriptions {
            let u = sub.url.get_ref();
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                p.push(src.problem(
                    &sub.url,
                    "plugins.images.subscription.url must be an http(s) URL",
                ));
            }
            if sub.endorsers.is_empty() {
                p.push(src.problem(
                    &sub.url,
                    "plugins.images.subscription: endorsers is empty, so every list would be refused",
                ));
            }
        }
        match &self.staging {
            Some(f) => f.validate(src, p),
            None if !self.subscriptions.is_empty() => p.push(src.problem(
                &self.subscriptions[0].url,
                "plugins.images: subscriptions need a [plugins.images.staging] section (staging_dir)",
            )),
            None => {}
        }
        if self.tag.trim().is_empty() {
            p.push(src.problem(&self.schedule, "plugins.images.tag must not be empty"));
        }
    }

    fn credentials(&self) -> Result<(Credentials, Scope), String> {
        let a = &self.auth;
        let creds = match (
            &a.username,
            &a.password,
            &a.application_credential_id,
            &a.application_credential_secret,
        ) {
            (Some(u), Some(p), None, None) => Credentials::Password {
                username: u.clone(),
                user_domain: a.user_domain.clone(),
                password: p.clone(),
            },
            (None, None, Some(id), Some(s)) => Credentials::ApplicationCredential {
                id: id.clone(),
                secret: s.clone(),
            },
            _ => {
                return Err(
                    "give either username and password, or application_credential_id and application_credential_secret"
                        .into(),
                );
            }
        };
        let scope = match (&a.project, &a.project_id, &creds) {
            (_, _, Credentials::ApplicationCredential { .. }) => Scope::Unscoped,
            (Some(n), None, _) => Scope::ProjectName {
                name: n.clone(),
                domain: a.project_domain.clone(),
            },
            (None, Some(id), _) => Scope::ProjectId(id.clone()),
            _ => {
                return Err(
                    "give one of project and project_id: the project that owns the images".into(),
                );
            }
        };
        Ok((creds, scope))
    }

    pub fn auth_options(&self) -> Result<AuthOptions, String> {
        let (credentials, scope) = self.credentials()?;
        Ok(AuthOptions {
            auth_url: self.auth.url.get_ref().clone(),
            credentials,
            scope,
            region: self.auth.region.clone(),
            interface: self.auth.interface.clone(),
            ca_file: self.auth.ca_file.clone(),
            timeout: Duration::from_secs(self.auth.timeout_secs.max(1)),
        })
    }

    pub fn sync_options(&self) -> Result<SyncOptions, String> {
        let grace = parse_duration(self.grace_period.get_ref())?;
        Ok(SyncOptions {
            glance_url: self.glance_url.as_ref().map(|u| u.get_ref().clone()),
            tag: self.tag.clone(),
            grace_secs: i64::try_from(grace).unwrap_or(i64::MAX),
        })
    }

    /// The VO → project references of the table and the file.
    pub fn project_refs(&self) -> Result<BTreeMap<String, Vec<ProjectRef>>, String> {
        let mut map = match &self.vo_map_file {
            Some(f) => read_map_file(f.get_ref())?,
            None => BTreeMap::new(),
        };
        for (vo, list) in &self.projects {
            let e: &mut Vec<ProjectRef> = map.entry(vo.clone()).or_default();
            for p in list {
                let r = ProjectRef {
                    name_or_id: p.clone(),
                    domain: None,
                };
                if !e.contains(&r) {
                    e.push(r);
                }
            }
        }
        Ok(map)
    }
}

fn read_map_file(p: &std::path::Path) -> Result<BTreeMap<String, Vec<ProjectRef>>, String> {
    let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
    mapping::parse_json(&text).map_err(|e| format!("{}: {e}", p.display()))
}

/// The desired images of one run, from the sources.
#[derive(Debug, Clone, Default)]
pub struct Gathered {
    pub desired: Vec<Desired>,
    /// Lists whose images must be kept as they are (fetch failed, refused).
    pub held_lists: HashSet<String>,
    /// Refusals, by reason code.
    pub refused: BTreeMap<String, u64>,
    /// The identifier and version of each accepted list, to remember once
    /// the sync has succeeded ([`commit_pins`]).
    pub pins: Vec<(PathBuf, Pinned)>,
}

/// Where a subscription's last accepted list is remembered: under the
/// staging directory, one file per list URL (without credentials). It
/// survives restarts and reloads, so a list whose identifier changes or
/// whose version goes back is refused (`ListIdChanged`,
/// `VersionRollback`) by the next run as by this one.
fn pin_path(staging_dir: &std::path::Path, plain_url: &str) -> PathBuf {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, plain_url.as_bytes());
    staging_dir
        .join("lists")
        .join(format!("{}.pin", hex::encode(&d.as_ref()[..16])))
}

/// The pin of a list, if one was committed: two lines, identifier and
/// version. An unreadable pin is no pin, with one log line (the list's own
/// signature and dates still apply).
fn read_pin(path: &std::path::Path) -> Option<Pinned> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(plugin = "images", path = %path.display(), error = %e, "list pin unreadable");
            return None;
        }
    };
    let mut lines = text.lines();
    Some(Pinned {
        identifier: lines.next()?.to_string(),
        version: lines.next()?.to_string(),
    })
}

/// Remembers the lists a successful sync used: written beside, fsynced,
/// renamed. Called only after the sync succeeded, so a failed run leaves
/// the previous pins (a plugin run that fails does not advance its state).
pub fn commit_pins(g: &Gathered) -> Result<(), String> {
    use std::io::Write;
    for (path, pin) in &g.pins {
        let dir = path.parent().ok_or("pin without a directory")?;
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let tmp = path.with_extension("pin.tmp");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            writeln!(f, "{}\n{}", pin.identifier, pin.version)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)?;
            std::fs::File::open(dir)?.sync_all()
        };
        write().map_err(|e| format!("list pin {}: {e}", path.display()))?;
    }
    Ok(())
}

/// A connected sync: session, Glance, member projects.
pub struct Context {
    pub session: Session,
    pub glance_url: String,
    pub opts: SyncOptions,
    pub projects: BTreeMap<String, Vec<String>>,
}

impl Context {
    pub async fn connect(cfg: &ImagesConfig) -> Result<Context, String> {
        let opts = cfg.sync_options()?;
        let auth = cfg.auth_options()?;
        let session = Session::new(auth)
            .await
            .map_err(|e| format!("Keystone: {e}"))?;
        let glance_url = sync::glance_url(&session, &opts)
            .await
            .map_err(|e| format!("Glance URL: {e}"))?;
        let refs = cfg.project_refs()?;
        let projects = if refs.is_empty() {
            BTreeMap::new()
        } else {
            let known = sync::known_projects(&session)
                .await
                .map_err(|e| format!("listing the sync user's projects: {e}"))?;
            mapping::resolve(&refs, &known)?
        };
        Ok(Context {
            session,
            glance_url,
            opts,
            projects,
        })
    }

    pub fn glance(&self) -> Glance<'_> {
        Glance::new(&self.session, &self.glance_url)
    }

    /// Plans, and applies unless `dry_run`.
    pub async fn sync(
        &self,
        g: &Gathered,
        dry_run: bool,
        now: i64,
        stop: &Shutdown,
    ) -> Result<Outcome, String> {
        let glance = self.glance();
        let plan = sync::compute(
            &glance,
            &self.opts,
            &g.desired,
            &self.projects,
            &g.held_lists,
            now,
        )
        .await
        .map_err(|e| format!("reading Glance: {e}"))?;
        let mut out = if dry_run {
            Outcome {
                plan: plan.describe(&g.desired),
                ..Outcome::default()
            }
        } else {
            sync::apply(&glance, &self.opts, &plan, &g.desired, now, stop).await
        };
        for (k, n) in &g.refused {
            *out.counts.entry(format!("refused_{k}")).or_default() += n;
        }
        let refused: u64 = g.refused.values().sum();
        out.counts.insert("refused".into(), refused);
        if dry_run {
            out.counts
                .insert("planned".into(), plan.actions.len() as u64);
            out.counts.insert("unchanged".into(), plan.unchanged as u64);
        }
        Ok(out)
    }

    /// Each managed image: identifier, version, Glance id, state, members.
    pub async fn status(&self) -> Result<Value, String> {
        let glance = self.glance();
        let managed = sync::managed(&glance, &self.opts.tag)
            .await
            .map_err(|e| format!("reading Glance: {e}"))?;
        let mut images: Vec<Value> = managed
            .iter()
            .map(|e| {
                let i = &e.image;
                json!({
                    "identifier": i.prop(ID_PROP),
                    "version": i.prop("APPLIANCE_VERSION"),
                    "vo": i.prop("APPLIANCE_VO"),
                    "list": i.prop("image_list"),
                    "glance_id": i.id,
                    "name": i.name,
                    "state": i.status,
                    "retired_at": i.prop(RETIRED_PROP).and_then(|t| t.parse::<i64>().ok()),
                    "members": e.members.iter().map(|m| json!({"project": m.project, "status": m.status})).collect::<Vec<_>>(),
                })
            })
            .collect();
        images.sort_by_key(|v| (v["identifier"].to_string(), v["glance_id"].to_string()));
        Ok(json!({ "glance_url": self.glance_url, "tag": self.opts.tag, "images": images }))
    }
}

/// Collects the desired images from the subscribed lists: fetch, judge
/// (B4), stage each accepted image. A list that cannot be fetched or is
/// refused, or one of whose images cannot be staged, is *held*: its images
/// in Glance stay as they are. An expired list's images are not desired
/// (they are retired).
pub async fn gather(cfg: &ImagesConfig, now: i64, stop: &Shutdown) -> Result<Gathered, String> {
    let mut g = Gathered::default();
    let registry = cfg.staging.as_ref().and_then(|s| s.registry.as_ref());
    if cfg.subscriptions.is_empty() && registry.is_none() {
        return Ok(g);
    }
    let staging = cfg
        .staging
        .as_ref()
        .ok_or("subscriptions need a [plugins.images.staging] section")?;
    let stager = Stager::new(staging).map_err(|e| e.to_string())?;
    let transport = Transport::new(
        staging.ca_file.as_deref(),
        Duration::from_secs(staging.timeout_secs.max(1)),
        staging.allow_http,
    )
    .map_err(|e| e.to_string())?;
    // Signed lists need the IGTF store; a registry-only site need not
    // have one.
    let validator = if cfg.subscriptions.is_empty() {
        None
    } else {
        let (store, _) = TrustStore::load(cfg.ca_dir.get_ref())
            .map_err(|e| format!("CA directory {}: {e}", cfg.ca_dir.get_ref().display()))?;
        Some(Validator::new(Arc::new(store), X509Config::default()))
    };
    let mut taken: HashMap<String, String> = HashMap::new();
    let refuse = |g: &mut Gathered, code: &str| {
        *g.refused.entry(code.to_string()).or_default() += 1;
    };
    let subscriptions: Vec<_> = match &validator {
        Some(v) => cfg.subscriptions.iter().map(|s| (v, s)).collect(),
        None => Vec::new(),
    };
    for (validator, s) in subscriptions {
        if stop.is_triggered() {
            return Err("stopped".into());
        }
        let (plain_url, _) = fetch::credentials(s.url.get_ref(), None);
        let sub = Subscription {
            trusted: s
                .endorsers
                .iter()
                .map(|e| TrustedEndorser {
                    dn: e.dn.clone(),
                    ca: e.ca.clone(),
                })
                .collect(),
            previous: read_pin(&pin_path(staging.staging_dir.get_ref(), &plain_url)),
            taken: taken.clone(),
        };
        let token = s.token.as_ref().or(staging.appdb_token.as_ref());
        let d = match fetch::fetch_and_evaluate(
            &transport,
            s.url.get_ref(),
            token,
            validator,
            &sub,
            now,
        )
        .await
        {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(plugin = "images", list = %plain_url, error = %e, "image list not fetched; its images are kept");
                g.held_lists.insert(plain_url.clone());
                refuse(&mut g, e.code());
                continue;
            }
        };
        let Some(list) = d
            .list
            .clone()
            .filter(|_| d.accepted() || d.has(Code::Expired))
        else {
            let why: Vec<String> = d.reasons.iter().map(ToString::to_string).collect();
            tracing::warn!(plugin = "images", list = %plain_url, reasons = %why.join("; "), "image list refused; its images are kept");
            g.held_lists.insert(plain_url.clone());
            if let Some(l) = &d.list {
                g.held_lists.insert(l.identifier.clone());
            }
            for r in &d.reasons {
                refuse(&mut g, r.code.as_str());
            }
            continue;
        };
        g.pins.push((
            pin_path(staging.staging_dir.get_ref(), &plain_url),
            Pinned {
                identifier: list.identifier.clone(),
                version: list.version.clone(),
            },
        ));
        for v in &d.images {
            if let Some(r) = &v.refused {
                refuse(&mut g, r.code.as_str());
                continue;
            }
            taken.insert(v.image.identifier.clone(), list.identifier.clone());
            let c = Candidate::from_list(&list, &v.image);
            match stager.stage(&c, None).await {
                Ok(st) => {
                    let vo = s.vo.clone().or_else(|| c.vo.clone()).unwrap_or_default();
                    g.desired.push(desired_of(&c, &st, vo, &plain_url));
                }
                Err(e) => {
                    tracing::warn!(plugin = "images", image = %c.identifier, error = %e, "image not staged; its list's images are kept");
                    g.held_lists.insert(list.identifier.clone());
                    refuse(&mut g, e.code());
                }
            }
        }
    }
    if let Some(rc) = registry {
        gather_registry(rc, staging, &stager, &mut g, stop).await?;
    }
    Ok(g)
}

/// The EGI registry source (B9): every tagged artifact, staged by digest.
/// A registry that cannot be listed, or an artifact that cannot be staged,
/// holds the registry's images in Glance as they are.
async fn gather_registry(
    rc: &super::fetch_config::RegistryConfig,
    staging: &FetchConfig,
    stager: &Stager,
    g: &mut Gathered,
    stop: &Shutdown,
) -> Result<(), String> {
    let reg = Registry::new(rc, staging).map_err(|e| e.to_string())?;
    let source = reg.url();
    let listing = match reg.candidates().await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(plugin = "images", registry = %source, error = %e, "registry not listed; its images are kept");
            g.held_lists.insert(source);
            *g.refused.entry(e.code().to_string()).or_default() += 1;
            return Ok(());
        }
    };
    for s in &listing.skipped {
        if s.reason != "NotTagged" {
            *g.refused.entry(s.reason.to_string()).or_default() += 1;
        }
    }
    for c in &listing.candidates {
        if stop.is_triggered() {
            return Err("stopped".into());
        }
        let Some(vo) = c.vo.clone() else {
            tracing::warn!(plugin = "images", image = %c.identifier, "registry artifact names no VO; skipped");
            *g.refused.entry("NoVo".into()).or_default() += 1;
            continue;
        };
        match stager.stage(c, Some(&reg)).await {
            Ok(st) => g.desired.push(desired_of(c, &st, vo, &source)),
            Err(e) => {
                tracing::warn!(plugin = "images", image = %c.identifier, error = %e, "artifact not staged; the registry's images are kept");
                g.held_lists.insert(source.clone());
                *g.refused.entry(e.code().to_string()).or_default() += 1;
            }
        }
    }
    Ok(())
}

/// The Glance-side description of a staged candidate.
pub fn desired_of(c: &Candidate, st: &StagedImage, vo: String, source: &str) -> Desired {
    let mut properties = BTreeMap::new();
    let mut put = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            properties.insert(k.to_string(), v.clone());
        }
    };
    put("os_distro", &c.os_distro);
    put("os_version", &c.os_version);
    put("architecture", &c.arch);
    put("vmcatcher_event_dc_description", &c.description);
    properties.insert(SOURCE_PROP.into(), source.to_string());
    if let Ok(a) = serde_json::to_string(&c.attributes) {
        properties.insert("APPLIANCE_ATTRIBUTES".into(), a);
    }
    let sha512 = st
        .checksum
        .strip_prefix("sha512:")
        .unwrap_or(&st.checksum)
        .to_string();
    Desired {
        identifier: c.identifier.clone(),
        title: c.title.clone(),
        version: c.version.clone(),
        vo,
        list_identifier: c.list_identifier.clone(),
        mpuri: c.mpuri.clone(),
        disk_format: st.disk_format.clone(),
        container_format: st.container_format.clone(),
        file: st.path.clone(),
        size: st.size,
        // The staged file is the download itself unless converted.
        file_sha512: (!st.converted && st.checksum.starts_with("sha512:")).then(|| sha512.clone()),
        sha512,
        properties,
    }
}

/// The image plugin, run by [`Scheduled`](crate::services::schedule::Scheduled).
pub struct Images {
    cfg: ImagesConfig,
    schedule: Schedule,
}

impl Plugin for Images {
    type Config = ImagesConfig;
    const NAME: &'static str = "images";

    fn build(cfg: &ImagesConfig) -> Result<Self, ServiceError> {
        let schedule = Schedule::parse(cfg.schedule.get_ref())
            .map_err(|e| ServiceError::new(Self::NAME, e.to_string()))?;
        cfg.sync_options()
            .and_then(|_| cfg.auth_options())
            .map_err(|e| ServiceError::new(Self::NAME, e))?;
        Ok(Images {
            cfg: cfg.clone(),
            schedule,
        })
    }

    fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    async fn run_once(&self, stop: &Shutdown) -> Result<RunReport, String> {
        let now = crate::pki::unix_now();
        let ctx = Context::connect(&self.cfg).await?;
        let g = gather(&self.cfg, now, stop).await?;
        let out = ctx.sync(&g, false, now, stop).await?;
        if !out.errors.is_empty() {
            return Err(format!(
                "{} of the sync's steps failed: {}",
                out.errors.len(),
                out.errors.join("; ")
            ));
        }
        commit_pins(&g)?;
        Ok(RunReport { counts: out.counts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ImagesConfig, toml::de::Error> {
        toml::from_str(text)
    }

    const BASE: &str = "[auth]\nurl = \"http://ks:5000/v3\"\nusername = \"u\"\npassword = \"p\"\nproject = \"ops\"\n";

    #[test]
    fn list_pins_survive_in_the_staging_directory() {
        let dir = tempfile::tempdir().unwrap();
        let url = "https://vmcaster.appdb.egi.eu/store/vo/vo.a/image.list";
        let path = pin_path(dir.path(), url);
        assert_eq!(path, pin_path(dir.path(), url), "one file per URL");
        assert_ne!(path, pin_path(dir.path(), "https://other/image.list"));
        assert_eq!(read_pin(&path), None, "nothing committed yet");
        let pin = Pinned {
            identifier: "list-id".into(),
            version: "20261203".into(),
        };
        let g = Gathered {
            pins: vec![(path.clone(), pin.clone())],
            ..Gathered::default()
        };
        commit_pins(&g).unwrap();
        assert_eq!(read_pin(&path), Some(pin.clone()));
        // What the next run judges the list against (accept.rs refuses a
        // changed identifier or an older version).
        let sub = Subscription {
            previous: read_pin(&path),
            ..Subscription::default()
        };
        assert_eq!(sub.previous, Some(pin));
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("7d"), Ok(7 * 86400));
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("0s"), Ok(0));
        for bad in ["7", "d", "7w", "", "x1s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_key_is_read() {
        let c = parse(&format!(
            "schedule = \"every 30m\"\nglance_url = \"http://g:9292\"\ntag = \"mine\"\ngrace_period = \"2h\"\n\
             [projects]\n\"vo.a\" = [\"a1\", \"a2\"]\n{BASE}user_domain = \"D\"\nproject_domain = \"P\"\n\
             region = \"R\"\ninterface = \"internal\"\ntimeout_secs = 5\nca_file = \"/x.pem\"\n"
        ))
        .unwrap();
        assert_eq!(
            Schedule::parse(c.schedule.get_ref()).unwrap().to_string(),
            "every 1800s"
        );
        let o = c.sync_options().unwrap();
        assert_eq!(o.glance_url.as_deref(), Some("http://g:9292"));
        assert_eq!((o.tag.as_str(), o.grace_secs), ("mine", 7200));
        let a = c.auth_options().unwrap();
        assert_eq!(a.auth_url, "http://ks:5000/v3");
        assert_eq!(
            a.scope,
            Scope::ProjectName {
                name: "ops".into(),
                domain: "P".into()
            }
        );
        assert!(
            matches!(&a.credentials, Credentials::Password { username, user_domain, .. } if username == "u" && user_domain == "D")
        );
        assert_eq!(a.region.as_deref(), Some("R"));
        assert_eq!(a.interface, "internal");
        assert_eq!(a.timeout, Duration::from_secs(5));
        assert_eq!(a.ca_file, Some(PathBuf::from("/x.pem")));
        let refs = c.project_refs().unwrap();
        assert_eq!(refs["vo.a"].len(), 2);
        // Defaults.
        let d = parse(BASE).unwrap();
        assert_eq!(d.sync_options().unwrap().grace_secs, 7 * 86400);
        assert_eq!(d.tag, "fedgate");
        assert!(d.sync_options().unwrap().glance_url.is_none());
        assert_eq!(
            Schedule::parse(d.schedule.get_ref()).unwrap().to_string(),
            "every 14400s"
        );
        // Unknown keys are errors.
        assert!(parse(&format!("grace = \"1d\"\n{BASE}")).is_err());
    }

    #[test]
    fn application_credentials_and_project_id() {
        let c = parse(
            "[auth]\nurl = \"http://ks\"\napplication_credential_id = \"i\"\napplication_credential_secret = \"s\"\n",
        )
        .unwrap();
        assert!(
            matches!(c.auth_options().unwrap().credentials, Credentials::ApplicationCredential { ref id, .. } if id == "i")
        );
        let c = parse("[auth]\nurl = \"http://ks\"\nusername = \"u\"\npassword = \"p\"\nproject_id = \"pid\"\n").unwrap();
        assert_eq!(
            c.auth_options().unwrap().scope,
            Scope::ProjectId("pid".into())
        );
    }

    #[test]
    fn problems_name_their_line() {
        let text = "schedule = \"weekly\"\ngrace_period = \"3w\"\nglance_url = \"ftp://g\"\nvo_map_file = \"/nonexistent/voms.json\"\n\
             [auth]\nurl = \"ks\"\nusername = \"u\"\nproject = \"p\"\n"
            .to_string();
        let c = parse(&text).unwrap();
        let src = Source {
            path: "f.toml".into(),
            text: text.clone(),
        };
        let mut p = Problems::default();
        c.validate(&src, &mut p);
        let all = p.to_string();
        for want in [
            "f.toml:1: plugins.images.schedule",
            "f.toml:2: plugins.images.grace_period",
            "f.toml:3: plugins.images.glance_url",
            "f.toml:4: plugins.images.vo_map_file",
            "f.toml:6: plugins.images.auth.url",
            "f.toml:6: plugins.images.auth: give either",
        ] {
            assert!(all.contains(want), "{want} in\n{all}");
        }
        assert!(Images::build(&c).is_err());
    }

    #[test]
    fn subscriptions_and_staging_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "ca_dir = \"/ca\"\n{BASE}[staging]\nstaging_dir = {:?}\n\
             [[subscription]]\nurl = \"https://l/image.list\"\nvo = \"vo.a\"\ntoken = \"t\"\n\
             endorsers = [{{ dn = \"/CN=e\", ca = \"/CN=ca\" }}]\n\
             [[subscription]]\nurl = \"ftp://x\"\nendorsers = []\n",
            dir.path().display().to_string()
        );
        let c = parse(&text).unwrap();
        assert_eq!(c.ca_dir.get_ref(), &PathBuf::from("/ca"));
        assert_eq!(c.subscriptions.len(), 2);
        let s = &c.subscriptions[0];
        assert_eq!(s.vo.as_deref(), Some("vo.a"));
        assert_eq!(s.token.as_ref().map(Secret::expose), Some("t"));
        assert_eq!(s.endorsers[0].ca.as_deref(), Some("/CN=ca"));
        assert_eq!(
            c.staging.as_ref().unwrap().staging_dir.get_ref(),
            &dir.path().to_path_buf()
        );
        let src = Source {
            path: "f.toml".into(),
            text: text.clone(),
        };
        let mut p = Problems::default();
        c.validate(&src, &mut p);
        let all = p.to_string();
        assert!(all.contains("subscription.url must be"), "{all}");
        assert!(all.contains("endorsers is empty"), "{all}");
        // Subscriptions without staging are refused.
        let c = parse(&format!(
            "{BASE}[[subscription]]\nurl = \"https://l\"\nendorsers = [{{ dn = \"/CN=e\" }}]\n"
        ))
        .unwrap();
        let mut p = Problems::default();
        c.validate(&src, &mut p);
        assert!(
            p.to_string().contains("need a [plugins.images.staging]"),
            "{p}"
        );
    }

    #[test]
    fn the_vo_map_file_merges_with_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("voms.json");
        std::fs::write(
            &f,
            r#"{"vo.a": {"tenant": "a0"}, "vo.b": {"projects": ["b1"]}}"#,
        )
        .unwrap();
        let c = parse(&format!(
            "vo_map_file = {:?}\n[projects]\n\"vo.a\" = [\"a1\"]\n{BASE}",
            f.display().to_string()
        ))
        .unwrap();
        let refs = c.project_refs().unwrap();
        let names = |vo: &str| {
            refs[vo]
                .iter()
                .map(|r| r.name_or_id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names("vo.a"), vec!["a0", "a1"]);
        assert_eq!(names("vo.b"), vec!["b1"]);
    }
}
