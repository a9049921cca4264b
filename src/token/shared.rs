//! The optional Redis layer of the token cache, for sites with several
//! fedgate nodes: a token validated on one node is accepted on the others
//! without asking the IdP again.
//!
//! Keys are `<prefix><hex sha256>`, values the validated claims as JSON
//! with the same TTL as in memory. Redis is an optimisation: any Redis
//! error or slow answer is logged (at most every 30 s) and the request
//! goes on as if the entry were absent. Redis must be trusted like the
//! IdP itself, since its values become identities.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::cache::{Key, Validated, now};

pub struct SharedCache {
    client: redis::Client,
    prefix: String,
    timeout: Duration,
    cap: Duration,
    conn: tokio::sync::OnceCell<ConnectionManager>,
    last_warning: Mutex<Option<Instant>>,
}

impl SharedCache {
    pub fn new(
        url: &str,
        prefix: &str,
        timeout: Duration,
        cap: Duration,
    ) -> Result<SharedCache, String> {
        let client =
            redis::Client::open(url).map_err(|e| format!("cache.redis_url is not usable: {e}"))?;
        Ok(SharedCache {
            client,
            prefix: prefix.to_string(),
            timeout,
            cap,
            conn: tokio::sync::OnceCell::new(),
            last_warning: Mutex::new(None),
        })
    }

    fn name(&self, k: &Key) -> String {
        format!("{}{}", self.prefix, hex::encode(k))
    }

    async fn conn(&self) -> Option<ConnectionManager> {
        let r = self
            .conn
            .get_or_try_init(|| async {
                let cfg = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(1);
                self.client.get_connection_manager_lazy(cfg)
            })
            .await;
        match r {
            Ok(c) => Some(c.clone()),
            Err(e) => {
                self.warn(&e.to_string());
                None
            }
        }
    }

    fn warn(&self, e: &str) {
        let mut last = self.last_warning.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() > Duration::from_secs(30)) {
            *last = Some(Instant::now());
            tracing::warn!(error = %e, "shared token cache (Redis) unavailable; validating locally");
        }
    }

    pub async fn get(&self, k: &Key) -> Option<Validated> {
        let mut c = self.conn().await?;
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.name(k));
        let q = cmd.query_async::<Option<Vec<u8>>>(&mut c);
        match tokio::time::timeout(self.timeout, q).await {
            Ok(Ok(Some(b))) => match serde_json::from_slice(&b) {
                Ok(v) => Some(v),
                Err(_) => {
                    self.warn("an entry is not valid JSON");
                    None
                }
            },
            Ok(Ok(None)) => None,
            Ok(Err(e)) => {
                self.warn(&e.to_string());
                None
            }
            Err(_) => {
                self.warn("timeout");
                None
            }
        }
    }

    pub async fn put(&self, k: &Key, v: &Validated) {
        let ttl = v.ttl(now(), self.cap).as_secs();
        if ttl == 0 {
            return;
        }
        let Some(mut c) = self.conn().await else {
            return;
        };
        let Ok(body) = serde_json::to_vec(v) else {
            return;
        };
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.name(k)).arg(body).arg("EX").arg(ttl);
        let q = cmd.query_async::<()>(&mut c);
        match tokio::time::timeout(self.timeout, q).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.warn(&e.to_string()),
            Err(_) => self.warn("timeout"),
        }
    }
}
