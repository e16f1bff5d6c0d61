//! The PostgreSQL store against a real PostgreSQL server (a temporary one per test): the store
//! contract of the SQLite store, the change feed between two stores, schema and fault handling.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wajah::{Change, Embedding, Enrollment, Error, Template, TemplateKey, TemplateStore, Upsert};
use wajah_store_pg::PostgresStore;
use wajah_store_pg::testing::TempPostgres;

const MODEL: &str = "sface-2021dec-int8bq:8f5eea7c";

fn key(b: u8) -> TemplateKey {
    TemplateKey::from_bytes(&[b; 32]).expect("32 bytes")
}

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

fn psql(pg: &TempPostgres, sql: &str) -> String {
    let out = std::process::Command::new("psql")
        .args(["-At", "-h"])
        .arg(pg.socket_dir())
        .args(["-p", &pg.url().split("port=").nth(1).unwrap_or_default()[..5], "-U", "postgres", "-c", sql])
        .output()
        .expect("psql");
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn the_store_contract_holds_on_postgres() {
    let pg = TempPostgres::start();
    let store = PostgresStore::open(&pg.url(), vec![key(7)], 4).expect("opens");
    // A thousand in one transaction, read back bit-identical after reopening.
    let batch: Vec<Enrollment> = (0..1000).map(enrollment).collect();
    assert!(store.upsert_many(&batch).expect("enrolled").iter().all(|o| *o == Upsert::Created));
    drop(store);
    let store = PostgresStore::open(&pg.url(), vec![key(7)], 4).expect("reopens");
    assert_eq!(store.count().expect("count"), 1000);
    for i in [0, 499, 999] {
        let got = store.get(&enrollment(i).subject, MODEL).expect("enrolled");
        assert_eq!((got.template, got.photo_sha256), (enrollment(i).template, enrollment(i).photo_sha256));
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
    // Nothing identifying in clear in the table.
    let dump = psql(&pg, "SELECT encode(lookup, 'hex') || encode(sealed, 'escape') FROM subjects");
    assert!(!dump.contains(&enrollment(5).subject), "a NIK in clear");
    // Created, unchanged, replaced; another model refused; deleted.
    let (first, mut other) = (enrollment(2000), enrollment(2000));
    other.photo_sha256 = "b".repeat(64);
    assert_eq!(store.upsert(&first).expect("ok"), Upsert::Created);
    assert_eq!(store.upsert(&first).expect("ok"), Upsert::Unchanged);
    assert_eq!(store.upsert(&other).expect("ok"), Upsert::Replaced);
    assert!(matches!(store.get(&first.subject, "other-model"), Err(Error::ModelMismatch { .. })));
    assert!(matches!(store.get_template(&first.subject, "other-model"), Err(Error::ModelMismatch { .. })));
    assert_eq!(store.get_template(&first.subject, MODEL).expect("template"), other.template);
    assert!(store.delete(&first.subject).expect("ok"));
    assert!(!store.delete(&first.subject).expect("ok"));
    assert!(matches!(store.get(&first.subject, MODEL), Err(Error::NotEnrolled)));
    assert!(matches!(store.get_template(&first.subject, MODEL), Err(Error::NotEnrolled)));
    // Another key cannot read the rows (or find them); both keys can, after rotation.
    let stranger = PostgresStore::open(&pg.url(), vec![key(9)], 1).expect("opens");
    assert!(matches!(stranger.get(&enrollment(1).subject, MODEL), Err(Error::NotEnrolled)));
    assert!(matches!(stranger.all(MODEL), Err(Error::Crypto(_))));
    assert!(matches!(stranger.templates(MODEL, 10, &mut |_| Ok(())), Err(Error::Crypto(_))));
    let rotated = PostgresStore::open(&pg.url(), vec![key(9), key(7)], 1).expect("opens");
    assert_eq!(
        rotated.get(&enrollment(1).subject, MODEL).expect("old key reads").subject,
        enrollment(1).subject
    );
}

#[test]
fn a_second_store_follows_the_first_through_the_change_feed() {
    let pg = TempPostgres::start();
    let a = PostgresStore::open(&pg.url(), vec![key(7)], 2).expect("opens");
    let b = PostgresStore::open(&pg.url(), vec![key(7)], 2).expect("opens");
    let start = b.change_position().expect("position").expect("a feed");
    assert!(b.all(MODEL).expect("all").is_empty());
    // b waits for a notification while a enrols.
    let waiter = std::thread::spawn(move || {
        let t = std::time::Instant::now();
        b.wait_for_change(Duration::from_secs(10)).expect("listens");
        (b, t.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    a.upsert(&enrollment(1)).expect("enrolled");
    let (b, waited) = waiter.join().expect("joined");
    assert!(waited < Duration::from_secs(5), "notified after {waited:?}");
    let (pos, changes) = b.changes_since(start, MODEL).expect("changes");
    assert_eq!(changes, vec![Change::Enrolled(a.get(&enrollment(1).subject, MODEL).expect("enrolled"))]);
    a.delete(&enrollment(1).subject).expect("deleted");
    let (_, changes) = b.changes_since(pos, MODEL).expect("changes");
    assert_eq!(changes, vec![Change::Erased(enrollment(1).subject)]);
}

#[test]
fn a_newer_schema_and_an_unreachable_server_are_clear_errors_and_the_store_recovers() {
    let pg = TempPostgres::start();
    let store = PostgresStore::open(&pg.url(), vec![key(7)], 2).expect("opens");
    psql(&pg, "UPDATE wajah_schema SET version = 99");
    match PostgresStore::open(&pg.url(), vec![key(7)], 1) {
        Err(Error::Config(m)) => assert!(m.contains("schema 99"), "{m}"),
        other => panic!("expected a schema error, got {:?}", other.err()),
    }
    psql(&pg, "UPDATE wajah_schema SET version = 1");
    pg.stop();
    assert!(!store.is_available());
    assert!(matches!(store.count(), Err(Error::StoreUnavailable(_))), "{:?}", store.count());
    assert!(matches!(PostgresStore::open(&pg.url(), vec![key(7)], 1), Err(Error::StoreUnavailable(_))));
    pg.start_server();
    assert!(store.is_available());
    assert_eq!(store.count().expect("back"), 0);
}

#[test]
fn sigkill_during_enrolments_loses_nothing_acknowledged() {
    let pg = TempPostgres::start();
    let store = Arc::new(PostgresStore::open(&pg.url(), vec![key(7)], 4).expect("opens"));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut acknowledged = Vec::new();
                let mut i = w * 1_000_000;
                while !stop.load(Ordering::Relaxed) {
                    // Batches of 5: all or none.
                    let batch: Vec<Enrollment> = (i..i + 5).map(enrollment).collect();
                    if store.upsert_many(&batch).is_ok() {
                        acknowledged.extend(i..i + 5);
                    }
                    i += 5;
                }
                acknowledged
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    pg.kill();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let acknowledged: Vec<u64> = writers.into_iter().flat_map(|w| w.join().expect("joined")).collect();
    assert!(acknowledged.len() > 50, "only {} enrolments before the kill", acknowledged.len());
    pg.start_server();
    let store = PostgresStore::open(&pg.url(), vec![key(7)], 2).expect("reopens");
    let all: std::collections::HashSet<String> =
        store.all(MODEL).expect("all").into_iter().map(|e| e.subject).collect();
    for i in &acknowledged {
        assert!(all.contains(&enrollment(*i).subject), "acknowledged enrolment {i} lost");
    }
    // No half batch: every batch is whole or absent.
    let count = all.len();
    assert_eq!(count % 5, 0, "{count} rows: a batch was half-written");
}
