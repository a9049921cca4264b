//! The keys of the image plugin that govern fetching: lists, the OCI
//! registry, the staging directory and conversion. `[plugins.images]`
//! embeds [`FetchConfig`] (flattened) and [`RegistryConfig`] as its
//! `registry` table.
//!
//! ```toml
//! staging_dir = "/var/cache/fedgate/images"
//! max_image_size = 21474836480     # bytes; larger images are refused
//! disk_budget = 107374182400       # bytes the staging directory may hold
//! convert_to = "raw"               # optional: "raw" or "qcow2"
//! appdb_token = "env:APPDB_TOKEN"  # Basic auth of AppDB lists
//! timeout_secs = 60                # connect, and silence while reading
//! convert_timeout_secs = 3600
//! qemu_img = "qemu-img"
//! ca_file = "/etc/grid-security/ca-bundle.pem"  # optional, beside the system roots
//!
//! [registry]
//! url = "https://registry.egi.eu"
//! project = "egi_vm_images"        # or repositories = ["egi_vm_images/ubuntu"]
//! username = "robot$reader"
//! password = "env:REGISTRY_PASSWORD"
//! ```

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use crate::problem::{Problems, Source};
use crate::secret::Secret;

fn default_max_image_size() -> u64 {
    20 << 30
}
fn default_disk_budget() -> u64 {
    100 << 30
}
fn default_timeout() -> u64 {
    60
}
fn default_convert_timeout() -> u64 {
    3600
}
fn default_qemu_img() -> PathBuf {
    "qemu-img".into()
}

/// The formats `convert_to` accepts.
pub const CONVERT_TARGETS: &[&str] = &["raw", "qcow2"];

/// Fetching and staging keys of `[plugins.images]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchConfig {
    /// Downloads go to `<staging_dir>/<key>.part`, then `<key>.img`.
    pub staging_dir: Spanned<PathBuf>,
    /// Largest image accepted, in bytes (declared or received).
    #[serde(default = "default_max_image_size")]
    pub max_image_size: u64,
    /// Bytes the staging directory may hold, the incoming image included.
    #[serde(default = "default_disk_budget")]
    pub disk_budget: u64,
    /// Convert every image to this format (`raw` or `qcow2`) with qemu-img.
    #[serde(default)]
    pub convert_to: Option<Spanned<String>>,
    /// AppDB access token: sent as HTTP Basic `<token>:x-oauth-basic`
    /// with list requests (never with image downloads).
    #[serde(default)]
    pub appdb_token: Option<Secret>,
    /// Connect timeout and the longest silence while reading, seconds.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Longest a `qemu-img convert` may run, seconds.
    #[serde(default = "default_convert_timeout")]
    pub convert_timeout_secs: u64,
    /// The qemu-img program (looked up in `PATH` when not a path).
    #[serde(default = "default_qemu_img")]
    pub qemu_img: PathBuf,
    /// Extra CA certificates (PEM) trusted beside the system roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Allow `http://` list and image URLs. For tests only.
    #[serde(default)]
    pub allow_http: bool,
    /// The OCI registry source (EGI Artefact Registry).
    #[serde(default)]
    pub registry: Option<RegistryConfig>,
}

/// `[registry]`: an OCI distribution registry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Base URL, e.g. `https://registry.egi.eu`.
    pub url: Spanned<String>,
    /// Repositories to read. Empty: every repository of the catalog
    /// (`/v2/_catalog`) under `project`.
    #[serde(default)]
    pub repositories: Vec<String>,
    /// Only repositories `<project>/...` of the catalog.
    #[serde(default)]
    pub project: Option<String>,
    /// Basic credentials: sent to the token service of a Bearer
    /// challenge, or to the registry on a Basic challenge.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    /// A ready bearer token (instead of username/password).
    #[serde(default)]
    pub token: Option<Secret>,
    /// Allow an `http://` registry. For tests only.
    #[serde(default)]
    pub allow_http: bool,
}

impl FetchConfig {
    pub fn validate(&self, src: &Source, p: &mut Problems) {
        let at = &self.staging_dir;
        if !self.staging_dir.get_ref().is_dir() {
            p.push(src.problem(
                at,
                format!(
                    "plugins.images.staging_dir {}: not a directory",
                    self.staging_dir.get_ref().display()
                ),
            ));
        }
        if self.max_image_size == 0 {
            p.push(src.problem(at, "plugins.images.max_image_size must be at least 1"));
        }
        if self.disk_budget < self.max_image_size {
            p.push(src.problem(
                at,
                "plugins.images.disk_budget is smaller than max_image_size",
            ));
        }
        if self.timeout_secs == 0 || self.convert_timeout_secs == 0 {
            p.push(src.problem(
                at,
                "plugins.images.timeout_secs and convert_timeout_secs must be at least 1",
            ));
        }
        if let Some(c) = &self.convert_to {
            if !CONVERT_TARGETS.contains(&c.get_ref().as_str()) {
                p.push(src.problem(
                    c,
                    format!(
                        "plugins.images.convert_to {:?}: use one of {CONVERT_TARGETS:?}",
                        c.get_ref()
                    ),
                ));
            }
        }
        if let Some(f) = &self.ca_file {
            if !f.is_file() {
                p.push(src.problem(
                    at,
                    format!("plugins.images.ca_file {}: no such file", f.display()),
                ));
            }
        }
        if let Some(r) = &self.registry {
            r.validate(src, p);
        }
    }
}

impl RegistryConfig {
    pub fn validate(&self, src: &Source, p: &mut Problems) {
        match url::Url::parse(self.url.get_ref()) {
            Ok(u) if u.scheme() == "https" || (u.scheme() == "http" && self.allow_http) => {}
            Ok(u) if u.scheme() == "http" => p.push(src.problem(
                &self.url,
                "plugins.images.registry.url is http:// but allow_http is false",
            )),
            _ => p.push(src.problem(
                &self.url,
                format!(
                    "plugins.images.registry.url {:?}: not an https URL",
                    self.url.get_ref()
                ),
            )),
        }
        if self.username.is_some() != self.password.is_some() {
            p.push(src.problem(
                &self.url,
                "plugins.images.registry: username and password go together",
            ));
        }
        if self.token.is_some() && self.username.is_some() {
            p.push(src.problem(
                &self.url,
                "plugins.images.registry: give either token or username/password",
            ));
        }
        if self.repositories.is_empty() && self.project.is_none() {
            p.push(src.problem(
                &self.url,
                "plugins.images.registry: name repositories or a project",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Problems {
        let cfg: FetchConfig = toml::from_str(text).unwrap();
        let mut p = Problems::default();
        cfg.validate(&Source::default(), &mut p);
        p
    }

    #[test]
    fn section_checks() {
        let d = std::env::temp_dir();
        let base = format!("staging_dir = {:?}\n", d.display().to_string());
        assert!(problems(&base).is_empty());
        assert_eq!(problems("staging_dir = \"/nonexistent-x\"").0.len(), 1);
        assert_eq!(problems(&format!("{base}convert_to = \"vdi\"")).0.len(), 1);
        assert_eq!(problems(&format!("{base}max_image_size = 0")).0.len(), 1);
        assert_eq!(
            problems(&format!("{base}max_image_size = 10\ndisk_budget = 5"))
                .0
                .len(),
            1
        );
        assert_eq!(problems(&format!("{base}timeout_secs = 0")).0.len(), 1);
        assert_eq!(
            problems(&format!("{base}ca_file = \"/nonexistent-ca.pem\""))
                .0
                .len(),
            1
        );
        let reg = format!("{base}[registry]\nurl = \"http://127.0.0.1:1\"\nproject = \"p\"\n");
        assert_eq!(problems(&reg).0.len(), 1, "http needs allow_http");
        assert!(problems(&format!("{reg}allow_http = true")).is_empty());
        assert_eq!(
            problems(&format!("{reg}allow_http = true\nusername = \"u\""))
                .0
                .len(),
            1
        );
        let no_repo = format!("{base}[registry]\nurl = \"https://r.example\"\n");
        assert_eq!(problems(&no_repo).0.len(), 1);
        assert!(toml::from_str::<FetchConfig>(&format!("{base}stagin = 1")).is_err());
        assert!(
            toml::from_str::<FetchConfig>(&format!("{reg}user = \"x\"")).is_err(),
            "unknown registry key"
        );
    }
}
