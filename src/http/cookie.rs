//! The Cookie request header on its way to Keystone.
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

#[cfg(test)]
mod tests {
    use super::*;

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
