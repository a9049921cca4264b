//! The CGI/WSGI environ of a request, as Apache's mod_proxy_uwsgi builds it.

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
    let mut put = |k: &str, v: &[u8]| env.push((k.as_bytes().to_vec(), v.to_vec()));

    let path = parts.uri.path();
    let query = parts.uri.query().unwrap_or("");
    let request_uri = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or(path);
    let host = request_host(parts);
    let (server_name, server_port) = match &host {
        Some(h) => {
            let (n, p) = split_host(h);
            (n.to_string(), p.map(str::to_string))
        }
        None => (conn.local.ip().to_string(), None),
    };
    let server_port = server_port.unwrap_or_else(|| conn.local.port().to_string());

    put("REQUEST_METHOD", parts.method.as_str().as_bytes());
    put("REQUEST_URI", request_uri.as_bytes());
    put(
        "PATH_INFO",
        &percent_encoding::percent_decode_str(path).collect::<Vec<u8>>(),
    );
    put("QUERY_STRING", query.as_bytes());
    put("SCRIPT_NAME", b"");
    put("SERVER_PROTOCOL", protocol(parts.version).as_bytes());
    put("SERVER_NAME", server_name.as_bytes());
    put("SERVER_PORT", server_port.as_bytes());
    put("SERVER_ADDR", conn.local.ip().to_string().as_bytes());
    put("REMOTE_ADDR", conn.peer.ip().to_string().as_bytes());
    put("REMOTE_PORT", conn.peer.port().to_string().as_bytes());
    if let Some(tls) = &conn.tls {
        put("HTTPS", b"on");
        put("REQUEST_SCHEME", b"https");
        put("SSL_PROTOCOL", tls.version.as_bytes());
        // mod_ssl's +StdEnvVars: the connection's and the host certificate's.
        for (k, v) in tls.modssl.iter().chain(tls.server_modssl.iter()) {
            put(k, v.as_bytes());
        }
    } else {
        put("REQUEST_SCHEME", b"http");
    }
    if let Some(ct) = parts.headers.get(CONTENT_TYPE) {
        put("CONTENT_TYPE", ct.as_bytes());
    }
    if let Some(n) = content_length {
        put("CONTENT_LENGTH", n.to_string().as_bytes());
    }
    if host.is_some() && !parts.headers.contains_key(HOST) {
        // HTTP/2 carries the host in :authority only; WSGI apps expect HTTP_HOST.
        put("HTTP_HOST", host.as_deref().unwrap_or_default().as_bytes());
    }

    for name in parts.headers.keys() {
        if name == CONTENT_TYPE || name == CONTENT_LENGTH || name.as_str().contains('_') {
            continue;
        }
        let sep: &[u8] = if name == COOKIE { b"; " } else { b", " };
        let mut value = Vec::new();
        for (i, v) in parts.headers.get_all(name).iter().enumerate() {
            if i > 0 {
                value.extend_from_slice(sep);
            }
            value.extend_from_slice(v.as_bytes());
        }
        let key = format!(
            "HTTP_{}",
            name.as_str().to_ascii_uppercase().replace('-', "_")
        );
        put(&key, &value);
    }

    if let Some(id) = identity {
        for (k, v) in id.variables() {
            // An identity name replaces whatever the request produced.
            env.retain(|(ek, _)| ek.as_slice() != k.as_bytes());
            env.push((k.as_bytes().to_vec(), v.to_vec()));
        }
    }
    env
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

    #[test]
    fn host_split() {
        assert_eq!(split_host("[::1]:5000"), ("::1", Some("5000")));
        assert_eq!(split_host("k"), ("k", None));
        assert_eq!(split_host("k:443"), ("k", Some("443")));
        assert_eq!(split_host("::1"), ("::1", None));
    }
}
