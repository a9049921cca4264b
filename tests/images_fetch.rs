//! Fetching for the image plugin against real components: list fetch with
//! AppDB Basic auth over HTTPS, downloads with resume, caps, budget and
//! verification, format detection and conversion with the real `qemu-img`,
//! and the OCI source against a real registry (Debian's `docker-registry`,
//! CNCF distribution 2.8) holding artifacts pushed by `oras` (PyPI) with
//! EGI's annotations.
//!
//! Ports: 18791 (HTTPS list server), 18792 (HTTP image and token server),
//! 18795 (registry, htpasswd Basic auth), 18796 (the same store behind the
//! Bearer challenge flow: distribution's "silly" auth, tokens from 18792).
//!
//! `scripts/test.sh` installs `qemu-utils` and `docker-registry` and sets
//! `FEDGATE_REQUIRE_IMAGE_TOOLS=1`: there a missing tool fails the tests;
//! elsewhere they print SKIPPED.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_lc_rs::digest;
use base64::Engine;
use bytes::Bytes;
use fedgate::internal::images::candidate::{Candidate, Location, SourceKind};
use fedgate::internal::images::download::{StageError, Stager, file_key};
use fedgate::internal::images::fetch;
use fedgate::internal::images::fetch_config::FetchConfig;
use fedgate::internal::images::format::DiskFormat;
use fedgate::internal::images::registry::Registry;
use fedgate::internal::images::transport::Transport;
use futures_util::stream;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use rustls_pki_types::pem::PemObject;

const HTTPS_PORT: u16 = 18791;
const HTTP_PORT: u16 = 18792;
const REG_BASIC: u16 = 18795;
const REG_BEARER: u16 = 18796;
const TOKEN: &str = "T0ken-appdb";
const REG_USER: &str = "alice";
const REG_PASS: &str = "s3cret";

// ------------------------------------------------------------ tools

fn have(cmd: &str, arg: &str) -> bool {
    Command::new(cmd)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether `qemu-img` (and, with `registry`, `docker-registry` and the
/// oras venv) are there; fails under `FEDGATE_REQUIRE_IMAGE_TOOLS`.
fn tools(registry: bool) -> bool {
    let mut missing = Vec::new();
    if !have("qemu-img", "--version") {
        missing.push("qemu-img (apt-get install qemu-utils)");
    }
    if registry && !have("docker-registry", "--version") {
        missing.push("docker-registry (apt-get install docker-registry)");
    }
    if registry && !have("htpasswd", "-h") && Command::new("htpasswd").output().is_err() {
        missing.push("htpasswd (apt-get install apache2-utils)");
    }
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var("FEDGATE_REQUIRE_IMAGE_TOOLS").is_err(),
        "FEDGATE_REQUIRE_IMAGE_TOOLS is set but missing: {missing:?}"
    );
    eprintln!("SKIPPED: missing {missing:?}");
    false
}

fn run(cmd: &str, args: &[&str]) -> String {
    let o = Command::new(cmd).args(args).output().unwrap();
    assert!(
        o.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn sha512_hex(b: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA512, b).as_ref())
}

/// Small images made by qemu-img: raw (with data), qcow2, vmdk
/// (streamOptimized), and an OVA (tar of an OVF and the vmdk).
struct Images {
    _dir: tempfile::TempDir,
    raw: Vec<u8>,
    qcow2: Vec<u8>,
    vmdk: Vec<u8>,
    ova: Vec<u8>,
}

fn images() -> &'static Images {
    static I: OnceLock<Images> = OnceLock::new();
    I.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n).display().to_string();
        // 2 MiB raw disk with a recognisable non-zero first sector.
        let mut raw = vec![0u8; 2 << 20];
        raw[..512].fill(0xeb);
        raw[510] = 0x55;
        raw[511] = 0xaa;
        raw[1 << 20..(1 << 20) + 4096].fill(7);
        std::fs::write(p("d.raw"), &raw).unwrap();
        run(
            "qemu-img",
            &[
                "convert",
                "-f",
                "raw",
                "-O",
                "qcow2",
                &p("d.raw"),
                &p("d.qcow2"),
            ],
        );
        run(
            "qemu-img",
            &[
                "convert",
                "-f",
                "raw",
                "-O",
                "vmdk",
                "-o",
                "subformat=streamOptimized",
                &p("d.raw"),
                &p("disk.vmdk"),
            ],
        );
        std::fs::write(
            p("d.ovf"),
            "<?xml version=\"1.0\"?><Envelope xmlns:ovf=\"http://schemas.dmtf.org/ovf/envelope/1\">\
             <References><File ovf:href=\"disk.vmdk\" ovf:id=\"file1\"/></References></Envelope>\n",
        )
        .unwrap();
        std::fs::write(p("d.mf"), "SHA256(disk.vmdk)= 00\n").unwrap();
        run(
            "tar",
            &[
                "-C",
                &dir.path().display().to_string(),
                "--format=ustar",
                "-cf",
                &p("d.ova"),
                "d.ovf",
                "disk.vmdk",
                "d.mf",
            ],
        );
        let read = |n: &str| std::fs::read(p(n)).unwrap();
        Images {
            raw,
            qcow2: read("d.qcow2"),
            vmdk: read("disk.vmdk"),
            ova: read("d.ova"),
            _dir: dir,
        }
    })
}

// ------------------------------------------------------------ test server

/// What the test server answers on a path.
#[derive(Clone, Default)]
struct Route {
    body: Bytes,
    /// Generated content of this many bytes instead of `body` (see [`gen_chunk`]).
    generated: Option<u64>,
    /// The first answer (without Range) stops after this many bytes.
    cut_first_at: Option<u64>,
    /// `Authorization` required, else 401.
    auth: Option<String>,
    /// Wait this long before the headers.
    stall: Option<Duration>,
    /// Redirect to this path.
    redirect: Option<String>,
}

#[derive(Clone, Debug)]
struct Seen {
    path: String,
    range: Option<String>,
    auth: Option<String>,
    query: Option<String>,
}

#[derive(Default)]
struct ServerState {
    routes: Mutex<HashMap<String, Route>>,
    seen: Mutex<Vec<Seen>>,
    served: Mutex<HashMap<String, usize>>,
}

type Body = BoxBody<Bytes, std::io::Error>;

const GEN_CHUNK: usize = 64 << 10;

/// Chunk `i` of generated content: zeros, except every 1024th chunk
/// (64 MiB) which holds a pattern: a "sparse-ish" disk.
fn gen_chunk(i: u64) -> Bytes {
    static ZERO: OnceLock<Bytes> = OnceLock::new();
    static DATA: OnceLock<Bytes> = OnceLock::new();
    if i % 1024 == 0 {
        DATA.get_or_init(|| {
            Bytes::from(
                (0..GEN_CHUNK)
                    .map(|k| (k % 251) as u8 + 1)
                    .collect::<Vec<u8>>(),
            )
        })
        .clone()
    } else {
        ZERO.get_or_init(|| Bytes::from(vec![0u8; GEN_CHUNK]))
            .clone()
    }
}

fn full(status: StatusCode, b: impl Into<Bytes>) -> Response<Body> {
    let b: Bytes = b.into();
    let len = b.len();
    let s = stream::iter([Ok::<_, std::io::Error>(Frame::data(b))]);
    Response::builder()
        .status(status)
        .header("content-length", len)
        .body(BodyExt::boxed(StreamBody::new(s)))
        .unwrap()
}

async fn handle(
    st: Arc<ServerState>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    let h = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    st.seen.lock().unwrap().push(Seen {
        path: path.clone(),
        range: h("range"),
        auth: h("authorization"),
        query: req.uri().query().map(str::to_string),
    });
    if path == "/token" {
        let want = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{REG_USER}:{REG_PASS}"))
        );
        if h("authorization").as_deref() != Some(want.as_str()) {
            return Ok(full(StatusCode::UNAUTHORIZED, "bad credentials"));
        }
        return Ok(full(
            StatusCode::OK,
            r#"{"token":"registry-token-1","expires_in":300}"#,
        ));
    }
    let Some(r) = st.routes.lock().unwrap().get(&path).cloned() else {
        return Ok(full(StatusCode::NOT_FOUND, "no such path"));
    };
    if let Some(d) = r.stall {
        tokio::time::sleep(d).await;
    }
    if let Some(a) = &r.auth {
        if h("authorization").as_deref() != Some(a.as_str()) {
            return Ok(full(StatusCode::UNAUTHORIZED, "token needed"));
        }
    }
    if let Some(to) = &r.redirect {
        return Ok(Response::builder()
            .status(StatusCode::FOUND)
            .header("location", to.as_str())
            .body(BodyExt::boxed(StreamBody::new(stream::iter(Vec::<
                Result<Frame<Bytes>, std::io::Error>,
            >::new(
            )))))
            .unwrap());
    }
    let n = {
        let mut s = st.served.lock().unwrap();
        let n = s.entry(path.clone()).or_default();
        *n += 1;
        *n
    };
    let total = r.generated.unwrap_or(r.body.len() as u64);
    let start = h("range")
        .and_then(|v| v.strip_prefix("bytes=").map(str::to_string))
        .and_then(|v| v.trim_end_matches('-').parse::<u64>().ok())
        .unwrap_or(0);
    let cut = if n == 1 && start == 0 {
        r.cut_first_at
    } else {
        None
    };
    let end = cut.unwrap_or(total);
    let mut b = Response::builder().header("content-length", total - start);
    b = if start > 0 {
        b.status(StatusCode::PARTIAL_CONTENT).header(
            "content-range",
            format!("bytes {start}-{}/{total}", total - 1),
        )
    } else {
        b.status(StatusCode::OK)
    };
    let body: Body = match r.generated {
        Some(size) => {
            let first = start / GEN_CHUNK as u64;
            let chunks = size.div_ceil(GEN_CHUNK as u64);
            let s = stream::iter((first..chunks).map(move |i| {
                let c = gen_chunk(i);
                let off = i * GEN_CHUNK as u64;
                let from = start.saturating_sub(off) as usize;
                let to = ((size - off) as usize).min(GEN_CHUNK);
                Ok::<_, std::io::Error>(Frame::data(c.slice(from..to)))
            }));
            BodyExt::boxed(StreamBody::new(s))
        }
        None => {
            let data = r.body.slice(start as usize..end.max(start) as usize);
            let mut frames = vec![Ok(Frame::data(data))];
            if cut.is_some() {
                frames.push(Err(std::io::Error::other("connection cut by the test")));
            }
            BodyExt::boxed(StreamBody::new(stream::iter(frames)))
        }
    };
    Ok(b.body(body).unwrap())
}

struct Servers {
    state: Arc<ServerState>,
    ca_file: PathBuf,
    _pki: tempfile::TempDir,
}

impl Servers {
    fn route(&self, path: &str, r: Route) -> String {
        self.state.routes.lock().unwrap().insert(path.into(), r);
        format!("http://127.0.0.1:{HTTP_PORT}{path}")
    }
    fn seen(&self, path: &str) -> Vec<Seen> {
        self.state
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path == path)
            .cloned()
            .collect()
    }
}

/// The HTTP (18792) and HTTPS (18791) servers, in a thread of their own
/// so that they outlive each test's runtime.
fn servers() -> &'static Servers {
    static S: OnceLock<Servers> = OnceLock::new();
    S.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let pki = fedgate::demo::pki::create(dir.path()).expect("demo PKI");
        let certs = rustls_pki_types::CertificateDer::pem_file_iter(&pki.host_cert)
            .unwrap()
            .map(|c| c.unwrap())
            .collect::<Vec<_>>();
        let key = rustls_pki_types::PrivateKeyDer::from_pem_file(&pki.host_key).unwrap();
        let tls = rustls::ServerConfig::builder_with_provider(fedgate::internal::crypto_provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let state = Arc::new(ServerState::default());
        let st = state.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let plain = tokio::net::TcpListener::bind(("127.0.0.1", HTTP_PORT))
                    .await
                    .unwrap();
                let secure = tokio::net::TcpListener::bind(("127.0.0.1", HTTPS_PORT))
                    .await
                    .unwrap();
                tx.send(()).unwrap();
                let st2 = st.clone();
                tokio::spawn(async move {
                    loop {
                        let (s, _) = secure.accept().await.unwrap();
                        let (st, acc) = (st2.clone(), acceptor.clone());
                        tokio::spawn(async move {
                            let Ok(tls) = acc.accept(s).await else { return };
                            let svc = hyper::service::service_fn(move |r| handle(st.clone(), r));
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                                .await;
                        });
                    }
                });
                loop {
                    let (s, _) = plain.accept().await.unwrap();
                    let st = st.clone();
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(move |r| handle(st.clone(), r));
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                            .await;
                    });
                }
            });
        });
        rx.recv().unwrap();
        Servers {
            state,
            ca_file: pki.ca_file,
            _pki: dir,
        }
    })
}

// ------------------------------------------------------------ helpers

fn config(staging: &Path, extra: &str) -> FetchConfig {
    let text = format!(
        "staging_dir = {:?}\nallow_http = true\n{extra}",
        staging.display().to_string()
    );
    toml::from_str(&text).unwrap()
}

fn http_candidate(id: &str, url: &str, data: &[u8], format: Option<&str>) -> Candidate {
    Candidate {
        identifier: id.into(),
        kind: SourceKind::HepixList,
        title: id.into(),
        description: None,
        version: "1".into(),
        vo: Some("vo.example.org".into()),
        declared_format: format.map(str::to_string),
        mpuri: None,
        arch: None,
        os_distro: None,
        os_version: None,
        expires: None,
        list_identifier: "list".into(),
        attributes: Default::default(),
        location: Location::Http {
            url: url.into(),
            sha512: sha512_hex(data),
            size: data.len() as u64,
        },
    }
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

// ------------------------------------------------------------ lists

#[tokio::test]
async fn list_fetch_sends_the_appdb_token_as_basic_over_https() {
    let s = servers();
    let body = Bytes::from_static(b"MIME-Version: 1.0\r\n\r\nnot really signed\r\n");
    let want = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{TOKEN}:x-oauth-basic"))
    );
    s.route(
        "/store/vo/vo.example.org/image.list",
        Route {
            body: body.clone(),
            auth: Some(want.clone()),
            ..Route::default()
        },
    );
    let url = format!("https://127.0.0.1:{HTTPS_PORT}/store/vo/vo.example.org/image.list");
    let staging = tempfile::tempdir().unwrap();
    // appdb_token and ca_file are read.
    let cfg = config(
        staging.path(),
        &format!(
            "appdb_token = {TOKEN:?}\nca_file = {:?}\n",
            s.ca_file.display().to_string()
        ),
    );
    let t = Transport::new(cfg.ca_file.as_deref(), Duration::from_secs(5), false).unwrap();
    let got = fetch::fetch_list(&t, &url, cfg.appdb_token.as_ref())
        .await
        .unwrap();
    assert_eq!(got, body);
    let seen = s.seen("/store/vo/vo.example.org/image.list");
    assert_eq!(seen.last().unwrap().auth.as_deref(), Some(want.as_str()));

    // Without the token: 401, named.
    let e = fetch::fetch_list(&t, &url, None).await.unwrap_err();
    assert_eq!(e.code(), "Unauthorized", "{e}");
    // The cloudkeeper form: the token in the URL, which never shows.
    let inline = format!(
        "https://{TOKEN}:x-oauth-basic@127.0.0.1:{HTTPS_PORT}/store/vo/vo.example.org/image.list"
    );
    assert_eq!(fetch::fetch_list(&t, &inline, None).await.unwrap(), body);
    // Without ca_file the server's certificate is unknown.
    let bare = Transport::new(None, Duration::from_secs(5), false).unwrap();
    let e = fetch::fetch_list(&bare, &url, cfg.appdb_token.as_ref())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "Transport", "{e}");
    // http:// only when allowed (allow_http is read).
    let e = fetch::fetch_list(&t, &format!("http://127.0.0.1:{HTTP_PORT}/x"), None)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "SchemeRefused", "{e}");
    // The fetched text is judged by the existing verification: not signed.
    let pki = fedgate::demo::pki::create(staging.path()).unwrap();
    let (store, _) = fedgate::internal::pki::TrustStore::load(&pki.ca_dir).unwrap();
    let v = fedgate::internal::pki::Validator::new(Arc::new(store), Default::default());
    let d = fetch::fetch_and_evaluate(
        &t,
        &url,
        cfg.appdb_token.as_ref(),
        &v,
        &Default::default(),
        0,
    )
    .await
    .unwrap();
    assert!(!d.accepted());
    assert_eq!(d.reasons[0].code.as_str(), "SignatureInvalid");
}

// ------------------------------------------------------------ downloads

#[tokio::test]
async fn formats_are_detected_and_ova_disks_extracted() {
    if !tools(false) {
        return;
    }
    let s = servers();
    let i = images();
    let staging = tempfile::tempdir().unwrap();
    let st = Stager::new(&config(staging.path(), "")).unwrap();
    for (name, data, declared, want) in [
        ("raw", &i.raw, Some("RAW"), "raw"),
        ("qcow2", &i.qcow2, Some("QCOW2"), "qcow2"),
        ("vmdk", &i.vmdk, Some("vmdk"), "vmdk"),
        ("ova", &i.ova, Some("OVA"), "vmdk"),
        // Mislabelled: a qcow2 published as raw.
        ("mislabelled", &i.qcow2, Some("raw"), "qcow2"),
    ] {
        let url = s.route(
            &format!("/fmt/{name}"),
            Route {
                body: Bytes::from(data.clone()),
                ..Route::default()
            },
        );
        let c = http_candidate(&format!("fmt-{name}"), &url, data, declared);
        let staged = st
            .stage(&c, None)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(staged.disk_format, want, "{name}");
        assert_eq!(staged.container_format, "bare");
        assert_eq!(staged.mislabelled, name == "mislabelled", "{name}");
        assert_eq!(staged.checksum, format!("sha512:{}", sha512_hex(data)));
        // qemu-img agrees with the detection.
        let info = run(
            "qemu-img",
            &["info", "--output=json", &staged.path.display().to_string()],
        );
        let v: serde_json::Value = serde_json::from_str(&info).unwrap();
        assert_eq!(v["format"], want, "{name}");
        if name == "ova" {
            assert_eq!(staged.downloaded_format, DiskFormat::Ova);
            assert_eq!(
                std::fs::read(&staged.path).unwrap(),
                i.vmdk,
                "the OVA's disk, byte for byte"
            );
        }
        // A second run reuses the verified file.
        let again = st.stage(&c, None).await.unwrap();
        assert!(again.reused, "{name}");
    }
    assert_eq!(
        s.state.served.lock().unwrap()["/fmt/qcow2"],
        1,
        "reused, not downloaded again"
    );
}

#[tokio::test]
async fn a_cut_download_resumes_with_range() {
    let s = servers();
    let data: Vec<u8> = (0..3_000_000u32).map(|k| (k % 253) as u8 + 1).collect();
    let url = s.route(
        "/cut/image",
        Route {
            body: Bytes::from(data.clone()),
            cut_first_at: Some(1_250_000),
            ..Route::default()
        },
    );
    let staging = tempfile::tempdir().unwrap();
    let st = Stager::new(&config(staging.path(), "")).unwrap();
    let c = http_candidate("cut", &url, &data, None);
    let staged = st.stage(&c, None).await.unwrap();
    assert_eq!(std::fs::read(&staged.path).unwrap(), data);
    let seen = s.seen("/cut/image");
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].range, None);
    let resumed_at: u64 = seen[1]
        .range
        .as_deref()
        .unwrap()
        .strip_prefix("bytes=")
        .unwrap()
        .trim_end_matches('-')
        .parse()
        .unwrap();
    assert!(resumed_at > 0 && resumed_at <= 1_250_000, "{seen:?}");

    // A .part left by an earlier run is resumed too.
    let url = s.route(
        "/cut/left",
        Route {
            body: Bytes::from(data.clone()),
            ..Route::default()
        },
    );
    let c = http_candidate("left-over", &url, &data, None);
    std::fs::write(
        staging
            .path()
            .join(format!("{}.part", file_key("left-over"))),
        &data[..777_777],
    )
    .unwrap();
    st.stage(&c, None).await.unwrap();
    assert_eq!(
        s.seen("/cut/left")[0].range.as_deref(),
        Some("bytes=777777-")
    );
}

#[tokio::test]
async fn size_checksum_and_budget_refusals() {
    let s = servers();
    let data: Vec<u8> = (0..1_000_000u32).map(|k| (k % 7) as u8 + 1).collect();
    let url = s.route(
        "/refuse/image",
        Route {
            body: Bytes::from(data.clone()),
            ..Route::default()
        },
    );
    let staging = tempfile::tempdir().unwrap();
    let dir = staging.path();

    // max_image_size is read: the declared size is over it.
    let st = Stager::new(&config(
        dir,
        "max_image_size = 999999\ndisk_budget = 99999999",
    ))
    .unwrap();
    let e = st
        .stage(&http_candidate("big", &url, &data, None), None)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "TooLarge", "{e}");

    let st = Stager::new(&config(dir, "")).unwrap();
    // More bytes than declared.
    let mut c = http_candidate("short", &url, &data[..500_000], None);
    let e = st.stage(&c, None).await.unwrap_err();
    assert_eq!(e.code(), "SizeExceeded", "{e}");
    // A wrong sha512: nothing stays behind.
    c = http_candidate("tampered", &url, &data, None);
    if let Location::Http { sha512, .. } = &mut c.location {
        *sha512 = sha512_hex(b"something else");
    }
    let e = st.stage(&c, None).await.unwrap_err();
    assert!(matches!(e, StageError::ChecksumMismatch { .. }), "{e}");
    assert!(files(dir).is_empty(), "{:?}", files(dir));

    // disk_budget is read: what the staging directory holds counts.
    std::fs::write(dir.join("other.img"), vec![1u8; 600_000]).unwrap();
    let st = Stager::new(&config(dir, "disk_budget = 1500000")).unwrap();
    let e = st
        .stage(&http_candidate("budget", &url, &data, None), None)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "DiskBudget", "{e}");
    std::fs::remove_file(dir.join("other.img")).unwrap();
    st.stage(&http_candidate("budget", &url, &data, None), None)
        .await
        .unwrap();

    // allow_http is read: without it an http:// image URL is refused.
    let strict: FetchConfig =
        toml::from_str(&format!("staging_dir = {:?}", dir.display().to_string())).unwrap();
    let e = Stager::new(&strict)
        .unwrap()
        .stage(&http_candidate("strict", &url, &data, None), None)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "SchemeRefused", "{e}");

    // staging_dir is read: the files are there.
    assert!(files(dir).contains(&format!("{}.img", file_key("budget"))));

    // timeout_secs is read: a silent server is given up on.
    let url = s.route(
        "/refuse/stall",
        Route {
            body: Bytes::from(data.clone()),
            stall: Some(Duration::from_secs(4)),
            ..Route::default()
        },
    );
    let st = Stager::new(&config(dir, "timeout_secs = 1")).unwrap();
    let t0 = Instant::now();
    let e = st
        .stage(&http_candidate("stall", &url, &data, None), None)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "Timeout", "{e}");
    assert!(t0.elapsed() < Duration::from_secs(15));
}

#[tokio::test]
async fn conversion_with_qemu_img() {
    if !tools(false) {
        return;
    }
    let s = servers();
    let i = images();
    let staging = tempfile::tempdir().unwrap();
    let url = s.route(
        "/convert/qcow2",
        Route {
            body: Bytes::from(i.qcow2.clone()),
            ..Route::default()
        },
    );
    // convert_to is read.
    let st = Stager::new(&config(staging.path(), "convert_to = \"raw\"")).unwrap();
    let staged = st
        .stage(
            &http_candidate("to-raw", &url, &i.qcow2, Some("qcow2")),
            None,
        )
        .await
        .unwrap();
    assert!(staged.converted);
    assert_eq!(staged.disk_format, "raw");
    assert_eq!(
        std::fs::read(&staged.path).unwrap(),
        i.raw,
        "the same disk, as raw"
    );

    let url = s.route(
        "/convert/ova",
        Route {
            body: Bytes::from(i.ova.clone()),
            ..Route::default()
        },
    );
    let st = Stager::new(&config(staging.path(), "convert_to = \"qcow2\"")).unwrap();
    let staged = st
        .stage(
            &http_candidate("ova-to-qcow2", &url, &i.ova, Some("ova")),
            None,
        )
        .await
        .unwrap();
    assert_eq!(staged.disk_format, "qcow2");
    let info = run(
        "qemu-img",
        &["info", "--output=json", &staged.path.display().to_string()],
    );
    assert!(info.contains("\"format\": \"qcow2\""), "{info}");

    // qemu_img is read: a missing program is a named refusal.
    let st = Stager::new(&config(
        staging.path(),
        "convert_to = \"raw\"\nqemu_img = \"/nonexistent/qemu-img\"",
    ))
    .unwrap();
    let e = st
        .stage(
            &http_candidate(
                "to-raw-2",
                &s.route(
                    "/convert/q2",
                    Route {
                        body: Bytes::from(i.qcow2.clone()),
                        ..Route::default()
                    },
                ),
                &i.qcow2,
                None,
            ),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "QemuImgMissing", "{e}");

    // convert_timeout_secs is read: a qemu-img that hangs is stopped.
    let slow = staging.path().join("slow-qemu-img");
    std::fs::write(
        &slow,
        "#!/bin/sh\n[ \"$1\" = convert ] && sleep 30\nexec qemu-img \"$@\"\n",
    )
    .unwrap();
    run("chmod", &["+x", &slow.display().to_string()]);
    let st = Stager::new(&config(
        staging.path(),
        &format!(
            "convert_to = \"raw\"\nconvert_timeout_secs = 1\nqemu_img = {:?}",
            slow.display().to_string()
        ),
    ))
    .unwrap();
    let t0 = Instant::now();
    let e = st
        .stage(
            &http_candidate(
                "to-raw-3",
                &s.route(
                    "/convert/q3",
                    Route {
                        body: Bytes::from(i.qcow2.clone()),
                        ..Route::default()
                    },
                ),
                &i.qcow2,
                None,
            ),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "ConvertTimeout", "{e}");
    assert!(t0.elapsed() < Duration::from_secs(10));
}

// ------------------------------------------------------------ memory

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// A 2 GiB image through `fedgate images fetch`: the process's resident
/// memory, sampled every 10 ms once 64 MiB have arrived, grows by a few
/// MiB at most.
#[test]
fn two_gib_download_keeps_memory_flat() {
    let s = servers();
    const SIZE: u64 = 2 << 30;
    let url = s.route(
        "/gen/2g",
        Route {
            generated: Some(SIZE),
            ..Route::default()
        },
    );
    let mut ctx = digest::Context::new(&digest::SHA512);
    for i in 0..SIZE / GEN_CHUNK as u64 {
        ctx.update(&gen_chunk(i));
    }
    let sha = hex::encode(ctx.finish().as_ref());
    let staging = tempfile::tempdir().unwrap();
    let conf = staging.path().join("fetch.toml");
    std::fs::write(
        &conf,
        format!(
            "staging_dir = {:?}\nallow_http = true\nmax_image_size = {}\ndisk_budget = {}\n",
            staging.path().display().to_string(),
            SIZE,
            4 * SIZE
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fedgate"))
        .args([
            "images",
            "fetch",
            "--config",
            &conf.display().to_string(),
            "--url",
            &url,
        ])
        .args([
            "--sha512",
            &sha,
            "--size",
            &SIZE.to_string(),
            "--id",
            "two-gib",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let part = staging.path().join(format!("{}.part", file_key("two-gib")));
    let (mut base, mut peak) = (None, 0u64);
    let t0 = Instant::now();
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        let rss = status_kib(pid, "VmRSS:").unwrap_or(0);
        let arrived = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        if base.is_none() && arrived >= 64 << 20 {
            base = Some(rss);
        }
        if base.is_some() {
            peak = peak.max(rss);
            if let Some(h) = status_kib(pid, "VmHWM:") {
                peak = peak.max(h);
            }
        }
        assert!(t0.elapsed() < Duration::from_secs(300), "download too slow");
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["size"], SIZE);
    assert_eq!(v["disk_format"], "raw");
    let base = base.expect("never saw 64 MiB arrive");
    let growth = peak.saturating_sub(base);
    eprintln!(
        "2 GiB download: RSS {base} KiB at 64 MiB, peak {peak} KiB (VmHWM), growth {growth} KiB, {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    assert!(growth < 8 << 10, "RSS grew by {growth} KiB");
    // Zeros became holes: the 2 GiB file occupies little disk.
    let used = fedgate::internal::images::download::dir_usage(staging.path()).unwrap();
    assert!(used < 256 << 20, "{used} bytes on disk");
}

// ------------------------------------------------------------ registry

struct RegistryProc {
    dir: PathBuf,
}

impl Drop for RegistryProc {
    fn drop(&mut self) {
        let _ = Command::new(harness("registry.sh"))
            .arg("down")
            .arg(&self.dir)
            .status();
    }
}

fn harness(f: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/harness/registry")
        .join(f)
}

fn push(py: &str, file: &Path, reference: &str, annotations: serde_json::Value) -> String {
    let o = Command::new(py)
        .arg(harness("push.py"))
        .args([
            &format!("127.0.0.1:{REG_BASIC}"),
            REG_USER,
            REG_PASS,
            reference,
        ])
        .arg(file)
        .arg(annotations.to_string())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "oras push: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn registry_config(staging: &Path, port: u16, auth: &str) -> FetchConfig {
    config(
        staging,
        &format!("[registry]\nurl = \"http://127.0.0.1:{port}\"\nallow_http = true\n{auth}"),
    )
}

#[tokio::test]
async fn registry_artifacts_pushed_by_oras() {
    if !tools(true) {
        return;
    }
    let s = servers();
    let i = images();
    let work = tempfile::tempdir().unwrap();
    let py = {
        let o = Command::new(harness("oras-venv.sh")).output().unwrap();
        assert!(
            o.status.success(),
            "oras venv: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let basic_dir = work.path().join("basic");
    run(
        &harness("registry.sh").display().to_string(),
        &[
            "up",
            &basic_dir.display().to_string(),
            &REG_BASIC.to_string(),
            "htpasswd",
            REG_USER,
            REG_PASS,
        ],
    );
    let _basic = RegistryProc { dir: basic_dir };
    let bearer_dir = work.path().join("bearer");
    run(
        &harness("registry.sh").display().to_string(),
        &[
            "up",
            &bearer_dir.display().to_string(),
            &REG_BEARER.to_string(),
            "silly",
            &format!("http://127.0.0.1:{HTTP_PORT}/token"),
            "fedgate-registry",
        ],
    );
    let _bearer = RegistryProc { dir: bearer_dir };

    // Artifacts as EGI publishes them: one layer, eu.egi.cloud.* and
    // Glance annotations.
    let files = work.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let w = |n: &str, d: &[u8]| {
        let p = files.join(n);
        std::fs::write(&p, d).unwrap();
        p
    };
    let egi = |title: &str, fmt: &str| {
        serde_json::json!({
            "$manifest": {"eu.egi.cloud.tag": "2025.01.10", "eu.egi.cloud.image.title": title,
                          "eu.egi.cloud.description": "test image", "eu.egi.cloud.vo": "vo.example.org",
                          "org.opencontainers.image.version": "2025.01.10"},
            "$layer": {"org.openstack.glance.disk_format": fmt, "org.openstack.glance.container_format": "bare",
                       "org.openstack.glance.architecture": "x86_64", "org.openstack.glance.os_distro": "ubuntu",
                       "org.openstack.glance.os_version": "24.04"}
        })
    };
    push(
        &py,
        &w("ubuntu.qcow2", &i.qcow2),
        "egi_vm_images/ubuntu:24.04",
        egi("Ubuntu 24.04", "qcow2"),
    );
    // Mislabelled on purpose: raw content, annotated qcow2.
    push(
        &py,
        &w("alma.raw", &i.raw),
        "egi_vm_images/alma:9",
        egi("Alma 9", "qcow2"),
    );
    // No eu.egi.cloud.tag: not synced.
    push(
        &py,
        &w("scratch.vmdk", &i.vmdk),
        "egi_vm_images/scratch:0",
        serde_json::json!({"$manifest": {}}),
    );
    // Another project: not listed with project = "egi_vm_images".
    push(
        &py,
        &w("other.qcow2", &i.qcow2),
        "other_project/x:1",
        egi("Other", "qcow2"),
    );

    let staging = tempfile::tempdir().unwrap();
    // Basic auth; the catalog filtered by project.
    let cfg = registry_config(
        staging.path(),
        REG_BASIC,
        &format!("project = \"egi_vm_images\"\nusername = {REG_USER:?}\npassword = {REG_PASS:?}\n"),
    );
    let reg = Registry::new(cfg.registry.as_ref().unwrap(), &cfg).unwrap();
    let l = reg.candidates().await.unwrap();
    let mut ids: Vec<&str> = l.candidates.iter().map(|c| c.title.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["Alma 9", "Ubuntu 24.04"], "skipped: {:?}", l.skipped);
    assert_eq!(l.skipped.len(), 1);
    assert_eq!(l.skipped[0].reason, "NotTagged");
    assert_eq!(l.skipped[0].reference, "egi_vm_images/scratch:0");
    let ubuntu = l
        .candidates
        .iter()
        .find(|c| c.title == "Ubuntu 24.04")
        .unwrap();
    assert_eq!(ubuntu.version, "2025.01.10");
    assert_eq!(ubuntu.vo.as_deref(), Some("vo.example.org"));
    assert_eq!(ubuntu.declared_format.as_deref(), Some("qcow2"));
    assert_eq!(ubuntu.os_distro.as_deref(), Some("ubuntu"));
    assert!(
        ubuntu.identifier.starts_with(&format!(
            "127.0.0.1:{REG_BASIC}/egi_vm_images/ubuntu:24.04-sha256:"
        )),
        "{}",
        ubuntu.identifier
    );
    let Location::Oci {
        digest: d, size, ..
    } = &ubuntu.location
    else {
        panic!()
    };
    assert_eq!(*size, i.qcow2.len() as u64);
    assert_eq!(
        d,
        &format!(
            "sha256:{}",
            hex::encode(digest::digest(&digest::SHA256, &i.qcow2).as_ref())
        )
    );

    // Blobs by digest, verified; the mislabelled one detected.
    let st = Stager::new(&cfg).unwrap();
    let staged = st.stage(ubuntu, Some(&reg)).await.unwrap();
    assert_eq!(staged.disk_format, "qcow2");
    assert_eq!(std::fs::read(&staged.path).unwrap(), i.qcow2);
    let alma = l.candidates.iter().find(|c| c.title == "Alma 9").unwrap();
    let staged = st.stage(alma, Some(&reg)).await.unwrap();
    assert!(staged.mislabelled);
    assert_eq!(staged.disk_format, "raw");

    // repositories is read: only the named one.
    let cfg2 = registry_config(
        staging.path(),
        REG_BASIC,
        &format!(
            "repositories = [\"other_project/x\"]\nusername = {REG_USER:?}\npassword = {REG_PASS:?}\n"
        ),
    );
    let reg2 = Registry::new(cfg2.registry.as_ref().unwrap(), &cfg2).unwrap();
    let l2 = reg2.candidates().await.unwrap();
    assert_eq!(l2.candidates.len(), 1);
    assert_eq!(l2.candidates[0].title, "Other");

    // username/password are read: wrong ones are refused by name.
    let cfg3 = registry_config(
        staging.path(),
        REG_BASIC,
        "project = \"egi_vm_images\"\nusername = \"alice\"\npassword = \"wrong\"\n",
    );
    let e = Registry::new(cfg3.registry.as_ref().unwrap(), &cfg3)
        .unwrap()
        .candidates()
        .await
        .unwrap_err();
    assert_eq!(e.code(), "Unauthorized", "{e}");

    // The Bearer challenge flow: the token service gets the credentials
    // and the scope; the registry gets the token.
    let cfg4 = registry_config(
        staging.path(),
        REG_BEARER,
        &format!(
            "repositories = [\"egi_vm_images/ubuntu\"]\nusername = {REG_USER:?}\npassword = {REG_PASS:?}\n"
        ),
    );
    let reg4 = Registry::new(cfg4.registry.as_ref().unwrap(), &cfg4).unwrap();
    let l4 = reg4.candidates().await.unwrap();
    assert_eq!(l4.candidates.len(), 1);
    let token_calls = s.seen("/token");
    assert!(!token_calls.is_empty());
    let q = token_calls[0].query.clone().unwrap_or_default();
    assert!(
        q.contains("service=fedgate-registry")
            && q.contains("scope=repository%3Aegi_vm_images%2Fubuntu%3Apull"),
        "{q}"
    );
    let staged = Stager::new(&cfg4).unwrap();
    std::fs::remove_dir_all(staging.path()).ok();
    std::fs::create_dir_all(staging.path()).unwrap();
    let got = staged.stage(&l4.candidates[0], Some(&reg4)).await.unwrap();
    assert_eq!(got.disk_format, "qcow2");
    // A token service refusing the credentials: named.
    let cfg5 = registry_config(
        staging.path(),
        REG_BEARER,
        "repositories = [\"egi_vm_images/ubuntu\"]\nusername = \"alice\"\npassword = \"nope\"\n",
    );
    let l5 = Registry::new(cfg5.registry.as_ref().unwrap(), &cfg5)
        .unwrap()
        .candidates()
        .await
        .unwrap();
    assert_eq!(l5.skipped[0].reason, "TokenRefused", "{:?}", l5.skipped);
    // token is read: a ready token goes straight to the registry.
    let before = s.seen("/token").len();
    let cfg6 = registry_config(
        staging.path(),
        REG_BEARER,
        "repositories = [\"egi_vm_images/ubuntu\"]\ntoken = \"ready-made\"\n",
    );
    let l6 = Registry::new(cfg6.registry.as_ref().unwrap(), &cfg6)
        .unwrap()
        .candidates()
        .await
        .unwrap();
    assert_eq!(l6.candidates.len(), 1, "{:?}", l6.skipped);
    assert_eq!(
        s.seen("/token").len(),
        before,
        "no token request with a ready token"
    );

    // A blob corrupted in the registry's store: the digest check refuses it.
    let Location::Oci { digest: d, .. } = &alma.location else {
        panic!()
    };
    let hexd = d.strip_prefix("sha256:").unwrap();
    let blob = work.path().join(format!(
        "store/docker/registry/v2/blobs/sha256/{}/{hexd}/data",
        &hexd[..2]
    ));
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();
    let st = Stager::new(&cfg).unwrap();
    st.discard(&alma.identifier);
    let e = st.stage(alma, Some(&reg)).await.unwrap_err();
    assert_eq!(e.code(), "DigestMismatch", "{e}");
    assert!(
        !staging
            .path()
            .join(format!("{}.img", file_key(&alma.identifier)))
            .exists()
    );
}
