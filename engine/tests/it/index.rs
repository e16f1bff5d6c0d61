//! FaceIndex recall against exact search, on real embeddings plus seeded random ones.

use rayon::prelude::*;
use wajah::{Embedding, FaceIndex, FacePolicy, IndexConfig, IndexKind};

use crate::{csv_rows, engine, read};

/// Seeded unit vectors clustered around centres, like many photos of many people.
fn clustered(n: usize, dim: usize, seed: u64) -> Vec<Embedding> {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let centres: Vec<Vec<f32>> = (0..n / 4 + 1).map(|_| (0..dim).map(|_| next()).collect()).collect();
    (0..n)
        .map(|i| {
            let c = &centres[i / 4];
            Embedding::from_raw(c.iter().map(|v| v + 0.6 * next()).collect()).expect("non-zero")
        })
        .collect()
}

#[test]
fn hnsw_recall_against_exact_search() {
    // Real templates of the testdata photos, plus 20k seeded clustered vectors (the 100k+ figure is
    // in the bench); queries are the real templates and perturbed copies of gallery vectors.
    let engine = engine();
    let files: Vec<String> = csv_rows("ORIGINS.csv")
        .into_iter()
        .filter(|r| r[0].starts_with("identities/"))
        .map(|r| r[0].clone())
        .collect();
    let real: Vec<Embedding> = files
        .par_iter()
        .filter_map(|f| engine.analyze_with(&read(f), FacePolicy::Largest).ok())
        .map(|a| a.template.embedding)
        .collect();
    assert!(real.len() >= 90);
    let gallery: Vec<(String, Embedding)> = real
        .iter()
        .cloned()
        .chain(clustered(20_000, 128, 7))
        .enumerate()
        .map(|(i, e)| (format!("g{i}"), e))
        .collect();
    let mut exact =
        FaceIndex::new(128, IndexConfig { kind: IndexKind::Exact, ..IndexConfig::default() }).expect("valid");
    let mut hnsw =
        FaceIndex::new(128, IndexConfig { kind: IndexKind::Hnsw, ..IndexConfig::default() }).expect("valid");
    exact.insert_many(gallery.clone()).expect("inserted");
    hnsw.insert_many(gallery).expect("inserted");
    assert!(hnsw.uses_hnsw() && !exact.uses_hnsw());

    // Queries: the real templates, and new "photos" of 400 enrolled synthetic subjects (gallery
    // vectors with noise of the size that separates two photos of one person).
    let mut x = 12345u64;
    let mut noise = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let synthetic = clustered(20_000, 128, 7);
    let perturbed = (0..400).map(|i| {
        let base = &synthetic[i * 50];
        Embedding::from_raw(base.as_slice().iter().map(|v| v + 0.08 * noise()).collect()).expect("non-zero")
    });
    let queries: Vec<Embedding> = real.iter().cloned().chain(perturbed).collect();
    let (mut at1, mut at10, mut n10) = (0usize, 0usize, 0usize);
    for q in &queries {
        let want = exact.search(q, 10).expect("exact");
        let got = hnsw.search(q, 10).expect("hnsw");
        at1 += usize::from(want[0].subject == got[0].subject);
        at10 += want.iter().filter(|w| got.iter().any(|g| g.subject == w.subject)).count();
        n10 += want.len();
    }
    let (r1, r10) = (at1 as f64 / queries.len() as f64, at10 as f64 / n10 as f64);
    eprintln!("recall@1 {r1:.4}, recall@10 {r10:.4} over {} queries, {} entries", queries.len(), hnsw.len());
    assert!(r1 >= 0.99, "recall@1 {r1}");
    assert!(r10 >= 0.98, "recall@10 {r10}");
}

/// Files the `index_file` fuzz target found (`fuzz/regressions/index_file`): headers claiming more
/// entries, or longer ids, than the file holds. They are refused before anything is reserved (they
/// made the loader reserve 671 MB, or 4 GB, for a file of 24 to 366 bytes).
#[test]
fn index_files_found_by_fuzzing_are_refused() {
    let dir = crate::root().join("fuzz/regressions/index_file");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).expect("regressions") {
        let path = entry.expect("entry").path();
        let err = FaceIndex::load(&path, IndexConfig::default()).err().expect("refused");
        assert!(matches!(err, wajah::Error::Index(_)), "{}: {err:?}", path.display());
        files += 1;
    }
    assert!(files >= 3);
}
