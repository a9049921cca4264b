//! Why a bearer token was refused. Every variant names the problem without
//! echoing the token, so the text can go to the client and the log.

use http::StatusCode;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no bearer token in the request")]
    Missing,
    #[error("the token is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the token is malformed: {0}")]
    Malformed(String),
    #[error("the token's issuer is not a configured identity provider")]
    UnknownIssuer,
    #[error("tokens of identity provider `{0}` are not accepted on this path")]
    IdpNotAllowed(String),
    #[error("opaque tokens are not accepted on this path")]
    OpaqueNotAccepted,
    #[error("the token is not active (unknown, expired or revoked)")]
    Inactive,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token's issuer does not match its identity provider")]
    WrongIssuer,
    #[error("the token's audience is not accepted")]
    WrongAudience,
    #[error("the token's signature algorithm is not accepted")]
    AlgorithmNotAllowed,
    #[error("no key of the identity provider matches the token")]
    UnknownKey,
    #[error("the token's signature is not valid")]
    BadSignature,
    #[error("the token carries no subject")]
    NoSubject,
    #[error("an ID token is not an access token")]
    IdToken,
    #[error(
        "the identity provider issues RFC 9068 access tokens (typ at+jwt); this JWT is not one"
    )]
    NotAccessToken,
    #[error("the token was issued in the future (iat)")]
    IssuedInFuture,
    #[error(
        "the token's header marks extensions as critical (crit) that fedgate does not implement"
    )]
    CriticalExtension,
    #[error("the identity provider refused to introspect the token (HTTP {0})")]
    Refused(u16),
    #[error("the identity provider answered an invalid introspection response: {0}")]
    BadResponse(String),
    /// Not the client's fault: fail closed with 503, and never cache it.
    #[error("the identity provider is unavailable")]
    Unavailable(String),
}

impl TokenError {
    pub fn status(&self) -> StatusCode {
        match self {
            TokenError::Unavailable(_) | TokenError::BadResponse(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// Whether the verdict depends only on the token, so it may be
    /// remembered in the negative cache.
    pub fn cacheable(&self) -> bool {
        !matches!(
            self,
            TokenError::Unavailable(_)
                | TokenError::BadResponse(_)
                | TokenError::IdpNotAllowed(_)
                | TokenError::OpaqueNotAccepted
                | TokenError::Missing
                | TokenError::TooLarge(_)
        )
    }

    /// RFC 6750 §3 challenge.
    pub fn challenge(&self) -> String {
        let code = match self {
            TokenError::Missing => "invalid_request",
            _ => "invalid_token",
        };
        let desc = self.to_string().replace(['"', '\\'], "'");
        format!("Bearer realm=\"fedgate\", error=\"{code}\", error_description=\"{desc}\"")
    }
}
