//! Fetching a signed HEPiX image list (B5): HTTPS GET, with the AppDB
//! token as HTTP Basic (`<token>:x-oauth-basic`, as atrope sends it),
//! size-capped at [`list::MAX_LIST_BYTES`], then judged by
//! [`accept::evaluate`].
//!
//! cloudkeeper users wrote the token into the URL
//! (`https://<token>:x-oauth-basic@vmcaster...`); such a URL works too:
//! its user info becomes the Basic credentials and is removed from the URL,
//! so it never reaches a log line or an error.

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};

use super::accept::{self, Decision, Subscription};
use super::list;
use super::transport::{Transport, TransportError};
use crate::pki::Validator;
use crate::secret::Secret;

/// The password AppDB expects beside a token.
pub const APPDB_PASSWORD: &str = "x-oauth-basic";

/// Why a list could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("Unauthorized: {url} answered {status} (check appdb_token)")]
    Unauthorized { url: String, status: u16 },
    #[error("HttpStatus: {url} answered {status}")]
    Status { url: String, status: u16 },
}

impl FetchError {
    /// The refusal's name.
    pub fn code(&self) -> &'static str {
        match self {
            FetchError::Transport(t) => t.code(),
            FetchError::Unauthorized { .. } => "Unauthorized",
            FetchError::Status { .. } => "HttpStatus",
        }
    }
}

/// `Basic base64(user:password)` (RFC 7617; no escaping, as requests and
/// curl send it).
pub fn basic(user: &str, password: &str) -> HeaderValue {
    let raw = format!("{user}:{password}");
    let v = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    );
    let mut h = HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("Basic"));
    h.set_sensitive(true);
    h
}

/// The URL without user info, and the Basic credentials to send: the
/// configured token first, else the URL's user info.
pub fn credentials(url: &str, token: Option<&Secret>) -> (String, Option<HeaderValue>) {
    let Ok(mut u) = url::Url::parse(url) else {
        return (
            url.to_string(),
            token.map(|t| basic(t.expose(), APPDB_PASSWORD)),
        );
    };
    let user = percent_encoding::percent_decode_str(u.username())
        .decode_utf8_lossy()
        .into_owned();
    let pass = u.password().map(|p| {
        percent_encoding::percent_decode_str(p)
            .decode_utf8_lossy()
            .into_owned()
    });
    let _ = u.set_username("");
    let _ = u.set_password(None);
    let auth = match (token, user.is_empty()) {
        (Some(t), _) => Some(basic(t.expose(), APPDB_PASSWORD)),
        (None, false) => Some(basic(&user, pass.as_deref().unwrap_or(APPDB_PASSWORD))),
        (None, true) => None,
    };
    (u.to_string(), auth)
}

/// The list document at `url` (at most [`list::MAX_LIST_BYTES`]).
pub async fn fetch_list(
    t: &Transport,
    url: &str,
    token: Option<&Secret>,
) -> Result<Bytes, FetchError> {
    let (url, auth) = credentials(url, token);
    let mut h = HeaderMap::new();
    h.insert(
        header::ACCEPT,
        HeaderValue::from_static("application/pkcs7-mime, application/x-pkcs7-mime, */*"),
    );
    let (at, resp) = t.get(&url, &h, auth.as_ref()).await?;
    match resp.status() {
        StatusCode::OK => Ok(t.read_capped(&at, resp, list::MAX_LIST_BYTES).await?),
        s @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => Err(FetchError::Unauthorized {
            url: at.to_string(),
            status: s.as_u16(),
        }),
        s => Err(FetchError::Status {
            url: at.to_string(),
            status: s.as_u16(),
        }),
    }
}

/// Fetches the list and judges it (B4).
pub async fn fetch_and_evaluate(
    t: &Transport,
    url: &str,
    token: Option<&Secret>,
    validator: &Validator,
    sub: &Subscription,
    now: i64,
) -> Result<Decision, FetchError> {
    let body = fetch_list(t, url, token).await?;
    Ok(accept::evaluate(&body, validator, sub, now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_in_url_becomes_basic_and_leaves_the_url() {
        let (u, a) = credentials(
            "https://tok3n:x-oauth-basic@lists.example/vo/image.list",
            None,
        );
        assert_eq!(u, "https://lists.example/vo/image.list");
        assert_eq!(a.unwrap(), basic("tok3n", "x-oauth-basic"));
        let (u, a) = credentials("https://lists.example/x", Some(&Secret::new("configured")));
        assert_eq!(u, "https://lists.example/x");
        assert_eq!(
            a.unwrap().to_str().unwrap(),
            "Basic Y29uZmlndXJlZDp4LW9hdXRoLWJhc2lj"
        );
        assert!(credentials("https://lists.example/x", None).1.is_none());
    }
}
