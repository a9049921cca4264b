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
///
/// Runs twice on every request (on the request, and on the upstream's
/// response, which usually says `Connection: keep-alive`), so the usual
/// cases cost one scan of the names and no allocation: a name is tested by
/// its length and bytes ([`hop_index`]), not compared with nine
/// `HeaderName`s, and `Connection: keep-alive` or `close`, which name no
/// header beyond the standard ones, is removed without parsing a name.
pub fn strip(headers: &mut HeaderMap) {
    let present = headers
        .keys()
        .filter_map(hop_index)
        .fold(0u16, |m, i| m | 1 << i);
    if present == 0 {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.eq_ignore_ascii_case("keep-alive") && !s.eq_ignore_ascii_case("close"))
        .filter_map(|s| HeaderName::from_bytes(s.as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for (i, n) in HOP_NAMES.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(n);
        }
    }
}

/// The place of `name` in [`HOP`], if it is one. A `HeaderName` is lower
/// case, so a match on its text is exact; the compiler turns it into a
/// switch on the length and a comparison or two.
fn hop_index(name: &HeaderName) -> Option<usize> {
    Some(match name.as_str() {
        "connection" => 0,
        "keep-alive" => 1,
        "proxy-connection" => 2,
        "proxy-authenticate" => 3,
        "proxy-authorization" => 4,
        "te" => 5,
        "trailer" => 6,
        "transfer-encoding" => 7,
        "upgrade" => 8,
        _ => return None,
    })
}

/// [`HOP`] as header names, in the same order.
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
        for (i, (n, s)) in HOP_NAMES.iter().zip(HOP).enumerate() {
            assert_eq!(n.as_str(), *s);
            assert_eq!(hop_index(n), Some(i));
        }
        for s in ["x-connection", "tee", "connections", "upgrades", "host"] {
            assert_eq!(hop_index(&HeaderName::from_static(s)), None, "{s}");
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
