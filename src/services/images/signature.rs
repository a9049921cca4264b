//! Verification of the CMS SignedData (RFC 5652) that signs a list:
//! the content digest, the signature over it (directly or through the
//! signed attributes, §5.4), and the signer certificate's chain to the
//! IGTF trust store with its CRLs, through the gateway's own validator
//! ([`crate::pki::Validator`]), so lists and client certificates are
//! judged by the same rules.

use std::sync::Arc;

use aws_lc_rs::digest;
use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier};
use der::asn1::OctetString;
use der::{Decode, Encode};
use thiserror::Error;

use super::list::MAX_LIST_BYTES;
use super::smime::{self, Envelope, SmimeError};
use crate::pki::cert::Cert;
use crate::pki::verify::verify_signed;
use crate::pki::{FailKind, Validator};

const ID_DATA: &str = "1.2.840.113549.1.7.1";
const ID_SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
const ATTR_CONTENT_TYPE: &str = "1.2.840.113549.1.9.3";
const ATTR_MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";

/// Why a signed list did not verify.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignatureError {
    /// The envelope or the CMS structure is unusable.
    #[error("{0}")]
    Envelope(#[from] SmimeError),
    #[error("CMS SignedData: {0}")]
    Cms(String),
    /// The digest or the signature does not match: tampered or wrong key.
    #[error("{0}")]
    Mismatch(String),
    /// The signer certificate does not chain to a trusted CA, is expired,
    /// revoked, or otherwise refused by the validator.
    #[error("signer certificate: {reason}")]
    Signer { kind: FailKind, reason: String },
}

/// A verified list: what was signed, and by whom.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The signed content as verified (the JSON, possibly MIME-wrapped).
    pub content: Vec<u8>,
    pub signer: Arc<Cert>,
    /// The signer's issuers up to the trust anchor.
    pub path: Vec<Arc<Cert>>,
}

fn cms_err(what: &str, e: impl std::fmt::Display) -> SignatureError {
    SignatureError::Cms(format!("{what}: {e}"))
}

fn digest_alg(oid: &str) -> Option<(&'static digest::Algorithm, &'static str)> {
    Some(match oid {
        "1.3.14.3.2.26" => (&digest::SHA1_FOR_LEGACY_USE_ONLY, "sha1"),
        "2.16.840.1.101.3.4.2.1" => (&digest::SHA256, "sha256"),
        "2.16.840.1.101.3.4.2.2" => (&digest::SHA384, "sha384"),
        "2.16.840.1.101.3.4.2.3" => (&digest::SHA512, "sha512"),
        _ => return None,
    })
}

/// The X.509 signature algorithm the pki verifier understands, from the
/// SignerInfo's signature and digest algorithms (OpenSSL writes the bare
/// `rsaEncryption` key OID there, RFC 3370 §3.2).
fn signature_oid(sig: &str, digest: &str) -> Option<&'static str> {
    Some(match (sig, digest) {
        (RSA_ENCRYPTION, "sha1") => "1.2.840.113549.1.1.5",
        (RSA_ENCRYPTION, "sha256") => "1.2.840.113549.1.1.11",
        (RSA_ENCRYPTION, "sha384") => "1.2.840.113549.1.1.12",
        (RSA_ENCRYPTION, "sha512") => "1.2.840.113549.1.1.13",
        (EC_PUBLIC_KEY, "sha256") => "1.2.840.10045.4.3.2",
        (EC_PUBLIC_KEY, "sha384") => "1.2.840.10045.4.3.3",
        ("1.2.840.113549.1.1.5", _) => "1.2.840.113549.1.1.5",
        ("1.2.840.113549.1.1.11", _) => "1.2.840.113549.1.1.11",
        ("1.2.840.113549.1.1.12", _) => "1.2.840.113549.1.1.12",
        ("1.2.840.113549.1.1.13", _) => "1.2.840.113549.1.1.13",
        ("1.2.840.10045.4.3.2", _) => "1.2.840.10045.4.3.2",
        ("1.2.840.10045.4.3.3", _) => "1.2.840.10045.4.3.3",
        _ => return None,
    })
}

/// Subject key identifier extension value of a certificate, if any.
fn subject_key_id(der: &[u8]) -> Option<Vec<u8>> {
    use x509_parser::prelude::*;
    let (_, c) = X509Certificate::from_der(der).ok()?;
    c.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        })
}

/// Verifies a signed list at `now` and returns the signed content.
pub fn verify(msg: &[u8], validator: &Validator, now: i64) -> Result<Signed, SignatureError> {
    if msg.len() > MAX_LIST_BYTES {
        return Err(SignatureError::Cms(format!(
            "the signed list is larger than {MAX_LIST_BYTES} bytes"
        )));
    }
    let (cms_bytes, detached) = match smime::parse(msg)? {
        Envelope::Detached { content, cms } => (cms, Some(content)),
        Envelope::Opaque { cms } => (cms, None),
    };
    let ci = ContentInfo::from_ber(&cms_bytes).map_err(|e| cms_err("ContentInfo", e))?;
    if ci.content_type.to_string() != ID_SIGNED_DATA {
        return Err(SignatureError::Cms(format!(
            "content type {} is not signedData",
            ci.content_type
        )));
    }
    let sd: SignedData = ci
        .content
        .decode_as()
        .map_err(|e| cms_err("SignedData", e))?;
    let econtent_type = sd.encap_content_info.econtent_type.to_string();
    if econtent_type != ID_DATA {
        return Err(SignatureError::Cms(format!(
            "encapsulated content type {econtent_type} is not id-data"
        )));
    }
    // The content candidates, canonical form first: OpenSSL signs the
    // CRLF form of text (RFC 8551 §3.1.1) unless told `-binary`.
    let candidates: Vec<Vec<u8>> = match (&detached, &sd.encap_content_info.econtent) {
        (Some(_), Some(_)) => {
            return Err(SignatureError::Cms(
                "multipart/signed with encapsulated content".into(),
            ));
        }
        (None, None) => {
            return Err(SignatureError::Cms(
                "pkcs7-mime without encapsulated content".into(),
            ));
        }
        (Some(c), None) => {
            let canon = smime::canonical(c);
            if &canon == c {
                vec![canon]
            } else {
                vec![canon, c.clone()]
            }
        }
        (None, Some(any)) => {
            let octets: OctetString = any.decode_as().map_err(|e| cms_err("eContent", e))?;
            vec![octets.as_bytes().to_vec()]
        }
    };
    let signers: Vec<_> = sd.signer_infos.0.iter().collect();
    let [si] = signers.as_slice() else {
        return Err(SignatureError::Cms(format!(
            "{} signers instead of one",
            signers.len()
        )));
    };
    let certs: Vec<Vec<u8>> = sd
        .certificates
        .iter()
        .flat_map(|s| s.0.iter())
        .filter_map(|c| match c {
            CertificateChoices::Certificate(c) => c.to_der().ok(),
            CertificateChoices::Other(_) => None,
        })
        .collect();
    let mut signer_at = None;
    for (i, der) in certs.iter().enumerate() {
        let found = match &si.sid {
            SignerIdentifier::IssuerAndSerialNumber(ias) => {
                let issuer = ias
                    .issuer
                    .to_der()
                    .map_err(|e| cms_err("signer issuer", e))?;
                Cert::parse(der).is_ok_and(|c| {
                    c.issuer_der == issuer && c.serial == ias.serial_number.as_bytes()
                })
            }
            SignerIdentifier::SubjectKeyIdentifier(ski) => {
                subject_key_id(der).is_some_and(|k| k == ski.0.as_bytes())
            }
        };
        if found {
            signer_at = Some(i);
            break;
        }
    }
    let Some(signer_at) = signer_at else {
        return Err(SignatureError::Cms(
            "the signer certificate is not included".into(),
        ));
    };
    let signer = Cert::parse(&certs[signer_at]).map_err(|e| cms_err("signer certificate", e))?;
    let digest_oid = si.digest_alg.oid.to_string();
    let (dalg, dname) = digest_alg(&digest_oid)
        .ok_or_else(|| SignatureError::Cms(format!("unsupported digest algorithm {digest_oid}")))?;
    let sig_alg = si.signature_algorithm.oid.to_string();
    let sig_oid = signature_oid(&sig_alg, dname).ok_or_else(|| {
        SignatureError::Cms(format!(
            "unsupported signature algorithm {sig_alg} with {dname}"
        ))
    })?;
    let signature = si.signature.as_bytes();
    let content = match &si.signed_attrs {
        Some(attrs) => {
            let attr = |oid: &str| attrs.iter().find(|a| a.oid.to_string() == oid);
            let ct = attr(ATTR_CONTENT_TYPE)
                .and_then(|a| a.values.get(0))
                .and_then(|v| v.decode_as::<der::asn1::ObjectIdentifier>().ok())
                .ok_or_else(|| SignatureError::Cms("no content-type attribute".into()))?;
            if ct.to_string() != ID_DATA {
                return Err(SignatureError::Cms(format!(
                    "content-type attribute {ct} is not id-data"
                )));
            }
            let md_attr = attr(ATTR_MESSAGE_DIGEST)
                .ok_or_else(|| SignatureError::Cms("no message-digest attribute".into()))?;
            if md_attr.values.len() != 1 {
                return Err(SignatureError::Cms(
                    "message-digest attribute must have one value".into(),
                ));
            }
            let md: OctetString = md_attr
                .values
                .get(0)
                .map(|v| v.decode_as())
                .transpose()
                .map_err(|e| cms_err("message-digest", e))?
                .ok_or_else(|| SignatureError::Cms("empty message-digest".into()))?;
            let content = candidates
                .into_iter()
                .find(|c| digest::digest(dalg, c).as_ref() == md.as_bytes())
                .ok_or_else(|| {
                    SignatureError::Mismatch(
                        "the content does not match the signed digest (tampered?)".into(),
                    )
                })?;
            // RFC 5652 §5.4: the signature covers the DER of the SET OF.
            let signed = attrs
                .to_der()
                .map_err(|e| cms_err("signed attributes", e))?;
            verify_signed(&signer.key, sig_oid, signature, &signed).map_err(|e| {
                SignatureError::Mismatch(format!("signature by {}: {e}", signer.subject))
            })?;
            content
        }
        None => candidates
            .into_iter()
            .find(|c| verify_signed(&signer.key, sig_oid, signature, c).is_ok())
            .ok_or_else(|| {
                SignatureError::Mismatch(format!(
                    "signature by {} does not verify over the content (tampered?)",
                    signer.subject
                ))
            })?,
    };
    if signer.is_proxy() {
        return Err(SignatureError::Signer {
            kind: FailKind::Policy,
            reason: format!("{} is a proxy certificate", signer.subject),
        });
    }
    // keyUsage, when present, must allow signing (RFC 5280 §4.2.1.3;
    // nonRepudiation is what S/MIME signers often carry).
    if signer.key_usage.is_some_and(|ku| ku & 0b11 == 0) {
        return Err(SignatureError::Signer {
            kind: FailKind::Policy,
            reason: format!(
                "{} may not sign (keyUsage lacks digitalSignature and nonRepudiation)",
                signer.subject
            ),
        });
    }
    let mut chain = vec![certs[signer_at].clone()];
    chain.extend(
        certs
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != signer_at)
            .map(|(_, c)| c.clone()),
    );
    let verdict = validator.validate(&chain, now);
    if let Some(f) = verdict.failure {
        return Err(SignatureError::Signer {
            kind: f.kind,
            reason: f.reason,
        });
    }
    Ok(Signed {
        content,
        signer: Arc::new(signer),
        path: verdict.path,
    })
}
