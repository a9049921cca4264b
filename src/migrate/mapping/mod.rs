//! Keystone's federation mapping engine (`keystone.federation.utils`
//! `RuleProcessor`, keystone 30), rewritten so that `migrate-check` can say
//! offline which user, groups and projects a mapping gives an assertion.
//!
//! Faithful means the surprising parts too, because a site's mapping was
//! tuned against them:
//! - every assertion value is split on `;`; an empty value is still
//!   present (`['']`), only a missing attribute fails a requirement;
//! - `any_one_of`/`not_any_of` only test; a plain `type`, a `blacklist` or
//!   a `whitelist` adds a direct map, numbered from 0 in rule order;
//! - `{0}` is Python's `str.format`: a one-value match is the value, any
//!   other match is the text of a Python list (`['a', 'b']`), which
//!   `groups`/`group_ids` read back with `ast.literal_eval`;
//! - a `{N}` beyond the direct maps is Keystone's `DirectMappingError` (500),
//!   a stray brace a `ValueError` (500), no matching rule a 401;
//! - every matching rule contributes; the first non-empty `user` wins, a
//!   later `projects` replaces an earlier one, `group` by name accumulates
//!   per domain (with Keystone's repeated entries);
//! - regexes are Python's `re.search` (see [`pyre`]).
//!
//! Blacklist and non-regex whitelist results are Python sets, whose order
//! Keystone does not define; here they are sorted.

mod eval;
mod model;
mod parse;
pub mod py;
pub mod pyre;

pub use model::*;
pub use parse::{from_value, parse};

#[cfg(test)]
mod tests;
