//! Any bytes as a queued element the AMS sender reads (`fedgate
//! accounting send`): the topic choice and the S/MIME text canonical form
//! never panic, and the canonical form holds no bare LF.
#![no_main]
use fedgate::internal::accounting::{send, smime_sign};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = send::topic_kind(data);
    let c = smime_sign::canonical_text(data);
    assert!(c.starts_with(b"Content-Type: text/plain\r\n\r\n"));
    for (i, &b) in c.iter().enumerate() {
        if b == b'\n' {
            assert!(i > 0 && c[i - 1] == b'\r', "bare LF at {i}");
        }
    }
});
