//! The listener: accept, TLS handshake, HTTP/1.1 or HTTP/2, and the
//! request pipeline; plus reload and graceful shutdown.

mod admission;
mod pipeline;
mod runtime;
mod scrub;
mod watch;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub use runtime::{Runtime, Shared};
pub use watch::watch_files;

use crate::conn::{ConnInfo, TlsInfo};
use crate::shutdown::Shutdown;

/// Binds every address, failing with the address that could not be bound.
pub async fn bind_all(addrs: &[SocketAddr]) -> std::io::Result<Vec<TcpListener>> {
    let mut out = Vec::new();
    for a in addrs {
        out.push(
            TcpListener::bind(a)
                .await
                .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {a}: {e}")))?,
        );
    }
    Ok(out)
}

/// hyper's server settings. `header_timeout` (`server.header_timeout_secs`)
/// bounds how long a client may take to send a request head, so a slow
/// client cannot hold a connection slot by trickling bytes.
fn http_builder(header_timeout: Duration) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true)
        .max_buf_size(128 * 1024);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(128)
        .max_header_list_size(128 * 1024);
    b
}

/// Serves TLS clients on `listeners` until `shutdown` fires, then lets
/// in-flight requests finish for up to the configured drain time.
pub async fn serve(shared: Arc<Shared>, listeners: Vec<TcpListener>, shutdown: Shutdown) {
    let graceful = Arc::new(GracefulShutdown::new());
    let mut loops = Vec::new();
    for l in listeners {
        loops.push(tokio::spawn(accept_loop(
            shared.clone(),
            l,
            graceful.clone(),
            shutdown.clone(),
        )));
    }
    shutdown.wait().await;
    // Wait for the loops to end: each holds an Arc of `graceful`, which
    // must be the last one for try_unwrap below to drain real connections.
    for l in loops {
        l.abort();
        let _ = l.await;
    }
    let drain = shared.runtime.load().config.server.shutdown_timeout();
    tracing::info!(
        seconds = drain.as_secs(),
        "shutting down: no new connections, draining in-flight requests"
    );
    let graceful = Arc::try_unwrap(graceful).unwrap_or_else(|_| GracefulShutdown::new());
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(drain) => tracing::warn!("drain time over; closing the remaining connections"),
    }
}

async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    graceful: Arc<GracefulShutdown>,
    shutdown: Shutdown,
) {
    let local = listener.local_addr().ok();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait() => return,
        };
        let (tcp, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // The running configuration's limit, so that a reload applies.
        let max = shared.runtime.load().config.server.max_connections;
        let permit = match shared.admission.admit(max) {
            Ok(slot) => slot,
            Err(refusal) => {
                shared
                    .metrics
                    .refused_connections
                    .get_or_create(&crate::metrics::KindLabel {
                        kind: refusal.kind().into(),
                    })
                    .inc();
                tracing::warn!(peer = %peer, reason = %refusal, "connection refused at accept");
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let local = tcp
            .local_addr()
            .ok()
            .or(local)
            .unwrap_or_else(|| ([0, 0, 0, 0], 0).into());
        let shared = shared.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let rt = shared.runtime.load_full();
            let acceptor = TlsAcceptor::from(rt.tls.clone());
            let timeout = rt.config.server.handshake_timeout();
            let server_modssl = rt.server_modssl.clone();
            drop(rt);
            let tls = match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    shared.metrics.handshake("failed");
                    tracing::info!(peer = %peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    shared.metrics.handshake("timeout");
                    tracing::info!(peer = %peer, "TLS handshake timed out");
                    return;
                }
            };
            shared.metrics.handshake("ok");
            let (_, session) = tls.get_ref();
            let info = TlsInfo {
                version: crate::tls::version_name(session.protocol_version()),
                cipher: session
                    .negotiated_cipher_suite()
                    .map(|c| format!("{:?}", c.suite()))
                    .unwrap_or_default(),
                modssl: crate::tls::connection_modssl(session),
                server_modssl,
                sni: session.server_name().map(str::to_string),
                alpn: session.alpn_protocol().map(<[u8]>::to_vec),
                client_chain: session
                    .peer_certificates()
                    .map(|c| c.iter().map(|d| d.clone().into_owned()).collect())
                    .unwrap_or_default(),
                x509_verdict: Default::default(),
            };
            let conn = Arc::new(ConnInfo {
                peer,
                local,
                tls: Some(info),
            });
            serve_connection(shared, conn, TokioIo::new(tls), watcher).await;
        });
    }
}

/// Serves HTTP on an established (TLS or test) connection.
pub async fn serve_connection<I>(
    shared: Arc<Shared>,
    conn: Arc<ConnInfo>,
    io: TokioIo<I>,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    shared.metrics.connections.inc();
    let svc = {
        let shared = shared.clone();
        let conn = conn.clone();
        service_fn(move |req| pipeline::handle(shared.clone(), conn.clone(), req))
    };
    let header_timeout = shared.runtime.load().config.server.header_timeout();
    // ALPN already chose the protocol: skip auto-detection's preface peek.
    let builder = match conn.tls.as_ref().and_then(|t| t.alpn.as_deref()) {
        Some(b"h2") => http_builder(header_timeout).http2_only(),
        Some(b"http/1.1") => http_builder(header_timeout).http1_only(),
        _ => http_builder(header_timeout),
    };
    let served = builder.serve_connection(io, svc);
    if let Err(e) = watcher.watch(served).await {
        tracing::debug!(peer = %conn.peer, error = %e, "connection ended with an error");
    }
    shared.metrics.connections.dec();
}

/// Reloads on SIGHUP and stops on SIGTERM or SIGINT.
pub async fn handle_signals(shared: Arc<Shared>, shutdown: Shutdown) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut hup), Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading configuration, certificates and CA directory");
                let _ = shared.reload().await;
            }
            _ = term.recv() => { tracing::info!("SIGTERM received"); shutdown.trigger(); return; }
            _ = int.recv() => { tracing::info!("SIGINT received"); shutdown.trigger(); return; }
        }
    }
}
