//! A HEPiX image list and its S/MIME envelope as a hostile source might
//! serve them: the parsers return a value or an error, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = fedgate::internal::images::list::parse(data);
    if let Ok(fedgate::internal::images::smime::Envelope::Detached { content, .. }) =
        fedgate::internal::images::smime::parse(data)
    {
        let _ = fedgate::internal::images::smime::canonical(&content);
    }
    let _ = fedgate::internal::images::smime::json_body(data);
});
