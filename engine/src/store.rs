//! Enrolled templates on disk: the [`TemplateStore`] trait and its SQLite backend.
//!
//! Templates are biometric data (UU PDP 27/2022): every template is encrypted with AES-256-GCM
//! before it reaches the database. The key comes from a file or the environment, never from the
//! database; each row records the id of the key that sealed it, and the subject id and model id are
//! bound to the ciphertext as associated data, so a row cannot be moved to another subject or model.

use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Key, Nonce};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::embedding::{Embedding, Template};
use crate::error::{Error, Result};

/// An AES-256 key for templates at rest.
pub struct TemplateKey {
    key: Zeroizing<[u8; 32]>,
    id: String,
}

impl std::fmt::Debug for TemplateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TemplateKey({})", self.id)
    }
}

impl TemplateKey {
    /// A key from 32 raw bytes or 64 hex digits (surrounding white space ignored).
    ///
    /// # Errors
    /// [`Error::Config`] for any other length or content.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut key = Zeroizing::new([0u8; 32]);
        let text = std::str::from_utf8(bytes).ok().map(str::trim);
        match text {
            Some(hex_text) if hex_text.len() == 64 => {
                hex::decode_to_slice(hex_text, key.as_mut())
                    .map_err(|_| Error::Config("template key: 64 characters but not hex".into()))?;
            }
            _ if bytes.len() == 32 => key.copy_from_slice(bytes),
            _ => return Err(Error::Config("template key must be 32 bytes or 64 hex digits".into())),
        }
        let id = format!("k{}", &hex::encode(Sha256::digest(key.as_ref()))[..8]);
        Ok(Self { key, id })
    }

    /// Reads a key file.
    ///
    /// # Errors
    /// [`Error::Config`] when the file cannot be read or holds no valid key.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = Zeroizing::new(
            std::fs::read(path)
                .map_err(|e| Error::Config(format!("template key {}: {e}", path.display())))?,
        );
        Self::from_bytes(&bytes)
    }

    /// Creates a new random key file (hex, mode 0600); fails if the file exists.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be created.
    pub fn create(path: &Path) -> Result<Self> {
        use std::io::Write;
        let key = Aes256Gcm::generate_key(OsRng);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path)?;
        let text = Zeroizing::new(hex::encode(key.as_slice()));
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        Self::from_bytes(key.as_slice())
    }

    /// Short public id of the key (a hash prefix), stored with every row it seals.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(self.key.as_ref()))
    }
}

/// One enrolled subject.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Enrollment {
    /// Subject id (for IKD, the NIK).
    pub subject: String,
    /// The template and its model id.
    pub template: Template,
    /// Capture-quality summary of the enrolment photo (JSON).
    pub quality: serde_json::Value,
    /// sha256 (hex) of the enrolment photo's bytes.
    pub photo_sha256: String,
    /// First enrolment, unix milliseconds.
    pub created_ms: i64,
    /// Last change, unix milliseconds.
    pub updated_ms: i64,
}

/// What an upsert did.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Upsert {
    /// The subject was not enrolled.
    Created,
    /// The subject's earlier enrolment was replaced.
    Replaced,
    /// The same photo was enrolled again with the same model: nothing changed.
    Unchanged,
}

/// Where enrolments live. Implementations are shared between threads.
pub trait TemplateStore: Send + Sync {
    /// Inserts or replaces one enrolment.
    ///
    /// # Errors
    /// [`Error::Store`] or [`Error::Crypto`].
    fn upsert(&self, enrollment: &Enrollment) -> Result<Upsert> {
        Ok(self.upsert_many(std::slice::from_ref(enrollment))?.remove(0))
    }

    /// Inserts or replaces several enrolments atomically: all or none.
    ///
    /// # Errors
    /// [`Error::Store`] or [`Error::Crypto`].
    fn upsert_many(&self, enrollments: &[Enrollment]) -> Result<Vec<Upsert>>;

    /// The subject's enrolment, which must have been made by `model`.
    ///
    /// # Errors
    /// [`Error::NotEnrolled`]; [`Error::ModelMismatch`] when it was made by another model;
    /// [`Error::Crypto`] when it cannot be decrypted (wrong key, or tampered).
    fn get(&self, subject: &str, model: &str) -> Result<Enrollment>;

    /// Deletes the subject's enrolment; false if there was none.
    ///
    /// # Errors
    /// [`Error::Store`].
    fn delete(&self, subject: &str) -> Result<bool>;

    /// Number of enrolments (all models).
    ///
    /// # Errors
    /// [`Error::Store`].
    fn count(&self) -> Result<usize>;

    /// Every enrolment made by `model`, decrypted (for building a search index).
    ///
    /// # Errors
    /// [`Error::Store`] or [`Error::Crypto`].
    fn all(&self, model: &str) -> Result<Vec<Enrollment>>;
}

/// The embedded default store: one SQLite file (WAL, full sync), templates sealed with AES-256-GCM.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// The first key seals new rows; all of them open old rows (key rotation).
    keys: Vec<TemplateKey>,
}

fn store_err(e: impl std::fmt::Display) -> Error {
    Error::Store(e.to_string())
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn aad(subject: &str, model: &str) -> Vec<u8> {
    [b"wajah-template-v1\0".as_slice(), subject.as_bytes(), b"\0", model.as_bytes()].concat()
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS enrollments (
    subject      TEXT PRIMARY KEY NOT NULL,
    model        TEXT NOT NULL,
    key_id       TEXT NOT NULL,
    nonce        BLOB NOT NULL,
    template     BLOB NOT NULL,
    quality      TEXT NOT NULL,
    photo_sha256 TEXT NOT NULL,
    created_ms   INTEGER NOT NULL,
    updated_ms   INTEGER NOT NULL
) STRICT;
";

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`. `keys[0]` seals new rows.
    ///
    /// # Errors
    /// [`Error::Config`] without a key; [`Error::Store`] when the database cannot be opened.
    pub fn open(path: &Path, keys: Vec<TemplateKey>) -> Result<Self> {
        if keys.is_empty() {
            return Err(Error::Config("the template store needs an encryption key".into()));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let conn = Connection::open(path).map_err(store_err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(store_err)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(store_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(store_err)?;
        conn.execute_batch(SCHEMA).map_err(store_err)?;
        Ok(Self { conn: Mutex::new(conn), keys })
    }

    fn conn(&self) -> Result<std::sync::MutexGuard<'_, Connection>> {
        self.conn.lock().map_err(|_| Error::Store("connection mutex poisoned".into()))
    }

    fn seal(&self, e: &Enrollment) -> Result<(Vec<u8>, Vec<u8>)> {
        let key = &self.keys[0];
        let nonce = Aes256Gcm::generate_nonce(OsRng);
        let plain = Zeroizing::new(e.template.embedding.to_le_bytes());
        let aad = aad(&e.subject, &e.template.model);
        let sealed = key
            .cipher()
            .encrypt(&nonce, Payload { msg: &plain, aad: &aad })
            .map_err(|_| Error::Crypto("encryption failed".into()))?;
        Ok((nonce.to_vec(), sealed))
    }

    fn open_row(&self, row: Row) -> Result<Enrollment> {
        let key = self.keys.iter().find(|k| k.id == row.key_id).ok_or_else(|| {
            Error::Crypto(format!("row sealed with key {} which is not configured", row.key_id))
        })?;
        if row.nonce.len() != 12 {
            return Err(Error::Crypto("stored nonce has the wrong length".into()));
        }
        let aad = aad(&row.subject, &row.model);
        let plain = Zeroizing::new(
            key.cipher()
                .decrypt(Nonce::from_slice(&row.nonce), Payload { msg: &row.template, aad: &aad })
                .map_err(|_| Error::Crypto("template does not decrypt: wrong key or tampered row".into()))?,
        );
        let embedding = Embedding::from_le_bytes(&plain)?;
        Ok(Enrollment {
            subject: row.subject,
            template: Template { model: row.model, embedding },
            quality: serde_json::from_str(&row.quality).unwrap_or(serde_json::Value::Null),
            photo_sha256: row.photo_sha256,
            created_ms: row.created_ms,
            updated_ms: row.updated_ms,
        })
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
}

struct Row {
    subject: String,
    model: String,
    key_id: String,
    nonce: Vec<u8>,
    template: Vec<u8>,
    quality: String,
    photo_sha256: String,
    created_ms: i64,
    updated_ms: i64,
}

const SELECT: &str = "SELECT subject, model, key_id, nonce, template, quality, photo_sha256, created_ms, updated_ms FROM enrollments";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        subject: r.get(0)?,
        model: r.get(1)?,
        key_id: r.get(2)?,
        nonce: r.get(3)?,
        template: r.get(4)?,
        quality: r.get(5)?,
        photo_sha256: r.get(6)?,
        created_ms: r.get(7)?,
        updated_ms: r.get(8)?,
    })
}

impl TemplateStore for SqliteStore {
    fn upsert_many(&self, enrollments: &[Enrollment]) -> Result<Vec<Upsert>> {
        let sealed: Vec<(Vec<u8>, Vec<u8>)> =
            enrollments.iter().map(|e| self.seal(e)).collect::<Result<_>>()?;
        let mut conn = self.conn()?;
        let tx = conn.transaction().map_err(store_err)?;
        let mut outcomes = Vec::with_capacity(enrollments.len());
        for (e, (nonce, template)) in enrollments.iter().zip(sealed) {
            let existing: Option<(String, String, i64)> = tx
                .query_row(
                    "SELECT model, photo_sha256, created_ms FROM enrollments WHERE subject = ?1",
                    [&e.subject],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(store_err)?;
            let outcome = match &existing {
                Some((model, sha, _)) if *model == e.template.model && *sha == e.photo_sha256 => {
                    Upsert::Unchanged
                }
                Some(_) => Upsert::Replaced,
                None => Upsert::Created,
            };
            if outcome != Upsert::Unchanged {
                let now = now_ms();
                let created = existing.map_or(now, |(_, _, c)| c);
                tx.execute(
                    "INSERT OR REPLACE INTO enrollments
                     (subject, model, key_id, nonce, template, quality, photo_sha256, created_ms, updated_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![
                        e.subject,
                        e.template.model,
                        self.keys[0].id,
                        nonce,
                        template,
                        e.quality.to_string(),
                        e.photo_sha256,
                        created,
                        now
                    ],
                )
                .map_err(store_err)?;
            }
            outcomes.push(outcome);
        }
        tx.commit().map_err(store_err)?;
        Ok(outcomes)
    }

    fn get(&self, subject: &str, model: &str) -> Result<Enrollment> {
        let found = self
            .conn()?
            .query_row(&format!("{SELECT} WHERE subject = ?1"), [subject], row)
            .optional()
            .map_err(store_err)?;
        let found = found.ok_or(Error::NotEnrolled)?;
        if found.model != model {
            return Err(Error::ModelMismatch { expected: model.into(), found: found.model });
        }
        self.open_row(found)
    }

    fn delete(&self, subject: &str) -> Result<bool> {
        let n = self
            .conn()?
            .execute("DELETE FROM enrollments WHERE subject = ?1", [subject])
            .map_err(store_err)?;
        Ok(n > 0)
    }

    fn count(&self) -> Result<usize> {
        let n: i64 = self
            .conn()?
            .query_row("SELECT COUNT(*) FROM enrollments", [], |r| r.get(0))
            .map_err(store_err)?;
        Ok(n as usize)
    }

    fn all(&self, model: &str) -> Result<Vec<Enrollment>> {
        let rows: Vec<Row> = {
            let conn = self.conn()?;
            let mut stmt =
                conn.prepare(&format!("{SELECT} WHERE model = ?1 ORDER BY subject")).map_err(store_err)?;
            stmt.query_map([model], row)
                .map_err(store_err)?
                .collect::<rusqlite::Result<_>>()
                .map_err(store_err)?
        };
        rows.into_iter().map(|r| self.open_row(r)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enrollment(subject: &str, seed: f32, photo: &str) -> Enrollment {
        let embedding =
            Embedding::from_raw((0..128).map(|i| (i as f32 * seed).sin()).collect()).expect("valid");
        Enrollment {
            subject: subject.into(),
            template: Template { model: "m:1".into(), embedding },
            quality: serde_json::json!({"sharpness": 1.0}),
            photo_sha256: photo.into(),
            created_ms: 0,
            updated_ms: 0,
        }
    }

    fn key(byte: u8) -> TemplateKey {
        TemplateKey::from_bytes(&[byte; 32]).expect("32 bytes")
    }

    #[test]
    fn upsert_reports_created_replaced_unchanged() {
        let dir = std::env::temp_dir().join(format!("wajah-store-{}", std::process::id()));
        let store = SqliteStore::open(&dir.join("a.db"), vec![key(1)]).expect("opens");
        assert_eq!(store.upsert(&enrollment("s1", 0.1, "p1")).expect("ok"), Upsert::Created);
        assert_eq!(store.upsert(&enrollment("s1", 0.1, "p1")).expect("ok"), Upsert::Unchanged);
        assert_eq!(store.upsert(&enrollment("s1", 0.2, "p2")).expect("ok"), Upsert::Replaced);
        let got = store.get("s1", "m:1").expect("enrolled");
        assert_eq!(got.template, enrollment("s1", 0.2, "p2").template);
        assert!(matches!(store.get("s1", "m:2"), Err(Error::ModelMismatch { .. })));
        assert!(store.delete("s1").expect("ok"));
        assert!(matches!(store.get("s1", "m:1"), Err(Error::NotEnrolled)));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn wrong_key_and_moved_rows_do_not_decrypt() {
        let dir = std::env::temp_dir().join(format!("wajah-store-keys-{}", std::process::id()));
        let path = dir.join("b.db");
        SqliteStore::open(&path, vec![key(1)])
            .expect("opens")
            .upsert(&enrollment("s1", 0.3, "p"))
            .expect("ok");
        let other = SqliteStore::open(&path, vec![key(2)]).expect("opens");
        assert!(matches!(other.get("s1", "m:1"), Err(Error::Crypto(_))));
        // Rotation: a new key first, the old one still opens old rows.
        let rotated = SqliteStore::open(&path, vec![key(2), key(1)]).expect("opens");
        assert!(rotated.get("s1", "m:1").is_ok());
        // A row copied under another subject id fails authentication.
        rotated
            .conn()
            .expect("conn")
            .execute("INSERT INTO enrollments SELECT 's2', model, key_id, nonce, template, quality, photo_sha256, created_ms, updated_ms FROM enrollments WHERE subject = 's1'", [])
            .expect("copied");
        assert!(matches!(rotated.get("s2", "m:1"), Err(Error::Crypto(_))));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn keys_parse_from_hex_or_raw_bytes() {
        let hex_key = TemplateKey::from_bytes(format!("{}\n", "ab".repeat(32)).as_bytes()).expect("hex");
        let raw_key = TemplateKey::from_bytes(&[0xab; 32]).expect("raw");
        assert_eq!(hex_key.id(), raw_key.id());
        assert!(TemplateKey::from_bytes(b"short").is_err());
        assert!(!format!("{hex_key:?}").contains("abab"));
    }
}
