//! The few pages a person sees from fedgate itself: the IdP chooser and
//! the logout confirmation. Errors use the shared error page.

use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};

use crate::http::body::{Body, full};
use crate::http::reply::escape_html;

fn page(status: StatusCode, title: &str, inner: &str) -> Response<Body> {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\
<meta name=\"viewport\" content=\"width=device-width\">\
<style>body{{font-family:sans-serif;max-width:32em;margin:4em auto;color:#222}}\
a.idp{{display:block;padding:.8em 1em;margin:.5em 0;border:1px solid #bbb;border-radius:6px;text-decoration:none;color:#024}}\
a.idp:hover{{background:#eef}}</style></head><body><h1>{t}</h1>{inner}</body></html>\n",
        t = escape_html(title)
    );
    let mut r = Response::new(full(html));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// One choice on the chooser page: label and the URL that starts the login.
pub struct Choice {
    pub label: String,
    pub href: String,
}

pub fn chooser(choices: &[Choice]) -> Response<Body> {
    let mut inner = String::from("<p>Choose how to sign in:</p>\n<nav id=\"idps\">\n");
    for c in choices {
        inner.push_str(&format!(
            "<a class=\"idp\" href=\"{}\">{}</a>\n",
            escape_html(&c.href),
            escape_html(&c.label)
        ));
    }
    inner.push_str("</nav>\n");
    page(StatusCode::OK, "Sign in", &inner)
}

/// The sign-out confirmation: one button that POSTs the sealed token.
pub fn confirm_logout(action: &str, token: &str) -> Response<Body> {
    let inner = format!(
        "<p>Sign out of the cloud dashboard's single sign-on?</p>\
<form id=\"logout\" method=\"post\" action=\"{}\">\
<input type=\"hidden\" name=\"csrf\" value=\"{}\">\
<button id=\"confirm\" type=\"submit\">Sign out</button></form>",
        escape_html(action),
        escape_html(token)
    );
    page(StatusCode::OK, "Sign out", &inner)
}

/// A refusal on the logout path, as a page.
pub fn error(status: StatusCode, reason: &str) -> Response<Body> {
    page(
        status,
        status.canonical_reason().unwrap_or("Error"),
        &format!("<p id=\"reason\">{}</p>", escape_html(reason)),
    )
}

/// The session store is down: nothing is wrong with the user's login,
/// so the page says to wait, and the browser reloads by itself.
pub fn unavailable(retry_after: u32) -> Response<Body> {
    let inner = format!(
        "<p id=\"reason\">Sign-in is temporarily unavailable: the session store cannot be reached. \
Nothing is lost: reload this page in {retry_after} seconds.</p>"
    );
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Sign-in is temporarily unavailable",
        &inner,
    )
}

pub fn logged_out(back: Option<&str>) -> Response<Body> {
    let inner = match back {
        Some(b) => format!(
            "<p>You are signed out.</p><p><a id=\"back\" href=\"{}\">Back to the dashboard</a></p>",
            escape_html(b)
        ),
        None => "<p>You are signed out.</p>".to_string(),
    };
    page(StatusCode::OK, "Signed out", &inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn chooser_escapes() {
        let r = chooser(&[Choice {
            label: "EGI <Check-in>".into(),
            href: "/x?a=1&b=\"2\"".into(),
        }]);
        let b =
            String::from_utf8(r.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
        assert!(b.contains("EGI &lt;Check-in&gt;"));
        assert!(b.contains("href=\"/x?a=1&amp;b=&quot;2&quot;\""));
    }
}
