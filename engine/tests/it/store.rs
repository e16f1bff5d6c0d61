//! The SQLite template store: durability, encryption at rest, crash safety.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use wajah::{Embedding, Enrollment, Error, SqliteStore, Template, TemplateKey, TemplateStore, Upsert};

const MODEL: &str = "sface-2021dec-int8bq:8f5eea7c";

fn key() -> TemplateKey {
    TemplateKey::from_bytes(&[7u8; 32]).expect("32 bytes")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wajah-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
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
    let path = dir.join("templates.db");
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
    drop(store);

    // No plaintext template anywhere in the database files: search for every template's first
    // 16 bytes (4 floats) in the raw bytes of the database and its WAL.
    let mut raw = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("dir") {
        raw.extend(std::fs::read(entry.expect("entry").path()).expect("read"));
    }
    for i in (0..1000).step_by(7) {
        let needle = &enrollment(i).template.embedding.to_le_bytes()[..16];
        assert!(!raw.windows(16).any(|w| w == needle), "plaintext template {i} found on disk");
    }
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn another_models_template_is_refused_not_compared() {
    let dir = temp_dir("model");
    let store = SqliteStore::open(&dir.join("t.db"), vec![key()]).expect("opens");
    store.upsert(&enrollment(1)).expect("enrolled");
    match store.get(&enrollment(1).subject, "another-model:00000000") {
        Err(Error::ModelMismatch { found, .. }) => assert_eq!(found, MODEL),
        other => panic!("expected ModelMismatch, got {other:?}"),
    }
    std::fs::remove_dir_all(dir).ok();
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
    let path = dir.join("templates.db");
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
    std::fs::remove_dir_all(dir).ok();
}
