//! `auth = "x509"`: the connection's client chain, validated once per
//! connection, becomes the gridsite identity Keystone maps today.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::StatusCode;
use serde::Deserialize;

use super::validate::{FailKind, Validator, Verdict};
use crate::auth::{AuthOutcome, Denial};
use crate::conn::ConnInfo;
use crate::identity::{AuthMethod, Identity};
use crate::route::Route;
use crate::voms::export::FqanRequirement;
use crate::voms::{VomsOutcome, VomsSettings};

/// `[route.x509]`: per-route X.509 requirements.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteX509 {
    /// At least one FQAN of a valid VOMS AC must match this regex (as in
    /// `GRST_VOMS_FQANS`, e.g. `^/fedcloud.egi.eu(/|$)`), else 403.
    #[serde(default)]
    pub require_fqan: Option<FqanRequirement>,
}

impl RouteX509 {
    /// Route-level requirements on a valid chain; `Some` refuses (403).
    pub fn check(&self, _verdict: &Verdict, voms: Option<&VomsOutcome>) -> Option<Denial> {
        let r = self.require_fqan.as_ref()?;
        let empty = VomsOutcome::default();
        r.check(voms.unwrap_or(&empty))
            .err()
            .map(|reason| Denial::new(StatusCode::FORBIDDEN, reason))
    }
}

/// What one connection's chain amounts to; cached in
/// `ConnInfo.tls.x509_verdict` so every request on the connection reuses it.
#[derive(Debug)]
pub struct ConnVerdict {
    pub verdict: Verdict,
    pub voms: Option<VomsOutcome>,
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Validates client chains and builds the gridsite values.
pub struct X509Authenticator {
    validator: Arc<Validator>,
    voms: Arc<VomsSettings>,
}

impl X509Authenticator {
    pub fn new(validator: Arc<Validator>, voms: Arc<VomsSettings>) -> Self {
        X509Authenticator { validator, voms }
    }

    pub fn validator(&self) -> &Arc<Validator> {
        &self.validator
    }

    /// Validation plus VOMS evaluation for a chain (also used by x509-info).
    pub fn evaluate(&self, chain: &[impl AsRef<[u8]>], now: i64) -> ConnVerdict {
        let verdict = self.validator.validate(chain, now);
        // ACs are only looked at on a valid chain; a bad AC drops its FQANs
        // (logged) but never the connection, as with gridsite.
        let voms = verdict.valid().then(|| {
            let ders: Vec<rustls_pki_types::CertificateDer<'_>> = chain
                .iter()
                .map(|c| rustls_pki_types::CertificateDer::from(c.as_ref()))
                .collect();
            let o = crate::voms::evaluate(&ders, verdict.eec, &*self.validator, &self.voms, now);
            let who = verdict.eec().map(|c| c.subject.as_str()).unwrap_or("-");
            for r in &o.refused {
                tracing::info!(dn = %who, reason = %r, "VOMS attribute certificate refused");
            }
            o
        });
        ConnVerdict { verdict, voms }
    }

    /// Everything handed to Keystone for a valid chain: gridsite's values
    /// and the nginx-voms ones under their configured names.
    pub fn env(&self, cv: &ConnVerdict, peer: Option<std::net::IpAddr>) -> Vec<(String, Vec<u8>)> {
        let v = &cv.verdict;
        let mut out = super::gridsite::env(v, peer, cv.voms.as_ref());
        if let (Some(o), Some(eec)) = (&cv.voms, v.eec()) {
            for (k, val) in
                crate::voms::export::values(o, &eec.subject, &eec.issuer, &self.voms.export)
            {
                out.push((k, val.into_bytes()));
            }
        }
        out
    }

    pub async fn authenticate(
        &self,
        route: &Route,
        _req: &http::request::Parts,
        conn: &ConnInfo,
    ) -> AuthOutcome {
        let Some(tls) = conn.tls.as_ref() else {
            return deny(
                Denial::unauthorized("X.509 authentication needs a TLS connection", "X509"),
                route,
                "-",
            );
        };
        let slot = tls.x509_verdict.get_or_init(|| {
            Arc::new(self.evaluate(&tls.client_chain, unix_now()))
                as Arc<dyn std::any::Any + Send + Sync>
        });
        let Some(cv) = slot.downcast_ref::<ConnVerdict>() else {
            tracing::error!(route = %route.name, "connection verdict slot holds a foreign type");
            return AuthOutcome::Deny(Denial::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
            ));
        };
        let v = &cv.verdict;
        let who = v.eec().map(|c| c.subject.as_str()).unwrap_or("-");
        for note in &v.notes {
            tracing::debug!(dn = %who, note = %note, "x509 chain note");
        }
        if let Some(f) = &v.failure {
            let denial = match f.kind {
                FailKind::Depth => Denial::new(StatusCode::FORBIDDEN, f.reason.clone()),
                _ => Denial::unauthorized(
                    format!("client certificate refused: {}", f.reason),
                    "X509",
                ),
            };
            return deny(denial, route, who);
        }
        if let Some(opts) = &route.config.x509 {
            if let Some(d) = opts.check(v, cv.voms.as_ref()) {
                return deny(d, route, who);
            }
        }
        let Some(eec) = v.eec() else {
            return deny(
                Denial::unauthorized("no end-entity certificate", "X509"),
                route,
                who,
            );
        };
        let mut id = Identity::new(AuthMethod::X509, eec.subject.clone());
        for (k, val) in self.env(cv, Some(conn.peer.ip())) {
            id.set(k, val);
        }
        AuthOutcome::Forward(Some(id))
    }
}

fn deny(d: Denial, route: &Route, who: &str) -> AuthOutcome {
    tracing::info!(route = %route.name, status = d.status.as_u16(), dn = %who, reason = %d.reason, "x509 authentication refused");
    AuthOutcome::Deny(d)
}
