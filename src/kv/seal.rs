//! Sealing: XChaCha20-Poly1305 with a name as associated data (the cookie
//! name for cookies, the full storage key for shared-state values), so a
//! value cannot be moved from one name to another, and a key ring so that
//! keys can be rotated without logging everyone out.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use thiserror::Error;

/// Format version byte, so the layout can change later.
const VERSION: u8 = 1;
const NONCE: usize = 24;

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum SealError {
    #[error("cookie is not valid base64")]
    Encoding,
    #[error("cookie is too short or has an unknown format")]
    Format,
    #[error("cookie was not sealed by any current key, or was tampered with")]
    Tampered,
    #[error("a session key must be 32 bytes, base64-encoded; got {0} bytes")]
    KeyLength(usize),
    #[error("the system random generator failed")]
    Random,
}

/// Keys for sealing: the first seals, all of them open.
#[derive(Clone)]
pub struct KeyRing {
    keys: Vec<([u8; 4], XChaCha20Poly1305)>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyRing({} keys)", self.keys.len())
    }
}

/// Short public identifier of a key, stored in the cookie so that opening
/// tries the right key first.
fn key_id(raw: &[u8]) -> [u8; 4] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, raw);
    [d.as_ref()[0], d.as_ref()[1], d.as_ref()[2], d.as_ref()[3]]
}

/// Associated data: the cookie name and the header, so neither can be
/// changed without detection.
fn aad(name: &str, id: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(name.len() + 5);
    a.push(VERSION);
    a.extend_from_slice(id);
    a.extend_from_slice(name.as_bytes());
    a
}

pub fn random_bytes<const N: usize>() -> Result<[u8; N], SealError> {
    let mut b = [0u8; N];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| SealError::Random)?;
    Ok(b)
}

impl KeyRing {
    /// Keys as raw 32-byte values, newest first.
    pub fn from_raw(raw: &[[u8; 32]]) -> Self {
        let keys = raw
            .iter()
            .map(|k| (key_id(k), XChaCha20Poly1305::new(Key::from_slice(k))))
            .collect();
        KeyRing { keys }
    }

    /// Keys as base64 (standard or URL-safe), newest first.
    pub fn from_base64<'a>(encoded: impl IntoIterator<Item = &'a str>) -> Result<Self, SealError> {
        let mut raw = Vec::new();
        for e in encoded {
            let e = e.trim();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(e)
                .or_else(|_| B64.decode(e.trim_end_matches('=')))
                .map_err(|_| SealError::Encoding)?;
            let k: [u8; 32] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| SealError::KeyLength(bytes.len()))?;
            raw.push(k);
        }
        Ok(Self::from_raw(&raw))
    }

    /// A one-process key ring (sessions do not survive a restart).
    pub fn ephemeral() -> Result<Self, SealError> {
        Ok(Self::from_raw(&[random_bytes::<32>()?]))
    }

    /// Seals `plain` for the cookie called `name`.
    pub fn seal(&self, name: &str, plain: &[u8]) -> Result<String, SealError> {
        let (id, cipher) = self.keys.first().ok_or(SealError::Format)?;
        let nonce = random_bytes::<NONCE>()?;
        let ct = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: &aad(name, id),
                },
            )
            .map_err(|_| SealError::Format)?;
        let mut out = Vec::with_capacity(1 + 4 + NONCE + ct.len());
        out.push(VERSION);
        out.extend_from_slice(id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(B64.encode(out))
    }

    /// Opens a value sealed for `name` by any key of the ring.
    pub fn open(&self, name: &str, sealed: &str) -> Result<Vec<u8>, SealError> {
        let raw = B64
            .decode(sealed.as_bytes())
            .map_err(|_| SealError::Encoding)?;
        if raw.len() < 1 + 4 + NONCE + 16 || raw[0] != VERSION {
            return Err(SealError::Format);
        }
        let id = &raw[1..5];
        let nonce = XNonce::from_slice(&raw[5..5 + NONCE]);
        let ct = &raw[5 + NONCE..];
        // The matching key first, then the others (ids may collide).
        let ordered = self
            .keys
            .iter()
            .filter(|(k, _)| k == id)
            .chain(self.keys.iter().filter(|(k, _)| k != id));
        for (_, cipher) in ordered {
            if let Ok(p) = cipher.decrypt(
                nonce,
                Payload {
                    msg: ct,
                    aad: &aad(name, id),
                },
            ) {
                return Ok(p);
            }
        }
        Err(SealError::Tampered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding() {
        let ring = KeyRing::ephemeral().unwrap();
        let c = ring.seal("fedgate_session", b"hello").unwrap();
        assert_eq!(ring.open("fedgate_session", &c).unwrap(), b"hello");
        assert_eq!(
            ring.open("fedgate_state", &c),
            Err(SealError::Tampered),
            "bound to its name"
        );
        // Every single-bit flip is detected.
        let raw = B64.decode(&c).unwrap();
        for i in 0..raw.len() {
            let mut t = raw.clone();
            t[i] ^= 0x01;
            assert!(
                ring.open("fedgate_session", &B64.encode(t)).is_err(),
                "flip at {i}"
            );
        }
        assert_eq!(
            ring.open("fedgate_session", "!!!"),
            Err(SealError::Encoding)
        );
        assert_eq!(ring.open("fedgate_session", "AAAA"), Err(SealError::Format));
    }

    #[test]
    fn rotation_keeps_old_cookies_readable() {
        let old = [7u8; 32];
        let new = [9u8; 32];
        let before = KeyRing::from_raw(&[old]);
        let c = before.seal("s", b"x").unwrap();
        let after = KeyRing::from_raw(&[new, old]);
        assert_eq!(after.open("s", &c).unwrap(), b"x");
        let fresh = after.seal("s", b"y").unwrap();
        assert_eq!(KeyRing::from_raw(&[new]).open("s", &fresh).unwrap(), b"y");
        assert!(
            KeyRing::from_raw(&[old]).open("s", &fresh).is_err(),
            "new cookies use the new key"
        );
        assert!(
            KeyRing::from_raw(&[new]).open("s", &c).is_err(),
            "a retired key no longer opens"
        );
    }

    #[test]
    fn base64_keys() {
        let k = base64::engine::general_purpose::STANDARD.encode([1u8; 32]);
        assert!(KeyRing::from_base64([k.as_str()]).is_ok());
        assert_eq!(
            KeyRing::from_base64(["AAAA"]).err(),
            Some(SealError::KeyLength(3))
        );
        assert_eq!(
            KeyRing::from_base64(["%%%"]).err(),
            Some(SealError::Encoding)
        );
    }
}
