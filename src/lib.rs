//! fedgate: one process in front of Keystone that terminates TLS,
//! authenticates by X.509/VOMS, OIDC or bearer token, and hands Keystone the
//! identity under the names its federation mappings already use.
//!
//! A request travels: [`server`] (TLS, client chain) → [`route`] (which
//! auth the path needs) → [`auth`] (an authenticator) → one
//! [`identity::Identity`] → [`upstream`] (uwsgi environ or HTTP headers) →
//! Keystone.

pub mod admin;
pub mod auth;
pub mod check;
pub mod cli;
pub mod config;
pub mod conn;
pub mod demo;
pub mod identity;
pub mod logging;
pub mod metrics;
pub mod oidc;
pub mod pki;
pub mod route;
pub mod server;
pub mod session;
pub mod tls;
pub mod token;
pub mod upstream;
pub mod voms;
