//! The host a request names: read by the upstream encoders (SERVER_NAME,
//! X-Forwarded-Host) and by the browser login (its redirect URI).

use http::header::HOST;
use http::request::Parts;

/// Splits a Host value into name and port (`[::1]:5000`, `keystone`).
pub fn split_host(host: &str) -> (&str, Option<&str>) {
    if let Some(rest) = host.strip_prefix('[') {
        if let Some((h, tail)) = rest.split_once(']') {
            return (h, tail.strip_prefix(':'));
        }
    }
    match host.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => (h, Some(p)),
        _ => (host, None),
    }
}

/// The request's Host: the Host header, or the h2 `:authority`.
pub fn request_host(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| parts.uri.authority().map(|a| a.as_str().to_string()))
}
