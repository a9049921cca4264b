//! uwsgi packet framing: `0x00, u16le(size), 0x00` followed by `size` bytes
//! of `u16le(klen) key u16le(vlen) value` pairs.
//!
//! The protocol caps the whole vars block at 65535 bytes; uWSGI must run
//! with `buffer-size = 65535` to accept that much (its default is 4096).

use thiserror::Error;

use super::super::environ::{Environ, Sink};

/// Largest vars block the 16-bit size field can describe.
pub const MAX_VARS: usize = u16::MAX as usize;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("uwsgi vars block would be {0} bytes, over the limit of 65535")]
    TooLarge(usize),
    #[error("uwsgi packet is truncated")]
    Truncated,
    #[error("uwsgi packet has modifier {0}/{1}; only 0/0 (WSGI request) is supported")]
    Modifier(u8, u8),
}

/// Encodes the packet header and vars block for `env`.
pub fn encode(env: &Environ) -> Result<Vec<u8>, FrameError> {
    let mut p = Packet::with_capacity(env.iter().map(|(k, v)| 4 + k.len() + v.len()).sum());
    for (k, v) in env {
        p.push(|b| b.extend_from_slice(k), |b| b.extend_from_slice(v));
    }
    p.finish()
}

/// A packet being written: the header, then each variable as its key and
/// value are written into the one buffer (the environ is never a list of
/// its own). Lengths are patched in once each string is written.
pub(crate) struct Packet {
    buf: Vec<u8>,
    /// A key or value over 65535 bytes was written.
    oversized: bool,
}

impl Packet {
    /// `vars`: the expected size of the vars block (the buffer grows past it).
    pub(crate) fn with_capacity(vars: usize) -> Packet {
        let mut buf = Vec::with_capacity(4 + vars);
        buf.extend_from_slice(&[0; 4]);
        Packet {
            buf,
            oversized: false,
        }
    }

    /// Writes a `u16le` length placeholder, then the string from `f`, then
    /// the length.
    fn string(&mut self, f: impl FnOnce(&mut Vec<u8>)) {
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0; 2]);
        f(&mut self.buf);
        let n = self.buf.len() - at - 2;
        if n > MAX_VARS {
            self.oversized = true;
        }
        self.buf[at..at + 2].copy_from_slice(&(n as u16).to_le_bytes());
    }

    /// The packet, header included; the body follows it on the wire.
    pub(crate) fn finish(mut self) -> Result<Vec<u8>, FrameError> {
        let size = self.buf.len() - 4;
        if size > MAX_VARS || self.oversized {
            return Err(FrameError::TooLarge(size));
        }
        self.buf[1..3].copy_from_slice(&(size as u16).to_le_bytes());
        Ok(self.buf)
    }
}

impl Sink for Packet {
    fn push(&mut self, key: impl FnOnce(&mut Vec<u8>), value: impl FnOnce(&mut Vec<u8>)) {
        self.string(key);
        self.string(value);
    }
}

/// Decodes a packet header plus vars block from the start of `buf`.
/// Returns the environ and the number of bytes consumed (the body follows).
pub fn decode(buf: &[u8]) -> Result<(Environ, usize), FrameError> {
    if buf.len() < 4 {
        return Err(FrameError::Truncated);
    }
    if buf[0] != 0 || buf[3] != 0 {
        return Err(FrameError::Modifier(buf[0], buf[3]));
    }
    let size = u16::from_le_bytes([buf[1], buf[2]]) as usize;
    let vars = buf.get(4..4 + size).ok_or(FrameError::Truncated)?;
    let mut env = Vec::new();
    let mut rest = vars;
    while !rest.is_empty() {
        let (k, r) = take(rest)?;
        let (v, r) = take(r)?;
        env.push((k.to_vec(), v.to_vec()));
        rest = r;
    }
    Ok((env, 4 + size))
}

fn take(buf: &[u8]) -> Result<(&[u8], &[u8]), FrameError> {
    if buf.len() < 2 {
        return Err(FrameError::Truncated);
    }
    let n = u16::from_le_bytes([buf[0], buf[1]]) as usize;
    let s = buf.get(2..2 + n).ok_or(FrameError::Truncated)?;
    Ok((s, &buf[2 + n..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Environ {
        pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn known_bytes() {
        let e = env(&[("A", "bc")]);
        assert_eq!(
            encode(&e).unwrap(),
            vec![0, 7, 0, 0, 1, 0, b'A', 2, 0, b'b', b'c']
        );
    }

    #[test]
    fn round_trip() {
        let e = env(&[
            ("REQUEST_METHOD", "GET"),
            ("OIDC-eduperson_entitlement", "a;b"),
            ("EMPTY", ""),
        ]);
        let mut p = encode(&e).unwrap();
        p.extend_from_slice(b"body");
        let (d, used) = decode(&p).unwrap();
        assert_eq!(d, e);
        assert_eq!(&p[used..], b"body");
    }

    #[test]
    fn size_limit_is_exact() {
        // 4 bytes of lengths + 1-byte key + value fills the block exactly.
        let e = vec![(b"K".to_vec(), vec![b'v'; MAX_VARS - 5])];
        assert_eq!(encode(&e).unwrap().len(), 4 + MAX_VARS);
        let e = vec![(b"K".to_vec(), vec![b'v'; MAX_VARS - 4])];
        assert_eq!(encode(&e), Err(FrameError::TooLarge(MAX_VARS + 1)));
    }

    #[test]
    fn truncated_and_modifiers() {
        assert_eq!(decode(&[0, 1]), Err(FrameError::Truncated));
        assert_eq!(decode(&[0, 5, 0, 0, 1]), Err(FrameError::Truncated));
        assert_eq!(
            decode(&[0, 3, 0, 0, 5, 0, b'x']),
            Err(FrameError::Truncated)
        );
        assert_eq!(decode(&[5, 0, 0, 0]), Err(FrameError::Modifier(5, 0)));
    }
}
