//! Any text as a `.namespaces` file: parse (regexes compile within their
//! size limit or are refused), then match each rule against its issuer.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(rules) = fedgate::internal::pki::namespaces::parse(text) {
        for r in rules {
            let _ = r.regex.is_match(r.issuer.as_deref().unwrap_or("/CN=x"));
        }
    }
});
