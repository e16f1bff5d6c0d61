//! Similarity and 1:N search: pair dot product, exact scan of 1M templates, HNSW latency and recall.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use wajah::{Embedding, FaceIndex, IndexConfig, IndexKind, dot, dot_scalar, kernel_name, top_k};

fn vectors(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let v: Vec<f32> = (0..dim)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect();
        out.extend(Embedding::from_raw(v).expect("non-zero").as_slice());
    }
    out
}

fn pair(c: &mut Criterion) {
    let v = vectors(2, 128, 1);
    let (a, b) = v.split_at(128);
    let mut group = c.benchmark_group("similarity");
    group.throughput(Throughput::Elements(1));
    group
        .bench_function(BenchmarkId::new("dot", format!("128d/{}", kernel_name())), |x| x.iter(|| dot(a, b)));
    group.bench_function(BenchmarkId::new("dot", "128d/scalar"), |x| x.iter(|| dot_scalar(a, b)));
    group.finish();
}

/// Read bandwidth of this machine: summing a 512 MiB buffer, best of 3.
fn memory_bandwidth_gbs() -> f64 {
    let buf = vec![1u64; 64 << 20];
    (0..3)
        .map(|_| {
            let t = Instant::now();
            let s: u64 = buf.iter().copied().fold(0u64, u64::wrapping_add);
            std::hint::black_box(s);
            buf.len() as f64 * 8.0 / t.elapsed().as_secs_f64() / 1e9
        })
        .fold(0.0, f64::max)
}

fn scan(c: &mut Criterion) {
    let (n, dim) = (1_000_000, 128);
    let matrix = vectors(n, dim, 2);
    let query = vectors(1, dim, 3);
    let bytes = (n * dim * 4) as u64;
    eprintln!("machine read bandwidth (one thread): {:.1} GB/s", memory_bandwidth_gbs());
    let mut group = c.benchmark_group("scan");
    group.sample_size(10).measurement_time(Duration::from_secs(8)).throughput(Throughput::Bytes(bytes));
    for threads in [1usize, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
        group.bench_function(BenchmarkId::new("exact_top10", format!("128d/1M/{threads}thread")), |b| {
            b.iter(|| pool.install(|| top_k(&query, &matrix, dim, 10)))
        });
    }
    group.finish();
}

/// Seeded unit vectors in clusters of four (like four photos per person).
fn clustered(n: usize, dim: usize, seed: u64) -> Vec<Embedding> {
    let centres = vectors(n / 4 + 1, dim, seed);
    let noise = vectors(n, dim, seed ^ 0xABCD);
    (0..n)
        .map(|i| {
            let c = &centres[(i / 4) * dim..(i / 4 + 1) * dim];
            Embedding::from_raw(
                c.iter().zip(&noise[i * dim..(i + 1) * dim]).map(|(c, e)| c + 0.6 * e).collect(),
            )
            .expect("unit")
        })
        .collect()
}

/// Templates of the testdata identity photos.
fn real_templates() -> Vec<Embedding> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("root").to_path_buf();
    let engine = wajah::Engine::new(wajah::EngineConfig::in_dir(&root)).expect("engine (run `make setup`)");
    let origins = std::fs::read_to_string(root.join("testdata/ORIGINS.csv")).expect("origins");
    origins
        .lines()
        .filter(|l| l.starts_with("identities/"))
        .filter_map(|l| std::fs::read(root.join("testdata").join(l.split(',').next()?)).ok())
        .filter_map(|b| engine.analyze_with(&b, wajah::FacePolicy::Largest).ok())
        .map(|a| a.template.embedding)
        .collect()
}

/// The 100k gallery, its HNSW index and the queries; built once, and only when an hnsw bench runs
/// (building takes minutes).
fn hnsw_setup(n: usize, dim: usize) -> (FaceIndex, Vec<Embedding>) {
    // Gallery: real templates of the testdata photos plus seeded clustered vectors.
    let real = real_templates();
    let synthetic = clustered(n, dim, 4);
    let gallery: Vec<(String, Embedding)> = real
        .iter()
        .cloned()
        .chain(synthetic.iter().cloned())
        .enumerate()
        .map(|(i, e)| (format!("s{i}"), e))
        .collect();
    let t = Instant::now();
    let mut index =
        FaceIndex::new(dim, IndexConfig { kind: IndexKind::Hnsw, ..IndexConfig::default() }).expect("valid");
    index.insert_many(gallery.clone()).expect("built");
    eprintln!(
        "hnsw build: {} x {dim}d in {:.1} s ({} threads)",
        index.len(),
        t.elapsed().as_secs_f64(),
        rayon::current_num_threads()
    );
    let mut exact =
        FaceIndex::new(dim, IndexConfig { kind: IndexKind::Exact, ..IndexConfig::default() }).expect("valid");
    exact.insert_many(gallery).expect("built");

    // Queries: the real templates, and new captures of 500 enrolled synthetic subjects.
    let noise = vectors(500, dim, 5);
    let queries: Vec<Embedding> = real
        .iter()
        .cloned()
        .chain((0..500).map(|i| {
            let base = synthetic[i * 200].as_slice();
            Embedding::from_raw(base.iter().zip(&noise[i * dim..]).map(|(b, e)| b + 0.08 * e).collect())
                .expect("unit")
        }))
        .collect();
    let (mut r1, mut r10) = (0usize, 0usize);
    for q in &queries {
        let want = exact.search(q, 10).expect("exact");
        let got = index.search(q, 10).expect("hnsw");
        r1 += usize::from(want[0].subject == got[0].subject);
        r10 += want.iter().filter(|w| got.iter().any(|g| g.subject == w.subject)).count();
    }
    eprintln!(
        "hnsw recall on {} entries: @1 {:.4}, @10 {:.4} ({} queries, default settings)",
        index.len(),
        r1 as f64 / queries.len() as f64,
        r10 as f64 / (10 * queries.len()) as f64,
        queries.len()
    );
    (index, queries)
}

fn hnsw(c: &mut Criterion) {
    let (n, dim) = (100_000, 128);
    let setup = std::cell::OnceCell::new();
    let mut group = c.benchmark_group("hnsw");
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function(
        BenchmarkId::new("query_top10", format!("128d/{}k/ef{}", n / 1000, IndexConfig::default().ef_search)),
        |b| {
            let (index, queries) = setup.get_or_init(|| hnsw_setup(n, dim));
            b.iter(|| {
                i = (i + 1) % queries.len();
                index.search(&queries[i], 10).expect("hnsw")
            })
        },
    );
    group.finish();
}

criterion_group!(benches, pair, scan, hnsw);
