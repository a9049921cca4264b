//! Reading and writing fedgate's cookies. Every cookie is Secure, HttpOnly
//! and SameSite=Lax: Lax still sends it on the top-level redirect back from
//! the IdP, and keeps it off cross-site subrequests.

use http::HeaderMap;
use http::header::{COOKIE, HeaderValue};

/// The value of cookie `name` in the request, if present.
pub fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// A `Set-Cookie` value; `max_age` of `None` makes a browser-session cookie.
pub fn set(name: &str, value: &str, max_age: Option<u64>) -> HeaderValue {
    let mut s = format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite=Lax");
    if let Some(a) = max_age {
        s.push_str(&format!("; Max-Age={a}"));
    }
    HeaderValue::from_str(&s)
        .unwrap_or_else(|_| HeaderValue::from_static("fedgate_invalid=1; Max-Age=0"))
}

/// A `Set-Cookie` value that deletes the cookie.
pub fn clear(name: &str) -> HeaderValue {
    set(name, "", Some(0))
}

/// Removes fedgate's own cookies from a request before it goes to Keystone,
/// which has no use for them (and logs its environ at debug level).
pub fn strip_own(headers: &mut HeaderMap, own: &[&str]) {
    let kept: Vec<String> = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|kv| {
            !kv.is_empty()
                && !own
                    .iter()
                    .any(|n| kv.split_once('=').is_some_and(|(k, _)| k == *n))
        })
        .map(str::to_string)
        .collect();
    headers.remove(COOKIE);
    if !kept.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&kept.join("; ")) {
            headers.insert(COOKIE, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_write_strip() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, "a=1; fedgate_session=xyz".parse().unwrap());
        h.append(COOKIE, "fedgate_login=\"q\"; b=2".parse().unwrap());
        assert_eq!(get(&h, "fedgate_session"), Some("xyz"));
        assert_eq!(get(&h, "fedgate_login"), Some("q"));
        assert_eq!(get(&h, "nope"), None);
        strip_own(&mut h, &["fedgate_session", "fedgate_login"]);
        assert_eq!(h.get(COOKIE).unwrap(), "a=1; b=2");
        let c = set("fedgate_session", "v", None);
        assert_eq!(
            c,
            "fedgate_session=v; Path=/; Secure; HttpOnly; SameSite=Lax"
        );
        assert!(clear("x").to_str().unwrap().ends_with("Max-Age=0"));
    }
}
