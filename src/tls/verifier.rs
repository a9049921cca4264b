//! Client-certificate handling in the handshake.
//!
//! rustls' built-in verifier (webpki) rejects GSI proxy certificates by
//! design: they carry a critical ProxyCertInfo extension and are issued by
//! end-entity certificates. fedgate therefore takes the chain as presented
//! and validates it in the X.509 authenticator, which knows proxies. The
//! handshake still proves possession of the leaf's key: the
//! CertificateVerify signature is checked here against the leaf's raw
//! public key, so a client cannot present someone else's certificate.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use rustls_pki_types::{CertificateDer, SubjectPublicKeyInfoDer, UnixTime};
use x509_parser::prelude::*;

#[derive(Debug)]
pub struct GridClientVerifier {
    hints: Vec<DistinguishedName>,
    mandatory: bool,
    algs: WebPkiSupportedAlgorithms,
}

impl GridClientVerifier {
    pub fn new(
        provider: &CryptoProvider,
        hints: Vec<DistinguishedName>,
        mandatory: bool,
    ) -> Arc<Self> {
        Arc::new(GridClientVerifier {
            hints,
            mandatory,
            algs: provider.signature_verification_algorithms,
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
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        // Parse only: a certificate we cannot read is refused here, with
        // the bad_certificate alert. Chain validation is the authenticator's.
        Self::leaf_spki(end_entity)?;
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
