//! A small OpenStack API client for the companion plugins: Keystone
//! authentication (password or application credential, any scope), the
//! service catalog, and JSON requests with the session's token.
//!
//! Why our own rather than a generated SDK: the plugins call a dozen
//! endpoints (Nova, Cinder, Neutron, Glance, Keystone), and need hard
//! timeouts, bounded answers, re-authentication before the token expires
//! and errors that name the service and the status. The transport is the
//! gateway's own outbound client ([`crate::http::client`]), so the plugins
//! share its trust store handling.

// The accounting and image plugins call it; until they do, parts are unused.
#[allow(dead_code)]
pub mod session;
#[allow(dead_code)]
pub mod upload;
