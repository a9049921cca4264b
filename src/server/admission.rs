//! Which new connections are served: at most `server.max_connections` at
//! once. The limit is read from the running configuration at every accept,
//! so a reload that changes it applies to the next connection (a lower
//! limit closes nothing; it refuses new connections until enough have
//! ended).

use std::sync::{Arc, Mutex};

/// Why a connection was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0} connections are open, the server.max_connections limit")]
    Total(usize),
}

impl Refusal {
    /// Label for the `fedgate_connections_refused_total` metric.
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::Total(_) => "max_connections",
        }
    }
}

/// Open connections, counted against the limits.
#[derive(Debug, Default)]
pub struct Admission {
    open: Mutex<usize>,
}

/// One admitted connection; its slot is given back on drop.
#[derive(Debug)]
pub struct Slot {
    admission: Arc<Admission>,
}

impl Admission {
    /// Admits a connection if fewer than `max_total` are open.
    pub fn admit(self: &Arc<Self>, max_total: usize) -> Result<Slot, Refusal> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if *open >= max_total {
            return Err(Refusal::Total(*open));
        }
        *open += 1;
        Ok(Slot {
            admission: self.clone(),
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        *self.open.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .admission
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *open = open.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_the_one_given_at_each_admission() {
        let a = Arc::new(Admission::default());
        let s1 = a.admit(2).unwrap();
        let _s2 = a.admit(2).unwrap();
        assert_eq!(a.admit(2).unwrap_err(), Refusal::Total(2));
        // A reload raised the limit: admitted at once.
        let _s3 = a.admit(3).unwrap();
        // Lowered below what is open: nothing closes, nothing new until
        // enough have ended.
        assert!(a.admit(1).is_err());
        drop(s1);
        assert_eq!(a.open(), 2);
        assert!(a.admit(1).is_err());
        assert!(a.admit(3).is_ok());
    }
}
