//! Horizon WebSSO: the OIDC authorization-code flow run by fedgate.

pub mod config;
pub mod cookies;
pub mod exchange;
pub mod flow;
pub mod origin;
pub mod pages;
pub mod state;
