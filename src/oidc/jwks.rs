//! An IdP's signing keys (JWKS), refreshed periodically, refetched when a
//! token names an unknown `kid` (at most once per `MIN_REFETCH`, so junk
//! tokens cannot turn fedgate into a JWKS flooder), and kept while the IdP
//! fails: the last good set keeps verifying tokens.
//!
//! Only asymmetric keys are ever loaded. `oct` (shared-secret) keys are
//! dropped at parse time, so an HS-signed token can never be checked
//! against an RSA public key used as an HMAC secret.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use super::discovery::{Discovery, DiscoveryError};
use crate::http::client::HttpClient;

/// Shortest time between two fetches triggered by unknown `kid`s.
pub const MIN_REFETCH: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, thiserror::Error)]
pub enum JwksError {
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    #[error("JWKS fetch from {0} failed: {1}")]
    Fetch(String, String),
    #[error("JWKS at {0} is not valid: {1}")]
    Parse(String, String),
}

/// The asymmetric algorithms fedgate accepts by name. `none` and HS* are
/// not in the list on purpose.
pub fn parse_alg(s: &str) -> Option<Algorithm> {
    Some(match s {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    })
}

/// One usable verification key.
pub struct Key {
    pub kid: Option<String>,
    /// The JWK's own `alg`, when it names one.
    pub alg: Option<Algorithm>,
    kind: KeyKind,
    pub key: DecodingKey,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum KeyKind {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl Key {
    /// Whether this key may verify a signature made with `alg`: the
    /// algorithm must belong to the key type (and curve), and match the
    /// key's own `alg` when the JWKS states one.
    pub fn accepts(&self, alg: Algorithm) -> bool {
        let by_type = match self.kind {
            KeyKind::Rsa => matches!(
                alg,
                Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512
            ),
            KeyKind::P256 => alg == Algorithm::ES256,
            KeyKind::P384 => alg == Algorithm::ES384,
            KeyKind::Ed25519 => alg == Algorithm::EdDSA,
        };
        by_type && self.alg.is_none_or(|a| a == alg)
    }
}

/// A parsed key set.
#[derive(Default)]
pub struct KeySet {
    pub keys: Vec<Key>,
}

impl KeySet {
    /// Parses a JWKS document, skipping keys fedgate cannot or must not use
    /// (symmetric, encryption-only, unknown types or curves) rather than
    /// refusing the whole set.
    pub fn parse(body: &[u8]) -> Result<KeySet, String> {
        let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        let arr = v
            .get("keys")
            .and_then(|k| k.as_array())
            .ok_or("no `keys` array")?;
        let mut keys = Vec::new();
        for k in arr {
            let Ok(jwk) = serde_json::from_value::<Jwk>(k.clone()) else {
                continue;
            };
            if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
                continue;
            }
            let kind = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => KeyKind::Rsa,
                AlgorithmParameters::EllipticCurve(p) => match p.curve {
                    EllipticCurve::P256 => KeyKind::P256,
                    EllipticCurve::P384 => KeyKind::P384,
                    _ => continue,
                },
                AlgorithmParameters::OctetKeyPair(p) => match p.curve {
                    EllipticCurve::Ed25519 => KeyKind::Ed25519,
                    _ => continue,
                },
                // Never HMAC: see the module doc.
                _ => continue,
            };
            let alg = match jwk.common.key_algorithm {
                None => None,
                Some(ka) => match key_alg(ka) {
                    Some(a) => Some(a),
                    None => continue,
                },
            };
            let Ok(key) = DecodingKey::from_jwk(&jwk) else {
                continue;
            };
            keys.push(Key {
                kid: jwk.common.key_id.clone(),
                alg,
                kind,
                key,
            });
        }
        Ok(KeySet { keys })
    }

    /// Keys that may verify a token with this header: by `kid` when the
    /// token names one, otherwise every key of a matching type (IdPs that
    /// publish keys without `kid` exist).
    pub fn candidates(&self, kid: Option<&str>, alg: Algorithm) -> Vec<&Key> {
        self.keys
            .iter()
            .filter(|k| match kid {
                Some(id) => k.kid.as_deref() == Some(id),
                None => true,
            })
            .filter(|k| k.accepts(alg))
            .collect()
    }

    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }
}

fn key_alg(a: KeyAlgorithm) -> Option<Algorithm> {
    Some(match a {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

struct Loaded {
    set: Arc<KeySet>,
    at: Instant,
}

/// One IdP's JWKS with its refresh policy.
///
/// A stale set is still served while one background refresh runs: a slow
/// or dead IdP must not stall every request. Only a token whose `kid` the
/// set lacks (a key rotation) waits for a fetch, and those fetches are rate
/// limited.
pub struct Jwks {
    inner: Arc<Inner>,
}

struct Inner {
    discovery: Arc<Discovery>,
    uri: Option<String>,
    http: HttpClient,
    refresh: Duration,
    min_refetch: Duration,
    current: ArcSwapOption<Loaded>,
    /// Serialises fetches and remembers when the last one started.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
    /// Set while a background refresh is running.
    refreshing: std::sync::atomic::AtomicBool,
}

impl Jwks {
    pub fn new(
        discovery: Arc<Discovery>,
        uri: Option<String>,
        http: HttpClient,
        refresh: Duration,
    ) -> Jwks {
        Jwks {
            inner: Arc::new(Inner {
                discovery,
                uri,
                http,
                refresh,
                min_refetch: MIN_REFETCH,
                current: ArcSwapOption::new(None),
                last_fetch: tokio::sync::Mutex::new(None),
                refreshing: Default::default(),
            }),
        }
    }

    /// Overrides [`MIN_REFETCH`] (tests).
    pub fn with_min_refetch(mut self, d: Duration) -> Jwks {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.min_refetch = d;
        }
        self
    }

    /// The key set for a token with this `kid`. A set that knows the kid is
    /// returned at once, stale or not (a stale one starts a background
    /// refresh). With no set yet, or a kid the set lacks, the caller waits
    /// for a fetch (rate-limited). When a fetch fails the last good set is
    /// returned.
    pub async fn keys_for(&self, kid: Option<&str>) -> Result<Arc<KeySet>, JwksError> {
        if let Some(l) = self.inner.current.load_full()
            && kid.is_none_or(|k| l.set.has_kid(k))
        {
            if l.at.elapsed() >= self.inner.refresh {
                self.refresh_in_background();
            }
            return Ok(l.set.clone());
        }
        self.inner.fetch_waiting(kid).await
    }

    fn refresh_in_background(&self) {
        use std::sync::atomic::Ordering;
        if self.inner.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let inner = self.inner.clone();
        tokio::spawn(async move {
            {
                let mut last = inner.last_fetch.lock().await;
                let fresh = inner
                    .current
                    .load_full()
                    .is_some_and(|l| l.at.elapsed() < inner.refresh);
                let recently = last.is_some_and(|t| t.elapsed() < inner.min_refetch);
                if !fresh && !recently {
                    *last = Some(Instant::now());
                    if let Err(e) = inner.fetch().await {
                        tracing::warn!(error = %e, "JWKS refresh failed; using the last good key set");
                    }
                }
            }
            inner.refreshing.store(false, Ordering::Release);
        });
    }
}

impl Inner {
    /// A fetch the caller waits for: one at a time, and at most one per
    /// `min_refetch` while a set exists.
    async fn fetch_waiting(&self, kid: Option<&str>) -> Result<Arc<KeySet>, JwksError> {
        let mut last = self.last_fetch.lock().await;
        // Another request may have fetched while we waited.
        if let Some(l) = self.current.load_full()
            && l.at.elapsed() < self.refresh
            && kid.is_none_or(|k| l.set.has_kid(k))
        {
            return Ok(l.set.clone());
        }
        let recently = last.is_some_and(|t| t.elapsed() < self.min_refetch);
        if recently && let Some(l) = self.current.load_full() {
            return Ok(l.set.clone());
        }
        *last = Some(Instant::now());
        match self.fetch().await {
            Ok(set) => Ok(set),
            Err(e) => match self.current.load_full() {
                Some(l) => {
                    tracing::warn!(error = %e, "JWKS refresh failed; using the last good key set");
                    Ok(l.set.clone())
                }
                None => Err(e),
            },
        }
    }

    async fn fetch(&self) -> Result<Arc<KeySet>, JwksError> {
        let uri = match &self.uri {
            Some(u) => u.clone(),
            None => self
                .discovery
                .get()
                .await?
                .jwks_uri
                .clone()
                .ok_or(JwksError::Discovery(DiscoveryError::Missing("jwks_uri")))?,
        };
        let a = self
            .http
            .get(&uri, None)
            .await
            .map_err(|e| JwksError::Fetch(uri.clone(), e.to_string()))?;
        if !a.status.is_success() {
            return Err(JwksError::Fetch(uri, format!("HTTP {}", a.status.as_u16())));
        }
        let set = Arc::new(KeySet::parse(&a.body).map_err(|e| JwksError::Parse(uri.clone(), e))?);
        tracing::debug!(jwks = %uri, keys = set.keys.len(), "JWKS loaded");
        self.current.store(Some(Arc::new(Loaded {
            set: set.clone(),
            at: Instant::now(),
        })));
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA_N: &str = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";

    #[test]
    fn symmetric_and_encryption_keys_are_dropped() {
        let doc = format!(
            r#"{{"keys":[
              {{"kty":"oct","k":"c2VjcmV0","kid":"h"}},
              {{"kty":"RSA","n":"{RSA_N}","e":"AQAB","use":"enc","kid":"e"}},
              {{"kty":"RSA","n":"{RSA_N}","e":"AQAB","kid":"r","alg":"RS256"}},
              {{"kty":"RSA","n":"{RSA_N}","e":"AQAB"}},
              {{"kty":"weird"}}
            ]}}"#
        );
        let s = KeySet::parse(doc.as_bytes()).unwrap();
        assert_eq!(s.keys.len(), 2);
        assert!(!s.has_kid("h") && !s.has_kid("e") && s.has_kid("r"));
        // A key with alg RS256 refuses PS256; a key without alg takes any RSA alg.
        assert_eq!(s.candidates(Some("r"), Algorithm::RS256).len(), 1);
        assert_eq!(s.candidates(Some("r"), Algorithm::PS256).len(), 0);
        assert_eq!(s.candidates(None, Algorithm::PS256).len(), 1);
        // Never an EC or HMAC algorithm with an RSA key.
        assert_eq!(s.candidates(None, Algorithm::ES256).len(), 0);
        assert_eq!(s.candidates(None, Algorithm::HS256).len(), 0);
    }

    /// A JWKS server on loopback that counts fetches, fails from fetch
    /// `fail_after` on, and answers every fetch after the first `slow` late.
    async fn jwks_server(
        body: String,
        fail_after: usize,
        slow: Duration,
    ) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks", l.local_addr().unwrap());
        let n = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = n.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let i = count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let (status, b) = if i < fail_after {
                    ("200 OK", body.clone())
                } else {
                    ("500 Oops", String::new())
                };
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf).await;
                    if i > 0 {
                        tokio::time::sleep(slow).await;
                    }
                    let r = format!(
                        "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{b}",
                        b.len()
                    );
                    let _ = s.write_all(r.as_bytes()).await;
                });
            }
        });
        (url, n)
    }

    fn jwks_for(url: &str, refresh: Duration) -> Jwks {
        let http = HttpClient::new(None, Duration::from_secs(5)).unwrap();
        let meta: super::super::discovery::ProviderMetadata =
            serde_json::from_value(serde_json::json!({"issuer": "https://i"})).unwrap();
        let d = Arc::new(Discovery::new(
            "https://i",
            None,
            Some(meta),
            http.clone(),
            refresh,
        ));
        Jwks::new(d, Some(url.to_string()), http, refresh)
    }

    #[tokio::test]
    async fn unknown_kid_refetch_is_rate_limited() {
        let doc = format!(r#"{{"keys":[{{"kty":"RSA","n":"{RSA_N}","e":"AQAB","kid":"k1"}}]}}"#);
        let (url, n) = jwks_server(doc, usize::MAX, Duration::ZERO).await;
        let j = jwks_for(&url, Duration::from_secs(3600));
        assert!(j.keys_for(Some("k1")).await.unwrap().has_kid("k1"));
        for _ in 0..20 {
            assert!(!j.keys_for(Some("nope")).await.unwrap().has_kid("nope"));
        }
        // within MIN_REFETCH of the last fetch, unknown kids fetch nothing
        assert_eq!(n.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn last_good_set_is_served_while_the_idp_fails() {
        let doc = format!(r#"{{"keys":[{{"kty":"RSA","n":"{RSA_N}","e":"AQAB","kid":"k1"}}]}}"#);
        let (url, n) = jwks_server(doc, 1, Duration::ZERO).await;
        let j = jwks_for(&url, Duration::from_millis(1)).with_min_refetch(Duration::from_millis(1));
        assert!(j.keys_for(None).await.unwrap().has_kid("k1"));
        tokio::time::sleep(Duration::from_millis(5)).await;
        // stale: a refresh is attempted, fails, and the old set is used
        assert!(j.keys_for(None).await.unwrap().has_kid("k1"));
        // The refresh runs in the background: wait for it to have been tried.
        for _ in 0..200 {
            if n.load(std::sync::atomic::Ordering::SeqCst) >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(n.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert!(j.keys_for(None).await.unwrap().has_kid("k1"));
    }

    /// A stale set is served at once while one refresh runs in the
    /// background; only an unknown kid waits for the (slow) IdP.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stale_set_does_not_make_requests_wait_for_the_idp() {
        use std::sync::atomic::Ordering::SeqCst;
        let doc = format!(r#"{{"keys":[{{"kty":"RSA","n":"{RSA_N}","e":"AQAB","kid":"k1"}}]}}"#);
        // The first answer is quick; later ones take 1.5 s.
        let (url, n) = jwks_server(doc, usize::MAX, Duration::from_millis(1500)).await;
        let j =
            jwks_for(&url, Duration::from_millis(50)).with_min_refetch(Duration::from_millis(1));
        assert!(j.keys_for(Some("k1")).await.unwrap().has_kid("k1"));
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Stale now: ten requests, none waits, one refresh starts.
        let t0 = Instant::now();
        for _ in 0..10 {
            assert!(j.keys_for(Some("k1")).await.unwrap().has_kid("k1"));
        }
        assert!(
            t0.elapsed() < Duration::from_millis(500),
            "{:?}",
            t0.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(n.load(SeqCst), 2, "one background refresh");
        // An unknown kid waits for the IdP.
        let t0 = Instant::now();
        assert!(
            !j.keys_for(Some("rotated"))
                .await
                .unwrap()
                .has_kid("rotated")
        );
        assert!(
            t0.elapsed() >= Duration::from_millis(1000),
            "{:?}",
            t0.elapsed()
        );
    }

    #[test]
    fn hs_and_none_are_not_accepted_names() {
        for a in ["none", "HS256", "HS384", "HS512", "rs256", ""] {
            assert!(parse_alg(a).is_none(), "{a}");
        }
        assert_eq!(parse_alg("ES256"), Some(Algorithm::ES256));
    }
}
