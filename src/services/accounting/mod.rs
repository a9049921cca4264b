//! `[plugins.accounting]`: usage records for the APEL accounting
//! repository, replacing cASO and the APEL SSM sender.
//!
//! This module holds the parts that need no OpenStack: the record model
//! ([`record`]), its wire formats as the APEL loader reads them ([`wire`]),
//! the loader's acceptance rules ([`validate`], behind
//! `fedgate accounting validate`) and the outgoing directory queue that
//! `ssmsend` consumes ([`dirq`]).
//!
//! Children share types through [`record`], never through this file, so
//! that `mod.rs` stays a list of children (see `tests/layering.rs`).

pub mod ams;
pub mod ams_options;
pub mod caso_conf;
pub mod config;
pub mod dirq;
pub mod extract;
pub mod identities;
pub mod plugin;
pub mod record;
pub mod run;
// The extractor, the identity store and the plugin meet here.
pub mod send;
pub mod smime_sign;
#[allow(dead_code)]
pub mod source;
pub mod state;
pub mod validate;
pub mod wire;
