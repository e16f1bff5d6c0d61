//! Loading a gallery from the PostgreSQL store: enrol N sealed rows in batches (each the size of a
//! real enrolment's: a template and a quality record carrying the ID photo's face patch), then
//! stream them back, decrypt them and build the int8 index, as a server does at start. Prints the
//! times and the process's peak resident memory. Runs its own temporary PostgreSQL.
//!
//! `cargo run --release -p wajah-benches --bin store_load -- ROWS [WRITERS]`

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use wajah::{
    Embedding, Enrollment, FaceIndex, IndexConfig, IndexKind, LOAD_BATCH, Template, TemplateKey,
    TemplateStore,
};
use wajah_store_pg::PostgresStore;
use wajah_store_pg::testing::TempPostgres;

const MODEL: &str = "sface-2021dec-int8bq:8f5eea7c";
const BATCH: usize = 1000;
/// Base64 length of the 1,156-byte face patch an enrolment from a photo keeps.
const PATCH_CHARS: usize = 1544;

fn enrollment(i: usize, patch: &str) -> wajah::Result<Enrollment> {
    let raw: Vec<f32> = (0..128).map(|k| ((i * 131 + k * 7) % 97) as f32 - 48.0).collect();
    Ok(Enrollment {
        subject: format!("{}", 3_201_010_000_000_000u64 + i as u64),
        template: Template { model: MODEL.into(), embedding: Embedding::from_raw(raw)? },
        quality: serde_json::json!({ "quality_score": 80, "sharpness": 100.0, "id_face_patch": patch }),
        photo_sha256: format!("{i:064x}"),
        created_ms: 0,
        updated_ms: 0,
    })
}

/// Peak resident memory of this process (VmHWM), MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok());
    kb.unwrap_or(0.0) / 1024.0
}

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args().nth(1).map_or(Ok(100_000), |a| a.parse())?;
    let writers: usize = std::env::args().nth(2).map_or(Ok(2), |a| a.parse())?;
    let pg = TempPostgres::start();
    let store =
        PostgresStore::open(&pg.url(), vec![TemplateKey::from_bytes(&[5u8; 32])?], writers.max(1) + 1)?;
    let patch = "A".repeat(PATCH_CHARS);

    let t = Instant::now();
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| -> anyhow::Result<()> {
        let workers: Vec<_> = (0..writers.max(1))
            .map(|_| {
                s.spawn(|| -> anyhow::Result<()> {
                    loop {
                        let start = next.fetch_add(BATCH, Ordering::Relaxed);
                        if start >= n {
                            return Ok(());
                        }
                        let batch = (start..(start + BATCH).min(n))
                            .map(|i| enrollment(i, &patch))
                            .collect::<wajah::Result<Vec<_>>>()?;
                        store.upsert_many(&batch)?;
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().map_err(|_| anyhow::anyhow!("a writer panicked"))??;
        }
        Ok(())
    })?;
    let write_s = t.elapsed().as_secs_f64();
    let rss_before = peak_rss_mib();

    let t = Instant::now();
    let config = IndexConfig { kind: IndexKind::Compact, ..IndexConfig::default() };
    let mut index = FaceIndex::new(128, config)?;
    let loaded = store.templates(MODEL, LOAD_BATCH, &mut |page| index.insert_many(page))?;
    let load_s = t.elapsed().as_secs_f64();
    println!(
        "{n} rows (face patch in each): enrolled by {writers} writers in batches of {BATCH} in {write_s:.1} s \
         ({:.0} rows/s); streamed, decrypted and indexed {loaded} (int8, {} in the index) in {load_s:.1} s \
         ({:.0} rows/s); peak RSS {rss_before:.0} MiB after enrolling, {:.0} MiB after loading",
        n as f64 / write_s,
        index.len(),
        loaded as f64 / load_s,
        peak_rss_mib()
    );
    Ok(())
}
