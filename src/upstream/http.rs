//! Keystone under any HTTP server: HTTP/1.1 with pooled connections, the
//! identity passed as request headers.
//!
//! Headers reach a WSGI app only as `HTTP_*` names, so mappings must use
//! those names (e.g. `HTTP_GRST_CONN_AURI_0`); the uwsgi upstream is the
//! drop-in choice. Header names are configurable for that reason.

use std::collections::BTreeMap;
use std::time::Duration;

use http::header::{HOST, HeaderName, HeaderValue};
use http::uri::{Authority, Scheme};
use http_body_util::{BodyExt, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::outbound::{Outbound, UpstreamError};
use super::target::Target;
use super::uwsgi::declared_length;
use crate::http::body::Body;
use crate::upstream::UpstreamConfig;

/// How many identity header names each thread remembers.
const MEMO_NAMES: usize = 512;

pub struct HttpUpstream {
    pub target: Target,
    authority: Authority,
    /// One connection pool per thread. A serving thread then finds its
    /// pooled connections' tasks on its own event loop, and a request
    /// wakes no other core (see `crate::server::Workers`).
    clients: thread_local::ThreadLocal<Client<HttpConnector, Body>>,
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
            authority: target
                .authority()
                .parse()
                .expect("validated upstream authority"),
            target,
            clients: thread_local::ThreadLocal::new(),
            header_names: thread_local::ThreadLocal::new(),
            connect_timeout: cfg.connect_timeout(),
            response_timeout: cfg.response_timeout(),
            max_body,
            prefix: cfg.identity_header_prefix.clone(),
            names: cfg.identity_headers.clone(),
        }
    }

    /// This thread's connection pool, made on its first request.
    fn client(&self) -> &Client<HttpConnector, Body> {
        self.clients.get_or(|| {
            let mut conn = HttpConnector::new();
            conn.set_connect_timeout(Some(self.connect_timeout));
            conn.set_nodelay(true);
            Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .pool_max_idle_per_host(64)
                .build(conn)
        })
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
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(Scheme::HTTP);
        uri.authority = Some(self.authority.clone());
        uri.path_and_query = parts.uri.path_and_query().cloned();
        let host = crate::http::host::request_host(&parts);
        parts.uri =
            http::Uri::from_parts(uri).map_err(|e| UpstreamError::BadRequest(e.to_string()))?;
        parts.version = http::Version::HTTP_11;
        // HTTP/1.1 allows one Cookie line; HTTP/2 clients may send several.
        crate::http::cookie::join(&mut parts.headers);
        if let Some(h) = host.and_then(|h| HeaderValue::from_str(&h).ok()) {
            parts.headers.insert(HOST, h);
        }
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
        let body = Limited::new(body, max)
            .map_err(move |e| -> crate::http::body::BoxError {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    Box::new(UpstreamError::BodyTooLarge(max as u64))
                } else {
                    Box::new(UpstreamError::client_body(&e))
                }
            })
            .boxed_unsync();
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
        let first = tokio::time::timeout(self.response_timeout, self.client().request(req))
            .await
            .map_err(|_| UpstreamError::ResponseTimeout)?;
        let resp = match (first, retry) {
            (Ok(r), _) => r,
            (Err(e), Some(again)) if stale_connection(&e) => {
                tracing::debug!(error = %e, "pooled upstream connection was closed; retrying once on a new one");
                tokio::time::timeout(self.response_timeout, self.client().request(again))
                    .await
                    .map_err(|_| UpstreamError::ResponseTimeout)?
                    .map_err(classify)?
            }
            (Err(e), _) => return Err(classify(e)),
        };
        let (mut parts, body) = resp.into_parts();
        crate::http::hop::strip(&mut parts.headers);
        Ok(http::Response::from_parts(
            parts,
            body.map_err(|e| -> crate::http::body::BoxError { Box::new(e) })
                .boxed_unsync(),
        ))
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
fn stale_connection(e: &hyper_util::client::legacy::Error) -> bool {
    use std::error::Error;
    let mut src: Option<&(dyn Error + 'static)> = e.source();
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

fn classify(e: hyper_util::client::legacy::Error) -> UpstreamError {
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
    if e.is_connect() {
        UpstreamError::Connect(std::io::Error::other(e.to_string()))
    } else {
        UpstreamError::BadResponse(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
