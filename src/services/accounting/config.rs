//! `[plugins.accounting]`: cASO's options (`caso.conf`, spec A15) as a
//! TOML section, and what they resolve to ([`Settings`]: the extraction
//! options, the spool, the queues, the schedule).
//!
//! Names follow caso where a site already knows them (`site_name`,
//! `projects`, `vo_property`, `mapping_file`, `spooldir`, `lock_path`,
//! `output_path`, `max_size`, `record_types`, `[benchmark]`,
//! `[accelerator]`); `caso_tag` is `project_tag`, `extractor` is
//! `extractors`, `region_name` is `region`, and `[keystone_auth]` is
//! `[plugins.accounting.keystone]`. `fedgate accounting import-caso`
//! translates a `caso.conf`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::source::{ExtractOptions, Extractor, GlobalUserSource, SpecKeys};
use crate::openstack::session::{AuthOptions, Credentials, Scope};
use crate::problem::{Problems, Source};
use crate::secret::Secret;
use crate::services::schedule::Schedule;

/// caso's default spool directory (lastrun files, and the lock).
pub const DEFAULT_SPOOLDIR: &str = "/var/spool/caso";
/// caso's `[ssm] output_path`: the queue ssmsend reads.
pub const DEFAULT_OUTPUT_PATH: &str = "/var/spool/apel/outgoing/openstack";
/// Ours: StAR records go to their own queue (their own AMS topic, A13).
pub const DEFAULT_STORAGE_PATH: &str = "/var/spool/apel/outgoing/openstack-storage";
/// caso's `[ssm] max_size`.
pub const DEFAULT_MAX_SIZE: usize = 100;
/// The JSON schemas of the IP and accelerator messages cap a message at
/// 1000 records.
pub const MAX_MAX_SIZE: usize = 1000;

/// The four record types, each with its own queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordType {
    Cloud,
    Ip,
    Accelerator,
    Storage,
}

impl RecordType {
    pub const ALL: [RecordType; 4] = [
        RecordType::Cloud,
        RecordType::Ip,
        RecordType::Accelerator,
        RecordType::Storage,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            RecordType::Cloud => "cloud",
            RecordType::Ip => "ip",
            RecordType::Accelerator => "accelerator",
            RecordType::Storage => "storage",
        }
    }
}

/// caso's `extractor` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExtractorName {
    Nova,
    Cinder,
    Neutron,
}

impl From<ExtractorName> for Extractor {
    fn from(e: ExtractorName) -> Self {
        match e {
            ExtractorName::Nova => Extractor::Nova,
            ExtractorName::Cinder => Extractor::Cinder,
            ExtractorName::Neutron => Extractor::Neutron,
        }
    }
}

/// Where `GlobalUserName` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GlobalUser {
    /// The identity the gateway verified at login, else the Keystone name.
    #[default]
    Gateway,
    /// The Keystone user name, as caso sends.
    KeystoneName,
}

fn default_project_tag() -> Option<String> {
    Some("caso".into())
}
fn default_vo_property() -> String {
    "VO".into()
}
fn default_extractors() -> Vec<ExtractorName> {
    vec![
        ExtractorName::Nova,
        ExtractorName::Cinder,
        ExtractorName::Neutron,
    ]
}
fn default_spooldir() -> Spanned<PathBuf> {
    Spanned::new(0..0, DEFAULT_SPOOLDIR.into())
}
fn default_output_path() -> Spanned<PathBuf> {
    Spanned::new(0..0, DEFAULT_OUTPUT_PATH.into())
}
fn default_max_size() -> Spanned<usize> {
    Spanned::new(0..0, DEFAULT_MAX_SIZE)
}
fn default_schedule() -> Spanned<String> {
    Spanned::new(0..0, "every 1h".into())
}
fn default_record_types() -> Vec<RecordType> {
    RecordType::ALL.to_vec()
}

/// `[plugins.accounting]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountingConfig {
    /// GOCDB site name (`SiteName`).
    pub site_name: Spanned<String>,
    /// `CloudComputeService`; default: the site name (caso).
    #[serde(default)]
    pub service_name: Option<String>,
    /// `CloudType`; default `fedgate/<version> (OpenStack)`.
    #[serde(default)]
    pub cloud_type: Option<String>,
    /// Projects by id or name (caso `projects`).
    #[serde(default)]
    pub projects: Vec<String>,
    /// Keystone tag that adds projects (caso `caso_tag`); `""` turns the
    /// tag lookup off.
    #[serde(default = "default_project_tag")]
    pub project_tag: Option<String>,
    /// Project property holding the VO (caso `vo_property`).
    #[serde(default = "default_vo_property")]
    pub vo_property: String,
    /// caso's deprecated `voms.json`: `{"<VO>": {"projects": [...]}}`.
    #[serde(default)]
    pub mapping_file: Option<Spanned<PathBuf>>,
    /// Project id or name → VO, inline; wins over `mapping_file`.
    #[serde(default)]
    pub vo_mapping: BTreeMap<String, String>,
    /// caso `extractor`: `nova`, `cinder`, `neutron`.
    #[serde(default = "default_extractors")]
    pub extractors: Vec<ExtractorName>,
    /// lastrun files (`lastrun.<project-id>`), as caso writes them.
    #[serde(default = "default_spooldir")]
    pub spooldir: Spanned<PathBuf>,
    /// Directory of the `caso_should_not_run_in_parallel` lock; default
    /// the spool directory.
    #[serde(default)]
    pub lock_path: Option<Spanned<PathBuf>>,
    /// Catalog region (caso `region_name`).
    #[serde(default)]
    pub region: Option<String>,
    /// caso `[keystone_auth]`.
    pub keystone: KeystoneConfig,
    /// caso `[benchmark]`.
    #[serde(default)]
    pub benchmark: BenchmarkKeys,
    /// caso `[accelerator]`.
    #[serde(default)]
    pub accelerator: AcceleratorKeys,
    /// Records per message (caso `[ssm] max_size`), 1 to 1000.
    #[serde(default = "default_max_size")]
    pub max_size: Spanned<usize>,
    /// caso `[ssm] output_path`: the queue of cloud, IP and accelerator
    /// records unless `queue_path` says otherwise.
    #[serde(default = "default_output_path")]
    pub output_path: Spanned<PathBuf>,
    /// A queue per record type.
    #[serde(default)]
    pub queue_path: QueuePaths,
    /// Record types queued (caso `[messenger_ssm] record_types`).
    #[serde(default = "default_record_types")]
    pub record_types: Vec<RecordType>,
    /// When the plugin runs: `every 1h`, `hourly 5,35`, `daily 03:15`.
    #[serde(default = "default_schedule")]
    pub schedule: Spanned<String>,
    /// Reproduce caso 5.2.2's output, defects included (differential
    /// tests only).
    #[serde(default)]
    pub caso_compat: bool,
    /// `gateway` or `keystone_name`.
    #[serde(default)]
    pub global_user: GlobalUser,
    /// `[plugins.accounting.ams]`: when present, each run publishes the
    /// queues to ARGO AMS itself (ssmsend's job); when absent the queues
    /// are left for an external ssmsend.
    #[serde(default)]
    pub ams: Option<super::ams_options::AmsOptions>,
    /// The identities store whose recorded logins fill GlobalUserName and
    /// FQAN. Default: the path of `[plugins.identities]` when that section
    /// is present (see [`crate::services::PluginsConfig`]); without either,
    /// records carry cASO's values.
    #[serde(default)]
    pub identities: Option<Spanned<PathBuf>>,
}

/// `[plugins.accounting.queue_path]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueuePaths {
    pub cloud: Option<Spanned<PathBuf>>,
    pub ip: Option<Spanned<PathBuf>>,
    pub accelerator: Option<Spanned<PathBuf>>,
    /// Default [`DEFAULT_STORAGE_PATH`].
    pub storage: Option<Spanned<PathBuf>>,
}

fn default_user_domain() -> String {
    "Default".into()
}
fn default_interface() -> Spanned<String> {
    Spanned::new(0..0, "public".into())
}
fn default_timeout() -> Spanned<u64> {
    Spanned::new(0..0, 60)
}

/// `[plugins.accounting.keystone]` (caso `[keystone_auth]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeystoneConfig {
    pub auth_url: Spanned<String>,
    #[serde(default)]
    pub username: Option<Spanned<String>>,
    /// Domain name of the user.
    #[serde(default = "default_user_domain")]
    pub user_domain: String,
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default)]
    pub application_credential_id: Option<Spanned<String>>,
    #[serde(default)]
    pub application_credential_secret: Option<Secret>,
    /// Scope: one of `project_id`, `project_name` (with
    /// `project_domain`), `system_scope = "all"`; none: unscoped.
    #[serde(default)]
    pub project_id: Option<Spanned<String>>,
    #[serde(default)]
    pub project_name: Option<Spanned<String>>,
    #[serde(default = "default_user_domain")]
    pub project_domain: String,
    #[serde(default)]
    pub system_scope: Option<Spanned<String>>,
    /// CA bundle for Keystone and the services (caso `cafile`).
    #[serde(default)]
    pub ca_file: Option<Spanned<PathBuf>>,
    /// `public`, `internal` or `admin`.
    #[serde(default = "default_interface")]
    pub interface: Spanned<String>,
    /// Seconds per HTTP exchange.
    #[serde(default = "default_timeout")]
    pub timeout_secs: Spanned<u64>,
}

fn dflt(f: fn(&SpecKeys) -> &String) -> String {
    f(&SpecKeys::default()).clone()
}

/// `[plugins.accounting.benchmark]`: flavor extra-spec keys.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchmarkKeys {
    #[serde(default = "BenchmarkKeys::name")]
    pub name_key: String,
    #[serde(default = "BenchmarkKeys::value")]
    pub value_key: String,
}
impl BenchmarkKeys {
    fn name() -> String {
        dflt(|k| &k.benchmark_name)
    }
    fn value() -> String {
        dflt(|k| &k.benchmark_value)
    }
}
impl Default for BenchmarkKeys {
    fn default() -> Self {
        BenchmarkKeys {
            name_key: Self::name(),
            value_key: Self::value(),
        }
    }
}

/// `[plugins.accounting.accelerator]`: flavor extra-spec keys.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceleratorKeys {
    #[serde(default = "AcceleratorKeys::kind")]
    pub type_key: String,
    #[serde(default = "AcceleratorKeys::vendor")]
    pub vendor_key: String,
    #[serde(default = "AcceleratorKeys::model")]
    pub model_key: String,
    #[serde(default = "AcceleratorKeys::number")]
    pub number_key: String,
}
impl AcceleratorKeys {
    fn kind() -> String {
        dflt(|k| &k.accelerator_type)
    }
    fn vendor() -> String {
        dflt(|k| &k.accelerator_vendor)
    }
    fn model() -> String {
        dflt(|k| &k.accelerator_model)
    }
    fn number() -> String {
        dflt(|k| &k.accelerator_number)
    }
}
impl Default for AcceleratorKeys {
    fn default() -> Self {
        AcceleratorKeys {
            type_key: Self::kind(),
            vendor_key: Self::vendor(),
            model_key: Self::model(),
            number_key: Self::number(),
        }
    }
}

/// What `[plugins.accounting]` resolves to.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub extract: ExtractOptions,
    pub spooldir: PathBuf,
    pub lock_path: PathBuf,
    pub max_size: usize,
    /// The queue of each record type that is queued; types absent are
    /// not queued (`record_types`).
    pub queues: BTreeMap<RecordType, PathBuf>,
    pub schedule: Schedule,
    /// Publish to AMS after queueing (`[plugins.accounting.ams]`).
    pub ams: Option<super::ams_options::AmsOptions>,
    /// The identities store to read (`identities`).
    pub identities: Option<PathBuf>,
}

/// Why a section cannot be used (each reason also a `validate` problem).
#[derive(Debug, thiserror::Error)]
#[error("plugins.accounting: {0}")]
pub struct ConfigError(pub String);

/// Reads caso's `voms.json`: `{"<VO>": {"projects": [...]}}`, with the
/// legacy `tenant` (string) and `tenants` (list) keys. A project under
/// several VOs gets the last one read, as in caso.
pub fn parse_voms_json(text: &str) -> Result<BTreeMap<String, String>, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let obj = v
        .as_object()
        .ok_or("the top level is not an object of VOs")?;
    let mut out = BTreeMap::new();
    for (vo, entry) in obj {
        let e = entry
            .as_object()
            .ok_or_else(|| format!("VO {vo:?}: not an object"))?;
        let mut any = false;
        for key in ["projects", "tenants"] {
            if let Some(list) = e.get(key) {
                let list = list
                    .as_array()
                    .ok_or_else(|| format!("VO {vo:?}: {key} is not a list"))?;
                for p in list {
                    let p = p
                        .as_str()
                        .ok_or_else(|| format!("VO {vo:?}: {key} holds a non-string"))?;
                    out.insert(p.to_string(), vo.clone());
                    any = true;
                }
            }
        }
        if let Some(t) = e.get("tenant") {
            let t = t
                .as_str()
                .ok_or_else(|| format!("VO {vo:?}: tenant is not a string"))?;
            out.insert(t.to_string(), vo.clone());
            any = true;
        }
        if !any {
            return Err(format!(
                "VO {vo:?}: no \"projects\" (or legacy \"tenant\"/\"tenants\")"
            ));
        }
    }
    Ok(out)
}

impl AccountingConfig {
    /// Every problem, with its line.
    pub fn validate(&self, src: &Source, p: &mut Problems) {
        let key = |k: &str| format!("plugins.accounting.{k}");
        if self.site_name.get_ref().trim().is_empty() {
            p.push(src.problem(&self.site_name, format!("{} is empty", key("site_name"))));
        }
        if let Some(ams) = &self.ams {
            ams.validate(src, p);
        }
        let n = *self.max_size.get_ref();
        if !(1..=MAX_MAX_SIZE).contains(&n) {
            p.push(src.problem(
                &self.max_size,
                format!("{} must be 1 to {MAX_MAX_SIZE}, not {n}", key("max_size")),
            ));
        }
        if let Err(e) = Schedule::parse(self.schedule.get_ref()) {
            p.push(src.problem(&self.schedule, format!("{}: {e}", key("schedule"))));
        }
        if self.extractors.is_empty() {
            p.push(src.problem(
                &self.site_name,
                format!("{} is empty: nothing would be accounted", key("extractors")),
            ));
        }
        if let Some(m) = &self.mapping_file
            && let Err(e) = read_mapping(m.get_ref())
        {
            p.push(src.problem(m, format!("{}: {e}", key("mapping_file"))));
        }
        let k = &self.keystone;
        match url::Url::parse(k.auth_url.get_ref()) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => p.push(src.problem(
                &k.auth_url,
                format!(
                    "{}: {:?} is not an http(s) URL",
                    key("keystone.auth_url"),
                    k.auth_url.get_ref()
                ),
            )),
        }
        if let Err(e) = k.credentials() {
            p.push(src.problem(&k.auth_url, format!("{}: {e}", key("keystone"))));
        }
        if let Err(e) = k.scope() {
            p.push(src.problem(&k.auth_url, format!("{}: {e}", key("keystone"))));
        }
        if !matches!(
            k.interface.get_ref().as_str(),
            "public" | "internal" | "admin"
        ) {
            p.push(src.problem(
                &k.interface,
                format!(
                    "{} must be public, internal or admin",
                    key("keystone.interface")
                ),
            ));
        }
        if *k.timeout_secs.get_ref() == 0 {
            p.push(src.problem(
                &k.timeout_secs,
                format!("{} must be at least 1", key("keystone.timeout_secs")),
            ));
        }
        if let Some(ca) = &k.ca_file
            && !ca.get_ref().is_file()
        {
            p.push(src.problem(
                ca,
                format!(
                    "{} {}: no such file",
                    key("keystone.ca_file"),
                    ca.get_ref().display()
                ),
            ));
        }
        for (name, path) in [
            ("spooldir", Some(&self.spooldir)),
            ("lock_path", self.lock_path.as_ref()),
            ("output_path", Some(&self.output_path)),
            ("queue_path.cloud", self.queue_path.cloud.as_ref()),
            ("queue_path.ip", self.queue_path.ip.as_ref()),
            (
                "queue_path.accelerator",
                self.queue_path.accelerator.as_ref(),
            ),
            ("queue_path.storage", self.queue_path.storage.as_ref()),
        ] {
            if let Some(path) = path
                && !path.get_ref().is_absolute()
            {
                p.push(src.problem(path, format!("{} must be an absolute path", key(name))));
            }
        }
    }

    /// The resolved settings; fails on what [`validate`](Self::validate)
    /// reports.
    pub fn settings(&self) -> Result<Settings, ConfigError> {
        let bad = |s: String| ConfigError(s);
        let schedule = Schedule::parse(self.schedule.get_ref()).map_err(|e| bad(e.to_string()))?;
        let max_size = *self.max_size.get_ref();
        if !(1..=MAX_MAX_SIZE).contains(&max_size) {
            return Err(bad(format!("max_size must be 1 to {MAX_MAX_SIZE}")));
        }
        if self.extractors.is_empty() {
            return Err(bad("extractors is empty".into()));
        }
        let mut vo_mapping = match &self.mapping_file {
            Some(m) => read_mapping(m.get_ref()).map_err(|e| bad(format!("mapping_file: {e}")))?,
            None => BTreeMap::new(),
        };
        vo_mapping.extend(self.vo_mapping.clone());
        let k = &self.keystone;
        let auth = AuthOptions {
            auth_url: k.auth_url.get_ref().clone(),
            credentials: k.credentials().map_err(bad)?,
            scope: k.scope().map_err(bad)?,
            region: self.region.clone(),
            interface: k.interface.get_ref().clone(),
            ca_file: k.ca_file.as_ref().map(|c| c.get_ref().clone()),
            timeout: Duration::from_secs(*k.timeout_secs.get_ref()),
        };
        let site = self.site_name.get_ref().clone();
        let extract = ExtractOptions {
            auth,
            service_name: self.service_name.clone().unwrap_or_else(|| site.clone()),
            site_name: site,
            cloud_type: self
                .cloud_type
                .clone()
                .unwrap_or_else(|| format!("fedgate/{} (OpenStack)", env!("CARGO_PKG_VERSION"))),
            projects: self.projects.clone(),
            project_tag: self.project_tag.clone().filter(|t| !t.is_empty()),
            vo_property: self.vo_property.clone(),
            vo_mapping,
            extractors: self.extractors.iter().map(|e| (*e).into()).collect(),
            spec_keys: SpecKeys {
                benchmark_name: self.benchmark.name_key.clone(),
                benchmark_value: self.benchmark.value_key.clone(),
                accelerator_type: self.accelerator.type_key.clone(),
                accelerator_vendor: self.accelerator.vendor_key.clone(),
                accelerator_model: self.accelerator.model_key.clone(),
                accelerator_number: self.accelerator.number_key.clone(),
            },
            global_user: match self.global_user {
                GlobalUser::Gateway => GlobalUserSource::Gateway,
                GlobalUser::KeystoneName => GlobalUserSource::KeystoneName,
            },
            caso_compat: self.caso_compat,
        };
        let spooldir = self.spooldir.get_ref().clone();
        let output = self.output_path.get_ref().clone();
        let q = &self.queue_path;
        let path_of = |t: RecordType| -> PathBuf {
            let (set, default) = match t {
                RecordType::Cloud => (&q.cloud, &output),
                RecordType::Ip => (&q.ip, &output),
                RecordType::Accelerator => (&q.accelerator, &output),
                RecordType::Storage => (&q.storage, &PathBuf::from(DEFAULT_STORAGE_PATH)),
            };
            set.as_ref()
                .map_or_else(|| default.clone(), |s| s.get_ref().clone())
        };
        let types: BTreeSet<RecordType> = self.record_types.iter().copied().collect();
        Ok(Settings {
            extract,
            lock_path: self
                .lock_path
                .as_ref()
                .map_or_else(|| spooldir.clone(), |l| l.get_ref().clone()),
            spooldir,
            max_size,
            queues: types.into_iter().map(|t| (t, path_of(t))).collect(),
            schedule,
            ams: self.ams.clone(),
            identities: self.identities.as_ref().map(|p| p.get_ref().clone()),
        })
    }
}

fn read_mapping(path: &Path) -> Result<BTreeMap<String, String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_voms_json(&text).map_err(|e| format!("{}: {e}", path.display()))
}

impl KeystoneConfig {
    fn credentials(&self) -> Result<Credentials, String> {
        match (
            &self.username,
            &self.password,
            &self.application_credential_id,
            &self.application_credential_secret,
        ) {
            (Some(u), Some(p), None, None) => Ok(Credentials::Password {
                username: u.get_ref().clone(),
                user_domain: self.user_domain.clone(),
                password: p.clone(),
            }),
            (None, None, Some(id), Some(s)) => Ok(Credentials::ApplicationCredential {
                id: id.get_ref().clone(),
                secret: s.clone(),
            }),
            (None, None, None, None) => Err("no credentials: set username and password, or \
                 application_credential_id and application_credential_secret"
                .into()),
            _ => Err(
                "set username and password, or application_credential_id and \
                 application_credential_secret, not parts of both"
                    .into(),
            ),
        }
    }

    fn scope(&self) -> Result<Scope, String> {
        let scope = match (&self.project_id, &self.project_name, &self.system_scope) {
            (None, None, None) => Scope::Unscoped,
            (Some(id), None, None) => Scope::ProjectId(id.get_ref().clone()),
            (None, Some(n), None) => Scope::ProjectName {
                name: n.get_ref().clone(),
                domain: self.project_domain.clone(),
            },
            (None, None, Some(s)) if s.get_ref() == "all" => Scope::System,
            (None, None, Some(s)) => {
                return Err(format!(
                    "system_scope must be \"all\", not {:?}",
                    s.get_ref()
                ));
            }
            _ => {
                return Err("set at most one of project_id, project_name and system_scope".into());
            }
        };
        if scope != Scope::Unscoped && self.application_credential_id.is_some() {
            return Err("an application credential carries its own project scope: \
                 drop project_id, project_name and system_scope"
                .into());
        }
        Ok(scope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
site_name = "TEST-SITE"
[keystone]
auth_url = "https://keystone.example.org:5000/v3"
username = "accounting"
password = "pw"
"#;

    /// Parses `BASE` with `top` inserted before the keystone table and
    /// `keystone` appended inside it.
    fn parse(top: &str, keystone: &str) -> AccountingConfig {
        let text = BASE.replacen("[keystone]", &format!("{top}\n[keystone]"), 1) + keystone;
        toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    fn settings(top: &str, keystone: &str) -> Settings {
        parse(top, keystone).settings().unwrap()
    }

    fn problems(top: &str, keystone: &str) -> Problems {
        let text = BASE.replacen("[keystone]", &format!("{top}\n[keystone]"), 1) + keystone;
        let cfg: AccountingConfig = toml::from_str(&text).unwrap();
        let src = Source {
            path: "f.toml".into(),
            text,
        };
        let mut p = Problems::default();
        cfg.validate(&src, &mut p);
        p
    }

    #[test]
    fn defaults_are_casos() {
        let s = settings("", "");
        let e = &s.extract;
        assert_eq!(e.site_name, "TEST-SITE");
        assert_eq!(e.service_name, "TEST-SITE");
        assert!(e.cloud_type.starts_with("fedgate/"), "{}", e.cloud_type);
        assert_eq!(e.project_tag.as_deref(), Some("caso"));
        assert_eq!(e.vo_property, "VO");
        assert_eq!(e.extractors.len(), 3);
        assert_eq!(e.spec_keys, SpecKeys::default());
        assert_eq!(e.global_user, GlobalUserSource::Gateway);
        assert!(!e.caso_compat);
        assert_eq!(s.spooldir, Path::new(DEFAULT_SPOOLDIR));
        assert_eq!(s.lock_path, Path::new(DEFAULT_SPOOLDIR));
        assert_eq!(s.max_size, 100);
        assert_eq!(s.schedule, Schedule::Every(Duration::from_secs(3600)));
        for t in [RecordType::Cloud, RecordType::Ip, RecordType::Accelerator] {
            assert_eq!(s.queues[&t], Path::new(DEFAULT_OUTPUT_PATH));
        }
        assert_eq!(
            s.queues[&RecordType::Storage],
            Path::new(DEFAULT_STORAGE_PATH)
        );
        assert_eq!(e.auth.scope, Scope::Unscoped);
        assert_eq!(e.auth.interface, "public");
        assert_eq!(e.auth.region, None);
        assert_eq!(e.auth.timeout, Duration::from_secs(60));
        assert!(problems("", "").is_empty(), "{}", problems("", ""));
    }

    /// Each key, set to a non-default value, changes what it resolves to.
    #[test]
    fn every_key_is_read() {
        let s = |top: &str| settings(top, "");
        assert_eq!(
            s("service_name = \"cloud.example.org\"")
                .extract
                .service_name,
            "cloud.example.org"
        );
        assert_eq!(s("cloud_type = \"X\"").extract.cloud_type, "X");
        assert_eq!(
            s("projects = [\"a\", \"b\"]").extract.projects,
            vec!["a", "b"]
        );
        assert_eq!(
            s("project_tag = \"acct\"").extract.project_tag.as_deref(),
            Some("acct")
        );
        assert_eq!(s("project_tag = \"\"").extract.project_tag, None);
        assert_eq!(
            s("vo_property = \"egi.eu:VO\"").extract.vo_property,
            "egi.eu:VO"
        );
        assert_eq!(
            s("vo_mapping = { p1 = \"vo.x\" }").extract.vo_mapping["p1"],
            "vo.x"
        );
        assert_eq!(
            s("extractors = [\"nova\"]").extract.extractors,
            [Extractor::Nova].into()
        );
        let sp = s("spooldir = \"/srv/spool\"");
        assert_eq!(
            (sp.spooldir.as_path(), sp.lock_path.as_path()),
            (Path::new("/srv/spool"), Path::new("/srv/spool"))
        );
        assert_eq!(
            s("lock_path = \"/run/lock\"").lock_path,
            Path::new("/run/lock")
        );
        assert_eq!(
            s("region = \"R2\"").extract.auth.region.as_deref(),
            Some("R2")
        );
        assert_eq!(s("max_size = 7").max_size, 7);
        let out = s("output_path = \"/q/all\"");
        assert_eq!(out.queues[&RecordType::Ip], Path::new("/q/all"));
        assert_eq!(
            out.queues[&RecordType::Storage],
            Path::new(DEFAULT_STORAGE_PATH)
        );
        let q = s(
            "queue_path = { cloud = \"/q/c\", ip = \"/q/i\", accelerator = \"/q/a\", storage = \"/q/s\" }",
        );
        let paths: Vec<_> = q.queues.values().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(paths, ["/q/c", "/q/i", "/q/a", "/q/s"]);
        assert_eq!(
            s("record_types = [\"cloud\", \"storage\"]")
                .queues
                .keys()
                .copied()
                .collect::<Vec<_>>(),
            [RecordType::Cloud, RecordType::Storage]
        );
        assert_eq!(
            s("schedule = \"hourly 5,35\"").schedule,
            Schedule::Hourly(vec![5, 35])
        );
        assert!(s("caso_compat = true").extract.caso_compat);
        assert_eq!(
            s("global_user = \"keystone_name\"").extract.global_user,
            GlobalUserSource::KeystoneName
        );
        // [benchmark] and [accelerator] tables go after [keystone].
        let b = settings(
            "",
            "[benchmark]\nname_key = \"bn\"\nvalue_key = \"bv\"\n\
             [accelerator]\ntype_key = \"t\"\nvendor_key = \"v\"\nmodel_key = \"m\"\nnumber_key = \"n\"\n",
        )
        .extract
        .spec_keys;
        assert_eq!(
            [
                b.benchmark_name,
                b.benchmark_value,
                b.accelerator_type,
                b.accelerator_vendor,
                b.accelerator_model,
                b.accelerator_number
            ],
            ["bn", "bv", "t", "v", "m", "n"]
        );
        // The AMS table reaches the settings, which make each run publish.
        let c = parse("", "[ams]\nhost = \"msg.example.org\"\ntoken = \"t\"\n");
        let s = c.settings().unwrap();
        assert_eq!(s.ams.unwrap().host.get_ref(), "msg.example.org");
        // The identities store path reaches the settings.
        let c = parse("identities = \"/var/lib/x.sqlite\"", "");
        assert_eq!(
            c.settings().unwrap().identities.as_deref(),
            Some(std::path::Path::new("/var/lib/x.sqlite"))
        );
        assert_eq!(parse("", "").settings().unwrap().identities, None);
    }

    #[test]
    fn keystone_keys_are_read() {
        let a = |k: &str| settings("", k).extract.auth;
        let base = a("");
        assert_eq!(base.auth_url, "https://keystone.example.org:5000/v3");
        assert_eq!(
            base.credentials,
            Credentials::Password {
                username: "accounting".into(),
                user_domain: "Default".into(),
                password: Secret::new("pw"),
            }
        );
        assert!(matches!(
            a("user_domain = \"egi\"\n").credentials,
            Credentials::Password { user_domain, .. } if user_domain == "egi"
        ));
        assert_eq!(
            a("project_id = \"p1\"\n").scope,
            Scope::ProjectId("p1".into())
        );
        assert_eq!(
            a("project_name = \"acct\"\nproject_domain = \"d\"\n").scope,
            Scope::ProjectName {
                name: "acct".into(),
                domain: "d".into()
            }
        );
        assert_eq!(a("system_scope = \"all\"\n").scope, Scope::System);
        assert_eq!(
            a("ca_file = \"/etc/ssl/ca.pem\"\n").ca_file,
            Some(PathBuf::from("/etc/ssl/ca.pem"))
        );
        assert_eq!(a("interface = \"internal\"\n").interface, "internal");
        assert_eq!(a("timeout_secs = 5\n").timeout, Duration::from_secs(5));
        let text = "site_name = \"S\"\n[keystone]\nauth_url = \"http://k:5000\"\n\
                    application_credential_id = \"ac\"\napplication_credential_secret = \"sec\"\n";
        let cfg: AccountingConfig = toml::from_str(text).unwrap();
        assert_eq!(
            cfg.settings().unwrap().extract.auth.credentials,
            Credentials::ApplicationCredential {
                id: "ac".into(),
                secret: Secret::new("sec")
            }
        );
    }

    #[test]
    fn problems_have_lines() {
        let p = problems(
            "max_size = 0\nschedule = \"sometimes\"",
            "interface = \"x\"\n",
        );
        let text = p.to_string();
        assert_eq!(p.0.len(), 3, "{text}");
        assert!(
            text.contains("f.toml:3: plugins.accounting.max_size"),
            "{text}"
        );
        assert!(
            text.contains("f.toml:4: plugins.accounting.schedule"),
            "{text}"
        );
        assert!(
            text.contains("f.toml:9: plugins.accounting.keystone.interface"),
            "{text}"
        );
        assert_eq!(problems("max_size = 1001", "").0.len(), 1);
        assert_eq!(problems("extractors = []", "").0.len(), 1);
        assert_eq!(problems("spooldir = \"rel\"", "").0.len(), 1);
        assert_eq!(
            problems("", "ca_file = \"/nonexistent/ca.pem\"\n").0.len(),
            1
        );
        assert_eq!(problems("", "timeout_secs = 0\n").0.len(), 1);
        assert_eq!(problems("", "system_scope = \"domain\"\n").0.len(), 1);
        assert_eq!(
            problems("", "project_id = \"a\"\nproject_name = \"b\"\n")
                .0
                .len(),
            1
        );
        assert_eq!(
            problems("", "application_credential_id = \"x\"\n").0.len(),
            1,
            "parts of both credential kinds"
        );
        let bad_url = "site_name = \"S\"\n[keystone]\nauth_url = \"keystone\"\nusername = \"u\"\npassword = \"p\"\n";
        let cfg: AccountingConfig = toml::from_str(bad_url).unwrap();
        let mut p = Problems::default();
        cfg.validate(&Source::default(), &mut p);
        assert_eq!(p.0.len(), 1, "{p}");
        // Unknown keys are refused, with their line.
        let e = toml::from_str::<AccountingConfig>(&(BASE.to_string() + "pasword = \"x\"\n"))
            .unwrap_err();
        assert!(e.to_string().contains("pasword"), "{e}");
        assert!(toml::from_str::<AccountingConfig>("site_name = \"S\"\nextractors = [\"prometheus\"]\n[keystone]\nauth_url = \"http://k\"\n").is_err());
    }

    #[test]
    fn voms_json_forms() {
        let m = parse_voms_json(
            r#"{"vo.a": {"projects": ["p1", "name-b"]},
                "vo.old": {"tenant": "t1"},
                "vo.older": {"tenants": ["t2", "p1"]}}"#,
        )
        .unwrap();
        assert_eq!(m["name-b"], "vo.a");
        assert_eq!(m["t1"], "vo.old");
        assert_eq!(m["t2"], "vo.older");
        // Listed under two VOs: the last read wins (JSON object order).
        assert_eq!(m["p1"], "vo.older");
        assert!(parse_voms_json("[]").is_err());
        assert!(parse_voms_json(r#"{"vo": {}}"#).is_err());
        assert!(parse_voms_json(r#"{"vo": {"projects": [1]}}"#).is_err());
        // mapping_file is read, and the inline table wins over it.
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("voms.json");
        std::fs::write(&f, r#"{"vo.file": {"projects": ["p1", "p2"]}}"#).unwrap();
        let s = settings(
            &format!(
                "mapping_file = \"{}\"\nvo_mapping = {{ p2 = \"vo.inline\" }}",
                f.display()
            ),
            "",
        );
        assert_eq!(s.extract.vo_mapping["p1"], "vo.file");
        assert_eq!(s.extract.vo_mapping["p2"], "vo.inline");
        std::fs::write(&f, "{").unwrap();
        assert_eq!(
            problems(&format!("mapping_file = \"{}\"", f.display()), "")
                .0
                .len(),
            1
        );
    }
}
