//! `fedgate import-apache`: the EGI vhosts of tests/fixtures/apache are
//! translated by the real binary, the output passes the library's
//! check-config, the untranslatable directives are on stderr with their
//! file:line, and a gateway started with the output asks for the same
//! authentication on each Location's path as Apache did: the WebSSO paths
//! send the browser to the IdP (a real oidc-provider, tests/harness/idp),
//! the oauth20 path wants a bearer token (and takes one the IdP minted),
//! the gridsite path wants a client certificate, and `/v3` passes through.
//! In front of the real Keystone when FEDGATE_E2E_KEYSTONE_UWSGI is set,
//! else the demo's echo upstream. Ports: the IdP 19001.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::idp::{Kind, issuer, mint, start_idps};
use fedgate::internal::http_client::HttpClient;

const IDP_PORT: u16 = 19001;
const DASHBOARD: &str = "https://dashboard.site.test/dashboard/auth/websso/";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/apache")
        .join(name)
}

/// Copies a fixture directory with its `@NAME@` placeholders replaced.
fn materialize(name: &str, into: &Path, subs: &[(&str, String)]) {
    for e in std::fs::read_dir(fixture(name)).unwrap() {
        let p = e.unwrap().path();
        let mut text = std::fs::read_to_string(&p).unwrap();
        for (k, v) in subs {
            text = text.replace(&format!("@{k}@"), v);
        }
        std::fs::write(into.join(p.file_name().unwrap()), text).unwrap();
    }
}

fn import(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(common::fedgate_bin())
        .arg("import-apache")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `file:line` of the first line of `file` containing `needle`.
fn at(file: &Path, needle: &str) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    let n = text
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle} not in {}", file.display()));
    format!("{}:{}", file.display(), n + 1)
}

fn assert_reported(stderr: &str, file: &Path, needle: &str, directive: &str) {
    let want = format!("{}: {directive}: ", at(file, needle));
    assert!(
        stderr.lines().any(|l| l.starts_with(&want)),
        "stderr lacks `{want}`:\n{stderr}"
    );
}

/// The upstream: the real Keystone's uwsgi socket, or the echo.
async fn upstream() -> (String, bool) {
    if let Ok(u) = std::env::var("FEDGATE_E2E_KEYSTONE_UWSGI") {
        let u = u.trim_start_matches("uwsgi://").to_string();
        return (u, true);
    }
    eprintln!("FEDGATE_E2E_KEYSTONE_UWSGI unset: the demo echo upstream stands in for Keystone");
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    tokio::spawn(fedgate::demo::echo::serve_uwsgi_echo(l));
    (a.to_string(), false)
}

/// Parses the translation, checks it as `check-config` does, and serves
/// it on an ephemeral port (the listen and admin addresses are the only
/// values changed).
async fn serve(toml_text: &str, dir: &Path) -> fedgate::Bound {
    let text =
        toml_text.replace("\"0.0.0.0:5000\"", "\"127.0.0.1:0\"") + "\n[admin]\nlisten = []\n";
    let path = dir.join("fedgate.toml");
    std::fs::write(&path, &text).unwrap();
    let cfg = fedgate::Config::parse(&path, text).expect("the translation parses");
    let report = Box::pin(fedgate::internal::check(
        &cfg,
        fedgate::internal::Probes::Run,
    ))
    .await;
    let (mut problems, notes) = (report.problems, report.notes);
    problems.extend(report.probes);
    assert!(
        problems.is_empty(),
        "check-config: {problems:?}\nnotes: {notes:?}\n{}",
        std::fs::read_to_string(&path).unwrap()
    );
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        if let Err(e) = Box::pin(fedgate::serve_config(cfg, Some(tx))).await {
            panic!("fedgate did not start: {e:?}");
        }
    });
    rx.await.expect("fedgate started")
}

fn url(b: &fedgate::Bound, path: &str) -> String {
    format!("https://localhost:{}{path}", b.listen[0].port())
}

/// A browser's navigation (an API client gets 401 instead of a redirect).
async fn browse(c: &HttpClient, url: &str) -> fedgate::internal::http_client::Answer {
    c.request(
        http::Method::GET,
        url,
        &[
            (
                http::header::ACCEPT,
                "text/html,application/xhtml+xml".to_string(),
            ),
            (
                http::HeaderName::from_static("sec-fetch-mode"),
                "navigate".to_string(),
            ),
            (
                http::HeaderName::from_static("sec-fetch-dest"),
                "document".to_string(),
            ),
        ],
        None,
        1 << 20,
    )
    .await
    .unwrap()
}

fn location(a: &fedgate::internal::http_client::Answer) -> String {
    a.headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn egi_checkin_vhost_serves_the_same_routes() {
    fedgate::internal::crypto_provider();
    let _idp = start_idps(&[("egi", IDP_PORT, "a")]);
    let iss = issuer(IDP_PORT);
    let dir = tempfile::tempdir().unwrap();
    let pki = fedgate::demo::pki::create(&dir.path().join("pki")).unwrap();
    let (up, keystone) = upstream().await;
    let port = up.rsplit(':').next().unwrap().to_string();
    let conf_dir = dir.path().join("apache");
    std::fs::create_dir(&conf_dir).unwrap();
    materialize(
        "egi-checkin",
        &conf_dir,
        &[
            ("CERT", pki.host_cert.display().to_string()),
            ("KEY", pki.host_key.display().to_string()),
            ("CADIR", pki.ca_dir.display().to_string()),
            ("ISSUER", iss.clone()),
            ("CLIENT_ID", "gateway".into()),
            ("CLIENT_SECRET", "gateway-secret".into()),
            ("UWSGI_PORT", port.clone()),
        ],
    );
    // ProxyPass names 127.0.0.1:<port>; a Keystone elsewhere is rewritten.
    if keystone && !up.starts_with("127.0.0.1:") {
        let f = conf_dir.join("keystone.conf");
        let t = std::fs::read_to_string(&f)
            .unwrap()
            .replace(&format!("127.0.0.1:{port}"), &up);
        std::fs::write(&f, t).unwrap();
    }
    let main = conf_dir.join("keystone.conf");
    let inc = conf_dir.join("tls.inc");
    let (code, out, err) = import(&[main.to_str().unwrap(), "--trusted-dashboard", DASHBOARD]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    eprintln!("--- translation:\n{out}\n--- stderr:\n{err}");

    // What could not be translated, at its place (the Include'd file too).
    assert_reported(&err, &main, "OIDCCacheType memcache", "OIDCCacheType");
    assert_reported(&err, &main, "OIDCPassClaimsAs", "OIDCPassClaimsAs");
    assert_reported(&err, &main, "OIDCCryptoPassphrase", "OIDCCryptoPassphrase");
    assert_reported(
        &err,
        &main,
        "OIDCCacheShmEntrySizeMax",
        "OIDCCacheShmEntrySizeMax",
    );
    assert_reported(
        &err,
        &main,
        "OIDCOAuthTokenIntrospectionInterval",
        "OIDCOAuthTokenIntrospectionInterval",
    );
    assert_reported(&err, &inc, "SSLProtocol", "SSLProtocol");
    assert_reported(&err, &inc, "SSLVerifyDepth", "SSLVerifyDepth");
    // Translated silently: not on stderr.
    for quiet in [
        "OIDCClientID",
        "OIDCClaimPrefix",
        "SSLCertificateFile",
        "GridSiteEnvs",
        "OIDCScope",
    ] {
        assert!(
            !err.contains(&format!(": {quiet}: ")),
            "{quiet} reported:\n{err}"
        );
    }

    // Where each value came from.
    assert!(
        out.contains(&format!(
            "# from SSLCertificateFile ({})",
            at(&inc, "SSLCertificateFile")
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "from OIDCOAuthIntrospectionEndpoint ({})",
            at(&main, "OIDCOAuthIntrospectionEndpoint")
        )),
        "{out}"
    );
    // Secrets are copied, with the advice to use env:.
    assert!(out.contains("client_secret = \"gateway-secret\""), "{out}");
    assert!(out.contains("env:FEDGATE_127_0_0_1_CLIENT_SECRET"), "{out}");

    let cfg = fedgate::Config::parse(Path::new("t.toml"), out.clone()).unwrap();
    assert_eq!(cfg.x509.max_proxy_depth, Some(4));
    assert_eq!(cfg.oidc.session.inactivity_timeout_secs, 900);
    assert_eq!(cfg.cache.max_ttl_secs, 60);
    assert_eq!(cfg.idps[0].issuer(), iss);
    assert_eq!(cfg.upstream.url.get_ref(), &format!("uwsgi://{up}"));

    let b = serve(&out, dir.path()).await;
    let client = HttpClient::new(Some(&pki.ca_file), Duration::from_secs(20)).unwrap();
    let origin: String = url::form_urlencoded::byte_serialize(DASHBOARD.as_bytes()).collect();
    // Both WebSSO URLs send the browser to the IdP.
    for p in [
        "/v3/auth/OS-FEDERATION/websso/openid",
        "/v3/auth/OS-FEDERATION/identity_providers/egi.eu/protocols/openid/websso",
    ] {
        let a = browse(&client, &url(&b, &format!("{p}?origin={origin}"))).await;
        assert!(a.status.is_redirection(), "{p}: {} {:?}", a.status, a.body);
        assert!(
            location(&a).starts_with(&format!("{iss}/")),
            "{p}: {}",
            location(&a)
        );
        assert!(
            location(&a).contains("client_id=gateway"),
            "{}",
            location(&a)
        );
    }
    // The oauth20 path: 401 without a token, a minted token passes.
    let oauth = "/v3/OS-FEDERATION/identity_providers/egi.eu/protocols/openid/auth";
    let a = client.get(&url(&b, oauth), None).await.unwrap();
    assert_eq!(a.status, 401, "{:?}", a.body);
    assert!(
        a.headers
            .get("www-authenticate")
            .is_some_and(|v| v.to_str().unwrap().starts_with("Bearer"))
    );
    let token = mint(IDP_PORT, "alice", Kind::Userinfo, None).await;
    let a = client.get(&url(&b, oauth), Some(&token)).await.unwrap();
    if keystone {
        // Keystone answers for itself (its mapping decides), not fedgate's 401.
        assert!(
            a.headers
                .get("www-authenticate")
                .is_none_or(|v| !v.to_str().unwrap().contains("invalid_token")),
            "{} {:?}",
            a.status,
            a.body
        );
    } else {
        assert_eq!(a.status, 200, "{:?}", a.body);
        let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
        assert!(
            v["environ"]["HTTP_OIDC_ISS"].as_str() == Some(iss.as_str()),
            "{v}"
        );
        assert_eq!(
            v["environ"]["REMOTE_USER"], v["environ"]["HTTP_OIDC_SUB"],
            "{v}"
        );
    }
    // The gridsite path: 401 without a client certificate; with one it passes.
    let voms = "/v3/OS-FEDERATION/identity_providers/egi.eu/protocols/mapped/auth";
    let a = client.get(&url(&b, voms), None).await.unwrap();
    assert_eq!(a.status, 401, "{:?}", a.body);
    if !keystone {
        let user = HttpClient::with_client_cert(
            Some(&pki.ca_file),
            Some((
                common::client::certs(&pki.user_cert),
                common::client::key(&pki.user_key),
            )),
            Duration::from_secs(20),
        )
        .unwrap();
        let a = user.get(&url(&b, voms), None).await.unwrap();
        assert_eq!(a.status, 200, "{:?}", a.body);
        let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
        assert!(
            v["environ"]["GRST_CONN_AURI_0"]
                .as_str()
                .is_some_and(|s| s.starts_with("dn:")),
            "{v}"
        );
    }
    // Keystone's own API passes without authentication.
    let a = client.get(&url(&b, "/v3"), None).await.unwrap();
    assert_eq!(a.status, 200, "{:?}", a.body);
    if keystone {
        let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
        assert_eq!(v["version"]["id"], "v3.14", "{v}");
    }
    b.shutdown.trigger();
}

/// One IdP in a metadata directory, as mod_auth_openidc keeps it.
fn provider(dir: &Path, issuer: &str, authz: &str) {
    let stem: String = url::form_urlencoded::byte_serialize(
        issuer
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .as_bytes(),
    )
    .collect();
    std::fs::write(
        dir.join(format!("{stem}.provider")),
        serde_json::json!({
            "issuer": issuer,
            "authorization_endpoint": authz,
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{issuer}/jwks"),
        })
        .to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.join(format!("{stem}.client")),
        r#"{"client_id":"keystone","client_secret":"s3cret"}"#,
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_dir_vhost_under_mod_wsgi() {
    fedgate::internal::crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let pki = fedgate::demo::pki::create(&dir.path().join("pki")).unwrap();
    let meta = dir.path().join("metadata");
    std::fs::create_dir(&meta).unwrap();
    let (a, b) = (
        "https://aai.egi.test/auth/realms/egi",
        "https://aai.other.test",
    );
    provider(&meta, a, "https://aai.egi.test/auth/realms/egi/authorize");
    provider(&meta, b, "https://aai.other.test/authorize");
    let conf_dir = dir.path().join("apache");
    std::fs::create_dir(&conf_dir).unwrap();
    materialize(
        "metadata-dir",
        &conf_dir,
        &[
            ("CERT", pki.host_cert.display().to_string()),
            ("KEY", pki.host_key.display().to_string()),
            ("CADIR", pki.ca_dir.display().to_string()),
            (
                "METADATA",
                "/var/cache/apache2/mod_auth_openidc/metadata".into(),
            ),
            ("ISSUER_A", a.into()),
            ("ISSUER_B", b.into()),
        ],
    );
    let main = conf_dir.join("keystone.conf");
    let (code, out, err) = import(&[
        main.to_str().unwrap(),
        "--metadata-dir",
        meta.to_str().unwrap(),
        "--trusted-dashboard",
        DASHBOARD,
    ]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    eprintln!("--- translation:\n{out}\n--- stderr:\n{err}");
    // mod_wsgi: the uwsgi ini to run Keystone with, on stderr.
    assert_reported(&err, &main, "WSGIScriptAlias", "WSGIScriptAlias");
    for l in [
        "wsgi-file = /usr/bin/keystone-wsgi-public",
        "uwsgi-socket = 127.0.0.1:5001",
        "buffer-size = 65535",
        "processes = 5",
        "uid = keystone",
    ] {
        assert!(err.contains(l), "{l}:\n{err}");
    }
    assert_reported(&err, &main, "WSGIDaemonProcess", "WSGIDaemonProcess");
    assert_reported(&err, &main, "WSGIApplicationGroup", "WSGIApplicationGroup");
    assert_reported(&err, &main, "<IfModule !mod_auth_openidc.c>", "IfModule");
    assert!(
        out.contains(&format!("metadata_dir = \"{}\"", meta.display())),
        "{out}"
    );
    assert!(out.contains("max_pending_logins = 5"), "{out}");

    // The pinned IdP per WebSSO URL, the metadata directory's names.
    let up = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up_addr = up.local_addr().unwrap();
    tokio::spawn(fedgate::demo::echo::serve_uwsgi_echo(up));
    let text = out.replace("uwsgi://127.0.0.1:5001", &format!("uwsgi://{up_addr}"));
    let bnd = serve(&text, dir.path()).await;
    let client = HttpClient::new(Some(&pki.ca_file), Duration::from_secs(20)).unwrap();
    let origin: String = url::form_urlencoded::byte_serialize(DASHBOARD.as_bytes()).collect();
    for (p, authz) in [
        (
            "/v3/auth/OS-FEDERATION/identity_providers/egi.eu/protocols/openid/websso",
            "https://aai.egi.test/auth/realms/egi/authorize?",
        ),
        (
            "/v3/auth/OS-FEDERATION/identity_providers/other.eu/protocols/openid/websso",
            "https://aai.other.test/authorize?",
        ),
    ] {
        let r = browse(&client, &url(&bnd, &format!("{p}?origin={origin}"))).await;
        assert!(r.status.is_redirection(), "{p}: {} {:?}", r.status, r.body);
        assert!(location(&r).starts_with(authz), "{p}: {}", location(&r));
    }
    // The generic URL offers both: the chooser page.
    let r = browse(
        &client,
        &url(
            &bnd,
            &format!("/v3/auth/OS-FEDERATION/websso/openid?origin={origin}"),
        ),
    )
    .await;
    let body = String::from_utf8_lossy(&r.body);
    assert!(
        body.contains("aai.egi.test") && body.contains("aai.other.test"),
        "{} {body}",
        r.status
    );
    // Under mod_wsgi, `WSGIScriptAlias /` served everything without authentication.
    let r = client.get(&url(&bnd, "/v3/projects"), None).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    bnd.shutdown.trigger();
}

#[test]
fn exit_codes_and_syntax_errors() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("a.conf");
    // No vhost serving Keystone: 1.
    std::fs::write(
        &f,
        "Listen 80\n<VirtualHost *:80>\n  DocumentRoot /var/www\n</VirtualHost>\n",
    )
    .unwrap();
    let (code, out, err) = import(&[f.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.is_empty());
    assert!(
        err.contains("no virtual host serves Keystone")
            && err.contains(&format!("{}:2", f.display())),
        "{err}"
    );
    // A syntax error in an included file: 2, with its file:line.
    let g = dir.path().join("inc.conf");
    std::fs::write(&f, "Include inc.conf\n").unwrap();
    std::fs::write(&g, "<VirtualHost *:5000>\n<Location /v3>\n</VirtualHost>\n").unwrap();
    let (code, _, err) = import(&[f.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!(
            "{}:3: </VirtualHost> closes <Location>",
            g.display()
        )),
        "{err}"
    );
    // An include cycle: 2.
    std::fs::write(&g, "Include a.conf\n").unwrap();
    let (code, _, err) = import(&[f.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("include cycle"), "{err}");
    // A missing file: 2.
    let (code, _, err) = import(&[dir.path().join("nope.conf").to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nope.conf: cannot read"), "{err}");
}

/// Apache merges sections in order and the last that sets AuthType wins;
/// fedgate's first matching route must pick the same one for every path.
#[test]
fn route_order_gives_apaches_winner() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("a.conf");
    std::fs::write(
        &f,
        "OIDCOAuthIntrospectionEndpoint https://idp.example.org/token/introspection\n\
         OIDCOAuthClientID c\nOIDCOAuthClientSecret s\n\
         <VirtualHost *:5000>\n\
         <Location />\n AuthType oauth20\n Require claim iss:https://idp.example.org\n</Location>\n\
         <Location /v3/auth/tokens>\n AuthType None\n Require all granted\n</Location>\n\
         <LocationMatch \"^/v3/OS-FEDERATION/.*/mapped/auth$\">\n GridSiteEnvs on\n</LocationMatch>\n\
         <Location ~ \"/v3/(?=x)\">\n AuthType oauth20\n</Location>\n\
         ProxyPass / uwsgi://127.0.0.1:5001/\n\
         </VirtualHost>\n",
    )
    .unwrap();
    let (code, out, err) = import(&[f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let cfg = fedgate::Config::parse(Path::new("t.toml"), out.clone()).unwrap();
    assert!(cfg.validate().is_empty(), "{:?}\n{out}", cfg.validate());
    let table = fedgate::internal::RouteTable::build(&cfg.routes, &cfg.source).unwrap();
    let auth = |p: &str| format!("{:?}", table.find(p).unwrap().auth()).to_lowercase();
    assert_eq!(auth("/v3/auth/tokens"), "none");
    assert_eq!(auth("/v3/auth/tokens/x"), "none");
    assert_eq!(auth("/v3/auth/tokensx"), "bearer");
    assert_eq!(
        auth("/v3/OS-FEDERATION/identity_providers/egi.eu/protocols/mapped/auth"),
        "x509"
    );
    assert_eq!(auth("/v3/projects"), "bearer");
    assert!(
        out.contains("require_claims = [{ claim = \"iss\", value = \"https://idp.example.org\" }]"),
        "{out}"
    );
    // The look-ahead is not Rust's dialect: reported at its section.
    assert!(
        err.contains(&format!("{}:16: <Location ~ /v3/(?=x)>", f.display())),
        "{err}"
    );
}

/// mod_proxy's unix-socket backend (`unix:/path|uwsgi://host/`) becomes
/// `uwsgi:///path`; an HTTP backend on a socket is reported, not guessed.
#[test]
fn a_uwsgi_unix_socket_backend_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("a.conf");
    std::fs::write(
        &f,
        "<VirtualHost *:5000>\n\
         ProxyPass / \"unix:/run/uwsgi/keystone.sock|uwsgi://localhost/\"\n\
         </VirtualHost>\n",
    )
    .unwrap();
    let (code, out, err) = import(&[f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("url = \"uwsgi:///run/uwsgi/keystone.sock\""),
        "{out}"
    );
    let cfg = fedgate::Config::parse(Path::new("t.toml"), out.clone()).unwrap();
    assert!(cfg.validate().is_empty(), "{:?}\n{out}", cfg.validate());

    std::fs::write(
        &f,
        "<VirtualHost *:5000>\n\
         ProxyPass / \"unix:/run/keystone.sock|http://localhost/\"\n\
         </VirtualHost>\n",
    )
    .unwrap();
    let (_, out, err) = import(&[f.to_str().unwrap()]);
    assert!(!out.contains("/run/keystone.sock"), "{out}");
    assert!(
        err.contains(&format!("{}:2: ProxyPass: unix socket", f.display())),
        "{err}"
    );
}

/// mod_auth_openidc's Redis cache becomes `[state] backend = "redis"`
/// (not the deprecated redis_url keys), and the translation validates:
/// the sealing keys come from the passphrase.
#[test]
fn a_redis_cache_becomes_the_shared_state() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("r.conf");
    std::fs::write(
        &f,
        "OIDCProviderMetadataURL https://idp.example.org/.well-known/openid-configuration\n\
         OIDCClientID c\nOIDCClientSecret s\n\
         OIDCRedirectURI https://k.example.org:5000/v3/auth/OS-FEDERATION/websso/openid/redirect\n\
         OIDCCryptoPassphrase \"a long random passphrase\"\n\
         OIDCCacheType redis\nOIDCRedisCacheServer 10.0.0.9:6379\n\
         <VirtualHost *:5000>\n\
         <Location /v3/auth/OS-FEDERATION/websso/openid>\n AuthType openid-connect\n Require valid-user\n</Location>\n\
         ProxyPass / uwsgi://127.0.0.1:5001/\n\
         </VirtualHost>\n",
    )
    .unwrap();
    let (code, out, err) = import(&[f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("redis_url"), "{out}");
    assert!(
        out.contains("[state]\nbackend = \"redis\"\nurl = \"redis://10.0.0.9:6379\""),
        "{out}"
    );
    let cfg = fedgate::Config::parse(Path::new("t.toml"), out.clone()).unwrap();
    let state = cfg.state().unwrap_or_else(|e| panic!("{e}\n{out}"));
    assert_eq!(state.settings.url.as_deref(), Some("redis://10.0.0.9:6379"));
    assert!(state.key_ring().is_some(), "{out}");
}
