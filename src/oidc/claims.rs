//! Claims to the identity Keystone sees, byte-compatible with what
//! mod_auth_openidc 2.4.12 hands over (`OIDCClaimPrefix "OIDC-"`,
//! `OIDCClaimDelimiter ";"`, default `OIDCPassClaimsAs both`), so federated
//! users keep the same Keystone user when a site moves to fedgate.
//!
//! Independent of where the claims came from: introspection, a verified
//! JWT, an ID token or userinfo all produce a JSON object.

use serde_json::{Map, Value};

use super::idp::RemoteUser;
use crate::identity::{AuthMethod, Identity};

/// The prefix of exported claims (`OIDCClaimPrefix`).
pub const PREFIX: &str = "OIDC-";
/// Multi-valued claims are joined with this; Keystone splits on it.
pub const DELIMITER: &str = ";";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsError {
    #[error("the token has no `sub`")]
    NoSubject,
}

/// Which claims to export and how to name the user.
#[derive(Debug, Clone)]
pub struct Export {
    /// Claim names, or `"*"` for every top-level claim.
    pub claims: Vec<String>,
    pub remote_user: RemoteUser,
}

impl Export {
    fn wants(&self, name: &str) -> bool {
        self.claims.iter().any(|c| c == "*" || c == name)
    }
}

/// A claim value as mod_auth_openidc writes it, or `None` when it writes
/// nothing (`null`). Strings verbatim, booleans `1`/`0`, integers in
/// decimal, reals as C's `%lf`, arrays of strings and booleans joined with
/// the delimiter (other elements dropped, the delimiter not escaped), an
/// empty array as an empty value, objects as one-line JSON. A line feed
/// becomes a space; everything else, including non-ASCII, is kept raw.
pub fn format_value(v: &Value) -> Option<Vec<u8>> {
    let s = match v {
        Value::Null => return None,
        Value::String(s) => s.clone(),
        Value::Bool(b) => bool_str(*b).into(),
        Value::Number(n) => number(n),
        Value::Array(items) => items
            .iter()
            .filter_map(|i| match i {
                Value::String(s) => Some(s.clone()),
                Value::Bool(b) => Some(bool_str(*b).into()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(DELIMITER),
        Value::Object(_) => {
            let mut out = String::new();
            jansson_dump(v, &mut out);
            out
        }
    };
    Some(s.replace('\n', " ").into_bytes())
}

fn bool_str(b: bool) -> &'static str {
    if b { "1" } else { "0" }
}

fn number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        i.to_string()
    } else if let Some(u) = n.as_u64() {
        // Beyond %ld in C; keep the digits rather than wrapping.
        u.to_string()
    } else {
        format!("{:.6}", n.as_f64().unwrap_or(0.0))
    }
}

/// jansson's default `json_dumps` layout: `", "` and `": "` separators,
/// no indentation, non-ASCII left as UTF-8, `/` not escaped.
fn jansson_dump(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if n.is_f64() {
                // jansson prints reals with %.17g, then ensures a '.'.
                let f = n.as_f64().unwrap_or(0.0);
                let mut s = format!("{f}");
                if !s.contains(['.', 'e', 'E']) {
                    s.push_str(".0");
                }
                out.push_str(&s);
            } else {
                out.push_str(&n.to_string());
            }
        }
        Value::String(s) => out.push_str(&serde_json::to_string(s).unwrap_or_default()),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                jansson_dump(x, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&serde_json::to_string(k).unwrap_or_default());
                out.push_str(": ");
                jansson_dump(x, out);
            }
            out.push('}');
        }
    }
}

/// `REMOTE_USER` as mod_auth_openidc derives it.
pub fn remote_user(style: RemoteUser, sub: &str, iss: &str) -> Option<String> {
    match style {
        RemoteUser::None => None,
        RemoteUser::Sub => Some(sub.to_string()),
        RemoteUser::SubAtIssuer => {
            let host = iss.strip_prefix("https://").unwrap_or(iss);
            Some(format!("{sub}@{host}"))
        }
    }
}

/// Builds the identity: `HTTP_OIDC_ISS` (the validated issuer),
/// `HTTP_OIDC_SUB`, one `OIDC-<claim>` per exported claim, and
/// `REMOTE_USER`. Fails without a string `sub`: an identity Keystone
/// cannot key a user on must not be forwarded.
pub fn to_identity(
    method: AuthMethod,
    issuer: &str,
    claims: &Map<String, Value>,
    export: &Export,
) -> Result<Identity, ClaimsError> {
    let sub = match claims.get("sub") {
        Some(Value::String(s)) if !s.is_empty() => s.as_str(),
        _ => return Err(ClaimsError::NoSubject),
    };
    let mut id = Identity::new(method, sub);
    id.set("HTTP_OIDC_ISS", issuer.as_bytes().to_vec());
    id.set(
        "HTTP_OIDC_SUB",
        format_value(&Value::String(sub.into())).unwrap_or_default(),
    );
    for (name, v) in claims {
        if !export.wants(name) {
            continue;
        }
        if let Some(val) = format_value(v) {
            id.set(format!("{PREFIX}{}", header_name(name)), val);
        }
    }
    id.remote_user = remote_user(export.remote_user, sub, issuer);
    Ok(id)
}

/// mod_auth_openidc's header-name normalisation: control characters, DEL,
/// non-ASCII bytes and RFC 2616 separators become `-`; case is kept.
pub fn header_name(claim: &str) -> String {
    claim
        .bytes()
        .map(|b| {
            if !(0x20..0x7f).contains(&b) || b"()<>@,;:\\\"/[]?={} \t".contains(&b) {
                '-'
            } else {
                b as char
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
