//! Process-wide counters behind `fedgate_shared_state_errors_total` and
//! `fedgate_shared_state_up`. They live here, not in `metrics`, because
//! leaves import no other leaf; the admin listener turns a [`snapshot`]
//! into a registry per scrape (see `metrics::shared_state_registry`).

use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Default)]
struct Counters {
    /// (backend, op) → errors.
    errors: BTreeMap<(&'static str, &'static str), u64>,
    /// backend → whether its last call succeeded.
    up: BTreeMap<&'static str, bool>,
}

static COUNTERS: Mutex<Option<Counters>> = Mutex::new(None);

fn with<R>(f: impl FnOnce(&mut Counters) -> R) -> R {
    let mut g = COUNTERS.lock().unwrap_or_else(|p| p.into_inner());
    f(g.get_or_insert_with(Counters::default))
}

/// A store exists for `backend`: it shows as up until a call fails.
pub(super) fn register(backend: &'static str) {
    with(|c| {
        c.up.entry(backend).or_insert(true);
    });
}

pub(super) fn record(backend: &'static str, op: &'static str, ok: bool) {
    with(|c| {
        // A value that does not open is the store's content, not its
        // availability: counted, but the backend answered.
        if op != "open" {
            c.up.insert(backend, ok);
        }
        if !ok {
            *c.errors.entry((backend, op)).or_insert(0) += 1;
        }
    });
}

/// The counters as plain values.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// (backend, op, errors).
    pub errors: Vec<(&'static str, &'static str, u64)>,
    /// (backend, up).
    pub up: Vec<(&'static str, bool)>,
}

pub fn snapshot() -> Snapshot {
    with(|c| Snapshot {
        errors: c.errors.iter().map(|((b, o), n)| (*b, *o, *n)).collect(),
        up: c.up.iter().map(|(b, u)| (*b, *u)).collect(),
    })
}
