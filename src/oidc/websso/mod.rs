//! Horizon WebSSO: the OIDC authorization-code flow run by fedgate.

pub mod origin;
pub mod state;
