//! Keystone authentication and authenticated JSON requests.
//!
//! A [`Session`] holds one token and its catalog. It re-authenticates by
//! itself when the token is within [`REFRESH_MARGIN`] of its expiry, so a
//! long extraction or a large upload never fails half-way on an expired
//! token. [`Session::rescope`] gets a token for another project with the
//! same credentials (cASO extracts each project with a project-scoped
//! token; Glance members accept an image with a token of the member
//! project).

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::http::client::{Answer, HttpClient, HttpError};
use crate::secret::Secret;

/// Re-authenticate when the token expires within this margin.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// Largest JSON answer read from an OpenStack API (a page of 1,000 Nova
/// servers with details is about 3 MB).
pub const MAX_JSON_BYTES: usize = 64 << 20;

/// How the plugin proves who it is to Keystone.
#[derive(Debug, Clone, PartialEq)]
pub enum Credentials {
    Password {
        username: String,
        user_domain: String,
        password: Secret,
    },
    /// Keystone application credentials are bound to the project they were
    /// created in: they cannot be rescoped.
    ApplicationCredential { id: String, secret: Secret },
}

/// What the token is scoped to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Unscoped,
    System,
    ProjectId(String),
    ProjectName { name: String, domain: String },
}

/// Where and how to authenticate.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthOptions {
    /// Keystone's base URL, with or without `/v3`.
    pub auth_url: String,
    pub credentials: Credentials,
    pub scope: Scope,
    /// Catalog region; `None` takes the first endpoint of the interface.
    pub region: Option<String>,
    /// `public`, `internal` or `admin`.
    pub interface: String,
    /// CA bundle for Keystone and the services, beside the system roots.
    pub ca_file: Option<PathBuf>,
    /// Deadline of each HTTP exchange.
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenStackError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("Keystone refused the credentials ({status}): {detail}")]
    Auth { status: StatusCode, detail: String },
    #[error("{method} {url}: {status}: {detail}")]
    Status {
        method: Method,
        url: String,
        status: StatusCode,
        detail: String,
    },
    #[error("{url}: answer is not the JSON expected: {detail}")]
    Json { url: String, detail: String },
    #[error("no {interface} endpoint for service type {service_type} in the catalog{region}")]
    NoEndpoint {
        service_type: String,
        interface: String,
        region: String,
    },
    #[error("application credentials are bound to one project and cannot be rescoped")]
    CannotRescope,
}

impl OpenStackError {
    /// The HTTP status of a refused request, if that is what this is.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            OpenStackError::Status { status, .. } | OpenStackError::Auth { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }
}

/// One endpoint of the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub service_type: String,
    pub interface: String,
    pub region: Option<String>,
    pub url: String,
}

/// A Keystone token as the plugins need it.
#[derive(Debug, Clone)]
pub struct Token {
    pub id: Secret,
    /// Unix seconds.
    pub expires_at: i64,
    pub user_id: String,
    pub project_id: Option<String>,
    pub catalog: Vec<Endpoint>,
}

/// An authenticated session; cheap to share behind an `Arc`.
pub struct Session {
    http: HttpClient,
    opts: AuthOptions,
    token: Mutex<Token>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("auth_url", &self.opts.auth_url)
            .field("scope", &self.opts.scope)
            .finish()
    }
}

fn v3_base(auth_url: &str) -> String {
    let base = auth_url.trim_end_matches('/');
    if base.ends_with("/v3") {
        base.to_string()
    } else {
        format!("{base}/v3")
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub(crate) fn detail(body: &[u8]) -> String {
    // Keystone and Nova put a message in `error.message` or
    // `<fault>.message`; else the start of the body.
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        if let Some(obj) = v.as_object() {
            for inner in obj.values() {
                if let Some(m) = inner.get("message").and_then(Value::as_str) {
                    return m.chars().take(300).collect();
                }
            }
        }
    }
    String::from_utf8_lossy(body).chars().take(300).collect()
}

impl Session {
    /// Authenticates now, so that bad credentials fail at construction.
    pub async fn new(opts: AuthOptions) -> Result<Session, OpenStackError> {
        let http = HttpClient::new(opts.ca_file.as_deref(), opts.timeout)?;
        let token = authenticate(&http, &opts).await?;
        Ok(Session {
            http,
            opts,
            token: Mutex::new(token),
        })
    }

    /// A new session with the same credentials and another scope.
    pub async fn rescope(&self, scope: Scope) -> Result<Session, OpenStackError> {
        if matches!(
            self.opts.credentials,
            Credentials::ApplicationCredential { .. }
        ) {
            return Err(OpenStackError::CannotRescope);
        }
        let opts = AuthOptions {
            scope,
            ..self.opts.clone()
        };
        let token = authenticate(&self.http, &opts).await?;
        Ok(Session {
            http: self.http.clone(),
            opts,
            token: Mutex::new(token),
        })
    }

    /// The options this session authenticated with.
    pub fn options(&self) -> &AuthOptions {
        &self.opts
    }

    /// The outbound client, for streaming transfers a plugin does itself.
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// A valid token, re-authenticating if it is about to expire.
    pub async fn token(&self) -> Result<Token, OpenStackError> {
        let mut t = self.token.lock().await;
        if t.expires_at - now() < REFRESH_MARGIN.as_secs() as i64 {
            *t = authenticate(&self.http, &self.opts).await?;
        }
        Ok(t.clone())
    }

    /// Keystone's `/v3` URL.
    pub fn identity_url(&self) -> String {
        v3_base(&self.opts.auth_url)
    }

    /// The catalog URL of a service type (`compute`, `volumev3`,
    /// `network`, `image`, `placement`), without a trailing slash.
    pub async fn endpoint(&self, service_type: &str) -> Result<String, OpenStackError> {
        let t = self.token().await?;
        t.catalog
            .iter()
            .find(|e| {
                e.service_type == service_type
                    && e.interface == self.opts.interface
                    && match &self.opts.region {
                        Some(r) => e.region.as_deref() == Some(r.as_str()),
                        None => true,
                    }
            })
            .map(|e| e.url.trim_end_matches('/').to_string())
            .ok_or_else(|| OpenStackError::NoEndpoint {
                service_type: service_type.into(),
                interface: self.opts.interface.clone(),
                region: self
                    .opts
                    .region
                    .as_ref()
                    .map(|r| format!(" (region {r})"))
                    .unwrap_or_default(),
            })
    }

    /// A request with the session's token; a status outside 2xx is an
    /// [`OpenStackError::Status`].
    pub async fn request(
        &self,
        method: Method,
        url: &str,
        headers: &[(HeaderName, String)],
        body: Option<(&str, Bytes)>,
    ) -> Result<Answer, OpenStackError> {
        let t = self.token().await?;
        let mut all: Vec<(HeaderName, String)> = vec![
            (
                HeaderName::from_static("x-auth-token"),
                t.id.expose().to_string(),
            ),
            (http::header::ACCEPT, "application/json".into()),
        ];
        all.extend(headers.iter().cloned());
        let a = self
            .http
            .request(method.clone(), url, &all, body, MAX_JSON_BYTES)
            .await?;
        if !a.status.is_success() {
            return Err(OpenStackError::Status {
                method,
                url: url.to_string(),
                status: a.status,
                detail: detail(&a.body),
            });
        }
        Ok(a)
    }

    /// GET a JSON document.
    pub async fn get_json(
        &self,
        url: &str,
        headers: &[(HeaderName, String)],
    ) -> Result<Value, OpenStackError> {
        let a = self.request(Method::GET, url, headers, None).await?;
        serde_json::from_slice(&a.body).map_err(|e| OpenStackError::Json {
            url: url.into(),
            detail: e.to_string(),
        })
    }

    /// Send a JSON body; returns the JSON answer (`Null` when empty).
    pub async fn send_json(
        &self,
        method: Method,
        url: &str,
        headers: &[(HeaderName, String)],
        body: &Value,
    ) -> Result<Value, OpenStackError> {
        let a = self
            .request(
                method,
                url,
                headers,
                Some(("application/json", Bytes::from(body.to_string()))),
            )
            .await?;
        if a.body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&a.body).map_err(|e| OpenStackError::Json {
            url: url.into(),
            detail: e.to_string(),
        })
    }
}

fn auth_body(opts: &AuthOptions) -> Value {
    let identity = match &opts.credentials {
        Credentials::Password {
            username,
            user_domain,
            password,
        } => json!({
            "methods": ["password"],
            "password": {"user": {
                "name": username,
                "domain": {"name": user_domain},
                "password": password.expose(),
            }}
        }),
        Credentials::ApplicationCredential { id, secret } => json!({
            "methods": ["application_credential"],
            "application_credential": {"id": id, "secret": secret.expose()}
        }),
    };
    let mut auth = json!({ "identity": identity });
    // An application credential carries its own scope; asking for another
    // one is an error in Keystone.
    if !matches!(opts.credentials, Credentials::ApplicationCredential { .. }) {
        match &opts.scope {
            Scope::Unscoped => {}
            Scope::System => auth["scope"] = json!({"system": {"all": true}}),
            Scope::ProjectId(id) => auth["scope"] = json!({"project": {"id": id}}),
            Scope::ProjectName { name, domain } => {
                auth["scope"] = json!({"project": {"name": name, "domain": {"name": domain}}})
            }
        }
    }
    json!({ "auth": auth })
}

async fn authenticate(http: &HttpClient, opts: &AuthOptions) -> Result<Token, OpenStackError> {
    let url = format!("{}/auth/tokens", v3_base(&opts.auth_url));
    let a = http
        .request(
            Method::POST,
            &url,
            &[(http::header::ACCEPT, "application/json".into())],
            Some(("application/json", Bytes::from(auth_body(opts).to_string()))),
            MAX_JSON_BYTES,
        )
        .await?;
    if !a.status.is_success() {
        return Err(OpenStackError::Auth {
            status: a.status,
            detail: detail(&a.body),
        });
    }
    let id = a
        .headers
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| OpenStackError::Json {
            url: url.clone(),
            detail: "no X-Subject-Token header".into(),
        })?
        .to_string();
    parse_token(&url, Secret::new(id), &a.body)
}

/// The parts of Keystone's token document the plugins use.
fn parse_token(url: &str, id: Secret, body: &[u8]) -> Result<Token, OpenStackError> {
    let bad = |d: &str| OpenStackError::Json {
        url: url.into(),
        detail: d.into(),
    };
    let v: Value = serde_json::from_slice(body).map_err(|e| bad(&e.to_string()))?;
    let t = v.get("token").ok_or_else(|| bad("no token object"))?;
    let expires = t
        .get("expires_at")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no token.expires_at"))?;
    let expires_at = time::OffsetDateTime::parse(
        expires,
        &time::format_description::well_known::Iso8601::DEFAULT,
    )
    .map_err(|e| bad(&format!("token.expires_at {expires:?}: {e}")))?
    .unix_timestamp();
    let user_id = t
        .pointer("/user/id")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no token.user.id"))?
        .to_string();
    let project_id = t
        .pointer("/project/id")
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut catalog = Vec::new();
    for svc in t
        .get("catalog")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(kind) = svc.get("type").and_then(Value::as_str) else {
            continue;
        };
        for e in svc
            .get("endpoints")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (Some(interface), Some(url)) = (
                e.get("interface").and_then(Value::as_str),
                e.get("url").and_then(Value::as_str),
            ) else {
                continue;
            };
            catalog.push(Endpoint {
                service_type: kind.into(),
                interface: interface.into(),
                region: e
                    .get("region_id")
                    .or_else(|| e.get("region"))
                    .and_then(Value::as_str)
                    .map(str::to_string),
                url: url.into(),
            });
        }
    }
    Ok(Token {
        id,
        expires_at,
        user_id,
        project_id,
        catalog,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(credentials: Credentials, scope: Scope) -> AuthOptions {
        AuthOptions {
            auth_url: "http://ks:5000".into(),
            credentials,
            scope,
            region: None,
            interface: "public".into(),
            ca_file: None,
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn v3_base_adds_the_version_once() {
        assert_eq!(v3_base("http://ks:5000"), "http://ks:5000/v3");
        assert_eq!(v3_base("http://ks:5000/v3/"), "http://ks:5000/v3");
        assert_eq!(v3_base("https://ks/identity/v3"), "https://ks/identity/v3");
    }

    #[test]
    fn password_auth_body_carries_the_scope() {
        let pw = Credentials::Password {
            username: "acct".into(),
            user_domain: "Default".into(),
            password: Secret::new("pw"),
        };
        let b = auth_body(&opts(pw.clone(), Scope::ProjectId("p1".into())));
        assert_eq!(b["auth"]["scope"]["project"]["id"], "p1");
        assert_eq!(b["auth"]["identity"]["password"]["user"]["name"], "acct");
        let b = auth_body(&opts(pw.clone(), Scope::System));
        assert_eq!(b["auth"]["scope"]["system"]["all"], true);
        let b = auth_body(&opts(pw, Scope::Unscoped));
        assert!(b["auth"].get("scope").is_none());
    }

    #[test]
    fn application_credentials_never_ask_for_a_scope() {
        let ac = Credentials::ApplicationCredential {
            id: "ac".into(),
            secret: Secret::new("s"),
        };
        let b = auth_body(&opts(ac, Scope::ProjectId("p1".into())));
        assert!(b["auth"].get("scope").is_none());
        assert_eq!(
            b["auth"]["identity"]["methods"][0],
            "application_credential"
        );
    }

    #[test]
    fn token_document_is_read() {
        let body = br#"{"token": {"expires_at": "2026-12-03T14:00:00.000000Z",
            "user": {"id": "u1"}, "project": {"id": "p1"},
            "catalog": [{"type": "compute", "endpoints": [
                {"interface": "public", "region_id": "RegionOne", "url": "http://nova/v2.1/"},
                {"interface": "internal", "region_id": "RegionOne", "url": "http://nova-int/v2.1"}]},
              {"type": "image", "endpoints": [{"interface": "public", "url": "http://glance"}]}]}}"#;
        let t = parse_token("u", Secret::new("tok"), body).unwrap();
        assert_eq!(t.user_id, "u1");
        assert_eq!(t.project_id.as_deref(), Some("p1"));
        assert_eq!(t.expires_at, 1_796_306_400);
        assert_eq!(t.catalog.len(), 3);
        assert_eq!(t.catalog[0].region.as_deref(), Some("RegionOne"));
        assert!(parse_token("u", Secret::new("t"), b"{}").is_err());
        assert!(parse_token("u", Secret::new("t"), b"not json").is_err());
    }

    #[test]
    fn error_detail_prefers_the_message() {
        assert_eq!(
            detail(
                br#"{"itemNotFound": {"message": "Instance x could not be found.", "code": 404}}"#
            ),
            "Instance x could not be found."
        );
        assert_eq!(detail(b"plain text"), "plain text");
    }
}
