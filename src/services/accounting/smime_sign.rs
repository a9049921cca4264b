//! Signing an APEL message as `ssmsend` does: `openssl smime -sign -signer
//! hostcert.pem -inkey hostkey.pem -text` (APEL `ssm/crypto.py`), a
//! detached `multipart/signed` S/MIME message whose first part is the
//! message under a `Content-Type: text/plain` header.
//!
//! The APEL receiver runs `openssl smime -verify` on what it gets, so the
//! output follows OpenSSL's writer byte for byte in layout (headers, the
//! preamble, LF line ends outside the signed part, CRLF inside it, 64-column
//! base64) and its CMS in structure: SignedData v1, SHA-256, detached
//! `id-data`, the signer certificate, one SignerInfo identified by issuer
//! and serial number, signed attributes contentType, signingTime,
//! messageDigest and SMIMECapabilities, and `rsaEncryption` (PKCS#1 v1.5)
//! or `ecdsa-with-SHA256/384` as the signature algorithm. Only the AES
//! capabilities are advertised: OpenSSL also lists 3DES, RC2 and DES, which
//! nobody should be invited to encrypt to us with.
//!
//! Why not `cms`'s `builder` feature: it pulls a second RSA implementation
//! (RustCrypto `rsa` 0.10 pre-release, with its open timing advisory
//! RUSTSEC-2023-0071) plus RustCrypto SHA-1/2/3, AES and CBC, and its
//! signer trait wants RustCrypto key types, so an aws-lc-rs key needs an
//! adapter anyway. Here the `cms`/`der` types give the encoding and
//! aws-lc-rs, already the TLS crypto provider, signs.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use base64::Engine;
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{Any, ObjectIdentifier, OctetString, SetOfVec, UtcTime};
use der::{Decode, Encode};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_cert::Certificate;
use x509_cert::attr::Attribute;
use x509_cert::spki::AlgorithmIdentifierOwned;

const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const ID_SIGNING_TIME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.5");
const ID_SMIME_CAPABILITIES: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.15");
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const ID_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_WITH_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const AES_CBC: [ObjectIdentifier; 3] = [
    ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.42"),
    ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.22"),
    ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.2"),
];

/// Why a signer could not be built or a message not signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("cannot read the certificate {0}: {1}")]
    Cert(PathBuf, String),
    #[error("cannot read the private key {0}: {1}")]
    Key(PathBuf, String),
    #[error("the private key {0} does not belong to the certificate {1}")]
    KeyMismatch(PathBuf, PathBuf),
    #[error("signing failed: {0}")]
    Sign(String),
}

enum Key {
    Rsa(RsaKeyPair),
    /// The key and its digest (P-256 signs with SHA-256, P-384 with
    /// SHA-384, as OpenSSL picks by default for `smime -sign`).
    Ec(EcdsaKeyPair, &'static aws_lc_rs::digest::Algorithm),
}

/// A host certificate and its key, ready to sign messages.
pub struct Signer {
    cert: Certificate,
    key: Key,
    rng: SystemRandom,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").finish_non_exhaustive()
    }
}

fn alg(oid: ObjectIdentifier, null_params: bool) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid,
        parameters: null_params.then(|| Any::from(der::asn1::Null)),
    }
}

fn attribute(oid: ObjectIdentifier, value: Any) -> Result<Attribute, der::Error> {
    Ok(Attribute {
        oid,
        values: SetOfVec::try_from(vec![value])?,
    })
}

/// `text` as OpenSSL's `SMIME_crlf_copy` writes it under `-text`: the
/// `Content-Type: text/plain` header, then each line with its trailing CRs
/// and LF replaced by CRLF; a last line without LF keeps none.
pub fn canonical_text(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + text.len() / 16 + 32);
    out.extend_from_slice(b"Content-Type: text/plain\r\n\r\n");
    let mut lines = text.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let last = lines.peek().is_none();
        let end = line.iter().rposition(|&b| b != b'\r').map_or(0, |i| i + 1);
        out.extend_from_slice(&line[..end]);
        if !last {
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

impl Signer {
    /// Loads a PEM certificate (the first one of the file) and its PEM
    /// key: PKCS#8, PKCS#1 `RSA PRIVATE KEY` or SEC1 `EC PRIVATE KEY`
    /// (P-256, P-384), unencrypted as host keys are.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Signer, SignError> {
        let cert_err = |e: String| SignError::Cert(cert.to_owned(), e);
        let der = CertificateDer::pem_file_iter(cert)
            .map_err(|e| cert_err(e.to_string()))?
            .next()
            .ok_or_else(|| cert_err("no certificate in the file".into()))?
            .map_err(|e| cert_err(e.to_string()))?;
        let parsed = Certificate::from_der(&der).map_err(|e| cert_err(e.to_string()))?;
        let key_err = |e: String| SignError::Key(key.to_owned(), e);
        let pk = PrivateKeyDer::from_pem_file(key).map_err(|e| key_err(e.to_string()))?;
        let spki = &parsed.tbs_certificate().subject_public_key_info();
        let cert_pub = spki.subject_public_key.raw_bytes();
        let loaded = if spki.algorithm.oid == RSA_ENCRYPTION {
            let k = match &pk {
                PrivateKeyDer::Pkcs1(d) => RsaKeyPair::from_der(d.secret_pkcs1_der()),
                PrivateKeyDer::Pkcs8(d) => RsaKeyPair::from_pkcs8(d.secret_pkcs8_der()),
                _ => return Err(key_err("not an RSA key, but the certificate's is".into())),
            }
            .map_err(|e| key_err(e.to_string()))?;
            let matches = k.public_key().as_ref() == cert_pub;
            (Key::Rsa(k), matches)
        } else {
            let raw = match &pk {
                PrivateKeyDer::Sec1(d) => d.secret_sec1_der(),
                PrivateKeyDer::Pkcs8(d) => d.secret_pkcs8_der(),
                _ => return Err(key_err("not an EC key, but the certificate's is".into())),
            };
            let (k, digest) = [
                (
                    &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                    &aws_lc_rs::digest::SHA256,
                ),
                (
                    &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
                    &aws_lc_rs::digest::SHA384,
                ),
            ]
            .into_iter()
            .find_map(|(a, d)| {
                EcdsaKeyPair::from_private_key_der(a, raw)
                    .ok()
                    .map(|k| (k, d))
            })
            .ok_or_else(|| key_err("neither an RSA, P-256 nor P-384 key".into()))?;
            let matches = k.public_key().as_ref() == cert_pub;
            (Key::Ec(k, digest), matches)
        };
        if !loaded.1 {
            return Err(SignError::KeyMismatch(key.to_owned(), cert.to_owned()));
        }
        Ok(Signer {
            cert: parsed,
            key: loaded.0,
            rng: SystemRandom::new(),
        })
    }

    fn digest(&self) -> &'static aws_lc_rs::digest::Algorithm {
        match &self.key {
            Key::Rsa(_) => &aws_lc_rs::digest::SHA256,
            Key::Ec(_, d) => d,
        }
    }

    /// The detached CMS SignedData (DER) over `signed`, the exact bytes of
    /// the first MIME part.
    pub fn cms(&self, signed: &[u8], now: SystemTime) -> Result<Vec<u8>, SignError> {
        self.cms_inner(signed, now)
            .map_err(|e| SignError::Sign(e.to_string()))
    }

    fn cms_inner(
        &self,
        signed: &[u8],
        now: SystemTime,
    ) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
        let digest_alg = self.digest();
        let digest_oid = if std::ptr::eq(digest_alg, &aws_lc_rs::digest::SHA384) {
            ID_SHA384
        } else {
            ID_SHA256
        };
        let md = aws_lc_rs::digest::digest(digest_alg, signed);
        // OpenSSL writes UTCTime until 2049 (RFC 5652 §11.3).
        let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let when = UtcTime::from_unix_duration(Duration::from_secs(since_epoch.as_secs()))?;
        let caps: Vec<AlgorithmIdentifierOwned> =
            AES_CBC.iter().map(|&oid| alg(oid, false)).collect();
        let attrs = SetOfVec::try_from(vec![
            attribute(ID_CONTENT_TYPE, Any::encode_from(&ID_DATA)?)?,
            attribute(ID_SIGNING_TIME, Any::encode_from(&when)?)?,
            attribute(
                ID_MESSAGE_DIGEST,
                Any::encode_from(&OctetString::new(md.as_ref())?)?,
            )?,
            attribute(ID_SMIME_CAPABILITIES, Any::encode_from(&caps)?)?,
        ])?;
        // RFC 5652 §5.4: the signature covers the DER of the attributes as
        // a SET OF, not the [0] IMPLICIT form they travel in.
        let to_sign = attrs.to_der()?;
        let (sig_alg, sig) = match &self.key {
            Key::Rsa(k) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &self.rng, &to_sign, &mut sig)
                    .map_err(|_| "RSA signature failed")?;
                (alg(RSA_ENCRYPTION, true), sig)
            }
            Key::Ec(k, _) => {
                let sig = k
                    .sign(&self.rng, &to_sign)
                    .map_err(|_| "ECDSA signature failed")?;
                let oid = if digest_oid == ID_SHA384 {
                    ECDSA_WITH_SHA384
                } else {
                    ECDSA_WITH_SHA256
                };
                (alg(oid, false), sig.as_ref().to_vec())
            }
        };
        let tbs = self.cert.tbs_certificate();
        let signer_info = SignerInfo {
            version: CmsVersion::V1,
            sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
                issuer: tbs.issuer().clone(),
                serial_number: tbs.serial_number().clone(),
            }),
            digest_alg: alg(digest_oid, true),
            signed_attrs: Some(attrs),
            signature_algorithm: sig_alg,
            signature: OctetString::new(sig)?,
            unsigned_attrs: None,
        };
        let sd = SignedData {
            version: CmsVersion::V1,
            digest_algorithms: SetOfVec::try_from(vec![alg(digest_oid, true)])?,
            encap_content_info: EncapsulatedContentInfo {
                econtent_type: ID_DATA,
                econtent: None,
            },
            certificates: Some(CertificateSet(SetOfVec::try_from(vec![
                CertificateChoices::Certificate(self.cert.clone()),
            ])?)),
            crls: None,
            signer_infos: SignerInfos(SetOfVec::try_from(vec![signer_info])?),
        };
        let ci = ContentInfo {
            content_type: ID_SIGNED_DATA,
            content: Any::encode_from(&sd)?,
        };
        Ok(ci.to_der()?)
    }

    /// `text` signed as `openssl smime -sign -text` writes it.
    pub fn sign_text(&self, text: &[u8]) -> Result<Vec<u8>, SignError> {
        self.sign_text_at(text, SystemTime::now())
    }

    /// [`Signer::sign_text`] with a given signing time.
    pub fn sign_text_at(&self, text: &[u8], now: SystemTime) -> Result<Vec<u8>, SignError> {
        let part = canonical_text(text);
        let p7s = self.cms(&part, now)?;
        let mut rnd = [0u8; 16];
        self.rng
            .fill(&mut rnd)
            .map_err(|_| SignError::Sign("no randomness for the boundary".into()))?;
        let boundary = format!("----{}", hex::encode_upper(rnd));
        let micalg = if std::ptr::eq(self.digest(), &aws_lc_rs::digest::SHA384) {
            "sha-384"
        } else {
            "sha-256"
        };
        let mut out = Vec::with_capacity(part.len() + p7s.len() * 4 / 3 + 512);
        out.extend_from_slice(
            format!(
                "MIME-Version: 1.0\nContent-Type: multipart/signed; \
                 protocol=\"application/x-pkcs7-signature\"; micalg=\"{micalg}\"; \
                 boundary=\"{boundary}\"\n\nThis is an S/MIME signed message\n\n--{boundary}\n"
            )
            .as_bytes(),
        );
        out.extend_from_slice(&part);
        out.extend_from_slice(
            format!(
                "\n--{boundary}\nContent-Type: application/x-pkcs7-signature; \
                 name=\"smime.p7s\"\nContent-Transfer-Encoding: base64\n\
                 Content-Disposition: attachment; filename=\"smime.p7s\"\n\n"
            )
            .as_bytes(),
        );
        let b64 = base64::engine::general_purpose::STANDARD.encode(&p7s);
        for line in b64.as_bytes().chunks(64) {
            out.extend_from_slice(line);
            out.push(b'\n');
        }
        out.extend_from_slice(format!("\n--{boundary}--\n\n").as_bytes());
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_text_is_openssl_crlf_copy() {
        assert_eq!(
            canonical_text(b"a\nb\r\n\nc"),
            b"Content-Type: text/plain\r\n\r\na\r\nb\r\n\r\nc".to_vec()
        );
        assert_eq!(
            canonical_text(b"x\r\r\n"),
            b"Content-Type: text/plain\r\n\r\nx\r\n".to_vec()
        );
        assert_eq!(
            canonical_text(b""),
            b"Content-Type: text/plain\r\n\r\n".to_vec()
        );
    }
}
