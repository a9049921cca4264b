//! The authentication phase: from a routed request to one [`Identity`] or
//! a refusal.
//!
//! - [`AuthOutcome`] and [`Denial`] are the contract (see `outcome.rs`).
//! - [`Policy`] is what a route asks for: an [`AuthKind`] with that
//!   authenticator's own options, and nothing else of the route.
//! - [`Authenticators`] holds the authenticators one configuration needs
//!   and dispatches on [`Policy`] (an enum: the set is closed).
//! - One folder per authenticator: [`x509`], [`bearer`], [`websso`]. None of
//!   them knows routes, the server or the configuration file; each is built
//!   from its own sections and gets its own options per request.
//!
//! Like pingora's `request_filter`, an authenticator may own endpoints of
//! its own (the login's redirect and logout paths); the pipeline asks
//! [`Authenticators::request_filter`] before routing, and
//! [`Authenticators::upstream_filter`] before forwarding.
//!
//! [`Identity`]: crate::identity::Identity

pub mod bearer;
mod outcome;
pub mod websso;
pub mod x509;

use std::sync::Arc;

use http::StatusCode;
use serde::Deserialize;

pub use outcome::{AuthOutcome, Denial};

use crate::conn::ConnInfo;
use crate::http::body::Body;

/// The authentication a route asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthKind {
    /// Forward without an identity (Keystone's own password/token auth).
    None,
    /// X.509 client chain, GSI proxies and VOMS attributes.
    X509,
    /// `Authorization: Bearer` access token.
    Bearer,
    /// Browser login with the OIDC authorization-code flow.
    Oidc,
    /// ESACO-compatible RFC 7662 endpoint (fedgate answers itself).
    Introspect,
}

impl AuthKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthKind::None => "none",
            AuthKind::X509 => "x509",
            AuthKind::Bearer => "bearer",
            AuthKind::Oidc => "oidc",
            AuthKind::Introspect => "introspect",
        }
    }
}

/// A route's authentication: the kind, with that authenticator's options.
#[derive(Debug, Clone)]
pub enum Policy {
    None,
    X509(x509::RouteX509),
    Bearer(bearer::RouteBearer),
    Oidc(websso::RouteOidc),
    Introspect(bearer::RouteBearer),
}

impl Policy {
    pub fn kind(&self) -> AuthKind {
        match self {
            Policy::None => AuthKind::None,
            Policy::X509(_) => AuthKind::X509,
            Policy::Bearer(_) => AuthKind::Bearer,
            Policy::Oidc(_) => AuthKind::Oidc,
            Policy::Introspect(_) => AuthKind::Introspect,
        }
    }
}

/// An answer to a request for one of an authenticator's own endpoints.
pub struct Filtered {
    /// Label for logs and metrics, in place of a route name.
    pub label: &'static str,
    pub outcome: AuthOutcome,
}

/// Authenticators built from one configuration, one per kind in use.
#[derive(Clone, Default)]
pub struct Authenticators {
    pub x509: Option<Arc<x509::X509Authenticator>>,
    pub bearer: Option<Arc<bearer::BearerAuthenticator>>,
    pub websso: Option<Arc<websso::WebSso>>,
}

impl Authenticators {
    /// Endpoints that belong to an authenticator rather than to a route:
    /// the browser login's redirect URI and logout path. `path` is the
    /// decoded path the router would see.
    ///
    /// Deciding is synchronous, so that the common case (not such an
    /// endpoint) costs a comparison and no future, allocation or span.
    pub fn request_filter<'a>(
        &'a self,
        path: &str,
        parts: &'a http::request::Parts,
        body: &'a mut Body,
    ) -> Option<std::pin::Pin<Box<dyn Future<Output = Filtered> + Send + 'a>>> {
        let w = self.websso.as_ref()?;
        let logout = path == w.cfg.logout_path;
        if !logout && path != w.cfg.redirect_path {
            return None;
        }
        Some(Box::pin(async move {
            if logout {
                let body = std::mem::replace(body, crate::http::body::empty());
                Filtered {
                    label: "oidc-logout",
                    outcome: AuthOutcome::Respond(w.logout(parts, body).await),
                }
            } else {
                Filtered {
                    label: "oidc-redirect",
                    outcome: w.finish_login(parts).await,
                }
            }
        }))
    }

    /// Runs the authenticator `policy` asks for. `body` is taken only by
    /// endpoints that answer themselves (introspection).
    pub async fn authenticate(
        &self,
        route: &str,
        policy: &Policy,
        parts: &http::request::Parts,
        conn: &ConnInfo,
        body: &mut Body,
    ) -> AuthOutcome {
        match policy {
            Policy::None => AuthOutcome::Forward(None),
            Policy::X509(opts) => match &self.x509 {
                Some(a) => a.authenticate(route, opts, conn).await,
                None => missing(route, policy),
            },
            Policy::Bearer(opts) => match &self.bearer {
                Some(b) => b.authenticate(opts, parts).await,
                None => missing(route, policy),
            },
            Policy::Oidc(opts) => match &self.websso {
                Some(w) => w.authenticate(opts, parts).await,
                None => missing(route, policy),
            },
            Policy::Introspect(opts) => match &self.bearer {
                Some(b) => {
                    let body = std::mem::replace(body, crate::http::body::empty());
                    AuthOutcome::Respond(b.introspect_endpoint(opts, parts, body).await)
                }
                None => missing(route, policy),
            },
        }
    }

    /// Last changes to a request before it is forwarded: Keystone has no
    /// use for the login's own cookies.
    pub fn upstream_filter(&self, headers: &mut http::HeaderMap) {
        if let Some(w) = &self.websso {
            websso::strip_own_cookies(headers, &w.own_cookies());
        }
    }
}

/// A route whose authenticator was not built: a configuration the
/// validator should have refused. Fail closed.
fn missing(route: &str, policy: &Policy) -> AuthOutcome {
    tracing::error!(
        route,
        auth = policy.kind().as_str(),
        "no authenticator configured for route"
    );
    AuthOutcome::Deny(Denial::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "authentication for this path is not configured",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn future_size<'a, A: 'a, B: ?Sized + 'a, C: 'a, D: 'a, E: 'a, F: 'a, Fut>(
        _: impl FnOnce(&'a A, &'a B, &'a C, &'a D, &'a E, &'a mut F) -> Fut,
    ) -> usize {
        std::mem::size_of::<Fut>()
    }

    fn future_size3<'a, A: 'a, B: ?Sized + 'a, C: 'a, Fut>(
        _: impl FnOnce(&'a A, &'a B, &'a C) -> Fut,
    ) -> usize {
        std::mem::size_of::<Fut>()
    }

    /// A request on an authenticated route holds the authenticator's
    /// future. A bearer token's validation (an IdP call and the cache's
    /// fill) is boxed where it happens, on a cache miss, so that the
    /// cached tokens, nearly every request, carry a small future: the
    /// bearer one was 11.4 KB and the dispatcher's 11.5 KB (release).
    #[test]
    fn authenticators_futures_are_small() {
        let dispatch = future_size(Authenticators::authenticate);
        let bearer = future_size3(bearer::BearerAuthenticator::check);
        assert!(bearer <= 2048, "bearer check future: {bearer} bytes");
        assert!(dispatch <= 4096, "authenticate future: {dispatch} bytes");
    }
}
