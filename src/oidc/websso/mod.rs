//! Horizon WebSSO: the OIDC authorization-code flow run by fedgate.

pub mod cookies;
pub mod origin;
pub mod pages;
pub mod state;
