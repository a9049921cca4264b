//! Keystone under uWSGI, spoken to as Apache's mod_proxy_uwsgi does.
//!
//! One request per connection (the protocol has no keep-alive): the packet
//! header and environ, then exactly CONTENT_LENGTH body bytes, then uWSGI
//! answers with a plain HTTP/1.x response and closes.

pub mod frame;
pub mod response;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::header::{CONTENT_LENGTH, HeaderName, HeaderValue};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

use self::response::{Chunk, ChunkedDecoder, Framing};
use super::environ;
use super::outbound::{Outbound, UpstreamError};
use super::target::{Stream, Target, connect, connect_unix};
use crate::http::body::{Body, BoxError};
use crate::upstream::UpstreamConfig;

/// Room for a typical packet: Keystone requests carry a few dozen variables,
/// an X.509 login some more; the buffer grows beyond.
const PACKET_GUESS: usize = 2048;

pub struct UwsgiUpstream {
    pub target: Target,
    authority: String,
    pub connect_timeout: Duration,
    response_timeout: Duration,
    max_body: u64,
}

/// Parses a request's Content-Length, if it has one.
pub(crate) fn declared_length(parts: &http::request::Parts) -> Result<Option<u64>, UpstreamError> {
    match parts.headers.get(CONTENT_LENGTH) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| UpstreamError::BadRequest("invalid Content-Length".into())),
    }
}

impl UwsgiUpstream {
    pub fn new(target: Target, cfg: &UpstreamConfig, max_body: u64) -> Self {
        UwsgiUpstream {
            authority: target.authority(),
            target,
            connect_timeout: cfg.connect_timeout(),
            response_timeout: cfg.response_timeout(),
            max_body,
        }
    }

    pub async fn send(&self, req: Outbound<'_>) -> Result<http::Response<Body>, UpstreamError> {
        let Outbound {
            parts,
            body,
            conn,
            identity,
        } = req;
        let declared = declared_length(&parts)?;
        if declared.is_some_and(|n| n > self.max_body) {
            return Err(UpstreamError::BodyTooLarge(self.max_body));
        }
        // uwsgi needs CONTENT_LENGTH up front: a body of unknown length
        // (chunked, or HTTP/2 without the header) is buffered first.
        let (length, payload) = match declared {
            Some(n) => (n, Payload::Streaming(body, n)),
            None => {
                let bytes = collect_limited(body, self.max_body).await?;
                (bytes.len() as u64, Payload::Buffered(bytes))
            }
        };
        let cl = if length > 0 || declared.is_some() {
            Some(length)
        } else {
            None
        };
        let mut packet = frame::Packet::with_capacity(PACKET_GUESS);
        environ::write(&parts, conn, identity, cl, &mut packet);
        let packet = packet.finish().map_err(|e| match e {
            frame::FrameError::TooLarge(n) => UpstreamError::EnvironTooLarge(n),
            other => UpstreamError::BadRequest(other.to_string()),
        })?;

        match &self.target {
            Target::UwsgiUnix { path } => {
                let sock = connect_unix(path, self.connect_timeout).await?;
                self.exchange(sock, &packet, payload).await
            }
            _ => {
                let sock = connect(&self.authority, self.connect_timeout).await?;
                self.exchange(sock, &packet, payload).await
            }
        }
    }

    /// One request on a fresh connection: the packet, the body, then the
    /// response as it arrives.
    async fn exchange<S: Stream>(
        &self,
        mut sock: S,
        packet: &[u8],
        body: Payload,
    ) -> Result<http::Response<Body>, UpstreamError> {
        sock.write_all(packet).await.map_err(UpstreamError::Io)?;
        match body {
            Payload::Buffered(b) => sock.write_all(&b).await.map_err(UpstreamError::Io)?,
            Payload::Streaming(body, length) => copy_exact(body, &mut sock, length).await?,
        }
        sock.flush().await.map_err(UpstreamError::Io)?;
        self.read_response(sock).await
    }

    async fn read_response<S: Stream>(
        &self,
        mut sock: S,
    ) -> Result<http::Response<Body>, UpstreamError> {
        let mut buf = BytesMut::with_capacity(8192);
        let head = tokio::time::timeout(self.response_timeout, async {
            loop {
                if let Some((head, n)) = response::parse_head(&buf)
                    .map_err(|e| UpstreamError::BadResponse(e.to_string()))?
                {
                    let _ = buf.split_to(n);
                    return Ok(head);
                }
                if sock.read_buf(&mut buf).await.map_err(UpstreamError::Io)? == 0 {
                    return Err(UpstreamError::BadResponse(
                        "connection closed before a response".into(),
                    ));
                }
            }
        })
        .await
        .map_err(|_| UpstreamError::ResponseTimeout)??;

        let mut resp = http::Response::builder().status(head.status);
        for (name, value) in &head.headers {
            let skip = crate::http::hop::is_hop_by_hop(name)
                || (name.eq_ignore_ascii_case("content-length")
                    && !matches!(head.framing, Framing::Length(_)));
            if skip {
                continue;
            }
            match (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_bytes(value),
            ) {
                (Ok(n), Ok(v)) => {
                    resp = resp.header(n, v);
                }
                _ => {
                    tracing::warn!(header = %name, "dropped an invalid response header from Keystone")
                }
            }
        }
        // The socket lives in the body until the body is read: closing it as
        // soon as a whole response is in `buf` was measured to leave
        // fedgate, not uWSGI, the active closer far more often (TIME_WAIT
        // on fedgate's ephemeral ports: 1757 against 238 in 5 s at 15k
        // req/s, docs/performance.md), for no CPU gained.
        let body = response_body(sock, buf, head.framing, self.response_timeout);
        resp.body(body)
            .map_err(|e| UpstreamError::BadResponse(e.to_string()))
    }
}

/// The request body: read already (its length was unknown), or to be
/// streamed with its declared length.
enum Payload {
    Buffered(Bytes),
    Streaming(Body, u64),
}

async fn collect_limited(mut body: Body, max: u64) -> Result<Bytes, UpstreamError> {
    let mut out = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| UpstreamError::client_body(&e))?;
        if let Ok(data) = frame.into_data() {
            if (out.len() + data.len()) as u64 > max {
                return Err(UpstreamError::BodyTooLarge(max));
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out.freeze())
}

/// Streams exactly `length` bytes of `body` to `sock`.
async fn copy_exact<W: AsyncWrite + Unpin>(
    mut body: Body,
    sock: &mut W,
    length: u64,
) -> Result<(), UpstreamError> {
    let mut sent = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| UpstreamError::client_body(&e))?;
        if let Ok(data) = frame.into_data() {
            sent += data.len() as u64;
            if sent > length {
                return Err(UpstreamError::ClientBody(
                    "body is longer than its Content-Length".into(),
                ));
            }
            sock.write_all(&data).await.map_err(UpstreamError::Io)?;
        }
    }
    if sent != length {
        return Err(UpstreamError::ClientBody(format!(
            "body ended after {sent} of {length} bytes"
        )));
    }
    Ok(())
}

struct BodyState<S> {
    sock: S,
    buf: BytesMut,
    framing: Framing,
    chunked: ChunkedDecoder,
    left: u64,
    done: bool,
    idle: Duration,
}

/// Streams the response body as it arrives.
fn response_body<S: Stream>(sock: S, buf: BytesMut, framing: Framing, idle: Duration) -> Body {
    let left = if let Framing::Length(n) = framing {
        n
    } else {
        0
    };
    let st = BodyState {
        sock,
        buf,
        framing,
        chunked: ChunkedDecoder::default(),
        left,
        done: false,
        idle,
    };
    let stream = futures_util::stream::unfold(st, |mut st| async move {
        if st.done {
            return None;
        }
        match next_data(&mut st).await {
            Ok(Some(b)) => Some((Ok(Frame::data(b)), st)),
            Ok(None) => None,
            Err(e) => {
                st.done = true;
                Some((Err(e), st))
            }
        }
    });
    BodyExt::boxed_unsync(StreamBody::new(stream.boxed()))
}

async fn fill<S: Stream>(st: &mut BodyState<S>) -> Result<usize, BoxError> {
    match tokio::time::timeout(st.idle, st.sock.read_buf(&mut st.buf)).await {
        Ok(r) => Ok(r?),
        Err(_) => Err("Keystone stopped sending the response body".into()),
    }
}

async fn next_data<S: Stream>(st: &mut BodyState<S>) -> Result<Option<Bytes>, BoxError> {
    loop {
        match st.framing {
            Framing::Length(_) => {
                if st.left == 0 {
                    return Ok(None);
                }
                if st.buf.is_empty() && fill(st).await? == 0 {
                    return Err("Keystone closed the connection before the end of the body".into());
                }
                let n = (st.left as usize).min(st.buf.len());
                st.left -= n as u64;
                return Ok(Some(st.buf.split_to(n).freeze()));
            }
            Framing::UntilClose => {
                if st.buf.is_empty() && fill(st).await? == 0 {
                    return Ok(None);
                }
                return Ok(Some(st.buf.split().freeze()));
            }
            Framing::Chunked => match st.chunked.decode(&mut st.buf)? {
                Chunk::Data(b) => return Ok(Some(b)),
                Chunk::Done => return Ok(None),
                Chunk::NeedMore => {
                    if fill(st).await? == 0 {
                        return Err("Keystone closed the connection inside a chunked body".into());
                    }
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::UnixListener;

    fn upstream(path: &std::path::Path) -> UwsgiUpstream {
        let cfg: UpstreamConfig =
            toml::from_str(&format!("url = \"uwsgi://{}\"", path.display())).expect("config");
        let target = Target::UwsgiUnix {
            path: path.to_path_buf(),
        };
        UwsgiUpstream::new(target, &cfg, 1 << 20)
    }

    fn conn() -> crate::conn::ConnInfo {
        crate::conn::ConnInfo {
            peer: "192.0.2.7:40000".parse().unwrap(),
            local: "127.0.0.1:5000".parse().unwrap(),
            tls: None,
        }
    }

    /// Reads one request (packet and `body` bytes), answers `response`.
    async fn uwsgi_once(l: UnixListener, body: usize, response: &'static [u8]) -> Vec<u8> {
        let (mut s, _) = l.accept().await.unwrap();
        let mut req = vec![0u8; 4];
        s.read_exact(&mut req).await.unwrap();
        let size = u16::from_le_bytes([req[1], req[2]]) as usize;
        req.resize(4 + size + body, 0);
        s.read_exact(&mut req[4..]).await.unwrap();
        s.write_all(response).await.unwrap();
        req
    }

    /// A body that is not whole in the first read is still streamed from
    /// the socket (and the socket stays open until then).
    #[tokio::test]
    async fn a_partial_response_is_streamed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.sock");
        let up = upstream(&path);
        let l = UnixListener::bind(&path).unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut h = [0u8; 4];
            s.read_exact(&mut h).await.unwrap();
            let mut vars = vec![0u8; u16::from_le_bytes([h[1], h[2]]) as usize];
            s.read_exact(&mut vars).await.unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello")
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            s.write_all(b"world").await.unwrap();
        });
        let (parts, _) = http::Request::get("/v3").body(()).unwrap().into_parts();
        let c = conn();
        let resp = up
            .send(Outbound {
                parts,
                body: crate::http::body::full(Bytes::new()),
                conn: &c,
                identity: None,
            })
            .await
            .unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"helloworld");
        server.await.unwrap();
    }

    /// A body of unknown length (read first) follows the packet, and its
    /// length is the CONTENT_LENGTH uWSGI is given.
    #[tokio::test]
    async fn a_buffered_body_follows_the_packet() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.sock");
        let up = upstream(&path);
        let server = tokio::spawn(uwsgi_once(
            UnixListener::bind(&path).unwrap(),
            7,
            b"HTTP/1.1 204 No Content\r\n\r\n",
        ));
        let (parts, _) = http::Request::post("/v3/auth/tokens")
            .body(())
            .unwrap()
            .into_parts();
        let c = conn();
        let resp = up
            .send(Outbound {
                parts,
                body: crate::http::body::full(Bytes::from_static(b"{\"x\":1}")),
                conn: &c,
                identity: None,
            })
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
        let req = server.await.unwrap();
        let (env, n) = frame::decode(&req).unwrap();
        assert!(env.iter().any(|(k, v)| k == b"CONTENT_LENGTH" && v == b"7"));
        assert_eq!(&req[n..], b"{\"x\":1}");
    }
}
