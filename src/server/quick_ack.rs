//! Immediate TCP acknowledgements while the TLS handshake is read.
//!
//! A client that leaves Nagle's algorithm on (ab; Java's sockets by
//! default) and sends a handshake flight larger than its TLS library's
//! 4 kB write buffer, as a GSI proxy chain with a VOMS AC is, writes it in
//! two parts and holds the second until the first is acknowledged. The
//! first part is not a whole TLS record, so the server has nothing to
//! answer, and Linux delays its ACK by up to 40 ms: every such handshake
//! waited that long, with Apache as with fedgate (docs/performance.md).
//! Setting `TCP_QUICKACK` after each read of the handshake sends the
//! pending ACK at once. Once the handshake is done the socket is left to
//! the kernel's own choice (delayed ACKs ride on responses).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A TCP stream that acknowledges what it reads at once until
/// [`HandshakeAcks::handshake_done`].
pub struct HandshakeAcks {
    io: TcpStream,
    active: bool,
}

impl HandshakeAcks {
    pub fn new(io: TcpStream) -> Self {
        HandshakeAcks { io, active: true }
    }

    /// Back to the kernel's delayed ACKs.
    pub fn handshake_done(&mut self) {
        self.active = false;
    }

    #[cfg(test)]
    fn active(&self) -> bool {
        self.active
    }
}

/// Sends the ACK the kernel may be holding back (`TCP_QUICKACK` flushes it
/// when set), where the platform has the option.
fn ack_now(io: &TcpStream) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let _ = socket2::SockRef::from(io).set_tcp_quickack(true);
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = io;
}

impl AsyncRead for HandshakeAcks {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        if this.active && matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            ack_now(&this.io);
        }
        r
    }
}

impl AsyncWrite for HandshakeAcks {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The wrapper is a transparent stream, in both directions, before
    /// and after the handshake.
    #[tokio::test]
    async fn carries_bytes_both_ways() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(b"hello").await.unwrap();
            let mut b = [0u8; 5];
            c.read_exact(&mut b).await.unwrap();
            b
        });
        let (s, _) = l.accept().await.unwrap();
        let mut s = HandshakeAcks::new(s);
        let mut b = [0u8; 5];
        s.read_exact(&mut b).await.unwrap();
        assert_eq!(&b, b"hello");
        s.handshake_done();
        assert!(!s.active());
        s.write_all(b"world").await.unwrap();
        assert_eq!(&client.await.unwrap(), b"world");
    }
}
