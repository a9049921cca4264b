//! RFC 7662 token introspection with HTTP Basic client authentication,
//! and the checks fedgate applies to the answer.

use serde_json::{Map, Value};

use super::error::TokenError;
use crate::oidc::Idp;

/// The IdP's answer: the raw body (for the ESACO endpoint) and its claims.
pub struct Introspected {
    pub claims: Map<String, Value>,
}

/// Asks `idp` about `token`.
pub async fn introspect(idp: &Idp, token: &str) -> Result<Introspected, TokenError> {
    let endpoint = idp
        .introspection_endpoint()
        .await
        .map_err(|e| TokenError::Unavailable(e.to_string()))?;
    let id = idp.config.client_id.as_deref().unwrap_or_default();
    let secret = idp
        .client_secret
        .as_ref()
        .map(|s| s.expose())
        .unwrap_or_default();
    let a = idp
        .http
        .post_form(
            &endpoint,
            Some((id, secret)),
            &[("token", token), ("token_type_hint", "access_token")],
        )
        .await
        .map_err(|e| TokenError::Unavailable(e.to_string()))?;
    match a.status.as_u16() {
        200 => {}
        // Our client credentials or the IdP itself are at fault, not the token.
        401 | 403 | 429 | 500..=599 => {
            return Err(TokenError::Unavailable(format!(
                "introspection at {endpoint} answered HTTP {}",
                a.status.as_u16()
            )));
        }
        s => return Err(TokenError::Refused(s)),
    }
    let now = jsonwebtoken::get_current_timestamp();
    let claims = check_response(
        &a.body,
        idp.issuer(),
        &idp.config.audience,
        now,
        idp.config.leeway_secs,
    )?;
    Ok(Introspected { claims })
}

fn as_time(v: &Value, name: &str) -> Result<i64, TokenError> {
    v.as_i64()
        .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
        .ok_or_else(|| TokenError::BadResponse(format!("`{name}` is not a number")))
}

/// Checks an introspection answer (RFC 7662 §2.2): a JSON object with
/// `"active": true`; `exp` and `nbf`, when present, honoured with leeway;
/// `iss`, when present, equal to the IdP's issuer; and, when audiences
/// are configured, one of them in `aud` or as `client_id`.
pub fn check_response(
    body: &[u8],
    issuer: &str,
    audience: &[String],
    now: u64,
    leeway: u64,
) -> Result<Map<String, Value>, TokenError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|_| TokenError::BadResponse("not JSON".into()))?;
    let Value::Object(m) = v else {
        return Err(TokenError::BadResponse("not a JSON object".into()));
    };
    match m.get("active") {
        Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => return Err(TokenError::Inactive),
        _ => {
            return Err(TokenError::BadResponse(
                "`active` is missing or not a boolean".into(),
            ));
        }
    }
    let now = now as i64;
    let leeway = leeway as i64;
    if let Some(exp) = m.get("exp") {
        if as_time(exp, "exp")? + leeway <= now {
            return Err(TokenError::Expired);
        }
    }
    if let Some(nbf) = m.get("nbf") {
        if as_time(nbf, "nbf")? - leeway > now {
            return Err(TokenError::NotYetValid);
        }
    }
    if let Some(iss) = m.get("iss") {
        if iss.as_str() != Some(issuer) {
            return Err(TokenError::WrongIssuer);
        }
    }
    if !audience.is_empty() {
        let in_aud = match m.get("aud") {
            Some(Value::String(a)) => audience.contains(a),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .any(|x| audience.iter().any(|w| w == x)),
            _ => false,
        };
        let as_client = m
            .get("client_id")
            .and_then(Value::as_str)
            .is_some_and(|c| audience.iter().any(|w| w == c));
        if !in_aud && !as_client {
            return Err(TokenError::WrongAudience);
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn chk(body: &str, aud: &[&str]) -> Result<Map<String, Value>, TokenError> {
        let aud: Vec<String> = aud.iter().map(|s| s.to_string()).collect();
        check_response(body.as_bytes(), "https://i", &aud, NOW, 60)
    }

    #[test]
    fn active_answers() {
        let ok =
            r#"{"active":true,"sub":"s","iss":"https://i","exp":1800000100,"client_id":"cli"}"#;
        assert_eq!(chk(ok, &[]).unwrap()["sub"], "s");
        assert_eq!(chk(r#"{"active":false}"#, &[]), Err(TokenError::Inactive));
        assert!(matches!(
            chk(r#"{"active":"true"}"#, &[]),
            Err(TokenError::BadResponse(_))
        ));
        assert!(matches!(
            chk(r#"{"sub":"s"}"#, &[]),
            Err(TokenError::BadResponse(_))
        ));
        assert!(matches!(chk("[]", &[]), Err(TokenError::BadResponse(_))));
        assert!(matches!(
            chk("<html>", &[]),
            Err(TokenError::BadResponse(_))
        ));
    }

    #[test]
    fn time_checks_with_leeway() {
        assert_eq!(
            chk(r#"{"active":true,"exp":1799999900}"#, &[]),
            Err(TokenError::Expired)
        );
        assert!(chk(r#"{"active":true,"exp":1799999970}"#, &[]).is_ok());
        assert!(chk(r#"{"active":true,"exp":1799999970.5}"#, &[]).is_ok());
        assert!(matches!(
            chk(r#"{"active":true,"exp":"soon"}"#, &[]),
            Err(TokenError::BadResponse(_))
        ));
        assert_eq!(
            chk(r#"{"active":true,"nbf":1800000100}"#, &[]),
            Err(TokenError::NotYetValid)
        );
        assert!(chk(r#"{"active":true,"nbf":1800000030}"#, &[]).is_ok());
    }

    #[test]
    fn issuer_and_audience_or_client() {
        assert_eq!(
            chk(r#"{"active":true,"iss":"https://i/"}"#, &[]),
            Err(TokenError::WrongIssuer)
        );
        assert_eq!(
            chk(r#"{"active":true,"iss":5}"#, &[]),
            Err(TokenError::WrongIssuer)
        );
        assert!(chk(r#"{"active":true,"aud":["x","ks"]}"#, &["ks"]).is_ok());
        assert!(chk(r#"{"active":true,"aud":"ks"}"#, &["ks"]).is_ok());
        assert!(chk(r#"{"active":true,"client_id":"ks"}"#, &["ks"]).is_ok());
        assert_eq!(
            chk(r#"{"active":true,"aud":"x","client_id":"y"}"#, &["ks"]),
            Err(TokenError::WrongAudience)
        );
    }
}
