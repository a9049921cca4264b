//! The PROXY protocol header (v1 text, v2 binary) a load balancer sends
//! before TLS: any bytes give a header or an error, never a panic; the
//! reader never asks for more than the size bounds, never consumes a byte
//! past the header, and a v1 header is never longer than 107 bytes.
#![no_main]
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use fedgate::internal::proxy_header::{self, Step, V1_MAX, V2_MAX};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The pure framing, on every prefix the reader would hold.
    if let Ok(Step::ReadTo(n)) = proxy_header::step(data) {
        assert!(n > data.len() && n <= V2_MAX, "{n}");
    }
    // The socket reader, on bytes that are all there: reading from a slice
    // never waits, so one poll finishes it.
    let mut rest = data;
    let out = {
        let mut read = pin!(proxy_header::read(&mut rest));
        let Poll::Ready(out) = read.as_mut().poll(&mut Context::from_waker(Waker::noop())) else {
            panic!("a slice reader never waits");
        };
        out
    };
    if let Ok(h) = out {
        assert_eq!(h.len + rest.len(), data.len(), "consumed exactly the header");
        assert!(h.len <= V2_MAX);
        if data.starts_with(b"PROXY ") {
            assert!(h.len <= V1_MAX);
            assert!(data[..h.len].ends_with(b"\r\n"));
        }
    }
});
