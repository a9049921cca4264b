//! `auth = "introspect"`: an ESACO-compatible RFC 7662 endpoint, so sites
//! can retire ESACO for their other services. `POST` with HTTP Basic
//! caller credentials and a form field `token`; the answer is the
//! validated claims with `"active": true` (for introspected tokens, the
//! IdP's own answer), or `{"active":false}` for any token fedgate would
//! refuse, as ESACO 1.x answers. Unlike ESACO, results are cached and
//! opaque tokens work.

use http::header::{CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use http::{Method, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Map, Value};

use super::{BearerAuthenticator, RouteBearer};
use crate::http::body::{Body, full};

fn json(status: StatusCode, v: &Value) -> Response<Body> {
    let mut r = Response::new(full(v.to_string()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn error(status: StatusCode, code: &str, desc: &str) -> Response<Body> {
    json(
        status,
        &serde_json::json!({"error": code, "error_description": desc}),
    )
}

/// Decodes `Authorization: Basic` into (id, secret).
fn basic(parts: &http::request::Parts) -> Option<(String, String)> {
    use base64::Engine;
    let v = parts
        .headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, b64) = v.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (id, secret) = s.split_once(':')?;
    let dec = |x: &str| {
        percent_encoding::percent_decode_str(&x.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    Some((dec(id), dec(secret)))
}

impl BearerAuthenticator {
    /// Answers one `/introspect` request.
    pub async fn introspect_endpoint(
        &self,
        opts: &RouteBearer,
        parts: &http::request::Parts,
        body: Body,
    ) -> Response<Body> {
        if parts.method != Method::POST {
            return error(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request",
                "use POST",
            );
        }
        let authorised = basic(parts).is_some_and(|(id, secret)| {
            opts.clients.iter().any(|c| {
                c.id == id
                    && aws_lc_rs::constant_time::verify_slices_are_equal(
                        c.secret.expose().as_bytes(),
                        secret.as_bytes(),
                    )
                    .is_ok()
            })
        });
        if !authorised {
            tracing::info!("introspection caller refused: missing or wrong Basic credentials");
            let mut r = error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication failed",
            );
            r.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"fedgate\""),
            );
            return r;
        }
        let limit = opts.max_token_bytes + 4096;
        let bytes = match read_limited(body, limit).await {
            Some(b) => b,
            None => {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "invalid_request",
                    "request body too large or broken",
                );
            }
        };
        let token = url::form_urlencoded::parse(&bytes)
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned());
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the form field `token` is missing",
            );
        };
        let verdict = match super::extract::check_chars(&token) {
            Err(e) => Err(e),
            Ok(()) if token.len() > opts.max_token_bytes => {
                Err(crate::oidc::TokenError::TooLarge(opts.max_token_bytes))
            }
            Ok(()) => self.check(&token, opts).await,
        };
        match verdict {
            Ok(entry) => {
                let mut m = Map::new();
                m.insert("active".into(), Value::Bool(true));
                for (k, v) in &entry.validated.claims {
                    if k != "active" {
                        m.insert(k.clone(), v.clone());
                    }
                }
                json(StatusCode::OK, &Value::Object(m))
            }
            Err(e) => {
                tracing::info!(reason = %e, "introspection: token not active");
                json(StatusCode::OK, &serde_json::json!({"active": false}))
            }
        }
    }
}

/// The whole body, or `None` past `limit` bytes or on a read error.
async fn read_limited(mut body: Body, limit: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.ok()?;
        if let Some(d) = frame.data_ref() {
            if out.len() + d.len() > limit {
                return None;
            }
            out.extend_from_slice(d);
        }
    }
    Some(out)
}
