//! An HTTP/2 client for tests that must send what curl will not: a Host
//! header beside `:authority`, several `cookie` fields, HEAD. hyper's own
//! client over rustls, on a runtime of its own, one request per call.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};

#[derive(Debug)]
pub struct H2Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl H2Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// Sends `req` (its URI absolute: scheme and authority become the
/// pseudo-headers) over a new HTTP/2 connection to `addr`.
pub fn request(
    addr: SocketAddr,
    ca_file: &Path,
    req: http::Request<Bytes>,
) -> Result<H2Resp, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cfg = super::client::config(ca_file, None, &[b"h2"], None);
    rt.block_on(async move {
        let exchange = async {
            let tcp = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| e.to_string())?;
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let tls = tokio_rustls::TlsConnector::from(cfg)
                .connect(name, tcp)
                .await
                .map_err(|e| e.to_string())?;
            let (mut send, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                    .await
                    .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            let (parts, body) = req.into_parts();
            let resp = send
                .send_request(http::Request::from_parts(parts, Full::new(body)))
                .await
                .map_err(|e| format!("{e:?}"))?;
            let (parts, body) = resp.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| format!("body: {e:?}"))?
                .to_bytes();
            Ok(H2Resp {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body: body.to_vec(),
            })
        };
        tokio::time::timeout(Duration::from_secs(30), exchange)
            .await
            .map_err(|_| "timed out".to_string())?
    })
}

/// `https://localhost:<port><path>`.
pub fn uri(addr: SocketAddr, path: &str) -> String {
    format!("https://localhost:{}{path}", addr.port())
}
