//! The identities hook: when a federated login gets a token, Keystone's
//! user id and the identity fedgate verified go to the identities
//! recorder (`[plugins.identities]`).
//!
//! A token issue is recognised by Keystone's answer to an authenticated
//! route: 200 or 201 with `X-Subject-Token` and a JSON body, which is what
//! the federation endpoints (`.../protocols/<p>/auth`, any auth kind)
//! return; the user id is the body's `token.user.id`. The body is not
//! held back: it streams to the client as before while a copy of at most
//! [`MAX_TOKEN_BODY`] bytes is kept, and the user id is read when the
//! last byte has passed. A larger body (a token with a huge catalog) or
//! one that ends in an error is not recorded.
//!
//! Keystone's WebSSO answer (200, `text/html`, to an `oidc` login) is the
//! callback form of `sso_callback_template`: it carries the token id only
//! (`<input name="token" value="...">`), without `X-Subject-Token` and
//! without the user id. For it, once the page has passed, fedgate asks
//! Keystone whose the token is, with the token itself
//! (`GET /v3/auth/tokens?nocatalog`, `X-Auth-Token` and `X-Subject-Token`
//! both the new token: Keystone's policy lets a token's subject validate
//! it), through the configured upstream, off the request path, at most
//! [`MAX_RESOLVING`] at once and for at most [`RESOLVE_TIMEOUT`]. The
//! token is held in memory for that call only: never stored or logged.
//! Everything else passes untouched.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::sync::Semaphore;

use super::runtime::{Runtime, Shared};
use crate::conn::ConnInfo;
use crate::http::body::{Body, BoxError};
use crate::identity::{AuthMethod, Identity};
use crate::services::accounting::identities::model::Federated;
use crate::services::accounting::identities::recorder::Recorder;
use crate::upstream::Outbound;

/// Keystone's token answers are a few KiB (a scoped token with a catalog
/// of a large site stays well below); copies stop here.
pub const MAX_TOKEN_BODY: usize = 64 * 1024;
/// WebSSO tokens being resolved at once; beyond, a login is not recorded.
pub const MAX_RESOLVING: usize = 16;
/// How long Keystone gets to say whose a WebSSO token is.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// What kind of token answer a response is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Answer {
    /// JSON with `token.user.id` (every federation `auth` endpoint).
    Token,
    /// Keystone's WebSSO callback form with the token id only.
    SsoForm,
}

fn answer_kind(identity: &Identity, resp: &Response<Body>) -> Option<Answer> {
    let status = resp.status().as_u16();
    let media = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if matches!(status, 200 | 201)
        && resp.headers().contains_key("x-subject-token")
        && media == "application/json"
    {
        Some(Answer::Token)
    } else if status == 200 && identity.method == AuthMethod::OidcSession && media == "text/html" {
        Some(Answer::SsoForm)
    } else {
        None
    }
}

/// Wraps `resp` so that, if it issues a token to a federated identity,
/// the login is offered to the recorder once its body has been sent.
pub(super) fn observe(
    shared: &Shared,
    rt: &Arc<Runtime>,
    conn: &ConnInfo,
    identity: Option<&Identity>,
    resp: Response<Body>,
) -> Response<Body> {
    let Some(identity) = identity else {
        return resp;
    };
    let Some(recorder) = shared.identities.load_full() else {
        return resp;
    };
    let Some(answer) = answer_kind(identity, &resp) else {
        return resp;
    };
    let Some(federated) = Federated::from_identity(identity) else {
        return resp;
    };
    let principal = identity.principal.clone();
    let (rt, addrs) = (rt.clone(), (conn.peer, conn.local));
    let (parts, body) = resp.into_parts();
    let body = Tee {
        inner: body,
        copy: Vec::new(),
        over: false,
        done: Some(move |copy: Option<&[u8]>| match answer {
            Answer::Token => match copy.and_then(user_id_of) {
                Some(user) => offer(&recorder, &user, federated, &principal),
                None => {
                    tracing::info!(principal = %principal, "identity not recorded: no token.user.id in Keystone's answer");
                }
            },
            Answer::SsoForm => match copy.and_then(token_of_form) {
                Some(token) => resolve_later(rt, addrs, token, recorder, federated, principal),
                None => {
                    tracing::info!(principal = %principal, "identity not recorded: no token in Keystone's WebSSO form");
                }
            },
        }),
    };
    Response::from_parts(parts, body.boxed_unsync())
}

fn offer(recorder: &Recorder, user: &str, federated: Federated, principal: &str) {
    if !recorder.offer(user, federated) {
        tracing::warn!(user = %user, principal = %principal, "identity not recorded: the identities queue is full");
    }
}

fn resolving() -> &'static Arc<Semaphore> {
    static S: OnceLock<Arc<Semaphore>> = OnceLock::new();
    S.get_or_init(|| Arc::new(Semaphore::new(MAX_RESOLVING)))
}

/// Asks Keystone, off the request path, whose `token` is, then offers
/// the login.
fn resolve_later(
    rt: Arc<Runtime>,
    (peer, local): (SocketAddr, SocketAddr),
    token: String,
    recorder: Arc<Recorder>,
    federated: Federated,
    principal: String,
) {
    let Ok(permit) = resolving().clone().try_acquire_owned() else {
        recorder.count_dropped();
        tracing::warn!(principal = %principal, "identity not recorded: too many WebSSO tokens being resolved");
        return;
    };
    tokio::spawn(async move {
        let _permit = permit;
        let conn = ConnInfo {
            peer,
            local,
            tls: None,
        };
        match tokio::time::timeout(RESOLVE_TIMEOUT, token_user(&rt, &conn, &token)).await {
            Ok(Ok(user)) => offer(&recorder, &user, federated, &principal),
            Ok(Err(e)) => {
                tracing::warn!(principal = %principal, error = %e, "identity not recorded: Keystone did not say whose the WebSSO token is");
            }
            Err(_) => {
                tracing::warn!(principal = %principal, "identity not recorded: Keystone did not validate the WebSSO token in time");
            }
        }
    });
}

/// The user id of `token`, from Keystone's validation of it by itself.
async fn token_user(rt: &Runtime, conn: &ConnInfo, token: &str) -> Result<String, String> {
    let req = http::Request::builder()
        .method(http::Method::GET)
        .uri("/v3/auth/tokens?nocatalog")
        .header("x-auth-token", token)
        .header("x-subject-token", token)
        .header(http::header::ACCEPT, "application/json")
        .body(())
        .map_err(|e| e.to_string())?;
    let (parts, ()) = req.into_parts();
    let resp = rt
        .upstream
        .send(Outbound {
            parts,
            body: crate::http::body::empty(),
            conn,
            identity: None,
        })
        .await
        .map_err(|e| e.to_string())?;
    if resp.status() != http::StatusCode::OK {
        return Err(format!("token validation answered {}", resp.status()));
    }
    let mut body = resp.into_body();
    let mut copy = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        if let Some(d) = frame.data_ref() {
            if copy.len() + d.len() > MAX_TOKEN_BODY {
                return Err("the token validation is too large".into());
            }
            copy.extend_from_slice(d);
        }
    }
    user_id_of(&copy).ok_or_else(|| "no token.user.id in the validation".into())
}

/// `token.user.id` of a Keystone token answer: a non-empty printable
/// string of at most 255 bytes (Keystone's ids are 32 or 64 hex digits).
pub fn user_id_of(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let id = v.get("token")?.get("user")?.get("id")?.as_str()?;
    (!id.is_empty() && id.len() <= 255 && !id.chars().any(char::is_control)).then(|| id.to_string())
}

/// The token id of Keystone's WebSSO callback form: the `value` of the
/// `<input>` named `token`. Token ids are printable ASCII without quotes
/// or spaces (Fernet and JWS tokens are base64url with dots); anything
/// else is refused.
pub fn token_of_form(html: &[u8]) -> Option<String> {
    let html = std::str::from_utf8(html).ok()?;
    let at = html.find("name=\"token\"")?;
    let start = html[..at].rfind('<')?;
    let end = at + html[at..].find('>')?;
    let tag = &html[start..end];
    let v = tag.find("value=\"")? + "value=\"".len();
    let value = &tag[v..v + tag[v..].find('"')?];
    (!value.is_empty()
        && value.len() <= 8192
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\'' | b'<' | b'>' | b'&')))
    .then(|| value.to_string())
}

/// A body that passes every frame on and keeps a bounded copy of the
/// data, handed to `done` when the body has ended: `None` if it was
/// larger than [`MAX_TOKEN_BODY`]. Never called if the body fails or is
/// dropped before its end.
struct Tee<F> {
    inner: Body,
    copy: Vec<u8>,
    over: bool,
    done: Option<F>,
}

impl<F: FnOnce(Option<&[u8]>)> Tee<F> {
    fn finish(&mut self) {
        if let Some(f) = self.done.take() {
            f((!self.over).then_some(self.copy.as_slice()));
        }
    }
}

impl<F: FnOnce(Option<&[u8]>) + Unpin> http_body::Body for Tee<F> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref()
                    && !this.over
                {
                    if this.copy.len() + d.len() > MAX_TOKEN_BODY {
                        this.over = true;
                        this.copy = Vec::new();
                    } else {
                        this.copy.extend_from_slice(d);
                    }
                }
                if this.inner.is_end_stream() {
                    this.finish();
                }
            }
            Poll::Ready(None) => this.finish(),
            Poll::Ready(Some(Err(_))) => this.done = None,
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn user_ids_from_token_answers() {
        assert_eq!(
            user_id_of(br#"{"token":{"methods":["mapped"],"user":{"id":"9f1c","name":"x"}}}"#),
            Some("9f1c".into())
        );
        for bad in [
            &b"<html>"[..],
            br#"{"token":{"user":{}}}"#,
            br#"{"token":{"user":{"id":""}}}"#,
            br#"{"token":{"user":{"id":7}}}"#,
            br#"{"token":{"user":{"id":"a\nb"}}}"#,
            br#"{"user":{"id":"x"}}"#,
        ] {
            assert_eq!(user_id_of(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn token_ids_from_the_websso_form() {
        let page = br#"<form id="sso" name="sso" action="https://h/auth/websso/" method="post">
       <input type="hidden" name="token" id="token" value="gAAAAABn-x_Y1=">
       <input type="submit" name="submit_no_javascript" value="click"></form>"#;
        assert_eq!(token_of_form(page), Some("gAAAAABn-x_Y1=".into()));
        for bad in [
            &b"<html>no form</html>"[..],
            br#"<input name="token" value="">"#,
            br#"<input name="token" value="a b">"#,
            br#"<input name="token" value="a<b">"#,
            br#"<input name="token">"#,
            br#"name="token" value="x""#,
        ] {
            assert_eq!(token_of_form(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn the_dropped_counter_is_exported() {
        let m = crate::metrics::Metrics::new();
        m.identity_records_dropped.inc();
        let text = m.encode();
        assert!(
            text.contains("fedgate_identity_records_dropped_total 1"),
            "{text}"
        );
    }

    async fn tee(chunks: Vec<Vec<u8>>) -> (Vec<u8>, Option<Option<Vec<u8>>>) {
        let seen = Arc::new(Mutex::new(None));
        let s = seen.clone();
        let frames = chunks
            .into_iter()
            .map(|c| Ok::<_, BoxError>(Frame::data(Bytes::from(c))));
        let inner =
            http_body_util::StreamBody::new(futures_util::stream::iter(frames)).boxed_unsync();
        let body = Tee {
            inner,
            copy: Vec::new(),
            over: false,
            done: Some(move |c: Option<&[u8]>| {
                *s.lock().unwrap() = Some(c.map(<[u8]>::to_vec));
            }),
        };
        let out = body.collect().await.unwrap().to_bytes().to_vec();
        let seen = seen.lock().unwrap().clone();
        (out, seen)
    }

    #[tokio::test]
    async fn the_copy_is_bounded_and_the_stream_unchanged() {
        let (out, seen) = tee(vec![b"ab".to_vec(), b"cd".to_vec()]).await;
        assert_eq!(out, b"abcd");
        assert_eq!(seen, Some(Some(b"abcd".to_vec())));
        let big = vec![vec![b'x'; MAX_TOKEN_BODY], b"y".to_vec()];
        let (out, seen) = tee(big).await;
        assert_eq!(out.len(), MAX_TOKEN_BODY + 1, "the client gets every byte");
        assert_eq!(seen, Some(None), "too large: no copy");
    }
}
