//! The TLS front end: rustls server configuration from the host
//! credentials and the trust store.

mod config;
mod verifier;

pub use config::{ClientAuth, TlsConfig, WatchMode};

pub use verifier::GridClientVerifier;

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::NoClientAuth;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;
use x509_parser::prelude::*;

use crate::pki::TrustStore;

#[derive(Debug, Error)]
pub enum TlsSetupError {
    #[error("cannot read certificate {0}: {1}")]
    ReadCert(String, String),
    #[error("certificate file {0} holds no PEM certificate")]
    NoCert(String),
    #[error("cannot read private key {0}: {1}")]
    ReadKey(String, String),
    #[error("private key {0} does not match certificate {1}")]
    KeyMismatch(String, String),
    #[error("TLS configuration rejected: {0}")]
    Rustls(String),
}

impl TlsSetupError {
    /// The configuration key a site has to fix: the key file for key
    /// problems, the certificate file otherwise.
    pub fn config_key<'a>(&self, tls: &'a TlsConfig) -> &'a toml::Spanned<std::path::PathBuf> {
        match self {
            TlsSetupError::ReadKey(..) | TlsSetupError::KeyMismatch(..) => &tls.private_key,
            _ => &tls.certificate,
        }
    }
}

/// Reads the host certificate chain. An IGTF host certificate file often
/// holds only the leaf; the chain is completed from the trust store so
/// clients get every intermediate (roots are not sent).
pub fn load_chain(
    path: &Path,
    trust: &TrustStore,
) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let shown = path.display().to_string();
    let pem =
        std::fs::read(path).map_err(|e| TlsSetupError::ReadCert(shown.clone(), e.to_string()))?;
    let mut chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsSetupError::ReadCert(shown.clone(), e.to_string()))?;
    if chain.is_empty() {
        return Err(TlsSetupError::NoCert(shown));
    }
    // Follow issuers through the store while they are not self-signed.
    for _ in 0..8 {
        let last = chain.last().expect("non-empty");
        let Ok((_, c)) = X509Certificate::from_der(last.as_ref()) else {
            break;
        };
        if c.subject().as_raw() == c.issuer().as_raw() {
            break;
        }
        let issuer = c.issuer().as_raw();
        let Some(ca) = trust.cas().iter().find(|ca| ca.subject_der == issuer) else {
            break;
        };
        let Ok((_, cac)) = X509Certificate::from_der(ca.der.as_ref()) else {
            break;
        };
        if cac.subject().as_raw() == cac.issuer().as_raw()
            || chain.iter().any(|c| c.as_ref() == ca.der.as_ref())
        {
            break;
        }
        chain.push(ca.der.clone());
    }
    Ok(chain)
}

/// The first certificate of a PEM file: the host certificate itself.
fn read_leaf(path: &Path) -> Result<CertificateDer<'static>, TlsSetupError> {
    let shown = path.display().to_string();
    let pem =
        std::fs::read(path).map_err(|e| TlsSetupError::ReadCert(shown.clone(), e.to_string()))?;
    CertificateDer::pem_slice_iter(&pem)
        .next()
        .ok_or_else(|| TlsSetupError::NoCert(shown.clone()))?
        .map_err(|e| TlsSetupError::ReadCert(shown, e.to_string()))
}

/// The names a host certificate certifies: the DNS names and IP addresses
/// of its subjectAltName, in certificate order. They are this service's
/// names, e.g. for the targets of VOMS attribute certificates.
pub fn host_names(path: &Path) -> Result<Vec<String>, TlsSetupError> {
    let leaf = read_leaf(path)?;
    let (_, c) = X509Certificate::from_der(leaf.as_ref())
        .map_err(|e| TlsSetupError::ReadCert(path.display().to_string(), e.to_string()))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = c.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => names.push(d.to_string()),
                GeneralName::IPAddress(ip) => {
                    let ip = match ip.len() {
                        4 => <[u8; 4]>::try_from(*ip).ok().map(std::net::IpAddr::from),
                        16 => <[u8; 16]>::try_from(*ip).ok().map(std::net::IpAddr::from),
                        _ => None,
                    };
                    names.extend(ip.map(|i| i.to_string()));
                }
                _ => {}
            }
        }
    }
    Ok(names)
}

/// The host certificate (the first of the file), parsed: its subject and
/// end date feed the expiry warnings and metric.
pub fn host_leaf(path: &Path) -> Result<crate::pki::cert::Cert, TlsSetupError> {
    let leaf = read_leaf(path)?;
    crate::pki::cert::Cert::parse(leaf.as_ref())
        .map_err(|e| TlsSetupError::ReadCert(path.display().to_string(), e.to_string()))
}

/// mod_ssl's `SSL_SERVER_*` values of the host certificate (the first of
/// the file), as `SSLOptions +StdEnvVars +ExportCertData` exports them.
pub fn server_modssl(path: &Path) -> Result<Vec<(String, String)>, TlsSetupError> {
    let leaf = read_leaf(path)?;
    let cert = crate::pki::cert::Cert::parse(leaf.as_ref())
        .map_err(|e| TlsSetupError::ReadCert(path.display().to_string(), e.to_string()))?;
    let mut vars = crate::pki::modssl::cert_vars(&cert, crate::pki::modssl::Side::Server, 0);
    // +ExportCertData
    vars.push(("SSL_SERVER_CERT".into(), cert.pem()));
    Ok(vars)
}

/// mod_ssl's values of an established connection, handed to `put` in
/// mod_ssl's order: the cipher suite under OpenSSL's name with its key
/// sizes, the compression (never any), whether the session was resumed,
/// and the SNI name.
pub fn connection_modssl(tls: &crate::conn::TlsInfo, mut put: impl FnMut(&str, &str)) {
    if let Some(suite) = tls.suite {
        match openssl_cipher(suite) {
            Some((name, bits)) => {
                let bits = if bits == 128 { "128" } else { "256" };
                put("SSL_CIPHER", name);
                put("SSL_CIPHER_EXPORT", "false");
                put("SSL_CIPHER_USEKEYSIZE", bits);
                put("SSL_CIPHER_ALGKEYSIZE", bits);
            }
            None => put("SSL_CIPHER", &format!("{suite:?}")),
        }
    }
    put("SSL_COMPRESS_METHOD", "NULL");
    put(
        "SSL_SESSION_RESUMED",
        if tls.resumed { "Resumed" } else { "Initial" },
    );
    if let Some(sni) = &tls.sni {
        put("SSL_TLS_SNI", sni);
    }
}

/// OpenSSL's name of a cipher suite rustls offers, with its key size in
/// bits (used and algorithmic are the same for these AEAD suites).
fn openssl_cipher(s: rustls::CipherSuite) -> Option<(&'static str, u32)> {
    use rustls::CipherSuite as C;
    Some(match s {
        C::TLS13_AES_128_GCM_SHA256 => ("TLS_AES_128_GCM_SHA256", 128),
        C::TLS13_AES_256_GCM_SHA384 => ("TLS_AES_256_GCM_SHA384", 256),
        C::TLS13_CHACHA20_POLY1305_SHA256 => ("TLS_CHACHA20_POLY1305_SHA256", 256),
        C::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => ("ECDHE-ECDSA-AES128-GCM-SHA256", 128),
        C::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => ("ECDHE-ECDSA-AES256-GCM-SHA384", 256),
        C::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => ("ECDHE-ECDSA-CHACHA20-POLY1305", 256),
        C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => ("ECDHE-RSA-AES128-GCM-SHA256", 128),
        C::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => ("ECDHE-RSA-AES256-GCM-SHA384", 256),
        C::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => ("ECDHE-RSA-CHACHA20-POLY1305", 256),
        _ => return None,
    })
}

pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsSetupError> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| TlsSetupError::ReadKey(path.display().to_string(), e.to_string()))
}

/// Builds the server configuration: TLS 1.2 and 1.3, ALPN h2 and
/// http/1.1, and the client-certificate request the config asks for.
pub fn server_config(
    cfg: &TlsConfig,
    trust: &TrustStore,
) -> Result<Arc<ServerConfig>, TlsSetupError> {
    server_config_with(cfg, trust, None, None)
}

/// TLS sessions kept for resumption (TLS 1.2 session IDs and TLS 1.3
/// tickets; rustls issues two tickets per handshake, each an entry). An
/// entry holds the client's certificate chain, a few kB with a VOMS proxy:
/// the store stays below ~20 MB.
pub const SESSION_CACHE_ENTRIES: usize = 2048;

/// As [`server_config`]; with a validator, `client_auth = "required"`
/// refuses provably bad chains in the handshake with the matching alert.
///
/// Resumption is stateful: sessions live in `sessions` (a new bounded
/// in-memory store when `None`), TLS 1.3 tickets are only their keys and
/// each is taken once. Stateless tickets would carry the whole session,
/// client chain included, to the client and back in every ClientHello,
/// and could not be dropped. A reload passes the running store on, so
/// clients keep resuming; what a resumed session proves (the client
/// holds the key of the chain it showed before) does not depend on the
/// trust store, and the chain itself is judged again under the current
/// one ([`judge_resumed`], the x509 authenticator). Sessions are per
/// process: behind a balancer, a client that lands on another node makes
/// a full handshake.
pub fn server_config_with(
    cfg: &TlsConfig,
    trust: &TrustStore,
    validator: Option<Arc<crate::pki::Validator>>,
    sessions: Option<Arc<dyn rustls::server::StoresServerSessions>>,
) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let provider = crate::crypto::provider();
    let chain = load_chain(cfg.certificate.get_ref(), trust)?;
    let key = load_key(cfg.private_key.get_ref())?;
    let signer = provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| {
            TlsSetupError::ReadKey(
                cfg.private_key.get_ref().display().to_string(),
                e.to_string(),
            )
        })?;
    let ck = rustls::sign::CertifiedKey::new(chain.clone(), signer);
    if ck.keys_match().is_err() {
        return Err(TlsSetupError::KeyMismatch(
            cfg.private_key.get_ref().display().to_string(),
            cfg.certificate.get_ref().display().to_string(),
        ));
    }
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsSetupError::Rustls(e.to_string()))?;
    let builder = match cfg.client_auth {
        ClientAuth::None => builder.with_client_cert_verifier(Arc::new(NoClientAuth)),
        mode => {
            let hints = if cfg.send_ca_hints {
                trust.hint_subjects()
            } else {
                Vec::new()
            };
            builder.with_client_cert_verifier(GridClientVerifier::new(
                &provider,
                hints,
                mode == ClientAuth::Required,
                validator.filter(|_| mode == ClientAuth::Required),
            ))
        }
    };
    let mut sc = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsSetupError::Rustls(e.to_string()))?;
    sc.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    sc.ignore_client_order = true;
    sc.session_storage = sessions
        .unwrap_or_else(|| rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES));
    Ok(Arc::new(sc))
}

/// A resumed session skips the client-certificate checks of the handshake
/// (rustls restores the chain from the session); with `client_auth =
/// "required"` they are made here instead, against the current trust
/// store, so that neither a revocation nor a switch from `optional` since
/// the session began is bypassed. `Ok` for a full handshake and for the
/// other modes (the x509 authenticator judges the chain per connection).
pub fn judge_resumed(
    cfg: &TlsConfig,
    validator: &crate::pki::Validator,
    conn: &rustls::ServerConnection,
) -> Result<(), rustls::Error> {
    if conn.handshake_kind() != Some(rustls::HandshakeKind::Resumed)
        || cfg.client_auth != ClientAuth::Required
    {
        return Ok(());
    }
    match conn.peer_certificates() {
        Some([leaf, rest @ ..]) => {
            verifier::judge_chain(validator, leaf, rest, crate::pki::unix_now())
        }
        _ => Err(rustls::Error::NoCertificatesPresented),
    }
}

/// mod_ssl's name for a negotiated protocol version.
pub fn version_name(v: Option<rustls::ProtocolVersion>) -> &'static str {
    match v {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_offered_suite_has_its_openssl_name() {
        for s in crate::crypto::provider().cipher_suites.iter() {
            assert!(openssl_cipher(s.suite()).is_some(), "{:?}", s.suite());
        }
        assert_eq!(
            openssl_cipher(rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384),
            Some(("ECDHE-RSA-AES256-GCM-SHA384", 256))
        );
    }

    #[test]
    fn a_connections_modssl_values_are_built_from_its_handshake_facts() {
        let tls = crate::conn::TlsInfo {
            version: "TLSv1.3",
            suite: Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256),
            resumed: true,
            sni: Some("keystone.example.org".into()),
            alpn: crate::conn::Alpn::Http11,
            server_modssl: std::sync::Arc::from(Vec::new()),
            client_chain: Vec::new(),
            x509_verdict: Default::default(),
        };
        let mut got = Vec::new();
        connection_modssl(&tls, |k, v| got.push(format!("{k}={v}")));
        assert_eq!(
            got,
            [
                "SSL_CIPHER=TLS_AES_128_GCM_SHA256",
                "SSL_CIPHER_EXPORT=false",
                "SSL_CIPHER_USEKEYSIZE=128",
                "SSL_CIPHER_ALGKEYSIZE=128",
                "SSL_COMPRESS_METHOD=NULL",
                "SSL_SESSION_RESUMED=Resumed",
                "SSL_TLS_SNI=keystone.example.org",
            ]
        );
    }
}
