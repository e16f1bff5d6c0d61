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

/// A gallery on a compact index answers as one on an exact index: the same subjects in the same
/// order with the same scores (the int8 shortlist rescored from the store's templates), and it
/// follows replacements and deletions. Real templates of the testdata photos in a real SQLite store.
#[test]
fn a_compact_gallery_answers_as_an_exact_one() {
    use std::sync::Arc;
    use wajah::{Enrollment, Error, Gallery, SqliteStore, Template, TemplateKey};

    let enrollment = |subject: String, template: &Template, photo: usize| Enrollment {
        subject,
        template: template.clone(),
        quality: serde_json::json!({}),
        photo_sha256: format!("{photo:064x}"),
        created_ms: 0,
        updated_ms: 0,
    };

    let engine = Arc::new(wajah::Engine::new(wajah::EngineConfig::in_dir(&crate::root())).expect("engine"));
    let files: Vec<String> = csv_rows("ORIGINS.csv")
        .into_iter()
        .filter(|r| r[0].starts_with("identities/"))
        .map(|r| r[0].clone())
        .collect();
    let templates: Vec<Template> = files
        .par_iter()
        .filter_map(|f| engine.analyze_with(&read(f), FacePolicy::Largest).ok())
        .map(|a| a.template)
        .collect();
    assert!(templates.len() >= 90);
    let dir = tempfile::tempdir().expect("temp dir");
    let open = |name: &str, kind: IndexKind| {
        let key = TemplateKey::from_bytes(&[5u8; 32]).expect("key");
        let store = SqliteStore::open(&dir.path().join(name), vec![key]).expect("store");
        Gallery::open(
            engine.clone(),
            Box::new(store),
            IndexConfig { kind, rescore: 20, ..IndexConfig::default() },
        )
        .expect("gallery")
    };
    let (exact, compact) = (open("exact.db", IndexKind::Exact), open("compact.db", IndexKind::Compact));
    let nik = |i: usize| format!("32010115059{:05}", i);
    for gallery in [&exact, &compact] {
        for (i, t) in templates.iter().enumerate() {
            gallery.enroll_template(&enrollment(nik(i), t, i)).expect("enrolled");
        }
    }
    // Ordered by score, then subject.
    let ranked = |gallery: &Gallery, probe: &Template| {
        let mut found: Vec<(String, f32)> = gallery
            .search(probe, 5)
            .expect("searched")
            .into_iter()
            .map(|c| (c.subject, c.decision.score.0))
            .collect();
        found.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        found
    };
    let same = |probe: &Template| {
        let (want, got) = (ranked(&exact, probe), ranked(&compact, probe));
        assert_eq!(want.len(), got.len());
        for (w, g) in want.iter().zip(&got) {
            assert!(w.0 == g.0 && (w.1 - g.1).abs() < 1e-6, "{want:?} {got:?}");
        }
    };
    templates.iter().for_each(same);
    // A replacement (a new template for nik 3, between two faces) and a deletion are followed.
    let mixed = templates[3].embedding.as_slice().iter().zip(templates[50].embedding.as_slice());
    let blend = Template {
        model: templates[3].model.clone(),
        embedding: wajah::Embedding::from_raw(mixed.map(|(a, b)| a + b).collect()).expect("non-zero"),
    };
    for gallery in [&exact, &compact] {
        gallery.enroll_template(&enrollment(nik(3), &blend, 9999)).expect("replaced");
        assert!(gallery.delete(&nik(7)).expect("deleted"));
    }
    assert_eq!(compact.len(), templates.len() - 1);
    templates.iter().chain([&blend]).for_each(same);
    // Subjects are numbers in a compact index.
    let refused = compact.enroll_template(&enrollment("not-a-nik".into(), &templates[0], 1));
    assert!(matches!(refused, Err(Error::InvalidArgument(_))), "{refused:?}");
    assert!(matches!(compact.template("not-a-nik"), Err(Error::NotEnrolled)), "the store write was undone");
}
