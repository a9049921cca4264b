//! One client connection after its TLS handshake: HTTP/1.1 or HTTP/2, and
//! the timeouts that keep a silent client from holding its slot.
//!
//! Every state a connection can be in ends after `server.header_timeout_secs`
//! of silence from the client:
//! - waiting for a request head (HTTP/1.1): hyper's header read timeout;
//! - waiting for the first bytes that tell HTTP/1.1 from HTTP/2, when TLS
//!   negotiated no ALPN protocol: the idle timer below;
//! - HTTP/2 with no open stream: the idle timer below, which sends GOAWAY
//!   (RFC 9113 §6.8) through hyper's graceful shutdown;
//! - HTTP/2 with streams open but nothing read from the client: a PING
//!   (RFC 9113 §6.7) that must be answered within the same time;
//! - a request body being forwarded: each next piece must come within it
//!   (`crate::http::body::with_idle_timeout`, set by the pipeline), or 408.
//!
//! A connection that does not close within that time once asked to is
//! dropped. Requests in flight are not cut: the idle timer only runs while
//! no request is open.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::sync::Notify;

use super::parse_errors::ParseErrorBodies;
use super::pipeline;
use super::runtime::Shared;
use crate::conn::ConnInfo;
use crate::http::body::{Body, BoxError};
use crate::shutdown::Shutdown;

/// hyper's server settings. `wait` (`server.header_timeout_secs`) bounds
/// how long a client may take to send a request head, and how long an
/// HTTP/2 client may stay silent before it must answer a PING.
fn http_builder(wait: Duration) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(wait)
        .keep_alive(true)
        .max_buf_size(128 * 1024);
    b.http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(wait)
        .keep_alive_timeout(wait)
        .max_concurrent_streams(128)
        .max_header_list_size(128 * 1024);
    b
}

/// Requests open on one connection, and when the last one ended.
#[derive(Debug, Default)]
struct Activity {
    open: AtomicUsize,
    /// Bumped whenever a request starts or the last one ends, so that an
    /// idle period is measured from the last change.
    epoch: AtomicU64,
    idle: Notify,
}

/// One open request: from its head to the end of its response body.
struct Open(Arc<Activity>);

impl Activity {
    fn begin(self: &Arc<Self>) -> Open {
        self.open.fetch_add(1, Ordering::SeqCst);
        self.epoch.fetch_add(1, Ordering::SeqCst);
        Open(self.clone())
    }

    fn is_idle(&self) -> bool {
        self.open.load(Ordering::SeqCst) == 0
    }

    /// Returns once no request has been open for `d`.
    async fn idle_for(&self, d: Duration) {
        loop {
            loop {
                let notified = self.idle.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.open.load(Ordering::SeqCst) == 0 {
                    break;
                }
                notified.await;
            }
            let epoch = self.epoch.load(Ordering::SeqCst);
            tokio::time::sleep(d).await;
            if self.open.load(Ordering::SeqCst) == 0 && self.epoch.load(Ordering::SeqCst) == epoch {
                return;
            }
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.epoch.fetch_add(1, Ordering::SeqCst);
            self.0.idle.notify_waiters();
        }
    }
}

/// A response body that keeps its request open until hyper has sent it
/// all (or dropped it).
struct Tracked {
    inner: Body,
    _open: Open,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serves HTTP on an established connection until the client leaves, it
/// stays silent too long, or `shutdown` fires and its requests are done.
pub async fn serve<I>(shared: Arc<Shared>, conn: Arc<ConnInfo>, io: I, shutdown: Shutdown)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    shared.metrics.connections.inc();
    let activity = Arc::new(Activity::default());
    let svc = {
        let (shared, conn, activity) = (shared.clone(), conn.clone(), activity.clone());
        service_fn(move |req| {
            let open = activity.begin();
            let (shared, conn) = (shared.clone(), conn.clone());
            async move {
                // Boxed: hyper keeps one slot per connection for the
                // service's future, sized for it even while no request is
                // in flight. The pipeline's future is large (about 12 KB),
                // so an idle keep-alive connection would hold that much for
                // nothing; boxed, it exists only while a request does.
                let resp = Box::pin(pipeline::handle(shared, conn, req)).await?;
                Ok::<_, std::convert::Infallible>(resp.map(|inner| Tracked { inner, _open: open }))
            }
        })
    };
    let wait = shared.runtime.load().config.server.header_timeout();
    // ALPN already chose the protocol: skip auto-detection's preface peek.
    let builder = match conn.tls.as_ref().and_then(|t| t.alpn.as_deref()) {
        Some(b"h2") => http_builder(wait).http2_only(),
        Some(b"http/1.1") => http_builder(wait).http1_only(),
        _ => http_builder(wait),
    };
    // hyper's own answers to unparsable requests get fedgate's JSON body.
    let io = {
        let idle = activity.clone();
        let (shared, peer) = (shared.clone(), conn.peer);
        ParseErrorBodies::new(
            io,
            Box::new(move || idle.is_idle()),
            Box::new(move |status| {
                shared
                    .metrics
                    .requests
                    .get_or_create(&crate::metrics::RequestLabels {
                        route: "-".into(),
                        status: status.as_u16(),
                    })
                    .inc();
                tracing::info!(peer = %peer, status = status.as_u16(), "refused a request hyper could not parse");
            }),
        )
    };
    let served = builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(served);
    // Once asked to close, a connection gets `wait` to do so, unless it is
    // finishing requests for a shutdown (whose drain time then governs).
    let mut deadline: Option<tokio::time::Instant> = None;
    let mut closing = false;
    let result = loop {
        tokio::select! {
            r = served.as_mut() => break r,
            _ = activity.idle_for(wait), if !closing => {
                tracing::debug!(peer = %conn.peer, seconds = wait.as_secs(), "closing a connection idle for header_timeout_secs");
                served.as_mut().graceful_shutdown();
                closing = true;
                deadline = Some(tokio::time::Instant::now() + wait);
            }
            _ = shutdown.wait(), if !closing => {
                served.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = sleep_until(deadline), if deadline.is_some() => {
                tracing::info!(peer = %conn.peer, "connection did not close when asked; dropped");
                break Ok(());
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(peer = %conn.peer, error = %e, "connection ended with an error");
    }
    shared.metrics.connections.dec();
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_is_measured_from_the_last_request() {
        let a = Arc::new(Activity::default());
        let d = Duration::from_secs(10);
        let t0 = tokio::time::Instant::now();
        let open = a.begin();
        let waiter = {
            let a = a.clone();
            tokio::spawn(async move { a.idle_for(d).await })
        };
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(!waiter.is_finished(), "never idle while a request is open");
        drop(open);
        let t1 = tokio::time::Instant::now();
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(a.begin());
        waiter.await.unwrap();
        let waited = tokio::time::Instant::now() - t1;
        assert!(waited >= Duration::from_secs(15), "{waited:?}");
        assert!(tokio::time::Instant::now() - t0 >= Duration::from_secs(45));
    }
}
