//! Parking idle HTTP/1.1 connections: what lets an idle keep-alive
//! connection cost about what nginx's does.
//!
//! hyper gives every HTTP/1 server connection an 8 KB read buffer and an
//! 8 KB write buffer and keeps both for the connection's life, with no
//! setting to release them while it is idle (nginx frees its request
//! buffers as soon as a keep-alive connection goes quiet). So a connection
//! that has been idle for [`PARK_AFTER`] is taken back from hyper
//! (`Connection::without_shutdown`), which frees its buffers, and waits
//! here for the client's next byte with only its TLS stream. When that
//! byte comes, a new hyper connection is made over the same stream, with
//! the byte (and anything hyper had read but not parsed) put back in front
//! of it by [`Prefixed`]. Nothing the client sent is lost, and the client
//! cannot tell: the socket, the TLS session and the keep-alive are the same.

use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// How long an HTTP/1.1 connection stays idle before it is parked. Short
/// enough that a client between two bursts holds no buffers, long enough
/// that back-to-back keep-alive requests never pay for a new hyper
/// connection.
pub const PARK_AFTER: Duration = Duration::from_secs(1);

/// A stream with bytes already read from it put back in front.
pub struct Prefixed<I> {
    prefix: Bytes,
    io: I,
}

impl<I> Prefixed<I> {
    pub fn new(io: I) -> Self {
        Prefixed {
            prefix: Bytes::new(),
            io,
        }
    }

    /// Puts `bytes`, read earlier from this stream, back in front of what
    /// is read next (before anything already put back, which was read from
    /// the stream after them). They are copied: what hyper hands back is a
    /// view of its whole read buffer, which must not outlive it.
    pub fn unread(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let mut joined = Vec::with_capacity(bytes.len() + self.prefix.len());
        joined.extend_from_slice(bytes);
        joined.extend_from_slice(&self.prefix);
        self.prefix = joined.into();
    }
}

impl<I: AsyncRead + Unpin> Prefixed<I> {
    /// Waits for the client's next byte and puts it back: `Ok(false)` when
    /// the client closed instead. One byte, so that a parked connection
    /// holds no read buffer; TLS keeps the rest of the record.
    pub async fn wait_readable(&mut self) -> std::io::Result<bool> {
        if !self.prefix.is_empty() {
            return Ok(true);
        }
        let mut byte = [0u8; 1];
        let n = self.io.read(&mut byte).await?;
        if n == 0 {
            return Ok(false);
        }
        self.prefix = Bytes::copy_from_slice(&byte[..n]);
        Ok(true)
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Prefixed<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            if this.prefix.is_empty() {
                // Release the allocation, not just the view.
                this.prefix = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Prefixed<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn bytes_put_back_come_first_and_in_order() {
        let (client, server) = tokio::io::duplex(64);
        let mut p = Prefixed::new(server);
        let mut client = client;
        client.write_all(b"T /v3 HTTP/1.1\r\n").await.unwrap();
        p.unread(b"GE");
        assert!(
            p.wait_readable().await.unwrap(),
            "a prefix is readable at once"
        );
        let mut got = vec![0u8; 18];
        p.read_exact(&mut got).await.unwrap();
        assert_eq!(got, b"GET /v3 HTTP/1.1\r\n");
    }

    #[tokio::test]
    async fn waiting_takes_one_byte_and_gives_it_back() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut p = Prefixed::new(server);
        client.write_all(b"GET").await.unwrap();
        assert!(p.wait_readable().await.unwrap());
        p.unread(b">");
        let mut got = [0u8; 4];
        p.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b">GET", "what was read earlier comes first");
        drop(client);
        assert!(!p.wait_readable().await.unwrap(), "the client closed");
    }
}
