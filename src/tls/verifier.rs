//! Client-certificate handling in the handshake.
//!
//! rustls' built-in verifier (webpki) rejects GSI proxy certificates by
//! design: they carry a critical ProxyCertInfo extension and are issued by
//! end-entity certificates. fedgate therefore takes the chain as presented
//! and validates it in the X.509 authenticator, which knows proxies. The
//! handshake still proves possession of the leaf's key: the
//! CertificateVerify signature is checked here against the leaf's raw
//! public key, so a client cannot present someone else's certificate.
//!
//! When client certificates are required, a chain the validator proves
//! bad is refused here already, with the alert gridsite would send
//! (certificate_expired, certificate_revoked, unknown_ca, ...), and the
//! reason goes to the log. With optional client auth the authenticator
//! answers 401 instead, which tells the client why.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use rustls_pki_types::{CertificateDer, SubjectPublicKeyInfoDer, UnixTime};
use x509_parser::prelude::*;

use crate::pki::{FailKind, Validator};

#[derive(Debug)]
pub struct GridClientVerifier {
    hints: Vec<DistinguishedName>,
    mandatory: bool,
    algs: WebPkiSupportedAlgorithms,
    validator: Option<Arc<Validator>>,
}

/// The rustls error whose alert matches what gridsite/mod_ssl send.
pub fn alert_error(kind: FailKind, reason: &str) -> Error {
    use rustls::CertificateError as C;
    let e = match kind {
        FailKind::Expired | FailKind::NotYetValid => C::Expired,
        FailKind::Revoked => C::Revoked,
        FailKind::UnknownCa => C::UnknownIssuer,
        FailKind::CrlUnavailable => C::UnknownRevocationStatus,
        FailKind::CrlExpired => C::ExpiredRevocationList,
        FailKind::BadEncoding | FailKind::NoCertificate => C::BadEncoding,
        FailKind::UnhandledCriticalExtension => C::UnhandledCriticalExtension,
        FailKind::BadSignature => C::BadSignature,
        // unsupported_certificate, as OpenSSL's purpose check sends.
        FailKind::Usage => C::InvalidPurpose,
        // certificate_unknown, as gridsite for pathlen/limited violations.
        FailKind::Policy | FailKind::Depth => C::Other(rustls::OtherError(Arc::new(PolicyError(
            reason.to_string(),
        )))),
    };
    Error::InvalidCertificate(e)
}

/// The handshake's judgement of a client chain under `client_auth =
/// "required"`: `Err` with the matching alert for a chain the validator
/// proves bad.
pub(crate) fn judge_chain(
    v: &Validator,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: i64,
) -> Result<(), Error> {
    let mut chain: Vec<&[u8]> = vec![end_entity.as_ref()];
    chain.extend(intermediates.iter().map(|c| c.as_ref()));
    let verdict = v.validate(&chain, now);
    match &verdict.failure {
        // The depth limit is the route's business (403), not a bad chain.
        Some(f) if f.kind != FailKind::Depth => {
            tracing::info!(reason = %f.reason, dn = %verdict.eec().map(|c| c.subject.as_str()).unwrap_or("-"),
                "client certificate chain refused in the TLS handshake");
            Err(alert_error(f.kind, &f.reason))
        }
        _ => Ok(()),
    }
}

#[derive(Debug)]
struct PolicyError(String);

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PolicyError {}

impl GridClientVerifier {
    pub fn new(
        provider: &CryptoProvider,
        hints: Vec<DistinguishedName>,
        mandatory: bool,
        validator: Option<Arc<Validator>>,
    ) -> Arc<Self> {
        Arc::new(GridClientVerifier {
            hints,
            mandatory,
            algs: provider.signature_verification_algorithms,
            validator,
        })
    }

    fn leaf_spki(cert: &CertificateDer<'_>) -> Result<Vec<u8>, Error> {
        let (_, c) = X509Certificate::from_der(cert.as_ref())
            .map_err(|_| Error::InvalidCertificate(rustls::CertificateError::BadEncoding))?;
        Ok(c.public_key().raw.to_vec())
    }
}

impl ClientCertVerifier for GridClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        // A certificate we cannot read is refused with bad_certificate.
        Self::leaf_spki(end_entity)?;
        if let Some(v) = &self.validator {
            judge_chain(v, end_entity, intermediates, now.as_secs() as i64)?;
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let spki = Self::leaf_spki(cert)?;
        let spki = SubjectPublicKeyInfoDer::from(spki.as_slice());
        let rpk = webpki::RawPublicKeyEntity::try_from(&spki)
            .map_err(|_| Error::InvalidCertificate(rustls::CertificateError::BadEncoding))?;
        let (_, algs) = self
            .algs
            .mapping
            .iter()
            .find(|(scheme, _)| *scheme == dss.scheme)
            .ok_or(Error::PeerMisbehaved(
                rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
            ))?;
        // Try each algorithm of the scheme; those for another key type say so.
        for alg in algs.iter() {
            match rpk.verify_signature(*alg, message, dss.signature()) {
                Ok(()) => return Ok(HandshakeSignatureValid::assertion()),
                Err(webpki::Error::UnsupportedSignatureAlgorithmForPublicKeyContext(_)) => continue,
                Err(_) => break,
            }
        }
        Err(Error::InvalidCertificate(
            rustls::CertificateError::BadSignature,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let spki = Self::leaf_spki(cert)?;
        rustls::crypto::verify_tls13_signature_with_raw_key(
            message,
            &SubjectPublicKeyInfoDer::from(spki.as_slice()),
            dss,
            &self.algs,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}
