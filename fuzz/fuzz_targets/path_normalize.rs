//! The request-path normaliser: any path gives a canonical form or an
//! error, never a panic; the canonical form is canonical (no empty, `.` or
//! `..` segment, no trailing slash), its encoded form decodes to it, and
//! normalising it again changes nothing.
#![no_main]
use fedgate::internal::http::path::normalize;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(n) = normalize(s) else {
        return;
    };
    assert!(n.decoded.starts_with('/'), "{s:?} -> {n:?}");
    if n.decoded != "/" {
        assert!(!n.decoded.ends_with('/'), "{s:?} -> {n:?}");
        for seg in n.decoded[1..].split('/') {
            assert!(!matches!(seg, "" | "." | ".."), "{s:?} -> {n:?}");
        }
    }
    assert!(!n.decoded.contains('\0'));
    let back = percent_decode(&n.raw);
    assert_eq!(back, n.decoded.as_bytes(), "{s:?} -> {n:?}");
    let again = normalize(&n.raw).expect("a canonical path normalises");
    assert_eq!(again, n, "{s:?}: not idempotent");
});

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        if b[i] == b'%' {
            if let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            ) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}
