//! `fedgate accounting ...`: the accounting plugin's one-shot commands.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::problem::{Problem, Problems, Source};
use crate::services::accounting::ams_options::AmsOptions;
use crate::services::accounting::send::{Outcome, Sender};

use crate::services::accounting::validate::{Finding, MessageKind, Report, validate as check};

fn kind_name(k: Option<MessageKind>) -> &'static str {
    match k {
        Some(MessageKind::Cloud) => "cloud v0.4",
        Some(MessageKind::Ip) => "public IP v0.2",
        Some(MessageKind::Accelerator) => "accelerator v0.1",
        Some(MessageKind::Storage) => "StAR",
        None => "unknown",
    }
}

/// `fedgate accounting validate [--json] FILE...`: 0 when every file is
/// acceptable, 1 otherwise (an unreadable file included).
pub(super) fn validate(files: &[PathBuf], json: bool) -> u8 {
    let mut all_valid = true;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for file in files {
        let (kind, report) = match std::fs::read(file) {
            Ok(bytes) => check(&bytes),
            Err(e) => (
                None,
                Report {
                    valid: false,
                    records: 0,
                    errors: vec![Finding {
                        record: None,
                        field: None,
                        reason: format!("cannot read the file: {e}"),
                    }],
                },
            ),
        };
        all_valid &= report.valid;
        let _ = if json {
            let mut v = serde_json::to_value(&report).unwrap_or_default();
            v["file"] = file.display().to_string().into();
            writeln!(out, "{v}")
        } else {
            print_text(&mut out, file, kind, &report)
        };
    }
    u8::from(!all_valid)
}

fn print_text(
    out: &mut impl Write,
    file: &std::path::Path,
    kind: Option<MessageKind>,
    r: &Report,
) -> std::io::Result<()> {
    let verdict = if r.valid { "valid" } else { "INVALID" };
    writeln!(
        out,
        "{}: {verdict}, {} records ({})",
        file.display(),
        r.records,
        kind_name(kind)
    )?;
    for e in &r.errors {
        let at = match (e.record, &e.field) {
            (Some(n), Some(f)) => format!("record {n}, {f}"),
            (Some(n), None) => format!("record {n}"),
            (None, Some(f)) => format!("message, {f}"),
            (None, None) => "message".into(),
        };
        writeln!(out, "  {at}: {}", e.reason)?;
    }
    Ok(())
}

/// `2026-12-03T13:00:00Z`: ISO 8601, UTC.
fn iso_z(secs: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `fedgate accounting identities [--config FILE] [--json] [--user ID]`:
/// what the identities store holds, most recently seen first. Exits 0,
/// 1 when `--user` names a user with no entry, 2 when the configuration
/// or the store cannot be read.
pub(super) fn identities(config: &std::path::Path, json: bool, user: Option<&str>) -> u8 {
    use crate::services::accounting::identities::store::Store;
    let cfg = match crate::config::Config::load(config) {
        Ok(c) => c,
        Err(p) => {
            p.report();
            return 2;
        }
    };
    let Some(section) = cfg.plugins.identities.as_ref() else {
        eprintln!(
            "error: {}: no [plugins.identities] section: identities are not recorded",
            config.display()
        );
        return 2;
    };
    let entries = match Store::open_read_only(section.path()).and_then(|s| s.list(user)) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let _ = if json {
        entries.iter().try_for_each(|e| {
            let v = serde_json::json!({
                "keystone_user_id": e.keystone_user_id,
                "kind": e.kind,
                "global_user_name": e.global_user_name,
                "fqan": e.fqan,
                "attributes": e.attributes,
                "first_seen": iso_z(e.first_seen),
                "last_seen": iso_z(e.last_seen),
            });
            writeln!(out, "{v}")
        })
    } else {
        print_identities(&mut out, &entries)
    };
    u8::from(user.is_some() && entries.is_empty())
}

fn print_identities(
    out: &mut impl Write,
    entries: &[crate::services::accounting::identities::store::Entry],
) -> std::io::Result<()> {
    let header = [
        "KEYSTONE USER ID",
        "KIND",
        "GLOBAL USER NAME",
        "FQAN",
        "FIRST SEEN",
        "LAST SEEN",
        "FQANS / ENTITLEMENTS",
    ];
    let rows: Vec<[String; 7]> = entries
        .iter()
        .map(|e| {
            [
                e.keystone_user_id.clone(),
                e.kind.clone(),
                e.global_user_name.clone(),
                e.fqan.clone().unwrap_or_else(|| "-".into()),
                iso_z(e.first_seen),
                iso_z(e.last_seen),
                e.attributes.join(";"),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |out: &mut dyn Write, cells: &[&str]| -> std::io::Result<()> {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(c);
                s.extend(std::iter::repeat_n(' ', widths[i] - c.chars().count() + 2));
            }
        }
        writeln!(out, "{}", s.trim_end())
    };
    line(out, &header)?;
    for r in &rows {
        let cells: Vec<&str> = r.iter().map(String::as_str).collect();
        line(out, &cells)?;
    }
    Ok(())
}

/// The part of a configuration file `accounting send` reads; the other
/// keys of the file are not its business.
#[derive(serde::Deserialize)]
struct AmsFile {
    plugins: AmsPlugins,
}
#[derive(serde::Deserialize)]
struct AmsPlugins {
    accounting: AmsSection,
}
#[derive(serde::Deserialize)]
struct AmsSection {
    #[serde(default)]
    ams: AmsOptions,
}

/// Reads and checks `[plugins.accounting.ams]` of `path`.
pub(super) fn load_ams(path: &Path) -> Result<AmsOptions, Problems> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Problems::one(Problem::file(path, format!("cannot read: {e}"))))?;
    let src = Source {
        path: path.to_owned(),
        text,
    };
    let file: AmsFile = toml::from_str(&src.text).map_err(|e| {
        let line = e.span().map_or(0, |s| src.line_of(s.start));
        Problems::one(Problem::at(path, line, e.message().to_string()))
    })?;
    let mut p = Problems::default();
    file.plugins.accounting.ams.validate(&src, &mut p);
    p.into_result()?;
    Ok(file.plugins.accounting.ams)
}

/// `fedgate accounting send --ams-config FILE --queue DIR...`: 0 when
/// every queued element was published, 1 otherwise.
pub(super) async fn send(ams_config: &Path, queues: &[PathBuf]) -> u8 {
    let opts = match load_ams(ams_config) {
        Ok(o) => o,
        Err(p) => {
            p.report();
            return 1;
        }
    };
    let mut sender = match Sender::new(&opts) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fedgate accounting send: {e}");
            return 1;
        }
    };
    let report = sender.run(queues).await;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for e in &report.elements {
        let at = e.queue.join(&e.element);
        let _ = match &e.outcome {
            Outcome::Sent { topic, id } => {
                writeln!(out, "{}: sent to {topic} as {id}", at.display())
            }
            Outcome::Rejected(why) => {
                writeln!(out, "{}: REJECTED, moved to rejected/: {why}", at.display())
            }
            Outcome::Failed(why) => writeln!(out, "{}: FAILED, kept: {why}", at.display()),
            Outcome::Busy => writeln!(out, "{}: locked by another sender", at.display()),
        };
    }
    for e in &report.errors {
        let _ = writeln!(out, "error: {e}");
    }
    let _ = writeln!(
        out,
        "{} sent, {} failed, {} rejected",
        report.count(|o| matches!(o, Outcome::Sent { .. })),
        report.count(|o| matches!(o, Outcome::Failed(_))),
        report.count(|o| matches!(o, Outcome::Rejected(_))),
    );
    u8::from(!report.all_sent())
}

#[cfg(test)]
mod tests {
    #[test]
    fn iso_z_is_utc() {
        assert_eq!(super::iso_z(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::iso_z(1_796_302_800), "2026-12-03T13:00:00Z");
    }
}
