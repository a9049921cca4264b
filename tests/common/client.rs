//! A blocking HTTP/1.1 client over rustls (or plain TCP) that writes
//! exactly what a test asks for: header names with `_`, duplicate headers,
//! chunked bodies, garbage. Reads one response at a time so a test can
//! keep a connection open across a reload.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::ResolvesClientCert;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

pub fn certs(path: &std::path::Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .map(|c| c.unwrap())
        .collect()
}

pub fn key(path: &std::path::Path) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_file(path).unwrap()
}

/// Presents a fixed certificate and signs with a fixed key, whether or not
/// they belong together (rustls' own builder refuses a mismatch).
#[derive(Debug)]
struct FixedCert(Arc<CertifiedKey>);

impl ResolvesClientCert for FixedCert {
    fn resolve(
        &self,
        _hints: &[&[u8]],
        _schemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Client config trusting the test CA. `versions` None means 1.2 and 1.3;
/// `client` is (certificate chain, private key) to present.
pub fn config(
    ca_file: &std::path::Path,
    versions: Option<&[&'static rustls::SupportedProtocolVersion]>,
    alpn: &[&[u8]],
    client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in certs(ca_file) {
        roots.add(c).unwrap();
    }
    const BOTH: &[&rustls::SupportedProtocolVersion] =
        &[&rustls::version::TLS13, &rustls::version::TLS12];
    let versions = versions.unwrap_or(BOTH);
    let p = provider();
    let b = ClientConfig::builder_with_provider(p.clone())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    let mut cfg = match client {
        None => b.with_no_client_auth(),
        Some((chain, key)) => {
            let signer = p.key_provider.load_private_key(key).unwrap();
            b.with_client_cert_resolver(Arc::new(FixedCert(Arc::new(CertifiedKey::new(
                chain, signer,
            )))))
        }
    };
    cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    Arc::new(cfg)
}

enum Stream {
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
    Plain(TcpStream),
}

/// Reads plaintext without first flushing pending writes (which
/// `StreamOwned::read` does): after a server answered early and closed, the
/// unsent rest of a request body must not turn the answer into EPIPE.
fn tls_read(
    s: &mut StreamOwned<ClientConnection, TcpStream>,
    out: &mut [u8],
) -> std::io::Result<usize> {
    loop {
        match s.conn.reader().read(out) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        if s.conn.read_tls(&mut s.sock)? == 0 {
            return Ok(0);
        }
        s.conn
            .process_new_packets()
            .map_err(std::io::Error::other)?;
    }
}

pub struct Client {
    stream: Stream,
    buf: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Client {
    pub fn connect(addr: SocketAddr, cfg: Arc<ClientConfig>) -> std::io::Result<Client> {
        Client::over(TcpStream::connect(addr)?, cfg)
    }

    /// TLS over a TCP connection opened already.
    pub fn over(tcp: TcpStream, cfg: Arc<ClientConfig>) -> std::io::Result<Client> {
        tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
        let conn = ClientConnection::new(cfg, ServerName::try_from("localhost").unwrap())
            .map_err(std::io::Error::other)?;
        let mut s = StreamOwned::new(conn, tcp);
        // Drive the handshake now so handshake failures surface here.
        while s.conn.is_handshaking() {
            s.conn.complete_io(&mut s.sock)?;
        }
        Ok(Client {
            stream: Stream::Tls(Box::new(s)),
            buf: Vec::new(),
        })
    }

    pub fn plain(addr: SocketAddr) -> std::io::Result<Client> {
        let tcp = TcpStream::connect(addr)?;
        tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Client {
            stream: Stream::Plain(tcp),
            buf: Vec::new(),
        })
    }

    pub fn tls(&self) -> Option<&ClientConnection> {
        match &self.stream {
            Stream::Tls(s) => Some(&s.conn),
            Stream::Plain(_) => None,
        }
    }

    pub fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match &mut self.stream {
            Stream::Tls(s) => {
                s.write_all(b)?;
                s.flush()
            }
            Stream::Plain(s) => s.write_all(b),
        }
    }

    /// Reads whatever arrives until the server closes the connection or
    /// `limit` passes: (bytes, whether the server closed).
    pub fn read_until_close(&mut self, limit: Duration) -> (Vec<u8>, bool) {
        let deadline = std::time::Instant::now() + limit;
        let sock = match &self.stream {
            Stream::Tls(s) => &s.sock,
            Stream::Plain(s) => s,
        };
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut out = std::mem::take(&mut self.buf);
        while std::time::Instant::now() < deadline {
            match self.read_more() {
                Ok(0) => return (out, true),
                Ok(_) => out.append(&mut self.buf),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return (out, true),
            }
        }
        (out, false)
    }

    fn read_more(&mut self) -> std::io::Result<usize> {
        let mut tmp = [0u8; 16384];
        let n = match &mut self.stream {
            Stream::Tls(s) => tls_read(s, &mut tmp)?,
            Stream::Plain(s) => s.read(&mut tmp)?,
        };
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n)
    }

    /// A request with a Content-Length body (none if empty and not needed).
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        self.try_request(method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    pub fn try_request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Resp> {
        let mut head = format!("{method} {path} HTTP/1.1\r\n");
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            head.push_str("Host: localhost\r\n");
        }
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut raw = head.into_bytes();
        raw.extend_from_slice(body);
        // A server may answer (413) and close before taking the whole body:
        // the answer is still there to read.
        let written = self.write_all(&raw);
        match self.read_response(method == "HEAD") {
            Err(e) if written.is_err() => Err(written.unwrap_err()).map_err(|w: std::io::Error| {
                std::io::Error::other(format!("write: {w}; read: {e}"))
            }),
            r => r,
        }
    }

    /// Reads one response. `head_only` for HEAD requests.
    pub fn read_response(&mut self, head_only: bool) -> std::io::Result<Resp> {
        let (status, headers, used) = loop {
            let mut hs = [httparse::EMPTY_HEADER; 64];
            let mut r = httparse::Response::new(&mut hs);
            match r.parse(&self.buf).map_err(std::io::Error::other)? {
                httparse::Status::Complete(n) => {
                    let headers: Vec<(String, String)> = r
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_string(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect();
                    break (r.code.unwrap(), headers, n);
                }
                httparse::Status::Partial => {
                    if self.read_more()? == 0 {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "connection closed before a response",
                        ));
                    }
                }
            }
        };
        self.buf.drain(..used);
        let find = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        let mut body = Vec::new();
        if head_only || status == 204 || status == 304 || (100..200).contains(&status) {
        } else if find("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
            loop {
                let line = self.read_line()?;
                let size = usize::from_str_radix(line.split(';').next().unwrap().trim(), 16)
                    .map_err(std::io::Error::other)?;
                if size == 0 {
                    while !self.read_line()?.is_empty() {}
                    break;
                }
                self.fill(size + 2)?;
                body.extend_from_slice(&self.buf[..size]);
                self.buf.drain(..size + 2);
            }
        } else if let Some(n) = find("content-length") {
            let n: usize = n.trim().parse().map_err(std::io::Error::other)?;
            self.fill(n)?;
            body = self.buf.drain(..n).collect();
        } else {
            while self.read_more()? > 0 {}
            body = std::mem::take(&mut self.buf);
        }
        Ok(Resp {
            status,
            headers,
            body,
        })
    }

    fn fill(&mut self, n: usize) -> std::io::Result<()> {
        while self.buf.len() < n {
            if self.read_more()? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed inside a body",
                ));
            }
        }
        Ok(())
    }

    fn read_line(&mut self) -> std::io::Result<String> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return Ok(line);
            }
            if self.read_more()? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed inside a chunk header",
                ));
            }
        }
    }
}
