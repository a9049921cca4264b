//! Browser sessions for the OIDC login: a small sealed cookie holding a
//! random id, and the session itself in memory or in Redis.

pub mod crypto;
pub mod store;

pub use crypto::{KeyRing, SealError};
pub use store::{Lifetimes, Session, SessionData, SessionStore};
