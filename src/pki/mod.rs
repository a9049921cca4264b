//! Grid PKI: the IGTF trust store, X.509/GSI proxy chain validation and the
//! gridsite-compatible values exported to Keystone.

pub mod dn;
pub mod hash;
pub mod store;

pub use store::TrustStore;

use serde::Deserialize;

use crate::auth::{AuthOutcome, Denial};
use crate::config::{Problems, Source};
use crate::conn::ConnInfo;
use crate::route::Route;

/// `[x509]`: how client chains are validated.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct X509Config {}

impl X509Config {
    pub(crate) fn validate(&self, _src: &Source, _p: &mut Problems) {}
}

/// `[route.x509]`: per-route X.509 requirements.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteX509 {}

/// Validates the connection's client chain and builds the gridsite values.
pub struct X509Authenticator {}

impl X509Authenticator {
    pub async fn authenticate(
        &self,
        _route: &Route,
        _req: &http::request::Parts,
        _conn: &ConnInfo,
    ) -> AuthOutcome {
        AuthOutcome::Deny(Denial::new(
            http::StatusCode::NOT_IMPLEMENTED,
            "X.509 authentication is not available",
        ))
    }
}
