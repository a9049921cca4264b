//! The Cookie request header on its way to Keystone.
//!
//! Keystone uses no cookies, but when a dashboard shares its host name the
//! browser sends the dashboard's (Horizon's `sessionid`, `csrftoken`), and
//! Keystone logs its environ at debug level. [`retain`] keeps only the
//! cookies a site names (`[upstream] forward_cookies`, empty by default).
//!
//! HTTP/2 lets a client split Cookie into several fields (RFC 9113
//! §8.2.3), which must be joined with "; " before the request goes on
//! over HTTP/1.1, where a second Cookie line is not allowed (RFC 6265
//! §5.4).

use http::HeaderMap;
use http::header::{COOKIE, HeaderValue};

/// Joins every Cookie field into one, in order, with "; ".
pub fn join(headers: &mut HeaderMap) {
    let mut fields = headers.get_all(COOKIE).iter();
    let (Some(first), Some(_)) = (fields.next(), fields.next()) else {
        return;
    };
    let mut joined = first.as_bytes().to_vec();
    for v in headers.get_all(COOKIE).iter().skip(1) {
        joined.extend_from_slice(b"; ");
        joined.extend_from_slice(v.as_bytes());
    }
    // Every part was a valid header value, and "; " is too.
    match HeaderValue::from_bytes(&joined) {
        Ok(v) => {
            headers.insert(COOKIE, v);
        }
        Err(_) => {
            headers.remove(COOKIE);
        }
    }
}

/// Keeps only the cookies named in `allow` (case-sensitive, as cookie
/// names are: RFC 6265 §5.4), in one Cookie header; removes the header
/// when none is left. Returns how many cookies were dropped.
pub fn retain(headers: &mut HeaderMap, allow: &[String]) -> usize {
    if !headers.contains_key(COOKIE) {
        return 0;
    }
    let mut kept: Vec<&[u8]> = Vec::new();
    let mut dropped = 0;
    for field in headers.get_all(COOKIE) {
        for pair in field.as_bytes().split(|&b| b == b';') {
            let pair = pair.trim_ascii();
            if pair.is_empty() {
                continue;
            }
            let name = pair
                .split(|&b| b == b'=')
                .next()
                .unwrap_or(pair)
                .trim_ascii();
            if allow.iter().any(|a| a.as_bytes() == name) {
                kept.push(pair);
            } else {
                dropped += 1;
            }
        }
    }
    let joined = kept.join(&b"; "[..]);
    match HeaderValue::from_bytes(&joined) {
        Ok(v) if !joined.is_empty() => {
            headers.insert(COOKIE, v);
        }
        _ => {
            headers.remove(COOKIE);
        }
    }
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allowed_cookies_are_kept() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, "sessionid=s; keep=1".parse().unwrap());
        h.append(COOKIE, "csrftoken=t;; also = 2 ;Keep=3".parse().unwrap());
        let allow = ["keep".to_string(), "also".to_string()];
        assert_eq!(retain(&mut h, &allow), 3);
        assert_eq!(h.get_all(COOKIE).iter().count(), 1);
        assert_eq!(h[COOKIE], "keep=1; also = 2");
        assert_eq!(retain(&mut h, &[]), 2);
        assert!(!h.contains_key(COOKIE));
        assert_eq!(retain(&mut h, &allow), 0);
    }

    #[test]
    fn fields_are_joined_in_order() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, "a=1".parse().unwrap());
        h.append(COOKIE, "b=2; c=3".parse().unwrap());
        join(&mut h);
        assert_eq!(h.get_all(COOKIE).iter().count(), 1);
        assert_eq!(h[COOKIE], "a=1; b=2; c=3");
        let mut one = HeaderMap::new();
        one.append(COOKIE, "a=1".parse().unwrap());
        join(&mut one);
        assert_eq!(one[COOKIE], "a=1");
        let mut none = HeaderMap::new();
        join(&mut none);
        assert!(none.is_empty());
    }
}
