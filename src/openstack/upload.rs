//! Streaming uploads: a file sent as a request body in 256 KiB pieces read
//! as the connection drains them, so memory stays flat whatever the size
//! of the file (a Glance image is often tens of GB).
//!
//! The outbound client of [`crate::http::client`] buffers whole bodies
//! (`Full<Bytes>`); this file builds the same rustls/hyper connector around
//! a body type that reads from the file.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, Method, Request, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncRead, ReadBuf};

use super::session::{OpenStackError, Session};
use crate::http::client::HttpError;

/// Bytes read from the file per body frame.
const CHUNK: usize = 256 * 1024;

/// Longest time a stalled upload may go without the server taking data.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(300);

/// A request body that reads a file of known size.
struct FileBody {
    file: tokio::fs::File,
    buf: Box<[u8]>,
    remaining: u64,
}

impl Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = usize::try_from(this.remaining)
            .unwrap_or(usize::MAX)
            .min(this.buf.len());
        let mut rb = ReadBuf::new(&mut this.buf[..want]);
        match Pin::new(&mut this.file).poll_read(cx, &mut rb) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                if n == 0 {
                    // The file shrank under us: the declared length would lie.
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("file ended {} bytes early", this.remaining),
                    ))));
                }
                this.remaining -= n as u64;
                Poll::Ready(Some(Ok(Frame::data(Bytes::copy_from_slice(rb.filled())))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

fn client(
    ca_file: Option<&Path>,
) -> Result<Client<hyper_rustls::HttpsConnector<HttpConnector>, FileBody>, HttpError> {
    let tls = crate::http::client::client_tls(ca_file, None)?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(30)));
    http.set_nodelay(true);
    let conn = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build(conn))
}

/// Sends `path` as the body of `method url` with the session's token and
/// `content_type`. A status outside 2xx is an [`OpenStackError::Status`].
/// Memory use does not depend on the file's size.
pub async fn send_file(
    session: &Session,
    method: Method,
    url: &str,
    content_type: &str,
    path: &Path,
) -> Result<(), OpenStackError> {
    let io_err = |e: io::Error| {
        OpenStackError::Http(HttpError::Transport(
            url.into(),
            format!("{}: {e}", path.display()),
        ))
    };
    let file = tokio::fs::File::open(path).await.map_err(io_err)?;
    let size = file.metadata().await.map_err(io_err)?.len();
    let token = session.token().await?;
    let body = FileBody {
        file,
        buf: vec![0u8; CHUNK].into_boxed_slice(),
        remaining: size,
    };
    let req = Request::builder()
        .method(method.clone())
        .uri(url)
        .header(
            HeaderName::from_static("x-auth-token"),
            token.id.expose().to_string(),
        )
        .header(header::ACCEPT, "application/json")
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_LENGTH, size.to_string())
        .body(body)
        .map_err(|_| OpenStackError::Http(HttpError::Url(url.into())))?;
    let c = client(session.options().ca_file.as_deref())?;
    // The whole exchange may last hours for a big image; what must not
    // happen is a server that stops reading. hyper gives no per-write
    // deadline, so bound the exchange by size at a pessimistic 1 MB/s
    // plus the stall allowance.
    let deadline = STALL_TIMEOUT + Duration::from_secs(size / 1_000_000);
    let exchange = async {
        let resp = c.request(req).await.map_err(|e| {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(x) = src {
                s.push_str(": ");
                s.push_str(&x.to_string());
                src = x.source();
            }
            OpenStackError::Http(HttpError::Transport(url.into(), s))
        })?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), 1 << 20)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        if !status.is_success() {
            return Err(OpenStackError::Status {
                method,
                url: url.into(),
                status,
                detail: super::session::detail(&body),
            });
        }
        Ok(())
    };
    tokio::time::timeout(deadline, exchange)
        .await
        .map_err(|_| OpenStackError::Http(HttpError::Timeout(url.into())))?
}
