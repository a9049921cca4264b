//! `fedgate demo`: the whole gateway on a laptop, with no root, no
//! Keystone and no grid credentials.

pub mod echo;
pub mod pki;

use std::path::Path;
use std::process::ExitCode;

use crate::config::Config;
use crate::logging::LoggingConfig;

/// The demo's configuration, written next to its PKI so it can be reused
/// with `fedgate run --config`.
pub fn config_text(listen: &str, admin: &str, pki: &pki::DemoPki, upstream_port: u16) -> String {
    format!(
        r#"# fedgate demo configuration (generated)
[server]
listen = ["{listen}"]

[admin]
listen = ["{admin}"]

[tls]
certificate = "{cert}"
private_key = "{key}"
ca_dir = "{ca_dir}"
client_auth = "optional"

[upstream]
# an in-process stand-in for Keystone that echoes the WSGI environ it receives
url = "uwsgi://127.0.0.1:{upstream_port}"

# Keystone's federation login for X.509: the client certificate (grid
# proxies too) is validated and passed on as gridsite would (GRST_*, SSL_CLIENT_*)
[[route]]
name = "x509"
path = "^/v3/OS-FEDERATION/identity_providers/[^/]+/protocols/x509/auth$"
auth = "x509"

[[route]]
name = "keystone"
path = "^/"
auth = "none"
"#,
        cert = pki.host_cert.display(),
        key = pki.host_key.display(),
        ca_dir = pki.ca_dir.display(),
    )
}

pub async fn run(listen: &str, admin: &str) -> ExitCode {
    let _log = crate::logging::init(&LoggingConfig::default());
    let dir = match tempfile::Builder::new().prefix("fedgate-demo-").tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: cannot create a temporary directory: {e}");
            return ExitCode::from(1);
        }
    };
    let pki = match pki::create(dir.path()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: cannot create the demo PKI: {e}");
            return ExitCode::from(1);
        }
    };
    let upstream = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot start the demo upstream: {e}");
            return ExitCode::from(1);
        }
    };
    let port = upstream.local_addr().map(|a| a.port()).unwrap_or(0);
    tokio::spawn(echo::serve_uwsgi_echo(upstream));

    let text = config_text(listen, admin, &pki, port);
    let cfg_path = dir.path().join("fedgate.toml");
    if let Err(e) = std::fs::write(&cfg_path, &text) {
        eprintln!("error: cannot write {}: {e}", cfg_path.display());
        return ExitCode::from(1);
    }
    let cfg = match Config::parse(&cfg_path, text) {
        Ok(c) => c,
        Err(p) => {
            p.report();
            return ExitCode::from(1);
        }
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let serving = tokio::spawn(crate::app::serve_config(cfg, Some(tx)));
    match rx.await {
        Ok(bound) => print_help(dir.path(), &pki, &bound),
        Err(_) => {
            return match serving.await {
                Ok(Err(crate::app::ServeError::Config(p))) => {
                    p.report();
                    ExitCode::from(1)
                }
                Ok(Err(crate::app::ServeError::Bind(e))) => {
                    eprintln!("error: {e} (choose another port with --listen / --admin-listen)");
                    ExitCode::from(1)
                }
                _ => ExitCode::from(1),
            };
        }
    }
    match serving.await {
        Ok(Ok(())) => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    }
}

/// The demo's X.509 login URL path (Keystone's federation auth call).
pub const X509_PATH: &str = "/v3/OS-FEDERATION/identity_providers/demo/protocols/x509/auth";

fn print_help(dir: &Path, pki: &pki::DemoPki, bound: &crate::app::Bound) {
    let l = bound
        .listen
        .first()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let port = bound.listen.first().map(|a| a.port()).unwrap_or(0);
    let admin = bound
        .admin
        .first()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let ca = pki.ca_file.display();
    println!(
        r#"
fedgate demo is serving on https://localhost:{port} ({l})
  files (removed on exit): {dir}
  CA certificate:          {ca}
  configuration:           {cfg}

Try:
  # what Keystone would receive (the demo upstream echoes the WSGI environ)
  curl --cacert {ca} https://localhost:{port}/v3/auth/tokens
  # a client trying to smuggle an identity: the headers never reach the upstream
  curl --cacert {ca} -H 'OIDC-sub: mallory' -H 'GRST_VOMS_FQANS: /evil' https://localhost:{port}/v3
  # an X.509 login route: the demo user's certificate becomes GRST_* and SSL_CLIENT_* values
  curl --cacert {ca} --cert {ucert} --key {ukey} https://localhost:{port}{x509}
  # the same route without a certificate: 401 with the reason
  curl --cacert {ca} https://localhost:{port}{x509}
  # health and metrics
  curl http://{admin}/healthz ; curl http://{admin}/metrics

Stop with Ctrl-C.
"#,
        dir = dir.display(),
        cfg = dir.join("fedgate.toml").display(),
        x509 = X509_PATH,
        ucert = pki.user_cert.display(),
        ukey = pki.user_key.display(),
    );
}
