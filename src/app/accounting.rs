//! `fedgate accounting ...`: the accounting plugin's one-shot commands.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::problem::{Problem, Problems, Source};
use crate::services::accounting::ams_options::AmsOptions;
use crate::services::accounting::caso_conf;
use crate::services::accounting::config::{AccountingConfig, Settings};
use crate::services::accounting::dirq::Queue;
use crate::services::accounting::plugin::OpenStackSource;
use crate::services::accounting::run::{ProjectStatus, RunOptions, run};
use crate::services::accounting::send::{Outcome, Sender};
use crate::services::accounting::source::Usage;
use crate::services::accounting::state;
use crate::shutdown::Shutdown;

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

/// `[plugins.accounting]` of a configuration file, checked, and what it
/// resolves to; problems are printed.
fn load_section(path: &Path) -> Option<(AccountingConfig, Settings)> {
    let cfg = match Config::load(path) {
        Ok(c) => c,
        Err(p) => {
            p.report();
            return None;
        }
    };
    let Some(section) = cfg.plugins.accounting() else {
        eprintln!("error: {}: no [plugins.accounting] section", path.display());
        return None;
    };
    let mut p = Problems::default();
    section.validate(&cfg.source, &mut p);
    if !p.is_empty() {
        p.report();
        return None;
    }
    match section.settings() {
        Ok(s) => Some((section, s)),
        Err(e) => {
            eprintln!("error: {}: {e}", path.display());
            None
        }
    }
}

/// Pending elements of a queue; none when it does not exist yet.
fn pending(path: &Path) -> Result<usize, String> {
    if !path.exists() {
        return Ok(0);
    }
    Queue::open(path)
        .and_then(|q| q.elements())
        .map(|e| e.len())
        .map_err(|e| e.to_string())
}

/// `fedgate accounting status [--json]`: per project its lastrun and VO,
/// per record type its queue and pending messages. 0, or 2 when the
/// configuration or the spool cannot be read.
pub(super) fn status(config: &Path, json: bool) -> u8 {
    let Some((_, s)) = load_section(config) else {
        return 2;
    };
    let runs = match state::lastruns(&s.spooldir) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let mut projects: BTreeMap<String, Option<Result<i64, String>>> = s
        .extract
        .projects
        .iter()
        .map(|p| (p.clone(), None))
        .collect();
    for (id, t) in runs {
        projects.insert(id, Some(t.map_err(|e| e.to_string())));
    }
    let vo = |p: &str| s.extract.vo_mapping.get(p).cloned();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut queues = Vec::new();
    for (t, path) in &s.queues {
        queues.push((t.as_str(), path, pending(path)));
    }
    if json {
        let v = serde_json::json!({
            "spooldir": s.spooldir,
            "projects": projects.iter().map(|(id, t)| serde_json::json!({
                "project": id,
                "vo": vo(id),
                "lastrun": t.as_ref().and_then(|t| t.as_ref().ok()).map(|t| state::format_lastrun(*t)),
                "lastrun_unix": t.as_ref().and_then(|t| t.as_ref().ok()),
                "error": t.as_ref().and_then(|t| t.as_ref().err()),
            })).collect::<Vec<_>>(),
            "queues": queues.iter().map(|(t, p, n)| serde_json::json!({
                "type": t,
                "path": p,
                "pending": n.as_ref().ok(),
                "error": n.as_ref().err(),
            })).collect::<Vec<_>>(),
        });
        let _ = writeln!(out, "{v}");
        return 0;
    }
    let _ = writeln!(out, "spool {}", s.spooldir.display());
    for (id, t) in &projects {
        let when = match t {
            None => "never run".to_string(),
            Some(Ok(t)) => format!("lastrun {}", state::format_lastrun(*t)),
            Some(Err(e)) => format!("lastrun UNREADABLE: {e}"),
        };
        let vo = vo(id).unwrap_or_else(|| "VO from Keystone".into());
        let _ = writeln!(out, "project {id}: {when} ({vo})");
    }
    for (t, p, n) in &queues {
        let n = match n {
            Ok(n) => format!("{n} pending"),
            Err(e) => format!("UNREADABLE: {e}"),
        };
        let _ = writeln!(out, "queue {t} {}: {n}", p.display());
    }
    0
}

/// `fedgate accounting import-caso caso.conf [voms.json]`: the TOML on
/// stdout, what was not translated on stderr. 0 when everything was
/// translated, 1 when something was left out, 2 when the file cannot be.
pub(super) fn import_caso(caso_conf: &Path, voms_json: Option<&Path>) -> u8 {
    let read =
        |p: &Path| std::fs::read_to_string(p).map_err(|e| eprintln!("error: {}: {e}", p.display()));
    let Ok(text) = read(caso_conf) else { return 2 };
    let voms = match voms_json.map(read).transpose() {
        Ok(v) => v,
        Err(()) => return 2,
    };
    let imported =
        caso_conf::parse_ini(&text).and_then(|ini| caso_conf::translate(&ini, voms.as_deref()));
    match imported {
        Ok(i) => {
            print!("{}", i.toml);
            for s in &i.skipped {
                eprintln!(
                    "{}:{}: not translated: {}: {}",
                    caso_conf.display(),
                    s.line,
                    s.option,
                    s.reason
                );
            }
            u8::from(!i.skipped.is_empty())
        }
        Err(e) => {
            eprintln!("error: {}: {e}", caso_conf.display());
            2
        }
    }
}

/// `fedgate accounting extract`'s arguments.
pub(super) struct ExtractArgs {
    pub config: PathBuf,
    pub from: Option<String>,
    pub to: Option<String>,
    pub projects: Vec<String>,
    pub dry_run: bool,
    pub json: bool,
}

/// One record as a JSON object, with its type.
fn records_json(usage: &Usage) -> Vec<serde_json::Value> {
    use serde_json::json;
    let mut out = Vec::new();
    for r in &usage.cloud {
        out.push(
            json!({"type": "cloud", "VMUUID": r.vm_uuid, "SiteName": r.site_name,
            "CloudComputeService": r.cloud_compute_service, "CloudType": r.cloud_type,
            "MachineName": r.machine_name, "LocalUserId": r.local_user_id,
            "LocalGroupId": r.local_group_id, "GlobalUserName": r.global_user_name,
            "FQAN": r.fqan, "Status": r.status.as_str(), "StartTime": r.start_time,
            "EndTime": r.end_time, "WallDuration": r.wall_duration, "CpuDuration": r.cpu_duration,
            "CpuCount": r.cpu_count, "Memory": r.memory, "Disk": r.disk,
            "PublicIPCount": r.public_ip_count, "BenchmarkType": r.benchmark_type,
            "Benchmark": r.benchmark, "ImageId": r.image_id}),
        );
    }
    for r in &usage.ip {
        out.push(
            json!({"type": "ip", "SiteName": r.site_name, "CloudType": r.cloud_type,
            "CloudComputeService": r.cloud_compute_service, "uuid": r.uuid,
            "LocalGroup": r.local_group, "FQAN": r.fqan, "IPVersion": r.ip_version,
            "IPCount": r.ip_count, "MeasurementTime": r.measurement_time}),
        );
    }
    for r in &usage.accelerator {
        out.push(
            json!({"type": "accelerator", "MeasurementMonth": r.measurement_month,
            "MeasurementYear": r.measurement_year, "AssociatedRecord": r.associated_record,
            "GlobalUserName": r.global_user_name, "FQAN": r.fqan, "SiteName": r.site_name,
            "CloudComputeService": r.cloud_compute_service, "CloudType": r.cloud_type,
            "Count": r.count, "AvailableDuration": r.available_duration,
            "ActiveDuration": r.active_duration, "Type": r.kind, "Model": r.model}),
        );
    }
    for r in &usage.storage {
        out.push(json!({"type": "storage", "RecordId": r.record_id,
            "CreateTime": r.create_time.0, "StorageSystem": r.storage_system, "Site": r.site,
            "LocalUser": r.local_user, "LocalGroup": r.local_group,
            "UserIdentity": r.user_identity, "Group": r.group, "StartTime": r.start_time,
            "EndTime": r.end_time, "ResourceCapacityUsed": r.capacity_used}));
    }
    out
}

/// `fedgate accounting extract`: 0 when every project succeeded, 1 when
/// one failed, 2 when nothing could run.
pub(super) async fn extract(args: &ExtractArgs) -> u8 {
    let Some((_, mut settings)) = load_section(&args.config) else {
        return 2;
    };
    let time = |name: &str, v: &Option<String>| -> Result<Option<i64>, ()> {
        v.as_deref()
            .map(|t| state::parse_time(t).map_err(|e| eprintln!("error: --{name} {t:?}: {e}")))
            .transpose()
    };
    let (Ok(from), Ok(to)) = (time("from", &args.from), time("to", &args.to)) else {
        return 2;
    };
    if !args.projects.is_empty() {
        settings.extract.projects = args.projects.clone();
        settings.extract.project_tag = None;
    }
    let source = match OpenStackSource::connect(&settings).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let opts = RunOptions {
        from,
        to,
        only: args.projects.clone(),
        dry_run: args.dry_run,
        keep: true,
    };
    let summary = match run(&settings, &source, &opts, None, &Shutdown::new()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for p in &summary.projects {
        if args.json {
            for mut r in p.usage.as_ref().map(records_json).unwrap_or_default() {
                r["project"] = p.project.id.clone().into();
                let _ = writeln!(out, "{r}");
            }
        } else {
            for (_, m) in &p.rendered {
                let _ = out.write_all(m.as_bytes());
                if !m.ends_with('\n') {
                    let _ = writeln!(out);
                }
            }
        }
        let window = p.window.map_or("-".to_string(), |w| {
            format!(
                "{} .. {}",
                state::format_lastrun(w.from),
                state::format_lastrun(w.to)
            )
        });
        let records: Vec<String> = p
            .records
            .iter()
            .map(|(t, n)| format!("{n} {}", t.as_str()))
            .collect();
        let what = match &p.status {
            ProjectStatus::Ok { advanced: true } => "queued, lastrun advanced".to_string(),
            ProjectStatus::Ok { advanced: false } if args.dry_run => "dry run".to_string(),
            ProjectStatus::Ok { advanced: false } => "queued, lastrun kept".to_string(),
            ProjectStatus::Skipped(r) => format!("skipped: {r}"),
            ProjectStatus::Failed(r) => format!("FAILED: {r}"),
        };
        eprintln!(
            "project {} ({}): window {window}: records [{}]: {what}",
            p.project.id,
            p.project.vo.as_deref().unwrap_or("no VO"),
            records.join(", ")
        );
    }
    u8::from(!summary.failures().is_empty() || summary.stopped)
}

/// `2026-12-03T13:00:00Z`: ISO 8601, UTC.
fn iso_z(secs: i64) -> String {
    let mut s = String::with_capacity(20);
    let _ = crate::logging::seconds_text(secs, &mut s);
    s.push('Z');
    s
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
