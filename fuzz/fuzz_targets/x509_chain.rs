//! Arbitrary bytes as a client chain (2-byte length-prefixed DER blobs, or
//! a PEM proxy file): parsing and path validation return a verdict, never
//! panic.
#![no_main]
use std::sync::{Arc, OnceLock};

use fedgate::internal::pki::{TrustStore, Validator, X509Config};
use libfuzzer_sys::fuzz_target;

fn validator() -> &'static Validator {
    static V: OnceLock<Validator> = OnceLock::new();
    V.get_or_init(|| Validator::new(Arc::new(TrustStore::default()), X509Config::default()))
}

fuzz_target!(|data: &[u8]| {
    let _ = fedgate::internal::pki::cert::certs_from_pem(data);
    let mut chain = Vec::new();
    let mut rest = data;
    while rest.len() >= 2 && chain.len() < 8 {
        let n = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        rest = &rest[2..];
        let take = n.min(rest.len());
        chain.push(rest[..take].to_vec());
        rest = &rest[take..];
    }
    for c in &chain {
        let _ = fedgate::internal::pki::cert::Cert::parse(c);
    }
    let v = validator().validate(&chain, 1_800_000_000);
    let _ = fedgate::internal::pki::gridsite::env(&v, None, None, 1_800_000_000);
});
