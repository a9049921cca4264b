//! The IdP registry: every trusted issuer with its credentials and policy,
//! from `[[idp]]` tables and from a mod_auth_openidc `OIDCMetadataDir`.
//!
//! One registry serves the bearer-token routes and the browser flow, so an
//! IdP is configured once however it is used.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::discovery::{Discovery, ProviderMetadata};
use super::jwks::Jwks;
use crate::http::client::HttpClient;
use crate::problem::{Problem, Problems, Source};
use crate::secret::Secret;

/// How tokens of an IdP are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Validation {
    /// RFC 7662 introspection for every token.
    Introspection,
    /// Local JWT checks only; opaque tokens are refused.
    Jwt,
    /// JWTs locally, opaque tokens by introspection.
    #[default]
    Auto,
}

/// Which value becomes `REMOTE_USER`, as mod_auth_openidc sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RemoteUser {
    /// `sub` (`OIDCOAuthRemoteUserClaim` default, bearer tokens).
    #[default]
    Sub,
    /// `sub@<iss without https://>` (`OIDCRemoteUserClaim sub@`, browser).
    SubAtIssuer,
    /// No `REMOTE_USER`.
    None,
}

fn default_claims() -> Vec<String> {
    vec!["*".into()]
}
fn default_timeout() -> u64 {
    5
}
fn default_jwks_refresh() -> u64 {
    3600
}
fn default_metadata_refresh() -> u64 {
    86400
}
fn default_leeway() -> u64 {
    60
}
fn default_algorithms() -> Vec<String> {
    [
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// One `[[idp]]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdpConfig {
    /// Short name used by routes and logs.
    pub name: String,
    /// Exact issuer string (`iss`), compared byte for byte.
    pub issuer: Spanned<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// Name of an environment variable holding the client secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    #[serde(default)]
    pub validation: Validation,
    /// The Keystone identity provider this issuer maps to (e.g. `egi.eu`).
    #[serde(default)]
    pub keystone_idp: Option<String>,
    /// Accepted audiences. A JWT must carry one in `aud`; an introspected
    /// token must carry one in `aud` or have it as `client_id`. Empty: no
    /// audience check.
    #[serde(default)]
    pub audience: Vec<String>,
    /// Claims exported as `OIDC-<claim>`; `"*"` exports every top-level
    /// claim, as mod_auth_openidc does.
    #[serde(default = "default_claims")]
    pub claims: Vec<String>,
    /// Fetch userinfo for claims the token or introspection lacks.
    #[serde(default)]
    pub userinfo: bool,
    #[serde(default)]
    pub remote_user: RemoteUser,
    /// Extra PEM CA file for this IdP's TLS certificate.
    #[serde(default)]
    pub ca_file: Option<Spanned<PathBuf>>,
    /// Overrides; normally everything comes from discovery.
    #[serde(default)]
    pub discovery_url: Option<String>,
    #[serde(default)]
    pub introspection_endpoint: Option<String>,
    #[serde(default)]
    pub jwks_uri: Option<String>,
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    /// Signature algorithms accepted in JWTs (never `none`, never HS*).
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
    /// Accept only RFC 9068 JWT access tokens (header `typ: at+jwt`) from
    /// this IdP. Without it, a JWT is refused only when it shows signs of
    /// being an ID token (see the README, "bearer").
    #[serde(default)]
    pub require_at_jwt: bool,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    #[serde(default = "default_jwks_refresh")]
    pub jwks_refresh_secs: u64,
    #[serde(default = "default_metadata_refresh")]
    pub metadata_refresh_secs: u64,
    /// Set when the IdP came from a metadata directory: its discovery
    /// document, used as is.
    /// Label on the IdP chooser page of the browser login.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Scopes requested in the browser login (default: `[oidc] scopes`).
    #[serde(default)]
    pub scopes: Option<String>,
    #[serde(skip)]
    pub static_metadata: Option<ProviderMetadata>,
}

impl IdpConfig {
    pub fn issuer(&self) -> &str {
        self.issuer.get_ref()
    }

    /// The client secret from either form; `client_secret_env` wins.
    pub fn secret(&self) -> Result<Option<Secret>, IdpError> {
        if let Some(var) = &self.client_secret_env {
            return std::env::var(var)
                .map(|s| Some(Secret::new(s)))
                .map_err(|_| IdpError::SecretEnv {
                    idp: self.name.clone(),
                    var: var.clone(),
                });
        }
        Ok(self.client_secret.clone())
    }

    /// Semantic checks with no I/O.
    pub fn validate(&self, src: &Source, p: &mut Problems) {
        match url::Url::parse(self.issuer()) {
            Ok(u) if u.scheme() == "https" || u.scheme() == "http" => {}
            _ => p.push(src.problem(
                &self.issuer,
                format!("idp `{}`: issuer must be an http(s) URL", self.name),
            )),
        }
        if self.name.is_empty() {
            p.push(src.problem(&self.issuer, "idp without a name"));
        }
        if self.validation != Validation::Jwt && self.client_id.is_none() {
            p.push(src.problem(
                &self.issuer,
                format!("idp `{}`: introspection needs client_id and client_secret (or validation = \"jwt\")", self.name),
            ));
        }
        if self.client_secret.is_some() && self.client_secret_env.is_some() {
            p.push(src.problem(
                &self.issuer,
                format!(
                    "idp `{}`: set client_secret or client_secret_env, not both",
                    self.name
                ),
            ));
        }
        if let Err(e) = self.secret() {
            p.push(src.problem(&self.issuer, e.to_string()));
        }
        for a in &self.algorithms {
            if super::jwks::parse_alg(a).is_none() {
                p.push(src.problem(
                    &self.issuer,
                    format!("idp `{}`: algorithm `{a}` is not accepted (asymmetric JWS algorithms only)", self.name),
                ));
            }
        }
        if let Some(ca) = &self.ca_file
            && !ca.get_ref().is_file()
        {
            p.push(src.problem(
                ca,
                format!(
                    "idp `{}`: ca_file {} is not a file",
                    self.name,
                    ca.get_ref().display()
                ),
            ));
        }
    }
}

/// Why an IdP, or the registry of all of them, could not be built.
#[derive(Debug, thiserror::Error)]
pub enum IdpError {
    #[error("idp `{idp}`: environment variable {var} (client_secret_env) is not set")]
    SecretEnv { idp: String, var: String },
    #[error("idp `{idp}`: {source}")]
    Client {
        idp: String,
        source: crate::http::client::HttpError,
    },
    #[error("issuer {0} is configured twice")]
    DuplicateIssuer(String),
    #[error("idp name `{0}` is used twice")]
    DuplicateName(String),
    /// The metadata directory could not be read (its own error, as text).
    #[error("{0}")]
    MetadataDir(String),
}

impl IdpError {
    /// The issuer whose `[[idp]]` table is at fault, to name its line.
    pub fn issuer(&self, registry_input: &[IdpConfig]) -> Option<Spanned<String>> {
        let name = match self {
            IdpError::SecretEnv { idp, .. } | IdpError::Client { idp, .. } => idp.as_str(),
            IdpError::DuplicateName(n) => n.as_str(),
            IdpError::DuplicateIssuer(iss) => {
                return registry_input
                    .iter()
                    .rev()
                    .find(|c| c.issuer() == iss)
                    .map(|c| c.issuer.clone());
            }
            IdpError::MetadataDir(_) => return None,
        };
        registry_input
            .iter()
            .rev()
            .find(|c| c.name == name)
            .map(|c| c.issuer.clone())
    }
}

/// One configured IdP, with its live discovery and key material.
pub struct Idp {
    pub config: IdpConfig,
    pub client_secret: Option<Secret>,
    pub http: HttpClient,
    pub discovery: Arc<Discovery>,
    pub jwks: Jwks,
    pub algorithms: Vec<jsonwebtoken::Algorithm>,
}

impl std::fmt::Debug for Idp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idp")
            .field("name", &self.config.name)
            .field("issuer", &self.config.issuer())
            .finish()
    }
}

impl Idp {
    pub fn build(cfg: IdpConfig) -> Result<Idp, IdpError> {
        let http = HttpClient::new(
            cfg.ca_file.as_ref().map(|c| c.get_ref().as_path()),
            Duration::from_secs(cfg.timeout_secs),
        )
        .map_err(|source| IdpError::Client {
            idp: cfg.name.clone(),
            source,
        })?;
        let discovery = Arc::new(Discovery::new(
            cfg.issuer(),
            cfg.discovery_url.clone(),
            cfg.static_metadata.clone(),
            http.clone(),
            Duration::from_secs(cfg.metadata_refresh_secs),
        ));
        let jwks = Jwks::new(
            discovery.clone(),
            cfg.jwks_uri.clone(),
            http.clone(),
            Duration::from_secs(cfg.jwks_refresh_secs),
        );
        let algorithms = cfg
            .algorithms
            .iter()
            .filter_map(|a| super::jwks::parse_alg(a))
            .collect();
        Ok(Idp {
            client_secret: cfg.secret()?,
            config: cfg,
            http,
            discovery,
            jwks,
            algorithms,
        })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }
    pub fn issuer(&self) -> &str {
        self.config.issuer()
    }

    pub async fn introspection_endpoint(&self) -> Result<String, super::discovery::DiscoveryError> {
        if let Some(e) = &self.config.introspection_endpoint {
            return Ok(e.clone());
        }
        let m = self.discovery.get().await?;
        m.introspection_endpoint
            .clone()
            .ok_or(super::discovery::DiscoveryError::Missing(
                "introspection_endpoint",
            ))
    }

    pub async fn userinfo_endpoint(&self) -> Result<String, super::discovery::DiscoveryError> {
        if let Some(e) = &self.config.userinfo_endpoint {
            return Ok(e.clone());
        }
        let m = self.discovery.get().await?;
        m.userinfo_endpoint
            .clone()
            .ok_or(super::discovery::DiscoveryError::Missing(
                "userinfo_endpoint",
            ))
    }
}

/// All IdPs, by name and by issuer.
#[derive(Default)]
pub struct Registry {
    idps: Vec<Arc<Idp>>,
    by_issuer: HashMap<String, usize>,
    by_name: HashMap<String, usize>,
}

impl Registry {
    /// Builds from IdP tables, in order. Issuers and names must be unique.
    pub fn build(all: Vec<IdpConfig>) -> Result<Registry, IdpError> {
        let mut r = Registry::default();
        for c in all {
            if r.by_issuer.contains_key(c.issuer()) {
                return Err(IdpError::DuplicateIssuer(c.issuer().to_string()));
            }
            if r.by_name.contains_key(&c.name) {
                return Err(IdpError::DuplicateName(c.name.clone()));
            }
            let idp = Idp::build(c)?;
            r.by_issuer.insert(idp.issuer().to_string(), r.idps.len());
            r.by_name.insert(idp.name().to_string(), r.idps.len());
            r.idps.push(Arc::new(idp));
        }
        Ok(r)
    }

    pub fn by_issuer(&self, iss: &str) -> Option<&Arc<Idp>> {
        self.by_issuer.get(iss).map(|&i| &self.idps[i])
    }
    pub fn by_name(&self, name: &str) -> Option<&Arc<Idp>> {
        self.by_name.get(name).map(|&i| &self.idps[i])
    }
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Idp>> {
        self.idps.iter()
    }
    pub fn is_empty(&self) -> bool {
        self.idps.is_empty()
    }
}

/// Validates `[[idp]]` tables and their cross-rules.
pub fn validate_all(idps: &[IdpConfig], src: &Source, p: &mut Problems) {
    let mut seen = HashMap::new();
    for i in idps {
        i.validate(src, p);
        if seen.insert(i.name.clone(), ()).is_some() {
            p.push(Problem::file(
                &src.path,
                format!("idp name `{}` is used twice", i.name),
            ));
        }
    }
}
