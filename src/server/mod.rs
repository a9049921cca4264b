//! The listener: accept, TLS handshake, HTTP/1.1 or HTTP/2, and the
//! request pipeline; plus reload and graceful shutdown.

mod admission;
mod connection;
mod expiry;
#[cfg(feature = "accounting")]
mod identities;
pub mod notify;
mod park;
mod parse_errors;
mod pipeline;
pub mod proxy_header;
mod quick_ack;
mod runtime;
mod scrub;
mod watch;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub use runtime::{Runtime, Shared};
pub use watch::watch_files;

use crate::conn::{Alpn, ConnInfo, TlsInfo};
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

/// The threads that accept and serve client connections.
///
/// Each is an OS thread with its own single-threaded event loop, accepting
/// on every listener (the listening sockets are shared; the kernel hands
/// each new connection to one of the threads) and serving the connections
/// it accepted to the end, as nginx's worker processes do. A request never
/// changes thread: its client connection, its upstream connection (each
/// thread has its own upstream pool) and its timers live on one event
/// loop, so nothing wakes another core. Under tokio's work-stealing
/// runtime, those wake-ups were the largest item of the no-auth profile
/// (docs/performance.md). Background work (reloads, plugins, the admin
/// listener) stays on the main runtime.
pub struct Workers {
    threads: Vec<std::thread::JoinHandle<()>>,
    /// Fired once draining is over: each thread then drops its event loop
    /// and with it any connection still open.
    done: Shutdown,
    balance: Arc<Balance>,
    shared: Arc<Shared>,
    shutdown: Shutdown,
}

/// How many connections each serving thread holds, so that they share
/// the work, and so that shutdown can wait for all of them.
///
/// All threads wait on the same listening sockets and the kernel wakes
/// them all for a new connection; the first to call `accept` gets it. A
/// thread that is already awake wins every race, so a burst of
/// connections (a client pool opening 16 at once) would all land on one
/// thread and leave the other cores idle. A thread therefore takes a
/// connection only while it holds no more than one more than the least
/// loaded thread; otherwise it leaves the connection to the others and
/// waits until the counts change. The least loaded thread never waits, so
/// no connection is left unaccepted.
#[derive(Debug)]
struct Balance {
    open: Box<[AtomicUsize]>,
    changed: Notify,
}

impl Balance {
    fn new(threads: usize) -> Balance {
        Balance {
            open: (0..threads).map(|_| AtomicUsize::new(0)).collect(),
            changed: Notify::new(),
        }
    }

    fn may_accept(&self, me: usize) -> bool {
        let mine = self.open[me].load(Ordering::SeqCst);
        let least = self
            .open
            .iter()
            .map(|n| n.load(Ordering::SeqCst))
            .min()
            .unwrap_or(0);
        mine <= least + 1
    }

    /// Returns once thread `me` may take a connection.
    async fn wait_turn(&self, me: usize) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.may_accept(me) {
                return;
            }
            changed.await;
        }
    }

    /// Returns once no thread holds a connection.
    async fn wait_empty(&self) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.open.iter().all(|n| n.load(Ordering::SeqCst) == 0) {
                return;
            }
            changed.await;
        }
    }

    fn enter(self: &Arc<Self>, me: usize) -> Held {
        self.open[me].fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
        Held(self.clone(), me)
    }
}

/// One connection counted against its thread.
struct Held(Arc<Balance>, usize);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.open[self.1].fetch_sub(1, Ordering::SeqCst);
        self.0.changed.notify_waiters();
    }
}

/// Name prefix of the serving threads (`ps -L`, `top -H`).
pub const WORKER_THREAD_PREFIX: &str = "fedgate-serve-";

/// How many serving threads a configuration asks for: `server.worker_threads`,
/// else one per CPU core.
fn worker_count(server: &crate::config::ServerConfig) -> usize {
    server.worker_threads().unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    })
}

impl Workers {
    /// Starts the serving threads on `listeners` (bound already, so the
    /// kernel queues connections meanwhile). They serve until `shutdown`.
    pub fn start(
        shared: Arc<Shared>,
        listeners: Vec<TcpListener>,
        shutdown: Shutdown,
    ) -> std::io::Result<Workers> {
        let count = worker_count(&shared.runtime.load().config.server);
        let listeners = listeners
            .into_iter()
            .map(|l| l.into_std())
            .collect::<std::io::Result<Vec<_>>>()?;
        let balance = Arc::new(Balance::new(count));
        let done = Shutdown::new();
        let mut threads = Vec::with_capacity(count);
        for i in 0..count {
            // Built here, so that a failure is the caller's error and not
            // a thread that silently never serves.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let mine = listeners
                .iter()
                .map(|l| l.try_clone())
                .collect::<std::io::Result<Vec<_>>>()?;
            let (shared, shutdown, done, balance) = (
                shared.clone(),
                shutdown.clone(),
                done.clone(),
                balance.clone(),
            );
            let thread = std::thread::Builder::new()
                .name(format!("{WORKER_THREAD_PREFIX}{i}"))
                .spawn(move || {
                    rt.block_on(async move {
                        // mimalloc's heaps are per thread: memory this
                        // thread's connections freed is purged only by a
                        // collection on this thread.
                        tokio::spawn(crate::memory::release_loop({
                            let s = shutdown.clone();
                            async move { s.wait().await }
                        }));
                        for l in mine {
                            match TcpListener::from_std(l) {
                                Ok(l) => {
                                    tokio::spawn(accept_loop(
                                        shared.clone(),
                                        l,
                                        (balance.clone(), i),
                                        shutdown.clone(),
                                    ));
                                }
                                Err(e) => {
                                    tracing::error!(error = %e, thread = i, "cannot watch a listener on this serving thread")
                                }
                            }
                        }
                        done.wait().await;
                    });
                })?;
            threads.push(thread);
        }
        // The threads hold their own copies of the sockets.
        drop(listeners);
        Ok(Workers {
            threads,
            done,
            balance,
            shared,
            shutdown,
        })
    }

    /// The number of serving threads.
    pub fn count(&self) -> usize {
        self.threads.len()
    }

    /// Serves until `shutdown` fires, then lets in-flight requests finish
    /// for up to the configured drain time, and stops the threads.
    pub async fn run(self) {
        let Workers {
            threads,
            done,
            balance,
            shared,
            shutdown,
        } = self;
        shutdown.wait().await;
        notify::stopping("stopping: draining in-flight requests");
        // The accept loops end (and close their listeners) on the signal.
        let drain_time = shared.runtime.load().config.server.shutdown_timeout();
        tracing::info!(
            seconds = drain_time.as_secs(),
            "shutting down: no new connections, draining in-flight requests"
        );
        tokio::select! {
            _ = balance.wait_empty() => tracing::info!("all connections closed"),
            _ = tokio::time::sleep(drain_time) => tracing::warn!("drain time over; closing the remaining connections"),
        }
        done.trigger();
        let joined = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        });
        let _ = joined.await;
    }
}

async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    (balance, me): (Arc<Balance>, usize),
    shutdown: Shutdown,
) {
    let local = listener.local_addr().ok();
    loop {
        let accepted = tokio::select! {
            a = async {
                balance.wait_turn(me).await;
                listener.accept().await
            } => a,
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
        // The running configuration's limits and PROXY protocol setting,
        // so that a reload applies to the next connection.
        let (permit, proxied) = {
            let rt = shared.runtime.load();
            let s = &rt.config.server;
            let ip = peer.ip();
            let trusted = crate::http::forwarded::is_trusted(ip, &rt.trusted_proxies);
            let proxied = s.proxy_protocol();
            if proxied && !trusted {
                // Only a balancer may say who the client is; anyone else
                // could claim any address. Closed before any byte is read.
                refused(&shared, "untrusted_proxy");
                tracing::warn!(peer = %peer, "connection refused at accept: server.proxy_protocol is on and the peer is not in server.trusted_proxies");
                continue;
            }
            let per_ip = (!trusted).then_some(s.max_connections_per_ip());
            (
                shared.admission.admit(ip, s.max_connections(), per_ip),
                proxied,
            )
        };
        let permit = match permit {
            Ok(slot) => slot,
            Err(refusal) => {
                refused(&shared, refusal.kind());
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
        let serving = balance.enter(me);
        let shutdown = shutdown.clone();
        tokio::spawn(connection_task(
            shared, tcp, peer, local, proxied, permit, serving, shutdown,
        ));
    }
}

/// One client connection, from accept to close.
///
/// Two boxed stages, so that the task itself stays small: a task is sized
/// for the largest state of its future, and the handshake's (the PROXY
/// header, the TLS acceptor and its timers) would otherwise stay
/// allocated, unused, for the whole life of every keep-alive connection.
#[allow(clippy::too_many_arguments)]
async fn connection_task(
    shared: Arc<Shared>,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    proxied: bool,
    permit: admission::Slot,
    serving: Held,
    shutdown: Shutdown,
) {
    let _serving = serving;
    let Some((conn, tls, permit)) =
        Box::pin(establish(&shared, tcp, peer, local, proxied, permit)).await
    else {
        return;
    };
    let _permit = permit;
    Box::pin(connection::serve(shared, conn, tls, shutdown)).await;
}

/// A TLS stream as the listener hands it to [`connection::serve`].
type ClientStream = tokio_rustls::server::TlsStream<quick_ack::HandshakeAcks>;

/// Takes a new connection from accept to an established TLS session: the
/// PROXY header (when `proxied`), the first byte, the handshake and, for a
/// resumed session, a fresh judgement of its client chain. `None` when the
/// connection ended or was refused on the way, each logged and counted.
async fn establish(
    shared: &Shared,
    mut tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    proxied: bool,
    mut permit: admission::Slot,
) -> Option<(Arc<ConnInfo>, Box<ClientStream>, admission::Slot)> {
    let rt = shared.runtime.load_full();
    let acceptor = TlsAcceptor::from(rt.tls.clone());
    // One deadline for the PROXY header and the TLS handshake.
    let deadline = tokio::time::Instant::now() + rt.config.server.handshake_timeout();
    let server_modssl = rt.server_modssl.clone();
    let peer = if proxied {
        let read = tokio::time::timeout_at(deadline, proxy_header::read(&mut tcp));
        let client = match read.await {
            Ok(Ok(h)) => h.client(peer),
            Ok(Err(e)) => {
                refused(shared, "proxy_header");
                tracing::info!(peer = %peer, error = %e, "PROXY header refused");
                return None;
            }
            Err(_) => {
                shared.metrics.handshake("timeout");
                tracing::info!(peer = %peer, "PROXY header timed out");
                return None;
            }
        };
        // The per-IP limit applies to the client behind the balancer (the
        // balancer itself, on a LOCAL health check, stays exempt).
        let per_ip = (!crate::http::forwarded::is_trusted(client.ip(), &rt.trusted_proxies))
            .then_some(rt.config.server.max_connections_per_ip());
        if let Err(refusal) = permit.rekey(client.ip(), per_ip) {
            refused(shared, refusal.kind());
            tracing::warn!(peer = %client, via = %peer, reason = %refusal, "connection refused after its PROXY header");
            return None;
        }
        client
    } else {
        peer
    };
    drop(rt);
    // A connection that closes before its first TLS byte is a probe: a load
    // balancer's TCP health check (haproxy `check`, every few seconds per
    // node) or a port scan. Counted, but not logged as a failed handshake:
    // at INFO those lines would drown the real failures.
    let mut first = [0u8; 1];
    match tokio::time::timeout_at(deadline, tcp.peek(&mut first)).await {
        Ok(Ok(0)) | Ok(Err(_)) => {
            shared.metrics.handshake("closed");
            tracing::debug!(peer = %peer, "connection closed before its TLS handshake");
            return None;
        }
        Ok(Ok(_)) => {}
        Err(_) => {
            shared.metrics.handshake("timeout");
            tracing::info!(peer = %peer, "TLS handshake timed out");
            return None;
        }
    }
    let handshake = acceptor.accept(quick_ack::HandshakeAcks::new(tcp));
    let mut tls = match tokio::time::timeout_at(deadline, handshake).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            shared.metrics.handshake("failed");
            tracing::info!(peer = %peer, error = %e, "TLS handshake failed");
            return None;
        }
        Err(_) => {
            shared.metrics.handshake("timeout");
            tracing::info!(peer = %peer, "TLS handshake timed out");
            return None;
        }
    };
    tls.get_mut().0.handshake_done();
    let (_, session) = tls.get_ref();
    let resumed = session.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    if resumed {
        let rt = shared.runtime.load();
        if let Err(e) = crate::tls::judge_resumed(&rt.config.tls, &rt.validator, session) {
            shared.metrics.handshake("failed");
            tracing::info!(peer = %peer, error = %e, "resumed TLS session refused: its client certificate chain no longer passes");
            return None;
        }
        shared.metrics.resumed_handshakes.inc();
    }
    shared.metrics.handshake("ok");
    let info = TlsInfo {
        version: crate::tls::version_name(session.protocol_version()),
        suite: session.negotiated_cipher_suite().map(|c| c.suite()),
        resumed,
        sni: session.server_name().map(Box::from),
        alpn: match session.alpn_protocol() {
            Some(b"http/1.1") => Alpn::Http11,
            Some(b"h2") => Alpn::H2,
            _ => Alpn::None,
        },
        server_modssl,
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
    // Boxed once here: the stream (about 1.2 KB, mostly rustls's state) is
    // then moved by pointer into the serving futures, each of which would
    // otherwise keep a slot of that size for its argument as well as for
    // the value it wraps (rust-lang/rust#62958).
    Some((conn, Box::new(tls), permit))
}

/// Counts a connection closed before it was served, by `kind`.
fn refused(shared: &Shared, kind: &str) {
    shared
        .metrics
        .refused_connections
        .get_or_create(&crate::metrics::KindLabel { kind: kind.into() })
        .inc();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future `f` returns, without calling it.
    fn future_size<A, B, C, D, E, F, G, H, Fut>(
        _: impl FnOnce(A, B, C, D, E, F, G, H) -> Fut,
    ) -> usize {
        std::mem::size_of::<Fut>()
    }

    fn serve_size<A, B, C, D, Fut>(_: impl FnOnce(A, B, C, D) -> Fut) -> usize {
        std::mem::size_of::<Fut>()
    }

    /// Every idle keep-alive connection holds its task and its serving
    /// future: their sizes are memory per connection (issue 16's goal 4).
    /// They were 8,048 and 6,496 bytes, when the handshake's state, hyper's
    /// auto connection and two copies of the TLS stream were kept inline.
    #[test]
    fn an_idle_connection_holds_small_futures() {
        let task = future_size(connection_task);
        let serve = serve_size(connection::serve::<Box<ClientStream>>);
        assert!(task <= 256, "connection task future: {task} bytes");
        assert!(serve <= 1600, "connection::serve future: {serve} bytes");
    }

    #[tokio::test(start_paused = true)]
    async fn a_busier_thread_waits_until_the_others_catch_up() {
        let b = Arc::new(Balance::new(2));
        let first = b.enter(0);
        assert!(b.may_accept(0), "one ahead is allowed");
        let second = b.enter(0);
        assert!(!b.may_accept(0), "two ahead waits");
        assert!(b.may_accept(1), "the least loaded never waits");
        let waiting = {
            let b = b.clone();
            tokio::spawn(async move { b.wait_turn(0).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(second);
        waiting.await.unwrap();
        drop(first);
        assert!(b.open.iter().all(|n| n.load(Ordering::Relaxed) == 0));
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_waits_for_every_connection_of_every_thread() {
        let b = Arc::new(Balance::new(2));
        b.wait_empty().await;
        let (x, y) = (b.enter(0), b.enter(1));
        let w = {
            let b = b.clone();
            tokio::spawn(async move { b.wait_empty().await })
        };
        tokio::task::yield_now().await;
        drop(x);
        tokio::task::yield_now().await;
        assert!(!w.is_finished(), "thread 1 still serves");
        drop(y);
        w.await.unwrap();
    }
}
