//! OpenID Connect (placeholder until the IdP registry lands).

pub mod websso;
