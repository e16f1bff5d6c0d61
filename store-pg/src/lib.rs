//! [`PostgresStore`]: PostgreSQL as the system of record, for several stateless servers on one
//! database.
//!
//! Rows are sealed exactly as in the embedded SQLite store ([`wajah::Keyring`]: AES-256-GCM, the
//! subject found by HMAC-SHA256, the key never in the database). Every write is one transaction;
//! every change is appended to a `changes` table (its sequence number is the feed position) and
//! announced with `NOTIFY wajah_changes`, so other servers bring their search index up to date at
//! once and, after a missed notification or a restart, from the position they last read.
//!
//! Erasure: a deleted row leaves PostgreSQL's tables at the next vacuum, and its WAL segments when
//! they are recycled; what stays meanwhile is ciphertext under a key the database never holds and
//! a keyed hash.

mod pool;
mod schema;
#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod testing;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fallible_iterator::FallibleIterator;
use postgres::error::SqlState;
use postgres::{Client, Config, Row};
use wajah::{
    Change, Embedding, Enrollment, Error, Keyring, Result, SealedRow, Template, TemplateKey, TemplateStore,
    Upsert,
};

pub use schema::VERSION as SCHEMA_VERSION;

use pool::{Pool, unavailable};

const COLUMNS: &str = "lookup, model, key_id, nonce, sealed, created_ms, updated_ms";

/// Changes read per call of [`TemplateStore::changes_since`].
const FEED_BATCH: i64 = 10_000;

/// How long a request waits for a pooled connection.
const POOL_WAIT: Duration = Duration::from_secs(5);

/// A database error: [`Error::StoreUnavailable`] when the server cannot be reached or is shutting
/// down (SQLSTATE classes 08 and 57), [`Error::Store`] otherwise.
pub(crate) fn db(e: postgres::Error) -> Error {
    let down = e.is_closed()
        || e.code().is_none_or(|c| {
            let code = c.code();
            code.starts_with("08") || code.starts_with("57") || *c == SqlState::CANNOT_CONNECT_NOW
        });
    if down { unavailable(e) } else { Error::Store(e.to_string()) }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn sealed(r: &Row) -> SealedRow {
    SealedRow {
        lookup: r.get(0),
        model: r.get(1),
        key_id: r.get(2),
        nonce: r.get(3),
        sealed: r.get(4),
        created_ms: r.get(5),
        updated_ms: r.get(6),
    }
}

/// The PostgreSQL template store.
pub struct PostgresStore {
    pool: Pool,
    keys: Keyring,
    /// A connection of its own that `LISTEN`s for changes.
    listener: Mutex<Option<Client>>,
    /// The subject of every lookup hash this process has opened, to name erased subjects.
    subjects: Mutex<HashMap<Vec<u8>, String>>,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://...` or `host=... dbname=...`), with at most `connections`
    /// pooled connections, and migrates the schema. `keys[0]` seals new rows.
    ///
    /// # Errors
    /// [`Error::Config`] for a bad URL, no key, or a schema newer than this build;
    /// [`Error::StoreUnavailable`] when the database cannot be reached.
    pub fn open(url: &str, keys: Vec<TemplateKey>, connections: usize) -> Result<Self> {
        let keys = Keyring::new(keys)?;
        let mut config: Config = url.parse().map_err(|e| Error::Config(format!("store URL: {e}")))?;
        config.connect_timeout(Duration::from_secs(5));
        let store = Self {
            pool: Pool::new(config, connections, POOL_WAIT),
            keys,
            listener: Mutex::new(None),
            subjects: Mutex::new(HashMap::new()),
        };
        {
            let mut client = store.pool.get()?;
            schema::migrate(&mut client)?;
        }
        Ok(store)
    }

    /// The subject's row, which must have been made by `model`.
    fn row_of(&self, subject: &str, model: &str) -> Result<SealedRow> {
        let found = Self::find(&mut *self.pool.get()?, &self.keys.lookups(subject), false)?
            .ok_or(Error::NotEnrolled)?;
        if found.model != model {
            return Err(Error::ModelMismatch { expected: model.into(), found: found.model });
        }
        Ok(found)
    }

    fn remember(&self, e: &Enrollment, lookup: &[u8]) {
        self.remember_subject(&e.subject, lookup);
    }

    fn remember_subject(&self, subject: &str, lookup: &[u8]) {
        let mut subjects = self.subjects.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        subjects.insert(lookup.to_vec(), subject.to_owned());
    }

    fn find(
        client: &mut impl postgres::GenericClient,
        lookups: &[Vec<u8>],
        lock: bool,
    ) -> Result<Option<SealedRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM subjects WHERE lookup = ANY($1) ORDER BY updated_ms DESC{}",
            if lock { " FOR UPDATE" } else { "" }
        );
        Ok(client.query(sql.as_str(), &[&lookups]).map_err(db)?.first().map(sealed))
    }
}

impl Drop for PostgresStore {
    /// The blocking client closes its connections through a runtime of its own, which cannot
    /// start on an async runtime's thread: they are closed on a thread of their own.
    fn drop(&mut self) {
        let listener = self.listener.get_mut().map(Option::take).unwrap_or_default();
        let idle = self.pool.take_idle();
        let _ = std::thread::spawn(move || drop((listener, idle))).join();
    }
}

impl TemplateStore for PostgresStore {
    fn upsert_many(&self, enrollments: &[Enrollment]) -> Result<Vec<Upsert>> {
        let mut client = self.pool.get()?;
        let mut tx = client.transaction().map_err(db)?;
        let mut outcomes = Vec::with_capacity(enrollments.len());
        for e in enrollments {
            let existing = Self::find(&mut tx, &self.keys.lookups(&e.subject), true)?;
            let before = existing.as_ref().map(|old| self.keys.open(old)).transpose()?;
            let outcome = Upsert::between(before.as_ref(), e);
            if outcome != Upsert::Unchanged {
                let now = now_ms();
                let created = existing.as_ref().map_or(now, |old| old.created_ms);
                if let Some(old) = &existing {
                    tx.execute("DELETE FROM subjects WHERE lookup = $1", &[&old.lookup]).map_err(db)?;
                }
                let r = self.keys.seal(e, created, now)?;
                tx.execute(
                    &format!("INSERT INTO subjects ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"),
                    &[&r.lookup, &r.model, &r.key_id, &r.nonce, &r.sealed, &r.created_ms, &r.updated_ms],
                )
                .map_err(db)?;
                tx.execute("INSERT INTO changes (lookup, erased) VALUES ($1, false)", &[&r.lookup])
                    .map_err(db)?;
                self.remember(e, &r.lookup);
            }
            outcomes.push(outcome);
        }
        if outcomes.iter().any(|o| *o != Upsert::Unchanged) {
            tx.batch_execute("NOTIFY wajah_changes").map_err(db)?;
        }
        tx.commit().map_err(db)?;
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
        let mut client = self.pool.get()?;
        let mut tx = client.transaction().map_err(db)?;
        let gone = tx
            .query(
                "DELETE FROM subjects WHERE lookup = ANY($1) RETURNING lookup",
                &[&self.keys.lookups(subject)],
            )
            .map_err(db)?;
        for row in &gone {
            let lookup: Vec<u8> = row.get(0);
            tx.execute("INSERT INTO changes (lookup, erased) VALUES ($1, true)", &[&lookup]).map_err(db)?;
        }
        if !gone.is_empty() {
            tx.batch_execute("NOTIFY wajah_changes").map_err(db)?;
        }
        tx.commit().map_err(db)?;
        Ok(!gone.is_empty())
    }

    fn count(&self) -> Result<usize> {
        let n: i64 = self.pool.get()?.query_one("SELECT COUNT(*) FROM subjects", &[]).map_err(db)?.get(0);
        Ok(n as usize)
    }

    fn all(&self, model: &str) -> Result<Vec<Enrollment>> {
        let rows = self
            .pool
            .get()?
            .query(&format!("SELECT {COLUMNS} FROM subjects WHERE model = $1"), &[&model])
            .map_err(db)?;
        let mut all = Vec::with_capacity(rows.len());
        for row in &rows {
            let r = sealed(row);
            let e = self.keys.open(&r)?;
            self.remember(&e, &r.lookup);
            all.push(e);
        }
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
        // One scan through a cursor, fetched a page at a time: no sort, and only a page of rows
        // in memory on either side.
        let mut client = self.pool.get()?;
        let mut tx = client.transaction().map_err(db)?;
        let sql = format!("SELECT {COLUMNS} FROM subjects WHERE model = $1");
        let portal = tx.bind(sql.as_str(), &[&model]).map_err(db)?;
        let page_rows = i32::try_from(size).unwrap_or(i32::MAX);
        let mut count = 0;
        loop {
            let rows = tx.query_portal(&portal, page_rows).map_err(db)?;
            if rows.is_empty() {
                break;
            }
            let mut page = Vec::with_capacity(rows.len());
            for row in &rows {
                let r = sealed(row);
                let (subject, embedding) = self.keys.open_template(&r)?;
                self.remember_subject(&subject, &r.lookup);
                page.push((subject, embedding));
            }
            drop(rows);
            count += page.len();
            each(page)?;
        }
        tx.commit().map_err(db)?;
        Ok(count)
    }

    fn change_position(&self) -> Result<Option<i64>> {
        let n: i64 =
            self.pool.get()?.query_one("SELECT COALESCE(MAX(seq), 0) FROM changes", &[]).map_err(db)?.get(0);
        Ok(Some(n))
    }

    fn changes_since(&self, position: i64, model: &str) -> Result<(i64, Vec<Change>)> {
        let rows = self
            .pool
            .get()?
            .query(
                "SELECT c.seq, c.lookup, c.erased, s.model, s.key_id, s.nonce, s.sealed, s.created_ms, s.updated_ms
                 FROM changes c LEFT JOIN subjects s ON s.lookup = c.lookup
                 WHERE c.seq > $1 ORDER BY c.seq LIMIT $2",
                &[&position, &FEED_BATCH],
            )
            .map_err(db)?;
        let mut last = position;
        let mut changes = Vec::new();
        for row in &rows {
            last = row.get(0);
            let lookup: Vec<u8> = row.get(1);
            let erased: bool = row.get(2);
            let current: Option<String> = row.get(3);
            if erased {
                let mut subjects = self.subjects.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some(subject) = subjects.remove(&lookup) {
                    changes.push(Change::Erased(subject));
                }
            } else if current.as_deref() == Some(model) {
                let r = SealedRow {
                    lookup: lookup.clone(),
                    model: row.get(3),
                    key_id: row.get(4),
                    nonce: row.get(5),
                    sealed: row.get(6),
                    created_ms: row.get(7),
                    updated_ms: row.get(8),
                };
                let e = self.keys.open(&r)?;
                self.remember(&e, &lookup);
                changes.push(Change::Enrolled(e));
            }
        }
        Ok((last, changes))
    }

    fn wait_for_change(&self, timeout: Duration) -> Result<()> {
        let mut listener = self.listener.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if listener.as_ref().is_none_or(Client::is_closed) {
            let mut client = self.pool.connect()?;
            client.batch_execute("LISTEN wajah_changes").map_err(db)?;
            *listener = Some(client);
        }
        let Some(client) = listener.as_mut() else { return Ok(()) };
        let mut notifications = client.notifications();
        let mut waiting = notifications.timeout_iter(timeout);
        match waiting.next() {
            Err(e) => {
                drop(waiting);
                drop(notifications);
                *listener = None;
                Err(db(e))
            }
            Ok(_) => Ok(()),
        }
    }

    fn is_available(&self) -> bool {
        self.pool.get().and_then(|mut c| c.simple_query("SELECT 1").map_err(db)).is_ok()
    }
}
