//! The OCI registry source (B9): the EGI Artefact Registry publishes each
//! image as an OCI artifact (pushed with `oras`), its metadata in
//! annotations. Through the distribution API (`/v2/`) this client lists
//! repositories (`_catalog` filtered by project, or configured names),
//! their tags, reads each tag's manifest (OCI image manifest, OCI artifact
//! manifest, Docker v2), and turns every artifact annotated with
//! `eu.egi.cloud.tag` into a [`Candidate`]. Blobs are fetched by digest by
//! `download::Stager`, which asks [`Registry::blob_request`] for the URL
//! and credentials.
//!
//! Authentication follows the registry's challenge: `Basic` gets the
//! configured username/password; `Bearer realm=..,service=..,scope=..`
//! sends them to the token service and uses the token it returns (cached
//! per scope). A configured `token` is sent as `Bearer` from the start.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use aws_lc_rs::digest;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Deserialize;

use super::candidate::{Candidate, Location, SourceKind};
use super::fetch::basic;
use super::fetch_config::{FetchConfig, RegistryConfig};
use super::transport::{Transport, TransportError};

/// The annotation that marks an artifact for syncing (atrope's rule).
pub const TAG_ANNOTATION: &str = "eu.egi.cloud.tag";

/// Largest manifest read (the distribution registry's own limit).
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;
/// Largest catalog, tag list or token answer read.
pub const MAX_DOC_BYTES: usize = 1 << 20;
/// Pages followed per listing.
pub const MAX_PAGES: usize = 1000;

/// Manifest media types asked for, in preference order.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
    application/vnd.oci.artifact.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// Why the registry could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("Unauthorized: {url} answered {status}")]
    Unauthorized { url: String, status: u16 },
    #[error("HttpStatus: {url} answered {status}")]
    Status { url: String, status: u16 },
    #[error("BadChallenge: {0}")]
    Challenge(String),
    #[error("TokenRefused: {0}")]
    Token(String),
    #[error("BadDocument: {0}")]
    Document(String),
    #[error("ManifestDigestMismatch: {reference}: header says {header}, content is {content}")]
    ManifestDigest {
        reference: String,
        header: String,
        content: String,
    },
}

impl RegistryError {
    /// The refusal's name.
    pub fn code(&self) -> &'static str {
        match self {
            RegistryError::Transport(t) => t.code(),
            RegistryError::Unauthorized { .. } => "Unauthorized",
            RegistryError::Status { .. } => "HttpStatus",
            RegistryError::Challenge(_) => "BadChallenge",
            RegistryError::Token(_) => "TokenRefused",
            RegistryError::Document(_) => "BadDocument",
            RegistryError::ManifestDigest { .. } => "ManifestDigestMismatch",
        }
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Lower-case scheme: `basic`, `bearer`.
    pub scheme: String,
    /// Parameters, names lower-case.
    pub params: BTreeMap<String, String>,
}

/// Parses the first challenge of a `WWW-Authenticate` value (RFC 7235
/// auth-params: `token=token` or `token="quoted \" string"`).
pub fn parse_challenge(s: &str) -> Option<Challenge> {
    let s = s.trim_start();
    let end = s.find(|c: char| c.is_ascii_whitespace()).unwrap_or(s.len());
    let scheme = &s[..end];
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return None;
    }
    let mut params = BTreeMap::new();
    let b = s.as_bytes();
    let mut i = end;
    loop {
        while i < b.len() && (b[i] == b' ' || b[i] == b'\t' || b[i] == b',') {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let k0 = i;
        while i < b.len() && b[i] != b'=' && b[i] != b',' && b[i] != b' ' {
            i += 1;
        }
        let key = s[k0..i].to_ascii_lowercase();
        if i >= b.len() || b[i] != b'=' {
            // A new scheme or a token68: this challenge ends here.
            break;
        }
        i += 1;
        let mut val = String::new();
        if i < b.len() && b[i] == b'"' {
            i += 1;
            let mut closed = false;
            let mut chars = s[i..].char_indices();
            while let Some((off, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            val.push(n);
                        }
                    }
                    '"' => {
                        i += off + 1;
                        closed = true;
                        break;
                    }
                    c => val.push(c),
                }
            }
            if !closed {
                return None;
            }
        } else {
            let v0 = i;
            while i < b.len() && b[i] != b',' && b[i] != b' ' {
                i += 1;
            }
            val.push_str(&s[v0..i]);
        }
        if key.is_empty() {
            return None;
        }
        params.insert(key, val);
    }
    Some(Challenge {
        scheme: scheme.to_ascii_lowercase(),
        params,
    })
}

/// The `rel="next"` target of a `Link` header, resolved against `base`.
pub fn next_link(h: &HeaderMap, base: &url::Url) -> Option<url::Url> {
    for v in h.get_all(header::LINK) {
        for part in v.to_str().ok()?.split(',') {
            let (target, rest) = part.trim().split_once(';')?;
            let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
            if rest
                .split(';')
                .any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next"))
            {
                return base.join(target).ok();
            }
        }
    }
    None
}

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// An OCI image or artifact manifest (or Docker v2).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Manifest {
    #[serde(rename = "mediaType", default)]
    pub media_type: Option<String>,
    #[serde(rename = "artifactType", default)]
    pub artifact_type: Option<String>,
    #[serde(default)]
    pub config: Option<Descriptor>,
    /// Image manifests.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// Artifact manifests.
    #[serde(default)]
    pub blobs: Vec<Descriptor>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl Manifest {
    pub fn parse(b: &[u8]) -> Result<Manifest, RegistryError> {
        serde_json::from_slice(b).map_err(|e| RegistryError::Document(format!("manifest: {e}")))
    }

    /// The layer holding the image: the only one; else the one annotated
    /// with a Glance disk format; else the largest.
    pub fn image_layer(&self) -> Option<&Descriptor> {
        let all: Vec<&Descriptor> = self.layers.iter().chain(&self.blobs).collect();
        match all.as_slice() {
            [] => None,
            [one] => Some(one),
            many => many
                .iter()
                .find(|d| {
                    d.annotations
                        .contains_key("org.openstack.glance.disk_format")
                })
                .or_else(|| many.iter().max_by_key(|d| d.size))
                .copied(),
        }
    }
}

/// An artifact not turned into a candidate, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// `<repository>:<tag>`.
    pub reference: String,
    /// `NotTagged` (no `eu.egi.cloud.tag`), `NoLayer`, or a
    /// [`RegistryError::code`].
    pub reason: &'static str,
    pub detail: String,
}

/// What a registry offers.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub candidates: Vec<Candidate>,
    pub skipped: Vec<Skipped>,
}

/// Builds the candidate of one artifact, or says why it is skipped.
pub fn artifact_candidate(
    registry: &str,
    host: &str,
    repo: &str,
    tag: &str,
    manifest_digest: &str,
    m: &Manifest,
) -> Result<Candidate, Skipped> {
    let reference = format!("{repo}:{tag}");
    let Some(layer) = m.image_layer() else {
        return Err(Skipped {
            reference,
            reason: "NoLayer",
            detail: "the manifest has no layer".into(),
        });
    };
    let mut a = m.annotations.clone();
    a.extend(layer.annotations.clone());
    if !a.contains_key(TAG_ANNOTATION) {
        return Err(Skipped {
            reference,
            reason: "NotTagged",
            detail: format!("no {TAG_ANNOTATION} annotation"),
        });
    }
    let get = |k: &str| a.get(k).filter(|v| !v.is_empty()).cloned();
    Ok(Candidate {
        identifier: format!("{host}/{repo}:{tag}-{manifest_digest}"),
        kind: SourceKind::Registry,
        title: get("eu.egi.cloud.image.title").unwrap_or_else(|| reference.clone()),
        description: get("eu.egi.cloud.description")
            .or_else(|| get("org.opencontainers.image.description")),
        version: get("org.opencontainers.image.version")
            .or_else(|| get(TAG_ANNOTATION))
            .unwrap_or_else(|| tag.to_string()),
        vo: get("eu.egi.cloud.vo"),
        declared_format: get("org.openstack.glance.disk_format"),
        mpuri: None,
        arch: get("org.openstack.glance.architecture"),
        os_distro: get("org.openstack.glance.os_distro"),
        os_version: get("org.openstack.glance.os_version"),
        expires: None,
        list_identifier: format!("{host}/{repo}"),
        location: Location::Oci {
            registry: registry.to_string(),
            repository: repo.to_string(),
            digest: layer.digest.clone(),
            size: layer.size,
            media_type: layer.media_type.clone(),
        },
        attributes: a,
    })
}

#[derive(Deserialize)]
struct Catalog {
    #[serde(default)]
    repositories: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct Tags {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

fn bearer(t: &str) -> Result<HeaderValue, RegistryError> {
    let mut v = HeaderValue::from_str(&format!("Bearer {t}"))
        .map_err(|_| RegistryError::Token("token is not a header value".into()))?;
    v.set_sensitive(true);
    Ok(v)
}

/// A client of one registry.
pub struct Registry {
    base: url::Url,
    host: String,
    transport: Transport,
    repositories: Vec<String>,
    project: Option<String>,
    basic: Option<HeaderValue>,
    fixed: Option<HeaderValue>,
    /// Authorization per scope, learnt from challenges.
    auth: Mutex<HashMap<String, HeaderValue>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("base", &self.base.as_str())
            .finish()
    }
}

fn catalog_scope() -> String {
    "registry:catalog:*".into()
}
fn pull_scope(repo: &str) -> String {
    format!("repository:{repo}:pull")
}

impl Registry {
    /// The client of `fetch.registry`, using the fetch settings' CA file
    /// and timeout.
    pub fn new(cfg: &RegistryConfig, fetch: &FetchConfig) -> Result<Registry, RegistryError> {
        let transport = Transport::new(
            fetch.ca_file.as_deref(),
            Duration::from_secs(fetch.timeout_secs.max(1)),
            cfg.allow_http,
        )?;
        let mut base = transport.check_url(cfg.url.get_ref())?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let host = match base.port() {
            Some(p) => format!("{}:{p}", base.host_str().unwrap_or("")),
            None => base.host_str().unwrap_or("").to_string(),
        };
        let basic = match (&cfg.username, &cfg.password) {
            (Some(u), Some(p)) => Some(basic(u, p.expose())),
            _ => None,
        };
        let fixed = cfg.token.as_ref().map(|t| bearer(t.expose())).transpose()?;
        Ok(Registry {
            base,
            host,
            transport,
            repositories: cfg.repositories.clone(),
            project: cfg.project.clone(),
            basic,
            fixed,
            auth: Mutex::new(HashMap::new()),
        })
    }

    /// The registry's base URL, without the trailing slash.
    pub fn url(&self) -> String {
        self.base.as_str().trim_end_matches('/').to_string()
    }

    fn url_of(&self, path: &str) -> Result<url::Url, RegistryError> {
        self.base
            .join(path)
            .map_err(|_| TransportError::Url(path.into()).into())
    }

    fn cached(&self, scope: &str) -> Option<HeaderValue> {
        let m = self.auth.lock().unwrap_or_else(|e| e.into_inner());
        m.get(scope).cloned().or_else(|| self.fixed.clone())
    }

    /// Answers a challenge: the Authorization to retry with.
    async fn answer(&self, c: &Challenge, scope: &str) -> Result<HeaderValue, RegistryError> {
        match c.scheme.as_str() {
            "basic" => self
                .basic
                .clone()
                .ok_or_else(|| RegistryError::Challenge("Basic asked, no credentials".into())),
            "bearer" => {
                let realm = c
                    .params
                    .get("realm")
                    .ok_or_else(|| RegistryError::Challenge("Bearer without realm".into()))?;
                let mut u = self.transport.check_url(realm)?;
                {
                    let mut q = u.query_pairs_mut();
                    if let Some(s) = c.params.get("service") {
                        q.append_pair("service", s);
                    }
                    q.append_pair(
                        "scope",
                        c.params.get("scope").map(String::as_str).unwrap_or(scope),
                    );
                }
                let mut h = HeaderMap::new();
                h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
                let (at, resp) = self
                    .transport
                    .get(u.as_str(), &h, self.basic.as_ref())
                    .await?;
                if resp.status() != StatusCode::OK {
                    return Err(RegistryError::Token(format!(
                        "{} answered {}",
                        at.origin().ascii_serialization(),
                        resp.status().as_u16()
                    )));
                }
                let body = self.transport.read_capped(&at, resp, MAX_DOC_BYTES).await?;
                let t: TokenAnswer = serde_json::from_slice(&body)
                    .map_err(|e| RegistryError::Token(format!("answer: {e}")))?;
                let t = t
                    .token
                    .or(t.access_token)
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| RegistryError::Token("answer holds no token".into()))?;
                bearer(&t)
            }
            other => Err(RegistryError::Challenge(format!(
                "scheme {other:?} unsupported"
            ))),
        }
    }

    /// The Authorization for `scope`, asking the registry for a challenge
    /// when none is known yet.
    async fn authorize(&self, scope: &str) -> Result<Option<HeaderValue>, RegistryError> {
        if let Some(a) = self.cached(scope) {
            return Ok(Some(a));
        }
        let u = self.url_of("v2/")?;
        let (at, resp) = self
            .transport
            .get(u.as_str(), &HeaderMap::new(), None)
            .await?;
        match resp.status() {
            StatusCode::OK => Ok(None),
            StatusCode::UNAUTHORIZED => {
                let c = challenge_of(resp.headers())?;
                let a = self.answer(&c, scope).await?;
                self.remember(scope, &a);
                Ok(Some(a))
            }
            s => Err(RegistryError::Status {
                url: at.to_string(),
                status: s.as_u16(),
            }),
        }
    }

    fn remember(&self, scope: &str, a: &HeaderValue) {
        let mut m = self.auth.lock().unwrap_or_else(|e| e.into_inner());
        m.insert(scope.to_string(), a.clone());
    }

    /// GET with authentication; one retry after a challenge. Returns the
    /// final URL, the headers and the body (at most `cap` bytes).
    async fn get_doc(
        &self,
        url: &url::Url,
        scope: &str,
        accept: &'static str,
        cap: usize,
    ) -> Result<(HeaderMap, Bytes), RegistryError> {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_static(accept));
        let mut auth = self.cached(scope);
        for retry in [false, true] {
            let (at, resp) = self.transport.get(url.as_str(), &h, auth.as_ref()).await?;
            match resp.status() {
                StatusCode::OK => {
                    let headers = resp.headers().clone();
                    let body = self.transport.read_capped(&at, resp, cap).await?;
                    return Ok((headers, body));
                }
                StatusCode::UNAUTHORIZED if !retry => {
                    let c = challenge_of(resp.headers())?;
                    let a = self.answer(&c, scope).await?;
                    self.remember(scope, &a);
                    auth = Some(a);
                }
                s @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
                    return Err(RegistryError::Unauthorized {
                        url: at.to_string(),
                        status: s.as_u16(),
                    });
                }
                s => {
                    return Err(RegistryError::Status {
                        url: at.to_string(),
                        status: s.as_u16(),
                    });
                }
            }
        }
        Err(RegistryError::Unauthorized {
            url: url.to_string(),
            status: 401,
        })
    }

    /// The repositories to read: the configured ones, else the catalog's
    /// under `<project>/`.
    pub async fn repositories(&self) -> Result<Vec<String>, RegistryError> {
        if !self.repositories.is_empty() {
            return Ok(self.repositories.clone());
        }
        let mut out = Vec::new();
        let mut next = Some(self.url_of("v2/_catalog?n=100")?);
        let mut pages = 0;
        while let Some(u) = next.take() {
            pages += 1;
            let (h, body) = self
                .get_doc(&u, &catalog_scope(), "application/json", MAX_DOC_BYTES)
                .await?;
            let c: Catalog = serde_json::from_slice(&body)
                .map_err(|e| RegistryError::Document(format!("catalog: {e}")))?;
            out.extend(c.repositories.unwrap_or_default());
            if pages < MAX_PAGES {
                next = next_link(&h, &u);
            }
        }
        if let Some(p) = &self.project {
            let prefix = format!("{p}/");
            out.retain(|r| r.starts_with(&prefix));
        }
        Ok(out)
    }

    /// The tags of a repository.
    pub async fn tags(&self, repo: &str) -> Result<Vec<String>, RegistryError> {
        let mut out = Vec::new();
        let mut next = Some(self.url_of(&format!("v2/{repo}/tags/list?n=100"))?);
        let mut pages = 0;
        while let Some(u) = next.take() {
            pages += 1;
            let (h, body) = self
                .get_doc(&u, &pull_scope(repo), "application/json", MAX_DOC_BYTES)
                .await?;
            let t: Tags = serde_json::from_slice(&body)
                .map_err(|e| RegistryError::Document(format!("tags of {repo}: {e}")))?;
            out.extend(t.tags.unwrap_or_default());
            if pages < MAX_PAGES {
                next = next_link(&h, &u);
            }
        }
        Ok(out)
    }

    /// The manifest of `repo:reference` and its digest (checked against
    /// `Docker-Content-Digest`).
    pub async fn manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<(Manifest, String), RegistryError> {
        let u = self.url_of(&format!("v2/{repo}/manifests/{reference}"))?;
        let (h, body) = self
            .get_doc(&u, &pull_scope(repo), MANIFEST_ACCEPT, MAX_MANIFEST_BYTES)
            .await?;
        let content = format!(
            "sha256:{}",
            hex::encode(digest::digest(&digest::SHA256, &body).as_ref())
        );
        if let Some(d) = h.get("docker-content-digest").and_then(|v| v.to_str().ok()) {
            if d.starts_with("sha256:") && d != content {
                return Err(RegistryError::ManifestDigest {
                    reference: format!("{repo}:{reference}"),
                    header: d.into(),
                    content,
                });
            }
        }
        Ok((Manifest::parse(&body)?, content))
    }

    /// Every tagged artifact of the configured repositories. A repository
    /// or artifact that cannot be read is skipped with its reason; only a
    /// failure to list repositories fails the whole listing.
    pub async fn candidates(&self) -> Result<Listing, RegistryError> {
        let mut l = Listing::default();
        let registry = self.url();
        for repo in self.repositories().await? {
            let tags = match self.tags(&repo).await {
                Ok(t) => t,
                Err(e) => {
                    l.skipped.push(Skipped {
                        reference: repo.clone(),
                        reason: e.code(),
                        detail: e.to_string(),
                    });
                    continue;
                }
            };
            for tag in tags {
                match self.manifest(&repo, &tag).await {
                    Ok((m, d)) => {
                        match artifact_candidate(&registry, &self.host, &repo, &tag, &d, &m) {
                            Ok(c) => l.candidates.push(c),
                            Err(s) => l.skipped.push(s),
                        }
                    }
                    Err(e) => l.skipped.push(Skipped {
                        reference: format!("{repo}:{tag}"),
                        reason: e.code(),
                        detail: e.to_string(),
                    }),
                }
            }
        }
        Ok(l)
    }

    /// The URL of a blob and the Authorization to fetch it with.
    pub async fn blob_request(
        &self,
        repo: &str,
        digest: &str,
    ) -> Result<(String, Option<HeaderValue>), RegistryError> {
        let u = self.url_of(&format!("v2/{repo}/blobs/{digest}"))?;
        let a = self.authorize(&pull_scope(repo)).await?;
        Ok((u.to_string(), a))
    }
}

fn challenge_of(h: &HeaderMap) -> Result<Challenge, RegistryError> {
    let v = h
        .get(header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| RegistryError::Challenge("401 without WWW-Authenticate".into()))?;
    parse_challenge(v).ok_or_else(|| RegistryError::Challenge(format!("cannot parse {v:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.example/token");
        assert_eq!(c.params["scope"], "repository:a/b:pull");
        let c = parse_challenge(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.params["realm"], "Registry Realm");
        let c = parse_challenge(r#"Bearer realm="a\"b", error=insufficient_scope"#).unwrap();
        assert_eq!(c.params["realm"], "a\"b");
        assert_eq!(c.params["error"], "insufficient_scope");
        assert!(parse_challenge(r#"Bearer realm="open"#).is_none());
        assert!(parse_challenge("").is_none());
    }

    #[test]
    fn links() {
        let base = url::Url::parse("http://r.example/v2/_catalog?n=1").unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            header::LINK,
            HeaderValue::from_static(r#"</v2/_catalog?last=a&n=1>; rel="next""#),
        );
        assert_eq!(
            next_link(&h, &base).unwrap().as_str(),
            "http://r.example/v2/_catalog?last=a&n=1"
        );
        assert!(next_link(&HeaderMap::new(), &base).is_none());
    }

    #[test]
    fn artifact_needs_the_egi_tag() {
        let m = Manifest::parse(
            br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:00","size":3,
            "annotations":{"org.opencontainers.image.title":"disk.qcow2"}}],
            "annotations":{"eu.egi.cloud.image.title":"Ubuntu"}}"#,
        )
        .unwrap();
        let s = artifact_candidate("http://r", "r", "p/u", "1", "sha256:aa", &m).unwrap_err();
        assert_eq!(s.reason, "NotTagged");
        let mut m2 = m.clone();
        m2.annotations
            .insert(TAG_ANNOTATION.into(), "2025.01".into());
        let c = artifact_candidate("http://r", "r", "p/u", "1", "sha256:aa", &m2).unwrap();
        assert_eq!(c.identifier, "r/p/u:1-sha256:aa");
        assert_eq!(c.title, "Ubuntu");
        assert_eq!(c.version, "2025.01");
        assert_eq!(c.location.size(), 3);
    }
}
