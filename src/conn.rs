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

/// The application protocol ALPN chose. fedgate offers only these two, so
/// nothing else can be negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    /// The client sent no ALPN: HTTP/1.1 or HTTP/2 with prior knowledge.
    None,
    Http11,
    H2,
}

/// What the handshake settled, kept for the connection's life.
///
/// Kept compact, with nothing derived ahead of need: every idle keep-alive
/// connection holds one, and mod_ssl's values of the connection are built
/// only when a request is encoded for uWSGI
/// (`crate::tls::connection_modssl`). Built
/// eagerly, as strings, they were about 2 KB of heap per connection.
#[derive(Debug)]
pub struct TlsInfo {
    /// "TLSv1.2" or "TLSv1.3", as mod_ssl's `SSL_PROTOCOL`.
    pub version: &'static str,
    /// The negotiated cipher suite.
    pub suite: Option<rustls::CipherSuite>,
    /// Whether the session was resumed (mod_ssl's `SSL_SESSION_RESUMED`).
    pub resumed: bool,
    /// The SNI name the client sent.
    pub sni: Option<Box<str>>,
    pub alpn: Alpn,
    /// mod_ssl's `SSL_SERVER_*` values of the host certificate, shared by
    /// every connection of one configuration.
    pub server_modssl: std::sync::Arc<[(String, String)]>,
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
