//! Versioned migrations. Each server runs them at start under an advisory lock, so several servers
//! starting together apply each step once; a database newer than the binary is refused.

use postgres::Client;
use wajah::{Error, Result};

use crate::db;

/// Migration `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: [&str; 2] = [
    // 1: sealed subjects (as in SQLite), and the change feed other servers follow.
    "CREATE TABLE subjects (
        lookup     BYTEA PRIMARY KEY,
        model      TEXT NOT NULL,
        key_id     TEXT NOT NULL,
        nonce      BYTEA NOT NULL,
        sealed     BYTEA NOT NULL,
        created_ms BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL
    );
    CREATE INDEX subjects_model ON subjects (model);
    CREATE TABLE changes (
        seq     BIGSERIAL PRIMARY KEY,
        lookup  BYTEA NOT NULL,
        erased  BOOLEAN NOT NULL
    );",
    // 2: a row with the ID photo's face patch (about 2.6 KB) stays in its table page, and sealed
    // bytes, which do not compress, are never tried (`store_load`: 4.7k -> 7.6k enrolments/s).
    "ALTER TABLE subjects ALTER COLUMN sealed SET STORAGE EXTERNAL;
    ALTER TABLE subjects SET (toast_tuple_target = 4080);",
];

/// The schema version this build writes.
pub const VERSION: usize = MIGRATIONS.len();

/// An arbitrary, fixed advisory-lock key for migrations.
const LOCK: i64 = 0x7761_6a61_6800;

/// Brings the schema to [`VERSION`].
///
/// # Errors
/// [`Error::Config`] for a newer schema; store errors.
pub fn migrate(client: &mut Client) -> Result<()> {
    let mut tx = client.transaction().map_err(db)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK]).map_err(db)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS wajah_schema (version INTEGER NOT NULL)").map_err(db)?;
    let found: i32 =
        tx.query_opt("SELECT version FROM wajah_schema", &[]).map_err(db)?.map_or(0, |r| r.get(0));
    let found = usize::try_from(found).unwrap_or(0);
    if found > VERSION {
        return Err(Error::Config(format!(
            "the template database has schema {found}; this build knows up to {VERSION}"
        )));
    }
    for step in &MIGRATIONS[found..] {
        tx.batch_execute(step).map_err(db)?;
    }
    let version = VERSION as i32;
    tx.execute("DELETE FROM wajah_schema", &[]).map_err(db)?;
    tx.execute("INSERT INTO wajah_schema (version) VALUES ($1)", &[&version]).map_err(db)?;
    tx.commit().map_err(db)
}
