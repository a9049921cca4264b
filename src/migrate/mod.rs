//! Moving a site from Apache to fedgate: reading the vhost it runs today
//! (`import-apache`) and proving beforehand that every user keeps the same
//! Keystone identity (`migrate-check`).
//!
//! These are one-shot tools of the command line, not part of serving: they
//! sit just below `app` so that they can use the configuration types, the
//! authenticators' identity builders and the PKI without anything in the
//! request path depending on them.

pub mod apache;
pub mod check;
pub mod mapping;
