//! Hop-by-hop headers (RFC 9110 §7.6.1): meaningful for one connection
//! only, so never forwarded in either direction.

use http::HeaderMap;
use http::header::{
    CONNECTION, HeaderName, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER,
    TRANSFER_ENCODING, UPGRADE,
};

const HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

pub fn is_hop_by_hop(name: &str) -> bool {
    HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// Removes hop-by-hop headers, including those named in `Connection`.
/// One pass over the names, since most requests carry none of them.
pub fn strip(headers: &mut HeaderMap) {
    // Both lists are usually empty, and then nothing is allocated.
    // `Connection: keep-alive` and `close` name no header beyond the
    // standard ones removed below: no name is parsed for them.
    let mut doomed: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.eq_ignore_ascii_case("keep-alive") && !s.eq_ignore_ascii_case("close"))
        .filter_map(|s| HeaderName::from_bytes(s.as_bytes()).ok())
        .collect();
    doomed.extend(headers.keys().filter(|k| HOP_NAMES.contains(k)).cloned());
    for n in doomed {
        headers.remove(n);
    }
}

/// [`HOP`] as header names, compared without parsing or case folding
/// (a `HeaderName` is lower case).
static HOP_NAMES: [HeaderName; 9] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_listed_and_standard() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            "close, X-Secret-Hop, Keep-Alive".parse().unwrap(),
        );
        h.insert("x-secret-hop", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("x-auth-token", "t".parse().unwrap());
        strip(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-auth-token"));
    }

    #[test]
    fn the_names_are_the_list() {
        assert_eq!(HOP_NAMES.len(), HOP.len());
        for (n, s) in HOP_NAMES.iter().zip(HOP) {
            assert_eq!(n.as_str(), *s);
        }
        let mut h = HeaderMap::new();
        for s in HOP {
            h.insert(HeaderName::from_static(s), "1".parse().unwrap());
            assert!(is_hop_by_hop(&s.to_uppercase()));
        }
        h.insert("x-kept", "1".parse().unwrap());
        strip(&mut h);
        assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["x-kept"]);
    }
}
