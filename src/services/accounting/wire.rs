//! The messages the APEL repository loads, byte for byte as cASO's SSM
//! messenger writes them, so that a site can switch producers without the
//! repository noticing.
//!
//! * Cloud v0.4: a header line, then each record as `Key: value` lines
//!   sorted by key, records separated by a `%%` line, a final newline.
//! * Public IP v0.2 and accelerator v0.1: one JSON object
//!   `{"Type": ..., "Version": ..., "UsageRecords": [...]}` with the
//!   separators and ASCII escapes of Python's `json.dumps`.
//! * Storage: EMI StAR XML, the `sr` namespace on the root element (the
//!   APEL loader picks its parser by that namespace), no XML declaration,
//!   non-ASCII as character references.
//!
//! Every message is ASCII: `ssmsend` decodes a queued file as ASCII and
//! gives up on the whole file at the first other byte. A message holds at
//! most `max_size` records ([`batches`]); oversized messages are refused
//! by the messaging service.

use std::fmt::Write as _;

use super::record::{AcceleratorRecord, CloudRecord, IpRecord, StorageRecord};

pub const CLOUD_HEADER: &str = "APEL-cloud-message: v0.4";
pub const IP_TYPE: &str = "APEL Public IP message";
pub const IP_VERSION: &str = "0.2";
pub const ACCELERATOR_TYPE: &str = "APEL-accelerator-message";
pub const ACCELERATOR_VERSION: &str = "0.1";
pub const STAR_NS: &str = "http://eu-emi.eu/namespaces/2011/02/storagerecord";

/// Splits `records` into messages of at most `max_size` records each (at
/// least one per message), rendered by `render`. No records, no messages.
pub fn batches<T>(records: &[T], max_size: usize, render: fn(&[T]) -> String) -> Vec<String> {
    records.chunks(max_size.max(1)).map(render).collect()
}

/// A value on one `Key: value` line: printable ASCII only. cASO drops the
/// non-ASCII characters of names; a control character (a newline in a VM
/// name) would otherwise start a forged line or record.
fn line_value(s: &str) -> String {
    s.chars().filter(|c| (' '..='~').contains(c)).collect()
}

/// A float as Python's `repr` writes it (`12.0`, not `12`), which is what
/// cASO puts in `Benchmark`.
pub fn py_float(f: f64) -> String {
    if !f.is_finite() {
        return if f.is_nan() {
            "nan".into()
        } else if f > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let a = f.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        // Rust writes `1e16` / `1.5e-5`; Python `1e+16` / `1.5e-05`.
        let s = format!("{f:e}");
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = match e.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', e),
        };
        return format!("{m}e{sign}{digits:0>2}");
    }
    if f.fract() == 0.0 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

/// One cloud record's lines, sorted by key, without the separator.
fn cloud_lines(r: &CloudRecord, out: &mut String) {
    let mut fields: Vec<(&str, String)> = vec![
        ("CloudComputeService", line_value(&r.cloud_compute_service)),
        ("CloudType", line_value(&r.cloud_type)),
        ("CpuCount", r.cpu_count.to_string()),
        // A zero duration is sent as 1, as cASO does.
        ("CpuDuration", r.cpu_duration.max(1).to_string()),
        ("Disk", r.disk.to_string()),
        ("EndTime", r.end_time.to_string()),
        ("FQAN", line_value(&r.fqan)),
        ("LocalGroupId", line_value(&r.local_group_id)),
        ("LocalUserId", line_value(&r.local_user_id)),
        ("MachineName", line_value(&r.machine_name)),
        ("Memory", r.memory.to_string()),
        ("PublicIPCount", r.public_ip_count.to_string()),
        ("SiteName", line_value(&r.site_name)),
        ("StartTime", r.start_time.to_string()),
        ("Status", r.status.as_str().into()),
        ("VMUUID", line_value(&r.vm_uuid)),
        ("WallDuration", r.wall_duration.max(1).to_string()),
    ];
    if let Some(g) = &r.global_user_name {
        fields.push(("GlobalUserName", line_value(g)));
    }
    if let (Some(t), Some(v)) = (&r.benchmark_type, r.benchmark) {
        fields.push(("BenchmarkType", line_value(t)));
        fields.push(("Benchmark", py_float(v)));
    }
    if let Some(i) = &r.image_id {
        fields.push(("ImageId", line_value(i)));
    }
    fields.sort_by(|a, b| a.0.cmp(b.0));
    for (k, v) in fields {
        let _ = writeln!(out, "{k}: {v}");
    }
}

/// A cloud v0.4 message.
pub fn cloud_message(records: &[CloudRecord]) -> String {
    let mut out = String::from(CLOUD_HEADER);
    out.push('\n');
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            out.push_str("%%\n");
        }
        cloud_lines(r, &mut out);
    }
    out
}

/// A JSON string as Python's `json.dumps` (ensure_ascii) writes it.
fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{u:04x}");
                }
            }
        }
    }
    out.push('"');
}

enum J<'a> {
    S(&'a str),
    I(i64),
}

fn json_object(out: &mut String, fields: &[(&str, Option<J<'_>>)]) {
    out.push('{');
    let mut first = true;
    for (k, v) in fields {
        let Some(v) = v else { continue };
        if !first {
            out.push_str(", ");
        }
        first = false;
        json_str(out, k);
        out.push_str(": ");
        match v {
            J::S(s) => json_str(out, s),
            J::I(i) => {
                let _ = write!(out, "{i}");
            }
        }
    }
    out.push('}');
}

fn json_message<T>(kind: &str, version: &str, records: &[T], one: fn(&mut String, &T)) -> String {
    let mut out = String::new();
    out.push_str("{\"Type\": ");
    json_str(&mut out, kind);
    out.push_str(", \"Version\": ");
    json_str(&mut out, version);
    out.push_str(", \"UsageRecords\": [");
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        one(&mut out, r);
    }
    out.push_str("]}");
    out
}

fn ip_json(out: &mut String, r: &IpRecord) {
    json_object(
        out,
        &[
            ("SiteName", Some(J::S(&r.site_name))),
            ("CloudType", Some(J::S(&r.cloud_type))),
            ("CloudComputeService", Some(J::S(&r.cloud_compute_service))),
            ("uuid", r.uuid.as_deref().map(J::S)),
            ("LocalGroup", Some(J::S(&r.local_group))),
            ("FQAN", Some(J::S(&r.fqan))),
            ("IPVersion", Some(J::I(r.ip_version.into()))),
            (
                "IPCount",
                Some(J::I(r.ip_count.min(i64::MAX as u64) as i64)),
            ),
            ("MeasurementTime", Some(J::I(r.measurement_time))),
        ],
    );
}

/// A public IP v0.2 message.
pub fn ip_message(records: &[IpRecord]) -> String {
    json_message(IP_TYPE, IP_VERSION, records, ip_json)
}

fn accelerator_json(out: &mut String, r: &AcceleratorRecord) {
    json_object(
        out,
        &[
            ("MeasurementMonth", Some(J::I(r.measurement_month.into()))),
            ("MeasurementYear", Some(J::I(r.measurement_year.into()))),
            ("AssociatedRecordType", Some(J::S("cloud"))),
            ("AssociatedRecord", Some(J::S(&r.associated_record))),
            ("GlobalUserName", r.global_user_name.as_deref().map(J::S)),
            ("FQAN", Some(J::S(&r.fqan))),
            ("SiteName", Some(J::S(&r.site_name))),
            ("CloudComputeService", Some(J::S(&r.cloud_compute_service))),
            ("CloudType", Some(J::S(&r.cloud_type))),
            ("Count", Some(J::I(r.count.into()))),
            ("AvailableDuration", Some(J::I(r.available_duration))),
            ("ActiveDuration", Some(J::I(r.active_duration))),
            ("Type", Some(J::S(&r.kind))),
            ("Model", Some(J::S(&r.model))),
        ],
    );
}

/// An accelerator v0.1 message.
pub fn accelerator_message(records: &[AcceleratorRecord]) -> String {
    json_message(
        ACCELERATOR_TYPE,
        ACCELERATOR_VERSION,
        records,
        accelerator_json,
    )
}

/// XML text or attribute value: markup escaped, non-ASCII as decimal
/// character references, and characters XML 1.0 cannot carry at all
/// (controls other than tab, LF, CR) dropped.
fn xml_escape(out: &mut String, s: &str, attr: bool) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attr => out.push_str("&quot;"),
            '\n' if attr => out.push_str("&#10;"),
            '\t' | '\n' | '\r' | ' '..='~' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => {
                let _ = write!(out, "&#{};", c as u32);
            }
        }
    }
}

/// ISO 8601 without a zone, in UTC (the APEL StAR loader reads a naive
/// time as UTC), with microseconds only when there are some.
pub fn iso_utc(secs: i64, micros: u32) -> String {
    let mut s = String::with_capacity(26);
    let _ = crate::logging::seconds_text(secs, &mut s);
    if micros > 0 {
        let _ = write!(s, ".{:06}", micros.min(999_999));
    }
    s
}

fn element(out: &mut String, name: &str, text: &str) {
    let _ = write!(out, "<sr:{name}>");
    xml_escape(out, text, false);
    let _ = write!(out, "</sr:{name}>");
}

fn storage_xml(out: &mut String, r: &StorageRecord) {
    out.push_str("<sr:StorageUsageRecord><sr:RecordIdentity sr:createTime=\"");
    xml_escape(out, &iso_utc(r.create_time.0, r.create_time.1), true);
    out.push_str("\" sr:recordId=\"");
    xml_escape(out, &r.record_id, true);
    out.push_str("\" />");
    element(out, "StorageSystem", &r.storage_system);
    element(out, "Site", &r.site);
    out.push_str("<sr:SubjectIdentity>");
    element(out, "LocalUser", &r.local_user);
    element(out, "LocalGroup", &r.local_group);
    if let Some(u) = &r.user_identity {
        element(out, "UserIdentity", u);
    }
    element(out, "Group", &r.group);
    out.push_str("</sr:SubjectIdentity>");
    element(out, "StartTime", &iso_utc(r.start_time, 0));
    element(out, "EndTime", &iso_utc(r.end_time, 0));
    element(out, "ResourceCapacityUsed", &r.capacity_used.to_string());
    out.push_str("</sr:StorageUsageRecord>");
}

/// A StAR message.
pub fn storage_message(records: &[StorageRecord]) -> String {
    let mut out = format!("<sr:StorageUsageRecords xmlns:sr=\"{STAR_NS}\">");
    for r in records {
        storage_xml(&mut out, r);
    }
    out.push_str("</sr:StorageUsageRecords>");
    out
}

/// Test records, shared with the validator's and the queue's tests.
#[cfg(test)]
pub(crate) mod samples {
    use super::super::record::*;

    pub fn cloud(n: u32) -> CloudRecord {
        CloudRecord {
            vm_uuid: format!("00000000-0000-4000-8000-{n:012}"),
            site_name: "TEST-SITE".into(),
            cloud_compute_service: "cloud.example.org".into(),
            cloud_type: "fedgate/0.1.0 (OpenStack)".into(),
            machine_name: format!("vm-{n}"),
            local_user_id: "4f1b77".into(),
            local_group_id: "9c3ae1".into(),
            global_user_name: Some("0123abcd@egi.eu".into()),
            fqan: "vo.example.org".into(),
            status: VmStatus::Completed,
            start_time: 1714521600,
            end_time: 1714737600,
            wall_duration: 216000,
            cpu_duration: 432000,
            cpu_count: 2,
            memory: 4096,
            disk: 25,
            public_ip_count: 0,
            benchmark_type: Some("HEPscore23".into()),
            benchmark: Some(12.5),
            image_id: Some("https://appdb.egi.eu/store/vo/image/abc:1/".into()),
        }
    }

    pub fn ip(version: u8) -> IpRecord {
        IpRecord {
            site_name: "TEST-SITE".into(),
            cloud_type: "fedgate/0.1.0 (OpenStack)".into(),
            cloud_compute_service: "cloud.example.org".into(),
            uuid: Some("5d4f3a8e-2d1c-4b6a-9e0f-1a2b3c4d5e6f".into()),
            local_group: "9c3ae1".into(),
            fqan: "vo.example.org".into(),
            ip_version: version,
            ip_count: 3,
            measurement_time: 1714737600,
        }
    }

    pub fn accelerator() -> AcceleratorRecord {
        AcceleratorRecord {
            measurement_month: 5,
            measurement_year: 2024,
            associated_record: "00000000-0000-4000-8000-000000000002".into(),
            global_user_name: None,
            fqan: "vo.example.org".into(),
            site_name: "TEST-SITE".into(),
            cloud_compute_service: "cloud.example.org".into(),
            cloud_type: "fedgate/0.1.0 (OpenStack)".into(),
            count: 2,
            available_duration: 3600,
            active_duration: 3600,
            kind: "GPU".into(),
            model: "NVIDIA A100".into(),
        }
    }

    pub fn storage() -> StorageRecord {
        StorageRecord {
            record_id: "7a1c0a52-7d9e-4b0e-9b7a-3c2d1e0f9a8b".into(),
            create_time: (1714737600, 123456),
            storage_system: "cloud.example.org".into(),
            site: "TEST-SITE".into(),
            local_user: "4f1b77".into(),
            local_group: "9c3ae1".into(),
            user_identity: Some("0123abcd@egi.eu".into()),
            group: "vo.example.org".into(),
            start_time: 1714521600,
            end_time: 1714737600,
            capacity_used: 10 << 30,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_record_lines_are_sorted_and_exact() {
        let msg = cloud_message(&[samples::cloud(2)]);
        assert_eq!(
            msg,
            "APEL-cloud-message: v0.4\n\
             Benchmark: 12.5\n\
             BenchmarkType: HEPscore23\n\
             CloudComputeService: cloud.example.org\n\
             CloudType: fedgate/0.1.0 (OpenStack)\n\
             CpuCount: 2\n\
             CpuDuration: 432000\n\
             Disk: 25\n\
             EndTime: 1714737600\n\
             FQAN: vo.example.org\n\
             GlobalUserName: 0123abcd@egi.eu\n\
             ImageId: https://appdb.egi.eu/store/vo/image/abc:1/\n\
             LocalGroupId: 9c3ae1\n\
             LocalUserId: 4f1b77\n\
             MachineName: vm-2\n\
             Memory: 4096\n\
             PublicIPCount: 0\n\
             SiteName: TEST-SITE\n\
             StartTime: 1714521600\n\
             Status: completed\n\
             VMUUID: 00000000-0000-4000-8000-000000000002\n\
             WallDuration: 216000\n"
        );
    }

    #[test]
    fn cloud_optional_fields_zero_durations_and_separators() {
        let mut a = samples::cloud(1);
        a.global_user_name = None;
        a.image_id = None;
        // A benchmark type without a value is not sent, and vice versa.
        a.benchmark = None;
        a.wall_duration = 0;
        a.cpu_duration = 0;
        let mut b = samples::cloud(2);
        b.benchmark_type = None;
        let msg = cloud_message(&[a, b]);
        assert_eq!(msg.matches("\n%%\n").count(), 1);
        assert!(!msg.contains("Benchmark"), "{msg}");
        assert_eq!(msg.matches("GlobalUserName").count(), 1);
        assert_eq!(msg.matches("ImageId").count(), 1);
        assert!(msg.contains("WallDuration: 1\n%%\n"));
        assert!(msg.contains("CpuDuration: 1\n"));
        assert!(msg.ends_with("WallDuration: 216000\n"));
    }

    #[test]
    fn cloud_values_are_printable_ascii_only() {
        let mut r = samples::cloud(1);
        r.machine_name = "vm-é\nVMUUID: forged\n%%".into();
        r.local_user_id = "üser".into();
        let msg = cloud_message(&[r]);
        assert!(msg.is_ascii());
        assert!(msg.contains("MachineName: vm-VMUUID: forged%%\n"));
        assert!(msg.contains("LocalUserId: ser\n"));
        assert_eq!(msg.lines().filter(|l| l.starts_with("VMUUID")).count(), 1);
        assert!(!msg.lines().any(|l| l == "%%"));
    }

    #[test]
    fn python_floats() {
        assert_eq!(py_float(12.0), "12.0");
        assert_eq!(py_float(12.5), "12.5");
        assert_eq!(py_float(0.1), "0.1");
        assert_eq!(py_float(0.0), "0.0");
        assert_eq!(py_float(1e16), "1e+16");
        assert_eq!(py_float(1.5e-5), "1.5e-05");
        assert_eq!(py_float(-3.25), "-3.25");
    }

    #[test]
    fn ip_message_is_python_json() {
        let mut r = samples::ip(6);
        r.fqan = "vö\"x".into();
        assert_eq!(
            ip_message(&[samples::ip(4), r]),
            "{\"Type\": \"APEL Public IP message\", \"Version\": \"0.2\", \"UsageRecords\": [\
             {\"SiteName\": \"TEST-SITE\", \"CloudType\": \"fedgate/0.1.0 (OpenStack)\", \
             \"CloudComputeService\": \"cloud.example.org\", \"uuid\": \"5d4f3a8e-2d1c-4b6a-9e0f-1a2b3c4d5e6f\", \
             \"LocalGroup\": \"9c3ae1\", \"FQAN\": \"vo.example.org\", \"IPVersion\": 4, \"IPCount\": 3, \
             \"MeasurementTime\": 1714737600}, \
             {\"SiteName\": \"TEST-SITE\", \"CloudType\": \"fedgate/0.1.0 (OpenStack)\", \
             \"CloudComputeService\": \"cloud.example.org\", \"uuid\": \"5d4f3a8e-2d1c-4b6a-9e0f-1a2b3c4d5e6f\", \
             \"LocalGroup\": \"9c3ae1\", \"FQAN\": \"v\\u00f6\\\"x\", \"IPVersion\": 6, \"IPCount\": 3, \
             \"MeasurementTime\": 1714737600}]}"
        );
        let mut out = String::new();
        json_str(&mut out, "a\u{1}\u{1F600}\t");
        assert_eq!(out, "\"a\\u0001\\ud83d\\ude00\\t\"");
    }

    #[test]
    fn accelerator_message_shape() {
        let msg = accelerator_message(&[samples::accelerator()]);
        assert!(msg.starts_with(
            "{\"Type\": \"APEL-accelerator-message\", \"Version\": \"0.1\", \"UsageRecords\": [{\"MeasurementMonth\": 5, \"MeasurementYear\": 2024, \"AssociatedRecordType\": \"cloud\", \"AssociatedRecord\": \"00000000-0000-4000-8000-000000000002\", \"FQAN\""
        ), "{msg}");
        assert!(msg.ends_with("\"Type\": \"GPU\", \"Model\": \"NVIDIA A100\"}]}"));
        let v: serde_json::Value = serde_json::from_str(&msg).unwrap();
        assert_eq!(v["UsageRecords"][0]["Count"], 2);
    }

    #[test]
    fn storage_message_is_star_xml() {
        let mut r = samples::storage();
        r.local_user = "<ü&\u{1}>".into();
        let msg = storage_message(&[r]);
        assert_eq!(
            msg,
            "<sr:StorageUsageRecords xmlns:sr=\"http://eu-emi.eu/namespaces/2011/02/storagerecord\">\
             <sr:StorageUsageRecord><sr:RecordIdentity sr:createTime=\"2024-05-03T12:00:00.123456\" \
             sr:recordId=\"7a1c0a52-7d9e-4b0e-9b7a-3c2d1e0f9a8b\" /><sr:StorageSystem>cloud.example.org</sr:StorageSystem>\
             <sr:Site>TEST-SITE</sr:Site><sr:SubjectIdentity><sr:LocalUser>&lt;&#252;&amp;&gt;</sr:LocalUser>\
             <sr:LocalGroup>9c3ae1</sr:LocalGroup><sr:UserIdentity>0123abcd@egi.eu</sr:UserIdentity>\
             <sr:Group>vo.example.org</sr:Group></sr:SubjectIdentity><sr:StartTime>2024-05-01T00:00:00</sr:StartTime>\
             <sr:EndTime>2024-05-03T12:00:00</sr:EndTime><sr:ResourceCapacityUsed>10737418240</sr:ResourceCapacityUsed>\
             </sr:StorageUsageRecord></sr:StorageUsageRecords>"
        );
    }

    #[test]
    fn batches_hold_at_most_max_size() {
        let recs: Vec<_> = (0..7).map(samples::cloud).collect();
        let msgs = batches(&recs, 3, cloud_message);
        assert_eq!(msgs.len(), 3);
        let counts: Vec<usize> = msgs.iter().map(|m| m.matches("VMUUID").count()).collect();
        assert_eq!(counts, [3, 3, 1]);
        assert!(msgs.iter().all(|m| m.starts_with(CLOUD_HEADER)));
        assert!(batches(&recs[..0], 3, cloud_message).is_empty());
        assert_eq!(batches(&recs, 0, cloud_message).len(), 7);
        let ips = vec![samples::ip(4); 1001];
        let m = batches(&ips, 1000, ip_message);
        assert_eq!(m.len(), 2);
        let v: serde_json::Value = serde_json::from_str(&m[0]).unwrap();
        assert_eq!(v["UsageRecords"].as_array().unwrap().len(), 1000);
    }
}
