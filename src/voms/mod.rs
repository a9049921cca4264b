//! VOMS attribute certificates: parsing, validation against the vomsdir,
//! and the FQANs exported to Keystone.
//!
//! The PKI module validates the client chain, then calls [`evaluate`] with
//! its [`AaVerifier`]. Only the leaf-most proxy carrying ACs counts; each
//! of its ACs is checked on its own (RFC 5755 §5 and GFD.182, in order:
//! [`profile`], signature, issuer binding and AA chain via [`lsc`], holder,
//! time, extensions, targets, FQAN prefix — see [`validate`]) and a refused
//! AC only loses its FQANs, as with gridsite. Where fedgate is stricter
//! than gridsite, on purpose: the LSC file is `<vo>/<host>.lsc` from the
//! AC's policyAuthority (not any `.lsc` of the VO), all its lines and
//! chains are read, a present LSC that does not match is final, `.pem`
//! fallback AA certificates are path-validated, unknown critical AC
//! extensions and targets naming other services are refused.

pub mod asn1;
mod cache;
mod config;
mod evaluate;
pub mod export;
pub mod info;
pub mod lsc;
mod outcome;
pub mod profile;
pub mod validate;

pub use config::VomsConfig;
pub use outcome::{AaVerifier, GenericAttribute, ValidAc, VomsOutcome};

pub use cache::VomsSettings;
pub use evaluate::{MAX_ACS, evaluate};
pub use export::{ExportNames, FqanRequirement, RouteVoms};
