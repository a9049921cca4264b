//! Redis, standalone (`url`) or behind Sentinel (`sentinels` +
//! `master_name`), with AUTH (ACL user and password), TLS with a site CA,
//! and a database number.
//!
//! One multiplexed connection is shared by all calls. Any failure drops
//! it, so the next call connects again, and under Sentinel that means
//! asking the sentinels who the master is now: after a failover the old
//! master refuses writes (READONLY) or is gone, and the first call that
//! notices makes the next one find the new master. Every call, connecting
//! included, has the one deadline.

use std::sync::Mutex;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{AsyncConnectionConfig, Client, ConnectionAddr, IntoConnectionInfo, TlsMode};

use super::{Backend, BoxFuture, KvError, Settings, ttl_secs};

const NAME: &str = "redis";

enum Source {
    Standalone(Client),
    /// The sentinel client is `&mut` to ask, hence the lock; it is held
    /// only while a new connection is set up.
    Sentinel(tokio::sync::Mutex<SentinelClient>),
}

pub struct Redis {
    source: Source,
    conn: Mutex<Option<MultiplexedConnection>>,
    timeout: Duration,
}

fn config_error(reason: impl Into<String>) -> KvError {
    KvError::Config {
        backend: NAME,
        reason: reason.into(),
    }
}

fn backend_error(e: redis::RedisError) -> KvError {
    KvError::Backend {
        backend: NAME,
        reason: e.to_string(),
    }
}

/// `host:port` (IPv6 as `[::1]:6379`) → a connection address.
fn addr(s: &str, tls: bool) -> Result<ConnectionAddr, KvError> {
    let (host, port) = s
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)))
        .ok_or_else(|| config_error(format!("`{s}` is not host:port")))?;
    Ok(if tls {
        ConnectionAddr::TcpTls {
            host: host.to_string(),
            port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(host.to_string(), port)
    })
}

fn certificates(s: &Settings) -> redis::TlsCertificates {
    redis::TlsCertificates {
        client_tls: None,
        root_cert: s.tls_ca_pem.clone(),
    }
}

impl Redis {
    /// From `[state]`; nothing is connected yet.
    pub fn new(s: &Settings) -> Result<Redis, KvError> {
        // The redis crate builds its rustls configuration with the
        // process-wide provider: make sure there is one (fedgate's).
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let source = match (&s.url, s.sentinels.is_empty()) {
            (Some(_), false) => {
                return Err(config_error(
                    "set either url (standalone) or sentinels, not both",
                ));
            }
            (None, true) => return Err(config_error("set url or sentinels")),
            (Some(url), true) => {
                let tls = url.starts_with("rediss://");
                if s.tls && !tls {
                    return Err(config_error(
                        "tls = true needs a rediss:// URL (redis:// is plain TCP)",
                    ));
                }
                let info = url
                    .as_str()
                    .into_connection_info()
                    .map_err(|e| config_error(format!("url: {e}")))?;
                let mut r = info.redis_settings().clone();
                if let Some(u) = &s.username {
                    r = r.set_username(u);
                }
                if let Some(p) = &s.password {
                    r = r.set_password(p);
                }
                if let Some(db) = s.db {
                    r = r.set_db(db);
                }
                let info = info.set_redis_settings(r);
                let client = if tls {
                    Client::build_with_tls(info, certificates(s))
                } else {
                    Client::open(info)
                }
                .map_err(|e| config_error(e.to_string()))?;
                Source::Standalone(client)
            }
            (None, false) => {
                let master = s
                    .master_name
                    .as_deref()
                    .ok_or_else(|| config_error("sentinels need master_name"))?;
                let addrs = s
                    .sentinels
                    .iter()
                    .map(|a| addr(a, s.tls))
                    .collect::<Result<Vec<_>, _>>()?;
                let mut b = SentinelClientBuilder::new(addrs, master, SentinelServerType::Master)
                    .map_err(|e| config_error(e.to_string()))?;
                if let Some(db) = s.db {
                    b = b.set_client_to_redis_db(db);
                }
                if let Some(u) = &s.username {
                    b = b.set_client_to_redis_username(u);
                }
                if let Some(p) = &s.password {
                    b = b.set_client_to_redis_password(p);
                }
                if s.tls {
                    b = b
                        .set_client_to_redis_tls_mode(TlsMode::Secure)
                        .set_client_to_sentinel_tls_mode(TlsMode::Secure)
                        .set_client_to_redis_certificates(certificates(s))
                        .set_client_to_sentinel_certificates(certificates(s));
                }
                let client = b.build().map_err(|e| config_error(e.to_string()))?;
                Source::Sentinel(tokio::sync::Mutex::new(client))
            }
        };
        Ok(Redis {
            source,
            conn: Mutex::new(None),
            timeout: s.timeout,
        })
    }

    fn cached(&self) -> Option<MultiplexedConnection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn forget(&self) {
        *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    async fn connect(&self) -> Result<MultiplexedConnection, KvError> {
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let cfg = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let c = match &self.source {
            Source::Standalone(client) => client
                .get_multiplexed_async_connection_with_config(&cfg)
                .await
                .map_err(backend_error)?,
            Source::Sentinel(s) => s
                .lock()
                .await
                .get_async_connection_with_config(&cfg)
                .await
                .map_err(backend_error)?,
        };
        *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = Some(c.clone());
        Ok(c)
    }

    /// Connect (if needed) and run `cmd`, all within the deadline.
    async fn run<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, KvError> {
        let r = tokio::time::timeout(self.timeout, async {
            let mut c = self.connect().await?;
            cmd.query_async::<T>(&mut c).await.map_err(backend_error)
        })
        .await;
        match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                self.forget();
                Err(e)
            }
            Err(_) => {
                self.forget();
                Err(KvError::Timeout {
                    backend: NAME,
                    timeout: self.timeout,
                })
            }
        }
    }
}

impl Backend for Redis {
    fn name(&self) -> &'static str {
        NAME
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, KvError>> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(key);
        Box::pin(self.run(cmd))
    }

    fn set<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), KvError>> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value).arg("EX").arg(ttl_secs(ttl));
        Box::pin(self.run(cmd))
    }

    fn add<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, KvError>> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key)
            .arg(value)
            .arg("EX")
            .arg(ttl_secs(ttl))
            .arg("NX");
        Box::pin(async move {
            let r: Option<String> = self.run(cmd).await?;
            Ok(r.is_some())
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), KvError>> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(key);
        Box::pin(async move {
            let _: i64 = self.run(cmd).await?;
            Ok(())
        })
    }

    fn probe(&self) -> BoxFuture<'_, Result<String, KvError>> {
        Box::pin(async move {
            let role: redis::Value = self.run(redis::cmd("ROLE")).await?;
            let role = match role {
                redis::Value::Array(v) => match v.first() {
                    Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                    _ => "unknown".into(),
                },
                _ => "unknown".into(),
            };
            if role != "master" {
                return Err(KvError::Backend {
                    backend: NAME,
                    reason: format!("the server is a {role}, not a master: writes would fail"),
                });
            }
            Ok(match &self.source {
                Source::Standalone(c) => format!("{} (master)", c.get_connection_info().addr()),
                Source::Sentinel(_) => "master found through Sentinel".to_string(),
            })
        })
    }
}
