//! The HEPiX image list (hepixvmitrust's JSON format): the model and a
//! strict parser that names the field at fault.
//!
//! Types are checked field by field instead of through serde derive so a
//! refusal says which field of which image is wrong: an endorser publishing
//! a broken list needs the path, not "invalid type at line 1 column 9000".
//! Fields this module does not know are kept out of the model and ignored
//! (AppDB adds its own `ad:*` fields over time); fields it knows must have
//! the documented type.

use serde_json::{Map, Value};
use thiserror::Error;

/// Largest list accepted, signed envelope included. AppDB's largest VO
/// lists are a few hundred KiB; this bounds memory on a hostile source.
pub const MAX_LIST_BYTES: usize = 16 << 20;

/// Why a list's JSON was refused (acceptance reason `Malformed`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("the list is larger than {MAX_LIST_BYTES} bytes")]
    TooLarge,
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("{0}: missing")]
    Missing(String),
    #[error("{path}: expected {expected}")]
    WrongType {
        path: String,
        expected: &'static str,
    },
    #[error("{path}: {value:?} is not a date of the form YYYY-MM-DDTHH:MM:SSZ")]
    BadDate { path: String, value: String },
    #[error("{path}: {reason}")]
    BadValue { path: String, reason: String },
}

/// `hv:endorser` / `hv:x509`: who signs the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endorser {
    /// Signer subject, OpenSSL one-line form.
    pub dn: String,
    /// Signer issuer, OpenSSL one-line form.
    pub ca: String,
    pub creator: String,
    pub email: String,
}

/// One `hv:image`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Image {
    pub identifier: String,
    pub uri: String,
    /// Lower-case hex, 128 digits.
    pub sha512: String,
    pub size: u64,
    pub version: String,
    pub title: Option<String>,
    pub description: Option<String>,
    /// As published (`OVA`, `qcow2`, ...); case varies between lists.
    pub format: Option<String>,
    pub hypervisor: Option<String>,
    pub os: Option<String>,
    pub os_name: Option<String>,
    pub os_version: Option<String>,
    pub arch: Option<String>,
    pub comments: Option<String>,
    /// AppDB marketplace URI: the accounting ImageId.
    pub mpuri: Option<String>,
    pub base_mpuri: Option<String>,
    pub appid: Option<String>,
    pub group: Option<String>,
    pub user_fullname: Option<String>,
    pub user_guid: Option<String>,
    pub user_uri: Option<String>,
    /// Per-image expiry, Unix seconds.
    pub expires: Option<i64>,
    pub ram_minimum: Option<u64>,
    pub ram_recommended: Option<u64>,
    pub core_minimum: Option<u64>,
    pub core_recommended: Option<u64>,
}

/// `hv:imagelist`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageList {
    pub identifier: String,
    pub title: String,
    pub description: String,
    pub source: String,
    /// Unix seconds.
    pub created: i64,
    pub expires: i64,
    /// `dc:date:expires` as published, for reports.
    pub expires_text: String,
    pub version: String,
    pub uri: String,
    pub endorser: Endorser,
    /// `ad:vo`: the VO whose projects get the images.
    pub vo: Option<String>,
    pub images: Vec<Image>,
}

type R<T> = Result<T, ParseError>;

fn wrong(path: &str, expected: &'static str) -> ParseError {
    ParseError::WrongType {
        path: path.to_string(),
        expected,
    }
}

fn bad(path: &str, reason: impl Into<String>) -> ParseError {
    ParseError::BadValue {
        path: path.to_string(),
        reason: reason.into(),
    }
}

fn object<'a>(v: &'a Value, path: &str) -> R<&'a Map<String, Value>> {
    v.as_object().ok_or_else(|| wrong(path, "an object"))
}

fn field<'a>(m: &'a Map<String, Value>, base: &str, key: &str) -> (String, Option<&'a Value>) {
    (format!("{base}.{key}"), m.get(key))
}

fn opt_str(m: &Map<String, Value>, base: &str, key: &str) -> R<Option<String>> {
    match field(m, base, key) {
        (_, None | Some(Value::Null)) => Ok(None),
        (_, Some(Value::String(s))) => Ok(Some(s.clone())),
        (p, Some(_)) => Err(wrong(&p, "a string")),
    }
}

fn req_str(m: &Map<String, Value>, base: &str, key: &str) -> R<String> {
    opt_str(m, base, key)?.ok_or_else(|| ParseError::Missing(format!("{base}.{key}")))
}

/// An identifier: printable, non-empty, at most 255 bytes (it becomes a
/// Glance property value and a file name component later).
fn ident(m: &Map<String, Value>, base: &str, key: &str) -> R<String> {
    let s = req_str(m, base, key)?;
    let p = format!("{base}.{key}");
    if s.trim().is_empty() {
        return Err(bad(&p, "empty"));
    }
    if s.len() > 255 {
        return Err(bad(&p, "longer than 255 bytes"));
    }
    if s.chars().any(char::is_control) {
        return Err(bad(&p, "contains control characters"));
    }
    Ok(s)
}

fn uri(m: &Map<String, Value>, base: &str, key: &str) -> R<String> {
    let s = req_str(m, base, key)?;
    let p = format!("{base}.{key}");
    match url::Url::parse(&s) {
        Ok(u) if matches!(u.scheme(), "https" | "http") && u.has_host() => Ok(s),
        Ok(_) => Err(bad(&p, "not an http(s) URL")),
        Err(e) => Err(bad(&p, format!("not a URL: {e}"))),
    }
}

/// A count published as a string of digits or a JSON integer; an empty
/// string means absent (AppDB writes `""` for unset minima).
fn opt_count(m: &Map<String, Value>, base: &str, key: &str) -> R<Option<u64>> {
    let (p, v) = field(m, base, key);
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| bad(&p, "not a non-negative integer")),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) if s.bytes().all(|b| b.is_ascii_digit()) => s
            .parse()
            .map(Some)
            .map_err(|_| bad(&p, "integer out of range")),
        Some(Value::String(_)) => Err(bad(&p, "not a non-negative integer")),
        Some(_) => Err(wrong(&p, "a string of digits or an integer")),
    }
}

fn opt_date(m: &Map<String, Value>, base: &str, key: &str) -> R<Option<(i64, String)>> {
    let Some(s) = opt_str(m, base, key)? else {
        return Ok(None);
    };
    match parse_date(&s) {
        Some(t) => Ok(Some((t, s))),
        None => Err(ParseError::BadDate {
            path: format!("{base}.{key}"),
            value: s,
        }),
    }
}

fn req_date(m: &Map<String, Value>, base: &str, key: &str) -> R<(i64, String)> {
    opt_date(m, base, key)?.ok_or_else(|| ParseError::Missing(format!("{base}.{key}")))
}

/// `YYYY-MM-DDTHH:MM:SSZ` (the only form hepixvmitrust writes) to Unix
/// seconds; anything else is `None`.
pub fn parse_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' || b[19] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = &b[r];
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| std::str::from_utf8(part).ok()?.parse().ok())
            .flatten()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo) || d < 1 || d > days_in[(mo - 1) as usize] {
        return None;
    }
    if h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    // Days from the civil date (proleptic Gregorian), Howard Hinnant's method.
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + sec)
}

fn parse_image(v: &Value, base: &str) -> R<Image> {
    let outer = object(v, base)?;
    let base = format!("{base}.hv:image");
    let m = object(
        outer
            .get("hv:image")
            .ok_or_else(|| ParseError::Missing(base.clone()))?,
        &base,
    )?;
    let b = base.as_str();
    let sha_path = format!("{b}.sl:checksum:sha512");
    let sha512 = req_str(m, b, "sl:checksum:sha512")?;
    if sha512.len() != 128 || !sha512.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad(&sha_path, "not 128 hexadecimal digits"));
    }
    let size =
        opt_count(m, b, "hv:size")?.ok_or_else(|| ParseError::Missing(format!("{b}.hv:size")))?;
    Ok(Image {
        identifier: ident(m, b, "dc:identifier")?,
        uri: uri(m, b, "hv:uri")?,
        sha512: sha512.to_ascii_lowercase(),
        size,
        version: req_str(m, b, "hv:version")?,
        title: opt_str(m, b, "dc:title")?,
        description: opt_str(m, b, "dc:description")?,
        format: opt_str(m, b, "hv:format")?,
        hypervisor: opt_str(m, b, "hv:hypervisor")?,
        os: opt_str(m, b, "sl:os")?,
        os_name: opt_str(m, b, "sl:osname")?,
        os_version: opt_str(m, b, "sl:osversion")?,
        arch: opt_str(m, b, "sl:arch")?,
        comments: opt_str(m, b, "sl:comments")?,
        mpuri: opt_str(m, b, "ad:mpuri")?,
        base_mpuri: opt_str(m, b, "ad:base_mpuri")?,
        appid: opt_str(m, b, "ad:appid")?,
        group: opt_str(m, b, "ad:group")?,
        user_fullname: opt_str(m, b, "ad:user:fullname")?,
        user_guid: opt_str(m, b, "ad:user:guid")?,
        user_uri: opt_str(m, b, "ad:user:uri")?,
        expires: opt_date(m, b, "dc:date:expires")?.map(|d| d.0),
        ram_minimum: opt_count(m, b, "hv:ram_minimum")?,
        ram_recommended: opt_count(m, b, "ad:ram_recommended")?,
        core_minimum: opt_count(m, b, "hv:core_minimum")?,
        core_recommended: opt_count(m, b, "ad:core_recommended")?,
    })
}

/// Parses the JSON text of a list (the signed content, already verified).
pub fn parse(json: &[u8]) -> R<ImageList> {
    if json.len() > MAX_LIST_BYTES {
        return Err(ParseError::TooLarge);
    }
    let root: Value =
        serde_json::from_slice(json).map_err(|e| ParseError::NotJson(e.to_string()))?;
    let root = object(&root, "(top level)")?;
    let b = "hv:imagelist";
    let m = object(root.get(b).ok_or_else(|| ParseError::Missing(b.into()))?, b)?;
    let e_path = format!("{b}.hv:endorser");
    let e = object(
        m.get("hv:endorser")
            .ok_or_else(|| ParseError::Missing(e_path.clone()))?,
        &e_path,
    )?;
    let x_path = format!("{e_path}.hv:x509");
    let x = object(
        e.get("hv:x509")
            .ok_or_else(|| ParseError::Missing(x_path.clone()))?,
        &x_path,
    )?;
    let endorser = Endorser {
        dn: ident(x, &x_path, "hv:dn")?,
        ca: ident(x, &x_path, "hv:ca")?,
        creator: req_str(x, &x_path, "dc:creator")?,
        email: req_str(x, &x_path, "hv:email")?,
    };
    let (created, _) = req_date(m, b, "dc:date:created")?;
    let (expires, expires_text) = req_date(m, b, "dc:date:expires")?;
    let version = req_str(m, b, "hv:version")?;
    if version.trim().is_empty() {
        return Err(bad(&format!("{b}.hv:version"), "empty"));
    }
    let i_path = format!("{b}.hv:images");
    let images = m
        .get("hv:images")
        .ok_or_else(|| ParseError::Missing(i_path.clone()))?
        .as_array()
        .ok_or_else(|| wrong(&i_path, "an array"))?
        .iter()
        .enumerate()
        .map(|(i, v)| parse_image(v, &format!("{i_path}[{i}]")))
        .collect::<R<Vec<_>>>()?;
    Ok(ImageList {
        identifier: ident(m, b, "dc:identifier")?,
        title: req_str(m, b, "dc:title")?,
        description: req_str(m, b, "dc:description")?,
        source: req_str(m, b, "dc:source")?,
        created,
        expires,
        expires_text,
        version,
        uri: uri(m, b, "hv:uri")?,
        endorser,
        vo: opt_str(m, b, "ad:vo")?,
        images,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn sample() -> Value {
        serde_json::json!({"hv:imagelist": {
            "dc:identifier": "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
            "dc:title": "vo.example.org images", "dc:description": "VO-wide list",
            "dc:source": "https://appdb.example.org/", "ad:vo": "vo.example.org",
            "dc:date:created": "2025-01-10T12:00:00Z", "dc:date:expires": "2025-02-10T12:00:00Z",
            "hv:version": "20250110120000", "hv:uri": "https://lists.example.org/image.list",
            "hv:endorser": {"hv:x509": {"dc:creator": "Catalogue", "hv:email": "ops@example.org",
                "hv:dn": "/DC=EU/CN=lists.example.org", "hv:ca": "/DC=EU/CN=Example CA"}},
            "hv:images": [{"hv:image": {
                "dc:identifier": "6ba7b810-9dad-11d1-80b4-00c04fd430c8", "dc:title": "Ubuntu",
                "hv:uri": "https://cdn.example.org/u.qcow2", "hv:format": "QCOW2",
                "hv:size": "612368384", "hv:version": "2025.01.10", "hv:ram_minimum": "",
                "hv:core_minimum": 2, "sl:checksum:sha512": "AB".repeat(64)}}]}})
    }

    fn parse_v(v: &Value) -> R<ImageList> {
        parse(v.to_string().as_bytes())
    }

    #[test]
    fn parses_the_documented_fields() {
        let l = parse_v(&sample()).unwrap();
        assert_eq!(l.identifier, "1b4e28ba-2fa1-11d2-883f-0016d3cca427");
        assert_eq!(l.expires, 1_739_188_800);
        assert_eq!(l.endorser.ca, "/DC=EU/CN=Example CA");
        assert_eq!(l.vo.as_deref(), Some("vo.example.org"));
        let i = &l.images[0];
        assert_eq!(i.size, 612_368_384);
        assert_eq!(i.sha512, "ab".repeat(64));
        assert_eq!((i.ram_minimum, i.core_minimum), (None, Some(2)));
    }

    #[test]
    fn each_defect_names_its_field() {
        let cases: &[(&str, Value, &str)] = &[
            (
                "dc:identifier",
                Value::Null,
                "hv:imagelist.dc:identifier: missing",
            ),
            (
                "hv:version",
                serde_json::json!(3),
                "hv:imagelist.hv:version: expected a string",
            ),
            (
                "dc:date:expires",
                "2025-02-30T00:00:00Z".into(),
                "YYYY-MM-DD",
            ),
            (
                "dc:date:created",
                "2025-01-10 12:00:00".into(),
                "dc:date:created",
            ),
            ("hv:uri", "ftp://x/y".into(), "not an http(s) URL"),
            (
                "hv:images",
                serde_json::json!({}),
                "hv:images: expected an array",
            ),
        ];
        for (key, val, want) in cases {
            let mut v = sample();
            let m = v["hv:imagelist"].as_object_mut().unwrap();
            if val.is_null() {
                m.remove(*key);
            } else {
                m.insert(key.to_string(), val.clone());
            }
            let e = parse_v(&v).unwrap_err().to_string();
            assert!(e.contains(want), "{key}: {e}");
        }
        let img = |k: &str, val: Value| {
            let mut v = sample();
            v["hv:imagelist"]["hv:images"][0]["hv:image"][k] = val;
            parse_v(&v).unwrap_err().to_string()
        };
        assert!(
            img("sl:checksum:sha512", "abc".into())
                .contains("images[0].hv:image.sl:checksum:sha512")
        );
        assert!(img("hv:size", "-1".into()).contains("hv:size: not a non-negative integer"));
        assert!(img("hv:size", serde_json::json!(true)).contains("expected a string of digits"));
        assert!(img("dc:identifier", "a\nb".into()).contains("control"));
        assert!(img("dc:title", serde_json::json!(1)).contains("dc:title: expected a string"));
        assert!(matches!(parse(b"{"), Err(ParseError::NotJson(_))));
        assert!(matches!(parse(b"[]"), Err(ParseError::WrongType { .. })));
        assert!(matches!(
            parse(&vec![b' '; MAX_LIST_BYTES + 1]),
            Err(ParseError::TooLarge)
        ));
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_date("2024-02-29T23:59:59Z"), Some(1_709_251_199));
        assert_eq!(parse_date("2023-02-29T00:00:00Z"), None);
        assert_eq!(parse_date("2024-01-01T24:00:00Z"), None);
        assert_eq!(parse_date("2024-01-01T00:00:00+00:00"), None);
        assert_eq!(parse_date("+024-01-01T00:00:00Z"), None);
    }
}
