//! Staging an image (B5, B6): download into the staging directory with
//! resume, a size cap and a disk budget, verify it while streaming, find
//! its real format, take the disk out of an OVA, convert when the site
//! asks for one format.
//!
//! Files of one candidate share a key ([`file_key`]):
//! `<key>.part` while downloading (kept across attempts and runs, resumed
//! with `Range`), `<key>.img` once verified (reused when its hash still
//! matches), `<key>.disk` for an OVA's disk, `<key>.<raw|qcow2>` after
//! conversion. Memory stays flat whatever the image size: chunks go to the
//! file as they arrive, runs of zeros become holes.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_lc_rs::digest;
use http::{HeaderMap, HeaderValue, StatusCode, header};

use super::candidate::{Candidate, Location};
use super::fetch_config::FetchConfig;
use super::format::{self, DiskFormat, FormatError};
use super::registry::{Registry, RegistryError};
use super::transport::{Transport, TransportError, content_length};

/// Attempts per download; a cut connection resumes with `Range`.
pub const MAX_ATTEMPTS: usize = 4;

/// Why an image could not be staged. Each variant is a named refusal
/// ([`StageError::code`]); a refused download leaves no `.img`.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("TooLarge: {id}: declared size {size} exceeds max_image_size {max}")]
    TooLarge { id: String, size: u64, max: u64 },
    #[error("DiskBudget: {id}: needs {need} bytes, staging holds {used} of {budget}")]
    DiskBudget {
        id: String,
        need: u64,
        used: u64,
        budget: u64,
    },
    #[error("SizeExceeded: {id}: more than the declared {size} bytes arrived")]
    SizeExceeded { id: String, size: u64 },
    #[error("SizeMismatch: {id}: {got} bytes arrived, {size} declared")]
    SizeMismatch { id: String, got: u64, size: u64 },
    #[error("ChecksumMismatch: {id}: sha512 {got}, list says {want}")]
    ChecksumMismatch {
        id: String,
        got: String,
        want: String,
    },
    #[error("DigestMismatch: {id}: {got}, manifest says {want}")]
    DigestMismatch {
        id: String,
        got: String,
        want: String,
    },
    #[error("BadDigest: {id}: unsupported digest {digest:?}")]
    BadDigest { id: String, digest: String },
    #[error("Unauthorized: {url} answered {status}")]
    Unauthorized { url: String, status: u16 },
    #[error("HttpStatus: {url} answered {status}")]
    Status { url: String, status: u16 },
    #[error("NoRegistry: {0}: an OCI candidate needs the registry client")]
    NoRegistry(String),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("Io: {0}: {1}")]
    Io(String, std::io::Error),
}

impl StageError {
    /// The refusal's name.
    pub fn code(&self) -> &'static str {
        match self {
            StageError::TooLarge { .. } => "TooLarge",
            StageError::DiskBudget { .. } => "DiskBudget",
            StageError::SizeExceeded { .. } => "SizeExceeded",
            StageError::SizeMismatch { .. } => "SizeMismatch",
            StageError::ChecksumMismatch { .. } => "ChecksumMismatch",
            StageError::DigestMismatch { .. } => "DigestMismatch",
            StageError::BadDigest { .. } => "BadDigest",
            StageError::Unauthorized { .. } => "Unauthorized",
            StageError::Status { .. } => "HttpStatus",
            StageError::NoRegistry(_) => "NoRegistry",
            StageError::Transport(t) => t.code(),
            StageError::Registry(r) => r.code(),
            StageError::Format(f) => f.code(),
            StageError::Io(..) => "Io",
        }
    }
}

fn io(p: &Path) -> impl FnOnce(std::io::Error) -> StageError + '_ {
    move |e| StageError::Io(p.display().to_string(), e)
}

/// An image ready for upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedImage {
    /// The file to upload.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Glance `disk_format`, from the content (after extraction and
    /// conversion): always what Glance's inspector will find.
    pub disk_format: String,
    /// Glance `container_format`: `bare` (an OVA's disk is extracted).
    pub container_format: String,
    /// The format the content had when downloaded.
    pub downloaded_format: DiskFormat,
    /// The format the source declared, if any.
    pub declared_format: Option<String>,
    /// The declaration did not match the content (logged; not a refusal).
    pub mislabelled: bool,
    /// The verified checksum of the download: `sha512:<hex>` (lists) or
    /// the OCI digest `sha256:<hex>`.
    pub checksum: String,
    /// The verified download, `<key>.img`.
    pub download: PathBuf,
    /// A `.img` that still matched was reused: nothing was downloaded.
    pub reused: bool,
    /// `qemu-img convert` produced `path`.
    pub converted: bool,
}

/// A file name for an identifier: its safe characters, then 16 hex digits
/// of its SHA-256 (identifiers of OCI candidates hold `/` and `:`).
pub fn file_key(id: &str) -> String {
    let safe: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    let h = digest::digest(&digest::SHA256, id.as_bytes());
    format!("{safe}-{}", &hex::encode(h.as_ref())[..16])
}

/// What a download must hash to.
#[derive(Debug, Clone)]
enum Expected {
    Sha512(String),
    Oci(&'static digest::Algorithm, String, String),
}

impl Expected {
    fn of(c: &Candidate) -> Result<Expected, StageError> {
        match &c.location {
            Location::Http { sha512, .. } => Ok(Expected::Sha512(sha512.to_ascii_lowercase())),
            Location::Oci { digest: d, .. } => {
                let bad = || StageError::BadDigest {
                    id: c.identifier.clone(),
                    digest: d.clone(),
                };
                let (alg, hexpart) = d.split_once(':').ok_or_else(bad)?;
                let (a, len) = match alg {
                    "sha256" => (&digest::SHA256, 64),
                    "sha512" => (&digest::SHA512, 128),
                    _ => return Err(bad()),
                };
                if hexpart.len() != len || !hexpart.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(bad());
                }
                Ok(Expected::Oci(
                    a,
                    alg.to_string(),
                    hexpart.to_ascii_lowercase(),
                ))
            }
        }
    }
    fn context(&self) -> digest::Context {
        match self {
            Expected::Sha512(_) => digest::Context::new(&digest::SHA512),
            Expected::Oci(a, ..) => digest::Context::new(a),
        }
    }
    fn check(&self, id: &str, got: digest::Digest) -> Result<(), StageError> {
        let got = hex::encode(got.as_ref());
        match self {
            Expected::Sha512(want) if *want == got => Ok(()),
            Expected::Sha512(want) => Err(StageError::ChecksumMismatch {
                id: id.into(),
                got,
                want: want.clone(),
            }),
            Expected::Oci(_, _, want) if *want == got => Ok(()),
            Expected::Oci(_, alg, want) => Err(StageError::DigestMismatch {
                id: id.into(),
                got: format!("{alg}:{got}"),
                want: format!("{alg}:{want}"),
            }),
        }
    }
}

/// Failures worth another attempt: the network, not the request.
fn transient(e: &TransportError) -> bool {
    matches!(
        e,
        TransportError::Timeout(_) | TransportError::Transport(..) | TransportError::Body(..)
    )
}

/// Bytes the files directly in `dir` occupy on disk.
pub fn dir_usage(dir: &Path) -> std::io::Result<u64> {
    let mut n = 0;
    for e in fs::read_dir(dir)? {
        let m = e?.metadata()?;
        if m.is_file() {
            n += m.blocks() * 512;
        }
    }
    Ok(n)
}

/// Hashes the first `len` bytes of a file into `ctx`.
fn hash_prefix(path: &Path, len: u64, ctx: &mut digest::Context) -> std::io::Result<()> {
    let mut f = File::open(path)?.take(len);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match f.read(&mut buf)? {
            0 => return Ok(()),
            n => ctx.update(&buf[..n]),
        }
    }
}

/// The staging settings and clients.
#[derive(Debug, Clone)]
pub struct Stager {
    dir: PathBuf,
    max_image_size: u64,
    disk_budget: u64,
    convert_to: Option<DiskFormat>,
    convert_timeout: Duration,
    qemu_img: PathBuf,
    transport: Transport,
}

impl Stager {
    pub fn new(cfg: &FetchConfig) -> Result<Stager, StageError> {
        let transport = Transport::new(
            cfg.ca_file.as_deref(),
            Duration::from_secs(cfg.timeout_secs.max(1)),
            cfg.allow_http,
        )?;
        Ok(Stager {
            dir: cfg.staging_dir.get_ref().clone(),
            max_image_size: cfg.max_image_size,
            disk_budget: cfg.disk_budget,
            convert_to: cfg
                .convert_to
                .as_ref()
                .and_then(|c| DiskFormat::from_name(c.get_ref())),
            convert_timeout: Duration::from_secs(cfg.convert_timeout_secs.max(1)),
            qemu_img: cfg.qemu_img.clone(),
            transport,
        })
    }

    fn path(&self, key: &str, ext: &str) -> PathBuf {
        self.dir.join(format!("{key}.{ext}"))
    }

    fn check_budget(&self, id: &str, need: u64) -> Result<(), StageError> {
        let used = dir_usage(&self.dir).map_err(io(&self.dir))?;
        if used.saturating_add(need) > self.disk_budget {
            return Err(StageError::DiskBudget {
                id: id.into(),
                need,
                used,
                budget: self.disk_budget,
            });
        }
        Ok(())
    }

    /// Removes every staged file of a candidate (after upload, or to
    /// start over).
    pub fn discard(&self, identifier: &str) {
        let key = file_key(identifier);
        for ext in ["part", "img", "disk", "raw", "qcow2", "tmp"] {
            let _ = fs::remove_file(self.path(&key, ext));
        }
    }

    /// Downloads (or reuses), verifies and prepares one candidate. `reg`
    /// is needed for OCI candidates (blob authentication).
    pub async fn stage(
        &self,
        c: &Candidate,
        reg: Option<&Registry>,
    ) -> Result<StagedImage, StageError> {
        let id = c.identifier.as_str();
        let size = c.location.size();
        if size > self.max_image_size {
            return Err(StageError::TooLarge {
                id: id.into(),
                size,
                max: self.max_image_size,
            });
        }
        let expected = Expected::of(c)?;
        let key = file_key(id);
        let img = self.path(&key, "img");
        let reused = self.still_valid(&img, size, &expected)?;
        if !reused {
            let (url, auth) = match &c.location {
                Location::Http { url, .. } => (url.clone(), None),
                Location::Oci {
                    repository, digest, ..
                } => {
                    let reg = reg.ok_or_else(|| StageError::NoRegistry(id.into()))?;
                    reg.blob_request(repository, digest).await?
                }
            };
            let part = self.path(&key, "part");
            self.download(id, &url, auth.as_ref(), &part, size, &expected)
                .await?;
            fs::rename(&part, &img).map_err(io(&img))?;
            if let Ok(d) = File::open(&self.dir) {
                let _ = d.sync_all();
            }
        }
        self.prepare(c, &key, img, reused).await
    }

    /// A `.img` left by an earlier run that still has the right size and
    /// hash.
    fn still_valid(&self, img: &Path, size: u64, e: &Expected) -> Result<bool, StageError> {
        match fs::metadata(img) {
            Ok(m) if m.len() == size => {
                let mut ctx = e.context();
                hash_prefix(img, size, &mut ctx).map_err(io(img))?;
                if e.check("", ctx.finish()).is_ok() {
                    return Ok(true);
                }
                let _ = fs::remove_file(img);
                Ok(false)
            }
            Ok(_) => {
                let _ = fs::remove_file(img);
                Ok(false)
            }
            Err(_) => Ok(false),
        }
    }

    async fn download(
        &self,
        id: &str,
        url: &str,
        auth: Option<&HeaderValue>,
        part: &Path,
        size: u64,
        expected: &Expected,
    ) -> Result<(), StageError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .attempt(id, url, auth, part, size, expected, attempt == 1)
                .await
            {
                Ok(()) => return Ok(()),
                // A cut connection or a silent server: resume.
                Err(StageError::Transport(e)) if attempt < MAX_ATTEMPTS && transient(&e) => {
                    tracing::warn!(image = id, error = %e, attempt, "download interrupted; resuming");
                }
                Err(e) => {
                    if !matches!(e, StageError::Transport(_)) {
                        let _ = fs::remove_file(part);
                    }
                    return Err(e);
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn attempt(
        &self,
        id: &str,
        url: &str,
        auth: Option<&HeaderValue>,
        part: &Path,
        size: u64,
        expected: &Expected,
        first: bool,
    ) -> Result<(), StageError> {
        let mut have = fs::metadata(part).map(|m| m.len()).unwrap_or(0);
        if have > size {
            fs::remove_file(part).map_err(io(part))?;
            have = 0;
        }
        if first {
            // The bytes already in `.part` are on disk and counted.
            self.check_budget(id, size - have)?;
        }
        let mut ctx = expected.context();
        if have > 0 {
            hash_prefix(part, have, &mut ctx).map_err(io(part))?;
        }
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        if have > 0 {
            let r = format!("bytes={have}-");
            h.insert(
                header::RANGE,
                HeaderValue::from_str(&r).map_err(|_| TransportError::Url(url.into()))?,
            );
        }
        let (at, resp) = self.transport.get(url, &h, auth).await?;
        let status = resp.status();
        let mut f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(part)
            .map_err(io(part))?;
        match status {
            StatusCode::OK => {
                // No resume: start over.
                if have > 0 {
                    ctx = expected.context();
                    have = 0;
                }
                f.set_len(0).map_err(io(part))?;
            }
            StatusCode::PARTIAL_CONTENT if have > 0 => {
                let start = resp
                    .headers()
                    .get(header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("bytes "))
                    .and_then(|v| v.split('-').next())
                    .and_then(|v| v.parse::<u64>().ok());
                if start != Some(have) {
                    return Err(StageError::Status {
                        url: format!("{at} (Content-Range does not continue at {have})"),
                        status: 206,
                    });
                }
            }
            StatusCode::RANGE_NOT_SATISFIABLE if have == size => {
                return self.finish(id, f, part, have, size, ctx, expected);
            }
            s @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
                return Err(StageError::Unauthorized {
                    url: at.to_string(),
                    status: s.as_u16(),
                });
            }
            s => {
                return Err(StageError::Status {
                    url: at.to_string(),
                    status: s.as_u16(),
                });
            }
        }
        if let Some(n) = content_length(resp.headers()) {
            if have.saturating_add(n) > size {
                return Err(StageError::SizeExceeded {
                    id: id.into(),
                    size,
                });
            }
        }
        f.seek(SeekFrom::Start(have)).map_err(io(part))?;
        let mut body = resp.into_body();
        while let Some(chunk) = self.transport.chunk(&at, &mut body).await? {
            let n = chunk.len() as u64;
            if have + n > size {
                return Err(StageError::SizeExceeded {
                    id: id.into(),
                    size,
                });
            }
            ctx.update(&chunk);
            if chunk.iter().all(|&b| b == 0) {
                // A hole instead of zeros: sparse images stay sparse.
                f.set_len(have + n).map_err(io(part))?;
                f.seek(SeekFrom::Start(have + n)).map_err(io(part))?;
            } else {
                f.write_all(&chunk).map_err(io(part))?;
            }
            have += n;
        }
        self.finish(id, f, part, have, size, ctx, expected)
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        id: &str,
        f: File,
        part: &Path,
        have: u64,
        size: u64,
        ctx: digest::Context,
        expected: &Expected,
    ) -> Result<(), StageError> {
        if have != size {
            return Err(StageError::SizeMismatch {
                id: id.into(),
                got: have,
                size,
            });
        }
        expected.check(id, ctx.finish())?;
        f.sync_all().map_err(io(part))?;
        Ok(())
    }

    /// Detection, OVA extraction, conversion.
    async fn prepare(
        &self,
        c: &Candidate,
        key: &str,
        img: PathBuf,
        reused: bool,
    ) -> Result<StagedImage, StageError> {
        let id = c.identifier.as_str();
        let downloaded = {
            let p = img.clone();
            tokio::task::spawn_blocking(move || format::detect(&p))
                .await
                .map_err(|e| StageError::Io(id.into(), std::io::Error::other(e)))??
        };
        let declared = c.declared_format.as_deref().and_then(DiskFormat::from_name);
        let mislabelled = declared.is_some_and(|d| d != downloaded);
        if mislabelled {
            tracing::warn!(
                image = id,
                declared = c.declared_format.as_deref().unwrap_or(""),
                found = downloaded.glance(),
                "image format is mislabelled; using the detected one"
            );
        }
        let (mut path, mut fmt) = (img.clone(), downloaded);
        if fmt == DiskFormat::Ova {
            let disk = self.path(key, "disk");
            let entry_size = fs::metadata(&img).map_err(io(&img))?.len();
            self.check_budget(id, entry_size)?;
            let (src, dst) = (img.clone(), disk.clone());
            tokio::task::spawn_blocking(move || {
                format::ova_extract(&src, &dst)?;
                format::detect(&dst)
            })
            .await
            .map_err(|e| StageError::Io(id.into(), std::io::Error::other(e)))?
            .map(|f| fmt = f)
            .inspect_err(|_| {
                let _ = fs::remove_file(&disk);
            })?;
            path = disk;
        }
        let mut converted = false;
        if let Some(target) = self.convert_to.filter(|t| *t != fmt) {
            let info = format::qemu_info(&self.qemu_img, &path, Some(fmt)).await?;
            self.check_budget(id, info.virtual_size)?;
            let out = self.path(key, target.qemu());
            let tmp = self.path(key, "tmp");
            let r = format::convert(
                &self.qemu_img,
                &path,
                fmt,
                &tmp,
                target,
                self.convert_timeout,
            )
            .await;
            if let Err(e) = r {
                let _ = fs::remove_file(&tmp);
                return Err(e.into());
            }
            fs::rename(&tmp, &out).map_err(io(&out))?;
            if path != img {
                let _ = fs::remove_file(&path);
            }
            path = out;
            fmt = target;
            converted = true;
        }
        let size = fs::metadata(&path).map_err(io(&path))?.len();
        Ok(StagedImage {
            path,
            size,
            disk_format: fmt.glance().to_string(),
            container_format: "bare".into(),
            downloaded_format: downloaded,
            declared_format: c.declared_format.clone(),
            mislabelled,
            checksum: c.location.checksum(),
            download: img,
            reused,
            converted,
        })
    }
}
