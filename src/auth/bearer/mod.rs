//! `auth = "bearer"`: OAuth 2.0 access tokens from any configured IdP.
//!
//! A JWT goes to the IdP its (unverified) `iss` names and is checked
//! locally or introspected, as that IdP's `validation` says; an opaque
//! token is introspected at the route's IdPs in order. Results are cached
//! (see [`cache`]), and the claims become the identity mod_auth_openidc
//! would have produced (see [`crate::oidc::claims`]).

pub mod cache;
mod esaco;
pub mod extract;
pub mod rules;
mod shared;

use std::path::Path;
use std::sync::Arc;

use http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value};

pub use cache::CacheConfig;

use super::{AuthOutcome, Denial};
use crate::identity::AuthMethod;
use crate::oidc::claims::{self, Export};
use crate::oidc::jws as jwt;
use crate::oidc::{Idp, IdpConfig, IdpError, Registry, TokenError, Validation, introspect};
use crate::secret::Secret;
use cache::{Entry, TokenCache, Validated};

fn default_max_token() -> usize {
    16 * 1024
}

/// `[route.bearer]`: per-route options of `auth = "bearer"` (and of
/// `auth = "introspect"`, the ESACO-compatible endpoint).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteBearer {
    /// IdPs whose tokens this route accepts; empty accepts every IdP.
    #[serde(default)]
    pub idps: Vec<String>,
    /// IdPs an opaque token is introspected at, in order; the first that
    /// says active wins. Default: every IdP that allows introspection,
    /// in configuration order.
    #[serde(default)]
    pub opaque_idps: Option<Vec<String>>,
    /// All must hold, or 403.
    #[serde(default)]
    pub require_claims: Vec<rules::RequireClaim>,
    /// Longer tokens get 401 before any parsing.
    #[serde(default = "default_max_token")]
    pub max_token_bytes: usize,
    /// `auth = "introspect"` only: callers allowed with HTTP Basic.
    #[serde(default)]
    pub clients: Vec<IntrospectClient>,
}

impl Default for RouteBearer {
    fn default() -> Self {
        RouteBearer {
            idps: Vec::new(),
            opaque_idps: None,
            require_claims: Vec::new(),
            max_token_bytes: default_max_token(),
            clients: Vec::new(),
        }
    }
}

/// A caller of the `/introspect` endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntrospectClient {
    pub id: String,
    pub secret: Secret,
}

/// Why the bearer authenticator could not be built, or does not fit a
/// route's options.
#[derive(Debug, thiserror::Error)]
pub enum BearerError {
    #[error(transparent)]
    Idp(#[from] IdpError),
    #[error("[route.bearer] names idp `{0}`, which is not configured")]
    UnknownIdp(String),
    #[error("a route uses bearer tokens but no [[idp]] is configured")]
    NoIdp,
}

/// Validates bearer tokens for every bearer and introspect route.
pub struct BearerAuthenticator {
    pub registry: Arc<Registry>,
    pub cache: TokenCache,
}

impl BearerAuthenticator {
    /// Builds the IdP registry (`[[idp]]` tables and the metadata
    /// directory) and the token cache (`[cache]`, shared through `state`).
    pub fn build(
        idps: &[IdpConfig],
        metadata_dir: Option<&Path>,
        cache: &CacheConfig,
        state: Option<&crate::kv::Store>,
    ) -> Result<BearerAuthenticator, BearerError> {
        let registry = crate::oidc::registry(idps, metadata_dir)?;
        if registry.is_empty() {
            return Err(BearerError::NoIdp);
        }
        Ok(BearerAuthenticator {
            registry: Arc::new(registry),
            cache: TokenCache::new(cache, state),
        })
    }

    /// Whether a route's options name only IdPs this authenticator knows
    /// (IdPs from a metadata directory are known only once it is read).
    pub fn check_options(&self, opts: &RouteBearer) -> Result<(), BearerError> {
        for n in opts.idps.iter().chain(opts.opaque_idps.iter().flatten()) {
            if self.registry.by_name(n).is_none() {
                return Err(BearerError::UnknownIdp(n.clone()));
            }
        }
        Ok(())
    }

    /// `auth = "bearer"`.
    pub async fn authenticate(
        &self,
        opts: &RouteBearer,
        req: &http::request::Parts,
    ) -> AuthOutcome {
        let entry = match extract::bearer(&req.headers, opts.max_token_bytes) {
            Ok(t) => self.check(t, opts).await,
            Err(e) => Err(e),
        };
        let entry = match entry {
            Ok(e) => e,
            Err(e) => return AuthOutcome::Deny(denial(&e)),
        };
        if let Some(rule) = rules::first_failure(&opts.require_claims, &entry.validated.claims) {
            return AuthOutcome::Deny(Denial::new(
                StatusCode::FORBIDDEN,
                format!(
                    "the token's claim `{}` does not satisfy this path's requirements",
                    rule.claim
                ),
            ));
        }
        AuthOutcome::Forward(Some(entry.identity.clone()))
    }

    /// Validates a token (through the cache) and applies the route's IdP
    /// allow-list.
    pub async fn check(&self, token: &str, opts: &RouteBearer) -> Result<Arc<Entry>, TokenError> {
        let entry = if jwt::looks_like_jwt(token) {
            let key = cache::key(&[token.as_bytes()]);
            // A token seen before needs no parsing: its entry was built
            // from the IdP its issuer named, and a reload that changes the
            // IdPs starts a new cache.
            if let Some(e) = self.cache.cached(&key).await {
                return self.allowed(e, opts);
            }
            let u = jwt::peek(token)?;
            let idp = self
                .registry
                .by_issuer(jwt::issuer(&u)?)
                .ok_or(TokenError::UnknownIssuer)?
                .clone();
            // Boxed, as below: the validation's future (the IdP call and
            // the cache's fill) is about 11 KB, and inline it would make
            // every request's future on a bearer route that large, the
            // cached ones too, which are nearly all of them.
            Box::pin(
                self.cache
                    .get_or_validate(key, validate_jwt(idp.clone(), token), |v| {
                        build_entry(&idp, v)
                    }),
            )
            .await?
        } else {
            let plan = self.opaque_plan(opts);
            if plan.is_empty() {
                return Err(TokenError::OpaqueNotAccepted);
            }
            let mut parts: Vec<&[u8]> = plan.iter().map(|i| i.name().as_bytes()).collect();
            parts.push(token.as_bytes());
            let key = cache::key(&parts);
            // As for a JWT: an entry under this key is what the validation
            // below would return from the cache.
            if let Some(e) = self.cache.cached(&key).await {
                return self.allowed(e, opts);
            }
            let registry = self.registry.clone();
            Box::pin(self.cache.get_or_validate(
                key,
                validate_opaque(plan.clone(), token),
                move |v| {
                    let idp = registry.by_name(&v.idp).ok_or(TokenError::UnknownIssuer)?;
                    build_entry(idp, v)
                },
            ))
            .await?
        };
        self.allowed(entry, opts)
    }

    /// The route's IdP allow-list.
    fn allowed(&self, entry: Arc<Entry>, opts: &RouteBearer) -> Result<Arc<Entry>, TokenError> {
        if !opts.idps.is_empty() && !opts.idps.contains(&entry.validated.idp) {
            return Err(TokenError::IdpNotAllowed(entry.validated.idp.clone()));
        }
        Ok(entry)
    }

    fn opaque_plan(&self, opts: &RouteBearer) -> Vec<Arc<Idp>> {
        match &opts.opaque_idps {
            Some(names) => names
                .iter()
                .filter_map(|n| self.registry.by_name(n).cloned())
                .collect(),
            None => self
                .registry
                .iter()
                .filter(|i| i.config.validation != Validation::Jwt)
                .filter(|i| opts.idps.is_empty() || opts.idps.contains(&i.config.name))
                .cloned()
                .collect(),
        }
    }
}

/// A 401 with an RFC 6750 challenge, or a 503 when the IdP failed.
pub fn denial(e: &TokenError) -> Denial {
    let status = e.status();
    if status == StatusCode::UNAUTHORIZED {
        Denial::unauthorized(e.to_string(), e.challenge())
    } else {
        Denial::new(status, e.to_string())
    }
}

async fn validate_jwt(idp: Arc<Idp>, token: &str) -> Result<Validated, TokenError> {
    let claims = match idp.config.validation {
        Validation::Introspection => introspect::introspect(&idp, token).await?.claims,
        Validation::Jwt | Validation::Auto => jwt::verify_access_token(&idp, token).await?,
    };
    finish(&idp, token, claims).await
}

async fn validate_opaque(plan: Vec<Arc<Idp>>, token: &str) -> Result<Validated, TokenError> {
    let mut unavailable = None;
    for idp in &plan {
        if idp.config.validation == Validation::Jwt {
            continue;
        }
        match introspect::introspect(idp, token).await {
            Ok(i) => return finish(idp, token, i.claims).await,
            // Not this IdP's token (or dead): try the next one.
            Err(TokenError::Inactive) | Err(TokenError::Refused(_)) => {}
            Err(e @ TokenError::Unavailable(_)) | Err(e @ TokenError::BadResponse(_)) => {
                tracing::warn!(idp = idp.name(), error = %e, "introspection failed");
                unavailable = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    // If an IdP could not answer, the token may be its: do not call it
    // inactive (and do not cache that).
    Err(unavailable.unwrap_or(TokenError::Inactive))
}

/// Adds userinfo claims the token lacks (optional), then checks `sub`.
async fn finish(
    idp: &Idp,
    token: &str,
    mut claims: Map<String, Value>,
) -> Result<Validated, TokenError> {
    if idp.config.userinfo {
        match userinfo(idp, token).await {
            Ok(extra) if extra.get("sub") == claims.get("sub") => {
                for (k, v) in extra {
                    claims.entry(k).or_insert(v);
                }
            }
            Ok(_) => tracing::warn!(idp = idp.name(), "userinfo names another subject; ignored"),
            Err(e) => {
                tracing::info!(idp = idp.name(), error = %e, "userinfo not available for this token")
            }
        }
    }
    match claims.get("sub") {
        Some(Value::String(s)) if !s.is_empty() => {}
        _ => return Err(TokenError::NoSubject),
    }
    Ok(Validated::new(idp.name(), claims))
}

async fn userinfo(idp: &Idp, token: &str) -> Result<Map<String, Value>, String> {
    let url = idp.userinfo_endpoint().await.map_err(|e| e.to_string())?;
    let a = idp
        .http
        .get(&url, Some(token))
        .await
        .map_err(|e| e.to_string())?;
    if !a.status.is_success() {
        return Err(format!("HTTP {}", a.status.as_u16()));
    }
    serde_json::from_slice(&a.body).map_err(|e| e.to_string())
}

fn build_entry(idp: &Idp, v: Validated) -> Result<Entry, TokenError> {
    let export = Export {
        claims: idp.config.claims.clone(),
        remote_user: idp.config.remote_user,
    };
    let identity = claims::to_identity(AuthMethod::Bearer, idp.issuer(), &v.claims, &export)
        .map_err(|_| TokenError::NoSubject)?;
    Ok(Entry {
        validated: v,
        identity: identity.into(),
    })
}
