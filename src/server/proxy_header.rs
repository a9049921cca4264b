//! The PROXY protocol header (haproxy's `send-proxy` v1 text and
//! `send-proxy-v2` binary) that a load balancer in TCP mode puts before
//! the TLS bytes, so that fedgate learns the client's address although the
//! TCP peer is the balancer. TLS passthrough is the only way client
//! certificates reach fedgate through a balancer, and then this header is
//! the only place the client address can travel.
//!
//! The `ppp` crate parses the header; this module frames it on the socket:
//! it reads exactly the header's bytes and never one more (the TLS
//! ClientHello follows and belongs to rustls), bounds its size, and turns
//! the result into the address fedgate uses. The version is detected from
//! the first bytes. The caller bounds the time (the handshake timeout).

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncReadExt};

/// The v2 signature (12 bytes), then version/command, family/protocol and
/// the 2-byte length of what follows.
const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
const V2_FIXED: usize = 16;
/// The longest v1 line the specification allows, CRLF included.
pub const V1_MAX: usize = 107;
/// The largest v2 header accepted. The format allows 16 + 65535 bytes;
/// addresses take at most 216 and the TLVs haproxy or a cloud balancer
/// sends (ALPN, authority, unique id, SSL summary) a few hundred, so more
/// is refused rather than buffered for an unauthenticated peer.
pub const V2_MAX: usize = 4096;
/// Bytes read before the version is known: the shortest v1 header
/// (`PROXY UNKNOWN\r\n`) is 15 bytes, so reading them cannot run past any
/// valid header.
const FIRST_READ: usize = 15;

/// Why a connection's PROXY header was refused; the connection is closed.
#[derive(Debug, thiserror::Error)]
pub enum ProxyHeaderError {
    #[error("the connection does not start with a PROXY protocol header (v1 or v2)")]
    NotProxy,
    #[error("PROXY v1 header longer than {V1_MAX} bytes or without CRLF")]
    V1TooLong,
    #[error("PROXY v2 header of {0} bytes, more than the {V2_MAX} accepted")]
    V2TooLong(usize),
    #[error("bad PROXY v1 header: {0}")]
    V1(String),
    #[error("bad PROXY v2 header: {0}")]
    V2(String),
    #[error("reading the PROXY header: {0}")]
    Io(#[from] std::io::Error),
}

/// What a complete header says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyHeader {
    /// The client's address; `None` when the balancer speaks for itself
    /// (v2 LOCAL: its health checks) or does not know it (v1 UNKNOWN, v2
    /// UNSPEC or UNIX): then the TCP peer is the client.
    pub source: Option<SocketAddr>,
    /// The header's length in bytes.
    pub len: usize,
}

impl ProxyHeader {
    /// The address this connection is from: the header's source, else the
    /// TCP peer.
    pub fn client(&self, peer: SocketAddr) -> SocketAddr {
        self.source.unwrap_or(peer)
    }
}

/// The next step of framing `buf`, the bytes read so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Read until `buf` holds this many bytes.
    ReadTo(usize),
    Done(ProxyHeader),
}

/// Frames and parses the header from its first bytes; pure, so that the
/// fuzz target and the tests drive it without a socket.
pub fn step(buf: &[u8]) -> Result<Step, ProxyHeaderError> {
    if buf.len() < FIRST_READ {
        return Ok(Step::ReadTo(FIRST_READ));
    }
    if buf.starts_with(V2_SIGNATURE) {
        if buf.len() < V2_FIXED {
            return Ok(Step::ReadTo(V2_FIXED));
        }
        let total = V2_FIXED + u16::from_be_bytes([buf[14], buf[15]]) as usize;
        if total > V2_MAX {
            return Err(ProxyHeaderError::V2TooLong(total));
        }
        if buf.len() < total {
            return Ok(Step::ReadTo(total));
        }
        return parse_v2(&buf[..total]).map(Step::Done);
    }
    if buf.starts_with(b"PROXY ") {
        // One byte at a time up to the CRLF: the line's length is unknown
        // and the bytes after it are TLS.
        return match buf.iter().position(|&b| b == b'\r') {
            None if buf.len() >= V1_MAX => Err(ProxyHeaderError::V1TooLong),
            None => Ok(Step::ReadTo(buf.len() + 1)),
            Some(cr) if cr + 1 == buf.len() => Ok(Step::ReadTo(buf.len() + 1)),
            Some(cr) if buf[cr + 1] == b'\n' && cr + 2 <= V1_MAX => {
                parse_v1(&buf[..cr + 2]).map(Step::Done)
            }
            Some(_) => Err(ProxyHeaderError::V1("CR not followed by LF".into())),
        };
    }
    Err(ProxyHeaderError::NotProxy)
}

fn parse_v1(line: &[u8]) -> Result<ProxyHeader, ProxyHeaderError> {
    use ppp::v1::{Addresses, Header};
    let h = Header::try_from(line).map_err(|e| ProxyHeaderError::V1(e.to_string()))?;
    if h.header.len() != line.len() {
        return Err(ProxyHeaderError::V1("trailing bytes".into()));
    }
    let source = match h.addresses {
        Addresses::Unknown => None,
        Addresses::Tcp4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        Addresses::Tcp6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
    };
    Ok(ProxyHeader {
        source,
        len: line.len(),
    })
}

fn parse_v2(bytes: &[u8]) -> Result<ProxyHeader, ProxyHeaderError> {
    use ppp::v2::{Addresses, Command, Header};
    let h = Header::try_from(bytes).map_err(|e| ProxyHeaderError::V2(e.to_string()))?;
    // TLVs are not read: nothing in them is needed, and haproxy's are
    // informational. `ppp` has checked that the addresses fit the length.
    let source = match (h.command, h.addresses) {
        (Command::Local, _) => None,
        (Command::Proxy, Addresses::IPv4(a)) => {
            Some(SocketAddr::from((a.source_address, a.source_port)))
        }
        (Command::Proxy, Addresses::IPv6(a)) => {
            Some(SocketAddr::from((a.source_address, a.source_port)))
        }
        (Command::Proxy, Addresses::Unspecified | Addresses::Unix(_)) => None,
    };
    Ok(ProxyHeader {
        source,
        len: bytes.len(),
    })
}

/// Reads one header from `r`, exactly its bytes. The caller bounds the
/// time: a peer that sends nothing would otherwise hold the connection.
pub async fn read<R: AsyncRead + Unpin>(r: &mut R) -> Result<ProxyHeader, ProxyHeaderError> {
    let mut buf = Vec::with_capacity(FIRST_READ);
    loop {
        match step(&buf)? {
            Step::ReadTo(n) => {
                let had = buf.len();
                buf.resize(n, 0);
                r.read_exact(&mut buf[had..]).await?;
            }
            Step::Done(h) => return Ok(h),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ppp::v2::{Builder, Command, Protocol, Version};

    /// Runs `read` on bytes; returns the header and what is left unread.
    fn read_all(bytes: &[u8]) -> (Result<ProxyHeader, ProxyHeaderError>, Vec<u8>) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut r = bytes;
        let h = rt.block_on(read(&mut r));
        (h, r.to_vec())
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn v2(command: Command, src: &str, dst: &str, tlvs: &[(u8, &[u8])]) -> Vec<u8> {
        let mut b = Builder::with_addresses(
            Version::Two | command,
            Protocol::Stream,
            (addr(src), addr(dst)),
        );
        for (k, v) in tlvs {
            b = b.write_tlv(*k, v).unwrap();
        }
        b.build().unwrap()
    }

    const TLS: &[u8] = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03rest-of-hello";

    #[test]
    fn v1_tcp4_and_tcp6_give_the_source_and_leave_the_tls_bytes() {
        for (line, want) in [
            (
                &b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 443\r\n"[..],
                "192.0.2.7:40000",
            ),
            (
                b"PROXY TCP6 2001:db8::7 2001:db8::1 40001 443\r\n",
                "[2001:db8::7]:40001",
            ),
        ] {
            let (h, rest) = read_all(&[line, TLS].concat());
            let h = h.unwrap();
            assert_eq!(h.source, Some(addr(want)));
            assert_eq!(h.len, line.len());
            assert_eq!(rest, TLS, "not one TLS byte is consumed");
        }
    }

    #[test]
    fn v1_unknown_means_the_tcp_peer() {
        let (h, rest) = read_all(&[&b"PROXY UNKNOWN\r\n"[..], TLS].concat());
        let h = h.unwrap();
        assert_eq!(h.source, None);
        assert_eq!(h.client(addr("127.0.0.9:1")), addr("127.0.0.9:1"));
        assert_eq!(rest, TLS);
    }

    #[test]
    fn v2_proxy_with_tlvs_gives_the_source_and_leaves_the_tls_bytes() {
        // ALPN and authority TLVs, as haproxy sends with options.
        let hdr = v2(
            Command::Proxy,
            "192.0.2.7:40000",
            "198.51.100.1:443",
            &[(0x01, b"h2"), (0x02, b"keystone.example.org")],
        );
        let (h, rest) = read_all(&[&hdr[..], TLS].concat());
        let h = h.unwrap();
        assert_eq!(h.source, Some(addr("192.0.2.7:40000")));
        assert_eq!(h.len, hdr.len());
        assert_eq!(rest, TLS);
        let hdr6 = v2(Command::Proxy, "[2001:db8::7]:5", "[2001:db8::1]:443", &[]);
        let (h, rest) = read_all(&[&hdr6[..], TLS].concat());
        assert_eq!(h.unwrap().source, Some(addr("[2001:db8::7]:5")));
        assert_eq!(rest, TLS);
    }

    #[test]
    fn v2_local_is_the_balancer_itself() {
        let hdr = v2(Command::Local, "192.0.2.7:1", "198.51.100.1:443", &[]);
        let (h, rest) = read_all(&[&hdr[..], TLS].concat());
        assert_eq!(h.unwrap().source, None);
        assert_eq!(rest, TLS);
        // LOCAL with no addresses at all, as haproxy's health checks send.
        let bare = [V2_SIGNATURE, &[0x20, 0x00, 0x00, 0x00][..]].concat();
        let (h, rest) = read_all(&[&bare[..], TLS].concat());
        assert_eq!(
            h.unwrap(),
            ProxyHeader {
                source: None,
                len: 16
            }
        );
        assert_eq!(rest, TLS);
    }

    #[test]
    fn a_tls_hello_or_http_without_header_is_refused() {
        for bytes in [TLS, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"] {
            assert!(matches!(read_all(bytes).0, Err(ProxyHeaderError::NotProxy)));
        }
    }

    #[test]
    fn garbled_or_oversized_headers_are_refused() {
        let long = [&b"PROXY TCP4 "[..], &[b'1'; 200]].concat();
        assert!(matches!(
            read_all(&long).0,
            Err(ProxyHeaderError::V1TooLong)
        ));
        for bad in [
            &b"PROXY TCP4 192.0.2.7 198.51.100.1 40000\r\n"[..],
            b"PROXY TCP4 999.0.2.7 198.51.100.1 40000 443\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 443\rX",
            b"PROXY TCP5 192.0.2.7 198.51.100.1 40000 443\r\n",
        ] {
            assert!(
                matches!(read_all(bad).0, Err(ProxyHeaderError::V1(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // v2 announcing 65535 bytes: refused before reading them.
        let huge = [V2_SIGNATURE, &[0x21, 0x11, 0xff, 0xff][..]].concat();
        assert!(matches!(
            read_all(&huge).0,
            Err(ProxyHeaderError::V2TooLong(65551))
        ));
        // v2 with version 1 in the version nibble, and with too short a
        // length for IPv4 addresses.
        for bad in [
            [V2_SIGNATURE, &[0x11, 0x11, 0x00, 0x0c], &[0; 12]].concat(),
            [V2_SIGNATURE, &[0x21, 0x11, 0x00, 0x04], &[0; 4]].concat(),
        ] {
            assert!(matches!(read_all(&bad).0, Err(ProxyHeaderError::V2(_))));
        }
    }

    #[test]
    fn a_peer_that_closes_mid_header_is_an_error_not_a_hang() {
        for part in [
            &b"PROXY TCP4 192.0.2.7"[..],
            &b"PROX"[..],
            &v2(Command::Proxy, "192.0.2.7:1", "198.51.100.1:443", &[])[..20],
        ] {
            assert!(matches!(read_all(part).0, Err(ProxyHeaderError::Io(_))));
        }
    }
}
