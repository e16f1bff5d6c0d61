//! Loading templates from the PostgreSQL store: enrol N sealed rows in batches, then read them all
//! back and decrypt them, as a server does at start. Runs its own temporary PostgreSQL.
//!
//! `cargo run --release -p wajah-benches --bin store_load -- 200000`

use std::time::Instant;

use wajah::{Embedding, Enrollment, Template, TemplateKey, TemplateStore};
use wajah_store_pg::PostgresStore;
use wajah_store_pg::testing::TempPostgres;

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args().nth(1).map_or(Ok(100_000), |a| a.parse())?;
    let pg = TempPostgres::start();
    let store = PostgresStore::open(&pg.url(), vec![TemplateKey::from_bytes(&[5u8; 32])?], 4)?;
    let model = "sface-2021dec-int8bq:8f5eea7c";
    let t = Instant::now();
    for start in (0..n).step_by(1000) {
        let batch: Vec<Enrollment> = (start..(start + 1000).min(n))
            .map(|i| {
                let raw: Vec<f32> = (0..128).map(|k| ((i * 131 + k * 7) % 97) as f32 - 48.0).collect();
                Ok(Enrollment {
                    subject: format!("3201011505{:06}", i % 1_000_000 + 1)
                        + &format!("{:0>2}", i / 1_000_000),
                    template: Template { model: model.into(), embedding: Embedding::from_raw(raw)? },
                    quality: serde_json::json!({ "sharpness": 100.0 }),
                    photo_sha256: format!("{i:064x}"),
                    created_ms: 0,
                    updated_ms: 0,
                })
            })
            .collect::<wajah::Result<_>>()?;
        store.upsert_many(&batch)?;
    }
    let write_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let all = store.all(model)?;
    let read_s = t.elapsed().as_secs_f64();
    println!(
        "{n} rows: enrolled in {write_s:.1} s ({:.0} rows/s, batches of 1000); loaded and decrypted {} in {read_s:.1} s ({:.0} rows/s)",
        n as f64 / write_s,
        all.len(),
        all.len() as f64 / read_s
    );
    Ok(())
}
