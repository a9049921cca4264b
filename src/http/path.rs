//! The request path as Keystone will route it.
//!
//! Keystone runs behind a WSGI server that percent-decodes the path into
//! `PATH_INFO` (PEP 3333), and its URL-normalising middleware strips
//! trailing slashes before werkzeug routes; werkzeug merges repeated
//! slashes, and uWSGI resolves `.` and `..` segments. A gateway that
//! routed on the raw path would see `//v3/OS-FEDERATION/…/auth` or
//! `…/auth/` as some other path than the federation handler Keystone runs
//! for them, and apply the wrong route's authentication.
//!
//! [`normalize`] therefore computes one canonical path: decoded, repeated
//! slashes merged, dot segments removed (RFC 3986 §5.2.4), no trailing
//! slash. fedgate routes on it **and forwards it**, so the route's decision
//! and Keystone's handler are about the same path by construction. What
//! cannot be made canonical is refused: an encoded `/` (`%2F`), which a
//! WSGI server decodes into a separator the router never saw, and NUL.

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

/// Why a path is refused (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("request path must start with `/`")]
    NotAbsolute,
    #[error("request path contains an encoded `/` (%2F)")]
    EncodedSlash,
    #[error("request path contains a NUL byte")]
    Nul,
    #[error("request path is not valid UTF-8 once percent-decoded")]
    NotUtf8,
}

/// A path in canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalPath {
    /// Percent-decoded: what routes match and what Keystone's `PATH_INFO`
    /// will be. Starts with `/`; no empty, `.` or `..` segment; no
    /// trailing `/` unless it is the root.
    pub decoded: String,
    /// The same path percent-encoded, to forward. The request's own bytes
    /// when they already were canonical.
    pub raw: String,
}

impl NormalPath {
    /// Whether the forwarded path differs from the client's.
    pub fn changed(&self, original: &str) -> bool {
        self.raw != original
    }
}

/// Bytes re-encoded when a path has to be rewritten: controls, space, and
/// what would end or change the path in a request target (RFC 3986 §3.3:
/// `?`, `#`, and `%` itself), plus the characters WHATWG's path
/// percent-encode set adds. Non-ASCII is always encoded.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'/');

/// Canonical form of a request path (without its query), or why there is
/// none.
pub fn normalize(raw: &str) -> Result<NormalPath, PathError> {
    if is_plain(raw) {
        return Ok(NormalPath {
            decoded: raw.to_string(),
            raw: raw.to_string(),
        });
    }
    normalize_in_full(raw)
}

/// Whether `raw` is already canonical with nothing to decode: absolute, no
/// `%` or NUL, and no empty, `.` or `..` segment (so no `//` and no
/// trailing `/` but the root's). Nearly every real path is (`/v3`,
/// `/v3/auth/tokens`), and for those [`normalize_in_full`] would rebuild
/// the very same text through a decoder and a segment list.
fn is_plain(raw: &str) -> bool {
    let Some(rest) = raw.strip_prefix('/') else {
        return false;
    };
    raw == "/"
        || (!raw.bytes().any(|b| b == b'%' || b == 0)
            && rest.split('/').all(|s| !matches!(s, "" | "." | "..")))
}

/// [`normalize`] for any path.
fn normalize_in_full(raw: &str) -> Result<NormalPath, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    for w in raw.as_bytes().windows(3) {
        match w {
            [b'%', b'2', b'F' | b'f'] => return Err(PathError::EncodedSlash),
            [b'%', b'0', b'0'] => return Err(PathError::Nul),
            _ => {}
        }
    }
    let decoded = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| PathError::NotUtf8)?;
    if decoded.contains('\0') {
        return Err(PathError::Nul);
    }
    let mut segments: Vec<&str> = Vec::new();
    for s in decoded.split('/') {
        match s {
            "" | "." => {}
            ".." => {
                // Above the root stays at the root (RFC 3986 §5.2.4).
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut canonical = String::with_capacity(decoded.len());
    for s in &segments {
        canonical.push('/');
        canonical.push_str(s);
    }
    if canonical.is_empty() {
        canonical.push('/');
    }
    let raw = if canonical == decoded {
        raw.to_string()
    } else {
        let mut out = String::with_capacity(canonical.len() + 8);
        for s in &segments {
            out.push('/');
            out.extend(utf8_percent_encode(s, SEGMENT));
        }
        if out.is_empty() {
            out.push('/');
        }
        out
    };
    Ok(NormalPath {
        decoded: canonical,
        raw,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast path gives what the full one gives, for every short path
    /// over the characters that matter to either.
    #[test]
    fn plain_paths_take_the_fast_path_with_the_same_result() {
        let alphabet = ['/', '.', 'a', '%', '2', 'f', '0', '\0'];
        let mut paths = vec![String::new()];
        let mut of_length = vec![String::new()];
        for _ in 0..6 {
            of_length = of_length
                .iter()
                .flat_map(|p| alphabet.iter().map(move |c| format!("{p}{c}")))
                .collect();
            paths.extend(of_length.iter().cloned());
        }
        let mut plain = 0;
        for p in &paths {
            if is_plain(p) {
                plain += 1;
                let full = normalize_in_full(p).expect("a plain path is valid");
                assert_eq!(full.decoded, *p, "{p:?}");
                assert_eq!(full.raw, *p, "{p:?}");
            }
            assert_eq!(normalize(p), normalize_in_full(p), "{p:?}");
        }
        assert!(plain > 100, "{plain}");
        assert!(is_plain("/v3/auth/tokens") && is_plain("/"));
        for p in ["/v3/", "//v3", "/v3/./x", "/v3/../x", "/v%33", "v3", ""] {
            assert!(!is_plain(p), "{p}");
        }
    }

    const AUTH: &str = "/v3/OS-FEDERATION/identity_providers/egi.eu/protocols/mapped/auth";

    fn ok(raw: &str) -> NormalPath {
        normalize(raw).unwrap_or_else(|e| panic!("{raw}: {e}"))
    }

    #[test]
    fn canonical_paths_are_kept_byte_for_byte() {
        for p in [
            "/",
            "/v3",
            AUTH,
            "/v3/auth/some%20path/%C3%A9",
            "/v3/users/%41",
            "/v3/a;b=c",
        ] {
            let n = ok(p);
            assert_eq!(n.raw, p);
            assert!(!n.changed(p));
        }
        assert_eq!(
            ok("/v3/auth/some%20path/%C3%A9").decoded,
            "/v3/auth/some path/é"
        );
    }

    #[test]
    fn every_spelling_of_the_auth_path_becomes_it() {
        for p in [
            &format!("/{AUTH}"),
            &format!("//{AUTH}"),
            &format!("{AUTH}/"),
            &format!("{AUTH}//"),
            &format!("{AUTH}/."),
            &format!("{AUTH}/x/.."),
            "/v3//OS-FEDERATION/identity_providers/egi.eu/protocols/mapped/auth",
            "/v3/./OS-FEDERATION/identity_providers/egi.eu/protocols/mapped/auth",
            "/v3/x/../OS-FEDERATION/identity_providers/egi.eu/protocols/mapped/auth",
            "/v3/%2e%2E/v3/OS-FEDERATION/identity_providers/egi.eu/protocols/mapped/auth",
            "/../../v3/OS-FEDERATION/identity_providers/egi.eu/protocols/mapped/auth",
        ] {
            let n = ok(p);
            assert_eq!(n.decoded, AUTH, "{p}");
            assert_eq!(n.raw, AUTH, "{p}");
        }
        // Already canonical once decoded: routed as AUTH, forwarded as sent.
        let p = "/v3/OS-FEDERATION/identity_providers/egi.eu/protocols/mapped/%61uth";
        assert_eq!(ok(p).decoded, AUTH);
        assert_eq!(ok(p).raw, p);
    }

    #[test]
    fn root_and_trailing_slashes() {
        assert_eq!(ok("//").raw, "/");
        assert_eq!(ok("/./..").raw, "/");
        assert_eq!(ok("/v3/").raw, "/v3");
        assert_eq!(ok("/v3///").decoded, "/v3");
    }

    #[test]
    fn rewritten_paths_stay_encoded() {
        let n = ok("/v3//a%20b/%C3%A9/%3F/%25/");
        assert_eq!(n.decoded, "/v3/a b/é/?/%");
        assert_eq!(n.raw, "/v3/a%20b/%C3%A9/%3F/%25");
        assert_eq!(ok(&n.raw).decoded, n.decoded, "idempotent");
    }

    #[test]
    fn refused() {
        for (p, e) in [
            ("v3", PathError::NotAbsolute),
            ("*", PathError::NotAbsolute),
            ("", PathError::NotAbsolute),
            ("/v3/auth%2F", PathError::EncodedSlash),
            ("/v3/auth%2f", PathError::EncodedSlash),
            ("/v3%2Fauth", PathError::EncodedSlash),
            ("/v3/a%00", PathError::Nul),
            ("/v3/%FF%FE", PathError::NotUtf8),
        ] {
            assert_eq!(normalize(p), Err(e), "{p}");
        }
        // A double-encoded slash decodes to the text `%2F`, not a separator.
        assert_eq!(ok("/v3/a%252Fb").decoded, "/v3/a%2Fb");
    }
}
