//! The audit trail: every enrolment, verification, identification and deletion, in an append-only,
//! hash-chained table beside the templates. Rows hold who asked and what was decided, never photos
//! or templates; the subject is a keyed hash.
//!
//! Each row's `hash` is SHA-256 over the previous row's hash and this row's fields, so changing,
//! inserting or removing a row breaks the chain from there on ([`AuditLog::verify`]). Updates are
//! refused by a trigger. Retention removes the oldest rows only; the first remaining row keeps its
//! `prev` hash, so the rest still verifies.

use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::sqlite::{now_ms, store_err};
use crate::error::{Error, Result};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit (
    seq        INTEGER PRIMARY KEY,
    time_ms    INTEGER NOT NULL,
    request_id TEXT NOT NULL,
    api_key_id TEXT NOT NULL,
    operation  TEXT NOT NULL,
    subject    TEXT NOT NULL,
    decision   TEXT NOT NULL,
    score      REAL,
    model      TEXT NOT NULL,
    problems   TEXT NOT NULL,
    prev       BLOB NOT NULL,
    hash       BLOB NOT NULL
) STRICT;
CREATE TRIGGER IF NOT EXISTS audit_append_only BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
";

/// One audited operation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Unix milliseconds (set when appended).
    pub time_ms: i64,
    /// The service's request id.
    pub request_id: String,
    /// Id of the API key that asked (never the key).
    pub api_key_id: String,
    /// `enroll`, `verify`, `identify`, `delete`.
    pub operation: String,
    /// Keyed hash of the subject (hex), empty for identifications.
    pub subject: String,
    /// `created`, `match`, `no_match`, `deleted`, or an error code.
    pub decision: String,
    /// The similarity, where there was one.
    pub score: Option<f32>,
    /// The recogniser.
    pub model: String,
    /// Capture problems, comma-separated.
    pub problems: String,
}

/// A stored event with its place in the chain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the trail.
    pub seq: i64,
    /// The event.
    #[serde(flatten)]
    pub event: AuditEvent,
    /// This row's chain hash (hex).
    pub hash: String,
}

/// The append-only audit table of a SQLite template database.
pub struct AuditLog {
    conn: Mutex<Connection>,
    key: super::TemplateKey,
}

fn chain(prev: &[u8], seq: i64, e: &AuditEvent) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(seq.to_le_bytes());
    h.update(e.time_ms.to_le_bytes());
    for field in [&e.request_id, &e.api_key_id, &e.operation, &e.subject, &e.decision, &e.model, &e.problems]
    {
        h.update((field.len() as u64).to_le_bytes());
        h.update(field.as_bytes());
    }
    h.update(e.score.map_or([0xff; 4], f32::to_le_bytes));
    h.finalize().to_vec()
}

type Row = (i64, AuditEvent, Vec<u8>, Vec<u8>);

fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    let event = AuditEvent {
        time_ms: r.get(1)?,
        request_id: r.get(2)?,
        api_key_id: r.get(3)?,
        operation: r.get(4)?,
        subject: r.get(5)?,
        decision: r.get(6)?,
        score: r.get::<_, Option<f64>>(7)?.map(|s| s as f32),
        model: r.get(8)?,
        problems: r.get(9)?,
    };
    Ok((r.get(0)?, event, r.get(10)?, r.get(11)?))
}

const SELECT: &str =
    "SELECT seq, time_ms, request_id, api_key_id, operation, subject, decision, score, model,
    problems, prev, hash FROM audit";

impl AuditLog {
    /// Opens the audit table of the database at `path` (created beside the templates); `key`
    /// makes the subjects' keyed hashes.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub fn open(path: &std::path::Path, key: super::TemplateKey) -> Result<Self> {
        let conn = Connection::open(path).map_err(store_err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(store_err)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(store_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(store_err)?;
        conn.execute_batch(SCHEMA).map_err(store_err)?;
        Ok(Self { conn: Mutex::new(conn), key })
    }

    /// The keyed hash (hex) recorded for `subject`.
    pub fn subject_hash(&self, subject: &str) -> String {
        hex::encode(self.key.lookup(subject))
    }

    fn conn(&self) -> Result<MutexGuard<'_, Connection>> {
        self.conn.lock().map_err(|_| Error::Store("audit connection mutex poisoned".into()))
    }

    /// Appends `event` (its time set now); returns its sequence number.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub fn append(&self, mut event: AuditEvent) -> Result<i64> {
        event.time_ms = now_ms();
        let mut conn = self.conn()?;
        let tx = conn.transaction().map_err(store_err)?;
        let last: Option<(i64, Vec<u8>)> = tx
            .query_row("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(store_err)?;
        let (seq, prev) = last.map_or((1, vec![0u8; 32]), |(s, h)| (s + 1, h));
        let hash = chain(&prev, seq, &event);
        tx.execute(
            "INSERT INTO audit VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                seq,
                event.time_ms,
                event.request_id,
                event.api_key_id,
                event.operation,
                event.subject,
                event.decision,
                event.score.map(f64::from),
                event.model,
                event.problems,
                prev,
                hash
            ],
        )
        .map_err(store_err)?;
        tx.commit().map_err(store_err)?;
        Ok(seq)
    }

    /// The newest `limit` records, oldest first.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub fn list(&self, limit: usize) -> Result<Vec<AuditRecord>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(&format!("{SELECT} ORDER BY seq DESC LIMIT ?1")).map_err(store_err)?;
        let mut rows: Vec<AuditRecord> = stmt
            .query_map([limit as i64], read)
            .map_err(store_err)?
            .map(|r| r.map(|(seq, event, _, hash)| AuditRecord { seq, event, hash: hex::encode(hash) }))
            .collect::<rusqlite::Result<_>>()
            .map_err(store_err)?;
        rows.reverse();
        Ok(rows)
    }

    /// Checks the whole chain; returns the number of records.
    ///
    /// # Errors
    /// [`Error::Store`] naming the first record whose hash or link is wrong.
    pub fn verify(&self) -> Result<usize> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(&format!("{SELECT} ORDER BY seq")).map_err(store_err)?;
        let rows = stmt.query_map([], read).map_err(store_err)?;
        let mut expected_prev: Option<(i64, Vec<u8>)> = None;
        let mut n = 0;
        for row in rows {
            let (seq, event, prev, hash) = row.map_err(store_err)?;
            if let Some((last_seq, last_hash)) = &expected_prev
                && (seq != last_seq + 1 || prev != *last_hash)
            {
                return Err(Error::Store(format!("audit record {seq} does not follow record {last_seq}")));
            }
            if chain(&prev, seq, &event) != hash {
                return Err(Error::Store(format!("audit record {seq} was altered")));
            }
            expected_prev = Some((seq, hash));
            n += 1;
        }
        Ok(n)
    }

    /// Removes records older than `keep_ms` milliseconds; returns how many.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub fn prune(&self, keep_ms: i64) -> Result<usize> {
        let cutoff = now_ms() - keep_ms;
        let n = self.conn()?.execute("DELETE FROM audit WHERE time_ms < ?1", [cutoff]).map_err(store_err)?;
        Ok(n)
    }
}
