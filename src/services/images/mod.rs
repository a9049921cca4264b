//! The image plugin (cloudkeeper's replacement): VO-endorsed images from
//! signed HEPiX image lists into Glance.
//!
//! The signed lists: the S/MIME envelope ([`smime`]), the CMS signature
//! and the signer's chain to the IGTF trust store ([`signature`]), the
//! list's JSON ([`list`]), and the acceptance rules that bind a list to
//! its subscription ([`accept`]). The Glance side: the v2 calls
//! ([`glance`]), the VO → project mapping ([`mapping`]), the plan that
//! reconciles desired images with Glance ([`plan`]), its application
//! ([`sync`]) and the scheduled `[plugins.images]` plugin ([`plugin`]).

pub mod accept;
pub mod candidate;
pub mod download;
pub mod fetch;
pub mod fetch_config;
pub mod format;
#[cfg(feature = "accounting")]
pub mod glance;
pub mod list;
pub mod mapping;
#[cfg(feature = "accounting")]
pub mod plan;
#[cfg(feature = "accounting")]
pub mod plugin;
pub mod registry;
pub mod signature;
pub mod smime;
#[cfg(feature = "accounting")]
pub mod sync;
pub mod transport;
