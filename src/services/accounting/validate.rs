//! The acceptance rules of the APEL repository's loader, applied to one
//! message before it is queued or by `fedgate accounting validate`.
//!
//! Dispatch is by the first character, as the loader does: `<` is StAR XML
//! (recognised by the namespace of its root element), `{` is a JSON
//! message (public IP v0.2, accelerator v0.1), anything else must start
//! with the header line `APEL-cloud-message: v0.4`.
//!
//! Cloud records (APEL cloud message v0.4): records are separated by `%%`
//! lines; each line is `Key: value`, split at the first colon and trimmed;
//! a line without a colon or an unknown key rejects the record. `VMUUID`
//! and `SiteName` are mandatory; `none`, `null` and the empty string (any
//! case) are null; integer fields take no decimals, `CpuCount` and
//! `Benchmark` are floats, times are Unix seconds.
//!
//! JSON records follow the schemas of the public IP v0.2 and accelerator
//! v0.1 messages (apel/apel pull requests 226 and 459), relaxed where cASO's
//! accepted output differs: an IP record may omit `LocalUser` and
//! `GlobalUserName` and carry cASO's `uuid`.
//!
//! StAR records (EMI StAR 1.0) need `RecordIdentity` with `recordId` and
//! `createTime`, `StorageSystem`, `StartTime`, `EndTime` (ISO 8601) and an
//! integer `ResourceCapacityUsed`.
//!
//! Every message must be ASCII: `ssmsend` refuses any other byte.

use serde::Serialize;
use serde_json::Value;

use super::wire::{ACCELERATOR_TYPE, CLOUD_HEADER, IP_TYPE, STAR_NS};

/// One reason a record, or the whole message, is refused.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// 1-based record number; `None` for the message as a whole.
    pub record: Option<usize>,
    pub field: Option<String>,
    pub reason: String,
}

/// The verdict on one message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub valid: bool,
    pub records: usize,
    pub errors: Vec<Finding>,
}

/// The message types the loader knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Cloud,
    Ip,
    Accelerator,
    Storage,
}

struct Ctx {
    records: usize,
    errors: Vec<Finding>,
}

impl Ctx {
    fn err(&mut self, record: Option<usize>, field: Option<&str>, reason: impl Into<String>) {
        self.errors.push(Finding {
            record,
            field: field.map(str::to_owned),
            reason: reason.into(),
        });
    }
}

/// Checks one message; never panics, whatever the bytes.
pub fn validate(msg: &[u8]) -> (Option<MessageKind>, Report) {
    let mut cx = Ctx {
        records: 0,
        errors: Vec::new(),
    };
    if let Some(pos) = msg.iter().position(|b| !b.is_ascii()) {
        cx.err(
            None,
            None,
            format!(
                "byte 0x{:02x} at offset {pos} is not ASCII; ssmsend refuses the message",
                msg[pos]
            ),
        );
    }
    let text = String::from_utf8_lossy(msg);
    let body = text.trim_start();
    let kind = match body.as_bytes().first() {
        Some(b'<') => {
            storage(body, &mut cx);
            Some(MessageKind::Storage)
        }
        Some(b'{') => json(body, &mut cx),
        Some(_) => {
            cloud(body, &mut cx);
            Some(MessageKind::Cloud)
        }
        None => {
            cx.err(None, None, "empty message");
            None
        }
    };
    if cx.errors.is_empty() && cx.records == 0 {
        cx.err(None, None, "the message holds no record");
    }
    (
        kind,
        Report {
            valid: cx.errors.is_empty(),
            records: cx.records,
            errors: cx.errors,
        },
    )
}

/// Keys of the cloud record v0.4 and how their values parse.
#[derive(Clone, Copy, PartialEq)]
enum Ty {
    Text,
    Int,
    Float,
    /// Accepted and ignored by the loader.
    Ignored,
}

fn cloud_key(k: &str) -> Option<Ty> {
    Some(match k {
        "VMUUID"
        | "SiteName"
        | "CloudComputeService"
        | "MachineName"
        | "LocalUserId"
        | "LocalGroupId"
        | "GlobalUserName"
        | "FQAN"
        | "Status"
        | "NetworkType"
        | "BenchmarkType"
        | "StorageRecordId"
        | "ImageId"
        | "CloudType" => Ty::Text,
        "RecordCreateTime" | "StartTime" | "EndTime" | "SuspendDuration" | "WallDuration"
        | "CpuDuration" | "NetworkInbound" | "NetworkOutbound" | "PublicIPCount" | "Memory"
        | "Disk" => Ty::Int,
        "CpuCount" | "Benchmark" => Ty::Float,
        "UpdateTime" | "MeasurementTime" | "MeasurementMonth" | "MeasurementYear" => Ty::Ignored,
        _ => return None,
    })
}

fn is_null(v: &str) -> bool {
    v.is_empty() || v.eq_ignore_ascii_case("none") || v.eq_ignore_ascii_case("null")
}

/// An integer as Python's `int()` reads it (sign, digits, no decimals).
fn parse_int(v: &str) -> bool {
    let d = v.strip_prefix(['+', '-']).unwrap_or(v);
    !d.is_empty() && d.len() <= 18 && d.bytes().all(|b| b.is_ascii_digit())
}

fn parse_float(v: &str) -> bool {
    v.parse::<f64>().is_ok()
}

fn cloud(body: &str, cx: &mut Ctx) {
    let mut lines = body.lines();
    let header = lines.next().unwrap_or("").trim();
    if header != CLOUD_HEADER {
        let reason = match header.split_once(':') {
            Some((h, v)) if h.trim() == "APEL-cloud-message" => {
                format!("unsupported cloud message version {:?}", v.trim())
            }
            _ => format!("unknown message header {:?}", truncate(header)),
        };
        cx.err(None, None, reason);
        return;
    }
    let mut record: Vec<&str> = Vec::new();
    let flush = |record: &mut Vec<&str>, cx: &mut Ctx| {
        if record.iter().any(|l| !l.trim().is_empty()) {
            cx.records += 1;
            cloud_record(record, cx.records, cx);
        }
        record.clear();
    };
    for line in lines {
        if line.trim() == "%%" {
            flush(&mut record, cx);
        } else {
            record.push(line);
        }
    }
    flush(&mut record, cx);
}

fn cloud_record(lines: &[&str], n: usize, cx: &mut Ctx) {
    let mut seen = std::collections::BTreeMap::new();
    for line in lines {
        if line.trim().is_empty() {
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            cx.err(
                Some(n),
                None,
                format!("line without a colon: {:?}", truncate(line)),
            );
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        let Some(ty) = cloud_key(k) else {
            cx.err(Some(n), Some(k), "unknown key");
            continue;
        };
        // The loader keeps the last value of a repeated key.
        seen.insert(k, v);
        if is_null(v) {
            continue;
        }
        match ty {
            Ty::Int if !parse_int(v) => cx.err(
                Some(n),
                Some(k),
                format!("{:?} is not an integer", truncate(v)),
            ),
            Ty::Float if !parse_float(v) => cx.err(
                Some(n),
                Some(k),
                format!("{:?} is not a number", truncate(v)),
            ),
            _ => {}
        }
    }
    for k in ["VMUUID", "SiteName"] {
        if seen.get(k).is_none_or(|v| is_null(v)) {
            cx.err(Some(n), Some(k), "mandatory field missing or null");
        }
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

/// What a JSON field must hold.
#[derive(Clone, Copy)]
enum JTy {
    Str,
    Int,
    Num,
    Month,
    IpVersion,
    AccType,
}

struct Field {
    name: &'static str,
    ty: JTy,
    required: bool,
}

const fn f(name: &'static str, ty: JTy, required: bool) -> Field {
    Field { name, ty, required }
}

const IP_FIELDS: &[Field] = &[
    f("MeasurementTime", JTy::Int, true),
    f("SiteName", JTy::Str, true),
    f("CloudComputeService", JTy::Str, false),
    f("CloudType", JTy::Str, false),
    f("LocalUser", JTy::Str, false),
    f("LocalGroup", JTy::Str, true),
    f("GlobalUserName", JTy::Str, false),
    f("FQAN", JTy::Str, true),
    f("IPVersion", JTy::IpVersion, true),
    f("IPCount", JTy::Int, true),
    f("uuid", JTy::Str, false),
];

const ACCELERATOR_FIELDS: &[Field] = &[
    f("MeasurementMonth", JTy::Month, true),
    f("MeasurementYear", JTy::Int, true),
    f("AssociatedRecordType", JTy::Str, true),
    f("AssociatedRecord", JTy::Str, true),
    f("GlobalUserName", JTy::Str, false),
    f("FQAN", JTy::Str, true),
    f("SiteName", JTy::Str, true),
    f("Count", JTy::Num, true),
    f("Cores", JTy::Num, false),
    f("ActiveDuration", JTy::Int, false),
    f("AvailableDuration", JTy::Int, true),
    f("BenchmarkType", JTy::Str, false),
    f("Benchmark", JTy::Num, false),
    f("Type", JTy::AccType, true),
    f("Model", JTy::Str, false),
    f("CloudComputeService", JTy::Str, false),
    f("CloudType", JTy::Str, false),
];

/// The JSON schemas cap a message at 1000 records.
const MAX_JSON_RECORDS: usize = 1000;

fn json(body: &str, cx: &mut Ctx) -> Option<MessageKind> {
    let v: Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(e) => {
            cx.err(None, None, format!("not JSON: {e}"));
            return None;
        }
    };
    let Some(top) = v.as_object() else {
        cx.err(None, None, "the message is not a JSON object");
        return None;
    };
    let (kind, fields, versions): (_, _, &[&str]) = match top.get("Type").and_then(Value::as_str) {
        Some(IP_TYPE) => (MessageKind::Ip, IP_FIELDS, &["0.2", "v0.2"]),
        Some(ACCELERATOR_TYPE) => (MessageKind::Accelerator, ACCELERATOR_FIELDS, &["0.1"]),
        Some(t) => {
            cx.err(
                None,
                Some("Type"),
                format!("unknown message type {:?}", truncate(t)),
            );
            return None;
        }
        None => {
            cx.err(None, Some("Type"), "missing or not a string");
            return None;
        }
    };
    match top.get("Version").and_then(Value::as_str) {
        Some(v) if versions.contains(&v) => {}
        Some(v) => cx.err(
            None,
            Some("Version"),
            format!("unsupported version {:?}", truncate(v)),
        ),
        None => cx.err(None, Some("Version"), "missing or not a string"),
    }
    for k in top.keys() {
        if !["Type", "Version", "UsageRecords"].contains(&k.as_str()) {
            cx.err(None, Some(k), "unknown key");
        }
    }
    let Some(recs) = top.get("UsageRecords").and_then(Value::as_array) else {
        cx.err(None, Some("UsageRecords"), "missing or not an array");
        return Some(kind);
    };
    if recs.is_empty() || recs.len() > MAX_JSON_RECORDS {
        cx.err(
            None,
            Some("UsageRecords"),
            format!(
                "{} records; a message holds 1 to {MAX_JSON_RECORDS}",
                recs.len()
            ),
        );
    }
    for (i, r) in recs.iter().enumerate() {
        cx.records += 1;
        json_record(r, fields, i + 1, cx);
    }
    Some(kind)
}

fn json_record(r: &Value, fields: &[Field], n: usize, cx: &mut Ctx) {
    let Some(obj) = r.as_object() else {
        cx.err(Some(n), None, "the record is not a JSON object");
        return;
    };
    for k in obj.keys() {
        if !fields.iter().any(|f| f.name == k) {
            cx.err(Some(n), Some(k), "unknown key");
        }
    }
    for fd in fields {
        let v = match obj.get(fd.name) {
            None | Some(Value::Null) => {
                if fd.required {
                    cx.err(Some(n), Some(fd.name), "mandatory field missing or null");
                }
                continue;
            }
            Some(v) => v,
        };
        let problem = match fd.ty {
            JTy::Str => (!v.is_string()).then(|| "not a string".to_string()),
            JTy::Int => match v.as_i64() {
                Some(i) if i >= 0 => None,
                _ => Some(format!("{v} is not a non-negative integer")),
            },
            JTy::Num => match v.as_f64() {
                Some(x) if x >= 0.0 => None,
                _ => Some(format!("{v} is not a non-negative number")),
            },
            JTy::Month => match v.as_i64() {
                Some(1..=12) => None,
                _ => Some(format!("{v} is not a month (1 to 12)")),
            },
            JTy::IpVersion => match v.as_i64() {
                Some(4 | 6) => None,
                _ => Some(format!("{v} is not 4 or 6")),
            },
            JTy::AccType => match v.as_str() {
                Some("GPU" | "FPGA" | "Other") => None,
                _ => Some(format!("{v} is not GPU, FPGA or Other")),
            },
        };
        if let Some(p) = problem {
            cx.err(Some(n), Some(fd.name), truncate(&p));
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS`, optional fraction, optional `Z` or `±HH:MM`
/// (RFC 3339's profile of ISO 8601, also without a zone).
pub fn parse_iso8601(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let num = |r: std::ops::Range<usize>| -> u32 { s[r].parse().unwrap_or(99) };
    if b.len() < 19
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || !matches!(b[10], b'T' | b't' | b' ')
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    if !(1..=12).contains(&num(5..7))
        || !(1..=31).contains(&num(8..10))
        || num(11..13) > 23
        || num(14..16) > 59
        || num(17..19) > 60
    {
        return false;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    match rest.as_bytes() {
        [] | [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit()),
        _ => false,
    }
}

/// StAR nests four levels deep. The XML parser recurses per level, so
/// deeper input is refused before it can exhaust the stack.
const MAX_XML_DEPTH: usize = 32;

/// An upper bound of the element nesting of `xml`, stopping at `limit`.
fn xml_depth_exceeds(xml: &str, limit: usize) -> bool {
    let b = xml.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(off) = b[i..].iter().position(|&c| c == b'<') {
        i += off + 1;
        match b.get(i) {
            Some(b'/') => depth = depth.saturating_sub(1),
            Some(b'!' | b'?') | None => {}
            Some(_) => {
                let end = b[i..].iter().position(|&c| c == b'>').map(|e| i + e);
                if end.is_none_or(|e| b[e - 1] != b'/') {
                    depth += 1;
                    if depth > limit {
                        return true;
                    }
                }
            }
        }
    }
    false
}

fn storage(body: &str, cx: &mut Ctx) {
    if xml_depth_exceeds(body, MAX_XML_DEPTH) {
        cx.err(
            None,
            None,
            format!("XML nested deeper than {MAX_XML_DEPTH} elements"),
        );
        return;
    }
    let doc = match roxmltree::Document::parse(body) {
        Ok(d) => d,
        Err(e) => {
            cx.err(None, None, format!("not XML: {e}"));
            return;
        }
    };
    let root = doc.root_element();
    if root.tag_name().namespace() != Some(STAR_NS) {
        cx.err(
            None,
            None,
            format!(
                "root element {:?} is not in the StAR namespace {STAR_NS}",
                root.tag_name().name()
            ),
        );
        return;
    }
    let is = |n: &roxmltree::Node<'_, '_>, name: &str| {
        n.is_element() && n.tag_name().name() == name && n.tag_name().namespace() == Some(STAR_NS)
    };
    let records: Vec<_> = match root.tag_name().name() {
        "StorageUsageRecords" => root
            .children()
            .filter(|c| is(c, "StorageUsageRecord"))
            .collect(),
        "StorageUsageRecord" => vec![root],
        other => {
            cx.err(None, None, format!("unknown StAR root element {other:?}"));
            return;
        }
    };
    for r in records {
        cx.records += 1;
        let n = cx.records;
        let child = |name: &str| r.children().find(|c| is(c, name));
        let attr = |node: roxmltree::Node<'_, '_>, name: &str| {
            node.attribute((STAR_NS, name))
                .or_else(|| node.attribute(name))
                .map(str::to_owned)
        };
        match child("RecordIdentity") {
            None => cx.err(Some(n), Some("RecordIdentity"), "mandatory element missing"),
            Some(id) => {
                if attr(id, "recordId").is_none_or(|v| v.trim().is_empty()) {
                    cx.err(
                        Some(n),
                        Some("RecordId"),
                        "mandatory attribute missing or empty",
                    );
                }
                match attr(id, "createTime") {
                    None => cx.err(Some(n), Some("CreateTime"), "mandatory attribute missing"),
                    Some(t) if !parse_iso8601(t.trim()) => cx.err(
                        Some(n),
                        Some("CreateTime"),
                        format!("{:?} is not an ISO 8601 time", truncate(&t)),
                    ),
                    Some(_) => {}
                }
            }
        }
        let text = |name: &str| child(name).map(|c| c.text().unwrap_or("").trim().to_owned());
        match text("StorageSystem") {
            Some(s) if !s.is_empty() => {}
            _ => cx.err(
                Some(n),
                Some("StorageSystem"),
                "mandatory element missing or empty",
            ),
        }
        for t in ["StartTime", "EndTime"] {
            match text(t) {
                None => cx.err(Some(n), Some(t), "mandatory element missing"),
                Some(v) if !parse_iso8601(&v) => cx.err(
                    Some(n),
                    Some(t),
                    format!("{:?} is not an ISO 8601 time", truncate(&v)),
                ),
                Some(_) => {}
            }
        }
        match text("ResourceCapacityUsed") {
            None => cx.err(
                Some(n),
                Some("ResourceCapacityUsed"),
                "mandatory element missing",
            ),
            Some(v) if v.parse::<u64>().is_err() => cx.err(
                Some(n),
                Some("ResourceCapacityUsed"),
                format!("{:?} is not a non-negative integer", truncate(&v)),
            ),
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::wire::{self, samples};
    use super::*;

    fn check(msg: &str) -> Report {
        validate(msg.as_bytes()).1
    }

    fn fields(r: &Report) -> Vec<(Option<usize>, Option<&str>)> {
        r.errors
            .iter()
            .map(|e| (e.record, e.field.as_deref()))
            .collect()
    }

    #[test]
    fn what_we_render_is_accepted() {
        let recs: Vec<_> = (0..3).map(samples::cloud).collect();
        let cases = [
            (wire::cloud_message(&recs), MessageKind::Cloud, 3),
            (
                wire::ip_message(&[samples::ip(4), samples::ip(6)]),
                MessageKind::Ip,
                2,
            ),
            (
                wire::accelerator_message(&[samples::accelerator()]),
                MessageKind::Accelerator,
                1,
            ),
            (
                wire::storage_message(&[samples::storage(), samples::storage()]),
                MessageKind::Storage,
                2,
            ),
        ];
        for (msg, kind, n) in cases {
            let (k, r) = validate(msg.as_bytes());
            assert_eq!(k, Some(kind));
            assert!(r.valid, "{msg}\n{r:?}");
            assert_eq!(r.records, n);
        }
    }

    #[test]
    fn broken_cloud_messages() {
        // Header.
        let r = check("APEL-cloud-message: v0.3\nVMUUID: a\nSiteName: b\n");
        assert!(!r.valid);
        assert!(r.errors[0].reason.contains("version"), "{r:?}");
        assert!(!check("APEL-foo: v0.4\nVMUUID: a\n").valid);
        // Mandatory fields, null forms, unknown key, no colon, bad numbers.
        let r = check(
            "APEL-cloud-message: v0.4\nVMUUID: NULL\nSiteName: s\n%%\n\
             VMUUID: b\nSiteName: s\nColour: blue\nno colon here\n%%\n\
             VMUUID: c\nSiteName: s\nWallDuration: 12.0\nCpuCount: two\nStartTime: x\nMemory: None\n",
        );
        assert_eq!(r.records, 3);
        assert_eq!(
            fields(&r),
            vec![
                (Some(1), Some("VMUUID")),
                (Some(2), Some("Colour")),
                (Some(2), None),
                (Some(3), Some("WallDuration")),
                (Some(3), Some("CpuCount")),
                (Some(3), Some("StartTime")),
            ]
        );
        // Values may contain colons; floats take decimals; ignored keys pass.
        let r = check(
            "APEL-cloud-message: v0.4\nVMUUID: a\nSiteName: s\nImageId: https://x/y:1/\n\
             CpuCount: 2.0\nBenchmark: 1e3\nMeasurementMonth: 5\n",
        );
        assert!(r.valid, "{r:?}");
        // A message with no records, and non-ASCII bytes.
        assert!(!check("APEL-cloud-message: v0.4\n").valid);
        let r = check("APEL-cloud-message: v0.4\nVMUUID: a\nSiteName: é\n");
        assert_eq!(fields(&r), vec![(None, None)]);
        assert!(r.errors[0].reason.contains("not ASCII"));
        assert!(!check("").valid);
    }

    #[test]
    fn broken_json_messages() {
        let ip = |rec: &str| {
            format!(
                "{{\"Type\": \"APEL Public IP message\", \"Version\": \"0.2\", \"UsageRecords\": [{rec}]}}"
            )
        };
        let good = "\"MeasurementTime\": 1, \"SiteName\": \"S\", \"LocalGroup\": \"p\", \"FQAN\": \"vo\", \"IPVersion\": 4, \"IPCount\": 2";
        assert!(check(&ip(&format!("{{{good}}}"))).valid);
        let r = check(&ip(&format!(
            "{{{good}, \"Extra\": 1}}, {{\"SiteName\": 3, \"LocalGroup\": \"p\", \"FQAN\": \"vo\", \"IPVersion\": 5, \"IPCount\": -1, \"MeasurementTime\": null}}, 7"
        )));
        assert_eq!(r.records, 3);
        assert_eq!(
            fields(&r),
            vec![
                (Some(1), Some("Extra")),
                (Some(2), Some("MeasurementTime")),
                (Some(2), Some("SiteName")),
                (Some(2), Some("IPVersion")),
                (Some(2), Some("IPCount")),
                (Some(3), None),
            ]
        );
        // Strict version string, wrong version, unknown type, empty list.
        assert!(check(&ip(&format!("{{{good}}}")).replace("\"0.2\"", "\"v0.2\"")).valid);
        let r = check(&ip(&format!("{{{good}}}")).replace("\"0.2\"", "\"0.3\""));
        assert_eq!(fields(&r), vec![(None, Some("Version"))]);
        assert_eq!(
            fields(&check(
                "{\"Type\": \"APEL sync message\", \"Version\": \"0.2\"}"
            )),
            vec![(None, Some("Type"))]
        );
        assert_eq!(fields(&check(&ip(""))), vec![(None, Some("UsageRecords"))]);
        assert!(!check("{not json").valid);
        assert!(!check("[1, 2]").valid);
        // Accelerator: type, month, count.
        let mut a = wire::accelerator_message(&[samples::accelerator()]);
        a = a
            .replace("\"GPU\"", "\"TPU\"")
            .replace("\"MeasurementMonth\": 5", "\"MeasurementMonth\": 13");
        a = a.replace("\"Count\": 2", "\"Count\": \"2\"");
        assert_eq!(
            fields(&check(&a)),
            vec![
                (Some(1), Some("MeasurementMonth")),
                (Some(1), Some("Count")),
                (Some(1), Some("Type")),
            ]
        );
    }

    #[test]
    fn broken_star_messages() {
        let good = wire::storage_message(&[samples::storage()]);
        let r = check(&good.replace(STAR_NS, "urn:other"));
        assert!(r.errors[0].reason.contains("namespace"), "{r:?}");
        let r = check(
            &good
                .replace(" sr:recordId=\"7a1c0a52-7d9e-4b0e-9b7a-3c2d1e0f9a8b\"", "")
                .replace("2024-05-01T00:00:00", "yesterday")
                .replace("10737418240", "10 GiB")
                .replace("<sr:StorageSystem>cloud.example.org</sr:StorageSystem>", ""),
        );
        assert_eq!(
            fields(&r),
            vec![
                (Some(1), Some("RecordId")),
                (Some(1), Some("StorageSystem")),
                (Some(1), Some("StartTime")),
                (Some(1), Some("ResourceCapacityUsed")),
            ]
        );
        let r = check(&good.replace("sr:createTime=\"2024-05-03T12:00:00.123456\"", ""));
        assert_eq!(fields(&r), vec![(Some(1), Some("CreateTime"))]);
        assert!(!check("<sr:StorageUsageRecords xmlns:sr=\"x\"").valid);
        // Deep nesting is refused before parsing (the parser recurses).
        let deep = format!("<a>{}</a>", "<b>".repeat(100_000));
        assert!(check(&deep).errors[0].reason.contains("nested deeper"));
        assert!(!xml_depth_exceeds(&good, 4));
        assert!(xml_depth_exceeds(&good, 3));
        // DTDs (entity expansion) are refused by the parser.
        assert!(!check("<!DOCTYPE a [<!ENTITY e \"x\">]><a>&e;</a>").valid);
    }

    #[test]
    fn iso_times() {
        for ok in [
            "2024-05-01T00:00:00",
            "2024-05-01T00:00:00.5",
            "2024-05-01T00:00:00Z",
            "2024-05-01T00:00:00.123456+02:00",
            "2024-05-01 00:00:00",
        ] {
            assert!(parse_iso8601(ok), "{ok}");
        }
        for bad in [
            "2024-05-01",
            "2024-13-01T00:00:00",
            "2024-05-01T00:00:00.",
            "2024-05-01T00:00:00+0200",
            "2024-05-01T25:00:00",
            "2024-05-01T00:00:00 junk",
        ] {
            assert!(!parse_iso8601(bad), "{bad}");
        }
    }
}
