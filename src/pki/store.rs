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

impl TrustStore {
    /// Loads `dir`. Fails only when the directory itself cannot be read;
    /// bad files come back as problems.
    pub fn load(dir: &Path) -> std::io::Result<(TrustStore, Vec<FileProblem>)> {
        let mut names: Vec<(String, u32, Kind)> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter_map(|n| classify(&n).map(|(h, k)| (n, h, k)))
            .collect();
        names.sort();
        let mut store = TrustStore {
            dir: dir.to_path_buf(),
            ..TrustStore::default()
        };
        let mut problems = Vec::new();
        let mut seen = HashSet::new();
        for (n, _, _) in names.iter().filter(|(_, _, k)| *k == Kind::Ca) {
            let file = dir.join(n);
            match load_ca_file(&file) {
                Ok(certs) => {
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
                Err(reason) => problems.push(FileProblem { file, reason }),
            }
        }
        let mut seen_crl = HashSet::new();
        let mut seen_rules = HashSet::new();
        for (n, hash, kind) in &names {
            let file = dir.join(n);
            let res = match kind {
                Kind::Ca => continue,
                Kind::Crl => store.add_crls(&file, &mut seen_crl),
                Kind::SigningPolicy => store.add_signing(&file, &mut seen_rules),
                Kind::Namespaces => store.add_namespaces(&file, *hash, &mut seen_rules),
            };
            if let Err(reason) = res {
                problems.push(FileProblem { file, reason });
            }
        }
        Ok((store, problems))
    }

    /// Adds the CRLs of a `.rN` file. Only a byte-identical CRL is a
    /// duplicate (IGTF installs each under both hash names): two CRLs with
    /// the same issuer DN and thisUpdate are those of a re-keyed CA's two
    /// keys, and each is needed for the users of its own key.
    fn add_crls(&mut self, file: &Path, seen: &mut HashSet<[u8; 32]>) -> Result<(), String> {
        let data = std::fs::read(file).map_err(|e| format!("cannot read: {e}"))?;
        let crls = Crl::load(&data).map_err(|e| e.to_string())?;
        for crl in crls {
            if seen.insert(crl.fingerprint) {
                self.crls
                    .entry(crl.issuer_key.clone())
                    .or_default()
                    .push(Arc::new(crl));
            }
        }
        Ok(())
    }

    fn add_signing(&mut self, file: &Path, seen: &mut HashSet<String>) -> Result<(), String> {
        let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read: {e}"))?;
        for p in super::policy::parse(&text).map_err(|e| e.to_string())? {
            let key = dn_key(&p.ca);
            if seen.insert(format!("sp\0{key}\0{}", p.subjects.join("\0"))) {
                self.signing.entry(key).or_default().push(p);
            }
        }
        Ok(())
    }

    fn add_namespaces(
        &mut self,
        file: &Path,
        hash: u32,
        seen: &mut HashSet<String>,
    ) -> Result<(), String> {
        let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read: {e}"))?;
        let rules = super::namespaces::parse(&text).map_err(|e| e.to_string())?;
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
        Ok(())
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

fn load_ca_file(file: &Path) -> Result<Vec<CaCert>, String> {
    let pem = std::fs::read(file).map_err(|e| format!("cannot read: {e}"))?;
    let mut out = Vec::new();
    for item in CertificateDer::pem_slice_iter(&pem) {
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
