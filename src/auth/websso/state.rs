//! Pending logins: the state, nonce and PKCE verifier of each
//! authorization request, sealed in ONE cookie bound to the browser.
//!
//! mod_auth_openidc set one cookie per login attempt and browsers piled
//! them up until requests failed with 431; fedgate keeps a bounded list
//! in a single cookie instead and drops the oldest attempt.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::session::KeyRing;
use crate::session::crypto::{SealError, random_bytes};

/// Name of the cookie holding pending logins.
pub const COOKIE: &str = "fedgate_login";
/// Longest original URL remembered for the replay.
pub const MAX_TARGET: usize = 2048;
/// Longest sealed cookie value; well under browsers' 4 KiB per cookie.
pub const MAX_COOKIE: usize = 3500;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLogin {
    pub state: String,
    pub nonce: String,
    /// PKCE code_verifier (RFC 7636), 43 characters.
    pub verifier: String,
    /// The `[[idp]]` name the browser was sent to.
    pub idp: String,
    /// Path and query of the request to replay after login.
    pub target: String,
    /// Unix seconds.
    pub created: i64,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum StateError {
    #[error(
        "no login is in progress in this browser (the login cookie is missing); start again from the dashboard"
    )]
    NoCookie,
    #[error("the login cookie is invalid: {0}")]
    Cookie(#[from] SealError),
    #[error(
        "this login response does not belong to a login started in this browser, or was already used"
    )]
    Unknown,
    #[error("the login took too long and expired; start again from the dashboard")]
    Expired,
    #[error("the requested URL is too long to come back to after login")]
    TargetTooLong,
}

fn token() -> Result<String, SealError> {
    Ok(B64.encode(random_bytes::<32>()?))
}

/// S256 code challenge for a verifier.
pub fn pkce_challenge(verifier: &str) -> String {
    B64.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()).as_ref())
}

impl PendingLogin {
    pub fn new(idp: &str, target: &str, now: i64) -> Result<Self, StateError> {
        if target.len() > MAX_TARGET {
            return Err(StateError::TargetTooLong);
        }
        Ok(PendingLogin {
            state: token()?,
            nonce: token()?,
            verifier: token()?,
            idp: idp.into(),
            target: target.into(),
            created: now,
        })
    }
}

/// The bounded list of logins in progress in one browser.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending(pub Vec<PendingLogin>);

/// Constant-time string comparison, for the state value.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Pending {
    /// Reads the cookie; a missing or unreadable cookie is an empty list
    /// when starting a login, and an error when finishing one.
    pub fn open(keys: &KeyRing, cookie: Option<&str>) -> Result<Pending, StateError> {
        let c = cookie.ok_or(StateError::NoCookie)?;
        let plain = keys.open(COOKIE, c)?;
        serde_json::from_slice(&plain).map_err(|_| StateError::Cookie(SealError::Format))
    }

    /// Adds a login, dropping expired ones and the oldest beyond `max`, and
    /// more while the sealed cookie would be too large.
    pub fn push(&mut self, p: PendingLogin, max: usize, now: i64, timeout: i64) {
        self.0.retain(|x| now - x.created <= timeout);
        self.0.push(p);
        while self.0.len() > max.max(1) {
            self.0.remove(0);
        }
    }

    /// Removes and returns the login for `state`.
    pub fn take(
        &mut self,
        state: &str,
        now: i64,
        timeout: i64,
    ) -> Result<PendingLogin, StateError> {
        let i = self
            .0
            .iter()
            .position(|p| same(&p.state, state))
            .ok_or(StateError::Unknown)?;
        let p = self.0.remove(i);
        if now - p.created > timeout {
            return Err(StateError::Expired);
        }
        Ok(p)
    }

    /// Seals the list, dropping the oldest entries until it fits.
    pub fn seal(&mut self, keys: &KeyRing) -> Result<Option<String>, SealError> {
        loop {
            if self.0.is_empty() {
                return Ok(None);
            }
            let plain = serde_json::to_vec(self).map_err(|_| SealError::Format)?;
            let sealed = keys.seal(COOKIE, &plain)?;
            if sealed.len() <= MAX_COOKIE {
                return Ok(Some(sealed));
            }
            self.0.remove(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_rfc7636_vector() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn bounded_and_single_use() {
        let keys = KeyRing::ephemeral().unwrap();
        let mut p = Pending::default();
        let first =
            PendingLogin::new("egi", "/v3/auth/OS-FEDERATION/websso/openid?origin=x", 100).unwrap();
        let first_state = first.state.clone();
        p.push(first, 3, 100, 300);
        for i in 0..5 {
            p.push(
                PendingLogin::new("egi", "/t", 101 + i).unwrap(),
                3,
                101 + i,
                300,
            );
        }
        assert_eq!(p.0.len(), 3, "bounded");
        assert_eq!(
            p.take(&first_state, 110, 300),
            Err(StateError::Unknown),
            "oldest dropped"
        );
        let s = p.0[0].state.clone();
        let sealed = p.seal(&keys).unwrap().unwrap();
        let mut back = Pending::open(&keys, Some(&sealed)).unwrap();
        assert!(back.take(&s, 120, 300).is_ok());
        assert_eq!(
            back.take(&s, 120, 300),
            Err(StateError::Unknown),
            "a state is used once"
        );
        let late = back.0[0].state.clone();
        assert_eq!(back.take(&late, 1000, 300), Err(StateError::Expired));
    }

    #[test]
    fn cookie_size_is_bounded() {
        let keys = KeyRing::ephemeral().unwrap();
        let mut p = Pending::default();
        for i in 0..10 {
            p.push(
                PendingLogin::new("egi", &"x".repeat(MAX_TARGET), i).unwrap(),
                10,
                i,
                300,
            );
        }
        let sealed = p.seal(&keys).unwrap().unwrap();
        assert!(sealed.len() <= MAX_COOKIE);
        assert!(!p.0.is_empty());
        assert_eq!(
            PendingLogin::new("e", &"x".repeat(MAX_TARGET + 1), 0),
            Err(StateError::TargetTooLong)
        );
    }

    #[test]
    fn tampered_or_missing_cookie() {
        let keys = KeyRing::ephemeral().unwrap();
        assert_eq!(Pending::open(&keys, None), Err(StateError::NoCookie));
        assert!(matches!(
            Pending::open(&keys, Some("garbage")),
            Err(StateError::Cookie(_))
        ));
        let other = KeyRing::ephemeral().unwrap();
        let mut p = Pending::default();
        p.push(PendingLogin::new("egi", "/", 0).unwrap(), 3, 0, 300);
        let sealed = p.seal(&other).unwrap().unwrap();
        assert_eq!(
            Pending::open(&keys, Some(&sealed)),
            Err(StateError::Cookie(SealError::Tampered))
        );
    }
}
