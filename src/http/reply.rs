//! Answers fedgate writes itself: Keystone-style JSON on API paths, a
//! readable page in browser flows.

use http::header::{CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use http::{Response, StatusCode};

use super::body::{Body, full};

/// The body of [`json_error`]: `{"error": {"code", "message", "title"}}`.
pub fn json_error_body(status: StatusCode, reason: &str) -> String {
    serde_json::json!({
        "error": { "code": status.as_u16(), "message": reason, "title": status.canonical_reason().unwrap_or("Error") }
    })
    .to_string()
}

/// JSON in Keystone's error format, so clients show it like any Keystone error.
pub fn json_error(status: StatusCode, reason: &str) -> Response<Body> {
    let mut r = Response::new(full(json_error_body(status, reason)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

pub(crate) fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A small HTML page for people in a browser.
pub fn html_error(status: StatusCode, reason: &str, request_id: &str) -> Response<Body> {
    let title = status.canonical_reason().unwrap_or("Error");
    let page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{code} {title}</title>\
<style>body{{font-family:sans-serif;max-width:40em;margin:4em auto;color:#222}}code{{color:#666}}</style></head>\
<body><h1>{title}</h1><p id=\"reason\">{reason}</p><p><code>request id {rid}</code></p></body></html>\n",
        code = status.as_u16(),
        title = escape_html(title),
        reason = escape_html(reason),
        rid = escape_html(request_id),
    );
    let mut r = Response::new(full(page));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

/// An error in the form the client can read.
pub fn error(
    status: StatusCode,
    reason: &str,
    request_id: &str,
    html: bool,
    challenge: Option<&str>,
) -> Response<Body> {
    let mut r = if html {
        html_error(status, reason, request_id)
    } else {
        json_error(status, reason)
    };
    if let Some(c) = challenge.and_then(|c| HeaderValue::from_str(c).ok()) {
        r.headers_mut().insert(WWW_AUTHENTICATE, c);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn keystone_json_format() {
        let r = json_error(StatusCode::BAD_GATEWAY, "Keystone is unreachable");
        assert_eq!(r.status(), 502);
        let b = r.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["error"]["code"], 502);
        assert_eq!(v["error"]["title"], "Bad Gateway");
        assert_eq!(v["error"]["message"], "Keystone is unreachable");
    }

    #[tokio::test]
    async fn html_is_escaped() {
        let r = error(
            StatusCode::UNAUTHORIZED,
            "<script>x</script>",
            "id1",
            true,
            Some("Bearer"),
        );
        assert_eq!(r.headers()[WWW_AUTHENTICATE], "Bearer");
        let b = r.into_body().collect().await.unwrap().to_bytes();
        let s = String::from_utf8(b.to_vec()).unwrap();
        assert!(s.contains("&lt;script&gt;"));
        assert!(!s.contains("<script>"));
    }
}
