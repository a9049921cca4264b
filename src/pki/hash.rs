//! OpenSSL's subject-name hash (`openssl x509 -subject_hash`), which names
//! the files of a hashed CA directory (`<hash>.0`, `<hash>.r0`).
//!
//! The hash is the first four bytes, read little-endian, of SHA-1 over the
//! *canonical* name: every string value re-encoded as UTF8String,
//! lower-cased (ASCII), trimmed and with inner whitespace runs collapsed;
//! the RDN SETs concatenated without the outer SEQUENCE.

use asn1_rs::{Any, Tag};
use x509_parser::prelude::*;

/// DER tag-length-value.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    let n = content.len();
    if n < 0x80 {
        v.push(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        v.push(0x80 | (bytes.len() - skip) as u8);
        v.extend_from_slice(&bytes[skip..]);
    }
    v.extend_from_slice(content);
    v
}

/// A string attribute value as UTF-8, if it is a string type.
fn as_utf8(v: &Any<'_>) -> Option<String> {
    let d: &[u8] = v.data;
    match v.tag() {
        Tag::Utf8String
        | Tag::PrintableString
        | Tag::Ia5String
        | Tag::VisibleString
        | Tag::NumericString => Some(String::from_utf8_lossy(d).into_owned()),
        // OpenSSL reads T61String as Latin-1.
        Tag::T61String => Some(d.iter().map(|&b| b as char).collect()),
        Tag::BmpString => {
            let units: Vec<u16> = d
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                .collect();
            Some(String::from_utf16_lossy(&units))
        }
        Tag::UniversalString => Some(
            d.chunks(4)
                .map(|c| {
                    let mut b = [0u8; 4];
                    b[..c.len()].copy_from_slice(c);
                    char::from_u32(u32::from_be_bytes(b)).unwrap_or('\u{fffd}')
                })
                .collect(),
        ),
        _ => None,
    }
}

fn canon(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut space = false;
    for &b in s.trim_matches(|c: char| c.is_ascii_whitespace()).as_bytes() {
        if b.is_ascii_whitespace() {
            space = true;
            continue;
        }
        if space {
            out.push(b' ');
            space = false;
        }
        out.push(if b.is_ascii_uppercase() {
            b.to_ascii_lowercase()
        } else {
            b
        });
    }
    out
}

/// The canonical encoding OpenSSL hashes.
pub fn canonical_name(name: &X509Name<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    for rdn in name.iter() {
        let mut members: Vec<Vec<u8>> = rdn
            .iter()
            .map(|atv| {
                let mut seq = tlv(0x06, atv.attr_type().as_bytes());
                let v = atv.attr_value();
                match as_utf8(v) {
                    Some(s) => seq.extend(tlv(0x0c, &canon(&s))),
                    None => {
                        let mut raw = Vec::new();
                        let _ = asn1_rs::ToDer::write_der(v, &mut raw);
                        seq.extend(raw);
                    }
                }
                tlv(0x30, &seq)
            })
            .collect();
        members.sort();
        out.extend(tlv(0x31, &members.concat()));
    }
    out
}

/// `X509_NAME_hash` of a Name.
pub fn name_hash(name: &X509Name<'_>) -> u32 {
    let d = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        &canonical_name(name),
    );
    u32::from_le_bytes([d.as_ref()[0], d.as_ref()[1], d.as_ref()[2], d.as_ref()[3]])
}

/// Subject hash of a DER certificate.
pub fn subject_hash(cert_der: &[u8]) -> Result<u32, X509Error> {
    let (_, c) = X509Certificate::from_der(cert_der).map_err(|e| match e {
        nom::Err::Error(e) | nom::Err::Failure(e) => e,
        nom::Err::Incomplete(_) => X509Error::InvalidCertificate,
    })?;
    Ok(name_hash(c.subject()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_strings() {
        assert_eq!(canon("  Example   Grid\tCA "), b"example grid ca".to_vec());
        assert_eq!(canon("ÄB"), "Äb".as_bytes().to_vec());
    }
}
