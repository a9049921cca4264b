//! `fedgate accounting ...`: the accounting plugin's one-shot commands.

use std::io::Write;
use std::path::PathBuf;

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
