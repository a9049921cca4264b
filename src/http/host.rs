//! The host a request names: validated here, then read by the upstream
//! encoders (SERVER_NAME, X-Forwarded-Host) and by the browser login.
//!
//! Keystone builds every link it returns from this value, so a Host such
//! as `evil.example/x?y`, `a@evil.example` or a second Host header would
//! otherwise end up in `"href"`s and redirect URIs. [`request_authority`]
//! accepts exactly one `host[:port]` (RFC 9110 §7.2, RFC 3986 §3.2.2
//! without userinfo), the same on the Host header and on the request
//! target's authority (HTTP/2 `:authority`, RFC 9113 §8.3.1, or an HTTP/1.1
//! absolute-form target, RFC 9112 §3.2.2) when both are present.
//! [`PublicNames`] is `server.public_names`: the names this service
//! answers to, and the one it builds its own URLs from.

use std::net::Ipv6Addr;

use http::header::{HOST, HeaderValue};
use http::request::Parts;

/// Why a request's host is refused (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("Host is not a host[:port] authority")]
    Syntax,
    #[error("Host has an invalid port")]
    Port,
    #[error("request has more than one Host header")]
    Duplicate,
    #[error("Host differs from the request's authority")]
    Conflict,
    #[error("HTTP/1.1 request without Host")]
    Missing,
}

/// A validated authority: a DNS name, an IPv4 address or a bracketed IPv6
/// address, and an optional port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    /// As sent, without brackets for IPv6.
    host: String,
    ipv6: bool,
    port: Option<u16>,
}

/// Longest host name accepted (RFC 1035 §2.3.4, plus a trailing dot).
const MAX_NAME: usize = 254;

impl Authority {
    /// Parses `host[:port]`. No userinfo, path, query, percent-encoding or
    /// whitespace; name labels of letters, digits, `-` and `_`.
    pub fn parse(s: &str) -> Result<Authority, HostError> {
        let (host, ipv6, port) = if let Some(rest) = s.strip_prefix('[') {
            let (inner, tail) = rest.split_once(']').ok_or(HostError::Syntax)?;
            inner.parse::<Ipv6Addr>().map_err(|_| HostError::Syntax)?;
            let port = match tail {
                "" => None,
                t => Some(t.strip_prefix(':').ok_or(HostError::Syntax)?),
            };
            (inner, true, port)
        } else {
            match s.split_once(':') {
                Some((h, p)) => (h, false, Some(p)),
                None => (s, false, None),
            }
        };
        if !ipv6 && !valid_name(host) {
            return Err(HostError::Syntax);
        }
        let port = match port {
            None => None,
            Some(p) => Some(parse_port(p)?),
        };
        Ok(Authority {
            host: host.to_string(),
            ipv6,
            port,
        })
    }

    /// The host without brackets or port.
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// Whether both name the same host (case-insensitively, a trailing dot
    /// ignored) and port, a missing port standing for `default_port`.
    pub fn same_as(&self, other: &Authority, default_port: u16) -> bool {
        self.same_host(other)
            && self.port.unwrap_or(default_port) == other.port.unwrap_or(default_port)
    }

    fn same_host(&self, other: &Authority) -> bool {
        if self.ipv6 || other.ipv6 {
            return self.ipv6
                && other.ipv6
                && self.host.parse::<Ipv6Addr>().ok() == other.host.parse::<Ipv6Addr>().ok();
        }
        let a = self.host.strip_suffix('.').unwrap_or(&self.host);
        let b = other.host.strip_suffix('.').unwrap_or(&other.host);
        a.eq_ignore_ascii_case(b)
    }
}

impl std::fmt::Display for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.ipv6 {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

fn valid_name(h: &str) -> bool {
    if h.is_empty() || h.len() > MAX_NAME {
        return false;
    }
    let h = h.strip_suffix('.').unwrap_or(h);
    h.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

fn parse_port(p: &str) -> Result<u16, HostError> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HostError::Port);
    }
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(HostError::Port),
        Ok(n) => Ok(n),
    }
}

/// The port a request without one means: fedgate serves HTTPS.
pub const DEFAULT_PORT: u16 = 443;

/// The request's validated authority: `Ok(None)` only for a request that
/// names no host at all and may do so (HTTP/1.0, or HTTP/2 without
/// `:authority` and Host).
pub fn request_authority(parts: &Parts) -> Result<Option<Authority>, HostError> {
    let mut hosts = parts.headers.get_all(HOST).iter();
    let header = match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => return Err(HostError::Duplicate),
        (Some(h), None) => Some(Authority::parse(
            h.to_str().map_err(|_| HostError::Syntax)?,
        )?),
        (None, _) => None,
    };
    let target = match parts.uri.authority() {
        Some(a) => Some(Authority::parse(a.as_str())?),
        None => None,
    };
    match (header, target) {
        (Some(h), Some(t)) if !h.same_as(&t, DEFAULT_PORT) => Err(HostError::Conflict),
        (Some(h), _) => Ok(Some(h)),
        (None, Some(t)) => Ok(Some(t)),
        (None, None) if parts.version == http::Version::HTTP_11 => Err(HostError::Missing),
        (None, None) => Ok(None),
    }
}

/// Splits a Host value into name and port (`[::1]:5000`, `keystone`).
pub fn split_host(host: &str) -> (&str, Option<&str>) {
    if let Some(rest) = host.strip_prefix('[') {
        if let Some((h, tail)) = rest.split_once(']') {
            return (h, tail.strip_prefix(':'));
        }
    }
    match host.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => (h, Some(p)),
        _ => (host, None),
    }
}

/// The request's Host: the Host header, or the h2 `:authority`. The
/// pipeline has validated both with [`request_authority`] before anything
/// reads this.
pub fn request_host(parts: &Parts) -> Option<String> {
    let v = request_host_value(parts)?;
    v.to_str().ok().map(str::to_string)
}

/// [`request_host`] as a header value: the Host header's own value when
/// it is text (a reference-counted clone, no copy), else the h2
/// `:authority`.
pub fn request_host_value(parts: &Parts) -> Option<HeaderValue> {
    parts
        .headers
        .get(HOST)
        .filter(|h| h.to_str().is_ok())
        .cloned()
        .or_else(|| {
            let a = parts.uri.authority()?;
            HeaderValue::from_str(a.as_str()).ok()
        })
}

/// `server.public_names`: the names this service answers to. Empty means
/// any valid Host is served.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublicNames(Vec<Authority>);

impl PublicNames {
    /// Parses the configured names; the error carries the index of the
    /// first bad one.
    pub fn parse<'a>(
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<PublicNames, (usize, HostError)> {
        names
            .into_iter()
            .enumerate()
            .map(|(i, n)| Authority::parse(n).map_err(|e| (i, e)))
            .collect::<Result<Vec<_>, _>>()
            .map(PublicNames)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a request for `a` is for this service. A name configured
    /// without a port matches any port.
    pub fn allows(&self, a: &Authority) -> bool {
        self.0.is_empty()
            || self.0.iter().any(|n| match n.port {
                None => n.same_host(a),
                Some(_) => n.same_as(a, DEFAULT_PORT),
            })
    }

    /// `https://<first name>`: the base of every URL fedgate hands out
    /// about itself (such as the browser login's redirect URI), built from
    /// configuration and never from a request. `None` when no name is
    /// configured.
    pub fn base_url(&self) -> Option<String> {
        self.0.first().map(|a| format!("https://{a}"))
    }

    /// [`Self::base_url`] followed by `path` (which starts with `/`).
    pub fn url_for(&self, path: &str) -> Option<String> {
        self.base_url().map(|b| format!("{b}{path}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(version: http::Version, uri: &str, hosts: &[&str]) -> Parts {
        let mut b = http::Request::get(uri).version(version);
        for h in hosts {
            b = b.header(HOST, *h);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn authorities() {
        for ok in [
            "keystone.example.org",
            "keystone.example.org:5000",
            "KEYSTONE.example.org.",
            "localhost",
            "127.0.0.1:443",
            "[::1]",
            "[2001:db8::1]:5000",
            "under_score.example",
        ] {
            let a = Authority::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(a.to_string(), ok);
        }
        for (bad, e) in [
            ("evil.example/x?y", HostError::Syntax),
            ("a@evil.example", HostError::Syntax),
            ("localhost, evil.example", HostError::Syntax),
            ("evil example", HostError::Syntax),
            ("", HostError::Syntax),
            ("a..b", HostError::Syntax),
            (".", HostError::Syntax),
            ("%65vil.example", HostError::Syntax),
            ("[::1", HostError::Syntax),
            ("[::1]x", HostError::Syntax),
            ("[v1.x]", HostError::Syntax),
            ("[fe80::1%25eth0]", HostError::Syntax),
            ("::1", HostError::Syntax),
            ("k:", HostError::Port),
            ("k:0", HostError::Port),
            ("k:65536", HostError::Port),
            ("k:+1", HostError::Port),
            ("k:1:2", HostError::Port),
        ] {
            assert_eq!(Authority::parse(bad), Err(e), "{bad:?}");
        }
        let long = format!("{}.example", "a".repeat(64));
        assert_eq!(Authority::parse(&long), Err(HostError::Syntax));
    }

    #[test]
    fn request_authorities() {
        use http::Version;
        let a = |p: &Parts| request_authority(p).map(|o| o.map(|a| a.to_string()));
        assert_eq!(
            a(&parts(Version::HTTP_11, "/v3", &["k:5000"])),
            Ok(Some("k:5000".into()))
        );
        assert_eq!(
            a(&parts(Version::HTTP_11, "/v3", &["k", "evil.example"])),
            Err(HostError::Duplicate)
        );
        assert_eq!(
            a(&parts(Version::HTTP_11, "/v3", &[])),
            Err(HostError::Missing)
        );
        assert_eq!(a(&parts(Version::HTTP_10, "/v3", &[])), Ok(None));
        // HTTP/2: :authority alone, or with an agreeing Host.
        assert_eq!(
            a(&parts(Version::HTTP_2, "https://k:5000/v3", &[])),
            Ok(Some("k:5000".into()))
        );
        assert_eq!(
            a(&parts(Version::HTTP_2, "https://K:5000/v3", &["k:5000"])),
            Ok(Some("k:5000".into()))
        );
        assert_eq!(
            a(&parts(Version::HTTP_2, "https://k/v3", &["k:443"])),
            Ok(Some("k:443".into()))
        );
        assert_eq!(
            a(&parts(
                Version::HTTP_2,
                "https://k:5000/v3",
                &["evil.example"]
            )),
            Err(HostError::Conflict)
        );
        assert_eq!(
            a(&parts(Version::HTTP_2, "https://a@k:5000/v3", &[])),
            Err(HostError::Syntax)
        );
        // HTTP/1.1 absolute-form: the target's authority must agree too.
        assert_eq!(
            a(&parts(Version::HTTP_11, "https://evil.example/v3", &["k"])),
            Err(HostError::Conflict)
        );
    }

    #[test]
    fn public_names() {
        let p = PublicNames::parse(["keystone.example.org", "k.example:5000"]).unwrap();
        let ok = |s: &str| p.allows(&Authority::parse(s).unwrap());
        assert!(ok("keystone.example.org"));
        assert!(ok("KEYSTONE.example.org.:1234"));
        assert!(ok("k.example:5000"));
        assert!(!ok("k.example"));
        assert!(!ok("k.example:5001"));
        assert!(!ok("evil.example"));
        assert_eq!(
            p.url_for("/v3/redirect").as_deref(),
            Some("https://keystone.example.org/v3/redirect")
        );
        assert!(PublicNames::default().allows(&Authority::parse("any").unwrap()));
        assert_eq!(PublicNames::default().base_url(), None);
        assert_eq!(
            PublicNames::parse(["ok", "bad/name"]),
            Err((1, HostError::Syntax))
        );
        let v6 = PublicNames::parse(["[2001:db8::1]:5000"]).unwrap();
        assert!(v6.allows(&Authority::parse("[2001:DB8:0::1]:5000").unwrap()));
        assert_eq!(v6.base_url().as_deref(), Some("https://[2001:db8::1]:5000"));
    }
}
