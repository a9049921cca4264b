//! The image plugin (cloudkeeper's replacement): VO-endorsed images from
//! signed HEPiX image lists into Glance.
//!
//! This part covers the signed lists: the S/MIME envelope ([`smime`]), the
//! CMS signature and the signer's chain to the IGTF trust store
//! ([`signature`]), the list's JSON ([`list`]), and the acceptance rules
//! that bind a list to its subscription ([`accept`]). Fetching, downloads
//! and the Glance sync build on [`accept::evaluate`].

pub mod accept;
pub mod candidate;
pub mod download;
pub mod fetch;
pub mod fetch_config;
pub mod format;
pub mod list;
pub mod registry;
pub mod signature;
pub mod smime;
pub mod transport;
