//! Keep-alive HTTP/1.1 connections to an HTTP upstream, one small pool per
//! thread.
//!
//! hyper-util's general-purpose client did more per request than a gateway
//! with one upstream needs: a pool keyed by scheme and authority behind a
//! mutex, and a task spawned for every response with a body, only to put
//! the connection back once the body had been read. That was the largest
//! user-space item of the no-auth profile after tokio itself
//! (docs/performance.md). Here a connection goes back to its thread's pool
//! as soon as its response head has arrived; it is handed out again only
//! once hyper says it is ready for the next request (the body has been
//! read), which hyper knows without any help.
//!
//! Every serving thread has its own pool, so a request finds its upstream
//! connections on its own event loop and wakes no other core (see
//! `crate::server::Workers`). Idle connections are closed after
//! [`IDLE_TIMEOUT`], by a sweeper task that exists while any are pooled,
//! and at most [`MAX_IDLE`] are kept per thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

use super::outbound::UpstreamError;
use crate::http::body::Body;

/// How long a pooled connection may stay unused before it is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How many unused connections one thread keeps.
pub const MAX_IDLE: usize = 64;

/// The pools of one upstream, one per thread.
pub struct Pools {
    authority: String,
    connect_timeout: Duration,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    threads: thread_local::ThreadLocal<Pool>,
    /// Whether a sweeper task is running for these pools.
    sweeping: AtomicBool,
}

#[derive(Default)]
struct Pool {
    /// Oldest first; taken from the back (the most recently used
    /// connection is the one most likely still open).
    idle: Mutex<Vec<Idle>>,
}

impl Pool {
    fn idle(&self) -> MutexGuard<'_, Vec<Idle>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops the connections that closed or were idle too long; returns
    /// how many are left.
    fn prune(&self, now: Instant) -> usize {
        let mut idle = self.idle();
        idle.retain(|c| !c.tx.is_closed() && now.duration_since(c.since) < IDLE_TIMEOUT);
        idle.len()
    }
}

struct Idle {
    tx: SendRequest<Body>,
    since: Instant,
}

/// A connection taken for one request.
pub struct Conn {
    tx: SendRequest<Body>,
    /// Taken from the pool rather than opened for this request: the server
    /// may have closed it meanwhile without hyper having seen it yet.
    pub reused: bool,
}

impl Conn {
    pub fn sender(&mut self) -> &mut SendRequest<Body> {
        &mut self.tx
    }
}

impl Pools {
    pub fn new(authority: String, connect_timeout: Duration) -> Pools {
        Pools {
            authority,
            connect_timeout,
            shared: Arc::default(),
        }
    }

    /// A connection ready for a request: this thread's most recently used
    /// idle one, else a new one.
    pub async fn get(&self) -> Result<Conn, UpstreamError> {
        if let Some(tx) = self.take_ready() {
            return Ok(Conn { tx, reused: true });
        }
        self.open().await
    }

    /// Opens a new connection (also for a retry, when a pooled one turned
    /// out to be closed).
    pub async fn open(&self) -> Result<Conn, UpstreamError> {
        let tcp = super::target::connect(&self.authority, self.connect_timeout).await?;
        let (tx, conn) = http1::Builder::new()
            .handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| UpstreamError::Connect(std::io::Error::other(e)))?;
        // The connection's own task, on this thread's event loop. It ends
        // when the server closes, on an error, or once every `SendRequest`
        // of it (pooled or in use) is gone.
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(Conn { tx, reused: false })
    }

    /// Puts a connection whose response head has arrived back in this
    /// thread's pool.
    pub fn put(&self, conn: Conn) {
        if conn.tx.is_closed() {
            return;
        }
        {
            let mut idle = self.shared.threads.get_or_default().idle();
            if idle.len() >= MAX_IDLE {
                idle.remove(0);
            }
            idle.push(Idle {
                tx: conn.tx,
                since: Instant::now(),
            });
        }
        if !self.shared.sweeping.swap(true, Ordering::AcqRel) {
            tokio::spawn(sweep(Arc::downgrade(&self.shared)));
        }
    }

    fn take_ready(&self) -> Option<SendRequest<Body>> {
        let pool = self.shared.threads.get()?;
        pool.prune(Instant::now());
        // A connection still busy with its previous response (its body not
        // yet read) stays for later.
        let mut idle = pool.idle();
        let i = idle.iter().rposition(|c| c.tx.is_ready())?;
        Some(idle.remove(i).tx)
    }

    /// Connections pooled on this thread (for tests).
    #[cfg(test)]
    fn idle_here(&self) -> usize {
        self.shared.threads.get().map_or(0, |p| p.idle().len())
    }
}

/// Closes pooled connections idle longer than [`IDLE_TIMEOUT`], on every
/// thread, until no connection is pooled anywhere or the upstream is gone
/// (a reload replaced it).
async fn sweep(shared: Weak<Shared>) {
    loop {
        tokio::time::sleep(IDLE_TIMEOUT / 2).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let now = Instant::now();
        if shared.threads.iter().map(|p| p.prune(now)).sum::<usize>() > 0 {
            continue;
        }
        shared.sweeping.store(false, Ordering::Release);
        // A connection put back after the count found the flag still set
        // and started no sweeper: this one carries on for it.
        let refilled = shared.threads.iter().any(|p| !p.idle().is_empty());
        if !refilled || shared.sweeping.swap(true, Ordering::AcqRel) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A keep-alive HTTP/1.1 server answering every request with `body`;
    /// counts its connections.
    async fn server(body: &'static str) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let n = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut have = Vec::new();
                    loop {
                        let k = match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => k,
                        };
                        have.extend_from_slice(&buf[..k]);
                        while let Some(end) = have.windows(4).position(|w| w == b"\r\n\r\n") {
                            have.drain(..end + 4);
                            let r = format!(
                                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                                body.len()
                            );
                            if s.write_all(r.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (addr, accepted)
    }

    fn get() -> http::Request<Body> {
        http::Request::builder()
            .uri("/")
            .header("host", "x")
            .body(crate::http::body::empty())
            .unwrap()
    }

    async fn roundtrip(pools: &Pools) -> (bool, String) {
        use http_body_util::BodyExt;
        let mut c = pools.get().await.unwrap();
        let reused = c.reused;
        let resp = c.sender().send_request(get()).await.unwrap();
        pools.put(c);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (reused, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn a_connection_is_reused_once_its_response_was_read() {
        let (addr, accepted) = server("hello").await;
        let pools = Pools::new(addr, Duration::from_secs(2));
        assert_eq!(roundtrip(&pools).await, (false, "hello".into()));
        assert_eq!(pools.idle_here(), 1);
        for _ in 0..5 {
            tokio::task::yield_now().await;
            assert_eq!(roundtrip(&pools).await, (true, "hello".into()));
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_busy_connection_is_not_handed_out() {
        // A body larger than hyper reads ahead: the connection stays busy
        // until it is read.
        let big: &'static str = Box::leak("x".repeat(4 << 20).into_boxed_str());
        let (addr, accepted) = server(big).await;
        let pools = Pools::new(addr, Duration::from_secs(2));
        let mut c = pools.get().await.unwrap();
        let resp = c.sender().send_request(get()).await.unwrap();
        pools.put(c);
        // The first response's body is still unread: a second request gets
        // a connection of its own.
        let (reused, body) = roundtrip(&pools).await;
        assert!(!reused);
        assert_eq!(body.len(), big.len());
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
        drop(resp);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_connections_are_closed_after_the_idle_timeout() {
        let (addr, _) = server("x").await;
        let pools = Pools::new(addr, Duration::from_secs(2));
        roundtrip(&pools).await;
        assert_eq!(pools.idle_here(), 1);
        tokio::time::sleep(IDLE_TIMEOUT + IDLE_TIMEOUT / 2 + Duration::from_secs(1)).await;
        assert_eq!(pools.idle_here(), 0, "the sweeper closed it");
    }

    #[tokio::test]
    async fn at_most_max_idle_connections_are_kept() {
        let (addr, _) = server("x").await;
        let pools = Pools::new(addr, Duration::from_secs(2));
        let mut open = Vec::new();
        for _ in 0..MAX_IDLE + 3 {
            open.push(pools.open().await.unwrap());
        }
        for c in open {
            pools.put(c);
        }
        assert_eq!(pools.idle_here(), MAX_IDLE);
    }
}
