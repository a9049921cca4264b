//! `[plugins.identities]`: the real identities behind Keystone's federated
//! users, the feature no other accounting tool has.
//!
//! Keystone maps a federated login to a user id of its own; the DN, FQANs,
//! issuer, subject and entitlements that fedgate verified are gone once
//! the token is issued, so cASO can only publish what Keystone kept.
//! fedgate sees both sides: when it forwards a federated login and
//! Keystone answers with a token, the gateway [offers](recorder::Recorder)
//! Keystone's user id with the verified identity ([`model::Federated`]) to
//! a bounded queue, and a writer task upserts it into a SQLite file
//! ([`store`]). Accounting then fills GlobalUserName and FQAN of a VM's
//! record from the identity its owner last logged in with
//! ([`IdentityLookup`]), and `fedgate accounting identities` lists them.
//!
//! Recording never delays or fails a login: the queue is never waited on,
//! and the disk is only touched by the writer.

pub mod config;
pub mod model;
pub mod recorder;
pub mod store;

pub use model::{GatewayIdentity, IdentityLookup};
