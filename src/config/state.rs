//! `[state]`: where several nodes share the token cache, the browser
//! sessions and the used login states; and the legacy Redis keys it
//! replaces (`[cache] redis_url`, `redis_prefix`, `redis_timeout_ms`,
//! `[oidc.session] redis_url`), which still work as a shorthand for
//! `backend = "redis"`.
//!
//! Every key keeps its span, so that each problem names its line: a key
//! that the chosen backend would not read is an error too, since a
//! setting that silently does nothing is how outages are configured.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::auth::bearer::CacheConfig;
use crate::auth::websso::SessionConfig;
use crate::kv::{BackendKind, KeyRing, Settings};
use crate::problem::Source;
use crate::problem::{Problem, Problems};
use crate::secret::Secret;

const DEFAULT_TIMEOUT_MS: u64 = 500;
const DEFAULT_PREFIX: &str = "fedgate:";

/// `[state]`, as written. Absent keys are `None`, so that the legacy keys
/// can tell "not set" from "set to the default".
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// `memory` (default), `memcached` or `redis`.
    pub backend: Option<Spanned<BackendKind>>,
    /// memcached: every server, `host:port`.
    #[serde(default)]
    pub servers: Vec<Spanned<String>>,
    /// redis, standalone: `redis://` or `rediss://`.
    pub url: Option<Spanned<Secret>>,
    /// redis, Sentinel: `host:port` of each sentinel.
    #[serde(default)]
    pub sentinels: Vec<Spanned<String>>,
    pub master_name: Option<Spanned<String>>,
    pub db: Option<Spanned<i64>>,
    pub username: Option<Spanned<String>>,
    pub password: Option<Spanned<Secret>>,
    pub tls: Option<Spanned<bool>>,
    pub tls_ca_file: Option<Spanned<PathBuf>>,
    pub timeout_ms: Option<Spanned<u64>>,
    pub prefix: Option<Spanned<String>>,
    /// Sealing keys, base64, newest first; default `[oidc.session] keys`.
    #[serde(default)]
    pub keys: Vec<Spanned<Secret>>,
}

/// `[state]` resolved: what the store is built from. Two configurations
/// with equal `Resolved` can share one running store (a reload keeps it,
/// and with it the memory backend's sessions).
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub settings: Settings,
    /// Base64 sealing keys (empty for the memory backend).
    keys: Vec<Secret>,
}

impl Resolved {
    /// The sealing keys; `None` for the memory backend.
    pub fn key_ring(&self) -> Option<KeyRing> {
        if self.settings.backend == BackendKind::Memory {
            return None;
        }
        KeyRing::from_base64(self.keys.iter().map(|k| k.expose())).ok()
    }

    /// Builds the store (nothing is connected yet).
    pub fn store(&self) -> Result<crate::kv::Store, crate::kv::KvError> {
        crate::kv::Store::from_settings(&self.settings, self.key_ring())
    }
}

/// The sections `[state]` is resolved from: itself and the two that hold
/// legacy keys.
pub struct Sections<'a> {
    pub state: &'a StateConfig,
    pub cache: &'a CacheConfig,
    pub session: &'a SessionConfig,
    pub source: &'a Source,
}

impl Sections<'_> {
    /// `[state]` with its defaults and the legacy keys applied, or every
    /// problem with its line.
    pub fn resolve(&self) -> Result<Resolved, Problems> {
        let src = self.source;
        let st = self.state;
        let mut p = Problems::default();

        // The legacy URLs must agree with each other and with [state].
        let legacy_urls: Vec<(&Spanned<Secret>, &str)> = [
            (self.cache.redis_url.as_ref(), "cache.redis_url"),
            (self.session.redis_url.as_ref(), "oidc.session.redis_url"),
        ]
        .into_iter()
        .filter_map(|(u, n)| u.map(|u| (u, n)))
        .collect();
        if let [(a, an), (b, bn)] = legacy_urls.as_slice()
            && a.get_ref() != b.get_ref()
        {
            p.push(src.problem(
                *b,
                format!("{bn} differs from {an}: both are the shorthand for [state] url, so they must be equal (better: move them to [state])"),
            ));
        }
        let legacy_url = legacy_urls.first().map(|(u, n)| (*u, *n));
        let backend = match (&st.backend, legacy_url) {
            (Some(b), Some((u, n))) if *b.get_ref() != BackendKind::Redis => {
                p.push(src.problem(
                    u,
                    format!(
                        "{n} asks for Redis but [state] backend = \"{}\"; remove {n}",
                        b.get_ref().as_str()
                    ),
                ));
                *b.get_ref()
            }
            (Some(b), _) => *b.get_ref(),
            (None, Some(_)) => BackendKind::Redis,
            (None, None) => BackendKind::Memory,
        };
        let url = match (&st.url, legacy_url) {
            (Some(s), Some((u, n))) if s.get_ref() != u.get_ref() => {
                p.push(src.problem(u, format!("{n} differs from [state] url; remove {n}")));
                Some(s.get_ref().expose().to_string())
            }
            (Some(s), _) => Some(s.get_ref().expose().to_string()),
            (None, Some((u, _))) => Some(u.get_ref().expose().to_string()),
            (None, None) => None,
        };
        let prefix = match (&st.prefix, &self.cache.redis_prefix) {
            (Some(s), Some(l)) if s.get_ref() != l.get_ref() => {
                p.push(src.problem(
                    l,
                    "cache.redis_prefix differs from [state] prefix; remove cache.redis_prefix",
                ));
                s.get_ref().clone()
            }
            (Some(s), _) | (None, Some(s)) => s.get_ref().clone(),
            (None, None) => DEFAULT_PREFIX.to_string(),
        };
        let timeout_ms = match (&st.timeout_ms, &self.cache.redis_timeout_ms) {
            (Some(s), Some(l)) if s.get_ref() != l.get_ref() => {
                p.push(src.problem(
                    l,
                    "cache.redis_timeout_ms differs from [state] timeout_ms; remove cache.redis_timeout_ms",
                ));
                *s.get_ref()
            }
            (Some(s), _) | (None, Some(s)) => {
                if *s.get_ref() == 0 {
                    p.push(src.problem(s, "timeout_ms = 0 would fail every shared-state call"));
                }
                *s.get_ref()
            }
            (None, None) => DEFAULT_TIMEOUT_MS,
        };
        if let Some(s) = &st.prefix
            && (s.get_ref().len() > 100 || s.get_ref().bytes().any(|b| b <= b' ' || b == 0x7f))
        {
            p.push(src.problem(
                s,
                "state.prefix: at most 100 characters, without spaces or control characters (memcached keys cannot hold them)",
            ));
        }

        // Keys that only one backend reads.
        let name = backend.as_str();
        let mut only = |set: bool, at: Option<Problem>, what: &str, wants: BackendKind| {
            if set && backend != wants {
                let mut pr = at.unwrap_or_else(|| src.file_problem(""));
                pr.message = format!(
                    "state.{what} is read only with backend = \"{}\", not \"{name}\"",
                    wants.as_str()
                );
                p.push(pr);
            }
        };
        only(
            !st.servers.is_empty(),
            st.servers.first().map(|s| src.problem(s, "")),
            "servers",
            BackendKind::Memcached,
        );
        for (set, sp, what) in [
            (
                st.url.is_some(),
                st.url.as_ref().map(|s| src.problem(s, "")),
                "url",
            ),
            (
                !st.sentinels.is_empty(),
                st.sentinels.first().map(|s| src.problem(s, "")),
                "sentinels",
            ),
            (
                st.master_name.is_some(),
                st.master_name.as_ref().map(|s| src.problem(s, "")),
                "master_name",
            ),
            (
                st.db.is_some(),
                st.db.as_ref().map(|s| src.problem(s, "")),
                "db",
            ),
            (
                st.username.is_some(),
                st.username.as_ref().map(|s| src.problem(s, "")),
                "username",
            ),
            (
                st.password.is_some(),
                st.password.as_ref().map(|s| src.problem(s, "")),
                "password",
            ),
            (
                st.tls.is_some(),
                st.tls.as_ref().map(|s| src.problem(s, "")),
                "tls",
            ),
            (
                st.tls_ca_file.is_some(),
                st.tls_ca_file.as_ref().map(|s| src.problem(s, "")),
                "tls_ca_file",
            ),
        ] {
            only(set, sp, what, BackendKind::Redis);
        }

        let mut settings = Settings {
            backend,
            servers: st.servers.iter().map(|s| s.get_ref().clone()).collect(),
            url,
            sentinels: st.sentinels.iter().map(|s| s.get_ref().clone()).collect(),
            master_name: st.master_name.as_ref().map(|s| s.get_ref().clone()),
            db: st.db.as_ref().map(|s| *s.get_ref()),
            username: st.username.as_ref().map(|s| s.get_ref().clone()),
            password: st
                .password
                .as_ref()
                .map(|s| s.get_ref().expose().to_string()),
            tls: st.tls.as_ref().is_some_and(|t| *t.get_ref()),
            tls_ca_pem: None,
            timeout: Duration::from_millis(timeout_ms),
            prefix,
            max_entries: self.session.max_sessions.max(1000),
        };
        let backend_at = |msg: String| match &st.backend {
            Some(b) => src.problem(b, msg),
            None => match legacy_url {
                Some((u, _)) => src.problem(u, msg),
                None => src.file_problem(msg),
            },
        };
        match backend {
            BackendKind::Memory => {}
            BackendKind::Memcached => {
                if st.servers.is_empty() {
                    p.push(backend_at(
                        "backend = \"memcached\" needs state.servers (host:port of every server)"
                            .into(),
                    ));
                }
                for s in &st.servers {
                    if !valid_host_port(s.get_ref()) {
                        p.push(src.problem(
                            s,
                            format!("state.servers: `{}` is not host:port", s.get_ref()),
                        ));
                    }
                }
            }
            BackendKind::Redis => {
                match (&settings.url, settings.sentinels.is_empty()) {
                    (Some(_), false) => p.push(backend_at(
                        "set either state.url (standalone Redis) or state.sentinels, not both".into(),
                    )),
                    (None, true) => p.push(backend_at(
                        "backend = \"redis\" needs state.url (redis:// or rediss://) or state.sentinels with master_name".into(),
                    )),
                    _ => {}
                }
                if let Some(u) = &settings.url {
                    let at = |m: String| match (&st.url, legacy_url) {
                        (Some(s), _) => src.problem(s, m),
                        (None, Some((l, _))) => src.problem(l, m),
                        _ => src.file_problem(m),
                    };
                    match url::Url::parse(u) {
                        Ok(p2) if p2.scheme() == "redis" || p2.scheme() == "rediss" => {
                            if settings.tls && p2.scheme() == "redis" {
                                p.push(at("state.tls = true needs a rediss:// URL".into()));
                            }
                        }
                        _ => p.push(at(format!(
                            "`{}` is not a redis:// or rediss:// URL",
                            crate::kv::redact_url(u)
                        ))),
                    }
                }
                if !settings.sentinels.is_empty() && settings.master_name.is_none() {
                    p.push(backend_at(
                        "state.sentinels need state.master_name (the name Sentinel monitors)"
                            .into(),
                    ));
                }
                for s in &st.sentinels {
                    if !valid_host_port(s.get_ref()) {
                        p.push(src.problem(
                            s,
                            format!("state.sentinels: `{}` is not host:port", s.get_ref()),
                        ));
                    }
                }
                if let Some(f) = &st.tls_ca_file {
                    match std::fs::read(f.get_ref()) {
                        Ok(pem) if pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") => {
                            settings.tls_ca_pem = Some(pem)
                        }
                        Ok(_) => p.push(src.problem(
                            f,
                            format!(
                                "state.tls_ca_file {} holds no PEM certificate",
                                f.get_ref().display()
                            ),
                        )),
                        Err(e) => p.push(src.problem(
                            f,
                            format!("state.tls_ca_file {}: {e}", f.get_ref().display()),
                        )),
                    }
                }
            }
        }

        // Sealing keys: [state] keys, else [oidc.session] keys.
        let keys: Vec<Secret> = if st.keys.is_empty() {
            self.session.keys.clone()
        } else {
            st.keys.iter().map(|k| k.get_ref().clone()).collect()
        };
        if backend != BackendKind::Memory {
            if keys.is_empty() {
                p.push(backend_at(format!(
                    "backend = \"{name}\" needs sealing keys: state.keys or oidc.session.keys (openssl rand -base64 32)"
                )));
            }
            if KeyRing::from_base64(keys.iter().map(|k| k.expose())).is_err() {
                let msg = "state.keys: each key must be 32 random bytes in base64 (openssl rand -base64 32)";
                p.push(match st.keys.first() {
                    Some(k) => src.problem(k, msg),
                    None => src.file_problem(msg),
                });
            }
        } else if let Some(k) = st.keys.first() {
            p.push(src.problem(k, "state.keys is read only when the state leaves the host (backend memcached or redis)"));
        }
        p.into_result()?;
        Ok(Resolved {
            settings,
            keys: if backend == BackendKind::Memory {
                Vec::new()
            } else {
                keys
            },
        })
    }

    /// Lines for `check-config` about the legacy keys still in use.
    pub fn deprecations(&self) -> Vec<String> {
        let src = self.source;
        let mut out = Vec::new();
        let mut note = |mut at: Problem, key: &str, instead: &str| {
            at.message = format!(
                "{key} is deprecated: use [state] {instead} (docs/operations.md, \"Several nodes: shared state\")"
            );
            out.push(at.to_string())
        };
        if let Some(u) = &self.cache.redis_url {
            note(
                src.problem(u, ""),
                "cache.redis_url",
                "backend = \"redis\" with url",
            );
        }
        if let Some(u) = &self.cache.redis_prefix {
            note(src.problem(u, ""), "cache.redis_prefix", "prefix");
        }
        if let Some(u) = &self.cache.redis_timeout_ms {
            note(src.problem(u, ""), "cache.redis_timeout_ms", "timeout_ms");
        }
        if let Some(u) = &self.session.redis_url {
            note(
                src.problem(u, ""),
                "oidc.session.redis_url",
                "backend = \"redis\" with url",
            );
        }
        out
    }
}

fn valid_host_port(s: &str) -> bool {
    s.rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0))
}
