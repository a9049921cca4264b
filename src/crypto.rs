//! The process-wide crypto provider (aws-lc-rs).
//!
//! Both the TLS front end and the outbound HTTP client build rustls
//! configurations; installing one provider here, below both, means they
//! always agree on it.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

/// The installed provider, installing aws-lc-rs on first use.
pub fn provider() -> Arc<CryptoProvider> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
}
