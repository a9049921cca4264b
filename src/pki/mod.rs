//! Grid PKI: the IGTF trust store, X.509/GSI proxy chain validation and the
//! gridsite-compatible values exported to Keystone.

pub mod authn;
pub mod cert;
pub mod config;
pub mod crl;
pub mod dn;
pub mod gridsite;
pub mod hash;
pub mod info;
pub mod namespaces;
pub mod policy;
pub mod store;
pub mod tlv;
pub mod validate;
pub mod verify;

pub use authn::{ConnVerdict, RouteX509, X509Authenticator};
pub use config::X509Config;
pub use store::TrustStore;
pub use validate::{FailKind, Failure, Validator, Verdict};
