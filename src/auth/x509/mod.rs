//! `auth = "x509"`: the connection's client chain, validated once per
//! connection, becomes the gridsite identity Keystone maps today.
//!
//! Chain validation itself is [`crate::pki`]'s and AC validation
//! [`crate::voms`]'s; this authenticator combines them per connection and
//! writes the values gridsite would ([`gridsite`]).

pub mod gridsite;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::StatusCode;
use serde::Deserialize;

use super::{AuthOutcome, Denial};
use crate::conn::ConnInfo;
use crate::identity::{AuthMethod, Identity};
use crate::pki::paths::PathCache;
use crate::pki::{FailKind, Validator, Verdict, unix_now};
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
/// `ConnInfo.tls.x509_verdict` so requests on the connection reuse it, for
/// as long as it still holds (see [`ConnVerdict::holds`]). A valid one is
/// also shared by the new connections that present the same chain (see
/// [`X509Authenticator::chains`]).
#[derive(Debug)]
pub struct ConnVerdict {
    pub verdict: Verdict,
    pub voms: Option<VomsOutcome>,
    /// The authenticator that built it: a reload (new CRLs, CAs, vomsdir)
    /// builds a new one, and a long-lived connection must be judged again.
    built_by: u64,
    /// The earliest `notAfter` among the chain's certificates and accepted
    /// ACs. Past it, the cached answer would forward an expired proxy or
    /// expired FQANs.
    stale_after: i64,
    /// The identity built from it, the client address it was built for
    /// (gridsite's `ip:` credential), and the last second it holds (see
    /// [`gridsite::env_stable_until`]): the requests of a keep-alive
    /// connection, and the connections of a returning client, share one
    /// instead of formatting the gridsite and mod_ssl values, PEMs
    /// included, again each time.
    identity: std::sync::Mutex<Option<BuiltIdentity>>,
}

#[derive(Debug)]
struct BuiltIdentity {
    until: i64,
    peer: std::net::IpAddr,
    identity: Arc<Identity>,
}

impl ConnVerdict {
    /// Whether this verdict may still answer for `auth` at `now`.
    pub fn holds(&self, auth: &X509Authenticator, now: i64) -> bool {
        self.built_by == auth.generation && now <= self.stale_after
    }

    /// Whether other connections presenting the same chain may use this
    /// verdict: a valid chain whose ACs were all accepted. A refused AC
    /// (not yet valid, say) may be accepted a second later, and its refusal
    /// is logged per connection, so such a chain is evaluated each time.
    fn shareable(&self) -> bool {
        self.verdict.valid() && self.voms.as_ref().is_none_or(|o| o.refused.is_empty())
    }
}

/// Valid chains' verdicts kept per authenticator: each holds a built
/// identity of some ten kB (PEMs included), so fewer than the validator's
/// 4096 paths. A site with more proxies active within an hour evaluates the
/// rest per connection, as before.
const SHARED_CHAINS: u64 = 1024;

/// The earliest expiry among everything a verdict relied on. A refusal
/// stays a refusal until a reload (time only makes an expired certificate
/// more expired), so a client cannot make every request on one connection
/// pay for a full chain validation.
fn stale_after(verdict: &Verdict, voms: Option<&VomsOutcome>) -> i64 {
    if !verdict.valid() {
        return i64::MAX;
    }
    let certs = verdict
        .certs
        .iter()
        .chain(&verdict.path)
        .map(|c| c.not_after);
    let acs = voms
        .into_iter()
        .flat_map(|o| o.acs.iter().map(|a| a.not_after));
    certs.chain(acs).min().unwrap_or(i64::MAX)
}

/// New connections whose chain was evaluated, and those that shared an
/// earlier connection's verdict, since the process started.
static EVALUATED: AtomicU64 = AtomicU64::new(0);
static SHARED: AtomicU64 = AtomicU64::new(0);

/// (verdicts evaluated for a new connection, verdicts shared from an
/// earlier connection with the same chain): `fedgate_x509_verdicts_total`.
pub fn verdict_counts() -> (u64, u64) {
    (
        EVALUATED.load(Ordering::Relaxed),
        SHARED.load(Ordering::Relaxed),
    )
}

/// Tells authenticators apart across reloads (addresses can be reused).
static GENERATION: AtomicU64 = AtomicU64::new(1);

/// Validates client chains and builds the gridsite values.
pub struct X509Authenticator {
    validator: Arc<Validator>,
    voms: Arc<VomsSettings>,
    generation: u64,
    /// Verdicts of valid chains, VOMS evaluation and built identity
    /// included, by the chain's key. A grid client opens a new connection
    /// for almost every call with the same proxy: the validator answers
    /// the chain from its own cache, and this one spares the AC checks and
    /// gridsite's values. It follows the validator's rules of time (an
    /// entry answers between its evaluation and the first expiry of a
    /// certificate or accepted AC) and is never asked before the validator
    /// has accepted the chain again at the current time; it dies with the
    /// authenticator at a reload.
    chains: PathCache<Arc<ConnVerdict>>,
}

impl X509Authenticator {
    pub fn new(validator: Arc<Validator>, voms: Arc<VomsSettings>) -> Self {
        let generation = GENERATION.fetch_add(1, Ordering::Relaxed);
        X509Authenticator {
            validator,
            voms,
            generation,
            chains: PathCache::with_capacity(SHARED_CHAINS),
        }
    }

    pub fn validator(&self) -> &Arc<Validator> {
        &self.validator
    }

    /// Validation plus VOMS evaluation for a chain (also used by x509-info).
    pub fn evaluate(&self, chain: &[impl AsRef<[u8]>], now: i64) -> ConnVerdict {
        self.evaluate_verdict(self.validator.validate(chain, now), chain, now)
    }

    /// VOMS evaluation on a chain the validator has judged.
    fn evaluate_verdict(
        &self,
        verdict: Verdict,
        chain: &[impl AsRef<[u8]>],
        now: i64,
    ) -> ConnVerdict {
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
        let stale_after = stale_after(&verdict, voms.as_ref());
        ConnVerdict {
            verdict,
            voms,
            built_by: self.generation,
            stale_after,
            identity: std::sync::Mutex::new(None),
        }
    }

    /// Everything handed to Keystone for a valid chain: gridsite's values
    /// and the nginx-voms ones under their configured names.
    pub fn env(&self, cv: &ConnVerdict, peer: Option<std::net::IpAddr>) -> Vec<(String, Vec<u8>)> {
        self.env_at(cv, peer, unix_now())
    }

    fn env_at(
        &self,
        cv: &ConnVerdict,
        peer: Option<std::net::IpAddr>,
        now: i64,
    ) -> Vec<(String, Vec<u8>)> {
        let v = &cv.verdict;
        let mut out = gridsite::env(v, peer, cv.voms.as_ref(), now);
        if let (Some(o), Some(eec)) = (&cv.voms, v.eec()) {
            for (k, val) in
                crate::voms::export::values(o, &eec.subject, &eec.issuer, &self.voms.export)
            {
                out.push((k, val.into_bytes()));
            }
        }
        out
    }

    /// The connection's cached verdict, judged again when a reload or an
    /// expiry has made it stale.
    fn verdict_for(&self, tls: &crate::conn::TlsInfo, now: i64) -> Arc<ConnVerdict> {
        let mut slot = tls
            .x509_verdict
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(cv) = slot
            .as_ref()
            .and_then(|a| a.clone().downcast::<ConnVerdict>().ok())
            && cv.holds(self, now)
        {
            return cv;
        }
        let cv = self.new_connection_verdict(&tls.client_chain, now);
        *slot = Some(cv.clone());
        cv
    }

    /// A new connection's verdict: the validator judges the chain at `now`
    /// (from its cache, with every validity window and CRL checked again),
    /// and a valid chain that an earlier connection presented reuses that
    /// connection's verdict while it holds.
    fn new_connection_verdict(&self, chain: &[impl AsRef<[u8]>], now: i64) -> Arc<ConnVerdict> {
        let key = crate::pki::paths::key(chain);
        let verdict = self.validator.validate_keyed(&key, chain, now);
        if verdict.valid()
            && let Some(cv) = self.chains.get(&key, now, |cv| cv.holds(self, now))
        {
            SHARED.fetch_add(1, Ordering::Relaxed);
            return cv;
        }
        EVALUATED.fetch_add(1, Ordering::Relaxed);
        let cv = Arc::new(self.evaluate_verdict(verdict, chain, now));
        if cv.shareable() {
            self.chains.insert(key, &cv, cv.stale_after, now);
        }
        cv
    }

    /// `auth = "x509"` for the route named `route` with its options.
    pub async fn authenticate(
        &self,
        route: &str,
        opts: &RouteX509,
        conn: &ConnInfo,
    ) -> AuthOutcome {
        let Some(tls) = conn.tls.as_ref() else {
            return deny(
                Denial::unauthorized("X.509 authentication needs a TLS connection", "X509"),
                route,
                "-",
            );
        };
        let now = unix_now();
        let cv = self.verdict_for(tls, now);
        let cv = &*cv;
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
        if let Some(d) = opts.check(v, cv.voms.as_ref()) {
            return deny(d, route, who);
        }
        let Some(eec) = v.eec() else {
            return deny(
                Denial::unauthorized("no end-entity certificate", "X509"),
                route,
                who,
            );
        };
        AuthOutcome::Forward(Some(self.identity(cv, &eec.subject, conn.peer.ip(), now)))
    }

    /// The identity of a valid verdict at `now` for a client at `peer`,
    /// built once and shared by the requests and connections that use the
    /// verdict while its values hold and the client address is the same.
    fn identity(
        &self,
        cv: &ConnVerdict,
        principal: &str,
        peer: std::net::IpAddr,
        now: i64,
    ) -> Arc<Identity> {
        let mut slot = cv
            .identity
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(b) = slot.as_ref()
            && now <= b.until
            && b.peer == peer
        {
            return b.identity.clone();
        }
        let mut id = Identity::new(AuthMethod::X509, principal);
        for (k, val) in self.env_at(cv, Some(peer), now) {
            id.set(k, val);
        }
        let id = Arc::new(id);
        *slot = Some(BuiltIdentity {
            until: gridsite::env_stable_until(&cv.verdict, now),
            peer,
            identity: id.clone(),
        });
        id
    }
}

fn deny(d: Denial, route: &str, who: &str) -> AuthOutcome {
    tracing::info!(route, status = d.status.as_u16(), dn = %who, reason = %d.reason, "x509 authentication refused");
    AuthOutcome::Deny(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::voms::ValidAc;

    fn authenticator() -> X509Authenticator {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = crate::pki::TrustStore::load(dir.path()).unwrap();
        let validator = Validator::new(Arc::new(store), Default::default());
        let voms = VomsSettings::from_config(&Default::default());
        X509Authenticator::new(Arc::new(validator), Arc::new(voms))
    }

    fn ac(not_after: i64) -> ValidAc {
        ValidAc {
            vo: "fedcloud.egi.eu".into(),
            uri: "voms.example:15000".into(),
            server: "/CN=voms".into(),
            server_ca: "/CN=ca".into(),
            fqans: vec!["/fedcloud.egi.eu/Role=NULL/Capability=NULL".into()],
            not_before: 0,
            not_after,
            not_before_raw: String::new(),
            not_after_raw: String::new(),
            serial_hex: "01".into(),
            generic: vec![],
        }
    }

    fn verdict_with_acs(auth: &X509Authenticator, acs: Vec<ValidAc>) -> ConnVerdict {
        let mut cv = auth.evaluate(&Vec::<Vec<u8>>::new(), 1_000);
        cv.verdict.failure = None; // as if the (empty) chain had passed
        cv.voms = Some(VomsOutcome {
            carrier: Some(0),
            acs,
            refused: vec![],
        });
        cv.stale_after = stale_after(&cv.verdict, cv.voms.as_ref());
        cv
    }

    #[test]
    fn a_verdict_goes_stale_when_its_first_ac_expires() {
        let auth = authenticator();
        let cv = verdict_with_acs(&auth, vec![ac(5_000), ac(3_000)]);
        assert!(cv.holds(&auth, 2_999));
        assert!(cv.holds(&auth, 3_000));
        assert!(!cv.holds(&auth, 3_001), "FQANs must not outlive their AC");
    }

    #[test]
    fn a_refusal_is_kept_until_a_reload() {
        let auth = authenticator();
        let cv = auth.evaluate(&Vec::<Vec<u8>>::new(), 1_000);
        assert!(!cv.verdict.valid());
        assert!(
            cv.holds(&auth, i64::MAX - 1),
            "no re-validation per request"
        );
        assert!(!cv.holds(&authenticator(), 1_000));
    }

    /// A valid verdict for a leaf that expires at `not_after`.
    fn valid_verdict(auth: &X509Authenticator, not_after: i64) -> ConnVerdict {
        let mut cv = verdict_with_acs(auth, vec![]);
        cv.verdict.certs = vec![Arc::new(crate::pki::cert::Cert {
            subject: "/DC=org/CN=Alice".into(),
            issuer: "/DC=org/CN=CA".into(),
            not_before: 0,
            not_after,
            der: vec![0x30, 0x00],
            serial: vec![0x01],
            ..Default::default()
        })];
        cv.verdict.eec = 0;
        cv
    }

    #[test]
    fn a_connection_shares_one_identity_until_its_values_change() {
        let auth = authenticator();
        let day = 86_400;
        let cv = valid_verdict(&auth, 10 * day + 100);
        let peer = "192.0.2.7".parse().unwrap();
        let first = auth.identity(&cv, "alice", peer, 0);
        assert_eq!(first.get("SSL_CLIENT_V_REMAIN"), Some(&b"10"[..]));
        assert_eq!(first.get("GRST_CRED_AURI_1"), Some(&b"ip:192.0.2.7"[..]));
        let again = auth.identity(&cv, "alice", peer, 100);
        assert!(Arc::ptr_eq(&first, &again), "built once per connection");
        let next_day = auth.identity(&cv, "alice", peer, 101);
        assert!(!Arc::ptr_eq(&first, &next_day));
        assert_eq!(next_day.get("SSL_CLIENT_V_REMAIN"), Some(&b"9"[..]));
        assert_eq!(next_day.get("GRST_CRED_AURI_1"), Some(&b"ip:192.0.2.7"[..]));
    }

    /// A verdict shared by the connections of one chain may serve
    /// clients at several addresses: each gets its own `ip:` credential.
    #[test]
    fn a_shared_verdict_builds_the_identity_of_each_client_address() {
        let auth = authenticator();
        let cv = valid_verdict(&auth, 86_400);
        let (a, b) = (
            "192.0.2.7".parse().unwrap(),
            "198.51.100.9".parse().unwrap(),
        );
        let first = auth.identity(&cv, "alice", a, 0);
        let other = auth.identity(&cv, "alice", b, 0);
        assert_eq!(other.get("GRST_CRED_AURI_1"), Some(&b"ip:198.51.100.9"[..]));
        let back = auth.identity(&cv, "alice", a, 0);
        assert_eq!(back.get("GRST_CRED_AURI_1"), Some(&b"ip:192.0.2.7"[..]));
        assert_eq!(first.get("GRST_CRED_AURI_1"), back.get("GRST_CRED_AURI_1"));
    }

    /// Only verdicts that will read the same for the next connection are
    /// shared: a refusal, or a chain with a refused AC, is judged again.
    #[test]
    fn only_valid_chains_with_every_ac_accepted_are_shared() {
        let auth = authenticator();
        assert!(!auth.evaluate(&Vec::<Vec<u8>>::new(), 1_000).shareable());
        let mut cv = verdict_with_acs(&auth, vec![ac(5_000)]);
        assert!(cv.shareable());
        cv.voms.as_mut().unwrap().refused = vec!["not yet valid".into()];
        assert!(!cv.shareable());
    }

    #[test]
    fn a_reload_makes_every_cached_verdict_stale() {
        let before = authenticator();
        let cv = verdict_with_acs(&before, vec![ac(i64::MAX)]);
        assert!(cv.holds(&before, 10));
        let after = authenticator();
        assert!(
            !cv.holds(&after, 10),
            "a new CRL must reach open connections"
        );
    }
}
