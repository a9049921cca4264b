//! The CGI/WSGI environ of a request, as Apache's mod_proxy_uwsgi builds it.

use std::collections::HashMap;

use ::http::header::{CONTENT_LENGTH, CONTENT_TYPE, COOKIE, HOST};
use ::http::{Version, request::Parts};

use crate::conn::ConnInfo;
use crate::http::host::{request_host, split_host};
use crate::identity::Identity;

/// Ordered environ variables; keys and values are byte strings.
pub type Environ = Vec<(Vec<u8>, Vec<u8>)>;

fn protocol(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// Where the environ's variables go: a list ([`build`]), or straight into a
/// uwsgi packet ([`super::uwsgi::frame::Packet`]) so that a forwarded request
/// costs no allocation per variable. Keys and values are written by the
/// closures into the sink's own buffer.
pub(crate) trait Sink {
    fn push(&mut self, key: impl FnOnce(&mut Vec<u8>), value: impl FnOnce(&mut Vec<u8>));
}

impl Sink for Environ {
    fn push(&mut self, key: impl FnOnce(&mut Vec<u8>), value: impl FnOnce(&mut Vec<u8>)) {
        let (mut k, mut v) = (Vec::new(), Vec::new());
        key(&mut k);
        value(&mut v);
        self.push((k, v));
    }
}

/// Builds the environ for one request.
///
/// Client headers become `HTTP_*` (a name containing `_` is never passed,
/// as Apache does, so `OIDC_CLAIM_sub: x` cannot become an identity name);
/// the identity's variables come last and are the only non-CGI names.
pub fn build(
    parts: &Parts,
    conn: &ConnInfo,
    identity: Option<&Identity>,
    content_length: Option<u64>,
) -> Environ {
    let mut env: Environ = Vec::with_capacity(32 + parts.headers.len());
    write(parts, conn, identity, content_length, &mut env);
    env
}

/// The `HTTP_*` name of a header: upper case, `-` as `_`.
fn cgi_byte(b: u8) -> u8 {
    if b == b'-' {
        b'_'
    } else {
        b.to_ascii_uppercase()
    }
}

/// A sink, and the names the identity sets, which the request may not set.
struct Out<'a, S> {
    sink: &'a mut S,
    /// Identity variable name → the index of its last occurrence. Looked up
    /// for every request variable and header: an X.509 identity has some
    /// sixty names, and scanning them each time cost more than the rest of
    /// the environ (docs/performance.md).
    taken: &'a HashMap<&'a str, usize>,
}

impl<S: Sink> Out<'_, S> {
    fn taken(&self, k: &str) -> bool {
        self.taken.contains_key(k)
    }

    /// A request variable, unless the identity sets that name.
    fn put_with(&mut self, k: &str, value: impl FnOnce(&mut Vec<u8>)) {
        if !self.taken(k) {
            self.sink.push(|b| b.extend_from_slice(k.as_bytes()), value);
        }
    }

    fn put(&mut self, k: &str, v: &[u8]) {
        self.put_with(k, |b| b.extend_from_slice(v));
    }

    /// Addresses, ports and lengths are formatted in place, not through a
    /// `String`.
    fn put_fmt(&mut self, k: &str, v: std::fmt::Arguments<'_>) {
        self.put_with(k, |b| {
            let _ = std::io::Write::write_fmt(b, v);
        });
    }
}

/// Writes the environ of [`build`] into `sink`, in the same order. An
/// identity variable replaces the request's variable of the same name: the
/// request's is left out where it would have been, so every name appears
/// once and the identity's still come last.
pub(crate) fn write<S: Sink>(
    parts: &Parts,
    conn: &ConnInfo,
    identity: Option<&Identity>,
    content_length: Option<u64>,
    sink: &mut S,
) {
    let taken: HashMap<&str, usize> = identity
        .map(|id| {
            id.variables()
                .enumerate()
                .map(|(i, (k, _))| (k, i))
                .collect()
        })
        .unwrap_or_default();
    let mut out = Out {
        sink,
        taken: &taken,
    };
    // `HTTP_` and a header's name in CGI form, reused for each header.
    let mut cgi_name = String::with_capacity(64);
    let path = parts.uri.path();
    let query = parts.uri.query().unwrap_or("");
    let request_uri = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or(path);
    let host = request_host(parts);
    let (server_name, server_port) = match &host {
        Some(h) => split_host(h),
        None => ("", None),
    };

    out.put("REQUEST_METHOD", parts.method.as_str().as_bytes());
    out.put("REQUEST_URI", request_uri.as_bytes());
    out.put_with("PATH_INFO", |b| {
        b.extend(percent_encoding::percent_decode_str(path))
    });
    out.put("QUERY_STRING", query.as_bytes());
    out.put("SCRIPT_NAME", b"");
    out.put("SERVER_PROTOCOL", protocol(parts.version).as_bytes());
    match host {
        Some(_) => out.put("SERVER_NAME", server_name.as_bytes()),
        None => out.put_fmt("SERVER_NAME", format_args!("{}", conn.local.ip())),
    }
    match server_port {
        Some(p) => out.put("SERVER_PORT", p.as_bytes()),
        None => out.put_fmt("SERVER_PORT", format_args!("{}", conn.local.port())),
    }
    out.put_fmt("SERVER_ADDR", format_args!("{}", conn.local.ip()));
    out.put_fmt("REMOTE_ADDR", format_args!("{}", conn.peer.ip()));
    out.put_fmt("REMOTE_PORT", format_args!("{}", conn.peer.port()));
    if let Some(tls) = &conn.tls {
        out.put("HTTPS", b"on");
        out.put("REQUEST_SCHEME", b"https");
        out.put("SSL_PROTOCOL", tls.version.as_bytes());
        // mod_ssl's +StdEnvVars: the connection's and the host certificate's.
        crate::tls::connection_modssl(tls, |k, v| out.put(k, v.as_bytes()));
        for (k, v) in tls.server_modssl.iter() {
            out.put(k, v.as_bytes());
        }
    } else {
        out.put("REQUEST_SCHEME", b"http");
    }
    if let Some(ct) = parts.headers.get(CONTENT_TYPE) {
        out.put("CONTENT_TYPE", ct.as_bytes());
    }
    if let Some(n) = content_length {
        out.put_fmt("CONTENT_LENGTH", format_args!("{n}"));
    }
    if let Some(h) = &host
        && !parts.headers.contains_key(HOST)
    {
        // HTTP/2 carries the host in :authority only; WSGI apps expect HTTP_HOST.
        out.put("HTTP_HOST", h.as_bytes());
    }

    for header in parts.headers.keys() {
        if header == CONTENT_TYPE || header == CONTENT_LENGTH || header.as_str().contains('_') {
            continue;
        }
        let sep: &[u8] = if header == COOKIE { b"; " } else { b", " };
        let name = header.as_str().as_bytes();
        // The identity's HTTP_* names (HTTP_OIDC_*) win over a header's.
        if !taken.is_empty() {
            cgi_name.clear();
            cgi_name.push_str("HTTP_");
            cgi_name.extend(name.iter().map(|&c| char::from(cgi_byte(c))));
            if taken.contains_key(cgi_name.as_str()) {
                continue;
            }
        }
        out.sink.push(
            |b| {
                b.extend_from_slice(b"HTTP_");
                b.extend(name.iter().map(|&c| cgi_byte(c)));
            },
            |b| {
                for (i, v) in parts.headers.get_all(header).iter().enumerate() {
                    if i > 0 {
                        b.extend_from_slice(sep);
                    }
                    b.extend_from_slice(v.as_bytes());
                }
            },
        );
    }

    if let Some(id) = identity {
        // A name the identity sets twice (an attribute REMOTE_USER and the
        // remote user) is passed once, with its last value.
        for (i, (k, v)) in id.variables().enumerate() {
            if taken.get(k) == Some(&i) {
                out.sink.push(
                    |b| b.extend_from_slice(k.as_bytes()),
                    |b| b.extend_from_slice(v),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::AuthMethod;

    fn conn() -> ConnInfo {
        ConnInfo {
            peer: "192.0.2.7:40000".parse().unwrap(),
            local: "127.0.0.1:5000".parse().unwrap(),
            tls: None,
        }
    }

    fn get(env: &Environ, k: &str) -> Option<String> {
        env.iter()
            .find(|(ek, _)| ek == k.as_bytes())
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    #[test]
    fn cgi_variables() {
        let req = ::http::Request::post(
            "/v3/auth/OS-FEDERATION/websso/openid%20x?origin=https%3A%2F%2Fh%2F",
        )
        .header("Host", "keystone.example:5000")
        .header("Content-Type", "application/json")
        .header("X-Auth-Token", "t")
        .header("Accept", "a")
        .header("Accept", "b")
        .header("Cookie", "a=1")
        .header("Cookie", "b=2")
        .header("OIDC_CLAIM_sub", "mallory")
        .body(())
        .unwrap();
        let (parts, _) = req.into_parts();
        let env = build(&parts, &conn(), None, Some(17));
        assert_eq!(get(&env, "REQUEST_METHOD").unwrap(), "POST");
        assert_eq!(
            get(&env, "PATH_INFO").unwrap(),
            "/v3/auth/OS-FEDERATION/websso/openid x"
        );
        assert_eq!(
            get(&env, "QUERY_STRING").unwrap(),
            "origin=https%3A%2F%2Fh%2F"
        );
        assert_eq!(
            get(&env, "REQUEST_URI").unwrap(),
            "/v3/auth/OS-FEDERATION/websso/openid%20x?origin=https%3A%2F%2Fh%2F"
        );
        assert_eq!(get(&env, "SERVER_NAME").unwrap(), "keystone.example");
        assert_eq!(get(&env, "SERVER_PORT").unwrap(), "5000");
        assert_eq!(get(&env, "REMOTE_ADDR").unwrap(), "192.0.2.7");
        assert_eq!(get(&env, "CONTENT_LENGTH").unwrap(), "17");
        assert_eq!(get(&env, "CONTENT_TYPE").unwrap(), "application/json");
        assert_eq!(get(&env, "HTTP_X_AUTH_TOKEN").unwrap(), "t");
        assert_eq!(get(&env, "HTTP_ACCEPT").unwrap(), "a, b");
        assert_eq!(get(&env, "HTTP_COOKIE").unwrap(), "a=1; b=2");
        assert!(get(&env, "HTTP_CONTENT_TYPE").is_none());
        assert!(
            get(&env, "HTTP_OIDC_CLAIM_SUB").is_none(),
            "underscore header names are never passed"
        );
        assert!(get(&env, "HTTPS").is_none());
    }

    #[test]
    fn identity_comes_last_and_wins() {
        let (parts, _) = ::http::Request::get("/v3")
            .header("Host", "k")
            .body(())
            .unwrap()
            .into_parts();
        let mut id = Identity::new(AuthMethod::X509, "dn");
        id.set("GRST_CONN_AURI_0", "dn:/CN=x");
        id.set("SERVER_NAME", "forced");
        id.remote_user = Some("u".into());
        let env = build(&parts, &conn(), Some(&id), None);
        assert_eq!(get(&env, "GRST_CONN_AURI_0").unwrap(), "dn:/CN=x");
        assert_eq!(get(&env, "SERVER_NAME").unwrap(), "forced");
        assert_eq!(env.iter().filter(|(k, _)| k == b"SERVER_NAME").count(), 1);
        assert_eq!(get(&env, "REMOTE_USER").unwrap(), "u");
        assert_eq!(
            get(&env, "SERVER_PORT").unwrap(),
            "5000",
            "no port in Host: the listener's"
        );
        assert!(get(&env, "CONTENT_LENGTH").is_none());
    }

    /// The environ written straight into a uwsgi packet is, byte for byte,
    /// the list [`build`] makes, encoded: same names, values and order, an
    /// identity name (also an `HTTP_*` one) passed once, with its value,
    /// after the request's variables.
    #[test]
    fn packet_is_the_environ_encoded() {
        let (parts, _) = ::http::Request::post("/v3/auth/tokens?nocatalog")
            .header("Host", "keystone.example:5000")
            .header("Content-Type", "application/json")
            .header("X-Auth-Token", "t")
            .header("Accept", "a")
            .header("Accept", "b")
            .header("OIDC-Claim-Sub", "mallory")
            .body(())
            .unwrap()
            .into_parts();
        let mut id = Identity::new(AuthMethod::Bearer, "alice");
        id.set("HTTP_OIDC_CLAIM_SUB", "alice");
        id.set("SERVER_NAME", "forced");
        id.set("REMOTE_USER", "an attribute");
        id.remote_user = Some("alice".into());
        let mut tls = conn();
        tls.local = "[::1]:443".parse().unwrap();
        for (c, identity, cl) in [
            (conn(), Some(&id), Some(52)),
            (conn(), None, None),
            (tls, Some(&id), Some(0)),
        ] {
            let env = build(&parts, &c, identity, cl);
            let mut packet = crate::upstream::uwsgi::frame::Packet::with_capacity(16);
            write(&parts, &c, identity, cl, &mut packet);
            assert_eq!(
                packet.finish().unwrap(),
                crate::upstream::uwsgi::frame::encode(&env).unwrap()
            );
            if identity.is_some() {
                let names: Vec<&[u8]> = env.iter().map(|(k, _)| k.as_slice()).collect();
                for k in ["HTTP_OIDC_CLAIM_SUB", "SERVER_NAME", "REMOTE_USER"] {
                    assert_eq!(
                        names.iter().filter(|n| **n == k.as_bytes()).count(),
                        1,
                        "{k}"
                    );
                }
                assert_eq!(get(&env, "HTTP_OIDC_CLAIM_SUB").unwrap(), "alice");
                assert_eq!(get(&env, "SERVER_NAME").unwrap(), "forced");
                assert_eq!(get(&env, "REMOTE_USER").unwrap(), "alice");
                let last_request_var = names.iter().rposition(|n| *n == b"HTTP_X_AUTH_TOKEN");
                let first_identity_var = names.iter().position(|n| *n == b"SERVER_NAME");
                assert!(last_request_var < first_identity_var, "{names:?}");
            }
        }
    }

    #[test]
    fn host_split() {
        assert_eq!(split_host("[::1]:5000"), ("::1", Some("5000")));
        assert_eq!(split_host("k"), ("k", None));
        assert_eq!(split_host("k:443"), ("k", Some("443")));
        assert_eq!(split_host("::1"), ("::1", None));
    }
}
