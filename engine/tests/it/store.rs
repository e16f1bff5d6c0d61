//! The SQLite template store: durability, encryption at rest, crash safety.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use wajah::{Embedding, Enrollment, Error, SqliteStore, Template, TemplateKey, TemplateStore, Upsert};

const MODEL: &str = "sface-2021dec-int8bq:8f5eea7c";

fn key() -> TemplateKey {
    TemplateKey::from_bytes(&[7u8; 32]).expect("32 bytes")
}

/// A fresh directory, removed when dropped (also when the test fails).
fn temp_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("wajah-it-{name}-")).tempdir().expect("temp dir")
}

/// A deterministic unit vector per subject number.
fn embedding(i: u64) -> Embedding {
    let mut x = (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    Embedding::from_raw(
        (0..128)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect(),
    )
    .expect("non-zero")
}

fn enrollment(i: u64) -> Enrollment {
    Enrollment {
        subject: format!("3201011505{:06}", i + 1),
        template: Template { model: MODEL.into(), embedding: embedding(i) },
        quality: serde_json::json!({ "sharpness": 100.0 }),
        photo_sha256: format!("{i:064x}"),
        created_ms: 0,
        updated_ms: 0,
    }
}

#[test]
fn thousand_enrolments_survive_reopening_bit_identical_and_encrypted() {
    let dir = temp_dir("thousand");
    let path = dir.path().join("templates.db");
    {
        let store = SqliteStore::open(&path, vec![key()]).expect("opens");
        let batch: Vec<Enrollment> = (0..1000).map(enrollment).collect();
        let outcomes = store.upsert_many(&batch).expect("enrolled");
        assert!(outcomes.iter().all(|o| *o == Upsert::Created));
    }
    let store = SqliteStore::open(&path, vec![key()]).expect("reopens");
    assert_eq!(store.count().expect("counts"), 1000);
    for i in 0..1000 {
        let want = enrollment(i);
        let got = store.get(&want.subject, MODEL).expect("present");
        assert_eq!(
            got.template.embedding.to_le_bytes(),
            want.template.embedding.to_le_bytes(),
            "subject {i}"
        );
    }
    assert_eq!(store.all(MODEL).expect("all").len(), 1000);
    // Streamed in pages of 300, as a gallery loads: every template once, as its row holds it.
    let (mut pages, mut streamed) = (Vec::new(), std::collections::BTreeMap::new());
    let count = store
        .templates(MODEL, 300, &mut |page| {
            pages.push(page.len());
            streamed.extend(page.into_iter().map(|(s, e)| (s, e.to_le_bytes())));
            Ok(())
        })
        .expect("streams");
    assert_eq!((count, pages, streamed.len()), (1000, vec![300, 300, 300, 100], 1000));
    for e in store.all(MODEL).expect("all") {
        assert_eq!(streamed[&e.subject], e.template.embedding.to_le_bytes(), "{}", e.subject);
    }
    let stopped = store.templates(MODEL, 300, &mut |_| Err(Error::Store("index full".into())));
    assert!(matches!(stopped, Err(Error::Store(m)) if m == "index full"));
    drop(store);

    // No plaintext template anywhere in the database files: search for every template's first
    // 16 bytes (4 floats) in the raw bytes of the database and its WAL.
    let mut raw = Vec::new();
    for entry in std::fs::read_dir(dir.path()).expect("dir") {
        raw.extend(std::fs::read(entry.expect("entry").path()).expect("read"));
    }
    for i in (0..1000).step_by(7) {
        let needle = &enrollment(i).template.embedding.to_le_bytes()[..16];
        assert!(!raw.windows(16).any(|w| w == needle), "plaintext template {i} found on disk");
    }
}

#[test]
fn another_models_template_is_refused_not_compared() {
    let dir = temp_dir("model");
    let store = SqliteStore::open(&dir.path().join("t.db"), vec![key()]).expect("opens");
    store.upsert(&enrollment(1)).expect("enrolled");
    match store.get(&enrollment(1).subject, "another-model:00000000") {
        Err(Error::ModelMismatch { found, .. }) => assert_eq!(found, MODEL),
        other => panic!("expected ModelMismatch, got {other:?}"),
    }
    assert!(matches!(
        store.get_template(&enrollment(1).subject, "another-model:00000000"),
        Err(Error::ModelMismatch { .. })
    ));
    assert_eq!(store.get_template(&enrollment(1).subject, MODEL).expect("template"), enrollment(1).template);
}

/// Child mode of this test binary: enrol batches of 10 forever, printing the committed count.
#[test]
fn store_writer_child() {
    let Ok(path) = std::env::var("WAJAH_STORE_WRITER") else { return };
    let store = SqliteStore::open(Path::new(&path), vec![key()]).expect("opens");
    for batch in 0u64.. {
        let rows: Vec<Enrollment> = (batch * 10..batch * 10 + 10).map(enrollment).collect();
        store.upsert_many(&rows).expect("enrolled");
        println!("committed {}", (batch + 1) * 10);
    }
}

#[test]
fn sigkill_mid_batch_loses_no_committed_enrolment_and_leaves_no_half_row() {
    let dir = temp_dir("sigkill");
    let path = dir.path().join("templates.db");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "store::store_writer_child", "--nocapture", "--test-threads", "1"])
        .env("WAJAH_STORE_WRITER", &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawns the writer");
    let stdout = child.stdout.take().expect("piped");
    let mut committed = 0u64;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        if let Some(n) = line.strip_prefix("committed ") {
            committed = n.trim().parse().expect("a count");
            if committed >= 300 {
                break;
            }
        }
    }
    child.kill().expect("SIGKILL"); // std's kill sends SIGKILL on Unix
    child.wait().expect("reaped");
    assert!(committed >= 300, "the writer committed {committed}");

    let store = SqliteStore::open(&path, vec![key()]).expect("reopens after the kill");
    store.integrity_check().expect("database intact");
    let count = store.count().expect("counts") as u64;
    assert!(count >= committed, "{count} rows, {committed} were reported committed");
    assert_eq!(count % 10, 0, "a batch is all or nothing: {count} rows");
    for (i, e) in store.all(MODEL).expect("every row decrypts").iter().enumerate() {
        assert_eq!(e.template.embedding, enrollment(i as u64).template.embedding, "row {i}");
    }
}

fn raw_files(dir: &Path) -> Vec<u8> {
    let mut raw = Vec::new();
    for entry in std::fs::read_dir(dir).expect("dir") {
        raw.extend(std::fs::read(entry.expect("entry").path()).expect("read"));
    }
    raw
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn upsert_reports_created_replaced_unchanged() {
    let dir = temp_dir("upsert");
    let store = SqliteStore::open(&dir.path().join("a.db"), vec![key()]).expect("opens");
    let (first, mut other_photo) = (enrollment(1), enrollment(1));
    other_photo.photo_sha256 = "b".repeat(64);
    other_photo.template.embedding = embedding(2);
    assert_eq!(store.upsert(&first).expect("ok"), Upsert::Created);
    assert_eq!(store.upsert(&first).expect("ok"), Upsert::Unchanged);
    assert_eq!(store.upsert(&other_photo).expect("ok"), Upsert::Replaced);
    assert_eq!(store.count().expect("count"), 1);
    let got = store.get(&first.subject, MODEL).expect("enrolled");
    assert_eq!(
        (got.template, got.photo_sha256, got.quality),
        (other_photo.template, other_photo.photo_sha256, other_photo.quality)
    );
    assert!(store.delete(&first.subject).expect("ok"));
    assert!(!store.delete(&first.subject).expect("ok"));
    assert!(matches!(store.get(&first.subject, MODEL), Err(Error::NotEnrolled)));
    assert!(matches!(store.get_template(&first.subject, MODEL), Err(Error::NotEnrolled)));
}

/// NIKs are not on disk in clear; after a delete, no byte sequence of the subject's row (its NIK,
/// lookup hash or ciphertext) remains in any database file; the files are private (0600).
#[test]
fn deletion_erases_every_trace_and_files_are_private() {
    let dir = temp_dir("erase");
    let path = dir.path().join("templates.db");
    let store = SqliteStore::open(&path, vec![key()]).expect("opens");
    let batch: Vec<Enrollment> = (0..50).map(enrollment).collect();
    store.upsert_many(&batch).expect("enrolled");
    let victim = enrollment(7);
    store.upsert(&Enrollment { photo_sha256: "c".repeat(64), ..victim.clone() }).expect("replaced");
    let raw = raw_files(dir.path());
    assert!(!contains(&raw, victim.subject.as_bytes()), "a NIK is stored in clear");
    let conn = rusqlite::Connection::open(&path).expect("raw open");
    let lookup = key().id().to_string();
    let (hash, sealed): (Vec<u8>, Vec<u8>) = conn
        .query_row(
            "SELECT lookup, sealed FROM subjects WHERE key_id = ?1 ORDER BY lookup LIMIT 1",
            [&lookup],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("a row");
    drop(conn);
    // Delete every subject, then look for the first row's lookup hash and ciphertext.
    for e in &batch {
        assert!(store.delete(&e.subject).expect("deleted"));
    }
    let raw = raw_files(dir.path());
    assert!(!contains(&raw, &hash), "the lookup hash of an erased row is still on disk");
    assert!(!contains(&raw, &sealed[..32]), "the ciphertext of an erased row is still on disk");
    #[cfg(unix)]
    for entry in std::fs::read_dir(dir.path()).expect("dir") {
        use std::os::unix::fs::PermissionsExt;
        let entry = entry.expect("entry");
        let mode = entry.metadata().expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} has mode {mode:o}", entry.path().display());
    }
}

#[test]
fn wrong_key_and_moved_rows_do_not_decrypt_and_rotation_reseals() {
    let dir = temp_dir("keys");
    let path = dir.path().join("b.db");
    let old = || TemplateKey::from_bytes(&[1u8; 32]).expect("key");
    let new = || TemplateKey::from_bytes(&[2u8; 32]).expect("key");
    let (a, b) = (enrollment(1), enrollment(2));
    SqliteStore::open(&path, vec![old()]).expect("opens").upsert_many(&[a.clone(), b.clone()]).expect("ok");
    // Another key finds nothing (lookups are keyed) and opens nothing.
    let other = SqliteStore::open(&path, vec![new()]).expect("opens");
    assert!(matches!(other.get(&a.subject, MODEL), Err(Error::NotEnrolled)));
    assert!(matches!(other.all(MODEL), Err(Error::Crypto(_))));
    assert!(matches!(other.templates(MODEL, 10, &mut |_| Ok(())), Err(Error::Crypto(_))));
    drop(other);
    // A ciphertext copied onto another subject's row fails authentication.
    let conn = rusqlite::Connection::open(&path).expect("raw open");
    let mut rows: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> = conn
        .prepare("SELECT lookup, nonce, sealed FROM subjects")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    let (target, source) = (rows.remove(0), rows.remove(0));
    conn.execute(
        "UPDATE subjects SET nonce = ?1, sealed = ?2 WHERE lookup = ?3",
        rusqlite::params![source.1, source.2, target.0],
    )
    .expect("moved");
    drop(conn);
    let store = SqliteStore::open(&path, vec![old()]).expect("opens");
    let moved =
        [&a, &b].into_iter().filter(|e| matches!(store.get(&e.subject, MODEL), Err(Error::Crypto(_))));
    assert_eq!(moved.count(), 1, "the moved row must not open");
    store.delete(&a.subject).expect("ok");
    store.delete(&b.subject).expect("ok");
    store.upsert_many(&[a.clone(), b.clone()]).expect("ok");
    drop(store);
    // Rotation: the new key first, the old one still opens and finds old rows; reseal moves them.
    let rotated = SqliteStore::open(&path, vec![new(), old()]).expect("opens");
    assert_eq!(rotated.get(&a.subject, MODEL).expect("old row").template, a.template);
    assert_eq!(rotated.reseal().expect("resealed"), 2);
    drop(rotated);
    let only_new = SqliteStore::open(&path, vec![new()]).expect("opens");
    assert_eq!(only_new.get(&b.subject, MODEL).expect("resealed row").template, b.template);
    assert_eq!(only_new.count().expect("count"), 2);
}

/// A database of the first schema (NIK in clear as the key, only the template sealed) is migrated
/// on open: every row readable, no NIK left in clear.
#[test]
fn first_schema_is_migrated_without_loss() {
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    let dir = temp_dir("migrate");
    let path = dir.path().join("templates.db");
    let conn = rusqlite::Connection::open(&path).expect("raw open");
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE enrollments (subject TEXT PRIMARY KEY NOT NULL, model TEXT NOT NULL, key_id TEXT NOT NULL,
           nonce BLOB NOT NULL, template BLOB NOT NULL, quality TEXT NOT NULL, photo_sha256 TEXT NOT NULL,
           created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL) STRICT;",
    )
    .expect("v1 schema");
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(&[7u8; 32]).expect("key");
    for i in 0..20 {
        let e = enrollment(i);
        let nonce = [i as u8; 12];
        let aad = [b"wajah-template-v1\0".as_slice(), e.subject.as_bytes(), b"\0", MODEL.as_bytes()].concat();
        let plain = e.template.embedding.to_le_bytes();
        let sealed = cipher
            .encrypt(aes_gcm::Nonce::from_slice(&nonce), Payload { msg: &plain, aad: &aad })
            .expect("sealed");
        conn.execute(
            "INSERT INTO enrollments VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 5, 6)",
            rusqlite::params![
                e.subject,
                MODEL,
                key().id(),
                nonce.to_vec(),
                sealed,
                e.quality.to_string(),
                e.photo_sha256
            ],
        )
        .expect("v1 row");
    }
    drop(conn);
    let store = SqliteStore::open(&path, vec![key()]).expect("migrates");
    assert_eq!(store.count().expect("count"), 20);
    for i in 0..20 {
        let want = enrollment(i);
        let got = store.get(&want.subject, MODEL).expect("migrated row");
        assert_eq!((got.template, got.photo_sha256, got.created_ms), (want.template, want.photo_sha256, 5));
    }
    drop(store);
    let raw = raw_files(dir.path());
    assert!(!contains(&raw, enrollment(3).subject.as_bytes()), "a NIK is still in clear after migration");
}

#[test]
fn online_backup_restores() {
    let dir = temp_dir("backup");
    let store = SqliteStore::open(&dir.path().join("live.db"), vec![key()]).expect("opens");
    store.upsert_many(&(0..30).map(enrollment).collect::<Vec<_>>()).expect("enrolled");
    let copy = dir.path().join("copy.db");
    store.backup(&copy).expect("backed up");
    store.delete(&enrollment(0).subject).expect("deleted after the backup");
    let restored = SqliteStore::open(&copy, vec![key()]).expect("restores");
    assert_eq!(restored.count().expect("count"), 30);
    assert_eq!(
        restored.get(&enrollment(0).subject, MODEL).expect("present").template,
        enrollment(0).template
    );
}

#[test]
fn audit_trail_is_chained_append_only_and_prunable() {
    use wajah::{AuditEvent, AuditLog};
    let dir = temp_dir("audit");
    let path = dir.path().join("templates.db");
    let log = AuditLog::open(&path, key()).expect("opens");
    let subject = log.subject_hash("3201011505900001");
    assert_eq!(subject.len(), 64);
    for (i, op) in ["enroll", "verify", "identify", "delete"].into_iter().enumerate() {
        let event = AuditEvent {
            request_id: format!("r{i}"),
            api_key_id: "k1".into(),
            operation: op.into(),
            subject: subject.clone(),
            decision: "match".into(),
            score: Some(0.8),
            model: MODEL.into(),
            ..AuditEvent::default()
        };
        assert_eq!(log.append(event).expect("appended"), i as i64 + 1);
    }
    assert_eq!(log.verify().expect("intact"), 4);
    assert_eq!(log.list(2).expect("listed").iter().map(|r| r.seq).collect::<Vec<_>>(), vec![3, 4]);
    let raw = std::fs::read(&path).expect("db");
    assert!(!contains(&raw, b"3201011505900001"), "the NIK is in the audit trail in clear");
    // Updates are refused; a row altered behind the trigger's back breaks the chain.
    let conn = rusqlite::Connection::open(&path).expect("raw open");
    assert!(conn.execute("UPDATE audit SET decision = 'no_match' WHERE seq = 2", []).is_err());
    conn.execute_batch(
        "DROP TRIGGER audit_append_only; UPDATE audit SET decision = 'no_match' WHERE seq = 2;",
    )
    .expect("tampered");
    let err = log.verify().expect_err("tampering is found").to_string();
    assert!(err.contains("record 2"), "{err}");
    // Removing a middle record is found too; pruning the oldest keeps the rest verifiable.
    conn.execute("UPDATE audit SET decision = 'match' WHERE seq = 2", []).expect("restored");
    assert_eq!(log.verify().expect("intact again"), 4);
    conn.execute("DELETE FROM audit WHERE seq = 3", []).expect("removed");
    assert!(log.verify().expect_err("a gap is found").to_string().contains("record 4"));
    drop(conn);
    assert_eq!(log.prune(-1_000).expect("pruned"), 3, "a negative retention prunes everything");
    assert_eq!(log.verify().expect("empty is intact"), 0);
}
