//! 1:N at millions: the int8 [`CompactIndex`] against exact f32 search, on a gallery that scores
//! like real faces.
//!
//! `cargo run --release -p wajah-benches --bin gallery -- 10000000 [queries] [hnsw M EF_CONSTRUCTION]`
//!
//! With `hnsw`, the same gallery also goes into an HNSW [`FaceIndex`] (f32 vectors and the graph),
//! queried on one thread at several `ef_search` values.
//!
//! The gallery is the real templates of `testdata/identities` plus generated ones: each generated
//! person is a random unit direction mixed with one direction all faces share (so that different
//! people score the real impostor mean, as random 128-d directions alone score 0 +- 0.09), and each
//! capture is that direction plus Gaussian noise of a per-person level (so that two captures of one
//! person score the real genuine mean and spread). Both distributions are printed beside the real
//! ones. Probes are new captures of enrolled
//! people; the reference is exact f32 search over the same templates.

use std::time::Instant;

use rayon::prelude::*;
use wajah::{CompactIndex, Embedding, Engine, EngineConfig, FaceIndex, FacePolicy, IndexConfig, IndexKind};

const DIM: usize = 128;
const SHORTLIST: usize = 100;

/// splitmix64 of (seed, i): reproducible per row, whatever the thread.
fn mix(seed: u64, i: u64) -> u64 {
    let mut z = seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `DIM` standard normal numbers for (seed, i) (Box-Muller).
fn normals(seed: u64, i: u64) -> Vec<f32> {
    (0..DIM as u64 / 2)
        .flat_map(|k| {
            let a = mix(seed, i * 64 + k);
            let (u1, u2) = (
                ((a >> 11) as f64 + 0.5) / (1u64 << 53) as f64,
                ((a & 0xFFFFF) as f64 + 0.5) / (1u64 << 20) as f64,
            );
            let r = (-2.0 * u1.ln()).sqrt();
            [(r * (std::f64::consts::TAU * u2).cos()) as f32, (r * (std::f64::consts::TAU * u2).sin()) as f32]
        })
        .collect()
}

fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    wajah::dot(a, b)
}

/// The shape of a generated gallery: the weight of the shared face direction, the noise level,
/// and how people's own directions spread.
#[derive(Clone, Copy)]
struct Shape<'a> {
    shared: f32,
    sigma: f32,
    spread: &'a Spread,
}

/// The directions people's faces take: isotropic (every direction alike), or the real templates'
/// covariance (real embeddings use about half the dimensions random ones do).
struct Spread {
    common: Vec<f32>,
    /// Lower-triangular square root of the covariance (row-major), or `None` for isotropic.
    root: Option<Vec<f32>>,
}

impl Spread {
    fn isotropic() -> Self {
        Self { common: unit(normals(0, 0)), root: None }
    }

    /// The mean direction of `real`, and its covariance blended with `isotropic` of the identity
    /// (both at unit trace; a small ridge keeps it positive definite).
    fn of(real: &[Vec<f32>], isotropic: f64) -> Self {
        let n = real.len() as f64;
        let mean: Vec<f64> =
            (0..DIM).map(|j| real.iter().map(|v| f64::from(v[j])).sum::<f64>() / n).collect();
        let mut cov = vec![0.0f64; DIM * DIM];
        for v in real {
            for i in 0..DIM {
                for j in 0..=i {
                    cov[i * DIM + j] += (f64::from(v[i]) - mean[i]) * (f64::from(v[j]) - mean[j]) / (n - 1.0);
                }
            }
        }
        let trace = (0..DIM).map(|i| cov[i * DIM + i]).sum::<f64>();
        for i in 0..DIM {
            for j in 0..=i {
                let eye = if i == j { 1.0 / DIM as f64 } else { 0.0 };
                cov[i * DIM + j] = (1.0 - isotropic) * cov[i * DIM + j] / trace + isotropic * eye;
            }
        }
        let ridge = 1e-3 / DIM as f64;
        // Cholesky: cov = L L^T.
        let mut l = vec![0.0f64; DIM * DIM];
        for i in 0..DIM {
            for j in 0..=i {
                let dot: f64 = (0..j).map(|k| l[i * DIM + k] * l[j * DIM + k]).sum();
                l[i * DIM + j] = if i == j {
                    (cov[i * DIM + i] + ridge - dot).max(1e-12).sqrt()
                } else {
                    (cov[i * DIM + j] - dot) / l[j * DIM + j]
                };
            }
        }
        Self {
            common: unit(mean.iter().map(|&m| m as f32).collect()),
            root: Some(l.into_iter().map(|x| x as f32).collect()),
        }
    }

    /// Person `p`'s own direction.
    fn own(&self, p: u64) -> Vec<f32> {
        let z = normals(1, p);
        match &self.root {
            None => unit(z),
            Some(l) => unit((0..DIM).map(|i| (0..=i).map(|k| l[i * DIM + k] * z[k]).sum()).collect()),
        }
    }
}

/// Capture `c` of generated person `p`.
fn capture(p: u64, c: u64, shape: Shape) -> Vec<f32> {
    let own = shape.spread.own(p);
    let centre: Vec<f32> = unit(
        own.iter()
            .zip(&shape.spread.common)
            .map(|(o, m)| (1.0 - shape.shared).sqrt() * o + shape.shared.sqrt() * m)
            .collect(),
    );
    // Some people photograph more consistently than others: noise level 0.4x to 1.6x.
    let level = shape.sigma * (0.4 + 1.2 * (mix(3, p) >> 11) as f32 / (1u64 << 53) as f32);
    let noise = normals(2 + c, p);
    unit(centre.iter().zip(&noise).map(|(x, e)| x + level * e / (DIM as f32).sqrt()).collect())
}

fn mean_sd(v: &[f32]) -> (f32, f32) {
    let m = v.iter().sum::<f32>() / v.len() as f32;
    (m, (v.iter().map(|x| (x - m) * (x - m)).sum::<f32>() / v.len() as f32).sqrt())
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .map_or(0.0, |kib: f64| kib / 1024.0)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).map_or(Ok(1_000_000), |a| a.parse())?;
    let queries: usize = args.get(2).map_or(Ok(100), |a| a.parse())?;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("root").to_path_buf();

    // Real templates, by person.
    let engine = Engine::new(EngineConfig::in_dir(&root))?;
    let mut real: Vec<(String, Vec<f32>)> = Vec::new();
    let photos = std::env::var_os("GALLERY_PHOTOS").map_or(root.join("testdata/identities"), Into::into);
    for person in std::fs::read_dir(photos)?.flatten().filter(|e| e.path().is_dir()) {
        for photo in std::fs::read_dir(person.path())?.flatten() {
            if let Ok(a) = engine.analyze_with(&std::fs::read(photo.path())?, FacePolicy::Largest) {
                real.push((
                    person.file_name().to_string_lossy().into(),
                    a.template.embedding.as_slice().to_vec(),
                ));
            }
        }
    }
    if let Some(path) = std::env::var_os("GALLERY_DUMP") {
        std::fs::write(path, serde_json::to_vec(&real)?)?;
    }
    let (mut genuine, mut impostor) = (Vec::new(), Vec::new());
    for (i, a) in real.iter().enumerate() {
        for b in &real[i + 1..] {
            if a.0 == b.0 { genuine.push(dot(&a.1, &b.1)) } else { impostor.push(dot(&a.1, &b.1)) }
        }
    }
    let (g, gs) = mean_sd(&genuine);
    let (im, is) = mean_sd(&impostor);
    // Fit the shape: the shared weight to the impostor mean, the noise to the genuine mean.
    let scores = |shape: Shape| -> (Vec<f32>, Vec<f32>) {
        let g = (0..2000u64).map(|p| dot(&capture(p, 0, shape), &capture(p, 1, shape))).collect();
        let i = (0..2000u64).map(|p| dot(&capture(p, 0, shape), &capture(p + 7919, 0, shape))).collect();
        (g, i)
    };
    // People spread like the real templates when there are enough of them to estimate it: their
    // covariance, blended with the isotropic one so that impostor scores spread as the real ones.
    let vectors: Vec<Vec<f32>> = real.iter().map(|r| r.1.clone()).collect();
    let spread = if vectors.len() >= 2 * DIM {
        let (mut lo, mut hi) = (0.0f64, 1.0f64);
        for _ in 0..12 {
            let mid = (lo + hi) / 2.0;
            let spread = Spread::of(&vectors, mid);
            let trial = Shape { shared: im.max(0.0), sigma: (1.0 / g - 1.0).sqrt(), spread: &spread };
            if mean_sd(&scores(trial).1).1 > is { lo = mid } else { hi = mid }
        }
        println!("people's directions: the real templates' covariance, {:.2} isotropic", (lo + hi) / 2.0);
        Spread::of(&vectors, (lo + hi) / 2.0)
    } else {
        println!("people's directions: isotropic (under {} real templates)", 2 * DIM);
        Spread::isotropic()
    };
    let mut shape = Shape { shared: im.max(0.0), sigma: (1.0 / g - 1.0).sqrt(), spread: &spread };
    for _ in 0..6 {
        let (sg, _) = scores(shape);
        shape.sigma *= ((1.0 / g - 1.0) / (1.0 / mean_sd(&sg).0 - 1.0)).sqrt();
    }
    let sigma = shape;
    let (synth_g, synth_i) = scores(shape);
    let ((sg, sgs), (si, sis)) = (mean_sd(&synth_g), mean_sd(&synth_i));
    println!("real templates: {} ({} genuine, {} impostor pairs)", real.len(), genuine.len(), impostor.len());
    println!("genuine  real {g:.3} +- {gs:.3}   generated {sg:.3} +- {sgs:.3}");
    println!("impostor real {im:.3} +- {is:.3}   generated {si:.3} +- {sis:.3}");

    // The gallery: f32 templates (standing in for the store's decrypted ones) and the int8 index.
    let rss0 = rss_mib();
    let t = Instant::now();
    let generated = n.saturating_sub(real.len());
    let mut exact: Vec<f32> = vec![0.0; n * DIM];
    exact
        .par_chunks_mut(DIM)
        .enumerate()
        .take(generated)
        .for_each(|(p, row)| row.copy_from_slice(&capture(p as u64, 0, sigma)));
    for (i, (_, v)) in real.iter().enumerate().take(n - generated) {
        exact[(generated + i) * DIM..(generated + i + 1) * DIM].copy_from_slice(v);
    }
    let generated_s = t.elapsed().as_secs_f64();
    let rss1 = rss_mib();
    let t = Instant::now();
    let mut index = CompactIndex::new(DIM);
    for (row, v) in exact.chunks_exact(DIM).enumerate() {
        index.push(3_201_011_505_900_000 + row as u64, v);
    }
    let build_s = t.elapsed().as_secs_f64();
    let rss2 = rss_mib();
    println!(
        "gallery {n}: generated in {generated_s:.1} s (f32 {:.0} MiB); int8 index built in {build_s:.1} s, {} bytes per entry, RSS +{:.0} MiB",
        rss1 - rss0,
        index.bytes_per_entry(),
        rss2 - rss1
    );

    // Probes: second captures of enrolled generated people, and real photos' templates.
    let probes: Vec<Vec<f32>> = (0..queries as u64)
        .map(|q| {
            let p = mix(9, q) % generated.max(1) as u64;
            if q % 10 == 0 && !real.is_empty() {
                real[q as usize % real.len()].1.clone()
            } else {
                capture(p, 1, sigma)
            }
        })
        .collect();
    let (mut hit1, mut hit10, mut times, mut exact_times) = (0usize, 0usize, Vec::new(), Vec::new());
    for q in &probes {
        let t = Instant::now();
        let mut want: Vec<(usize, f32)> =
            exact.par_chunks(DIM).enumerate().map(|(r, v)| (r, dot(q, v))).collect::<Vec<_>>();
        want.select_nth_unstable_by(9, |a, b| b.1.total_cmp(&a.1));
        want.truncate(10);
        want.sort_by(|a, b| b.1.total_cmp(&a.1));
        exact_times.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let got = index.search(q, 10, SHORTLIST, |row| Some(dot(q, &exact[row * DIM..(row + 1) * DIM])));
        times.push(t.elapsed().as_secs_f64() * 1e3);
        hit1 += usize::from(got.first().map(|g| g.0) == want.first().map(|w| w.0));
        hit10 += want.iter().filter(|w| got.iter().any(|g| g.0 == w.0)).count();
    }
    times.sort_by(f64::total_cmp);
    exact_times.sort_by(f64::total_cmp);
    println!(
        "int8 scan + f32 rescoring of {SHORTLIST}, top-10, {} threads: p50 {:.1} ms, p99 {:.1} ms; exact f32 scan p50 {:.1} ms",
        rayon::current_num_threads(),
        pct(&times, 0.5),
        pct(&times, 0.99),
        pct(&exact_times, 0.5)
    );
    println!(
        "recall@1 {:.4}, recall@10 {:.4} against exact f32 over {} probes",
        hit1 as f64 / probes.len() as f64,
        hit10 as f64 / (10 * probes.len()) as f64,
        probes.len()
    );
    if args.get(3).map(String::as_str) == Some("hnsw") {
        let links: usize = args.get(4).map_or(Ok(16), |a| a.parse())?;
        let ef_construction: usize = args.get(5).map_or(Ok(100), |a| a.parse())?;
        drop(index);
        hnsw(&exact, &probes, links, ef_construction)?;
    }
    Ok(())
}

fn pct(v: &[f64], p: f64) -> f64 {
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// The exact top 10 rows for `q`.
fn exact_top10(exact: &[f32], q: &[f32]) -> Vec<usize> {
    let mut want: Vec<(usize, f32)> =
        exact.par_chunks(DIM).enumerate().map(|(r, v)| (r, dot(q, v))).collect();
    want.select_nth_unstable_by(9, |a, b| b.1.total_cmp(&a.1));
    want.truncate(10);
    want.sort_by(|a, b| b.1.total_cmp(&a.1));
    want.into_iter().map(|w| w.0).collect()
}

/// HNSW over the same gallery: build time and memory on every thread, then one-thread queries.
fn hnsw(exact: &[f32], probes: &[Vec<f32>], links: usize, ef_construction: usize) -> anyhow::Result<()> {
    let config = IndexConfig {
        kind: IndexKind::Hnsw,
        max_connections: links,
        ef_construction,
        ..IndexConfig::default()
    };
    let rss0 = rss_mib();
    let t = Instant::now();
    let mut index = FaceIndex::new(DIM, config)?;
    let entries = exact
        .chunks_exact(DIM)
        .enumerate()
        .map(|(row, v)| Ok((row.to_string(), Embedding::from_raw(v.to_vec())?)))
        .collect::<wajah::Result<Vec<_>>>()?;
    index.insert_many(entries)?;
    println!(
        "hnsw M {links}, ef_construction {ef_construction}: built in {:.1} s on {} threads, RSS +{:.0} MiB ({:.0} bytes per entry)",
        t.elapsed().as_secs_f64(),
        rayon::current_num_threads(),
        rss_mib() - rss0,
        (rss_mib() - rss0) * 1048576.0 / index.len() as f64
    );
    let wants: Vec<Vec<usize>> = probes.iter().map(|q| exact_top10(exact, q)).collect();
    for ef in [32, 64, 128, 256] {
        index.set_ef_search(ef)?;
        let (mut hit1, mut hit10, mut times) = (0usize, 0usize, Vec::new());
        for (q, want) in probes.iter().zip(&wants) {
            let query = Embedding::from_raw(q.clone())?;
            let t = Instant::now();
            let got = index.search(&query, 10)?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
            let rows: Vec<usize> = got.iter().filter_map(|m| m.subject.parse().ok()).collect();
            hit1 += usize::from(rows.first() == want.first());
            hit10 += want.iter().filter(|w| rows.contains(w)).count();
        }
        times.sort_by(f64::total_cmp);
        println!(
            "hnsw ef_search {ef}, top-10, one thread: p50 {:.3} ms, p99 {:.3} ms; recall@1 {:.4}, recall@10 {:.4}",
            pct(&times, 0.5),
            pct(&times, 0.99),
            hit1 as f64 / probes.len() as f64,
            hit10 as f64 / (10 * probes.len()) as f64
        );
    }
    Ok(())
}
