//! The request phases, in order: scrub, route, authenticate, forward.
//!
//! Every request takes one snapshot of the runtime, so a reload in the
//! middle of a request cannot mix two configurations.

use std::sync::Arc;
use std::time::Instant;

use http::header::{ACCEPT, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tracing::Instrument;

use super::runtime::{Runtime, Shared};
use crate::auth::{AuthKind, AuthOutcome};
use crate::conn::ConnInfo;
use crate::http::body::{Body, BoxError};
use crate::http::{forwarded, hop, reply};
use crate::metrics::KindLabel;
use crate::upstream::Outbound;

/// A request id the user can quote: unique within the process (a bijective
/// mix of a counter) and, through a random per-process key, unlikely to
/// repeat across restarts. Not a secret, so no CSPRNG call per request.
/// Sixteen hex digits, kept inline: every request carries one.
pub fn new_request_id() -> RequestId {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static KEY: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let key = *KEY.get_or_init(|| {
        let mut b = [0u8; 8];
        if aws_lc_rs::rand::fill(&mut b).is_err() {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            b = (t.as_nanos() as u64 ^ u64::from(std::process::id())).to_le_bytes();
        }
        u64::from_le_bytes(b)
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    RequestId::new(splitmix64(key.wrapping_add(n)))
}

/// A request's id as text, without a heap allocation.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId([u8; 16]);

impl RequestId {
    fn new(n: u64) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut b = [0u8; 16];
        for (i, d) in b.iter_mut().enumerate() {
            *d = HEX[((n >> (60 - 4 * i)) & 0xf) as usize];
        }
        RequestId(b)
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever written.
        std::str::from_utf8(&self.0).unwrap_or("0000000000000000")
    }
}

impl std::ops::Deref for RequestId {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

/// The response header that carries the request id; parsed once.
static REQUEST_ID: HeaderName = HeaderName::from_static("x-fedgate-request-id");

/// SplitMix64's finaliser: a bijection on u64, so distinct inputs give
/// distinct ids.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn auth_span(id: &str) -> tracing::Span {
    tracing::info_span!("request", id = %id)
}

fn accepts_html(parts: &http::request::Parts) -> bool {
    parts
        .headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

/// What the pipeline learns about one request as it goes, for its answer,
/// its log line and its metrics.
struct Ctx<'a> {
    shared: &'a Shared,
    rt: &'a Arc<Runtime>,
    conn: &'a ConnInfo,
    id: RequestId,
    /// The route's name, or the label of an authenticator's own endpoint;
    /// `-` before routing.
    route: &'a str,
    /// The authenticated principal, for the log line.
    principal: Option<String>,
    /// Errors as a page rather than JSON: browser flows only.
    html: bool,
    /// The canonical, percent-decoded path (`crate::http::path`): what
    /// routes match and what Keystone gets. Set by the first phase.
    path: String,
}

impl Ctx<'_> {
    fn error(&self, status: StatusCode, reason: &str, challenge: Option<&str>) -> Response<Body> {
        reply::error(status, reason, &self.id, self.html, challenge)
    }
}

pub async fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let started = Instant::now();
    let rt = shared.runtime.load_full();
    let (parts, body) = req.into_parts();
    let method = parts.method.clone();
    let path = parts.uri.path().to_string();
    let mut ctx = Ctx {
        shared: &shared,
        rt: &rt,
        conn: &conn,
        id: new_request_id(),
        route: "-",
        principal: None,
        html: false,
        path: String::new(),
    };
    // A client that stops sending its body must not hold its connection
    // and a Keystone worker: the same wait as for a request head.
    // A request without a body, most of them, needs no wrapping.
    let body = if http_body::Body::is_end_stream(&body) {
        crate::http::body::empty()
    } else {
        crate::http::body::with_idle_timeout(
            body.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync(),
            rt.config.server.header_timeout(),
        )
    };
    let mut resp = phases(&mut ctx, parts, body).await;
    if let Ok(v) = HeaderValue::from_str(&ctx.id) {
        resp.headers_mut().insert(REQUEST_ID.clone(), v);
    }
    let status = resp.status().as_u16();
    let elapsed = started.elapsed();
    shared
        .metrics
        .request(ctx.route, status, elapsed.as_secs_f64());
    // Path only: query strings can carry codes and states in browser flows.
    // Milliseconds to the microsecond (`ms=0.334`, not the binary
    // fraction's 17 digits; a shorter number is cheaper to write, too).
    let ms = elapsed.as_micros() as f64 / 1e3;
    tracing::info!(
        id = %ctx.id, method = %method, path = %path, status, route = %ctx.route,
        user = ctx.principal.as_deref().unwrap_or("-"), peer = %crate::logging::Addr(conn.peer), ms,
        "request"
    );
    Ok(resp)
}

/// The phases in order; each may answer early.
async fn phases(
    ctx: &mut Ctx<'_>,
    mut parts: http::request::Parts,
    mut body: Body,
) -> Response<Body> {
    if let Some(answer) = check(ctx, &mut parts) {
        return answer;
    }
    scrub(ctx, &mut parts);
    let (kind, outcome) = match authenticate(ctx, &parts, &mut body).await {
        Ok(x) => x,
        Err(answer) => return answer,
    };
    let mut extra_headers = None;
    let identity = match outcome {
        AuthOutcome::Forward(id) => id,
        AuthOutcome::Replay {
            uri,
            identity,
            response_headers,
        } => {
            // The original WebSSO request, replayed with the new identity.
            parts.uri = uri;
            parts.method = http::Method::GET;
            parts.headers.remove(http::header::CONTENT_LENGTH);
            parts.headers.remove(http::header::CONTENT_TYPE);
            body = crate::http::body::empty();
            extra_headers = Some(response_headers);
            Some(identity)
        }
        AuthOutcome::Respond(r) => return r,
        AuthOutcome::Deny(d) => {
            ctx.shared
                .metrics
                .denials
                .get_or_create(&KindLabel {
                    kind: kind.as_str().into(),
                })
                .inc();
            tracing::info!(id = %ctx.id, status = d.status.as_u16(), reason = %d.reason, auth = kind.as_str(), "authentication refused");
            return ctx.error(d.status, &d.reason, d.www_authenticate.as_deref());
        }
    };
    ctx.rt.auth.upstream_filter(&mut parts.headers);
    let dropped =
        crate::http::cookie::retain(&mut parts.headers, &ctx.rt.config.upstream.forward_cookies);
    if dropped > 0 {
        tracing::debug!(id = %ctx.id, cookies = dropped, "dropped cookies not in upstream.forward_cookies");
    }
    if let Some(i) = &identity {
        tracing::debug!(id = %ctx.id, method = i.method.as_str(), principal = %i.principal, vars = i.attributes.len(), "authenticated");
    }
    ctx.principal = identity.as_deref().map(|i| i.principal.clone());
    let mut resp = forward(ctx, parts, body, identity.as_deref()).await;
    #[cfg(feature = "accounting")]
    {
        resp = super::identities::observe(ctx.shared, ctx.rt, ctx.conn, identity.as_deref(), resp);
    }
    if let Some(h) = extra_headers {
        for (k, v) in h.iter() {
            resp.headers_mut().append(k, v.clone());
        }
    }
    resp
}

/// Phase 1, which answers (`Some`) only to refuse: the request target as
/// Keystone will read it. The host must be one valid authority
/// (`crate::http::host`), and one of `server.public_names` when those are
/// set, because Keystone builds its links from it. The path is made
/// canonical (`crate::http::path`) and the request carries the canonical
/// form from here on, so that the route chosen below and the handler
/// Keystone runs are about the same path.
fn check(ctx: &mut Ctx<'_>, parts: &mut http::request::Parts) -> Option<Response<Body>> {
    match crate::http::host::request_authority(parts) {
        Err(e) => {
            tracing::info!(id = %ctx.id, reason = %e, "refused a request host");
            return Some(ctx.error(StatusCode::BAD_REQUEST, &e.to_string(), None));
        }
        Ok(Some(a)) if !ctx.rt.public_names.allows(&a) => {
            tracing::info!(id = %ctx.id, host = %a, "refused a request for a host not in server.public_names");
            return Some(ctx.error(
                StatusCode::MISDIRECTED_REQUEST,
                "this server does not answer to the requested host name",
                None,
            ));
        }
        Ok(_) => {}
    }
    let original = parts.uri.path();
    let path = match crate::http::path::normalize(original) {
        Ok(p) => p,
        Err(e) => {
            tracing::info!(id = %ctx.id, reason = %e, "refused a request path");
            return Some(ctx.error(StatusCode::BAD_REQUEST, &e.to_string(), None));
        }
    };
    if path.changed(original) {
        let target = match parts.uri.query() {
            Some(q) => format!("{}?{q}", path.raw),
            None => path.raw.clone(),
        };
        let mut uri = parts.uri.clone().into_parts();
        let rebuilt = target.parse().ok().and_then(|pq| {
            uri.path_and_query = Some(pq);
            http::Uri::from_parts(uri).ok()
        });
        let Some(rebuilt) = rebuilt else {
            tracing::info!(id = %ctx.id, "refused a request path that cannot be rewritten");
            return Some(ctx.error(
                StatusCode::BAD_REQUEST,
                "request path cannot be made canonical",
                None,
            ));
        };
        tracing::debug!(id = %ctx.id, from = %original, to = %path.raw, "request path made canonical");
        parts.uri = rebuilt;
    }
    ctx.path = path.decoded;
    None
}

/// Phase 2: nothing a client sends may pose as identity; hop-by-hop
/// headers go, and X-Forwarded-* are set from the connection.
fn scrub(ctx: &Ctx<'_>, parts: &mut http::request::Parts) {
    let (rt, conn) = (ctx.rt, ctx.conn);
    let dropped = rt.scrubber.scrub(&mut parts.headers);
    if !dropped.is_empty() {
        ctx.shared
            .metrics
            .scrubbed_headers
            .inc_by(dropped.len() as u64);
        let names: Vec<&str> = dropped.iter().map(|n| n.as_str()).collect();
        tracing::warn!(id = %ctx.id, headers = ?names, peer = %conn.peer, "dropped client headers that could pose as identity");
    }
    hop::strip(&mut parts.headers);
    let host = crate::http::host::request_host_value(parts);
    forwarded::apply(&mut parts.headers, conn, host, &rt.trusted_proxies);
}

/// Phases 3 and 4: route on the canonical path, which is what Keystone
/// routes on, and run the route's authenticator. An authenticator's own endpoints
/// (the login's redirect and logout) come before the routes.
///
/// Authenticators log from deep inside (IdP calls, chain checks), so their
/// lines carry the request id through a span; unauthenticated routes, most
/// of the traffic, skip its cost.
async fn authenticate(
    ctx: &mut Ctx<'_>,
    parts: &http::request::Parts,
    body: &mut Body,
) -> Result<(AuthKind, AuthOutcome), Response<Body>> {
    let rt = ctx.rt;
    // Routing is the path's last use.
    let decoded = std::mem::take(&mut ctx.path);
    if let Some(own) = rt.auth.request_filter(&decoded, parts, body) {
        let f = own.instrument(auth_span(&ctx.id)).await;
        ctx.route = f.label;
        ctx.html = accepts_html(parts);
        return Ok((AuthKind::Oidc, f.outcome));
    }
    let Some(route) = rt.routes.find(&decoded) else {
        tracing::info!(id = %ctx.id, path = %decoded, "no route matches");
        return Err(reply::json_error(
            StatusCode::NOT_FOUND,
            "no route is configured for this path",
        ));
    };
    ctx.route = &route.name;
    let kind = route.auth();
    ctx.html = kind == AuthKind::Oidc && accepts_html(parts);
    let outcome = match kind {
        AuthKind::None => AuthOutcome::Forward(None),
        _ => {
            // Boxed: the authenticators' futures (an IdP call, a cache
            // fill) are about 11 KB. Inline, every request's future would
            // be that large and be copied whole into its box, the
            // unauthenticated ones too.
            Box::pin(
                rt.auth
                    .authenticate(&route.name, &route.policy, parts, ctx.conn, body)
                    .instrument(auth_span(&ctx.id)),
            )
            .await
        }
    };
    Ok((kind, outcome))
}

/// Phase 5: hand the request and its identity to Keystone.
async fn forward(
    ctx: &Ctx<'_>,
    parts: http::request::Parts,
    body: Body,
    identity: Option<&crate::identity::Identity>,
) -> Response<Body> {
    let rt = ctx.rt;
    let head = parts.method == http::Method::HEAD;
    let out = Outbound {
        parts,
        body,
        conn: ctx.conn,
        identity,
    };
    match rt.upstream.send(out).await {
        Ok(resp) => without_forbidden_body(head, resp),
        Err(e) => {
            ctx.shared
                .metrics
                .upstream_errors
                .get_or_create(&KindLabel {
                    kind: e.kind().into(),
                })
                .inc();
            if e.is_upstream_fault() {
                tracing::error!(id = %ctx.id, error = %e, upstream = %rt.upstream.target().authority(), "upstream request failed");
            } else {
                tracing::info!(id = %ctx.id, error = %e, "request refused before forwarding");
            }
            ctx.error(e.status(), &e.to_string(), None)
        }
    }
}

/// A response to HEAD, and a 204 or 304, has no body (RFC 9110 §9.3.2,
/// §15.3.5, §15.4.5), whatever the upstream sends after the head: uWSGI
/// sends a WSGI application's body for HEAD too, and HTTP/2 refuses DATA
/// on such a stream (RFC 9113 §8.1.1). Dropping the body also closes the
/// upstream connection it came on. The headers, Content-Length included,
/// stay as they are.
fn without_forbidden_body(head: bool, resp: Response<Body>) -> Response<Body> {
    let status = resp.status();
    if head || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        resp.map(|_| crate::http::body::empty())
    } else {
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_distinct_hex() {
        let ids: std::collections::HashSet<String> =
            (0..10_000).map(|_| new_request_id().to_string()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(
            ids.iter()
                .all(|i| i.len() == 16 && i.bytes().all(|b| b.is_ascii_hexdigit()))
        );
    }

    #[test]
    fn no_body_for_head_204_and_304() {
        use http_body::Body as _;
        let resp = |status: u16| {
            let mut r = Response::new(crate::http::body::full("{}"));
            *r.status_mut() = StatusCode::from_u16(status).unwrap();
            r.headers_mut()
                .insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("2"));
            r
        };
        for (head, status, empty) in [
            (true, 200, true),
            (false, 204, true),
            (false, 304, true),
            (false, 200, false),
            (false, 404, false),
        ] {
            let r = without_forbidden_body(head, resp(status));
            assert_eq!(r.body().is_end_stream(), empty, "{head} {status}");
            assert_eq!(r.headers()[http::header::CONTENT_LENGTH], "2");
        }
    }

    #[test]
    fn request_ids_are_the_counters_mix_in_hex() {
        for n in [0, 1, 0x0123_4567_89ab_cdef, u64::MAX, 1 << 63] {
            assert_eq!(RequestId::new(n).as_str(), format!("{n:016x}"));
        }
        let id = new_request_id();
        assert_eq!(format!("{id}"), id.as_str());
        assert_eq!(format!("{id:?}"), format!("{:?}", id.as_str()));
    }

    fn future_size<A, B, C, F>(_: impl FnOnce(A, B, C) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every request's future is boxed and so copied once whole: it was
    /// 12,888 bytes, nearly all of it the authenticators' futures, which
    /// requests on routes without authentication never run. Those are now
    /// boxed on their own, where they are needed. (The bound allows for a
    /// debug build's larger futures: 4.6 KB there, 3 KB in release.)
    #[test]
    fn a_requests_future_is_small() {
        let size = future_size(handle);
        assert!(size <= 6144, "pipeline::handle future: {size} bytes");
    }

    #[test]
    fn splitmix_is_not_the_identity() {
        assert_ne!(splitmix64(1), 1);
        assert_ne!(splitmix64(1), splitmix64(2));
    }
}
