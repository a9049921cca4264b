//! The ARGO Messaging Service (AMS) client of the built-in sender: what
//! `ssmsend` does through argo-ams-library, for publishing only.
//!
//! One publish is `POST /v1/projects/{project}/topics/{topic}:publish`
//! with `x-api-key` and the body
//! `{"messages":[{"attributes":{"empaid":"<dir>/<file>"},"data":"<base64>"}]}`.
//! Status handling follows argo-ams-library: 200 is published; 401/403
//! are the credentials; 413 is the size; 408, 500, 502, 503, 504 and
//! transport errors or timeouts are retried `retries` times,
//! `retry_delay_secs` apart; anything else fails at once.

use std::time::Duration;

use base64::Engine;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::ams_options::AmsOptions;
use crate::http::client::{HttpClient, HttpError};

/// Why a message was not published; each names what AMS answered.
#[derive(Debug, thiserror::Error)]
pub enum AmsError {
    #[error("cannot set up the AMS client: {0}")]
    Setup(String),
    #[error("AMS refused the credentials (HTTP {status}): {body}")]
    Auth { status: u16, body: String },
    #[error("AMS refused the message as too large (HTTP 413): {body}")]
    TooLarge { body: String },
    #[error("AMS still failing after {attempts} attempts, last: {last}")]
    Retryable { attempts: u32, last: String },
    #[error("AMS answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("no AMS token: authx509 {0}")]
    Token(String),
}

impl AmsError {
    /// Errors after which the next message would fail the same way, so a
    /// run stops instead of hammering AMS with the rest of the queue.
    pub fn stops_run(&self) -> bool {
        matches!(
            self,
            AmsError::Auth { .. }
                | AmsError::Retryable { .. }
                | AmsError::Token(_)
                | AmsError::Setup(_)
        )
    }
}

/// Bounded, printable excerpt of an answer body for error messages.
fn excerpt(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(300)]);
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

enum Attempt<T> {
    Done(T),
    Retry(String),
    Fail(AmsError),
}

/// A publishing client for one AMS project.
pub struct AmsClient {
    opts: AmsOptions,
    http: HttpClient,
    token: Option<String>,
}

impl std::fmt::Debug for AmsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmsClient")
            .field("host", self.opts.host.get_ref())
            .finish_non_exhaustive()
    }
}

/// The JSON body of one publish, as argo-ams-library's
/// `AmsMessage(data=..., attributes={'empaid': ...})` makes it.
pub fn publish_body(empaid: &str, data: &[u8]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    serde_json::json!({
        "messages": [{"attributes": {"empaid": empaid}, "data": b64}]
    })
    .to_string()
    .into_bytes()
}

impl AmsClient {
    /// A client presenting the host certificate (for `authx509`), trusting
    /// the system roots plus `ca_file`.
    pub fn new(opts: &AmsOptions) -> Result<AmsClient, AmsError> {
        let setup = |e: String| AmsError::Setup(e);
        let cert = opts.cert.get_ref();
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .map_err(|e| setup(format!("{}: {e}", cert.display())))?
            .collect::<Result<_, _>>()
            .map_err(|e| setup(format!("{}: {e}", cert.display())))?;
        let key = crate::tls::load_key(opts.key.get_ref()).map_err(|e| setup(e.to_string()))?;
        let http = HttpClient::with_client_cert(
            opts.ca_file.as_ref().map(|c| c.get_ref().as_path()),
            Some((chain, key)),
            opts.timeout(),
        )
        .map_err(|e| setup(e.to_string()))?;
        Ok(AmsClient {
            opts: opts.clone(),
            http,
            token: opts.token.as_ref().map(|t| t.expose().to_string()),
        })
    }

    /// Runs `once` up to 1 + retries times while it asks for a retry.
    async fn with_retries<T, F, Fut>(&self, mut once: F) -> Result<T, AmsError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Attempt<T>>,
    {
        let attempts = 1 + *self.opts.retries.get_ref();
        let mut last = String::new();
        for n in 1..=attempts {
            match once().await {
                Attempt::Done(v) => return Ok(v),
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry(why) => {
                    tracing::warn!(attempt = n, of = attempts, "AMS: {why}");
                    last = why;
                    if n < attempts {
                        tokio::time::sleep(Duration::from_secs(self.opts.retry_delay_secs)).await;
                    }
                }
            }
        }
        Err(AmsError::Retryable { attempts, last })
    }

    fn classify(r: Result<crate::http::client::Answer, HttpError>) -> Attempt<bytes::Bytes> {
        let a = match r {
            Ok(a) => a,
            Err(e @ (HttpError::Timeout(_) | HttpError::Transport(..) | HttpError::Body(..))) => {
                return Attempt::Retry(e.to_string());
            }
            Err(e) => return Attempt::Fail(AmsError::Setup(e.to_string())),
        };
        let status = a.status.as_u16();
        let body = excerpt(&a.body);
        match status {
            200 => Attempt::Done(a.body),
            401 | 403 => Attempt::Fail(AmsError::Auth { status, body }),
            413 => Attempt::Fail(AmsError::TooLarge { body }),
            408 | 500 | 502 | 503 | 504 => Attempt::Retry(format!("HTTP {status}: {body}")),
            _ => Attempt::Fail(AmsError::Status { status, body }),
        }
    }

    /// The token: configured, else fetched once with the host certificate.
    pub async fn token(&mut self) -> Result<String, AmsError> {
        if let Some(t) = &self.token {
            return Ok(t.clone());
        }
        let url = self.opts.authx509_url();
        let body = self
            .with_retries(|| async { Self::classify(self.http.get(&url, None).await) })
            .await
            .map_err(|e| AmsError::Token(e.to_string()))?;
        #[derive(serde::Deserialize)]
        struct Answer {
            token: String,
        }
        let t = serde_json::from_slice::<Answer>(&body)
            .map_err(|e| AmsError::Token(format!("answer without a token: {e}")))?
            .token;
        if t.is_empty() {
            return Err(AmsError::Token("empty token".into()));
        }
        self.token = Some(t.clone());
        Ok(t)
    }

    /// Publishes one message to `topic`; returns AMS's message id. `Ok`
    /// means AMS answered 200: the message is AMS's, whatever the body.
    pub async fn publish(
        &mut self,
        topic: &str,
        empaid: &str,
        data: &[u8],
    ) -> Result<String, AmsError> {
        let token = self.token().await?;
        let url = self.opts.publish_url(topic);
        let body = publish_body(empaid, data);
        let answer = self
            .with_retries(|| async {
                Self::classify(
                    self.http
                        .post_json(&url, &[("x-api-key", &token)], body.clone())
                        .await,
                )
            })
            .await?;
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Ids {
            message_ids: Vec<String>,
        }
        Ok(match serde_json::from_slice::<Ids>(&answer) {
            Ok(ids) if !ids.message_ids.is_empty() => ids.message_ids.join(","),
            _ => {
                tracing::warn!(
                    empaid,
                    "AMS answered 200 without messageIds: {}",
                    excerpt(&answer)
                );
                String::new()
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_the_argo_envelope() {
        let b = publish_body("6548a000/6548a0e1000001", b"signed\n");
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"messages": [{
                "attributes": {"empaid": "6548a000/6548a0e1000001"},
                "data": "c2lnbmVkCg=="
            }]})
        );
    }

    #[test]
    fn statuses_are_classified() {
        let ans = |s: u16| {
            Ok(crate::http::client::Answer {
                status: http::StatusCode::from_u16(s).unwrap(),
                headers: Default::default(),
                body: bytes::Bytes::from_static(b"{}"),
            })
        };
        assert!(matches!(AmsClient::classify(ans(200)), Attempt::Done(_)));
        for s in [401, 403] {
            assert!(matches!(
                AmsClient::classify(ans(s)),
                Attempt::Fail(AmsError::Auth { .. })
            ));
        }
        assert!(matches!(
            AmsClient::classify(ans(413)),
            Attempt::Fail(AmsError::TooLarge { .. })
        ));
        for s in [408, 500, 502, 503, 504] {
            assert!(
                matches!(AmsClient::classify(ans(s)), Attempt::Retry(_)),
                "{s}"
            );
        }
        assert!(matches!(
            AmsClient::classify(ans(404)),
            Attempt::Fail(AmsError::Status { .. })
        ));
        assert!(matches!(
            AmsClient::classify(Err(HttpError::Timeout("u".into()))),
            Attempt::Retry(_)
        ));
    }
}
