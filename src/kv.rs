//! The one Redis client set-up, used by the token cache and the browser
//! sessions when several fedgate nodes share state.
//!
//! Every command has a deadline: a Redis that stops answering must slow a
//! request by at most `timeout`, never hang it. Connecting is lazy, so a
//! node starts (and a reload succeeds) while Redis is down; callers decide
//! what an error means to them (the token cache validates locally, a
//! session lookup fails closed).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// Why a Redis call failed. Never carries a value or the password.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KvError {
    #[error("redis URL is not usable: {0}")]
    Url(String),
    #[error("redis: {0}")]
    Redis(String),
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
}

/// A Redis client with timeouts on connecting and on every command.
#[derive(Clone)]
pub struct Redis {
    client: redis::Client,
    timeout: Duration,
    conn: std::sync::Arc<tokio::sync::OnceCell<ConnectionManager>>,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Redis {
    /// Parses the URL; nothing is connected yet.
    pub fn new(url: &str, timeout: Duration) -> Result<Redis, KvError> {
        let client = redis::Client::open(url).map_err(|e| KvError::Url(e.to_string()))?;
        Ok(Redis {
            client,
            timeout,
            conn: Default::default(),
        })
    }

    async fn conn(&self) -> Result<ConnectionManager, KvError> {
        let cm = self
            .conn
            .get_or_try_init(|| async {
                let cfg = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(1);
                self.client.get_connection_manager_lazy(cfg)
            })
            .await
            .map_err(|e| KvError::Redis(e.to_string()))?;
        Ok(cm.clone())
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, KvError> {
        let mut c = self.conn().await?;
        match tokio::time::timeout(self.timeout, cmd.query_async::<T>(&mut c)).await {
            Ok(r) => r.map_err(|e| KvError::Redis(e.to_string())),
            Err(_) => Err(KvError::Timeout(self.timeout)),
        }
    }

    /// `GET key`.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(key);
        self.run(cmd).await
    }

    /// `SET key value EX ttl` (at least one second).
    pub async fn set_ex(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), KvError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value).arg("EX").arg(ttl.as_secs().max(1));
        self.run(cmd).await
    }

    /// `DEL key`.
    pub async fn del(&self, key: &str) -> Result<(), KvError> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(key);
        self.run(cmd).await
    }
}
