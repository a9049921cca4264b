//! The generated test PKI (tests/fixtures/pki/mkpki.sh), built once per
//! test binary in a temporary directory. Tests skip, loudly, when the grid
//! tools it needs are missing.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    pub fn certs(&self) -> PathBuf {
        self.dir.join("certificates")
    }
    pub fn vomsdir(&self) -> PathBuf {
        self.dir.join("vomsdir")
    }
    pub fn cred(&self, name: &str) -> PathBuf {
        self.dir.join("creds").join(format!("{name}.pem"))
    }
    /// The certificates of a credential file, leaf first, as DER.
    pub fn chain(&self, name: &str) -> Vec<Vec<u8>> {
        let data = std::fs::read(self.cred(name)).unwrap();
        fedgate::internal::pki::cert::certs_from_pem(&data).unwrap()
    }
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The PKI, or `None` (with a message) when openssl, voms-proxy-fake or
/// grid-proxy-init is not installed.
pub fn pki() -> Option<&'static Pki> {
    static PKI: OnceLock<Option<Pki>> = OnceLock::new();
    PKI.get_or_init(|| {
        let missing: Vec<_> = ["openssl", "voms-proxy-fake", "grid-proxy-init"]
            .into_iter()
            .filter(|t| !have(t))
            .collect();
        if !missing.is_empty() {
            eprintln!("SKIP: test PKI needs {missing:?} (apt-get install openssl voms-clients globus-proxy-utils)");
            return None;
        }
        let dir = match std::env::var_os("FEDGATE_TEST_PKI") {
            // Reuse a PKI built earlier (speeds up local iteration).
            Some(d) if Path::new(&d).join(".complete").exists() => PathBuf::from(d),
            _ => {
                let dir = tempfile::Builder::new().prefix("fedgate-pki-").tempdir().unwrap().keep();
                let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pki/mkpki.sh");
                let out = Command::new("bash").arg(&script).arg(&dir).output().unwrap();
                assert!(
                    out.status.success(),
                    "mkpki.sh failed:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                dir
            }
        };
        Some(Pki { dir })
    })
    .as_ref()
}

/// Runs openssl on a file and returns stdout, trimmed.
pub fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .env("OPENSSL_CONF", "/dev/null")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Unix time of an openssl date ("Nov 23 11:56:53 2026 GMT").
pub fn epoch(openssl_date: &str) -> i64 {
    let out = Command::new("date")
        .args(["-u", "-d", openssl_date, "+%s"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Splits a credential file into one PEM file per certificate, leaf first.
pub fn split_pems(file: &Path, into: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut out = Vec::new();
    for (i, block) in text
        .split("-----BEGIN CERTIFICATE-----")
        .skip(1)
        .enumerate()
    {
        let end = block.find("-----END CERTIFICATE-----").unwrap();
        let pem = format!(
            "-----BEGIN CERTIFICATE-----{}-----END CERTIFICATE-----\n",
            &block[..end]
        );
        let p = into.join(format!("{i}.pem"));
        std::fs::write(&p, pem).unwrap();
        out.push(p);
    }
    out
}

/// A gateway of its own on an ephemeral port, with its own echo upstream:
/// the PKI's host credentials, CA directory and vomsdir,
/// `client_auth = "optional"`, `^/x509` on `auth = "x509"` (the rest on
/// `none`), and `voms_extra` in its `[voms]` section. Returns the port; the
/// servers run until the test binary exits.
pub fn grid_gateway(p: &'static Pki, voms_extra: &str) -> u16 {
    let d = p.dir.display().to_string();
    let voms_extra = voms_extra.to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        fedgate::internal::crypto_provider();
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind(("127.0.0.1", 0))
                .await
                .unwrap();
            let echo = l.local_addr().unwrap().port();
            tokio::spawn(fedgate::demo::echo::serve_uwsgi_echo(l));
            let text = format!(
                r#"[server]
listen = ["127.0.0.1:0"]
[admin]
listen = []
[tls]
certificate = "{d}/host.pem"
private_key = "{d}/host.key"
ca_dir = "{d}/certificates"
client_auth = "optional"
[upstream]
url = "uwsgi://127.0.0.1:{echo}"
[voms]
dir = "{d}/vomsdir"
{voms_extra}
[[route]]
name = "x509"
path = "^/x509"
auth = "x509"
[[route]]
path = "^/"
auth = "none"
"#
            );
            let cfg = fedgate::Config::parse(Path::new("grid.toml"), text).unwrap();
            let (rtx, rrx) = tokio::sync::oneshot::channel();
            tokio::spawn(async move {
                if let Err(e) = Box::pin(fedgate::serve_config(cfg, Some(rtx))).await {
                    panic!("serve: {e:?}");
                }
            });
            let bound = rrx.await.unwrap();
            tx.send(bound.listen[0].port()).unwrap();
            std::future::pending::<()>().await;
        });
    });
    rx.recv().unwrap()
}
