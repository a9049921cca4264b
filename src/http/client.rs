//! The small HTTP client fedgate uses to talk to identity providers
//! (discovery, JWKS, introspection, userinfo).
//!
//! Why our own: one pooled hyper client per IdP with rustls (aws-lc-rs),
//! the system roots plus an optional per-IdP CA file (research IdPs
//! behind IGTF or private CAs), a hard timeout on the whole exchange, and
//! a cap on response sizes, so a misbehaving IdP can neither hang a request
//! nor make fedgate buffer without bound.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Largest IdP answer accepted (dave's introspection answer is ~7 KB; JWKS
/// documents of big federations stay well below this).
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// Debian's bundle; `SSL_CERT_FILE` overrides it as OpenSSL would.
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot read CA file {0}: {1}")]
    CaFile(String, String),
    #[error("no usable CA certificate (system bundle and ca_file both empty)")]
    NoRoots,
    #[error("bad URL {0}")]
    Url(String),
    #[error("request to {0} timed out")]
    Timeout(String),
    #[error("request to {0} failed: {1}")]
    Transport(String, String),
    #[error("answer from {0} is too large or broken: {1}")]
    Body(String, String),
}

/// A response: status and the whole (bounded) body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// A pooled client for one IdP.
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("timeout", &self.timeout)
            .finish()
    }
}

fn load_pem(path: &Path, roots: &mut rustls::RootCertStore) -> Result<usize, HttpError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| HttpError::CaFile(path.display().to_string(), e.to_string()))?;
    let mut n = 0;
    for c in certs {
        let c = c.map_err(|e| HttpError::CaFile(path.display().to_string(), e.to_string()))?;
        if roots.add(c).is_ok() {
            n += 1;
        }
    }
    Ok(n)
}

/// The TLS configuration of every outbound client fedgate makes (IdPs,
/// OpenStack, AMS, image sources): the system roots (`SSL_CERT_FILE`
/// overrides the bundle, as in OpenSSL) plus `ca_file`, which must hold a
/// certificate; a client certificate when given.
pub fn client_tls(
    ca_file: Option<&Path>,
    client_cert: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<rustls::ClientConfig, HttpError> {
    let mut roots = rustls::RootCertStore::empty();
    let system = std::env::var_os("SSL_CERT_FILE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| SYSTEM_BUNDLE.into());
    // A missing system bundle is not fatal when a CA file is given.
    let _ = load_pem(&system, &mut roots);
    if let Some(ca) = ca_file {
        if load_pem(ca, &mut roots)? == 0 {
            return Err(HttpError::CaFile(
                ca.display().to_string(),
                "no certificate in file".into(),
            ));
        }
    }
    if roots.is_empty() {
        return Err(HttpError::NoRoots);
    }
    let tls = rustls::ClientConfig::builder_with_provider(crate::crypto::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| HttpError::Transport("tls".into(), e.to_string()))?
        .with_root_certificates(roots);
    Ok(match client_cert {
        Some((chain, key)) => tls
            .with_client_auth_cert(chain, key)
            .map_err(|e| HttpError::Transport("tls client certificate".into(), e.to_string()))?,
        None => tls.with_no_client_auth(),
    })
}

impl HttpClient {
    /// A client trusting the system roots plus `ca_file`, if given.
    pub fn new(ca_file: Option<&Path>, timeout: Duration) -> Result<HttpClient, HttpError> {
        Self::with_client_cert(ca_file, None, timeout)
    }

    /// [`HttpClient::new`] that also presents a TLS client certificate
    /// (chain, leaf first, and its key) when given: the AMS `authx509`
    /// call exchanges the host certificate for a token.
    pub fn with_client_cert(
        ca_file: Option<&Path>,
        client_cert: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
        timeout: Duration,
    ) -> Result<HttpClient, HttpError> {
        let tls = client_tls(ca_file, client_cert)?;
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
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(32)
            .build(conn);
        Ok(HttpClient { inner, timeout })
    }

    /// GET, asking for JSON.
    pub async fn get(&self, url: &str, bearer: Option<&str>) -> Result<Answer, HttpError> {
        let mut b = Request::builder()
            .method(Method::GET)
            .uri(url)
            .header(header::ACCEPT, "application/json");
        if let Some(t) = bearer {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = b
            .body(Full::new(Bytes::new()))
            .map_err(|_| HttpError::Url(url.into()))?;
        self.send(url, req).await
    }

    /// POST an `application/x-www-form-urlencoded` body, with HTTP Basic
    /// client authentication when `basic` is given (RFC 6749 §2.3.1: id
    /// and secret are form-encoded before base64).
    pub async fn post_form(
        &self,
        url: &str,
        basic: Option<(&str, &str)>,
        form: &[(&str, &str)],
    ) -> Result<Answer, HttpError> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut b = Request::builder()
            .method(Method::POST)
            .uri(url)
            .header(header::ACCEPT, "application/json")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some((id, secret)) = basic {
            b = b.header(header::AUTHORIZATION, basic_auth(id, secret));
        }
        let req = b
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| HttpError::Url(url.into()))?;
        self.send(url, req).await
    }

    /// Any method with extra headers and an optional `(content type, body)`,
    /// reading at most `limit` bytes of the answer. For APIs (OpenStack,
    /// registries) whose listings can exceed [`MAX_RESPONSE_BYTES`].
    pub async fn request(
        &self,
        method: Method,
        url: &str,
        headers: &[(http::HeaderName, String)],
        body: Option<(&str, Bytes)>,
        limit: usize,
    ) -> Result<Answer, HttpError> {
        let mut b = Request::builder().method(method).uri(url);
        for (k, v) in headers {
            b = b.header(k, v);
        }
        let body = match body {
            Some((ct, bytes)) => {
                b = b.header(header::CONTENT_TYPE, ct);
                bytes
            }
            None => Bytes::new(),
        };
        let req = b
            .body(Full::new(body))
            .map_err(|_| HttpError::Url(url.into()))?;
        self.send_limited(url, req, limit).await
    }

    /// POST a JSON body with extra request headers (`x-api-key` of AMS).
    pub async fn post_json(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Answer, HttpError> {
        let mut b = Request::builder()
            .method(Method::POST)
            .uri(url)
            .header(header::ACCEPT, "application/json")
            .header(header::CONTENT_TYPE, "application/json");
        for (name, value) in headers {
            b = b.header(*name, *value);
        }
        let req = b
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| HttpError::Url(url.into()))?;
        self.send(url, req).await
    }

    async fn send(&self, url: &str, req: Request<Full<Bytes>>) -> Result<Answer, HttpError> {
        self.send_limited(url, req, MAX_RESPONSE_BYTES).await
    }

    async fn send_limited(
        &self,
        url: &str,
        req: Request<Full<Bytes>>,
        limit: usize,
    ) -> Result<Answer, HttpError> {
        let exchange = async {
            let resp = self
                .inner
                .request(req)
                .await
                .map_err(|e| HttpError::Transport(url.into(), error_chain(&e)))?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = Limited::new(resp.into_body(), limit)
                .collect()
                .await
                .map_err(|e| HttpError::Body(url.into(), e.to_string()))?
                .to_bytes();
            Ok(Answer {
                status,
                headers,
                body,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| HttpError::Timeout(url.into()))?
    }
}

/// `Basic base64(urlencode(id):urlencode(secret))`.
pub fn basic_auth(id: &str, secret: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let raw = format!("{}:{}", enc(id), enc(secret));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_encodes_reserved_characters() {
        // "a:b" must not be confused with the separator.
        assert_eq!(
            basic_auth("gateway", "gateway-secret"),
            "Basic Z2F0ZXdheTpnYXRld2F5LXNlY3JldA=="
        );
        let v = basic_auth("a:b", "p w");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(v.strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(raw, b"a%3Ab:p+w");
    }
}
