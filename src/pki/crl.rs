//! Certificate revocation lists from the trust store (`<hash>.rN`).
//!
//! fetch-crl rewrites these files every few hours; a broken or truncated
//! CRL is reported with its file name and skipped, and the revocation
//! mode decides what a CA without a usable CRL means.

use std::collections::HashSet;

use serde::Deserialize;
use thiserror::Error;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::*;

use super::verify::{PublicKey, SigError, verify_signed};

/// Revocation checking, as canl names the modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrlMode {
    /// Every CA of the chain must have a current CRL not listing the cert.
    #[default]
    Require,
    /// A CRL that exists must be current and not list the cert; no CRL passes.
    IfValid,
    /// No revocation checking (Apache's default).
    Ignore,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CrlError {
    #[error("not a CRL: {0}")]
    Parse(String),
    #[error("no CRL in file")]
    Empty,
}

/// One parsed CRL; signature verified against its issuer when used.
///
/// A CRL names its issuer by DN only, and a re-keyed IGTF CA keeps its DN:
/// which CA signed it is known from the authorityKeyIdentifier, when there
/// is one, and otherwise only from the signature (RFC 5280 §5.2.1, §6.3.3).
#[derive(Debug, Clone)]
pub struct Crl {
    pub issuer_key: Vec<u8>,
    pub issuer: String,
    /// keyIdentifier of the authorityKeyIdentifier extension, if present.
    pub aki: Option<Vec<u8>>,
    /// SHA-256 of the DER: the same CRL installed under both hash names
    /// (IGTF, fetch-crl) is kept once.
    pub fingerprint: [u8; 32],
    pub this_update: i64,
    pub next_update: Option<i64>,
    revoked: HashSet<Vec<u8>>,
    tbs: Vec<u8>,
    sig_alg: String,
    signature: Vec<u8>,
}

impl Crl {
    pub fn parse(der: &[u8]) -> Result<Crl, CrlError> {
        let (rest, c) =
            CertificateRevocationList::from_der(der).map_err(|e| CrlError::Parse(e.to_string()))?;
        if !rest.is_empty() {
            return Err(CrlError::Parse("trailing bytes".into()));
        }
        let aki = c
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(a) => {
                    a.key_identifier.as_ref().map(|k| k.0.to_vec())
                }
                _ => None,
            });
        let fingerprint = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der)
            .as_ref()
            .try_into()
            .unwrap_or([0; 32]);
        Ok(Crl {
            issuer_key: super::hash::canonical_name(c.issuer()),
            issuer: super::dn::oneline(c.issuer()),
            aki,
            fingerprint,
            this_update: c.last_update().timestamp(),
            next_update: c.next_update().map(|t| t.timestamp()),
            revoked: c
                .iter_revoked_certificates()
                .map(|r| strip_zeros(r.raw_serial()))
                .collect(),
            tbs: c.tbs_cert_list.as_ref().to_vec(),
            sig_alg: c.signature_algorithm.algorithm.to_id_string(),
            signature: c.signature_value.data.to_vec(),
        })
    }

    /// Reads every CRL of a PEM (or DER) file.
    pub fn load(data: &[u8]) -> Result<Vec<Crl>, CrlError> {
        use rustls_pki_types::pem::{PemObject, SectionKind};
        if data.first() == Some(&0x30) {
            return Ok(vec![Crl::parse(data)?]);
        }
        let mut out = Vec::new();
        for item in <(SectionKind, Vec<u8>)>::pem_slice_iter(data) {
            let (kind, der) = item.map_err(|e| CrlError::Parse(format!("PEM: {e}")))?;
            if kind == SectionKind::Crl {
                out.push(Crl::parse(&der)?);
            }
        }
        if out.is_empty() {
            return Err(CrlError::Empty);
        }
        Ok(out)
    }

    pub fn verify(&self, issuer: &PublicKey) -> Result<(), SigError> {
        verify_signed(issuer, &self.sig_alg, &self.signature, &self.tbs)
    }

    /// Expired when nextUpdate is past (a CRL without one never expires).
    pub fn expired(&self, now: i64, grace: i64) -> bool {
        self.next_update.is_some_and(|n| n + grace < now)
    }

    pub fn lists(&self, serial: &[u8]) -> bool {
        self.revoked.contains(&strip_zeros(serial))
    }
}

fn strip_zeros(s: &[u8]) -> Vec<u8> {
    let i = s.iter().position(|&b| b != 0).unwrap_or(s.len());
    s[i..].to_vec()
}
