//! The identities store: one SQLite table of the federated identities
//! Keystone users logged in with through fedgate.
//!
//! One row per (Keystone user id, kind, identity key): the key is the DN
//! for X.509 and `sub@issuer` for OIDC, so a user who logs in with a
//! certificate and with Check-in has two rows, and the most recently seen
//! one answers [`IdentityLookup::lookup`]. An upsert keeps `first_seen`
//! and moves `last_seen` (never backwards: batches may be written out of
//! order) and the attributes (FQANs or entitlements change between
//! logins). Times are Unix seconds, UTC. The database runs in WAL mode so
//! that the accounting extractor and `fedgate accounting identities` read
//! while the gateway writes.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use super::model::{Federated, GatewayIdentity, IdentityLookup};

/// A write waits this long for a reader's or another writer's lock, then
/// fails; the recorder drops the batch rather than wait longer.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS identities (
    keystone_user_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    identity_key TEXT NOT NULL,
    global_user_name TEXT NOT NULL,
    fqan TEXT,
    attributes TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    PRIMARY KEY (keystone_user_id, kind, identity_key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS identities_last_seen ON identities (last_seen);
";

/// Why the store could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("identities store {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("identities store {path}: the stored attributes are not a JSON list: {reason}")]
    Attributes { path: PathBuf, reason: String },
}

/// One login to record: Keystone's user id, the verified identity, and
/// when (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub keystone_user_id: String,
    pub identity: Federated,
    pub seen: i64,
}

/// One stored row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Entry {
    pub keystone_user_id: String,
    /// `x509` or `oidc`.
    pub kind: String,
    pub global_user_name: String,
    pub fqan: Option<String>,
    /// The FQANs (X.509, AC order) or the entitlements (OIDC).
    pub attributes: Vec<String>,
    pub first_seen: i64,
    pub last_seen: i64,
}

/// An open store. The connection is behind a mutex, so one `Store` may be
/// shared between threads; each thread's call is short.
pub struct Store {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl Store {
    /// Opens `path` for writing, creating it and its table when missing.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let err = |source| StoreError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
        // The first statement that reads the file: a file that is not a
        // database fails here, with SQLite's "file is not a database".
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0))
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(Store {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        })
    }

    /// Opens an existing store read-only (the listing command): a missing
    /// file is an error, not a new empty database.
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        let err = |source| StoreError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
        // Fails on a file that is not a database or has no table.
        conn.query_row("SELECT count(*) FROM identities", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(err)?;
        Ok(Store {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    pub(super) fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Upserts a batch in one transaction: all of it or none.
    pub fn record(&self, batch: &[Observation]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        // IMMEDIATE: wait for the write lock up front (busy timeout) rather
        // than fail on upgrading a read snapshot another writer made stale.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO identities (keystone_user_id, kind, identity_key,
                        global_user_name, fqan, attributes, first_seen, last_seen)
                     VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, ?6)
                     ON CONFLICT (keystone_user_id, kind, identity_key) DO UPDATE SET
                        first_seen = min(first_seen, excluded.first_seen),
                        fqan = CASE WHEN excluded.last_seen >= last_seen
                            THEN excluded.fqan ELSE fqan END,
                        attributes = CASE WHEN excluded.last_seen >= last_seen
                            THEN excluded.attributes ELSE attributes END,
                        last_seen = max(last_seen, excluded.last_seen)",
                )
                .map_err(|e| self.err(e))?;
            for o in batch {
                let g = o.identity.gateway_identity();
                let attributes =
                    serde_json::to_string(o.identity.attributes()).unwrap_or_else(|_| "[]".into());
                stmt.execute(params![
                    o.keystone_user_id,
                    o.identity.kind(),
                    g.global_user_name,
                    g.fqan,
                    attributes,
                    o.seen,
                ])
                .map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Deletes the entries last seen before `cutoff` (Unix seconds);
    /// returns how many.
    pub fn purge(&self, cutoff: i64) -> Result<usize, StoreError> {
        self.conn()
            .execute(
                "DELETE FROM identities WHERE last_seen < ?1",
                params![cutoff],
            )
            .map_err(|e| self.err(e))
    }

    /// Every entry, or those of one Keystone user; most recently seen first.
    pub fn list(&self, keystone_user_id: Option<&str>) -> Result<Vec<Entry>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT keystone_user_id, kind, global_user_name, fqan, attributes,
                        first_seen, last_seen
                 FROM identities WHERE ?1 IS NULL OR keystone_user_id = ?1
                 ORDER BY last_seen DESC, keystone_user_id, kind, identity_key",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![keystone_user_id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, i64>(6)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (keystone_user_id, kind, global_user_name, fqan, attrs, first_seen, last_seen) =
                row.map_err(|e| self.err(e))?;
            let attributes = serde_json::from_str(&attrs).map_err(|e| StoreError::Attributes {
                path: self.path.clone(),
                reason: e.to_string(),
            })?;
            out.push(Entry {
                keystone_user_id,
                kind,
                global_user_name,
                fqan,
                attributes,
                first_seen,
                last_seen,
            });
        }
        Ok(out)
    }

    /// The most recently seen identity of a Keystone user.
    pub fn latest(&self, keystone_user_id: &str) -> Result<Option<GatewayIdentity>, StoreError> {
        self.conn()
            .query_row(
                "SELECT global_user_name, fqan FROM identities WHERE keystone_user_id = ?1
                 ORDER BY last_seen DESC, first_seen DESC LIMIT 1",
                params![keystone_user_id],
                |r| {
                    Ok(GatewayIdentity {
                        global_user_name: r.get(0)?,
                        fqan: r.get(1)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }
}

impl IdentityLookup for Store {
    /// A store that cannot be read answers `None` (accounting then falls
    /// back to cASO's values), with one log line.
    fn lookup(&self, keystone_user_id: &str) -> Option<GatewayIdentity> {
        match self.latest(keystone_user_id) {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(error = %e, "identity lookup failed");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x509(user: &str, dn: &str, fqan: &str, seen: i64) -> Observation {
        Observation {
            keystone_user_id: user.into(),
            identity: Federated::X509 {
                dn: dn.into(),
                fqans: vec![fqan.into()],
            },
            seen,
        }
    }

    fn oidc(user: &str, sub: &str, seen: i64) -> Observation {
        Observation {
            keystone_user_id: user.into(),
            identity: Federated::Oidc {
                issuer: "https://aai.egi.eu/auth/realms/egi".into(),
                sub: sub.into(),
                entitlements: vec![
                    "urn:mace:egi.eu:group:vo.example.org:role=member#aai.egi.eu".into(),
                ],
            },
            seen,
        }
    }

    #[test]
    fn upsert_keeps_first_seen_and_moves_last_seen() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("ids.sqlite")).unwrap();
        s.record(&[x509("u1", "/CN=a", "/vo1/Role=NULL", 100)])
            .unwrap();
        s.record(&[x509("u1", "/CN=a", "/vo2/Role=NULL", 200)])
            .unwrap();
        // An older observation written late changes neither last_seen nor
        // the attributes, but may move first_seen back.
        s.record(&[x509("u1", "/CN=a", "/vo0/Role=NULL", 50)])
            .unwrap();
        let l = s.list(None).unwrap();
        assert_eq!(l.len(), 1, "{l:?}");
        assert_eq!((l[0].first_seen, l[0].last_seen), (50, 200));
        assert_eq!(l[0].fqan.as_deref(), Some("/vo2/Role=NULL"));
        assert_eq!(l[0].attributes, vec!["/vo2/Role=NULL".to_string()]);
        let mode: String = s
            .conn()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn lookup_answers_the_most_recent_identity() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("ids.sqlite")).unwrap();
        s.record(&[
            x509("u1", "/CN=a", "/vo1/Role=NULL", 300),
            oidc("u1", "sub-a", 200),
            oidc("u2", "sub-b", 100),
        ])
        .unwrap();
        assert_eq!(
            s.lookup("u1"),
            Some(GatewayIdentity {
                global_user_name: "/CN=a".into(),
                fqan: Some("/vo1/Role=NULL".into())
            })
        );
        s.record(&[oidc("u1", "sub-a", 400)]).unwrap();
        assert_eq!(
            s.lookup("u1"),
            Some(GatewayIdentity {
                global_user_name: "sub-a@https://aai.egi.eu/auth/realms/egi".into(),
                fqan: Some("vo.example.org".into())
            })
        );
        assert_eq!(s.lookup("nobody"), None);
        assert_eq!(s.list(Some("u2")).unwrap().len(), 1);
        assert_eq!(s.list(None).unwrap().len(), 3);
    }

    #[test]
    fn purge_deletes_entries_last_seen_before_the_cutoff() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("ids.sqlite")).unwrap();
        s.record(&[
            x509("old", "/CN=a", "/vo", 99),
            x509("edge", "/CN=b", "/vo", 100),
            x509("new", "/CN=c", "/vo", 500),
        ])
        .unwrap();
        assert_eq!(s.purge(100).unwrap(), 1);
        let left: Vec<String> = s
            .list(None)
            .unwrap()
            .into_iter()
            .map(|e| e.keystone_user_id)
            .collect();
        assert_eq!(left, vec!["new".to_string(), "edge".to_string()]);
        assert_eq!(s.lookup("old"), None);
    }

    #[test]
    fn a_file_that_is_not_a_database_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ids.sqlite");
        std::fs::write(&p, b"this is not SQLite, just some text that is long enough to be a header ............................................................").unwrap();
        let e = Store::open(&p).err().expect("refused");
        let msg = e.to_string();
        assert!(
            msg.contains("ids.sqlite") && msg.contains("not a database"),
            "{msg}"
        );
        let e = Store::open_read_only(&p).err().expect("refused");
        assert!(e.to_string().contains("not a database"), "{e}");
        // Read-only opening never creates a file.
        let missing = dir.path().join("missing.sqlite");
        assert!(Store::open_read_only(&missing).is_err());
        assert!(!missing.exists());
    }
}
