//! Sealed cookies. The AEAD itself lives in [`crate::kv::seal`], because
//! the shared-state store seals every value with it too and a leaf module
//! may import no other module; the cookies use it from here.

pub use crate::kv::seal::{KeyRing, SealError, random_bytes};
