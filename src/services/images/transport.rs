//! The outbound HTTP of image fetching: like `http::client` (rustls, the
//! system roots plus an optional CA file, timeouts) but streaming, with
//! arbitrary request headers, and redirects followed. Image files are
//! gigabytes, so bodies are read chunk by chunk ([`Transport::chunk`]);
//! small documents (lists, manifests) through [`Transport::read_capped`].
//!
//! Credentials are sent to the origin of the first URL only: a redirect to
//! another origin (a CDN, a registry's blob store) loses them.

use crate::http::client::{HttpError, client_tls};
use std::path::Path;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Redirects followed per request.
pub const MAX_REDIRECTS: usize = 5;

/// Why a request failed. Every variant is a named refusal.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("CaFile: cannot use CA file {0}: {1}")]
    CaFile(String, String),
    #[error("NoRoots: no usable CA certificate")]
    NoRoots,
    #[error("BadUrl: {0}")]
    Url(String),
    #[error("SchemeRefused: {0}: only https:// is allowed")]
    Scheme(String),
    #[error("Timeout: {0}")]
    Timeout(String),
    #[error("Transport: {0}: {1}")]
    Transport(String, String),
    #[error("TooManyRedirects: {0}")]
    Redirects(String),
    #[error("TooLarge: answer of {0} exceeds {1} bytes")]
    TooLarge(String, u64),
    #[error("Body: {0}: {1}")]
    Body(String, String),
}

impl TransportError {
    /// The refusal's name.
    pub fn code(&self) -> &'static str {
        match self {
            TransportError::CaFile(..) => "CaFile",
            TransportError::NoRoots => "NoRoots",
            TransportError::Url(_) => "BadUrl",
            TransportError::Scheme(_) => "SchemeRefused",
            TransportError::Timeout(_) => "Timeout",
            TransportError::Transport(..) => "Transport",
            TransportError::Redirects(_) => "TooManyRedirects",
            TransportError::TooLarge(..) => "TooLarge",
            TransportError::Body(..) => "Body",
        }
    }
}

/// A pooled client for image sources.
#[derive(Clone)]
pub struct Transport {
    inner: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    timeout: Duration,
    allow_http: bool,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("timeout", &self.timeout)
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

/// `scheme://host:port` of a URL, to compare origins.
fn origin(u: &url::Url) -> (String, Option<String>, Option<u16>) {
    (
        u.scheme().to_string(),
        u.host_str().map(str::to_string),
        u.port_or_known_default(),
    )
}

impl Transport {
    /// Trusts the system roots plus `ca_file`; `allow_http` permits
    /// `http://` URLs (tests).
    pub fn new(
        ca_file: Option<&Path>,
        timeout: Duration,
        allow_http: bool,
    ) -> Result<Transport, TransportError> {
        let tls = client_tls(ca_file, None).map_err(|e| match e {
            HttpError::CaFile(f, why) => TransportError::CaFile(f, why),
            HttpError::NoRoots => TransportError::NoRoots,
            other => TransportError::Transport("tls".into(), other.to_string()),
        })?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        http.set_nodelay(true);
        let conn = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(conn);
        Ok(Transport {
            inner,
            timeout,
            allow_http,
        })
    }

    /// The URL parsed, its scheme allowed.
    pub fn check_url(&self, url: &str) -> Result<url::Url, TransportError> {
        let u = url::Url::parse(url).map_err(|_| TransportError::Url(url.into()))?;
        match u.scheme() {
            "https" => Ok(u),
            "http" if self.allow_http => Ok(u),
            _ => Err(TransportError::Scheme(u.to_string())),
        }
    }

    /// GET `url` with `headers`, following redirects. `auth` (an
    /// `Authorization` value) goes to the first URL's origin only.
    /// Returns the final URL and the response, body unread.
    pub async fn get(
        &self,
        url: &str,
        headers: &HeaderMap,
        auth: Option<&HeaderValue>,
    ) -> Result<(url::Url, Response<Incoming>), TransportError> {
        let first = self.check_url(url)?;
        let mut at = first.clone();
        for _ in 0..=MAX_REDIRECTS {
            let mut b = Request::builder().method(Method::GET).uri(at.as_str());
            for (k, v) in headers {
                b = b.header(k, v);
            }
            if let Some(a) = auth.filter(|_| origin(&at) == origin(&first)) {
                b = b.header(header::AUTHORIZATION, a);
            }
            let req = b
                .body(Empty::new())
                .map_err(|_| TransportError::Url(at.to_string()))?;
            let resp = tokio::time::timeout(self.timeout, self.inner.request(req))
                .await
                .map_err(|_| TransportError::Timeout(at.to_string()))?
                .map_err(|e| TransportError::Transport(at.to_string(), chain(&e)))?;
            let redirect = matches!(
                resp.status(),
                StatusCode::MOVED_PERMANENTLY
                    | StatusCode::FOUND
                    | StatusCode::SEE_OTHER
                    | StatusCode::TEMPORARY_REDIRECT
                    | StatusCode::PERMANENT_REDIRECT
            );
            if !redirect {
                return Ok((at, resp));
            }
            let loc = resp
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| TransportError::Url(format!("{at}: redirect without Location")))?;
            let next = at
                .join(loc)
                .map_err(|_| TransportError::Url(format!("{at}: bad Location")))?;
            at = self.check_url(next.as_str())?;
        }
        Err(TransportError::Redirects(url.into()))
    }

    /// The next chunk of a body; `None` at its end. Silence longer than
    /// the timeout is an error.
    pub async fn chunk(
        &self,
        url: &url::Url,
        body: &mut Incoming,
    ) -> Result<Option<Bytes>, TransportError> {
        loop {
            let f = tokio::time::timeout(self.timeout, body.frame())
                .await
                .map_err(|_| TransportError::Timeout(url.to_string()))?;
            match f {
                None => return Ok(None),
                Some(Err(e)) => return Err(TransportError::Body(url.to_string(), chain(&e))),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }

    /// A whole body of at most `cap` bytes.
    pub async fn read_capped(
        &self,
        url: &url::Url,
        resp: Response<Incoming>,
        cap: usize,
    ) -> Result<Bytes, TransportError> {
        let too_large = || TransportError::TooLarge(url.to_string(), cap as u64);
        if let Some(n) = content_length(resp.headers()) {
            if n > cap as u64 {
                return Err(too_large());
            }
        }
        let mut body = resp.into_body();
        let mut out = BytesMut::new();
        while let Some(c) = self.chunk(url, &mut body).await? {
            if out.len() + c.len() > cap {
                return Err(too_large());
            }
            out.extend_from_slice(&c);
        }
        Ok(out.freeze())
    }
}

/// `Content-Length`, when present and numeric.
pub fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}
