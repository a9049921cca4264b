//! Finding the ACs in a validated client chain and judging each one.

use aws_lc_rs::digest;
use rustls_pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::asn1::{OID_ACSEQ, split_acseq};
use super::cache::{AcKey, VomsSettings};
use super::validate::{Eec, Rules, check_dynamic, check_full};
use super::{AaVerifier, VomsOutcome};

/// VOMS issues one AC per VO; a client sending more is not a real VOMS
/// user, and each uncached AC costs file reads and RSA verifications.
pub const MAX_ACS: usize = 16;

/// Evaluates the VOMS ACs of a chain whose path (EEC, proxies) the PKI
/// module has already validated. `chain` is leaf first and `eec_index` the
/// position of the end-entity certificate; only proxies above it (indices
/// below it) can carry ACs, and only the leaf-most carrier counts (older
/// ACs higher up are superseded, as in VOMS, gridsite and voms-api-java).
///
/// Each AC is judged on its own: a refused AC is reported in
/// `VomsOutcome::refused` and does not affect the others or the connection.
pub fn evaluate(
    chain: &[CertificateDer<'_>],
    eec_index: usize,
    aa: &dyn AaVerifier,
    settings: &VomsSettings,
    now: i64,
) -> VomsOutcome {
    let mut out = VomsOutcome::default();
    if eec_index >= chain.len() {
        return out;
    }
    let Some((carrier, value)) = find_carrier(chain, eec_index) else {
        return out;
    };
    out.carrier = Some(carrier);
    let acs = match split_acseq(&value) {
        Ok(acs) => acs,
        Err(e) => {
            out.refused.push(format!(
                "VOMS extension of certificate {carrier} unreadable: {e}"
            ));
            return out;
        }
    };
    let eec = match X509Certificate::from_der(chain[eec_index].as_ref()) {
        Ok((_, c)) => Eec::from_cert(&c),
        Err(_) => {
            out.refused
                .push("end-entity certificate unreadable; all ACs dropped".into());
            return out;
        }
    };
    let rules = Rules {
        dir: &settings.dir,
        pem_fallback: settings.pem_fallback,
        skew: settings.skew,
        targets: &settings.targets,
    };
    let total = acs.len();
    if total > MAX_ACS {
        out.refused.push(format!(
            "{} ACs beyond the first {MAX_ACS} ignored",
            total - MAX_ACS
        ));
    }
    for (i, der) in acs.into_iter().take(MAX_ACS).enumerate() {
        let key: AcKey = digest::digest(&digest::SHA256, der)
            .as_ref()
            .try_into()
            .expect("SHA-256 is 32 bytes");
        let label = |vo: Option<&str>| match vo {
            Some(vo) => format!("AC {}/{total} (VO {vo})", i + 1),
            None => format!("AC {}/{total}", i + 1),
        };
        if let Some(hit) = settings.cached(&key) {
            match check_dynamic(&hit.checked, &eec, settings.skew, now) {
                Ok(()) => out.acs.push(hit.checked.valid.clone()),
                Err(e) => out
                    .refused
                    .push(format!("{}: {e}", label(Some(&hit.checked.valid.vo)))),
            }
            continue;
        }
        match check_full(der, &eec, aa, &rules, now) {
            Ok(checked) => {
                out.acs.push(checked.valid.clone());
                settings.remember(key, checked, now);
            }
            Err((vo, e)) => out.refused.push(format!("{}: {e}", label(vo.as_deref()))),
        }
    }
    out
}

/// The leaf-most certificate above the EEC carrying the acseq extension,
/// with the extension's value.
fn find_carrier(chain: &[CertificateDer<'_>], eec_index: usize) -> Option<(usize, Vec<u8>)> {
    let oid =
        x509_parser::der_parser::oid::Oid::new(std::borrow::Cow::Borrowed(OID_ACSEQ.as_bytes()));
    chain
        .iter()
        .take(eec_index)
        .enumerate()
        .find_map(|(i, der)| {
            let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
            let ext = cert.extensions().iter().find(|e| e.oid == oid)?;
            Some((i, ext.value.to_vec()))
        })
}
