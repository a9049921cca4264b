//! One client connection after its TLS handshake: HTTP/1.1 or HTTP/2, and
//! the timeouts that keep a silent client from holding its slot.
//!
//! Every state a connection can be in ends after `server.header_timeout_secs`
//! of silence from the client:
//! - waiting for a request head (HTTP/1.1): hyper's header read timeout;
//! - an HTTP/1.1 connection idle for a second, parked without hyper's
//!   buffers ([`super::park`]): the idle timer below, counted from the end
//!   of its last request, which parking and waking do not move;
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

use super::park;
use super::parse_errors::ParseErrorBodies;
use super::pipeline;
use super::runtime::Shared;
use crate::conn::{Alpn, ConnInfo};
use crate::http::body::{Body, BoxError};
use crate::shutdown::Shutdown;

/// hyper's server settings. `wait` (`server.header_timeout_secs`) bounds
/// how long a client may take to send a request head, and how long an
/// HTTP/2 client may stay silent before it must answer a PING.
/// Largest request head hyper buffers, HTTP/1 (both builders).
const MAX_BUF: usize = 128 * 1024;

fn http_builder(wait: Duration) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(wait)
        .keep_alive(true)
        .max_buf_size(MAX_BUF);
    b.http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(wait)
        .keep_alive_timeout(wait)
        .max_concurrent_streams(128)
        .max_header_list_size(128 * 1024);
    b
}

/// Requests open on one connection, and when that last changed.
#[derive(Debug)]
struct Activity {
    open: AtomicUsize,
    /// Nanoseconds from `base` to the last time a request started or the
    /// last open one ended; strictly increasing, so it also tells one
    /// change from the next. Idle periods are measured from it, so that
    /// the idle deadline stays where it was when the connection is parked
    /// and served again.
    changed: AtomicU64,
    base: tokio::time::Instant,
    /// Signalled when the last open request ends.
    idle: Notify,
    /// Signalled when a request starts.
    busy: Notify,
}

/// One open request: from its head to the end of its response body.
struct Open(Arc<Activity>);

impl Activity {
    fn new() -> Self {
        Activity {
            open: AtomicUsize::new(0),
            changed: AtomicU64::new(0),
            base: tokio::time::Instant::now(),
            idle: Notify::new(),
            busy: Notify::new(),
        }
    }

    fn begin(self: &Arc<Self>) -> Open {
        self.open.fetch_add(1, Ordering::SeqCst);
        self.touch();
        self.busy.notify_waiters();
        Open(self.clone())
    }

    /// Records a change now.
    fn touch(&self) {
        let now = self.base.elapsed().as_nanos() as u64;
        let _ = self
            .changed
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| Some(now.max(c + 1)));
    }

    /// The last change, as a stamp for [`Activity::idle_for`]'s `skip`.
    fn stamp(&self) -> u64 {
        self.changed.load(Ordering::SeqCst)
    }

    fn is_idle(&self) -> bool {
        self.open.load(Ordering::SeqCst) == 0
    }

    /// Returns once no request has been open for `d`, counted from the
    /// last change. With `skip`, the idle period that began at that stamp
    /// does not count: it waits for a request and the idle time after it.
    async fn idle_for(&self, d: Duration, skip: Option<u64>) {
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
            let stamp = self.stamp();
            if skip == Some(stamp) {
                let started = self.busy.notified();
                tokio::pin!(started);
                started.as_mut().enable();
                if self.stamp() == stamp {
                    started.await;
                }
                continue;
            }
            tokio::time::sleep_until(self.base + Duration::from_nanos(stamp) + d).await;
            if self.open.load(Ordering::SeqCst) == 0 && self.stamp() == stamp {
                return;
            }
        }
    }

    /// When the current idle period reaches `d` (meaningful while idle).
    fn idle_deadline(&self, d: Duration) -> tokio::time::Instant {
        self.base + Duration::from_nanos(self.stamp()) + d
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.touch();
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
    let activity = Arc::new(Activity::new());
    let svc = {
        let (shared, conn, activity) = (shared.clone(), conn.clone(), activity.clone());
        service_fn(move |req| -> Pin<Box<dyn Future<Output = Served> + Send>> {
            let open = activity.begin();
            let (shared, conn) = (shared.clone(), conn.clone());
            // Boxed: hyper keeps one slot per connection for the service's
            // future, sized for it even while no request is in flight. The
            // pipeline's future is large (about 12 KB), so an idle
            // keep-alive connection would hold that much for nothing;
            // boxed, it exists only while a request does (and is `Unpin`,
            // which parking needs).
            Box::pin(async move {
                let resp = pipeline::handle(shared, conn, req).await?;
                Ok(resp.map(|inner| Tracked { inner, _open: open }))
            })
        })
    };
    let wait = shared.runtime.load().config.server.header_timeout();
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
    let conn_state = Conn {
        info: &conn,
        activity: &activity,
        wait,
        shutdown,
    };
    // ALPN already chose the protocol: skip auto-detection's preface peek.
    match conn.tls.as_ref().map_or(Alpn::None, |t| t.alpn) {
        Alpn::Http11 => serve_http1(&conn_state, io, svc, &shared.metrics.parked_connections).await,
        // Boxed: hyper's auto connection is held inline by its future, and
        // that future is several KB; unboxed, every HTTP/1.1 connection's
        // future would be sized for it.
        Alpn::H2 => {
            Box::pin(serve_auto(
                &conn_state,
                http_builder(wait).http2_only(),
                io,
                svc,
            ))
            .await
        }
        Alpn::None => Box::pin(serve_auto(&conn_state, http_builder(wait), io, svc)).await,
    }
    shared.metrics.connections.dec();
}

/// What a request's service future resolves to.
type Served = Result<http::Response<Tracked>, std::convert::Infallible>;

/// One connection's facts and timers, for the serving loops.
struct Conn<'a> {
    info: &'a ConnInfo,
    activity: &'a Activity,
    /// `server.header_timeout_secs`.
    wait: Duration,
    shutdown: Shutdown,
}

/// HTTP/2, or a protocol still to be detected: hyper's auto connection.
async fn serve_auto<I, S>(c: &Conn<'_>, builder: auto::Builder<TokioExecutor>, io: I, svc: S)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<Tracked>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let served = builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(served);
    // Once asked to close, a connection gets `wait` to do so, unless it is
    // finishing requests for a shutdown (whose drain time then governs).
    let mut deadline: Option<tokio::time::Instant> = None;
    let mut closing = false;
    let result = loop {
        tokio::select! {
            r = served.as_mut() => break r,
            _ = c.activity.idle_for(c.wait, None), if !closing => {
                idle_close_log(c);
                served.as_mut().graceful_shutdown();
                closing = true;
                deadline = Some(tokio::time::Instant::now() + c.wait);
            }
            _ = c.shutdown.wait(), if !closing => {
                served.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = sleep_until(deadline), if deadline.is_some() => {
                tracing::info!(peer = %c.info.peer, "connection did not close when asked; dropped");
                break Ok(());
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(peer = %c.info.peer, error = %e, "connection ended with an error");
    }
}

fn idle_close_log(c: &Conn<'_>) {
    tracing::debug!(peer = %c.info.peer, seconds = c.wait.as_secs(), "closing a connection idle for header_timeout_secs");
}

/// hyper's HTTP/1 settings, as [`http_builder`] sets them for the auto
/// connection.
fn http1_builder(wait: Duration) -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(wait)
        .keep_alive(true)
        .max_buf_size(MAX_BUF);
    b
}

/// HTTP/1.1 (chosen by ALPN), parked while idle (see [`park`]).
async fn serve_http1<I, S>(
    c: &Conn<'_>,
    io: I,
    svc: S,
    parked: &prometheus_client::metrics::gauge::Gauge,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = Tracked>
        + Clone
        + Unpin
        + Send
        + 'static,
    S::Future: Unpin + Send + 'static,
{
    let builder = http1_builder(c.wait);
    // Parking only pays while there is idle time left before the close.
    let may_park = c.wait > park::PARK_AFTER;
    let mut io = park::Prefixed::new(io);
    // The idle period a park was cut short in (the client had started a
    // request head): not parked again before the next request.
    let mut skip: Option<u64> = None;
    loop {
        // Boxed: the connection task then holds hyper's connection state
        // only while it exists, not while the connection is parked.
        let mut served = Box::new(builder.serve_connection(TokioIo::new(io), svc.clone()));
        let mut deadline: Option<tokio::time::Instant> = None;
        let (mut closing, mut parking) = (false, false);
        let result = loop {
            tokio::select! {
                // In this order, and without select!'s random start: hyper's
                // connection first, on every wake-up (the other branches are
                // timers and signals, which rarely fire).
                biased;
                r = std::future::poll_fn(|cx| served.poll_without_shutdown(cx)) => break r,
                // hyper is idle (no request open): it closes at once and
                // hands back the stream and any bytes it read ahead.
                _ = c.activity.idle_for(park::PARK_AFTER, skip), if may_park && !closing && !parking => {
                    Pin::new(&mut *served).graceful_shutdown();
                    parking = true;
                }
                _ = c.activity.idle_for(c.wait, None), if !closing => {
                    idle_close_log(c);
                    Pin::new(&mut *served).graceful_shutdown();
                    closing = true;
                    deadline = Some(tokio::time::Instant::now() + c.wait);
                }
                _ = c.shutdown.wait(), if !closing => {
                    Pin::new(&mut *served).graceful_shutdown();
                    closing = true;
                }
                _ = sleep_until(deadline), if deadline.is_some() => {
                    tracing::info!(peer = %c.info.peer, "connection did not close when asked; dropped");
                    return;
                }
            }
        };
        if let Err(e) = result {
            tracing::debug!(peer = %c.info.peer, error = %e, "connection ended with an error");
            return;
        }
        // hyper's read buffer comes back as `read_buf`, a view of the
        // whole 8 KB (or larger) allocation: it is dropped here, and only
        // bytes still unparsed are kept, as a copy.
        // (Moved out of its box in a block of its own, so that the box is
        // freed here and not at the end of the iteration, after the park.)
        let parts = {
            let served = served;
            (*served).into_parts()
        };
        let read_ahead = parts.read_buf;
        io = parts.io.into_inner();
        if closing || !parking {
            // Closed by hyper (the client asked, or an error answer), by the
            // idle timer or by a shutdown: end it as hyper would have.
            close(c, &mut io).await;
            return;
        }
        if !read_ahead.is_empty() {
            // Part of a request head had arrived: serve it on at once. Its
            // time still counts from the same idle deadline.
            io.unread(&read_ahead);
            skip = Some(c.activity.stamp());
            continue;
        }
        drop(read_ahead);
        skip = None;
        // Parked: hyper and its buffers are gone; wait for the client's next
        // byte until the idle deadline, which parking does not move.
        parked.inc();
        let woke = tokio::select! {
            r = io.wait_readable() => matches!(r, Ok(true)),
            _ = tokio::time::sleep_until(c.activity.idle_deadline(c.wait)) => {
                idle_close_log(c);
                false
            }
            _ = c.shutdown.wait() => false,
        };
        parked.dec();
        if !woke {
            close(c, &mut io).await;
            return;
        }
    }
}

/// Ends a connection hyper handed back: TLS close_notify and FIN, within
/// `server.header_timeout_secs`.
async fn close<I: tokio::io::AsyncWrite + Unpin>(c: &Conn<'_>, io: &mut I) {
    use tokio::io::AsyncWriteExt;
    let _ = tokio::time::timeout(c.wait, io.shutdown()).await;
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
        let a = Arc::new(Activity::new());
        let d = Duration::from_secs(10);
        let t0 = tokio::time::Instant::now();
        let open = a.begin();
        let waiter = {
            let a = a.clone();
            tokio::spawn(async move { a.idle_for(d, None).await })
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
