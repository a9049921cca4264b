//! What the listener learned about a connection, shared by all its requests.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use rustls_pki_types::CertificateDer;

/// Per-connection facts handed to every request on that connection.
#[derive(Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// `None` only for plain-HTTP test listeners; production listeners are TLS.
    pub tls: Option<TlsInfo>,
}

#[derive(Debug)]
pub struct TlsInfo {
    /// "TLSv1.2" or "TLSv1.3", as mod_ssl's `SSL_PROTOCOL`.
    pub version: &'static str,
    /// IANA cipher suite name, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher: String,
    /// mod_ssl's values of this connection (`SSL_CIPHER*`, `SSL_TLS_SNI`,
    /// `SSL_SESSION_RESUMED`, ...), computed at the handshake.
    pub modssl: Vec<(String, String)>,
    /// mod_ssl's `SSL_SERVER_*` values of the host certificate, shared by
    /// every connection of one configuration.
    pub server_modssl: std::sync::Arc<[(String, String)]>,
    pub sni: Option<String>,
    pub alpn: Option<Vec<u8>>,
    /// The client's chain exactly as presented, leaf first. Its
    /// CertificateVerify signature was checked in the handshake; the chain
    /// itself is validated by the X.509 authenticator.
    pub client_chain: Vec<CertificateDer<'static>>,
    /// The X.509 authenticator's verdict, computed once per connection
    /// (gridsite does the same per TLS session) and again when a reload or
    /// an expiry makes it stale.
    pub x509_verdict: Mutex<Option<Arc<dyn std::any::Any + Send + Sync>>>,
}

impl ConnInfo {
    pub fn client_chain(&self) -> &[CertificateDer<'static>] {
        self.tls
            .as_ref()
            .map(|t| t.client_chain.as_slice())
            .unwrap_or(&[])
    }
}
