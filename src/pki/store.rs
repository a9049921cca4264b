//! The trust store: CA certificates from an IGTF-layout directory.
//!
//! A site's `/etc/grid-security/certificates` holds each CA under its
//! OpenSSL subject hashes (`<hash>.0`, often twice: new and old hash) plus
//! CRLs and policy files. A broken file is reported and skipped; it never
//! takes the other CAs down with it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rustls::DistinguishedName;
use rustls_pki_types::CertificateDer;
use x509_parser::prelude::*;

/// A trust anchor or intermediate CA from the store.
#[derive(Debug, Clone)]
pub struct CaCert {
    pub der: CertificateDer<'static>,
    /// DER of the subject Name, for hints and issuer lookup.
    pub subject_der: Vec<u8>,
    /// OpenSSL one-line subject, for logs and policy files.
    pub subject: String,
    pub file: PathBuf,
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
}

/// `<8 hex>.<n>`: a CA certificate in OpenSSL hashed-directory layout.
fn is_ca_file(name: &str) -> bool {
    match name.split_once('.') {
        Some((h, n)) => {
            h.len() == 8
                && h.bytes().all(|b| b.is_ascii_hexdigit())
                && !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

impl TrustStore {
    /// Loads every CA certificate of `dir`. Fails only when the directory
    /// itself cannot be read; bad files come back as problems.
    pub fn load(dir: &Path) -> std::io::Result<(TrustStore, Vec<FileProblem>)> {
        let mut names: Vec<_> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| is_ca_file(n))
            .collect();
        names.sort();
        let mut seen = HashSet::new();
        let mut store = TrustStore {
            dir: dir.to_path_buf(),
            cas: Vec::new(),
        };
        let mut problems = Vec::new();
        for n in names {
            let file = dir.join(&n);
            match load_ca_file(&file) {
                Ok(certs) => {
                    for ca in certs {
                        if seen.insert(ca.der.as_ref().to_vec()) {
                            store.cas.push(ca);
                        }
                    }
                }
                Err(reason) => problems.push(FileProblem { file, reason }),
            }
        }
        Ok((store, problems))
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
        let (_, cert) = X509Certificate::from_der(der.as_ref())
            .map_err(|e| format!("unparsable certificate: {e}"))?;
        if !cert.is_ca() {
            return Err("certificate is not a CA (basicConstraints cA is not true)".into());
        }
        out.push(CaCert {
            subject_der: cert.subject().as_raw().to_vec(),
            subject: super::dn::oneline(cert.subject()),
            der: der.into_owned(),
            file: file.to_path_buf(),
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
    fn ca_file_names() {
        assert!(is_ca_file("3a8e7ef8.0"));
        assert!(is_ca_file("3A8E7EF8.12"));
        assert!(!is_ca_file("3a8e7ef8.r0"));
        assert!(!is_ca_file("3a8e7ef8.signing_policy"));
        assert!(!is_ca_file("UKeScienceRoot.pem"));
        assert!(!is_ca_file("3a8e7ef.0"));
    }
}
