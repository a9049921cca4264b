//! Signature verification over the exact signed bytes (certificates, CRLs,
//! attribute certificates), with fedgate's own algorithm policy.
//!
//! webpki has no SHA-1, and x509-parser's policy is fixed; IGTF CAs still
//! sign with SHA-1, so the policy lives here: RSA PKCS#1 v1.5 with SHA-1
//! or SHA-2 and a key of at least 2048 bits, ECDSA on P-256/P-384. No MD5,
//! no RSA-PSS (no IGTF CA issues it), no keys below 2048 bits (OpenSSL 3
//! clients refuse them at the default security level anyway).

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SigError {
    #[error("unsupported signature algorithm {0}")]
    UnsupportedAlgorithm(String),
    #[error("signature algorithm {alg} does not fit the issuer's {key} key")]
    KeyMismatch { alg: String, key: String },
    #[error("signature does not verify (or the RSA key is shorter than 2048 bits)")]
    Invalid,
}

const RSA_KEY: &str = "1.2.840.113549.1.1.1";
const EC_KEY: &str = "1.2.840.10045.2.1";
const P256: &str = "1.2.840.10045.3.1.7";
const P384: &str = "1.3.132.0.34";

/// The issuer's public key as the verifier needs it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PublicKey {
    /// Key algorithm OID, dotted.
    pub alg: String,
    /// Named curve OID for EC keys.
    pub curve: Option<String>,
    /// The subjectPublicKey BIT STRING content.
    pub bits: Vec<u8>,
}

impl PublicKey {
    pub fn from_spki(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> PublicKey {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .map(|o| o.to_id_string());
        PublicKey {
            alg: spki.algorithm.algorithm.to_id_string(),
            curve,
            bits: spki.subject_public_key.data.to_vec(),
        }
    }

    fn kind(&self) -> &'static str {
        match (self.alg.as_str(), self.curve.as_deref()) {
            (RSA_KEY, _) => "RSA",
            (EC_KEY, Some(P256)) => "P-256",
            (EC_KEY, Some(P384)) => "P-384",
            _ => "unsupported",
        }
    }
}

fn algorithm(
    sig_oid: &str,
    key: &PublicKey,
) -> Result<&'static dyn VerificationAlgorithm, SigError> {
    let mismatch = || SigError::KeyMismatch {
        alg: sig_oid.to_string(),
        key: key.kind().to_string(),
    };
    let kind = key.kind();
    let alg: &'static dyn VerificationAlgorithm = match sig_oid {
        "1.2.840.113549.1.1.5" if kind == "RSA" => {
            &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY
        }
        "1.2.840.113549.1.1.11" if kind == "RSA" => &signature::RSA_PKCS1_2048_8192_SHA256,
        "1.2.840.113549.1.1.12" if kind == "RSA" => &signature::RSA_PKCS1_2048_8192_SHA384,
        "1.2.840.113549.1.1.13" if kind == "RSA" => &signature::RSA_PKCS1_2048_8192_SHA512,
        "1.2.840.10045.4.3.2" if kind == "P-256" => &signature::ECDSA_P256_SHA256_ASN1,
        "1.2.840.10045.4.3.2" if kind == "P-384" => &signature::ECDSA_P384_SHA256_ASN1,
        "1.2.840.10045.4.3.3" if kind == "P-256" => &signature::ECDSA_P256_SHA384_ASN1,
        "1.2.840.10045.4.3.3" if kind == "P-384" => &signature::ECDSA_P384_SHA384_ASN1,
        "1.2.840.113549.1.1.5"
        | "1.2.840.113549.1.1.11"
        | "1.2.840.113549.1.1.12"
        | "1.2.840.113549.1.1.13"
        | "1.2.840.10045.4.3.2"
        | "1.2.840.10045.4.3.3" => {
            return Err(mismatch());
        }
        other => return Err(SigError::UnsupportedAlgorithm(other.to_string())),
    };
    Ok(alg)
}

/// Verifies `sig` over `tbs` with `key`, for the signature algorithm OID
/// named in the signed object.
pub fn verify_signed(
    key: &PublicKey,
    sig_oid: &str,
    sig: &[u8],
    tbs: &[u8],
) -> Result<(), SigError> {
    let alg = algorithm(sig_oid, key)?;
    UnparsedPublicKey::new(alg, &key.bits)
        .verify(tbs, sig)
        .map_err(|_| SigError::Invalid)
}

/// Short name of a signature algorithm for messages.
pub fn alg_name(sig_oid: &str) -> &str {
    match sig_oid {
        "1.2.840.113549.1.1.5" => "sha1WithRSAEncryption",
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
        "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption",
        "1.2.840.113549.1.1.13" => "sha512WithRSAEncryption",
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256",
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384",
        "1.2.840.113549.1.1.4" => "md5WithRSAEncryption",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::*;

    fn selfsigned(alg: &'static rcgen::SignatureAlgorithm) -> Vec<u8> {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let params = rcgen::CertificateParams::new(vec!["x".into()]).unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn check(der: &[u8]) -> Result<(), SigError> {
        let (_, c) = X509Certificate::from_der(der).unwrap();
        let key = PublicKey::from_spki(c.public_key());
        verify_signed(
            &key,
            &c.signature_algorithm.algorithm.to_id_string(),
            &c.signature_value.data,
            c.tbs_certificate.as_ref(),
        )
    }

    #[test]
    fn ecdsa_and_rsa_self_signatures_verify() {
        check(&selfsigned(&rcgen::PKCS_ECDSA_P256_SHA256)).unwrap();
        check(&selfsigned(&rcgen::PKCS_ECDSA_P384_SHA384)).unwrap();
        check(&selfsigned(&rcgen::PKCS_RSA_SHA256)).unwrap();
    }

    #[test]
    fn tampered_tbs_fails() {
        let der = selfsigned(&rcgen::PKCS_ECDSA_P256_SHA256);
        let (_, c) = X509Certificate::from_der(&der).unwrap();
        let key = PublicKey::from_spki(c.public_key());
        let mut tbs = c.tbs_certificate.as_ref().to_vec();
        let n = tbs.len() - 3;
        tbs[n] ^= 1;
        let r = verify_signed(&key, "1.2.840.10045.4.3.2", &c.signature_value.data, &tbs);
        assert_eq!(r, Err(SigError::Invalid));
        let r = verify_signed(&key, "1.2.840.113549.1.1.11", &c.signature_value.data, &tbs);
        assert!(matches!(r, Err(SigError::KeyMismatch { .. })));
        let r = verify_signed(&key, "1.2.840.113549.1.1.4", &c.signature_value.data, &tbs);
        assert!(matches!(r, Err(SigError::UnsupportedAlgorithm(_))));
    }
}
