//! OpenID Connect pieces shared by bearer tokens and the browser flow:
//! the IdP registry, discovery, JWKS, the HTTP client and the claim
//! encoding Keystone sees.

pub mod claims;
pub mod discovery;
pub mod http;
pub mod idp;
pub mod jwks;
pub mod metadata_dir;
pub mod websso;

pub use idp::{Idp, IdpConfig, Registry, Validation};
