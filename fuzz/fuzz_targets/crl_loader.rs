//! A `.rN` file as fetch-crl might leave it (PEM or DER, possibly
//! truncated): the loader returns CRLs or an error, never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(crls) = fedgate::internal::pki::crl::Crl::load(data) {
        for c in crls {
            let _ = c.expired(1_800_000_000, 0);
            let _ = c.lists(&[1, 2, 3]);
        }
    }
});
