//! X-Forwarded-* headers, from which Keystone builds its URLs when it sits
//! behind a proxy (oslo.middleware's HTTPProxyToWSGI).
//!
//! Values a client sends are replaced, unless the client is a configured
//! trusted proxy, in which case its X-Forwarded-For chain is extended. An
//! untrusted client's other `X-Forwarded-*` headers (oslo.middleware reads
//! `X-Forwarded-Prefix` into SCRIPT_NAME, so `//evil.example/x` would land
//! in every link Keystone builds) and its RFC 7239 `Forwarded` header,
//! which oslo.middleware also reads, are dropped for the same reason.

use std::cell::RefCell;
use std::net::IpAddr;

use http::HeaderMap;
use http::header::{FORWARDED, HeaderName, HeaderValue};

use crate::conn::ConnInfo;

/// An address block, e.g. `10.0.0.0/8` or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a.parse::<IpAddr>().ok()?, Some(b.parse::<u8>().ok()?)),
            None => (s.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = bits.unwrap_or(max);
        (bits <= max).then_some(Cidr { net: addr, bits })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.net, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            _ => ip,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), self.bits),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), self.bits),
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let full = (bits / 8) as usize;
    if a[..full] != b[..full] {
        return false;
    }
    let rem = bits % 8;
    rem == 0 || (a[full] >> (8 - rem)) == (b[full] >> (8 - rem))
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Whether `ip` is one of the trusted proxies.
pub fn is_trusted(ip: IpAddr, trusted: &[Cidr]) -> bool {
    let ip = unmap(ip);
    trusted.iter().any(|c| c.contains(ip))
}

/// The names this module sets, parsed once: a name given as `&str` is
/// parsed again on every use, and every forwarded request sets four.
static XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
static XF_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static XF_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static XF_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");

/// Sets X-Forwarded-For/Proto/Host/Port for the request. `host` is the
/// request's Host value ([`crate::http::host::request_host_value`]).
pub fn apply(
    headers: &mut HeaderMap,
    conn: &ConnInfo,
    host: Option<HeaderValue>,
    trusted: &[Cidr],
) {
    let peer = unmap(conn.peer.ip());
    let from_trusted = is_trusted(peer, trusted);
    if from_trusted {
        let prior: Vec<&str> = headers
            .get_all(&XFF)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let ip = crate::logging::Ip(peer).to_string();
        let chain = if prior.is_empty() {
            ip
        } else {
            format!("{}, {ip}", prior.join(", "))
        };
        set(headers, &XFF, chain.into_bytes());
    } else {
        headers.remove(FORWARDED);
        let theirs: Vec<_> = headers
            .keys()
            .filter(|k| is_forwarding_header(k.as_str()))
            .cloned()
            .collect();
        for k in theirs {
            headers.remove(k);
        }
        headers.insert(XFF.clone(), peer_value(peer));
    }
    if !(from_trusted && headers.contains_key(&XF_PROTO)) {
        let proto = if conn.tls.is_some() { "https" } else { "http" };
        headers.insert(XF_PROTO.clone(), HeaderValue::from_static(proto));
    }
    if !(from_trusted && headers.contains_key(&XF_HOST)) {
        match host {
            Some(h) => {
                headers.insert(XF_HOST.clone(), h);
            }
            None => {
                headers.remove(&XF_HOST);
            }
        }
    }
    if !(from_trusted && headers.contains_key(&XF_PORT)) {
        headers.insert(XF_PORT.clone(), port_value(conn.local.port()));
    }
}

thread_local! {
    /// The last peer address and listening port this thread wrote as
    /// header values. A keep-alive connection's requests all come from one
    /// address to one port and are served on one thread, so nearly every
    /// request finds its values here and clones them (a reference count)
    /// rather than formatting and validating them again.
    static PEER: RefCell<Option<(IpAddr, HeaderValue)>> = const { RefCell::new(None) };
    static PORT: RefCell<Option<(u16, HeaderValue)>> = const { RefCell::new(None) };
}

/// `ip` as an X-Forwarded-For value.
fn peer_value(ip: IpAddr) -> HeaderValue {
    memoised(&PEER, ip, |ip| {
        HeaderValue::from_str(&crate::logging::Ip(ip).to_string())
            .expect("an IP address is a valid header value")
    })
}

/// `port` as an X-Forwarded-Port value.
fn port_value(port: u16) -> HeaderValue {
    memoised(&PORT, port, HeaderValue::from)
}

/// The value `make` gives for `key`, from this thread's `memo` when it was
/// the last key asked for.
fn memoised<K: Copy + PartialEq>(
    memo: &'static std::thread::LocalKey<RefCell<Option<(K, HeaderValue)>>>,
    key: K,
    make: impl FnOnce(K) -> HeaderValue,
) -> HeaderValue {
    memo.with_borrow_mut(|m| match m {
        Some((last, v)) if *last == key => v.clone(),
        _ => {
            let v = make(key);
            *m = Some((key, v.clone()));
            v
        }
    })
}

/// Whether a header name is an `X-Forwarded-*` header once a WSGI server
/// or oslo.middleware has normalised it (case folded, `-`, `_` and any
/// other separator equal): `X-Forwarded-Prefix`, `x.forwarded.host`.
pub fn is_forwarding_header(name: &str) -> bool {
    const PREFIX: &[u8] = b"X_FORWARDED_";
    let n = name.as_bytes();
    n.len() > PREFIX.len()
        && n.iter().zip(PREFIX).all(|(&c, &p)| {
            let c = if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                b'_'
            };
            c == p
        })
}

fn set(headers: &mut HeaderMap, name: &HeaderName, value: Vec<u8>) {
    // The text becomes the value without a copy.
    match HeaderValue::from_maybe_shared(bytes::Bytes::from(value)) {
        Ok(v) => {
            headers.insert(name.clone(), v);
        }
        Err(_) => {
            headers.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(peer: &str) -> ConnInfo {
        ConnInfo {
            peer: peer.parse().unwrap(),
            local: "10.1.1.1:5000".parse().unwrap(),
            tls: None,
        }
    }

    /// The per-thread memo of the last peer and port never lends one
    /// connection's values to another's request.
    #[test]
    fn each_request_gets_its_own_peer_and_port() {
        let mut other = conn("[2001:db8::7]:9");
        other.local = "10.1.1.1:443".parse().unwrap();
        for (c, xff, port) in [
            (conn("192.0.2.9:1234"), "192.0.2.9", "5000"),
            (conn("192.0.2.9:1235"), "192.0.2.9", "5000"),
            (other, "2001:db8::7", "443"),
            (conn("198.51.100.3:1"), "198.51.100.3", "5000"),
            (conn("[::ffff:192.0.2.9]:7"), "192.0.2.9", "5000"),
        ] {
            let mut h = HeaderMap::new();
            apply(&mut h, &c, None, &[]);
            assert_eq!(h["x-forwarded-for"], xff);
            assert_eq!(h["x-forwarded-port"], port);
            assert!(!h.contains_key("x-forwarded-host"));
        }
    }

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains("10.200.3.4".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.0.0.1".parse().unwrap()));
        let c = Cidr::parse("2001:db8::/32").unwrap();
        assert!(c.contains("2001:db8::1".parse().unwrap()));
        assert!(
            Cidr::parse("192.0.2.1")
                .unwrap()
                .contains("192.0.2.1".parse().unwrap())
        );
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("nonsense").is_none());
        assert!(
            Cidr::parse("10.0.0.0/7")
                .unwrap()
                .contains("11.1.1.1".parse().unwrap())
        );
    }

    #[test]
    fn client_values_are_replaced() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "6.6.6.6".parse().unwrap());
        h.insert("x-forwarded-proto", "gopher".parse().unwrap());
        h.insert(
            "forwarded",
            "for=6.6.6.6;proto=http;host=evil".parse().unwrap(),
        );
        apply(
            &mut h,
            &conn("192.0.2.9:1234"),
            Some(HeaderValue::from_static("keystone.example:5000")),
            &[],
        );
        assert_eq!(h["x-forwarded-for"], "192.0.2.9");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "keystone.example:5000");
        assert_eq!(h["x-forwarded-port"], "5000");
        assert!(!h.contains_key("forwarded"));
    }

    #[test]
    fn untrusted_forwarding_headers_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-prefix", "//evil.example/x".parse().unwrap());
        h.insert("x-forwarded-server", "evil".parse().unwrap());
        h.insert("x.forwarded.ssl", "on".parse().unwrap());
        h.insert("x-forwardedness", "kept".parse().unwrap());
        apply(
            &mut h,
            &conn("192.0.2.9:1234"),
            Some(HeaderValue::from_static("k")),
            &[],
        );
        let mut names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "x-forwarded-for",
                "x-forwarded-host",
                "x-forwarded-port",
                "x-forwarded-proto",
                "x-forwardedness"
            ]
        );
        assert!(is_forwarding_header("X-Forwarded-Prefix"));
        assert!(!is_forwarding_header("X-Forwarded"));
    }

    #[test]
    fn trusted_proxy_chain_is_extended() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "203.0.113.5".parse().unwrap());
        h.insert("x-forwarded-prefix", "/keystone".parse().unwrap());
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        apply(
            &mut h,
            &conn("10.0.0.2:1234"),
            Some(HeaderValue::from_static("k")),
            &[Cidr::parse("10.0.0.0/8").unwrap()],
        );
        assert_eq!(h["x-forwarded-for"], "203.0.113.5, 10.0.0.2");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-prefix"], "/keystone");
    }
}
