//! hyper answers an HTTP/1.1 request it cannot parse by itself, before
//! fedgate sees a request: 400 (bad syntax), 414 (request target too long)
//! or 431 (head larger than the buffer), each with an empty body. This
//! wrapper around the connection's byte stream gives those answers the
//! JSON error body every other fedgate error has.
//!
//! hyper writes such an answer only when no response is being written
//! (`Writing::Init` in hyper's `proto/h1/conn.rs`), as the first bytes of a
//! write, with `content-length: 0` and no `content-type`. The wrapper
//! rewrites a write only when all of that holds *and* no request of the
//! connection is open in the pipeline, so a response fedgate or Keystone
//! produced is never touched. HTTP/2 streams are framed and never start
//! with `HTTP/1.`.

use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::http::reply::json_error_body;

/// Called once a hyper answer was given a body, with its status.
pub type OnRewrite = Box<dyn Fn(StatusCode) + Send + Sync>;

pub struct ParseErrorBodies<I> {
    io: I,
    /// Whether the pipeline has no request of this connection open.
    idle: Box<dyn Fn() -> bool + Send + Sync>,
    on_rewrite: OnRewrite,
    /// Rewritten bytes not yet handed to `io`; already reported written.
    pending: Vec<u8>,
    sent: usize,
}

impl<I> ParseErrorBodies<I> {
    pub fn new(io: I, idle: Box<dyn Fn() -> bool + Send + Sync>, on_rewrite: OnRewrite) -> Self {
        ParseErrorBodies {
            io,
            idle,
            on_rewrite,
            pending: Vec::new(),
            sent: 0,
        }
    }
}

/// The reason given for each status hyper answers by itself.
fn reason(status: StatusCode) -> Option<&'static str> {
    Some(match status {
        StatusCode::BAD_REQUEST => "request is not valid HTTP/1.1",
        StatusCode::URI_TOO_LONG => "request target is too long",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "request header fields are too large",
        _ => return None,
    })
}

/// `buf` with its leading response head, if it is one of hyper's bodiless
/// error answers, given a JSON body; `None` otherwise.
pub fn rewrite(buf: &[u8]) -> Option<(StatusCode, Vec<u8>)> {
    if !buf.starts_with(b"HTTP/1.") {
        return None;
    }
    // Every response passes here: its status code (`HTTP/1.1 200`) rules
    // out all but hyper's own errors before the head is searched.
    if buf.get(8) != Some(&b' ') {
        return None;
    }
    reason(StatusCode::from_bytes(buf.get(9..12)?).ok()?)?;
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let code = status_line.split(' ').nth(1)?;
    let status = StatusCode::from_bytes(code.as_bytes()).ok()?;
    let reason = reason(status)?;
    let mut headers = Vec::new();
    let mut empty = false;
    for l in lines {
        let (name, value) = l.split_once(':')?;
        if name.eq_ignore_ascii_case("content-type") {
            return None;
        }
        if name.eq_ignore_ascii_case("content-length") {
            if value.trim() != "0" {
                return None;
            }
            empty = true;
            continue;
        }
        headers.push(l);
    }
    if !empty {
        return None;
    }
    let body = json_error_body(status, reason);
    let mut out = Vec::with_capacity(end + body.len() + 64);
    out.extend_from_slice(status_line.as_bytes());
    out.extend_from_slice(b"\r\n");
    for h in headers {
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"content-type: application/json\r\n");
    out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body.as_bytes());
    out.extend_from_slice(&buf[end + 4..]);
    Some((status, out))
}

impl<I: AsyncWrite + Unpin> ParseErrorBodies<I> {
    /// Hands pending rewritten bytes to `io`.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while self.sent < self.pending.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.pending[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.pending.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }

    /// Takes `buf` as a rewritten answer, if it is one.
    fn take_rewrite(&mut self, buf: &[u8]) -> bool {
        if !buf.starts_with(b"HTTP/1.") || !(self.idle)() {
            return false;
        }
        match rewrite(buf) {
            Some((status, bytes)) => {
                (self.on_rewrite)(status);
                self.pending = bytes;
                self.sent = 0;
                true
            }
            None => false,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for ParseErrorBodies<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for ParseErrorBodies<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        if this.take_rewrite(buf) {
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        if let Some(first) = bufs.iter().find(|b| !b.is_empty())
            && this.take_rewrite(first)
        {
            return Poll::Ready(Ok(first.len()));
        }
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYPER_400: &[u8] = b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\ndate: Thu, 01 Jan 2026 00:00:00 GMT\r\n\r\n";

    #[test]
    fn hypers_answers_get_a_json_body() {
        let (status, out) = rewrite(HYPER_400).unwrap();
        assert_eq!(status, 400);
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\nconnection: close\r\n"));
        assert!(head.contains("content-type: application/json"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let j: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(j["error"]["code"], 400);
        for (line, code) in [
            ("HTTP/1.1 414 URI Too Long", 414),
            ("HTTP/1.1 431 Request Header Fields Too Large", 431),
        ] {
            let raw = format!("{line}\r\ncontent-length: 0\r\n\r\n");
            assert_eq!(rewrite(raw.as_bytes()).unwrap().0, code);
        }
    }

    #[test]
    fn other_responses_are_untouched() {
        for raw in [
            &b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n{}",
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ntransfer-encoding: chunked\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n",
            b"\x00\x00\x12\x04\x00\x00\x00\x00\x00",
            b"abc HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n",
        ] {
            assert!(rewrite(raw).is_none(), "{}", String::from_utf8_lossy(raw));
        }
    }

    #[tokio::test]
    async fn the_stream_carries_the_rewrite_only_when_idle() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use tokio::io::AsyncWriteExt;
        for idle in [true, false] {
            let rewrites = Arc::new(AtomicUsize::new(0));
            let flag = Arc::new(AtomicBool::new(idle));
            let r = rewrites.clone();
            let mut w = ParseErrorBodies::new(
                Vec::new(),
                Box::new(move || flag.load(Ordering::SeqCst)),
                Box::new(move |_| {
                    r.fetch_add(1, Ordering::SeqCst);
                }),
            );
            w.write_all(HYPER_400).await.unwrap();
            w.flush().await.unwrap();
            let written = String::from_utf8(w.io.clone()).unwrap();
            assert_eq!(written.contains("application/json"), idle);
            assert_eq!(rewrites.load(Ordering::SeqCst), usize::from(idle));
        }
    }
}
