//! The real format of a downloaded image, from its bytes (B6): publishers'
//! `hv:format` and annotations are often wrong, and Glance refuses an
//! upload whose data does not match its `disk_format` (415). Also the two
//! transformations staging may need: taking the disk out of an OVA, and
//! `qemu-img convert`.
//!
//! Magic numbers: qcow2 `QFI\xfb` at 0; vmdk `KDMV` at 0 (sparse) or a
//! `# Disk DescriptorFile` text; VDI `<<< ` at 0 and `0xbeda107f` at 0x40;
//! VHDX `vhdxfile` at 0; VHD `conectix` in the 512-byte footer (or its copy
//! at 0); ISO 9660 `CD001` at 0x8001; OVA a tar (`ustar` at 257) holding an
//! `.ovf`; anything else is raw.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

/// Formats staging tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskFormat {
    Raw,
    Qcow2,
    Vmdk,
    Vdi,
    Vhd,
    Vhdx,
    Iso,
    /// A tar with an OVF descriptor; its disk is extracted before upload.
    Ova,
}

impl DiskFormat {
    /// Glance's `disk_format` (an OVA's is its disk's).
    pub fn glance(self) -> &'static str {
        match self {
            DiskFormat::Raw => "raw",
            DiskFormat::Qcow2 => "qcow2",
            DiskFormat::Vmdk => "vmdk",
            DiskFormat::Vdi => "vdi",
            DiskFormat::Vhd => "vhd",
            DiskFormat::Vhdx => "vhdx",
            DiskFormat::Iso => "iso",
            DiskFormat::Ova => "ova",
        }
    }

    /// qemu-img's name for `-f`.
    pub fn qemu(self) -> &'static str {
        match self {
            DiskFormat::Raw | DiskFormat::Iso | DiskFormat::Ova => "raw",
            DiskFormat::Qcow2 => "qcow2",
            DiskFormat::Vmdk => "vmdk",
            DiskFormat::Vdi => "vdi",
            DiskFormat::Vhd => "vpc",
            DiskFormat::Vhdx => "vhdx",
        }
    }

    /// A published format name (`QCOW2`, `ova`, `vpc`...), case-insensitive.
    pub fn from_name(s: &str) -> Option<DiskFormat> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "raw" | "img" => DiskFormat::Raw,
            "qcow2" | "qcow" => DiskFormat::Qcow2,
            "vmdk" => DiskFormat::Vmdk,
            "vdi" => DiskFormat::Vdi,
            "vhd" | "vpc" => DiskFormat::Vhd,
            "vhdx" => DiskFormat::Vhdx,
            "iso" => DiskFormat::Iso,
            "ova" => DiskFormat::Ova,
            _ => return None,
        })
    }
}

/// Why detection, extraction or conversion failed.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("Io: {0}: {1}")]
    Io(String, std::io::Error),
    #[error("OvaNoDisk: {0} holds no disk image")]
    OvaNoDisk(String),
    #[error("OvaAmbiguous: {0} holds several disks and its OVF names none of them")]
    OvaAmbiguous(String),
    #[error("QemuImgMissing: cannot run qemu-img: {0}")]
    QemuMissing(std::io::Error),
    #[error("QemuImgFailed: qemu-img {0}: {1}")]
    QemuFailed(String, String),
    #[error("ConvertTimeout: qemu-img convert ran longer than {0:?}")]
    Timeout(Duration),
    #[error("ConvertedWrong: qemu-img info reports {found}, expected {expected}")]
    Wrong { expected: String, found: String },
}

impl FormatError {
    /// The refusal's name.
    pub fn code(&self) -> &'static str {
        match self {
            FormatError::Io(..) => "Io",
            FormatError::OvaNoDisk(_) => "OvaNoDisk",
            FormatError::OvaAmbiguous(_) => "OvaAmbiguous",
            FormatError::QemuMissing(_) => "QemuImgMissing",
            FormatError::QemuFailed(..) => "QemuImgFailed",
            FormatError::Timeout(_) => "ConvertTimeout",
            FormatError::Wrong { .. } => "ConvertedWrong",
        }
    }
}

fn io(p: &Path) -> impl FnOnce(std::io::Error) -> FormatError + '_ {
    move |e| FormatError::Io(p.display().to_string(), e)
}

/// Reads up to `buf.len()` bytes at `off`; returns how many were read.
fn read_at(f: &mut File, off: u64, buf: &mut [u8]) -> std::io::Result<usize> {
    f.seek(SeekFrom::Start(off))?;
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// The format of the head (first 0x8006 bytes) and the last 512 bytes of a
/// file, without the OVA check. Pure, for the fuzz target.
pub fn detect_bytes(head: &[u8], tail: &[u8]) -> DiskFormat {
    let at = |off: usize, magic: &[u8]| head.get(off..off + magic.len()) == Some(magic);
    if at(0, b"QFI\xfb") {
        DiskFormat::Qcow2
    } else if at(0, b"KDMV") || at(0, b"# Disk DescriptorFile") {
        DiskFormat::Vmdk
    } else if at(0, b"<<< ") && at(0x40, &[0x7f, 0x10, 0xda, 0xbe]) {
        DiskFormat::Vdi
    } else if at(0, b"vhdxfile") {
        DiskFormat::Vhdx
    } else if at(0, b"conectix") || tail.starts_with(b"conectix") {
        DiskFormat::Vhd
    } else if at(0x8001, b"CD001") {
        DiskFormat::Iso
    } else {
        DiskFormat::Raw
    }
}

fn is_disk_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    !(n.ends_with(".ovf")
        || n.ends_with(".mf")
        || n.ends_with(".cert")
        || n.ends_with(".cat")
        || n.ends_with('/'))
}

/// The real format of the file at `path`.
pub fn detect(path: &Path) -> Result<DiskFormat, FormatError> {
    let mut f = File::open(path).map_err(io(path))?;
    let len = f.metadata().map_err(io(path))?.len();
    let mut head = vec![0u8; 0x8006];
    let n = read_at(&mut f, 0, &mut head).map_err(io(path))?;
    head.truncate(n);
    let mut tail = [0u8; 512];
    let t = if len >= 512 {
        read_at(&mut f, len - 512, &mut tail).map_err(io(path))?
    } else {
        0
    };
    if head.get(257..262) == Some(b"ustar") && ova_names(path)?.0.is_some() {
        return Ok(DiskFormat::Ova);
    }
    Ok(detect_bytes(&head, &tail[..t]))
}

/// An OVA's `.ovf` entry (name and first MiB of text), if any, and its
/// other regular entries' names, in archive order.
type OvaEntries = (Option<(String, String)>, Vec<String>);

fn ova_names(path: &Path) -> Result<OvaEntries, FormatError> {
    let f = File::open(path).map_err(io(path))?;
    let mut a = tar::Archive::new(f);
    let mut ovf = None;
    let mut disks = Vec::new();
    let entries = match a.entries_with_seek() {
        Ok(e) => e,
        Err(_) => return Ok((None, disks)),
    };
    for e in entries {
        // A broken tar is not an OVA: the caller treats it as raw.
        let Ok(mut e) = e else {
            return Ok((None, Vec::new()));
        };
        if !e.header().entry_type().is_file() {
            continue;
        }
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        if name.to_ascii_lowercase().ends_with(".ovf") && ovf.is_none() {
            let mut text = String::new();
            let _ = (&mut e).take(1 << 20).read_to_string(&mut text);
            ovf = Some((name, text));
        } else if is_disk_name(&name) {
            disks.push(name);
        }
    }
    Ok((ovf, disks))
}

/// Copies the disk an OVA's OVF references to `out`, streaming; returns
/// the entry's name. With one disk entry that one is taken; with several,
/// the first the OVF names in an `href`.
pub fn ova_extract(ova: &Path, out: &Path) -> Result<String, FormatError> {
    let shown = ova.display().to_string();
    let (ovf, disks) = ova_names(ova)?;
    let ovf_text = ovf.map(|(_, t)| t).unwrap_or_default();
    let chosen = match disks.as_slice() {
        [] => return Err(FormatError::OvaNoDisk(shown)),
        [one] => one.clone(),
        many => many
            .iter()
            .find(|d| {
                let base = d.rsplit('/').next().unwrap_or(d);
                ovf_text.contains(&format!("href=\"{base}\""))
            })
            .cloned()
            .ok_or(FormatError::OvaAmbiguous(shown))?,
    };
    let mut a = tar::Archive::new(File::open(ova).map_err(io(ova))?);
    for e in a.entries_with_seek().map_err(io(ova))? {
        let mut e = e.map_err(io(ova))?;
        if String::from_utf8_lossy(&e.path_bytes()) == chosen.as_str() {
            let mut w = File::create(out).map_err(io(out))?;
            std::io::copy(&mut e, &mut w).map_err(io(out))?;
            w.sync_all().map_err(io(out))?;
            return Ok(chosen);
        }
    }
    Err(FormatError::OvaNoDisk(ova.display().to_string()))
}

/// What `qemu-img info --output=json` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuInfo {
    pub format: String,
    pub virtual_size: u64,
}

async fn run_qemu(qemu: &Path, args: &[&OsStr], limit: Duration) -> Result<Vec<u8>, FormatError> {
    let what = args
        .first()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default();
    let child = tokio::process::Command::new(qemu)
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(limit, child)
        .await
        .map_err(|_| FormatError::Timeout(limit))?
        .map_err(FormatError::QemuMissing)?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(FormatError::QemuFailed(
            what,
            err.trim().chars().take(400).collect(),
        ));
    }
    Ok(out.stdout)
}

/// `qemu-img info --output=json -f <fmt>` of a file.
pub async fn qemu_info(
    qemu: &Path,
    path: &Path,
    fmt: Option<DiskFormat>,
) -> Result<QemuInfo, FormatError> {
    let mut args: Vec<&OsStr> = vec![OsStr::new("info"), OsStr::new("--output=json")];
    if let Some(f) = fmt {
        args.extend([OsStr::new("-f"), OsStr::new(f.qemu())]);
    }
    args.push(path.as_os_str());
    let out = run_qemu(qemu, &args, Duration::from_secs(60)).await?;
    let v: serde_json::Value = serde_json::from_slice(&out)
        .map_err(|e| FormatError::QemuFailed("info".into(), e.to_string()))?;
    Ok(QemuInfo {
        format: v["format"].as_str().unwrap_or("").to_string(),
        virtual_size: v["virtual-size"].as_u64().unwrap_or(0),
    })
}

/// `qemu-img convert -f <from> -O <to> src dst`, then checks with
/// `qemu-img info` that `dst` is `to`.
pub async fn convert(
    qemu: &Path,
    src: &Path,
    from: DiskFormat,
    dst: &Path,
    to: DiskFormat,
    limit: Duration,
) -> Result<QemuInfo, FormatError> {
    run_qemu(
        qemu,
        &[
            OsStr::new("convert"),
            OsStr::new("-f"),
            OsStr::new(from.qemu()),
            OsStr::new("-O"),
            OsStr::new(to.qemu()),
            src.as_os_str(),
            dst.as_os_str(),
        ],
        limit,
    )
    .await?;
    let info = qemu_info(qemu, dst, None).await?;
    if info.format != to.qemu() {
        return Err(FormatError::Wrong {
            expected: to.qemu().into(),
            found: info.format,
        });
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic() {
        assert_eq!(detect_bytes(b"QFI\xfb\0\0\0\x03", &[]), DiskFormat::Qcow2);
        assert_eq!(detect_bytes(b"KDMV\x01", &[]), DiskFormat::Vmdk);
        assert_eq!(detect_bytes(b"vhdxfile", &[]), DiskFormat::Vhdx);
        assert_eq!(detect_bytes(b"\0\0", b"conectix\0"), DiskFormat::Vhd);
        let mut iso = vec![0u8; 0x8006];
        iso[0x8001..0x8006].copy_from_slice(b"CD001");
        assert_eq!(detect_bytes(&iso, &[]), DiskFormat::Iso);
        assert_eq!(detect_bytes(b"QFI", &[]), DiskFormat::Raw);
        assert_eq!(detect_bytes(&[], &[]), DiskFormat::Raw);
        assert_eq!(DiskFormat::from_name(" QCOW2 "), Some(DiskFormat::Qcow2));
        assert_eq!(DiskFormat::from_name("tgz"), None);
    }
}
