//! What an OCI registry (or anything answering in its place) sends the
//! image plugin: `WWW-Authenticate` challenges, `Link` headers, manifests
//! and their annotations, and the first bytes of an image whose format is
//! detected. Each parser returns a value or an error, never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

use fedgate::internal::images::{format, registry};

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = registry::parse_challenge(s);
        if let Ok(v) = http::HeaderValue::from_str(s) {
            let mut h = http::HeaderMap::new();
            h.insert(http::header::LINK, v);
            let base = url::Url::parse("https://registry.example/v2/_catalog").unwrap();
            let _ = registry::next_link(&h, &base);
        }
    }
    if let Ok(m) = registry::Manifest::parse(data) {
        let _ = registry::artifact_candidate(
            "https://registry.example",
            "registry.example",
            "p/r",
            "t",
            "sha256:00",
            &m,
        );
    }
    let split = data.len() / 2;
    let _ = format::detect_bytes(&data[..split], &data[split..]);
});
