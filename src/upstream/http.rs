//! Keystone under any HTTP server: HTTP/1.1 with pooled connections, the
//! identity passed as request headers.
//!
//! Headers reach a WSGI app only as `HTTP_*` names, so mappings must use
//! those names (e.g. `HTTP_GRST_CONN_AURI_0`); the uwsgi upstream is the
//! drop-in choice. Header names are configurable for that reason.

use std::collections::BTreeMap;
use std::time::Duration;

use http::header::{HOST, HeaderName, HeaderValue};
use http_body_util::{BodyExt, Limited};

use super::outbound::{Outbound, UpstreamError};
use super::pool::Pools;
use super::target::Target;
use super::uwsgi::declared_length;
use crate::http::body::Body;
use crate::upstream::UpstreamConfig;

/// How many identity header names each thread remembers.
const MEMO_NAMES: usize = 512;

pub struct HttpUpstream {
    pub target: Target,
    /// The upstream's authority as a Host value, for a request that came
    /// without one.
    host: HeaderValue,
    /// Keep-alive connections, one pool per thread ([`super::pool`]).
    pools: Pools,
    /// Variable name → header name, per thread (no lock on the request
    /// path), for at most `MEMO_NAMES` names.
    header_names: thread_local::ThreadLocal<
        std::cell::RefCell<std::collections::HashMap<String, HeaderName>>,
    >,
    pub connect_timeout: Duration,
    response_timeout: Duration,
    max_body: u64,
    prefix: String,
    names: BTreeMap<String, String>,
}

/// The header an identity variable travels in: explicit name, else the
/// environ name without `HTTP_` and with `_` written as `-`.
pub fn header_name_for(var: &str, prefix: &str, names: &BTreeMap<String, String>) -> String {
    if let Some(n) = names.get(var) {
        return n.clone();
    }
    let base = var.strip_prefix("HTTP_").unwrap_or(var);
    format!("{prefix}{}", base.replace('_', "-"))
}

impl HttpUpstream {
    pub fn new(target: Target, cfg: &UpstreamConfig, max_body: u64) -> Self {
        HttpUpstream {
            host: HeaderValue::from_str(&target.authority()).expect("validated upstream authority"),
            pools: Pools::new(target.authority(), cfg.connect_timeout()),
            target,
            header_names: thread_local::ThreadLocal::new(),
            connect_timeout: cfg.connect_timeout(),
            response_timeout: cfg.response_timeout(),
            max_body,
            prefix: cfg.identity_header_prefix.clone(),
            names: cfg.identity_headers.clone(),
        }
    }

    /// The header an identity variable travels in, from this thread's
    /// memo: the same dozen names come with every request, and building
    /// one (format, replace, parse) cost more than the rest of the
    /// bearer check (docs/performance.md).
    fn header_name(&self, var: &str) -> Result<HeaderName, UpstreamError> {
        let memo = self.header_names.get_or_default();
        if let Some(n) = memo.borrow().get(var) {
            return Ok(n.clone());
        }
        let name = header_name_for(var, &self.prefix, &self.names);
        let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            UpstreamError::BadRequest(format!("identity header name `{name}` is invalid"))
        })?;
        let mut memo = memo.borrow_mut();
        // Bounded: names come from IdP claims, which an IdP may vary.
        if memo.len() < MEMO_NAMES {
            memo.insert(var.to_string(), n.clone());
        }
        Ok(n)
    }

    /// Header names this upstream sends identity in; the scrubber drops
    /// client copies of them.
    pub fn identity_header_prefix(&self) -> &str {
        &self.prefix
    }

    pub async fn send(&self, req: Outbound<'_>) -> Result<http::Response<Body>, UpstreamError> {
        let Outbound {
            mut parts,
            body,
            conn: _,
            identity,
        } = req;
        if declared_length(&parts)?.is_some_and(|n| n > self.max_body) {
            return Err(UpstreamError::BodyTooLarge(self.max_body));
        }
        // The client's Host goes through as it came (it is what Keystone
        // builds its URLs from); an HTTP/2 request's :authority becomes the
        // Host line, and a request with neither gets the upstream's
        // authority, as HTTP/1.1 requires a Host.
        if !parts.headers.contains_key(HOST) {
            let host = parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
                .unwrap_or_else(|| self.host.clone());
            parts.headers.insert(HOST, host);
        }
        // Origin-form (`/v3/auth/tokens?...`): hyper's connection writes the
        // URI as it is given.
        parts.uri = match parts.uri.path_and_query() {
            Some(pq) => http::Uri::from(pq.clone()),
            None => http::Uri::from_static("/"),
        };
        parts.version = http::Version::HTTP_11;
        // HTTP/1.1 allows one Cookie line; HTTP/2 clients may send several.
        crate::http::cookie::join(&mut parts.headers);
        if let Some(id) = identity {
            for (var, value) in id.variables() {
                let n = self.header_name(var)?;
                let (v, replaced) = identity_value(value);
                if replaced {
                    tracing::warn!(header = %n, "identity value held control characters; sent with spaces in their place");
                }
                parts.headers.insert(n, v);
            }
        }
        let max = self.max_body as usize;
        // A failure to read the client's body (too large, or malformed
        // chunked framing) is the client's fault: marked here so that
        // `classify` answers 413 or 400, not 502.
        let body = if http_body::Body::is_end_stream(&body) {
            body
        } else {
            Limited::new(body, max)
                .map_err(move |e| -> crate::http::body::BoxError {
                    if e.downcast_ref::<http_body_util::LengthLimitError>()
                        .is_some()
                    {
                        Box::new(UpstreamError::BodyTooLarge(max as u64))
                    } else {
                        Box::new(UpstreamError::client_body(&e))
                    }
                })
                .boxed_unsync()
        };
        // A bodyless request can be sent again if the pooled connection
        // turns out to be one the server was closing (uWSGI's http-socket
        // closes after each response without saying so).
        let retry = body_is_empty(&parts, &body).then(|| {
            let mut r = http::Request::new(crate::http::body::empty());
            *r.method_mut() = parts.method.clone();
            *r.uri_mut() = parts.uri.clone();
            *r.version_mut() = parts.version;
            *r.headers_mut() = parts.headers.clone();
            r
        });
        let req = http::Request::from_parts(parts, body);
        let resp = tokio::time::timeout(self.response_timeout, self.exchange(req, retry))
            .await
            .map_err(|_| UpstreamError::ResponseTimeout)??;
        let (mut parts, body) = resp.into_parts();
        crate::http::hop::strip(&mut parts.headers);
        Ok(http::Response::from_parts(
            parts,
            body.map_err(|e| -> crate::http::body::BoxError { Box::new(e) })
                .boxed_unsync(),
        ))
    }

    /// Sends `req` on a pooled connection, or a new one. A request the
    /// pooled connection never took (hyper found it closed first) is sent
    /// again on a new connection; so is `retry`, the copy of a bodyless
    /// request, when a reused connection closed without answering.
    async fn exchange(
        &self,
        req: http::Request<Body>,
        retry: Option<http::Request<Body>>,
    ) -> Result<http::Response<hyper::body::Incoming>, UpstreamError> {
        let mut conn = self.pools.get().await?;
        let again = match conn.sender().try_send_request(req).await {
            Ok(resp) => {
                self.pools.put(conn);
                return Ok(resp);
            }
            Err(mut e) => match e.take_message() {
                Some(unsent) => unsent,
                None => match retry {
                    Some(copy) if conn.reused && stale_connection(e.error()) => {
                        tracing::debug!(error = %e.error(), "pooled upstream connection was closed; retrying once on a new one");
                        copy
                    }
                    _ => return Err(classify(e.error())),
                },
            },
        };
        let mut conn = self.pools.open().await?;
        let resp = conn
            .sender()
            .send_request(again)
            .await
            .map_err(|e| classify(&e))?;
        self.pools.put(conn);
        Ok(resp)
    }
}

/// An identity value as a header value, and whether it held control
/// characters other than line breaks. Multi-line values (the client PEM in
/// SSL_CLIENT_CERT) travel with their line breaks as spaces, as Apache's
/// mod_headers sends them. Any other control byte (NUL, VT, FF, DEL…)
/// cannot travel in a header either (RFC 9110 §5.5) and becomes a space
/// too: refusing the request would lock the user out over a claim they
/// cannot change.
pub fn identity_value(value: &[u8]) -> (HeaderValue, bool) {
    // The usual case, a value with no control bytes, needs no copy first.
    if !value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
        && let Ok(v) = HeaderValue::from_bytes(value)
    {
        return (v, false);
    }
    let mut replaced = false;
    let flat: Vec<u8> = value
        .iter()
        .map(|&b| match b {
            b'\r' | b'\n' => b' ',
            b'\t' => b,
            0..=0x1f | 0x7f => {
                replaced = true;
                b' '
            }
            _ => b,
        })
        .collect();
    // Every byte left is a valid field-value byte (VCHAR, SP, HTAB, obs-text).
    let v = HeaderValue::from_bytes(&flat).unwrap_or_else(|_| HeaderValue::from_static(""));
    (v, replaced)
}

/// Whether a request carries no body at all (so it can be replayed).
fn body_is_empty(parts: &http::request::Parts, body: &Body) -> bool {
    use http_body::Body as _;
    let declared_zero = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() == b"0");
    body.is_end_stream() || (declared_zero && body.size_hint().exact() == Some(0))
}

/// The request failed because the pooled connection was already closing:
/// nothing reached the application, so sending it again is safe.
fn stale_connection(e: &hyper::Error) -> bool {
    use std::error::Error;
    let mut src: Option<&(dyn Error + 'static)> = Some(e);
    while let Some(s) = src {
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() || h.is_canceled() || h.is_closed() {
                return true;
            }
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(
                io.kind(),
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
            ) {
                return true;
            }
        }
        src = s.source();
    }
    false
}

fn classify(e: &hyper::Error) -> UpstreamError {
    use std::error::Error;
    let mut src: Option<&(dyn Error + 'static)> = e.source();
    while let Some(s) = src {
        if let Some(u) = s.downcast_ref::<UpstreamError>() {
            return match u {
                UpstreamError::BodyTooLarge(n) => UpstreamError::BodyTooLarge(*n),
                UpstreamError::ClientBody(m) => UpstreamError::ClientBody(m.clone()),
                UpstreamError::ClientTimeout(t) => UpstreamError::ClientTimeout(*t),
                other => UpstreamError::ClientBody(other.to_string()),
            };
        }
        src = s.source();
    }
    UpstreamError::BadResponse(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request head the upstream receives for one request.
    async fn head_received(build: impl FnOnce(&mut http::request::Parts)) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).await.unwrap();
                assert!(n > 0);
                head.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8(head).unwrap()
        });
        let cfg: UpstreamConfig = toml::from_str(&format!("url = \"http://{addr}\"")).unwrap();
        let up = HttpUpstream::new(Target::parse(cfg.url.get_ref()).unwrap(), &cfg, 1 << 20);
        let (mut parts, _) = http::Request::new(()).into_parts();
        build(&mut parts);
        let conn = crate::conn::ConnInfo {
            peer: "127.0.0.1:1".parse().unwrap(),
            local: "127.0.0.1:2".parse().unwrap(),
            tls: None,
        };
        let resp = up
            .send(Outbound {
                parts,
                body: crate::http::body::empty(),
                conn: &conn,
                identity: None,
            })
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
        server.await.unwrap()
    }

    #[tokio::test]
    async fn requests_go_in_origin_form_with_the_clients_host() {
        let head = head_received(|p| {
            p.uri = "/v3/auth/tokens?nocatalog".parse().unwrap();
            p.headers
                .insert(HOST, HeaderValue::from_static("keystone.example.org"));
        })
        .await;
        assert!(
            head.starts_with("GET /v3/auth/tokens?nocatalog HTTP/1.1\r\n"),
            "{head}"
        );
        assert!(
            head.to_ascii_lowercase()
                .contains("\r\nhost: keystone.example.org\r\n"),
            "{head}"
        );
    }

    #[tokio::test]
    async fn an_http2_authority_becomes_the_host_and_a_missing_one_the_upstreams() {
        let head = head_received(|p| {
            p.uri = "https://keystone.example.org/v3".parse().unwrap();
            p.version = http::Version::HTTP_2;
        })
        .await;
        assert!(head.starts_with("GET /v3 HTTP/1.1\r\n"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("\r\nhost: keystone.example.org\r\n"),
            "{head}"
        );
        let head = head_received(|p| p.uri = "/v3".parse().unwrap()).await;
        assert!(
            head.to_ascii_lowercase().contains("\r\nhost: 127.0.0.1:"),
            "{head}"
        );
    }

    #[test]
    fn multi_line_values_are_flattened() {
        let pem = b"-----BEGIN CERTIFICATE-----\nMIIB\r\nAAAA\n-----END CERTIFICATE-----\n";
        let (v, replaced) = identity_value(pem);
        assert_eq!(
            v.as_bytes(),
            b"-----BEGIN CERTIFICATE----- MIIB  AAAA -----END CERTIFICATE----- "
        );
        assert!(!replaced, "line breaks are expected, not reported");
        // Other control bytes become spaces too, and are reported; tabs
        // and non-ASCII bytes are valid in a header and stay.
        let (v, replaced) = identity_value(b"a\0b\x01c\x0bd\x0ce\x7ff\tg\xc3\xa9");
        assert_eq!(v.as_bytes(), b"a b c d e f\tg\xc3\xa9");
        assert!(replaced);
    }

    #[test]
    fn header_names() {
        let mut names = BTreeMap::new();
        names.insert("REMOTE_USER".to_string(), "X-Fedgate-User".to_string());
        assert_eq!(
            header_name_for("GRST_CONN_AURI_0", "", &names),
            "GRST-CONN-AURI-0"
        );
        assert_eq!(header_name_for("HTTP_OIDC_ISS", "", &names), "OIDC-ISS");
        assert_eq!(
            header_name_for("OIDC-eduperson_entitlement", "X-", &names),
            "X-OIDC-eduperson-entitlement"
        );
        assert_eq!(header_name_for("REMOTE_USER", "", &names), "X-Fedgate-User");
    }
}
