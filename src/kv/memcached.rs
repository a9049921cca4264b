//! memcached: several servers, each key on one of them.
//!
//! **The protocol crate.** `async-memcached` (Shopify; 0.9, 2025, tokio,
//! ASCII and meta protocols, tested for cancellation safety, which a
//! deadline on every call needs: a cancelled call closes its connection
//! instead of leaving a reply unread). The older `memcache` crate is
//! blocking (r2d2 pools, a thread per call) and `memcache-async` is
//! generic over any stream but has no cancellation story. None of them
//! spreads keys over servers in a way we can reason about, so that part
//! is ours (below).
//!
//! **Spreading keys.** Rendezvous (highest random weight) hashing: a key
//! goes to the live server with the highest SHA-256(server, key). Every
//! node with the same server list picks the same server without talking
//! to the others, and removing or losing a server moves only the keys it
//! held (each of them to its second choice), which is the property a ring
//! gives with less code and no virtual nodes to tune; no maintained ring
//! crate offered more for 2-10 servers.
//!
//! **A dead server.** A server that refuses, fails or does not answer in
//! time is skipped for [`DOWN_FOR`]; its keys go to their second choice
//! meanwhile, and come back to it once it answers again. A refused
//! connection (fast) is retried on the next server within the same call;
//! a timeout has used the call's deadline and fails it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_memcached::{AsciiProtocol, Client, Error as McError, Status};

use super::{Backend, BoxFuture, KvError, ttl_secs};

const NAME: &str = "memcached";
/// How long a failed server is skipped before it is tried again.
pub const DOWN_FOR: Duration = Duration::from_secs(2);
/// Idle connections kept per server.
const IDLE: usize = 8;

struct Server {
    /// As configured: the hashing weighs this, so every node agrees.
    addr: String,
    /// What the crate connects to.
    dsn: String,
    idle: Mutex<Vec<Client>>,
    down_until: Mutex<Option<Instant>>,
}

impl Server {
    fn is_down(&self) -> bool {
        let g = self.down_until.lock().unwrap_or_else(|p| p.into_inner());
        g.is_some_and(|t| Instant::now() < t)
    }
    fn mark_down(&self) {
        *self.down_until.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(Instant::now() + DOWN_FOR);
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
    fn mark_up(&self) {
        *self.down_until.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
    fn take(&self) -> Option<Client> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }
    fn give_back(&self, c: Client) {
        if c.is_closed() {
            return;
        }
        let mut g = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if g.len() < IDLE {
            g.push(c);
        }
    }
}

pub struct Memcached {
    servers: Vec<Server>,
    timeout: Duration,
}

/// The weight of `key` on `server`: the first 8 bytes of SHA-256.
fn weight(server: &str, key: &str) -> u64 {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(server.as_bytes());
    ctx.update(&[0]);
    ctx.update(key.as_bytes());
    let d = ctx.finish();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d.as_ref()[..8]);
    u64::from_be_bytes(b)
}

/// What a failed call says about its server.
enum Failure {
    /// Not reachable (refused, reset): try the next server now.
    Unreachable(String),
    /// Reachable but failed or too slow: fail this call.
    Failed(KvError),
}

fn unreachable(e: McError) -> Failure {
    Failure::Unreachable(e.to_string())
}

impl Memcached {
    /// `servers` as `host:port`; nothing is connected yet.
    pub fn new(servers: &[String], timeout: Duration) -> Result<Memcached, KvError> {
        if servers.is_empty() {
            return Err(KvError::Config {
                backend: NAME,
                reason: "no server is configured ([state] servers)".into(),
            });
        }
        Ok(Memcached {
            servers: servers
                .iter()
                .map(|a| Server {
                    addr: a.clone(),
                    // The crate parses `tcp://host:port`; the bare form is
                    // what operators write.
                    dsn: if a.contains("://") {
                        a.clone()
                    } else {
                        format!("tcp://{a}")
                    },
                    idle: Mutex::new(Vec::new()),
                    down_until: Mutex::new(None),
                })
                .collect(),
            timeout,
        })
    }

    /// Servers for `key`, best first: live ones by weight, then the ones
    /// marked down (tried last, in case all are).
    fn order(&self, key: &str) -> Vec<&Server> {
        let mut s: Vec<(bool, u64, &Server)> = self
            .servers
            .iter()
            .map(|sv| (sv.is_down(), weight(&sv.addr, key), sv))
            .collect();
        s.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        s.into_iter().map(|(_, _, sv)| sv).collect()
    }

    /// The server `key` lives on now (tests and operators' debugging).
    pub fn server_for(&self, key: &str) -> &str {
        self.order(key)
            .first()
            .map(|s| s.addr.as_str())
            .unwrap_or("")
    }

    /// Runs `op` on the key's server, moving on to the next one while
    /// servers refuse, all within the deadline.
    async fn with_server(&self, key: &str, op: Op<'_>) -> Result<Reply, KvError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut last = String::from("no server answered");
        for server in self.order(key) {
            let attempt = async {
                let mut client = match server.take() {
                    Some(c) => c,
                    None => Client::new(&server.dsn).await.map_err(unreachable)?,
                };
                match exec(&mut client, key, &op).await {
                    Ok(v) => {
                        server.give_back(client);
                        Ok(v)
                    }
                    Err(McError::Protocol(s)) => {
                        server.give_back(client);
                        Err(Failure::Failed(KvError::Backend {
                            backend: NAME,
                            reason: format!("{}: {s:?}", server.addr),
                        }))
                    }
                    Err(e) => Err(unreachable(e)),
                }
            };
            match tokio::time::timeout_at(deadline, attempt).await {
                Ok(Ok(v)) => {
                    server.mark_up();
                    return Ok(v);
                }
                Ok(Err(Failure::Failed(e))) => return Err(e),
                Ok(Err(Failure::Unreachable(e))) => {
                    server.mark_down();
                    last = format!("{}: {e}", server.addr);
                }
                Err(_) => {
                    server.mark_down();
                    return Err(KvError::Timeout {
                        backend: NAME,
                        timeout: self.timeout,
                    });
                }
            }
        }
        Err(KvError::Backend {
            backend: NAME,
            reason: last,
        })
    }
}

/// One operation, so that [`Memcached::with_server`] can retry it on
/// another server.
enum Op<'a> {
    Get,
    Set(&'a [u8], i64),
    Add(&'a [u8], i64),
    Delete,
}

enum Reply {
    Value(Option<Vec<u8>>),
    Stored(bool),
    Done,
}

async fn exec(c: &mut Client, key: &str, op: &Op<'_>) -> Result<Reply, McError> {
    match *op {
        Op::Get => Ok(Reply::Value(c.get(key).await?.and_then(|v| v.data))),
        Op::Set(v, ttl) => {
            c.set(key, v, Some(ttl), None).await?;
            Ok(Reply::Done)
        }
        Op::Add(v, ttl) => match c.add(key, v, Some(ttl), None).await {
            Ok(()) => Ok(Reply::Stored(true)),
            Err(McError::Protocol(Status::NotStored | Status::Exists)) => Ok(Reply::Stored(false)),
            Err(e) => Err(e),
        },
        Op::Delete => match c.delete(key).await {
            Ok(()) | Err(McError::Protocol(Status::NotFound)) => Ok(Reply::Done),
            Err(e) => Err(e),
        },
    }
}

fn protocol_mismatch() -> KvError {
    KvError::Backend {
        backend: NAME,
        reason: "unexpected reply".into(),
    }
}

impl Backend for Memcached {
    fn name(&self) -> &'static str {
        NAME
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, KvError>> {
        Box::pin(async move {
            match self.with_server(key, Op::Get).await? {
                Reply::Value(v) => Ok(v),
                _ => Err(protocol_mismatch()),
            }
        })
    }

    fn set<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), KvError>> {
        let ttl = ttl_secs(ttl) as i64;
        Box::pin(async move {
            self.with_server(key, Op::Set(value, ttl)).await?;
            Ok(())
        })
    }

    fn add<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, KvError>> {
        let ttl = ttl_secs(ttl) as i64;
        Box::pin(async move {
            match self.with_server(key, Op::Add(value, ttl)).await? {
                Reply::Stored(b) => Ok(b),
                _ => Err(protocol_mismatch()),
            }
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), KvError>> {
        Box::pin(async move {
            self.with_server(key, Op::Delete).await?;
            Ok(())
        })
    }

    fn probe(&self) -> BoxFuture<'_, Result<String, KvError>> {
        Box::pin(async move {
            let mut up = Vec::new();
            let mut down = Vec::new();
            for s in &self.servers {
                let r = tokio::time::timeout(self.timeout, async {
                    let mut c = Client::new(&s.dsn).await?;
                    c.version().await
                })
                .await;
                match r {
                    Ok(Ok(v)) => up.push(format!("{} (memcached {v})", s.addr)),
                    Ok(Err(e)) => down.push(format!("{}: {e}", s.addr)),
                    Err(_) => down.push(format!("{}: no answer within {:?}", s.addr, self.timeout)),
                }
            }
            if down.is_empty() {
                Ok(up.join(", "))
            } else {
                Err(KvError::Backend {
                    backend: NAME,
                    reason: format!("unreachable: {}", down.join("; ")),
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Losing one of three servers moves only the keys it held.
    #[test]
    fn rendezvous_moves_only_the_lost_servers_keys() {
        let all: Vec<String> = ["a:1", "b:1", "c:1"].map(String::from).to_vec();
        let m = Memcached::new(&all, Duration::from_secs(1)).unwrap();
        let before: Vec<String> = (0..3000)
            .map(|i| m.server_for(&format!("k{i}")).to_string())
            .collect();
        for s in ["a:1", "b:1", "c:1"] {
            let n = before.iter().filter(|x| *x == s).count();
            assert!((800..1200).contains(&n), "{s} holds {n} of 3000");
        }
        m.servers[1].mark_down();
        for (i, b) in before.iter().enumerate() {
            let now = m.server_for(&format!("k{i}"));
            if b != "b:1" {
                assert_eq!(now, b, "a key of a live server stayed");
            } else {
                assert_ne!(now, "b:1");
            }
        }
        m.servers[1].mark_up();
        for (i, b) in before.iter().enumerate() {
            assert_eq!(m.server_for(&format!("k{i}")), b, "back once it is up");
        }
    }
}
