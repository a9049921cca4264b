//! The extractor: what cASO 5.2.2 does against Keystone, Nova, Glance,
//! Cinder and Neutron, as the records of [`super::record`].
//!
//! * [`extractor`]: [`Extractor`] (`connect`, `projects`, `extract`).
//! * [`api`]: the OpenStack calls (spec A4) with RFC 3339 times and paging.
//! * [`model`]: the fields of their answers the records use.
//! * [`build`]: the records from those answers (A5-A8), with cASO's
//!   defects reproduced only under `caso_compat` (A14).
//! * [`times`], [`error`].

pub mod api;
pub mod build;
pub mod error;
pub mod extractor;
pub mod model;
pub mod times;

pub use error::ExtractError;
pub use extractor::Extractor;
