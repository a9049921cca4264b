//! The S/MIME envelope of a signed list (RFC 8551): `multipart/signed`
//! with a detached `application/(x-)pkcs7-signature` part, as hepixvmitrust
//! and `openssl smime -sign` write it, or an opaque
//! `application/(x-)pkcs7-mime; smime-type=signed-data` body.
//!
//! This module only takes the envelope apart; the CMS structure is checked
//! by [`super::signature`].

use base64::Engine;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SmimeError {
    #[error("not an S/MIME message: {0}")]
    NotSmime(String),
    #[error("multipart/signed: {0}")]
    Multipart(String),
    #[error("the signature is not valid base64")]
    Base64,
}

/// The pieces of a signed list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Envelope {
    /// `multipart/signed`: the first part's bytes as they appear between
    /// the boundaries, and the DER/BER of the detached signature.
    Detached { content: Vec<u8>, cms: Vec<u8> },
    /// `pkcs7-mime`: the CMS carries its content.
    Opaque { cms: Vec<u8> },
}

/// Splits a message into header lines (unfolded) and the body.
fn split_headers(msg: &[u8]) -> Result<(Vec<String>, &[u8]), SmimeError> {
    let mut headers: Vec<String> = Vec::new();
    let mut pos = 0;
    loop {
        let Some(nl) = msg[pos..].iter().position(|&b| b == b'\n') else {
            return Err(SmimeError::NotSmime(
                "no blank line after the headers".into(),
            ));
        };
        let line = &msg[pos..pos + nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        pos += nl + 1;
        if line.is_empty() {
            return Ok((headers, &msg[pos..]));
        }
        let text = std::str::from_utf8(line)
            .map_err(|_| SmimeError::NotSmime("header is not UTF-8".into()))?;
        if text.starts_with([' ', '\t']) {
            match headers.last_mut() {
                Some(h) => h.push_str(text),
                None => return Err(SmimeError::NotSmime("continuation line first".into())),
            }
        } else if text.contains(':') {
            headers.push(text.to_string());
        } else {
            return Err(SmimeError::NotSmime(format!(
                "not a header line: {text:.60}"
            )));
        }
        if headers.len() > 64 {
            return Err(SmimeError::NotSmime("too many header lines".into()));
        }
    }
}

/// The value of header `name` (case-insensitive), if present.
fn header<'a>(headers: &'a [String], name: &str) -> Option<&'a str> {
    headers.iter().find_map(|h| {
        let (n, v) = h.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Media type (lower-cased) and parameters (names lower-cased, quotes
/// removed) of a Content-Type value.
fn content_type(v: &str) -> (String, Vec<(String, String)>) {
    let mut parts = v.split(';');
    let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let params = parts
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            Some((k.trim().to_ascii_lowercase(), v.to_string()))
        })
        .collect();
    (media, params)
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn is_pkcs7_signature(media: &str) -> bool {
    matches!(
        media,
        "application/pkcs7-signature" | "application/x-pkcs7-signature"
    )
}

fn is_pkcs7_mime(media: &str) -> bool {
    matches!(media, "application/pkcs7-mime" | "application/x-pkcs7-mime")
}

fn decode_b64(body: &[u8]) -> Result<Vec<u8>, SmimeError> {
    let clean: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(&clean)
        .map_err(|_| SmimeError::Base64)
}

/// The body of a single MIME entity in `application/(x-)pkcs7-*`, decoded.
fn pkcs7_body(headers: &[String], body: &[u8]) -> Result<Vec<u8>, SmimeError> {
    match header(headers, "content-transfer-encoding").map(str::to_ascii_lowercase) {
        Some(e) if e == "base64" => decode_b64(body),
        Some(e) if e == "binary" => Ok(body.to_vec()),
        // OpenSSL always writes base64; a missing header means the same.
        None => decode_b64(body),
        Some(e) => Err(SmimeError::NotSmime(format!(
            "unsupported transfer encoding {e}"
        ))),
    }
}

/// Lines of `body` with their byte ranges, line end excluded, and the
/// start of the line end.
fn lines(body: &[u8]) -> Vec<(usize, usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < body.len() {
        let end = body[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| start + i)
            .unwrap_or(body.len());
        let text_end = if end > start && body[end - 1] == b'\r' {
            end - 1
        } else {
            end
        };
        out.push((start, text_end, (end + 1).min(body.len())));
        start = end + 1;
    }
    out
}

/// Splits a `multipart/signed` body at `boundary` (RFC 2046 §5.1.1: the
/// line end before a delimiter belongs to the delimiter).
fn split_multipart<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<&'a [u8]>, SmimeError> {
    let delim = format!("--{boundary}");
    let close = format!("--{boundary}--");
    let mut parts = Vec::new();
    let mut current: Option<usize> = None;
    let mut prev_text_end = 0;
    let mut closed = false;
    for (start, text_end, next) in lines(body) {
        let line = &body[start..text_end];
        let trimmed = line.trim_ascii_end();
        let is_close = trimmed == close.as_bytes();
        if is_close || trimmed == delim.as_bytes() {
            if let Some(s) = current {
                parts.push(&body[s..prev_text_end.max(s)]);
            }
            if is_close {
                closed = true;
                break;
            }
            current = Some(next);
        }
        prev_text_end = text_end;
    }
    if !closed {
        return Err(SmimeError::Multipart("no closing boundary".into()));
    }
    Ok(parts)
}

/// Takes a signed list apart.
pub fn parse(msg: &[u8]) -> Result<Envelope, SmimeError> {
    let (headers, body) = split_headers(msg)?;
    let ct = header(&headers, "content-type")
        .ok_or_else(|| SmimeError::NotSmime("no Content-Type header".into()))?;
    let (media, params) = content_type(ct);
    if is_pkcs7_mime(&media) {
        if let Some(t) = param(&params, "smime-type") {
            if !t.eq_ignore_ascii_case("signed-data") {
                return Err(SmimeError::NotSmime(format!(
                    "smime-type={t} is not signed-data"
                )));
            }
        }
        return Ok(Envelope::Opaque {
            cms: pkcs7_body(&headers, body)?,
        });
    }
    if media != "multipart/signed" {
        return Err(SmimeError::NotSmime(format!("Content-Type {media}")));
    }
    match param(&params, "protocol") {
        Some(p) if is_pkcs7_signature(&p.to_ascii_lowercase()) => {}
        other => {
            return Err(SmimeError::Multipart(format!(
                "protocol {other:?} is not application/(x-)pkcs7-signature"
            )));
        }
    }
    let boundary = param(&params, "boundary")
        .filter(|b| !b.is_empty() && b.len() <= 70)
        .ok_or_else(|| SmimeError::Multipart("no usable boundary parameter".into()))?;
    let parts = split_multipart(body, boundary)?;
    let [content, sig] = parts.as_slice() else {
        return Err(SmimeError::Multipart(format!(
            "{} parts instead of 2",
            parts.len()
        )));
    };
    let (sig_headers, sig_body) =
        split_headers(sig).map_err(|e| SmimeError::Multipart(format!("signature part: {e}")))?;
    let sig_ct = header(&sig_headers, "content-type").unwrap_or("");
    if !is_pkcs7_signature(&content_type(sig_ct).0) {
        return Err(SmimeError::Multipart(format!(
            "second part is {sig_ct:?}, not application/(x-)pkcs7-signature"
        )));
    }
    Ok(Envelope::Detached {
        content: content.to_vec(),
        cms: pkcs7_body(&sig_headers, sig_body)?,
    })
}

/// The canonical text form that S/MIME signs (RFC 8551 §3.1.1: CRLF line
/// ends), computed as OpenSSL does when it signs or verifies without
/// `-binary`: every line end, with any CRs before it, becomes CRLF.
pub fn canonical(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + content.len() / 32);
    for seg in content.split_inclusive(|&b| b == b'\n') {
        let eol = seg.ends_with(b"\n");
        let mut end = seg.len();
        while end > 0 && matches!(seg[end - 1], b'\n' | b'\r') {
            end -= 1;
        }
        out.extend_from_slice(&seg[..end]);
        if eol {
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

/// The JSON inside signed content: the content itself, or, when the
/// signer wrapped it in a MIME entity (`openssl smime -text`), its body.
pub fn json_body(content: &[u8]) -> &[u8] {
    let start = content
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(content.len());
    if content.get(start) == Some(&b'{') {
        return content;
    }
    match split_headers(content) {
        Ok((h, body)) if header(&h, "content-type").is_some() => body,
        _ => content,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detached_parts_and_line_ends() {
        let msg = b"MIME-Version: 1.0\nContent-Type: multipart/signed; protocol=\"application/x-pkcs7-signature\"; micalg=\"sha-256\"; boundary=\"----AB\"\n\nThis is an S/MIME signed message\n\n------AB\n{\"a\": 1}\n\n------AB\nContent-Type: application/x-pkcs7-signature; name=\"smime.p7s\"\nContent-Transfer-Encoding: base64\n\nAQID\n\n------AB--\n\n";
        let Envelope::Detached { content, cms } = parse(msg).unwrap() else {
            panic!("detached expected")
        };
        assert_eq!(content, b"{\"a\": 1}\n");
        assert_eq!(cms, vec![1, 2, 3]);
        let crlf = String::from_utf8_lossy(msg).replace('\n', "\r\n");
        let Envelope::Detached { content, .. } = parse(crlf.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(content, b"{\"a\": 1}\r\n");
        assert_eq!(canonical(b"a\nb\r\nc\r\r\n\nd"), b"a\r\nb\r\nc\r\n\r\nd");
    }

    #[test]
    fn refusals() {
        assert!(matches!(
            parse(b"{\"hv:imagelist\": {}}"),
            Err(SmimeError::NotSmime(_))
        ));
        assert!(matches!(
            parse(b"Content-Type: text/plain\n\nx"),
            Err(SmimeError::NotSmime(_))
        ));
        let no_close = b"Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=b\n\n--b\nx\n--b\n";
        assert!(matches!(parse(no_close), Err(SmimeError::Multipart(_))));
        let opaque = b"Content-Type: application/pkcs7-mime; smime-type=signed-data\n\n!!\n";
        assert_eq!(parse(opaque), Err(SmimeError::Base64));
        assert_eq!(json_body(b"Content-Type: text/plain\r\n\r\n{}"), b"{}");
    }
}
