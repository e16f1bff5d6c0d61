//! `wajah store`: key rotation and backup on a database another connection holds open (as the
//! running service does).

use wajah::{Embedding, Enrollment, SqliteStore, Template, TemplateKey, TemplateStore};

use crate::wajah;

const MODEL: &str = "m:00000000";

fn enrollment(i: usize) -> Enrollment {
    let values = (0..128).map(|j| ((i * 131 + j) as f32).sin()).collect();
    Enrollment {
        subject: format!("32010115059{i:05}"),
        template: Template { model: MODEL.into(), embedding: Embedding::from_raw(values).expect("non-zero") },
        quality: serde_json::Value::Null,
        photo_sha256: format!("{i:064}"),
        created_ms: 0,
        updated_ms: 0,
    }
}

fn run(args: &[&str]) -> serde_json::Value {
    let out = wajah(args).output().expect("runs");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[test]
fn reseal_after_rotation_and_backup_while_the_store_is_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (db, old, new) =
        (dir.path().join("templates.db"), dir.path().join("old.key"), dir.path().join("new.key"));
    let (old_key, new_key) =
        (TemplateKey::create(&old).expect("key"), TemplateKey::create(&new).expect("key"));
    assert_ne!(old_key.id(), new_key.id());
    let before = SqliteStore::open(&db, vec![old_key]).expect("opens");
    before.upsert_many(&(0..25).map(enrollment).collect::<Vec<_>>()).expect("enrolled");
    drop(before);
    // The service restarted with the new key first and the old one still accepted.
    let live = SqliteStore::open(&db, vec![new_key, TemplateKey::load(&old).expect("key")]).expect("opens");

    let path = |p: &std::path::Path| p.to_str().expect("utf-8").to_string();
    let (db_s, old_s, new_s) = (path(&db), path(&old), path(&new));
    let report = run(&["store", "--store", &db_s, "--key", &new_s, "--old-key", &old_s, "reseal"]);
    assert_eq!((report["resealed"].as_u64(), report["enrolments"].as_u64()), (Some(25), Some(25)));
    let again = run(&["store", "--store", &db_s, "--key", &new_s, "--old-key", &old_s, "reseal"]);
    assert_eq!(again["resealed"].as_u64(), Some(0), "nothing left under the old key");

    // The service's connection reads every row throughout; only the new key is needed from now on.
    for i in 0..25 {
        assert!(live.get(&enrollment(i).subject, MODEL).is_ok(), "row {i} after resealing");
    }
    let copy = dir.path().join("copy.db");
    let report = run(&["store", "--store", &db_s, "--key", &new_s, "backup", "--to", &path(&copy)]);
    assert_eq!(report["enrolments"].as_u64(), Some(25));
    let restored = SqliteStore::open(&copy, vec![TemplateKey::load(&new).expect("key")]).expect("restores");
    for i in 0..25 {
        let e = enrollment(i);
        assert_eq!(restored.get(&e.subject, MODEL).expect("present").template, e.template, "row {i}");
    }
    let check = run(&["store", "--store", &path(&copy), "--key", &new_s, "check"]);
    assert_eq!(check["integrity"], "ok");
}

#[test]
fn audit_command_verifies_the_chain_and_finds_tampering() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (db, key) = (dir.path().join("templates.db"), dir.path().join("k.key"));
    let log = wajah::AuditLog::open(&db, TemplateKey::create(&key).expect("key")).expect("opens");
    for op in ["enroll", "verify", "delete"] {
        let event = wajah::AuditEvent { operation: op.into(), decision: "ok".into(), ..Default::default() };
        log.append(event).expect("appended");
    }
    let (db_s, key_s) = (db.to_str().expect("utf-8"), key.to_str().expect("utf-8"));
    let report = run(&["store", "--store", db_s, "--key", key_s, "audit", "--limit", "2"]);
    assert_eq!(report["verified_records"].as_u64(), Some(3));
    assert_eq!(report["newest"].as_array().map(Vec::len), Some(2));
    drop(log);
    assert!(tamper(&db), "tampered");
    let out = wajah(&["store", "--store", db_s, "--key", key_s, "audit"]).output().expect("runs");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("record 1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Alters the first audit record behind the trigger's back: one byte of its operation in the file.
fn tamper(db: &std::path::Path) -> bool {
    let mut bytes = std::fs::read(db).expect("db");
    let Some(at) = bytes.windows(6).position(|w| w == b"enroll") else { return false };
    bytes[at] = b'E';
    std::fs::write(db, bytes).is_ok()
}
