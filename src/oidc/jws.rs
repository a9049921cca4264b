//! Local JWT checks: keys from the IdP's JWKS only, an algorithm allow-list
//! per key type, and iss/aud/exp/nbf/iat with leeway (mod_auth_openidc
//! 2.4.12 checks none of iss, aud and nbf). A JWS header that marks
//! extensions as critical (`crit`, RFC 7515 §4.1.11) is refused: fedgate
//! implements none.
//!
//! An access token must be one ([`access_token_rule`]): with no audience
//! configured (what EGI needs), an ID token the IdP issued to any client
//! would otherwise log its user in wherever a bearer token is accepted.

use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use super::error::TokenError;
use crate::oidc::Idp;
use crate::oidc::jwks::{KeySet, parse_alg};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A JWS in compact form, split but not verified.
pub struct Unverified {
    pub alg: String,
    pub kid: Option<String>,
    /// The header's `typ`, if any (`at+jwt` for RFC 9068 access tokens).
    pub typ: Option<String>,
    pub payload: Map<String, Value>,
}

/// Whether a token is a compact JWS (three base64url parts, a JSON header
/// with `alg`). Anything else is treated as an opaque token.
pub fn looks_like_jwt(token: &str) -> bool {
    let mut parts = token.split('.');
    let (Some(h), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    B64.decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice::<Map<String, Value>>(&b).ok())
        .is_some_and(|m| m.contains_key("alg"))
}

/// Reads header and payload without checking anything, to route the
/// token to the IdP named by its `iss`.
pub fn peek(token: &str) -> Result<Unverified, TokenError> {
    let bad = |m: &str| TokenError::Malformed(m.into());
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("not a compact JWS"));
    };
    let header: Map<String, Value> = B64
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| bad("JWT header is not base64url JSON"))?;
    let payload: Map<String, Value> = B64
        .decode(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| bad("JWT payload is not base64url JSON"))?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("JWT header has no alg"))?;
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(bad("JWT kid is not a string")),
    };
    let typ = match header.get("typ") {
        None => None,
        Some(Value::String(t)) => Some(t.clone()),
        Some(_) => return Err(bad("JWT typ is not a string")),
    };
    if header.contains_key("crit") {
        return Err(TokenError::CriticalExtension);
    }
    Ok(Unverified {
        alg: alg.to_string(),
        kid,
        typ,
        payload,
    })
}

/// The unverified `iss`, for routing only.
pub fn issuer(u: &Unverified) -> Result<&str, TokenError> {
    u.payload
        .get("iss")
        .and_then(Value::as_str)
        .ok_or_else(|| TokenError::Malformed("JWT has no iss".into()))
}

/// Verifies a JWT access token issued by `idp` and returns its claims.
pub async fn verify_access_token(idp: &Idp, token: &str) -> Result<Map<String, Value>, TokenError> {
    let u = peek(token)?;
    let alg = allowed_alg(&u.alg, &idp.algorithms)?;
    let keys = idp
        .jwks
        .keys_for(u.kid.as_deref())
        .await
        .map_err(|e| TokenError::Unavailable(e.to_string()))?;
    let claims = check_with(
        token,
        alg,
        u.kid.as_deref(),
        &keys,
        idp.issuer(),
        &idp.config.audience,
        idp.config.leeway_secs,
    )?;
    access_token_rule(u.typ.as_deref(), &claims, idp.config.require_at_jwt)?;
    Ok(claims)
}

/// Whether a verified JWT may serve as an access token.
///
/// - An RFC 9068 access token (`typ: at+jwt`, or `application/at+jwt`)
///   always may, and so may a token with Keycloak's `typ: "Bearer"` claim.
/// - Otherwise, any sign of an ID token refuses it: a header `typ` of
///   `id_token`, a `nonce`, `at_hash` or `c_hash` claim (OIDC Core §2 and
///   §3.1.3.6: only ID tokens carry them), or Keycloak's `typ: "ID"` claim.
/// - `require_at_jwt` (per IdP) accepts RFC 9068 access tokens only.
pub fn access_token_rule(
    header_typ: Option<&str>,
    claims: &Map<String, Value>,
    require_at_jwt: bool,
) -> Result<(), TokenError> {
    let typ = header_typ.map(|t| {
        let t = t.to_ascii_lowercase();
        t.strip_prefix("application/")
            .map(str::to_string)
            .unwrap_or(t)
    });
    let at_jwt = typ.as_deref() == Some("at+jwt");
    if require_at_jwt && !at_jwt {
        return Err(TokenError::NotAccessToken);
    }
    let claim_typ = claims.get("typ").and_then(Value::as_str);
    if at_jwt || claim_typ.is_some_and(|t| t.eq_ignore_ascii_case("bearer")) {
        return Ok(());
    }
    let id_token = typ.as_deref() == Some("id_token")
        || ["nonce", "at_hash", "c_hash"]
            .iter()
            .any(|c| claims.contains_key(*c))
        || claim_typ.is_some_and(|t| t.eq_ignore_ascii_case("id"));
    if id_token {
        return Err(TokenError::IdToken);
    }
    Ok(())
}

/// The header's algorithm, if it is on the IdP's allow-list. `none` and
/// HS* can never be on it (see [`parse_alg`]).
pub fn allowed_alg(alg: &str, allowed: &[Algorithm]) -> Result<Algorithm, TokenError> {
    match parse_alg(alg) {
        Some(a) if allowed.contains(&a) => Ok(a),
        _ => Err(TokenError::AlgorithmNotAllowed),
    }
}

/// The signature and claim checks, given the key set.
pub fn check_with(
    token: &str,
    alg: Algorithm,
    kid: Option<&str>,
    keys: &KeySet,
    issuer: &str,
    audience: &[String],
    leeway: u64,
) -> Result<Map<String, Value>, TokenError> {
    let candidates = keys.candidates(kid, alg);
    if candidates.is_empty() {
        return Err(TokenError::UnknownKey);
    }
    let mut v = Validation::new(alg);
    v.leeway = leeway;
    v.validate_nbf = true;
    v.validate_exp = true;
    v.set_issuer(&[issuer]);
    if audience.is_empty() {
        v.validate_aud = false;
        v.set_required_spec_claims(&["exp", "iss"]);
    } else {
        v.set_audience(audience);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
    }
    for k in candidates {
        match jsonwebtoken::decode::<Map<String, Value>>(token, &k.key, &v) {
            Ok(d) => {
                // jsonwebtoken does not look at iat: a token "issued" in
                // the future means a broken or hostile issuer clock.
                if let Some(iat) = d.claims.get("iat").and_then(Value::as_f64)
                    && iat > (unix_now() + leeway) as f64
                {
                    return Err(TokenError::IssuedInFuture);
                }
                return Ok(d.claims);
            }
            Err(e) => match e.kind() {
                ErrorKind::InvalidSignature => continue,
                ErrorKind::ExpiredSignature => return Err(TokenError::Expired),
                ErrorKind::ImmatureSignature => return Err(TokenError::NotYetValid),
                ErrorKind::InvalidIssuer => return Err(TokenError::WrongIssuer),
                ErrorKind::InvalidAudience => return Err(TokenError::WrongAudience),
                ErrorKind::MissingRequiredClaim(c) => {
                    return Err(TokenError::Malformed(format!("JWT has no {c}")));
                }
                ErrorKind::InvalidAlgorithm => return Err(TokenError::AlgorithmNotAllowed),
                _ => return Err(TokenError::Malformed("JWT claims are not valid".into())),
            },
        }
    }
    Err(TokenError::BadSignature)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
