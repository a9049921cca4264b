//! The checks of one AC, in the order of RFC 5755 §5 with the VOMS profile
//! (GFD.182): profile, signature, issuer and AA chain, holder, validity,
//! extensions, targets, FQANs.
//!
//! They are split by what they depend on, so that the result of the
//! expensive, connection-independent ones (signature, AA chain) can be
//! cached per AC: steps 1–4 and 7–9 depend only on the AC, the vomsdir and
//! the configuration; steps 5 (holder) and 6 (time) depend on the
//! presenting chain and the clock and run on every evaluation.

use aws_lc_rs::{digest, signature};
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::SubjectPublicKeyInfo;

use super::asn1::{OID_AKI, OID_NO_REV_AVAIL, OID_TARGETS, TargetName, parse_ac};
use super::lsc::{self, name_canon};
use super::profile::{VomsAc, profile};
use super::{AaVerifier, ValidAc};
use crate::pki::dn::oneline;
use crate::pki::hash::canonical_name;

/// What the checks need to know about the chain presenting the AC.
#[derive(Debug, Clone)]
pub struct Eec {
    /// Serial magnitude bytes (no sign padding).
    pub serial: Vec<u8>,
    pub subject_canon: Vec<u8>,
    pub issuer_canon: Vec<u8>,
    pub issuer_uid: Option<Vec<u8>>,
    pub subject: String,
    pub issuer: String,
}

impl Eec {
    pub fn from_cert(c: &X509Certificate<'_>) -> Eec {
        let serial = c.tbs_certificate.raw_serial();
        let skip = serial
            .iter()
            .take(serial.len().saturating_sub(1))
            .take_while(|&&b| b == 0)
            .count();
        Eec {
            serial: serial[skip..].to_vec(),
            subject_canon: canonical_name(c.subject()),
            issuer_canon: canonical_name(c.issuer()),
            issuer_uid: c
                .tbs_certificate
                .issuer_uid
                .as_ref()
                .map(|u| u.0.data.to_vec()),
            subject: oneline(c.subject()),
            issuer: oneline(c.issuer()),
        }
    }
}

/// Configuration the checks read.
#[derive(Debug, Clone)]
pub struct Rules<'a> {
    pub dir: &'a std::path::Path,
    pub pem_fallback: bool,
    pub skew: i64,
    pub targets: &'a [String],
}

/// An AC that passed every connection-independent check.
#[derive(Debug, Clone)]
pub struct Checked {
    pub valid: ValidAc,
    holder_issuer_canon: Vec<u8>,
    holder_serial: Vec<u8>,
    holder_issuer_uid: Option<Vec<u8>>,
}

/// Steps 1–9 for an AC not seen before. On success the returned value can
/// be cached and re-checked with [`check_dynamic`].
pub fn check_full(
    der: &[u8],
    eec: &Eec,
    aa: &dyn AaVerifier,
    rules: &Rules<'_>,
    now: i64,
) -> Result<Checked, (Option<String>, String)> {
    // 1. parse and profile
    let parsed = parse_ac(der).map_err(|e| (None, format!("malformed AC: {e}")))?;
    let ac = profile(&parsed).map_err(|e| (None, e))?;
    let vo = Some(ac.vo.clone());
    let checked = check_signer(&ac, aa, rules, now).map_err(|e| (vo.clone(), e))?;
    check_dynamic(&checked, eec, rules.skew, now).map_err(|e| (vo.clone(), e))?;
    check_extensions(&ac).map_err(|e| (vo.clone(), e))?;
    check_targets(&ac, rules.targets).map_err(|e| (vo.clone(), e))?;
    check_fqans(&ac).map_err(|e| (vo, e))?;
    Ok(checked)
}

/// Steps 2–4: find the AA certificate, verify the signature, bind the
/// issuer, validate the AA chain.
fn check_signer(
    ac: &VomsAc,
    aa: &dyn AaVerifier,
    rules: &Rules<'_>,
    now: i64,
) -> Result<Checked, String> {
    if ac.sig_alg != ac.inner_sig_alg {
        return Err("AC signatureAlgorithm differs from acinfo.signature".into());
    }
    // 2. signature, by the AA certificate found in the vomsdir
    let sig_ok = |c: &X509Certificate<'_>| {
        verify_rsa(&ac.sig_alg, c.public_key(), &ac.acinfo_der, &ac.signature).is_ok()
    };
    let trusted = lsc::find_aa(
        rules.dir,
        &ac.vo,
        &ac.host,
        &ac.issuer,
        &ac.certs,
        rules.pem_fallback,
        &sig_ok,
    )?;
    let (_, cert) = X509Certificate::from_der(&trusted.cert)
        .map_err(|_| "VOMS server certificate is malformed")?;
    verify_rsa(
        &ac.sig_alg,
        cert.public_key(),
        &ac.acinfo_der,
        &ac.signature,
    )
    .map_err(|e| {
        format!(
            "cannot verify AC signature with {}: {e}",
            oneline(cert.subject())
        )
    })?;
    // 3. issuer binding
    if name_canon(&ac.issuer).as_deref() != Some(canonical_name(cert.subject()).as_slice()) {
        return Err("AC issuer differs from the VOMS server certificate subject".into());
    }
    if let Some(aki) = &ac.aki {
        if !key_id_matches(&cert, aki) {
            return Err("AC authority key identifier does not match the VOMS server key".into());
        }
    }
    // 4. AA chain
    let helpers: Vec<&[u8]> = trusted.helpers.iter().map(Vec::as_slice).collect();
    aa.verify_aa(&trusted.cert, &helpers, now).map_err(|e| {
        format!(
            "VOMS server certificate {} not trusted: {e}",
            oneline(cert.subject())
        )
    })?;
    Ok(Checked {
        valid: ValidAc {
            vo: ac.vo.clone(),
            uri: ac.uri.clone(),
            server: oneline(cert.subject()),
            server_ca: oneline(cert.issuer()),
            fqans: ac.fqans.clone(),
            not_before: ac.not_before,
            not_after: ac.not_after,
            not_before_raw: ac.not_before_raw.clone(),
            not_after_raw: ac.not_after_raw.clone(),
            serial_hex: serial_hex(&ac.serial),
            generic: ac.generic.clone(),
        },
        holder_issuer_canon: name_canon(&ac.holder_issuer).ok_or("AC holder name is malformed")?,
        holder_serial: ac.holder_serial.clone(),
        holder_issuer_uid: ac.holder_issuer_uid.clone(),
    })
}

/// Steps 5 (holder) and 6 (time): the parts that depend on who presents
/// the AC and when.
pub fn check_dynamic(c: &Checked, eec: &Eec, skew: i64, now: i64) -> Result<(), String> {
    // 5. holder: VOMS writes the EEC subject ("old format") or, with
    // -newformat, the EEC issuer; both are accepted, the serial must match.
    if c.holder_serial != eec.serial {
        return Err(format!(
            "AC holder serial does not match the certificate of {}",
            eec.subject
        ));
    }
    if c.holder_issuer_canon != eec.subject_canon && c.holder_issuer_canon != eec.issuer_canon {
        return Err(format!(
            "AC holder name matches neither subject nor issuer of {}",
            eec.subject
        ));
    }
    if let Some(uid) = &c.holder_issuer_uid {
        if eec.issuer_uid.as_ref() != Some(uid) {
            return Err("AC holder issuerUID does not match the user certificate".into());
        }
    }
    // 6. time
    let v = &c.valid;
    if now < v.not_before.saturating_sub(skew) {
        return Err(format!("AC not valid yet (notBefore {})", v.not_before_raw));
    }
    if now > v.not_after.saturating_add(skew) {
        return Err(format!(
            "AC not valid anymore (notAfter {})",
            v.not_after_raw
        ));
    }
    Ok(())
}

/// Step 7, extensions: noRevAvail and AKI present and non-critical; the only
/// critical extension understood is targetInformation.
fn check_extensions(ac: &VomsAc) -> Result<(), String> {
    for (oid, critical) in &ac.extensions {
        if *critical && *oid != OID_TARGETS.to_string() {
            return Err(format!("unknown critical extension {oid} inside AC"));
        }
    }
    if !ac.has_no_rev_avail {
        return Err("AC lacks the noRevAvail extension".into());
    }
    if !ac
        .extensions
        .iter()
        .any(|(oid, _)| *oid == OID_AKI.to_string())
    {
        return Err("AC lacks the authority key identifier extension".into());
    }
    debug_assert!(
        !ac.extensions
            .iter()
            .any(|(o, c)| *c && *o == OID_NO_REV_AVAIL.to_string())
    );
    Ok(())
}

/// Step 8, targets: an AC without targets is for everyone; one with targets
/// must name this service.
fn check_targets(ac: &VomsAc, local: &[String]) -> Result<(), String> {
    let Some(targets) = &ac.targets else {
        return Ok(());
    };
    let hit = targets.iter().any(|t| match t {
        TargetName::Name(n) => local.iter().any(|l| l.eq_ignore_ascii_case(n)),
        TargetName::Other => false,
    });
    if hit {
        return Ok(());
    }
    let names: Vec<&str> = targets
        .iter()
        .filter_map(|t| match t {
            TargetName::Name(n) => Some(n.as_str()),
            TargetName::Other => None,
        })
        .collect();
    Err(format!(
        "AC is targeted at [{}], not at this service",
        names.join(", ")
    ))
}

/// Step 9: every FQAN belongs to the AC's VO.
fn check_fqans(ac: &VomsAc) -> Result<(), String> {
    let prefix = format!("/{}", ac.vo);
    for f in &ac.fqans {
        let ok = f
            .strip_prefix(&prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        if !ok {
            return Err(format!("FQAN `{f}` is not in VO {}", ac.vo));
        }
    }
    Ok(())
}

/// Upper-case hex with an even number of digits, like OpenSSL's
/// `BN_bn2hex` that nginx-voms exports.
fn serial_hex(magnitude: &[u8]) -> String {
    if magnitude.iter().all(|&b| b == 0) {
        return "00".into();
    }
    hex::encode_upper(magnitude)
}

/// AKI keyIdentifier equals the AA certificate's SKI (voms-api-java) or
/// the SHA-1 of its public key (VOMS C++).
fn key_id_matches(cert: &X509Certificate<'_>, aki: &[u8]) -> bool {
    let ski = cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0),
            _ => None,
        });
    if ski == Some(aki) {
        return true;
    }
    let key = &cert.public_key().subject_public_key.data;
    digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, key).as_ref() == aki
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SigError {
    #[error("unsupported signature algorithm {0}")]
    Algorithm(String),
    #[error("not an RSA key")]
    Key,
    #[error("signature does not verify")]
    Bad,
}

/// RSA PKCS#1 v1.5 verification as VOMS signs ACs (SHA-1 still occurs on
/// old servers; keys below 2048 bits are refused). Public so that tests
/// and the PKI module can check certificate signatures the same way.
pub fn verify_rsa(
    alg_oid: &str,
    spki: &SubjectPublicKeyInfo<'_>,
    msg: &[u8],
    sig: &[u8],
) -> Result<(), SigError> {
    let alg: &dyn signature::VerificationAlgorithm = match alg_oid {
        "1.2.840.113549.1.1.5" => &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
        "1.2.840.113549.1.1.11" => &signature::RSA_PKCS1_2048_8192_SHA256,
        "1.2.840.113549.1.1.12" => &signature::RSA_PKCS1_2048_8192_SHA384,
        "1.2.840.113549.1.1.13" => &signature::RSA_PKCS1_2048_8192_SHA512,
        other => return Err(SigError::Algorithm(other.to_string())),
    };
    if spki.algorithm.algorithm.to_id_string() != "1.2.840.113549.1.1.1" {
        return Err(SigError::Key);
    }
    signature::UnparsedPublicKey::new(alg, &spki.subject_public_key.data)
        .verify(msg, sig)
        .map_err(|_| SigError::Bad)
}
