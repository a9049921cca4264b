//! The authentication phase: from a routed request to an identity or a refusal.

use std::sync::Arc;

use http::StatusCode;

use crate::conn::ConnInfo;
use crate::identity::Identity;
use crate::route::{AuthKind, Route};
use crate::server::body::Body;

/// What an authenticator decided.
pub enum AuthOutcome {
    /// Forward to Keystone; `None` means the route needs no identity.
    Forward(Option<Identity>),
    /// Forward `uri` (GET) instead of this request, with this identity, and
    /// add these headers to Keystone's answer: the end of a browser login,
    /// which replays the original WebSSO request.
    Replay {
        uri: http::Uri,
        identity: Identity,
        response_headers: http::HeaderMap,
    },
    /// Refuse with a status and a short reason for the client and the log.
    Deny(Denial),
    /// The authenticator answers itself (e.g. an OIDC redirect).
    Respond(http::Response<Body>),
}

/// A refusal. The reason is shown to the client and logged: it must name
/// what was wrong without echoing secrets (tokens, cookies, keys).
#[derive(Debug, Clone)]
pub struct Denial {
    pub status: StatusCode,
    pub reason: String,
    /// Value of `WWW-Authenticate` for 401 answers.
    pub www_authenticate: Option<String>,
}

impl Denial {
    pub fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Denial {
            status,
            reason: reason.into(),
            www_authenticate: None,
        }
    }
    pub fn unauthorized(reason: impl Into<String>, challenge: impl Into<String>) -> Self {
        Denial {
            status: StatusCode::UNAUTHORIZED,
            reason: reason.into(),
            www_authenticate: Some(challenge.into()),
        }
    }
}

/// Authenticators built from the configuration, one per kind in use.
#[derive(Clone, Default)]
pub struct Authenticators {
    pub x509: Option<Arc<crate::pki::X509Authenticator>>,
    pub bearer: Option<Arc<crate::token::BearerAuthenticator>>,
    pub websso: Option<Arc<crate::oidc::websso::flow::WebSso>>,
}

impl Authenticators {
    /// Builds the authenticators the configured routes need.
    /// `previous` is the running configuration and its authenticators on
    /// a reload.
    pub async fn build(
        cfg: &crate::config::Config,
        trust: &Arc<crate::pki::TrustStore>,
        previous: Option<(&crate::config::Config, &Authenticators)>,
    ) -> Result<Authenticators, String> {
        let mut a = Authenticators::default();
        if cfg
            .routes
            .iter()
            .any(|r| *r.auth.get_ref() == AuthKind::X509)
        {
            let v = crate::pki::Validator::new(trust.clone(), cfg.x509.clone());
            let voms = Arc::new(crate::voms::VomsSettings::from_config(&cfg.voms));
            a.x509 = Some(Arc::new(crate::pki::X509Authenticator::new(
                Arc::new(v),
                voms,
            )));
        }
        let wants_bearer = cfg
            .routes
            .iter()
            .any(|r| matches!(*r.auth.get_ref(), AuthKind::Bearer | AuthKind::Introspect));
        if wants_bearer {
            let kept = previous.and_then(|(old_cfg, old)| {
                old.bearer
                    .as_ref()
                    .filter(|_| crate::token::BearerAuthenticator::survives(old_cfg, cfg))
            });
            a.bearer = Some(match kept {
                Some(b) => {
                    b.check_routes(cfg)?;
                    tracing::info!("IdPs and token cache unchanged: cached tokens and keys kept");
                    b.clone()
                }
                None => Arc::new(crate::token::BearerAuthenticator::build(cfg)?),
            });
        }
        if cfg
            .routes
            .iter()
            .any(|r| *r.auth.get_ref() == AuthKind::Oidc)
        {
            let registry = match &a.bearer {
                Some(b) => b.registry.clone(),
                None => Arc::new(crate::oidc::Registry::build(cfg)?),
            };
            let w = crate::oidc::websso::flow::WebSso::build(cfg.oidc.clone(), registry).await?;
            a.websso = Some(Arc::new(w));
        }
        Ok(a)
    }

    /// Runs the authenticator the route asks for.
    pub async fn authenticate(
        &self,
        route: &Route,
        req: &http::request::Parts,
        conn: &ConnInfo,
    ) -> AuthOutcome {
        match route.auth {
            AuthKind::None => AuthOutcome::Forward(None),
            AuthKind::X509 => match &self.x509 {
                Some(a) => a.authenticate(route, req, conn).await,
                None => missing(route),
            },
            AuthKind::Bearer => match &self.bearer {
                Some(b) => b.authenticate(route, req).await,
                None => missing(route),
            },
            AuthKind::Oidc => match &self.websso {
                Some(w) => w.authenticate(route, req).await,
                None => missing(route),
            },
            AuthKind::Introspect => missing(route),
        }
    }
}

/// A route whose authenticator was not built: a configuration the
/// validator should have refused. Fail closed.
fn missing(route: &Route) -> AuthOutcome {
    tracing::error!(route = %route.name, auth = route.auth.as_str(), "no authenticator configured for route");
    AuthOutcome::Deny(Denial::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "authentication for this path is not configured",
    ))
}
