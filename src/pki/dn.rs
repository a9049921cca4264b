//! Distinguished names as the grid stack prints them.
//!
//! Keystone user names of X.509 users are built from these strings
//! (`GRST_CONN_AURI_0 = "dn:" + mild-encoded one-line DN`), so a single
//! differing byte loses a user. The formats follow OpenSSL 3's
//! `X509_NAME_oneline` (gridsite, VOMS, .lsc files) and mod_ssl's RFC 2253
//! `SSL_CLIENT_S_DN`.

use std::fmt::Write;

use asn1_rs::{Any, Tag};
use x509_parser::x509::X509Name;

/// OpenSSL short name for an attribute type, or its dotted OID.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "street",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.13" => "description",
        "2.5.4.15" => "businessCategory",
        "2.5.4.17" => "postalCode",
        "2.5.4.41" => "name",
        "2.5.4.42" => "GN",
        "2.5.4.43" => "initials",
        "2.5.4.44" => "generationQualifier",
        "2.5.4.45" => "x500UniqueIdentifier",
        "2.5.4.46" => "dnQualifier",
        "2.5.4.65" => "pseudonym",
        "2.5.4.97" => "organizationIdentifier",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "1.3.6.1.4.1.311.60.2.1.1" => "jurisdictionL",
        "1.3.6.1.4.1.311.60.2.1.2" => "jurisdictionST",
        "1.3.6.1.4.1.311.60.2.1.3" => "jurisdictionC",
        _ => return None,
    })
}

fn label(oid: &asn1_rs::Oid<'_>) -> String {
    let dotted = oid.to_id_string();
    short_name(&dotted).map(str::to_string).unwrap_or(dotted)
}

/// The bytes OpenSSL prints for a string value: BMP and Universal strings
/// that hold only ASCII are narrowed, everything else is printed as stored.
fn value_bytes(v: &Any<'_>) -> Vec<u8> {
    let data: &[u8] = v.data;
    let narrow = |width: usize| -> Option<Vec<u8>> {
        if data.len() % width != 0 {
            return None;
        }
        data.chunks(width)
            .map(|c| {
                if c[..width - 1].iter().all(|&b| b == 0) {
                    Some(c[width - 1])
                } else {
                    None
                }
            })
            .collect()
    };
    match v.tag() {
        Tag::BmpString => narrow(2).unwrap_or_else(|| data.to_vec()),
        Tag::UniversalString => narrow(4).unwrap_or_else(|| data.to_vec()),
        _ => data.to_vec(),
    }
}

/// OpenSSL 3 `X509_NAME_oneline`: `/DC=org/DC=example/CN=Jane Doe`.
pub fn oneline(name: &X509Name<'_>) -> String {
    let mut out = String::new();
    for rdn in name.iter() {
        out.push('/');
        for (i, atv) in rdn.iter().enumerate() {
            if i > 0 {
                out.push('+');
            }
            out.push_str(&label(atv.attr_type()));
            out.push('=');
            for b in value_bytes(atv.attr_value()) {
                match b {
                    b'/' => out.push_str("\\/"),
                    b'+' => out.push_str("\\+"),
                    0x20..=0x7e => out.push(b as char),
                    _ => {
                        let _ = write!(out, "\\x{b:02X}");
                    }
                }
            }
        }
    }
    out
}

/// mod_ssl's RFC 2253 form (`SSL_CLIENT_S_DN`): the attributes in reverse
/// order, `,` between RDNs and `+` inside one, RFC 2253 escapes, strings
/// converted to UTF-8 and left raw, unknown attribute types dumped as
/// `#<hex DER>`. The order is reversed attribute by attribute, members of a
/// multi-valued RDN included, from their DER SET order: `OU=A+UID=jdoe` in
/// the certificate prints `UID=jdoe+OU=A`, as OpenSSL (and so mod_ssl)
/// prints it.
pub fn rfc2253(name: &X509Name<'_>) -> String {
    let mut atvs: Vec<(usize, _)> = name
        .iter()
        .enumerate()
        .flat_map(|(i, rdn)| rdn.iter().map(move |atv| (i, atv)))
        .collect();
    atvs.reverse();
    let mut out = String::new();
    let mut prev = None;
    for (rdn, atv) in atvs {
        match prev {
            Some(p) if p == rdn => out.push('+'),
            Some(_) => out.push(','),
            None => {}
        }
        prev = Some(rdn);
        let dotted = atv.attr_type().to_id_string();
        match short_name(&dotted) {
            Some(l) => {
                out.push_str(l);
                out.push('=');
                escape_2253(&utf8_value(atv.attr_value()), &mut out);
            }
            None => {
                out.push_str(&dotted);
                out.push_str("=#");
                let v = atv.attr_value();
                let mut der = Vec::new();
                let _ = asn1_rs::ToDer::write_der(v, &mut der);
                out.push_str(&hex::encode_upper(der));
            }
        }
    }
    out
}

/// A string value converted to UTF-8 as OpenSSL's `ASN1_STRFLGS_UTF8_CONVERT`
/// does: UTF8String as stored, BMPString and UniversalString decoded, every
/// other string type read one byte per character (ISO 8859-1).
fn utf8_value(v: &Any<'_>) -> String {
    let data: &[u8] = v.data;
    let wide = |width: usize| -> String {
        data.chunks(width)
            .map(|c| {
                let n = c.iter().fold(0u32, |n, &b| (n << 8) | b as u32);
                char::from_u32(n).unwrap_or(char::REPLACEMENT_CHARACTER)
            })
            .collect()
    };
    match v.tag() {
        Tag::Utf8String => String::from_utf8_lossy(data).into_owned(),
        Tag::BmpString => wide(2),
        Tag::UniversalString => wide(4),
        _ => data.iter().map(|&b| b as char).collect(),
    }
}

/// mod_ssl's names for the attributes it exports one by one
/// (`SSL_CLIENT_S_DN_CN`, ...). Other attributes (DC among them) have no
/// per-field variable.
fn field_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.6" => "C",
        "2.5.4.8" => "ST",
        "2.5.4.7" => "L",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.3" => "CN",
        "2.5.4.12" => "T",
        "2.5.4.43" => "I",
        "2.5.4.42" => "G",
        "2.5.4.4" => "S",
        "2.5.4.13" => "D",
        "0.9.2342.19200300.100.1.1" => "UID",
        "1.2.840.113549.1.9.1" => "Email",
        _ => return None,
    })
}

/// The per-field values of a name as mod_ssl exports them: in DER order
/// (root-most RDN first, SET members as encoded), the first of a kind as
/// `CN`, repeats as `CN_1`, `CN_2`, ...; values converted to UTF-8 with
/// control characters written `\XX` and nothing else escaped.
pub fn fields(name: &X509Name<'_>) -> Vec<(String, String)> {
    let mut seen: Vec<(&'static str, usize)> = Vec::new();
    let mut out = Vec::new();
    for atv in name.iter().flat_map(|rdn| rdn.iter()) {
        let Some(label) = field_name(&atv.attr_type().to_id_string()) else {
            continue;
        };
        let key = match seen.iter_mut().find(|(l, _)| *l == label) {
            Some((_, n)) => {
                *n += 1;
                format!("{label}_{n}")
            }
            None => {
                seen.push((label, 0));
                label.to_string()
            }
        };
        let mut value = String::new();
        for c in utf8_value(atv.attr_value()).chars() {
            if (c as u32) < 0x20 || c as u32 == 0x7f {
                let _ = write!(value, "\\{:02X}", c as u32);
            } else {
                value.push(c);
            }
        }
        out.push((key, value));
    }
    out
}

fn escape_2253(s: &str, out: &mut String) {
    let last = s.chars().count().saturating_sub(1);
    for (i, c) in s.chars().enumerate() {
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\{:02X}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// gridsite's `GRSThttpUrlMildencode`: keeps `A-Za-z0-9.=-_@/`, writes a
/// space as `+` and every other byte as `%HH`.
///
/// gridsite sign-extends bytes >= 0x80 and prints `%FF` for all of them, so
/// distinct FQANs collide; fedgate writes the real byte (a documented,
/// deliberate difference that only affects non-ASCII FQANs).
pub fn mild_encode(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'=' | b'-' | b'_' | b'@' | b'/' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// Canonical form for comparing one-line DNs written by humans (.lsc,
/// signing_policy): attribute labels that OpenSSL has printed differently
/// over the years are unified. Values are compared as written.
pub fn normalize_labels(dn: &str) -> String {
    let mut out = String::with_capacity(dn.len());
    for (i, part) in dn.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        match part.split_once('=') {
            Some((l, v)) => {
                let l = match l {
                    "Email" | "E" | "emailAddress" => "emailAddress",
                    "USERID" | "UID" | "userId" => "UID",
                    other => other,
                };
                out.push_str(l);
                out.push('=');
                out.push_str(v);
            }
            None => out.push_str(part),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::FromDer;

    /// DER of a Name built with rcgen-independent raw encoding helpers.
    type Rdn<'a> = &'a [(&'a [u8], u8, &'a [u8])];

    fn name_der(rdns: &[Rdn<'_>]) -> Vec<u8> {
        fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
            let mut v = vec![tag];
            let n = content.len();
            if n < 128 {
                v.push(n as u8);
            } else if n < 256 {
                v.extend([0x81, n as u8]);
            } else {
                v.extend([0x82, (n >> 8) as u8, n as u8]);
            }
            v.extend_from_slice(content);
            v
        }
        let mut seq = Vec::new();
        for rdn in rdns {
            let mut set = Vec::new();
            for (oid, tag, val) in rdn.iter() {
                let mut atv = tlv(0x06, oid);
                atv.extend(tlv(*tag, val));
                set.extend(tlv(0x30, &atv));
            }
            seq.extend(tlv(0x31, &set));
        }
        tlv(0x30, &seq)
    }

    const DC: &[u8] = &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19];
    const UID: &[u8] = &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01];
    const O: &[u8] = &[0x55, 0x04, 0x0a];
    const OU: &[u8] = &[0x55, 0x04, 0x0b];
    const CN: &[u8] = &[0x55, 0x04, 0x03];
    const EMAIL: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01];
    const IA5: u8 = 0x16;
    const UTF8: u8 = 0x0c;
    const PRINTABLE: u8 = 0x13;

    /// A DN with every escaping case (multi-valued RDN, UTF-8, `/` and `=`
    /// in values), checked byte for byte
    /// against OpenSSL 3 and gridsite's output.
    #[test]
    fn tricky_dn_matches_openssl_and_gridsite() {
        let der = name_der(&[
            &[(DC, IA5, b"org")],
            &[(DC, IA5, b"example")],
            &[(O, UTF8, b"Test, Inc.")],
            &[(OU, UTF8, b"A"), (UID, UTF8, b"jdoe")],
            &[(CN, UTF8, "Jürgen O'Neil \"JD\" (x=y)".as_bytes())],
            &[(EMAIL, IA5, b"jd@example.org")],
        ]);
        let (_, name) = X509Name::from_der(&der).unwrap();
        let one = oneline(&name);
        assert_eq!(
            one,
            "/DC=org/DC=example/O=Test, Inc./OU=A+UID=jdoe/CN=J\\xC3\\xBCrgen O'Neil \"JD\" (x=y)/emailAddress=jd@example.org"
        );
        assert_eq!(
            format!("dn:{}", mild_encode(one.as_bytes())),
            "dn:/DC=org/DC=example/O=Test%2C+Inc./OU=A%2BUID=jdoe/CN=J%5CxC3%5CxBCrgen+O%27Neil+%22JD%22+%28x=y%29/emailAddress=jd@example.org"
        );
        assert_eq!(
            rfc2253(&name),
            "emailAddress=jd@example.org,CN=Jürgen O'Neil \\\"JD\\\" (x=y),UID=jdoe+OU=A,O=Test\\, Inc.,DC=example,DC=org"
        );
    }

    /// mod_ssl's per-field values of the same kind of DN: DER order, `_n`
    /// for repeats, no DC, UTF-8 raw, only control characters escaped.
    #[test]
    fn per_field_values_as_mod_ssl_exports_them() {
        let der = name_der(&[
            &[(DC, IA5, b"org")],
            &[(O, UTF8, b"Test, Inc.")],
            &[(OU, UTF8, b"A"), (UID, UTF8, b"jdoe")],
            &[(CN, UTF8, "Jürgen".as_bytes())],
            &[(CN, 0x1e, &[0, b'B', 0x01, 0x7e])],
            &[(CN, 0x14, b"\xe9t\x01")],
            &[(EMAIL, IA5, b"jd@example.org")],
        ]);
        let (_, name) = X509Name::from_der(&der).unwrap();
        let got: Vec<(String, String)> = fields(&name);
        let want: Vec<(String, String)> = [
            ("O", "Test, Inc."),
            ("OU", "A"),
            ("UID", "jdoe"),
            ("CN", "Jürgen"),
            ("CN_1", "B\u{17e}"),
            ("CN_2", "\u{e9}t\\01"),
            ("Email", "jd@example.org"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want);
        assert_eq!(
            rfc2253(&name),
            "emailAddress=jd@example.org,CN=\u{e9}t\\01,CN=B\u{17e},CN=Jürgen,UID=jdoe+OU=A,O=Test\\, Inc.,DC=org"
        );
    }

    #[test]
    fn slash_and_plus_inside_values_are_escaped() {
        let der = name_der(&[
            &[(O, PRINTABLE, b"a/b+c")],
            &[(CN, PRINTABLE, b"Test User 1234")],
        ]);
        let (_, name) = X509Name::from_der(&der).unwrap();
        assert_eq!(oneline(&name), "/O=a\\/b\\+c/CN=Test User 1234");
        assert_eq!(mild_encode(b"/CN=Test User 1234"), "/CN=Test+User+1234");
    }

    #[test]
    fn bmp_ascii_is_narrowed() {
        let der = name_der(&[&[(CN, 0x1e, &[0, b'B', 0, b'o', 0, b'b'])]]);
        let (_, name) = X509Name::from_der(&der).unwrap();
        assert_eq!(oneline(&name), "/CN=Bob");
    }

    #[test]
    fn mild_encoding_of_fqan_specials() {
        assert_eq!(
            mild_encode(b"/fedcloud.egi.eu/g r%p;x:y/Role=NULL"),
            "/fedcloud.egi.eu/g+r%25p%3Bx%3Ay/Role=NULL"
        );
        assert_eq!(mild_encode("café".as_bytes()), "caf%C3%A9");
    }

    #[test]
    fn label_normalisation() {
        assert_eq!(
            normalize_labels("/C=X/Email=a@b/USERID=j"),
            "/C=X/emailAddress=a@b/UID=j"
        );
    }
}
