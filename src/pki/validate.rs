//! Path validation of a client chain: `[CA…] → EEC → P1 → … → Pn` (RFC
//! 3820 §4.1 for the proxies). The base chain (EEC up to a trust anchor) follows RFC 5280 with
//! CRLs and IGTF issuer policies; each proxy is checked against its
//! issuer with canl-java's strict rules.

use std::sync::Arc;

use super::cert::{
    Cert, KU_DIGITAL_SIGNATURE, KU_KEY_CERT_SIGN, ProxyKind, ProxyPolicy, single_cn,
};
use super::config::{LimitedProxies, X509Config};
use super::crl::CrlMode;
use super::paths::PathCache;
use super::store::TrustStore;
use super::verify::{SigError, alg_name, verify_signed};

/// Why a chain was refused; decides the TLS alert and the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailKind {
    NoCertificate,
    BadEncoding,
    UnhandledCriticalExtension,
    Expired,
    NotYetValid,
    Revoked,
    UnknownCa,
    /// No usable CRL under `crl = "require"`.
    CrlUnavailable,
    CrlExpired,
    BadSignature,
    /// A proxy or issuer-policy rule (naming, pathlen, limited, namespaces).
    Policy,
    /// The leaf's keyUsage or extendedKeyUsage does not allow TLS client
    /// authentication.
    Usage,
    /// More proxies than `max_proxy_depth`: the chain is fine, the route refuses.
    Depth,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailKind,
    pub reason: String,
}

/// The outcome for one presented chain. Computed once per connection.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// The chain as presented, leaf first (empty if a cert did not parse).
    pub certs: Vec<Arc<Cert>>,
    /// Index of the end-entity certificate in `certs` = number of proxies.
    pub eec: usize,
    /// Issuers above the EEC up to the trust anchor.
    pub path: Vec<Arc<Cert>>,
    pub failure: Option<Failure>,
    /// Would-be denials under a non-enforcing mode, for the log.
    pub notes: Vec<String>,
}

impl Verdict {
    pub fn valid(&self) -> bool {
        self.failure.is_none()
    }

    pub fn eec(&self) -> Option<&Cert> {
        self.certs.get(self.eec).map(|c| &**c)
    }

    /// Proxies, leaf first.
    pub fn proxies(&self) -> &[Arc<Cert>] {
        &self.certs[..self.eec.min(self.certs.len())]
    }

    pub fn reasons(&self) -> Vec<String> {
        self.failure.iter().map(|f| f.reason.clone()).collect()
    }

    fn fail(mut self, kind: FailKind, reason: impl Into<String>) -> Verdict {
        self.failure = Some(Failure {
            kind,
            reason: reason.into(),
        });
        self
    }
}

/// The validator: a trust store and the policy knobs, and the chains
/// already validated with them (see [`super::paths`]).
#[derive(Debug)]
pub struct Validator {
    store: Arc<TrustStore>,
    cfg: X509Config,
    paths: PathCache<Verdict>,
}

type Check = Result<(), Failure>;

fn failure(kind: FailKind, reason: impl Into<String>) -> Failure {
    Failure {
        kind,
        reason: reason.into(),
    }
}

fn fmt_time(t: i64) -> String {
    x509_parser::time::ASN1Time::from_timestamp(t)
        .map(|a| a.to_string())
        .unwrap_or_else(|_| t.to_string())
}

/// Keys weaker than this are refused: aws-lc-rs verifies nothing shorter,
/// and a leaf's own key is never checked by a signature we verify.
fn rsa_modulus_bits(cert: &Cert) -> Option<usize> {
    if cert.key.alg != "1.2.840.113549.1.1.1" {
        return None;
    }
    let (seq, _) = super::tlv::read(&cert.key.bits)?;
    let (n, _) = super::tlv::read(seq.content)?;
    let m = n.content;
    let i = m.iter().position(|&b| b != 0)?;
    Some((m.len() - i) * 8 - m[i].leading_zeros() as usize)
}

impl Validator {
    pub fn new(store: Arc<TrustStore>, cfg: X509Config) -> Validator {
        Validator {
            store,
            cfg,
            paths: PathCache::default(),
        }
    }

    /// The trust store it validates against (fixed for its life: a new
    /// store means a new validator, and so an empty path cache).
    pub fn store(&self) -> &Arc<TrustStore> {
        &self.store
    }

    pub fn cfg(&self) -> &X509Config {
        &self.cfg
    }

    /// Chains in the validated-path cache (approximate; for tests).
    pub fn cached_paths(&self) -> u64 {
        self.paths.len()
    }

    fn skew(&self) -> i64 {
        self.cfg.clock_skew_secs as i64
    }

    /// Validates a chain as presented (DER, leaf first) at `now` (Unix
    /// time), from the validated-path cache when this validator has already
    /// accepted the same chain and nothing it relied on has expired since.
    pub fn validate(&self, chain: &[impl AsRef<[u8]>], now: i64) -> Verdict {
        self.validate_keyed(&super::paths::key(chain), chain, now)
    }

    /// [`Self::validate`] for a caller that already has the chain's
    /// [`super::paths::key`] (it keys its own cache with it too).
    pub fn validate_keyed(
        &self,
        key: &super::paths::Key,
        chain: &[impl AsRef<[u8]>],
        now: i64,
    ) -> Verdict {
        debug_assert_eq!(*key, super::paths::key(chain));
        let still_valid = |v: &Verdict| {
            v.certs
                .iter()
                .chain(&v.path)
                .all(|c| self.check_time(c, "", now).is_ok())
        };
        if let Some(v) = self.paths.get(key, now, still_valid) {
            super::paths::count_cached();
            return v;
        }
        super::paths::count_full();
        let v = self.validate_uncached(chain, now);
        if v.valid() {
            self.paths.insert(*key, &v, self.valid_until(&v, now), now);
        }
        v
    }

    /// The last second at which a valid verdict still holds by the clock:
    /// the earliest `notAfter` (plus skew) of its certificates and the
    /// earliest `nextUpdate` (plus grace) of the current CRLs of its CAs
    /// (all of a CA's DN, re-keyed twins included: earlier is safe).
    fn valid_until(&self, v: &Verdict, now: i64) -> i64 {
        let skew = self.skew();
        let grace = self.cfg.crl_grace_secs as i64;
        let certs = v
            .certs
            .iter()
            .chain(&v.path)
            .map(|c| c.not_after.saturating_add(skew));
        let crls = v
            .path
            .iter()
            .filter(|_| self.cfg.crl != CrlMode::Ignore)
            .flat_map(|ca| self.store.crls(&ca.subject_key))
            .filter(|crl| !crl.expired(now, grace))
            .filter_map(|crl| crl.next_update)
            .map(|n| n.saturating_add(grace));
        certs.chain(crls).min().unwrap_or(i64::MAX)
    }

    /// [`Self::validate`] without the cache.
    fn validate_uncached(&self, chain: &[impl AsRef<[u8]>], now: i64) -> Verdict {
        let mut v = Verdict::default();
        if chain.is_empty() {
            return v.fail(FailKind::NoCertificate, "no client certificate");
        }
        for (i, der) in chain.iter().enumerate() {
            match Cert::parse(der.as_ref()) {
                Ok(c) => v.certs.push(Arc::new(c)),
                Err(e) => {
                    v.certs.clear();
                    return v.fail(FailKind::BadEncoding, format!("certificate #{i}: {e}"));
                }
            }
        }
        let Some(eec) = v.certs.iter().position(|c| !c.is_proxy()) else {
            return v.fail(
                FailKind::UnknownCa,
                "the chain has no end-entity certificate below its proxies",
            );
        };
        v.eec = eec;
        let eec_cert = v.certs[eec].clone();
        if eec_cert.ca {
            return v.fail(
                FailKind::Policy,
                format!(
                    "end-entity certificate {} is a CA certificate",
                    eec_cert.subject
                ),
            );
        }
        let helpers: Vec<Arc<Cert>> = v.certs[eec + 1..].to_vec();
        match self.base_chain(&eec_cert, &helpers, now, &mut v.notes) {
            Ok(path) => v.path = path,
            Err(f) => {
                v.failure = Some(f);
                return v;
            }
        }
        if let Err(f) = self.check_weak_keys(&v.certs[..=eec]) {
            v.failure = Some(f);
            return v;
        }
        if let Err(f) = check_client_usage(&eec_cert, "end-entity certificate") {
            v.failure = Some(f);
            return v;
        }
        for k in (0..eec).rev() {
            if let Err(f) = self.check_proxy(&v.certs[k], &v.certs[k + 1], k, now) {
                v.failure = Some(f);
                return v;
            }
        }
        if let Some(max) = self.cfg.max_proxy_depth {
            if eec as u64 > max as u64 {
                return v.fail(
                    FailKind::Depth,
                    format!("{eec} proxy levels exceed x509.max_proxy_depth = {max}"),
                );
            }
        }
        v
    }

    fn check_weak_keys(&self, certs: &[Arc<Cert>]) -> Check {
        for c in certs {
            if let Some(bits) = rsa_modulus_bits(c) {
                if bits < 2048 {
                    return Err(failure(
                        FailKind::BadEncoding,
                        format!(
                            "{}: RSA key of {bits} bits (at least 2048 required)",
                            c.subject
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn check_time(&self, c: &Cert, what: &str, now: i64) -> Check {
        if now + self.skew() < c.not_before {
            return Err(failure(
                FailKind::NotYetValid,
                format!(
                    "{what} {} is not valid before {}",
                    c.subject,
                    fmt_time(c.not_before)
                ),
            ));
        }
        if now - self.skew() > c.not_after {
            return Err(failure(
                FailKind::Expired,
                format!("{what} {} expired at {}", c.subject, fmt_time(c.not_after)),
            ));
        }
        Ok(())
    }

    fn check_signature(&self, c: &Cert, issuer: &Cert) -> Check {
        verify_signed(&issuer.key, &c.sig_alg, &c.signature, &c.tbs).map_err(|e| {
            let kind = match e {
                SigError::Invalid => FailKind::BadSignature,
                _ => FailKind::BadEncoding,
            };
            failure(
                kind,
                format!(
                    "signature of {} by {} ({}): {e}",
                    c.subject,
                    issuer.subject,
                    alg_name(&c.sig_alg)
                ),
            )
        })
    }

    /// Builds and checks the path from `leaf` (an end-entity or AA
    /// certificate) to a self-signed anchor of the store. `helpers` are
    /// untrusted intermediates sent along. Returns the issuers, leaf excluded.
    pub fn base_chain(
        &self,
        leaf: &Arc<Cert>,
        helpers: &[Arc<Cert>],
        now: i64,
        notes: &mut Vec<String>,
    ) -> Result<Vec<Arc<Cert>>, Failure> {
        let mut path: Vec<Arc<Cert>> = Vec::new();
        let mut current = leaf.clone();
        self.check_time(&current, "certificate", now)?;
        if !current.unknown_critical.is_empty() {
            return Err(failure(
                FailKind::UnhandledCriticalExtension,
                format!(
                    "{} has unsupported critical extension(s) {}",
                    current.subject,
                    current.unknown_critical.join(", ")
                ),
            ));
        }
        loop {
            if path.len() > 8 {
                return Err(failure(
                    FailKind::UnknownCa,
                    "CA chain longer than 8 certificates",
                ));
            }
            if current.self_issued()
                && self.store.contains(&current)
                && !Arc::ptr_eq(&current, leaf)
            {
                break;
            }
            let mut candidates: Vec<Arc<Cert>> = self
                .store
                .by_subject(&current.issuer_key)
                .map(|c| c.cert.clone())
                .collect();
            let from_store = candidates.len();
            candidates.extend(
                helpers
                    .iter()
                    .filter(|h| {
                        h.ca && h.subject_key == current.issuer_key && !self.store.contains(h)
                    })
                    .cloned(),
            );
            if candidates.is_empty() {
                return Err(failure(
                    FailKind::UnknownCa,
                    format!(
                        "issuer {} of {} is not a trusted CA",
                        current.issuer, current.subject
                    ),
                ));
            }
            let mut last_err = None;
            let mut chosen = None;
            for (i, cand) in candidates.iter().enumerate() {
                match self.check_signature(&current, cand) {
                    Ok(()) => {
                        chosen = Some((cand.clone(), i < from_store));
                        break;
                    }
                    Err(e) => last_err = Some(e),
                }
            }
            let Some((issuer, trusted)) = chosen else {
                return Err(last_err.unwrap_or_else(|| failure(FailKind::UnknownCa, "no issuer")));
            };
            if !issuer.ca {
                return Err(failure(
                    FailKind::Policy,
                    format!("issuer {} is not a CA", issuer.subject),
                ));
            }
            if issuer
                .key_usage
                .is_some_and(|ku| ku & KU_KEY_CERT_SIGN == 0)
            {
                return Err(failure(
                    FailKind::Policy,
                    format!(
                        "issuer {} may not sign certificates (keyUsage)",
                        issuer.subject
                    ),
                ));
            }
            let below = path.iter().filter(|c| !c.self_issued()).count() as u32;
            if let Some(pl) = issuer.ca_path_len {
                if below > pl {
                    return Err(failure(
                        FailKind::Policy,
                        format!("CA {} path length constraint {pl} exceeded", issuer.subject),
                    ));
                }
            }
            self.check_time(&issuer, "CA", now)?;
            if !issuer.unknown_critical.is_empty() {
                return Err(failure(
                    FailKind::UnhandledCriticalExtension,
                    format!(
                        "CA {} has unsupported critical extension(s) {}",
                        issuer.subject,
                        issuer.unknown_critical.join(", ")
                    ),
                ));
            }
            self.check_crl(&current, &issuer, now)?;
            self.check_issuer_policy(&current, notes)?;
            path.push(issuer.clone());
            if issuer.self_issued() {
                if !trusted {
                    return Err(failure(
                        FailKind::UnknownCa,
                        format!(
                            "root {} sent by the client is not in the trust store",
                            issuer.subject
                        ),
                    ));
                }
                break;
            }
            current = issuer;
        }
        Ok(path)
    }

    /// Revocation of `cert` by the CRLs of `issuer`, the CA whose key
    /// verified its signature.
    ///
    /// The store holds every CRL naming the issuer's DN, and an IGTF CA that
    /// re-keys keeps its DN, so those may be another key's. A CRL is used
    /// only with the CA that signed it (RFC 5280 §6.3.3 (f)): one whose
    /// authorityKeyIdentifier names another key is skipped unseen; one
    /// without it belongs to whichever key of that DN verifies it. A CRL no
    /// key of the DN verifies, or one naming this key whose signature fails,
    /// is broken and never silently taken for "no CRL".
    fn check_crl(&self, cert: &Cert, issuer: &Cert, now: i64) -> Check {
        let mode = self.cfg.crl;
        if mode == CrlMode::Ignore {
            return Ok(());
        }
        let crls = self.store.crls(&issuer.subject_key);
        let grace = self.cfg.crl_grace_secs as i64;
        let mut current = 0;
        let mut expired_at = None;
        let mut broken = false;
        for crl in crls {
            let claimed = crl.aki.as_deref().and_then(|k| issuer.key_id_matches(k));
            if claimed == Some(false) {
                continue;
            }
            if crl.verify(&issuer.key).is_err() {
                if claimed == Some(true) || !self.twin_signed(crl, issuer) {
                    broken = true;
                }
                continue;
            }
            if crl.expired(now, grace) {
                expired_at = crl.next_update;
                continue;
            }
            current += 1;
            if crl.lists(&cert.serial) {
                return Err(failure(
                    FailKind::Revoked,
                    format!(
                        "{} (serial {}) is revoked by {}",
                        cert.subject,
                        cert.serial_hex(),
                        issuer.subject
                    ),
                ));
            }
        }
        if broken && (mode == CrlMode::Require || current == 0) {
            return Err(failure(
                FailKind::CrlUnavailable,
                format!("CRL of {} has an invalid signature", issuer.subject),
            ));
        }
        if current > 0 {
            return Ok(());
        }
        if let Some(at) = expired_at {
            return Err(failure(
                FailKind::CrlExpired,
                format!(
                    "CRL of {} expired at {} (x509.crl = {})",
                    issuer.subject,
                    fmt_time(at),
                    mode_name(mode)
                ),
            ));
        }
        if mode == CrlMode::Require {
            return Err(failure(
                FailKind::CrlUnavailable,
                format!("no CRL for CA {} (x509.crl = \"require\")", issuer.subject),
            ));
        }
        Ok(())
    }

    /// Whether another trusted CA with `issuer`'s DN (a re-keyed twin)
    /// signed `crl`.
    fn twin_signed(&self, crl: &super::crl::Crl, issuer: &Cert) -> bool {
        self.store
            .by_subject(&issuer.subject_key)
            .filter(|ca| ca.cert.key != issuer.key)
            .any(|ca| crl.verify(&ca.cert.key).is_ok())
    }

    /// `.signing_policy` / `.namespaces` for a certificate issued by a CA.
    fn check_issuer_policy(&self, cert: &Cert, notes: &mut Vec<String>) -> Check {
        let (plan, enforce) = match self.cfg.namespaces.plan() {
            Some(p) => (p, true),
            // `ignore` still evaluates the default mode, to log would-be
            // denials: enforcement changes behaviour versus gridsite.
            None => (
                super::config::NamespaceMode::GlobusEugridpma
                    .plan()
                    .expect("default plan"),
                false,
            ),
        };
        let (use_sp, use_ns, sp_first, both, require) = plan;
        let subject = super::store::dn_key(&cert.subject);
        let sp = use_sp
            .then(|| self.store.signing_policies(&cert.issuer))
            .filter(|r| !r.is_empty());
        let ns = use_ns
            .then(|| self.store.namespace_rules(&cert.issuer))
            .filter(|r| !r.is_empty());
        let sp_verdict = sp.map(|rules| {
            rules.iter().any(|p| {
                p.subjects
                    .iter()
                    .any(|pat| super::policy::glob_match(&pat.to_ascii_lowercase(), &subject))
            })
        });
        let ns_verdict = ns.map(|rules| {
            let dn = super::dn::normalize_labels(&cert.subject);
            let denied = rules.iter().any(|r| !r.permit && r.regex.is_match(&dn));
            !denied && rules.iter().any(|r| r.permit && r.regex.is_match(&dn))
        });
        let verdict = if both {
            match (sp_verdict, ns_verdict) {
                (None, None) => None,
                (a, b) => Some(a.unwrap_or(true) && b.unwrap_or(true)),
            }
        } else if sp_first {
            sp_verdict.or(ns_verdict)
        } else {
            ns_verdict.or(sp_verdict)
        };
        if !enforce {
            if verdict == Some(false) {
                notes.push(format!(
                    "x509.namespaces = \"ignore\": {} would be outside the namespace of {}",
                    cert.subject, cert.issuer
                ));
            }
            return Ok(());
        }
        match verdict {
            Some(true) => Ok(()),
            Some(false) => Err(failure(
                FailKind::Policy,
                format!(
                    "subject {} is outside the namespace of issuer {} (signing_policy/namespaces)",
                    cert.subject, cert.issuer
                ),
            )),
            None if require => Err(failure(
                FailKind::Policy,
                format!(
                    "no signing_policy/namespaces rules for issuer {}",
                    cert.issuer
                ),
            )),
            None => {
                notes.push(format!("no namespace rules for issuer {}", cert.issuer));
                Ok(())
            }
        }
    }

    /// Rules for proxy `p` (at leaf-first index `k`) issued by `i`.
    fn check_proxy(&self, p: &Cert, i: &Cert, k: usize, now: i64) -> Check {
        check_key_usage(p, "proxy")?;
        let info = p.proxy.as_ref().expect("only proxies are checked here");
        let pol = |r: String| Err(failure(FailKind::Policy, r));
        if info.kind == ProxyKind::Gt3 && !self.cfg.allow_gt3_proxies {
            return Err(failure(
                FailKind::UnknownCa,
                format!(
                    "{}: GT3 draft proxies are not accepted (x509.allow_gt3_proxies)",
                    p.subject
                ),
            ));
        }
        if info.kind == ProxyKind::Rfc && !info.critical {
            return pol(format!("{}: proxyCertInfo must be critical", p.subject));
        }
        if p.issuer_key != i.subject_key {
            return pol(format!(
                "proxy {} names issuer {}, but was sent below {}",
                p.subject, p.issuer, i.subject
            ));
        }
        self.check_signature(p, i)?;
        // Name: issuer subject plus exactly one single-valued CN.
        let named = p.subject_rdns.len() == i.subject_rdns.len() + 1
            && p.subject_rdns[..i.subject_rdns.len()] == i.subject_rdns[..]
            && p.subject_rdns.last().and_then(|r| single_cn(r)).is_some();
        if !named {
            return pol(format!(
                "proxy subject {} is not its issuer's subject plus one CN",
                p.subject
            ));
        }
        if p.ca {
            return pol(format!("proxy {} asserts cA=true", p.subject));
        }
        if p.has_alt_names {
            return pol(format!(
                "proxy {} carries subject/issuer alternative names",
                p.subject
            ));
        }
        if i.key_usage.is_some_and(|ku| ku & KU_DIGITAL_SIGNATURE == 0) {
            return pol(format!(
                "{} signed a proxy without the digitalSignature key usage",
                i.subject
            ));
        }
        const PROXY_CRITICAL: &[&str] = &[
            "2.5.29.19",
            "2.5.29.15",
            "2.5.29.37",
            "2.16.840.1.113730.1.1",
            "2.5.29.14",
            "2.5.29.35",
            super::cert::OID_PROXY_RFC,
            super::cert::OID_PROXY_GT3,
        ];
        if let Some(oid) = p
            .critical
            .iter()
            .find(|o| !PROXY_CRITICAL.contains(&o.as_str()))
        {
            return Err(failure(
                FailKind::UnhandledCriticalExtension,
                format!(
                    "proxy {} has an unsupported critical extension {oid}",
                    p.subject
                ),
            ));
        }
        self.check_time(p, "proxy", now)?;
        if matches!(
            info.policy,
            ProxyPolicy::Independent | ProxyPolicy::Restricted
        ) && !self.cfg.allow_independent_proxies
        {
            return pol(format!(
                "proxy {} has an independent/restricted policy (x509.allow_independent_proxies)",
                p.subject
            ));
        }
        if info.limited() && self.cfg.limited_proxies == LimitedProxies::Reject {
            return pol(format!(
                "limited proxy {} refused (x509.limited_proxies = \"reject\")",
                p.subject
            ));
        }
        if let Some(ip) = &i.proxy {
            if ip.kind != info.kind {
                return pol(format!(
                    "{} proxy {} below a {} proxy (mixed proxy types)",
                    info.kind.as_str(),
                    p.subject,
                    ip.kind.as_str()
                ));
            }
            if ip.limited() && !info.limited() {
                return pol(format!(
                    "full proxy {} signed by a limited proxy",
                    p.subject
                ));
            }
        }
        // pCPathLenConstraint of this proxy: proxies below it are k.
        if let Some(c) = info.path_len {
            if k as u64 > c as u64 {
                return pol(format!(
                    "proxy {} allows {c} further proxies (pCPathLenConstraint), {k} follow",
                    p.subject
                ));
            }
        }
        Ok(())
    }
}

/// A certificate whose key authenticates a TLS client, or signs the proxy
/// that does, must be allowed to sign: when keyUsage is present it has to
/// assert digitalSignature (RFC 5280 §4.2.1.3; RFC 3820 §3 for the
/// issuer of a proxy).
fn check_key_usage(c: &Cert, what: &str) -> Check {
    match c.key_usage {
        Some(ku) if ku & KU_DIGITAL_SIGNATURE == 0 => Err(failure(
            FailKind::Usage,
            format!(
                "{what} {}: keyUsage ({}) lacks digitalSignature (RFC 5280 §4.2.1.3)",
                c.subject,
                super::cert::key_usage_names(ku).join(", ")
            ),
        )),
        _ => Ok(()),
    }
}

/// The end-entity certificate is the client's: with extendedKeyUsage it
/// must list clientAuth or anyExtendedKeyUsage (RFC 5280 §4.2.1.12), and its
/// keyUsage must allow signing. Proxies below it inherit its purposes.
fn check_client_usage(c: &Cert, what: &str) -> Check {
    check_key_usage(c, what)?;
    match &c.ext_key_usage {
        Some(e) if !e.client_auth && !e.any => Err(failure(
            FailKind::Usage,
            format!(
                "{what} {}: extendedKeyUsage ({}) has neither clientAuth nor \
                 anyExtendedKeyUsage (RFC 5280 §4.2.1.12)",
                c.subject,
                e.names.join(", ")
            ),
        )),
        _ => Ok(()),
    }
}

fn mode_name(m: CrlMode) -> &'static str {
    match m {
        CrlMode::Require => "require",
        CrlMode::IfValid => "if_valid",
        CrlMode::Ignore => "ignore",
    }
}

impl Validator {
    /// Validates an attribute authority's (VOMS server's) certificate with
    /// the same base-chain rules as end-entity certificates, CRLs
    /// included. `helpers` are untrusted intermediates.
    pub fn validate_aa(&self, aa_der: &[u8], helpers: &[&[u8]], now: i64) -> Result<(), String> {
        let aa =
            Arc::new(Cert::parse(aa_der).map_err(|e| format!("VOMS server certificate: {e}"))?);
        if aa.ca || aa.is_proxy() {
            return Err(format!(
                "VOMS server certificate {} is a CA or a proxy",
                aa.subject
            ));
        }
        let helpers: Vec<Arc<Cert>> = helpers
            .iter()
            .filter_map(|d| Cert::parse(d).ok())
            .map(Arc::new)
            .collect();
        let mut notes = Vec::new();
        self.base_chain(&aa, &helpers, now, &mut notes)
            .map(|_| ())
            .map_err(|f| f.reason)?;
        self.check_weak_keys(&[aa]).map_err(|f| f.reason)
    }
}
