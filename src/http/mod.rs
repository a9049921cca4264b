//! HTTP pieces shared by the gateway's layers: the body type, fedgate's
//! own error answers, hop-by-hop and X-Forwarded-* handling, the request's
//! host and path checked and in canonical form, cookies towards Keystone,
//! and the outbound client that talks to IdPs (and, for the plugins,
//! to OpenStack services).
//!
//! Nothing here knows about routes, authenticators or configuration files.

pub mod body;
pub mod client;
pub mod cookie;
pub mod forwarded;
pub mod hop;
pub mod host;
pub mod path;
pub mod reply;
