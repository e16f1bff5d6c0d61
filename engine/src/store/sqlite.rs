//! [`SqliteStore`]: the embedded default store, one SQLite file (WAL, full sync, mode 0600).
//!
//! Erasure: SQLite's `secure_delete` overwrites deleted content with zeros, and every delete is
//! followed by a checkpoint that truncates the write-ahead log, so no byte of an erased enrolment
//! stays in any of the database's files.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, Transaction, params, params_from_iter};

use super::seal::{Keyring, SealedRow};
use super::{Enrollment, TemplateKey, TemplateStore, Upsert};
use crate::embedding::{Embedding, Template};
use crate::error::{Error, Result};

/// Schema version written to `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS subjects (
    lookup     BLOB PRIMARY KEY NOT NULL,
    model      TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    nonce      BLOB NOT NULL,
    sealed     BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
) STRICT;
";

const SELECT: &str = "SELECT lookup, model, key_id, nonce, sealed, created_ms, updated_ms FROM subjects";

/// The embedded default store.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    keys: Keyring,
}

pub(super) fn store_err(e: impl std::fmt::Display) -> Error {
    Error::Store(e.to_string())
}

pub(super) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SealedRow> {
    Ok(SealedRow {
        lookup: r.get(0)?,
        model: r.get(1)?,
        key_id: r.get(2)?,
        nonce: r.get(3)?,
        sealed: r.get(4)?,
        created_ms: r.get(5)?,
        updated_ms: r.get(6)?,
    })
}

/// Creates `path` with mode 0600 if it does not exist, and narrows the modes of the database and
/// its journal files that do (SQLite gives its WAL and shared-memory files the database's mode).
fn private_files(path: &Path) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?;
    #[cfg(unix)]
    for suffix in ["", "-wal", "-shm"] {
        use std::os::unix::fs::PermissionsExt;
        let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        if file.exists() {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`. `keys[0]` seals new rows; all of them
    /// open old ones. A database of the first schema (subjects in clear) is migrated in place.
    ///
    /// # Errors
    /// [`Error::Config`] without a key or for a database newer than this build;
    /// [`Error::Store`] when the database cannot be opened.
    pub fn open(path: &Path, keys: Vec<TemplateKey>) -> Result<Self> {
        let keys = Keyring::new(keys)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        private_files(path)?;
        let conn = Connection::open(path).map_err(store_err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(store_err)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(store_err)?;
        conn.pragma_update(None, "secure_delete", "ON").map_err(store_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(store_err)?;
        let store = Self { conn: Mutex::new(conn), keys };
        store.migrate()?;
        Ok(store)
    }

    fn conn(&self) -> Result<MutexGuard<'_, Connection>> {
        self.conn.lock().map_err(|_| Error::Store("connection mutex poisoned".into()))
    }

    /// Brings the schema to [`SCHEMA_VERSION`]; refuses a newer one.
    fn migrate(&self) -> Result<()> {
        let mut conn = self.conn()?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(store_err)?;
        if version > SCHEMA_VERSION {
            return Err(Error::Config(format!(
                "the template database has schema {version}; this build knows up to {SCHEMA_VERSION}"
            )));
        }
        let tx = conn.transaction().map_err(store_err)?;
        tx.execute_batch(SCHEMA).map_err(store_err)?;
        let has_v1: bool = tx
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'enrollments'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(store_err)?
            > 0;
        if has_v1 {
            self.migrate_v1(&tx)?;
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(store_err)?;
        tx.commit().map_err(store_err)?;
        if has_v1 {
            // The old rows' pages were zeroed by secure_delete; rewrite the file and the log too.
            conn.execute_batch("VACUUM").map_err(store_err)?;
            checkpoint(&conn)?;
        }
        Ok(())
    }

    /// Re-seals every row of the first schema (subject in clear) into `subjects`, then drops it.
    fn migrate_v1(&self, tx: &Transaction<'_>) -> Result<()> {
        let mut stmt = tx
            .prepare(
                "SELECT subject, model, key_id, nonce, template, quality, photo_sha256, created_ms, updated_ms
                 FROM enrollments",
            )
            .map_err(store_err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                    r.get::<_, Vec<u8>>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                    (r.get::<_, i64>(7)?, r.get::<_, i64>(8)?),
                ))
            })
            .map_err(store_err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(store_err)?;
        drop(stmt);
        for (subject, model, key_id, nonce, sealed, quality, photo_sha256, (created, updated)) in rows {
            let embedding = self.keys.open_v1(&key_id, &subject, &model, &nonce, &sealed)?;
            let e = Enrollment {
                subject,
                template: crate::embedding::Template { model, embedding },
                quality: serde_json::from_str(&quality).unwrap_or(serde_json::Value::Null),
                photo_sha256,
                created_ms: created,
                updated_ms: updated,
            };
            insert(tx, &self.keys.seal(&e, created, updated)?)?;
        }
        tx.execute_batch("DROP TABLE enrollments").map_err(store_err)
    }

    /// The subject's row, which must have been made by `model`.
    fn row_of(&self, subject: &str, model: &str) -> Result<SealedRow> {
        let found = self.find(&*self.conn()?, subject)?.ok_or(Error::NotEnrolled)?;
        if found.model != model {
            return Err(Error::ModelMismatch { expected: model.into(), found: found.model });
        }
        Ok(found)
    }

    /// The subject's row under any configured key.
    fn find(&self, conn: &Connection, subject: &str) -> Result<Option<SealedRow>> {
        let lookups = self.keys.lookups(subject);
        let marks = vec!["?"; lookups.len()].join(",");
        conn.query_row(&format!("{SELECT} WHERE lookup IN ({marks})"), params_from_iter(lookups.iter()), row)
            .optional()
            .map_err(store_err)
    }

    /// Runs SQLite's integrity check; `Ok(())` when the file is sound.
    ///
    /// # Errors
    /// [`Error::Store`] naming the first problem.
    pub fn integrity_check(&self) -> Result<()> {
        let result: String =
            self.conn()?.query_row("PRAGMA integrity_check", [], |r| r.get(0)).map_err(store_err)?;
        if result == "ok" { Ok(()) } else { Err(Error::Store(format!("integrity check: {result}"))) }
    }

    /// A consistent copy of the database at `to` (which must not exist), taken while serving.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub fn backup(&self, to: &Path) -> Result<()> {
        let target = to.to_str().ok_or_else(|| Error::Store("backup path is not UTF-8".into()))?;
        self.conn()?.execute("VACUUM INTO ?1", [target]).map_err(store_err)?;
        Ok(())
    }

    /// Seals every row sealed by an older key again with the current one; returns how many.
    ///
    /// # Errors
    /// [`Error::Store`] or [`Error::Crypto`]; rows already re-sealed stay so.
    pub fn reseal(&self) -> Result<usize> {
        let mut conn = self.conn()?;
        let old: Vec<SealedRow> = {
            let mut stmt = conn.prepare(&format!("{SELECT} WHERE key_id != ?1")).map_err(store_err)?;
            stmt.query_map([self.keys.current()], row)
                .map_err(store_err)?
                .collect::<rusqlite::Result<_>>()
                .map_err(store_err)?
        };
        for chunk in old.chunks(RESEAL_BATCH) {
            let tx = conn.transaction().map_err(store_err)?;
            for r in chunk {
                let e = self.keys.open(r)?;
                tx.execute("DELETE FROM subjects WHERE lookup = ?1", [&r.lookup]).map_err(store_err)?;
                insert(&tx, &self.keys.seal(&e, r.created_ms, r.updated_ms)?)?;
            }
            tx.commit().map_err(store_err)?;
        }
        checkpoint(&conn)?;
        Ok(old.len())
    }
}

/// Rows re-sealed per transaction.
const RESEAL_BATCH: usize = 500;

fn insert(tx: &Connection, r: &SealedRow) -> Result<()> {
    tx.execute(
        "INSERT INTO subjects (lookup, model, key_id, nonce, sealed, created_ms, updated_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![r.lookup, r.model, r.key_id, r.nonce, r.sealed, r.created_ms, r.updated_ms],
    )
    .map_err(store_err)?;
    Ok(())
}

/// Moves the log into the database and truncates it to zero bytes.
fn checkpoint(conn: &Connection) -> Result<()> {
    let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0)).map_err(store_err)?;
    if busy != 0 {
        return Err(Error::Store("the write-ahead log could not be truncated (busy)".into()));
    }
    Ok(())
}

impl TemplateStore for SqliteStore {
    fn upsert_many(&self, enrollments: &[Enrollment]) -> Result<Vec<Upsert>> {
        let mut conn = self.conn()?;
        let tx = conn.transaction().map_err(store_err)?;
        let mut outcomes = Vec::with_capacity(enrollments.len());
        for e in enrollments {
            let existing = self.find(&tx, &e.subject)?;
            let now = now_ms();
            let before = existing.as_ref().map(|old| self.keys.open(old)).transpose()?;
            let outcome = Upsert::between(before.as_ref(), e);
            if outcome != Upsert::Unchanged {
                let created = existing.as_ref().map_or(now, |old| old.created_ms);
                if let Some(old) = &existing {
                    tx.execute("DELETE FROM subjects WHERE lookup = ?1", [&old.lookup]).map_err(store_err)?;
                }
                insert(&tx, &self.keys.seal(e, created, now)?)?;
            }
            outcomes.push(outcome);
        }
        tx.commit().map_err(store_err)?;
        Ok(outcomes)
    }

    fn get(&self, subject: &str, model: &str) -> Result<Enrollment> {
        self.keys.open(&self.row_of(subject, model)?)
    }

    fn get_template(&self, subject: &str, model: &str) -> Result<Template> {
        let (_, embedding) = self.keys.open_template(&self.row_of(subject, model)?)?;
        Ok(Template { model: model.into(), embedding })
    }

    fn delete(&self, subject: &str) -> Result<bool> {
        let conn = self.conn()?;
        let lookups = self.keys.lookups(subject);
        let marks = vec!["?"; lookups.len()].join(",");
        let n = conn
            .execute(
                &format!("DELETE FROM subjects WHERE lookup IN ({marks})"),
                params_from_iter(lookups.iter()),
            )
            .map_err(store_err)?;
        if n > 0 {
            checkpoint(&conn)?;
        }
        Ok(n > 0)
    }

    fn count(&self) -> Result<usize> {
        let n: i64 =
            self.conn()?.query_row("SELECT COUNT(*) FROM subjects", [], |r| r.get(0)).map_err(store_err)?;
        Ok(n as usize)
    }

    fn all(&self, model: &str) -> Result<Vec<Enrollment>> {
        let rows: Vec<SealedRow> = {
            let conn = self.conn()?;
            let mut stmt = conn.prepare(&format!("{SELECT} WHERE model = ?1")).map_err(store_err)?;
            stmt.query_map([model], row)
                .map_err(store_err)?
                .collect::<rusqlite::Result<_>>()
                .map_err(store_err)?
        };
        let mut all: Vec<Enrollment> = rows.iter().map(|r| self.keys.open(r)).collect::<Result<_>>()?;
        all.sort_by(|a, b| a.subject.cmp(&b.subject));
        Ok(all)
    }

    fn templates(
        &self,
        model: &str,
        batch: usize,
        each: &mut dyn FnMut(Vec<(String, Embedding)>) -> Result<()>,
    ) -> Result<usize> {
        let size = batch.max(1);
        let conn = self.conn()?;
        let mut stmt = conn.prepare(&format!("{SELECT} WHERE model = ?1")).map_err(store_err)?;
        let mut rows = stmt.query([model]).map_err(store_err)?;
        let (mut page, mut count) = (Vec::with_capacity(size), 0);
        while let Some(r) = rows.next().map_err(store_err)? {
            page.push(self.keys.open_template(&row(r).map_err(store_err)?)?);
            if page.len() == size {
                count += page.len();
                each(std::mem::replace(&mut page, Vec::with_capacity(size)))?;
            }
        }
        count += page.len();
        if !page.is_empty() {
            each(page)?;
        }
        Ok(count)
    }
}
