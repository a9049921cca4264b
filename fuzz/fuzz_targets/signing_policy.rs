//! Any text as a `.signing_policy` file: parse, then match every pattern.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(policies) = fedgate::internal::pki::policy::parse(text) {
        for p in policies {
            for s in &p.subjects {
                let _ = fedgate::internal::pki::policy::glob_match(s, &p.ca);
            }
        }
    }
});
