//! Any bytes as an APEL message (`fedgate accounting validate`): a verdict
//! that agrees with itself, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (_, report) = fedgate::internal::accounting::validate::validate(data);
    assert_eq!(report.valid, report.errors.is_empty());
});
