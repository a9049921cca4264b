//! OpenID Connect, shared by bearer tokens and the browser login: the IdP
//! registry, discovery, JWKS, JWS verification, RFC 7662 introspection,
//! and the claim encoding Keystone sees (claims → [`Identity`]).
//!
//! [`Identity`]: crate::identity::Identity

pub mod claims;
pub mod discovery;
mod error;
pub mod idp;
pub mod introspect;
pub mod jwks;
pub mod jws;
mod metadata_dir;

pub use error::TokenError;
pub use idp::{Idp, IdpConfig, IdpError, Registry, Validation};

/// The registry of every trusted IdP: the `[[idp]]` tables, then the IdPs
/// of mod_auth_openidc's `OIDCMetadataDir`, when one is configured.
pub fn registry(
    idps: &[IdpConfig],
    metadata_dir: Option<&std::path::Path>,
) -> Result<Registry, IdpError> {
    let mut all = idps.to_vec();
    if let Some(dir) = metadata_dir {
        all.extend(metadata_dir::load(dir).map_err(|e| IdpError::MetadataDir(e.to_string()))?);
    }
    Registry::build(all)
}
