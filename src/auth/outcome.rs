//! The contract between the pipeline and every authenticator.
//!
//! It lives apart from the dispatcher and the authenticators so that each
//! of them depends on it and on nothing of the others: an authenticator
//! answers with one [`AuthOutcome`], and the pipeline alone decides what to
//! do with it.

use std::sync::Arc;

use http::StatusCode;

use crate::http::body::Body;
use crate::identity::Identity;

/// What an authenticator decided.
pub enum AuthOutcome {
    /// Forward to Keystone; `None` means the route needs no identity.
    /// Shared: a cached token or a session hands out the identity it built
    /// once, not a copy per request.
    Forward(Option<Arc<Identity>>),
    /// Forward `uri` (GET) instead of this request, with this identity, and
    /// add these headers to Keystone's answer: the end of a browser login,
    /// which replays the original WebSSO request.
    Replay {
        uri: http::Uri,
        identity: Arc<Identity>,
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
