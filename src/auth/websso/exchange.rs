//! Code for tokens, and the checks that make the ID token trustworthy.

use http::StatusCode;
use serde_json::{Map, Value};

use super::state::PendingLogin;
use crate::oidc::Idp;
use crate::oidc::jws;

#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("identity provider {0} could not be reached: {1}")]
    Unavailable(String, String),
    #[error("identity provider {0} refused the code: {1}")]
    Refused(String, String),
    #[error("the ID token was refused: {0}")]
    IdToken(String),
}

impl ExchangeError {
    pub fn status(&self) -> StatusCode {
        match self {
            ExchangeError::Unavailable(..) => StatusCode::BAD_GATEWAY,
            _ => StatusCode::UNAUTHORIZED,
        }
    }
}

/// Redeems the code (with the PKCE verifier), verifies the ID token and
/// merges userinfo. Returns the claims and the raw ID token (for logout).
/// As in mod_auth_openidc, ID-token claims win over userinfo ones.
pub async fn code_for_claims(
    idp: &Idp,
    code: &str,
    login: &PendingLogin,
    redirect_uri: &str,
    iat_slack: u64,
    now: i64,
) -> Result<(Map<String, Value>, Option<String>), ExchangeError> {
    let name = idp.name().to_string();
    let unavailable = |e: String| ExchangeError::Unavailable(name.clone(), e);
    let meta = idp
        .discovery
        .get()
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let token_ep = meta
        .token_endpoint
        .clone()
        .ok_or_else(|| unavailable("no token_endpoint in discovery".into()))?;
    let client_id = idp.config.client_id.clone().unwrap_or_default();
    let secret = idp.client_secret.as_ref().map(|s| s.expose().to_string());
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", login.verifier.as_str()),
    ];
    if secret.is_none() {
        form.push(("client_id", client_id.as_str()));
    }
    let basic = secret.as_deref().map(|s| (client_id.as_str(), s));
    let a = idp
        .http
        .post_form(&token_ep, basic, &form)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let body: Map<String, Value> = serde_json::from_slice(&a.body).unwrap_or_default();
    if !a.status.is_success() {
        let err = body.get("error").and_then(Value::as_str).unwrap_or("error");
        return Err(ExchangeError::Refused(
            name,
            format!("HTTP {} {err}", a.status.as_u16()),
        ));
    }
    let id_token = body
        .get("id_token")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ExchangeError::Refused(name.clone(), "the token response has no id_token".into())
        })?
        .to_string();
    let mut claims =
        verify_id_token(idp, &id_token, &client_id, &login.nonce, iat_slack, now).await?;

    if let Some(at) = body.get("access_token").and_then(Value::as_str) {
        if let Ok(ep) = idp.userinfo_endpoint().await {
            match idp.http.get(&ep, Some(at)).await {
                Ok(u) if u.status.is_success() => {
                    let info: Map<String, Value> =
                        serde_json::from_slice(&u.body).unwrap_or_default();
                    if info.get("sub") != claims.get("sub") {
                        return Err(ExchangeError::IdToken(
                            "userinfo is about another subject".into(),
                        ));
                    }
                    let mut merged = info;
                    merged.append(&mut claims);
                    claims = merged;
                }
                Ok(u) => {
                    tracing::warn!(idp = %name, status = u.status.as_u16(), "userinfo refused; using ID-token claims only")
                }
                Err(e) => {
                    tracing::warn!(idp = %name, error = %e, "userinfo failed; using ID-token claims only")
                }
            }
        }
    }
    Ok((claims, Some(id_token)))
}

/// OIDC Core §3.1.3.7: signature by a JWKS key, iss, aud (and azp), exp,
/// iat within the slack, nonce.
pub async fn verify_id_token(
    idp: &Idp,
    token: &str,
    client_id: &str,
    nonce: &str,
    iat_slack: u64,
    now: i64,
) -> Result<Map<String, Value>, ExchangeError> {
    let bad = |m: String| ExchangeError::IdToken(m);
    let u = jws::peek(token).map_err(|e| bad(e.to_string()))?;
    let alg = jws::allowed_alg(&u.alg, &idp.algorithms).map_err(|e| bad(e.to_string()))?;
    let keys = idp
        .jwks
        .keys_for(u.kid.as_deref())
        .await
        .map_err(|e| ExchangeError::Unavailable(idp.name().into(), e.to_string()))?;
    let claims = jws::check_with(
        token,
        alg,
        u.kid.as_deref(),
        &keys,
        idp.issuer(),
        &[client_id.to_string()],
        idp.config.leeway_secs,
    )
    .map_err(|e| bad(e.to_string()))?;
    if claims.get("nonce").and_then(Value::as_str) != Some(nonce) {
        return Err(bad(
            "nonce does not match this login (replayed or injected response)".into(),
        ));
    }
    if let Some(Value::Array(auds)) = claims.get("aud") {
        if auds.len() > 1 && claims.get("azp").and_then(Value::as_str) != Some(client_id) {
            return Err(bad("azp does not name this client".into()));
        }
    }
    match claims.get("iat").and_then(Value::as_i64) {
        Some(iat) if (now - iat).unsigned_abs() <= iat_slack => {}
        Some(_) => return Err(bad("iat is outside the allowed clock slack".into())),
        None => return Err(bad("the ID token has no iat".into())),
    }
    Ok(claims)
}
