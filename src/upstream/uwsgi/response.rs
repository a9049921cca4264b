//! Reading uWSGI's answer: an HTTP/1.x response head, then a body framed by
//! Content-Length, chunked encoding, or the end of the connection.

use bytes::{Buf, Bytes, BytesMut};
use thiserror::Error;

/// Largest response head accepted from Keystone.
pub const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 128;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ResponseError {
    #[error("response head is not valid HTTP: {0}")]
    Head(String),
    #[error("response head is larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("invalid chunked encoding")]
    Chunked,
}

/// How the body after the head is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
}

/// A parsed response head.
#[derive(Debug)]
pub struct Head {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub framing: Framing,
}

/// Parses a head from the start of `buf`. `Ok(None)` means more bytes are
/// needed; on success returns the head and its length in bytes.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, ResponseError> {
    // uWSGI writes the request's SERVER_PROTOCOL back in its status line, so
    // an HTTP/2 client's request comes back as `HTTP/2.0 200 OK`, which
    // httparse (HTTP/1.x only) refuses. The version is irrelevant here.
    if let Some(rest) = buf.strip_prefix(b"HTTP/").filter(|r| !r.starts_with(b"1.")) {
        if let Some(sp) = rest.iter().position(|&b| b == b' ') {
            let mut fixed = b"HTTP/1.1".to_vec();
            fixed.extend_from_slice(&rest[sp..]);
            // `fixed` starts with 8 version bytes where `buf` had 5 + sp.
            return parse_head(&fixed).map(|o| o.map(|(h, n)| (h, n + 5 + sp - 8)));
        }
    }
    let mut hs = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut r = httparse::Response::new(&mut hs);
    match r.parse(buf) {
        Ok(httparse::Status::Partial) => {
            if buf.len() > MAX_HEAD {
                Err(ResponseError::HeadTooLarge)
            } else {
                Ok(None)
            }
        }
        Ok(httparse::Status::Complete(n)) => {
            let status = r
                .code
                .ok_or_else(|| ResponseError::Head("no status".into()))?;
            let mut framing = Framing::UntilClose;
            let mut headers = Vec::with_capacity(r.headers.len());
            for h in r.headers.iter() {
                if h.name.eq_ignore_ascii_case("transfer-encoding") {
                    let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
                    if v.trim().ends_with("chunked") {
                        framing = Framing::Chunked;
                    }
                } else if h.name.eq_ignore_ascii_case("content-length")
                    && framing != Framing::Chunked
                {
                    let v = std::str::from_utf8(h.value)
                        .ok()
                        .and_then(|s| s.trim().parse::<u64>().ok());
                    match v {
                        Some(len) => framing = Framing::Length(len),
                        None => return Err(ResponseError::Head("invalid Content-Length".into())),
                    }
                }
                headers.push((h.name.to_string(), h.value.to_vec()));
            }
            // Responses that never have a body, whatever the headers say.
            if status == 204 || status == 304 || (100..200).contains(&status) {
                framing = Framing::Length(0);
            }
            Ok(Some((
                Head {
                    status,
                    headers,
                    framing,
                },
                n,
            )))
        }
        Err(e) => Err(ResponseError::Head(e.to_string())),
    }
}

/// Incremental decoder for `Transfer-Encoding: chunked`.
#[derive(Debug, Default)]
pub struct ChunkedDecoder {
    state: ChunkState,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    Data(u64),
    DataEnd,
    Trailers,
    Done,
}

/// One step of chunked decoding.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk {
    Data(Bytes),
    NeedMore,
    Done,
}

impl ChunkedDecoder {
    /// Consumes what it can from `buf`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Chunk, ResponseError> {
        loop {
            match self.state {
                ChunkState::Done => return Ok(Chunk::Done),
                ChunkState::Size => {
                    let Some(eol) = find_crlf(buf) else {
                        return if buf.len() > 1024 {
                            Err(ResponseError::Chunked)
                        } else {
                            Ok(Chunk::NeedMore)
                        };
                    };
                    let line =
                        std::str::from_utf8(&buf[..eol]).map_err(|_| ResponseError::Chunked)?;
                    let hex = line.split(';').next().unwrap_or("").trim();
                    let size = u64::from_str_radix(hex, 16).map_err(|_| ResponseError::Chunked)?;
                    buf.advance(eol + 2);
                    self.state = if size == 0 {
                        ChunkState::Trailers
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Chunk::NeedMore);
                    }
                    let n = (left as usize).min(buf.len());
                    let data = buf.split_to(n).freeze();
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left)
                    };
                    return Ok(Chunk::Data(data));
                }
                ChunkState::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Chunk::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(ResponseError::Chunked);
                    }
                    buf.advance(2);
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailers => {
                    let Some(eol) = find_crlf(buf) else {
                        return if buf.len() > 8192 {
                            Err(ResponseError::Chunked)
                        } else {
                            Ok(Chunk::NeedMore)
                        };
                    };
                    buf.advance(eol + 2);
                    if eol == 0 {
                        self.state = ChunkState::Done;
                    }
                }
            }
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_with_length() {
        let raw = b"HTTP/1.1 201 CREATED\r\nContent-Type: application/json\r\nX-Subject-Token: gAAA\r\nContent-Length: 2\r\n\r\n{}";
        let (h, n) = parse_head(raw).unwrap().unwrap();
        assert_eq!(h.status, 201);
        assert_eq!(h.framing, Framing::Length(2));
        assert_eq!(&raw[n..], b"{}");
        assert_eq!(
            h.headers[1],
            ("X-Subject-Token".to_string(), b"gAAA".to_vec())
        );
    }

    #[test]
    fn http2_status_line_from_uwsgi() {
        let raw = b"HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        let (h, n) = parse_head(raw).unwrap().unwrap();
        assert_eq!(h.status, 200);
        assert_eq!(&raw[n..], b"{}");
        let raw = b"HTTP/2 401 UNAUTHORIZED\r\n\r\n";
        let (h, n) = parse_head(raw).unwrap().unwrap();
        assert_eq!((h.status, n), (401, raw.len()));
        assert!(parse_head(b"HTTP/2.0 200 OK\r\nA: b").unwrap().is_none());
    }

    #[test]
    fn partial_and_garbage() {
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nA: b").unwrap().is_none());
        assert!(parse_head(b"garbage\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
        let (h, _) = parse_head(b"HTTP/1.1 200 OK\r\n\r\n").unwrap().unwrap();
        assert_eq!(h.framing, Framing::UntilClose);
        let (h, _) = parse_head(b"HTTP/1.1 204 No Content\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Length(0));
    }

    #[test]
    fn chunked_across_splits() {
        let wire = b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nTrailer: x\r\n\r\n";
        // Feed one byte at a time: every split point must work.
        let mut d = ChunkedDecoder::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for &b in wire.iter() {
            buf.extend_from_slice(&[b]);
            loop {
                match d.decode(&mut buf).unwrap() {
                    Chunk::Data(x) => out.extend_from_slice(&x),
                    Chunk::NeedMore => break,
                    Chunk::Done => break,
                }
            }
        }
        assert!(d.is_done());
        assert_eq!(out, b"Wikipedia");
    }

    #[test]
    fn chunked_rejects_bad_size() {
        let mut d = ChunkedDecoder::default();
        let mut buf = BytesMut::from(&b"zz\r\n"[..]);
        assert_eq!(d.decode(&mut buf), Err(ResponseError::Chunked));
        let mut d = ChunkedDecoder::default();
        let mut buf = BytesMut::from(&b"1\r\nabc"[..]);
        assert_eq!(
            d.decode(&mut buf).unwrap(),
            Chunk::Data(Bytes::from_static(b"a"))
        );
        assert_eq!(d.decode(&mut buf), Err(ResponseError::Chunked));
    }
}
