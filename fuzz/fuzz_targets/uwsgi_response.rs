//! uWSGI's answer is untrusted bytes from the network: head parsing and
//! chunked decoding must never panic, whatever the split points.
#![no_main]
use bytes::BytesMut;
use fedgate::internal::uwsgi::response::{Chunk, ChunkedDecoder, parse_head};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_head(data);
    let split = data.first().copied().unwrap_or(1).max(1) as usize;
    let mut d = ChunkedDecoder::default();
    let mut buf = BytesMut::new();
    for piece in data.chunks(split) {
        buf.extend_from_slice(piece);
        loop {
            match d.decode(&mut buf) {
                Ok(Chunk::Data(_)) => continue,
                Ok(Chunk::NeedMore) | Ok(Chunk::Done) | Err(_) => break,
            }
        }
    }
});
