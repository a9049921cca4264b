//! The trust store: an IGTF-layout directory (`/etc/grid-security/certificates`).
//!
//! CA certificates (`<hash>.N`) are indexed by subject name, CRLs
//! (`<hash>.rN`) by issuer name (never by file name: IGTF installs each CA
//! under both OpenSSL hashes), and `.signing_policy` / `.namespaces` rules
//! by the issuer they constrain. A broken file is reported with its name and
//! reason and skipped; it never takes the other CAs down with it. The store
//! is immutable once loaded: a reload builds a new one and swaps it in, so
//! connections in flight keep the store they started with.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::DistinguishedName;
use rustls_pki_types::CertificateDer;
use x509_parser::prelude::*;

use super::cert::Cert;
use super::crl::Crl;
use super::namespaces::NamespaceRule;
use super::policy::SigningPolicy;

/// A trust anchor or intermediate CA from the store.
#[derive(Debug, Clone)]
pub struct CaCert {
    pub der: CertificateDer<'static>,
    /// DER of the subject Name, for hints and issuer lookup.
    pub subject_der: Vec<u8>,
    /// OpenSSL one-line subject, for logs and policy files.
    pub subject: String,
    pub file: PathBuf,
    /// OpenSSL (new) subject hash, to resolve `SELF` in namespaces files.
    pub hash: u32,
    pub cert: Arc<Cert>,
}

/// A file that could not be used, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProblem {
    pub file: PathBuf,
    pub reason: String,
}

impl std::fmt::Display for FileProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.reason)
    }
}

#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    pub dir: PathBuf,
    cas: Vec<CaCert>,
    by_subject: HashMap<Vec<u8>, Vec<usize>>,
    crls: HashMap<Vec<u8>, Vec<Arc<Crl>>>,
    /// Keyed by lower-cased, label-normalised issuer DN.
    signing: HashMap<String, Vec<SigningPolicy>>,
    namespaces: HashMap<String, Vec<NamespaceRule>>,
    /// The content of every file that loaded cleanly, by file name: what a
    /// reload falls back to when the file turns out broken.
    good: HashMap<String, Arc<[u8]>>,
}

/// What a store file is, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Ca,
    Crl,
    SigningPolicy,
    Namespaces,
}

fn hex8(h: &str) -> Option<u32> {
    (h.len() == 8 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u32::from_str_radix(h, 16).ok())
        .flatten()
}

fn classify(name: &str) -> Option<(u32, Kind)> {
    let (h, ext) = name.split_once('.')?;
    let hash = hex8(h)?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let kind = match ext {
        "signing_policy" => Kind::SigningPolicy,
        "namespaces" => Kind::Namespaces,
        e if digits(e) => Kind::Ca,
        e if e.strip_prefix('r').is_some_and(digits) => Kind::Crl,
        _ => return None,
    };
    Some((hash, kind))
}

/// `<8 hex>.<n>`: a CA certificate in OpenSSL hashed-directory layout.
#[cfg(test)]
fn is_ca_file(name: &str) -> bool {
    classify(name).is_some_and(|(_, k)| k == Kind::Ca)
}

/// Lookup key of a one-line DN in policy files.
pub fn dn_key(dn: &str) -> String {
    super::dn::normalize_labels(dn).to_ascii_lowercase()
}

/// The reason logged for a broken file that keeps its last good content.
pub const KEPT: &str = "kept its last good version";

/// Why a file's content cannot be used as is.
struct Unusable {
    reason: String,
    /// What the file would still give without a good past (a CRL whose
    /// signature fails: used, so that the validator refuses its CA's users).
    as_is: Option<Parsed>,
}

impl Unusable {
    fn or_use(mut self, p: Parsed) -> Self {
        self.as_is = Some(p);
        self
    }
}

impl From<String> for Unusable {
    fn from(reason: String) -> Self {
        Unusable {
            reason,
            as_is: None,
        }
    }
}

/// One file's parsed content, before it joins the store.
enum Parsed {
    Ca(Vec<CaCert>),
    Crl(Vec<Crl>),
    Signing(Vec<SigningPolicy>),
    Namespaces(Vec<NamespaceRule>),
}

impl TrustStore {
    /// Loads `dir`. Fails only when the directory itself cannot be read;
    /// bad files come back as problems.
    pub fn load(dir: &Path) -> std::io::Result<(TrustStore, Vec<FileProblem>)> {
        Self::load_after(dir, None)
    }

    /// Loads `dir` for a reload of `previous` (the running store).
    ///
    /// The rule for a file that was good in `previous` and is broken now
    /// (truncated by a full disk, half-written by a tool that does not
    /// rename, garbage, a CRL that no CA of its issuer's name verifies) is:
    /// **that file keeps its last good content**, logged as a problem,
    /// while every other file is taken as it now is. So a broken CRL never
    /// drops its CA's revocation list (which would accept revoked users
    /// under `crl = "if_valid"` and refuse every user of the CA under
    /// `require`), a broken `.namespaces` never lifts its restrictions,
    /// and one bad file never holds back the new CRLs of the other CAs
    /// (refusing the whole new store would). A file that was removed is
    /// gone: removing is what IGTF updates do with withdrawn CAs. A broken
    /// file with no good past is skipped as at start.
    pub fn load_after(
        dir: &Path,
        previous: Option<&TrustStore>,
    ) -> std::io::Result<(TrustStore, Vec<FileProblem>)> {
        // Another directory (a changed `tls.ca_dir`) has no past here.
        let previous = previous.filter(|p| p.dir == dir);
        let mut names: Vec<(String, u32, Kind)> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter_map(|n| classify(&n).map(|(h, k)| (n, h, k)))
            .collect();
        // CA certificates first: namespaces resolve SELF and CRLs are
        // checked against them.
        names.sort_by(|a, b| (a.2 != Kind::Ca, &a.0).cmp(&(b.2 != Kind::Ca, &b.0)));
        let mut store = TrustStore {
            dir: dir.to_path_buf(),
            ..TrustStore::default()
        };
        let mut problems = Vec::new();
        let mut seen = HashSet::new();
        let mut seen_crl = HashSet::new();
        let mut seen_rules = HashSet::new();
        for (n, hash, kind) in &names {
            let file = dir.join(n);
            let fresh = std::fs::read(&file).map_err(|e| format!("cannot read: {e}"));
            let last_good = previous.and_then(|p| p.good.get(n));
            let parsed = match fresh
                .map_err(Unusable::from)
                .and_then(|d| store.parse(*kind, &file, &d).map(|p| (p, d)))
            {
                Ok((p, d)) => {
                    store.good.insert(n.clone(), Arc::from(d));
                    p
                }
                Err(bad) => {
                    let kept = last_good.and_then(|d| {
                        let p = store.parse(*kind, &file, d).ok()?;
                        Some((p, d.clone()))
                    });
                    match (kept, bad.as_is) {
                        (Some((p, d)), _) => {
                            problems.push(FileProblem {
                                file,
                                reason: format!("{}; {KEPT}", bad.reason),
                            });
                            store.good.insert(n.clone(), d);
                            p
                        }
                        // A CRL that parses but verifies under no CA of
                        // its issuer's name, with no good past, is used:
                        // the validator then refuses that CA's users (it
                        // may be the CA's newest CRL), never ignores it.
                        (None, Some(p)) => p,
                        (None, None) => {
                            problems.push(FileProblem {
                                file,
                                reason: bad.reason,
                            });
                            continue;
                        }
                    }
                }
            };
            match parsed {
                Parsed::Ca(certs) => {
                    for ca in certs {
                        if seen.insert(ca.der.as_ref().to_vec()) {
                            store
                                .by_subject
                                .entry(ca.cert.subject_key.clone())
                                .or_default()
                                .push(store.cas.len());
                            store.cas.push(ca);
                        }
                    }
                }
                Parsed::Crl(crls) => store.add_crls(crls, &mut seen_crl),
                Parsed::Signing(rules) => store.add_signing(rules, &mut seen_rules),
                Parsed::Namespaces(rules) => store.add_namespaces(rules, *hash, &mut seen_rules),
            }
        }
        Ok((store, problems))
    }

    /// Parses one file's content; an error is the reason it is unusable.
    /// CRLs must verify under a CA of their issuer's name when the store
    /// has one (a flipped byte in a signature parses fine).
    fn parse(&self, kind: Kind, file: &Path, data: &[u8]) -> Result<Parsed, Unusable> {
        let text = || std::str::from_utf8(data).map_err(|_| "not UTF-8 text".to_string());
        Ok(match kind {
            Kind::Ca => Parsed::Ca(load_ca_pem(data, file)?),
            Kind::Crl => {
                let crls = Crl::load(data).map_err(|e| e.to_string())?;
                let forged = crls.iter().find(|crl| {
                    let mut cas = self.by_subject(&crl.issuer_key).peekable();
                    cas.peek().is_some() && !cas.any(|ca| crl.verify(&ca.cert.key).is_ok())
                });
                if let Some(crl) = forged {
                    return Err(Unusable {
                        reason: format!(
                            "the CRL of {} verifies under no CA of that name",
                            crl.issuer
                        ),
                        as_is: None,
                    }
                    .or_use(Parsed::Crl(crls)));
                }
                Parsed::Crl(crls)
            }
            Kind::SigningPolicy => {
                Parsed::Signing(super::policy::parse(text()?).map_err(|e| e.to_string())?)
            }
            Kind::Namespaces => {
                Parsed::Namespaces(super::namespaces::parse(text()?).map_err(|e| e.to_string())?)
            }
        })
    }

    /// Adds the CRLs of a `.rN` file. Only a byte-identical CRL is a
    /// duplicate (IGTF installs each under both hash names): two CRLs with
    /// the same issuer DN and thisUpdate are those of a re-keyed CA's two
    /// keys, and each is needed for the users of its own key.
    fn add_crls(&mut self, crls: Vec<Crl>, seen: &mut HashSet<[u8; 32]>) {
        for crl in crls {
            if seen.insert(crl.fingerprint) {
                self.crls
                    .entry(crl.issuer_key.clone())
                    .or_default()
                    .push(Arc::new(crl));
            }
        }
    }

    fn add_signing(&mut self, policies: Vec<SigningPolicy>, seen: &mut HashSet<String>) {
        for p in policies {
            let key = dn_key(&p.ca);
            if seen.insert(format!("sp\0{key}\0{}", p.subjects.join("\0"))) {
                self.signing.entry(key).or_default().push(p);
            }
        }
    }

    fn add_namespaces(&mut self, rules: Vec<NamespaceRule>, hash: u32, seen: &mut HashSet<String>) {
        // SELF is the CA the file is named after; under the old-hash alias
        // it does not resolve, and the same rules arrive via the new hash.
        let selves: Vec<String> = self
            .cas
            .iter()
            .filter(|c| c.hash == hash)
            .map(|c| c.subject.clone())
            .collect();
        for r in rules {
            let issuers = match &r.issuer {
                Some(i) => vec![i.clone()],
                None => selves.clone(),
            };
            for i in issuers {
                let key = dn_key(&i);
                if seen.insert(format!("ns\0{key}\0{}\0{}", r.permit, r.pattern)) {
                    self.namespaces.entry(key).or_default().push(r.clone());
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.cas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cas.is_empty()
    }

    pub fn cas(&self) -> &[CaCert] {
        &self.cas
    }

    /// CAs whose subject matches `name_key` (canonical name).
    pub fn by_subject(&self, name_key: &[u8]) -> impl Iterator<Item = &CaCert> {
        self.by_subject
            .get(name_key)
            .into_iter()
            .flatten()
            .map(|&i| &self.cas[i])
    }

    /// Whether this exact certificate is in the store.
    pub fn contains(&self, cert: &Cert) -> bool {
        self.by_subject(&cert.subject_key)
            .any(|c| c.der.as_ref() == cert.der.as_slice())
    }

    /// Every CRL naming `issuer_key` as its issuer, whichever key of that
    /// DN signed it: see [`super::validate`] for how one CA's are picked.
    pub fn crls(&self, issuer_key: &[u8]) -> &[Arc<Crl>] {
        self.crls.get(issuer_key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Every CRL of the store, each once.
    pub fn all_crls(&self) -> impl Iterator<Item = &Arc<Crl>> {
        self.crls.values().flatten()
    }

    pub fn crl_count(&self) -> usize {
        self.crls.values().map(Vec::len).sum()
    }

    /// Number of (signing policy blocks, namespace rules) loaded.
    pub fn policy_counts(&self) -> (usize, usize) {
        (
            self.signing.values().map(Vec::len).sum(),
            self.namespaces.values().map(Vec::len).sum(),
        )
    }

    pub fn signing_policies(&self, issuer_dn: &str) -> &[SigningPolicy] {
        self.signing
            .get(&dn_key(issuer_dn))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    pub fn namespace_rules(&self, issuer_dn: &str) -> &[NamespaceRule] {
        self.namespaces
            .get(&dn_key(issuer_dn))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Subjects for the TLS CertificateRequest, one per distinct CA name.
    pub fn hint_subjects(&self) -> Vec<DistinguishedName> {
        let mut seen = HashSet::new();
        self.cas
            .iter()
            .filter(|c| seen.insert(c.subject_der.clone()))
            .map(|c| DistinguishedName::from(c.subject_der.clone()))
            .collect()
    }
}

fn load_ca_pem(pem: &[u8], file: &Path) -> Result<Vec<CaCert>, String> {
    let mut out = Vec::new();
    for item in CertificateDer::pem_slice_iter(pem) {
        let der = item.map_err(|e| format!("not a PEM certificate: {e}"))?;
        let (_, x) = X509Certificate::from_der(der.as_ref())
            .map_err(|e| format!("unparsable certificate: {e}"))?;
        let cert = Cert::parse(der.as_ref()).map_err(|e| e.to_string())?;
        if !cert.ca {
            return Err("certificate is not a CA (basicConstraints cA is not true)".into());
        }
        out.push(CaCert {
            subject_der: cert.subject_der.clone(),
            subject: cert.subject.clone(),
            hash: super::hash::name_hash(x.subject()),
            der: der.into_owned(),
            file: file.to_path_buf(),
            cert: Arc::new(cert),
        });
    }
    if out.is_empty() {
        return Err("no certificate in file".into());
    }
    Ok(out)
}

use rustls_pki_types::pem::PemObject;

#[cfg(test)]
mod tests {
    use super::*;

    /// A CA in `dir` (`<hash>.0`) and a CRL of it revoking serial 7
    /// (`<hash>.r0`); returns the CRL file and its PEM.
    fn ca_with_crl(dir: &Path) -> (PathBuf, String) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut ca = rcgen::CertificateParams::default();
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "store test CA");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = ca.self_signed(&key).unwrap();
        let issuer = rcgen::Issuer::new(ca, key);
        let now = ::time::OffsetDateTime::now_utc();
        let crl = rcgen::CertificateRevocationListParams {
            this_update: now - ::time::Duration::minutes(5),
            next_update: now + ::time::Duration::days(7),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: vec![rcgen::RevokedCertParams {
                serial_number: rcgen::SerialNumber::from(7u64),
                revocation_time: now - ::time::Duration::minutes(10),
                reason_code: None,
                invalidity_date: None,
            }],
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        }
        .signed_by(&issuer)
        .unwrap();
        let hash = super::super::hash::subject_hash(cert.der()).unwrap();
        std::fs::write(dir.join(format!("{hash:08x}.0")), cert.pem()).unwrap();
        let file = dir.join(format!("{hash:08x}.r0"));
        let pem = crl.pem().unwrap();
        std::fs::write(&file, &pem).unwrap();
        (file, pem)
    }

    fn revokes_7(s: &TrustStore) -> bool {
        s.all_crls().any(|c| c.lists(&[7]))
    }

    #[test]
    fn a_broken_crl_keeps_its_last_good_version_on_reload() {
        let t = tempfile::tempdir().unwrap();
        let (crl, pem) = ca_with_crl(t.path());
        let (good, problems) = TrustStore::load(t.path()).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert!(revokes_7(&good));
        // Truncated, as a full disk or a non-atomic writer leaves it.
        std::fs::write(&crl, &pem[..pem.len() / 2]).unwrap();
        let (cold, _) = TrustStore::load(t.path()).unwrap();
        assert_eq!(cold.crl_count(), 0, "at start there is no good past");
        let (next, problems) = TrustStore::load_after(t.path(), Some(&good)).unwrap();
        assert!(revokes_7(&next), "a broken CRL must not un-revoke");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].reason.ends_with(KEPT), "{problems:?}");
        // And again on the reload after that: the last good content is
        // carried along, not the broken one.
        let (third, _) = TrustStore::load_after(t.path(), Some(&next)).unwrap();
        assert!(revokes_7(&third));
        // A store of another directory has no say.
        let other = tempfile::tempdir().unwrap();
        let (moved, _) = TrustStore::load_after(
            t.path(),
            Some(&{
                let mut g = good.clone();
                g.dir = other.path().to_path_buf();
                g
            }),
        )
        .unwrap();
        assert!(!revokes_7(&moved));
        // A good new CRL replaces it; a removed one is gone.
        std::fs::write(&crl, &pem).unwrap();
        let (fixed, problems) = TrustStore::load_after(t.path(), Some(&third)).unwrap();
        assert!(problems.is_empty() && revokes_7(&fixed));
        std::fs::remove_file(&crl).unwrap();
        let (gone, problems) = TrustStore::load_after(t.path(), Some(&fixed)).unwrap();
        assert!(problems.is_empty() && gone.crl_count() == 0);
    }

    #[test]
    fn a_crl_whose_signature_fails_keeps_the_last_good_one() {
        let t = tempfile::tempdir().unwrap();
        let (crl, pem) = ca_with_crl(t.path());
        let (good, _) = TrustStore::load(t.path()).unwrap();
        let mut der =
            rustls_pki_types::CertificateRevocationListDer::from_pem_slice(pem.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec();
        let n = der.len();
        der[n - 3] ^= 1; // inside the signature
        std::fs::write(&crl, &der).unwrap();
        // Without a past it is used, so the validator refuses the CA's users.
        let (cold, problems) = TrustStore::load(t.path()).unwrap();
        assert!(problems.is_empty() && cold.crl_count() == 1);
        let (next, problems) = TrustStore::load_after(t.path(), Some(&good)).unwrap();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].reason.contains("verifies under no CA"));
        let kept: Vec<_> = next.all_crls().collect();
        assert_eq!(kept.len(), 1);
        assert_eq!(
            kept[0].fingerprint,
            good.all_crls().next().unwrap().fingerprint
        );
    }

    #[test]
    fn broken_ca_and_policy_files_keep_their_last_good_version() {
        let t = tempfile::tempdir().unwrap();
        let (crl, _) = ca_with_crl(t.path());
        let ca = crl.with_extension("0");
        let ns = crl.with_extension("namespaces");
        std::fs::write(
            &ns,
            "TO Issuer \"/CN=store test CA\" PERMIT Subject \"/CN=ok/*\"\n",
        )
        .unwrap();
        let (good, problems) = TrustStore::load(t.path()).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!((good.len(), good.policy_counts().1), (1, 1));
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\ngarbage").unwrap();
        std::fs::write(&ns, "TO Issuer \"/CN=store test CA\" PERMIT Sub").unwrap();
        let (next, problems) = TrustStore::load_after(t.path(), Some(&good)).unwrap();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(
            (next.len(), next.policy_counts().1, next.crl_count()),
            (1, 1, 1),
            "the CA, its namespace rule and its CRL all stay"
        );
    }

    #[test]
    fn file_names() {
        assert!(is_ca_file("3a8e7ef8.0"));
        assert!(is_ca_file("3A8E7EF8.12"));
        assert!(!is_ca_file("3a8e7ef8.r0"));
        assert_eq!(classify("3a8e7ef8.r12").map(|c| c.1), Some(Kind::Crl));
        assert_eq!(
            classify("3a8e7ef8.signing_policy").map(|c| c.1),
            Some(Kind::SigningPolicy)
        );
        assert_eq!(
            classify("3a8e7ef8.namespaces").map(|c| c.1),
            Some(Kind::Namespaces)
        );
        assert!(classify("3a8e7ef8.r").is_none());
        assert!(!is_ca_file("UKeScienceRoot.pem"));
        assert!(!is_ca_file("3a8e7ef.0"));
    }
}
