//! wajah's side of the peer harness, one inference thread per worker, printed as JSON.
//!
//!   peer DIR [REPEATS]                          per-stage medians of the photo -> template path
//!   peer --throughput WORKERS DIR REPEATS       photos/s: loads, warms up, prints `ready`, waits
//!                                               for a line on stdin, then runs every photo REPEATS
//!                                               times on WORKERS threads (one session each) and
//!                                               prints the wall-clock start and end (Unix seconds)

use std::io::{BufRead, Write};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rayon::prelude::*;
use wajah::{Engine, EngineConfig, FacePolicy};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn engine(sessions: usize) -> anyhow::Result<Engine> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(std::path::Path::new("."));
    Ok(Engine::new(EngineConfig { intra_threads: 1, sessions, ..EngineConfig::in_dir(root) })?)
}

fn photos(dir: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    Ok(files.iter().map(std::fs::read).collect::<Result<_, _>>()?)
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

fn stages(dir: &str, repeats: usize) -> anyhow::Result<()> {
    let engine = engine(1)?;
    let photos = photos(dir)?;
    let (mut decode, mut detect, mut align, mut embed, mut total) = (vec![], vec![], vec![], vec![], vec![]);
    // Warm-up: first inferences allocate.
    for p in photos.iter().take(2) {
        let _ = engine.analyze_with(p, FacePolicy::Largest);
    }
    for _ in 0..repeats {
        for p in &photos {
            let t = Instant::now();
            let Ok(a) = engine.analyze_with(p, FacePolicy::Largest) else { continue };
            total.push(t.elapsed().as_secs_f64() * 1e3);
            decode.push(a.timings.decode_ms);
            detect.push(a.timings.detect_ms);
            align.push(a.timings.align_ms);
            embed.push(a.timings.embed_ms);
        }
    }
    println!(
        "{}",
        serde_json::json!({
            "photos": photos.len(), "runs": total.len(),
            "decode_ms": median(decode), "detect_ms": median(detect), "align_ms": median(align),
            "embed_ms": median(embed), "total_ms": median(total),
        })
    );
    Ok(())
}

fn throughput(workers: usize, dir: &str, repeats: usize) -> anyhow::Result<()> {
    let engine = engine(workers)?;
    let photos = photos(dir)?;
    let pool = rayon::ThreadPoolBuilder::new().num_threads(workers).build()?;
    // Warm-up outside the timed span; sessions are taken in turn, so each one runs twice.
    for p in photos.iter().cycle().take(2 * workers) {
        let _ = engine.analyze_with(p, FacePolicy::Largest);
    }
    let work: Vec<&[u8]> = (0..repeats).flat_map(|_| photos.iter().map(Vec::as_slice)).collect();
    println!("ready");
    std::io::stdout().flush()?;
    std::io::stdin().lock().read_line(&mut String::new())?;
    let start = unix_now();
    let templates = pool
        .install(|| work.par_iter().filter(|p| engine.analyze_with(p, FacePolicy::Largest).is_ok()).count());
    let end = unix_now();
    println!(
        "{}",
        serde_json::json!({ "photos": work.len(), "templates": templates, "workers": workers, "start": start, "end": end })
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || anyhow::anyhow!("usage: peer DIR [REPEATS] | peer --throughput WORKERS DIR REPEATS");
    match args.as_slice() {
        [flag, workers, dir, repeats] if flag == "--throughput" => {
            throughput(workers.parse()?, dir, repeats.parse()?)
        }
        [dir] => stages(dir, 5),
        [dir, repeats] => stages(dir, repeats.parse()?),
        _ => Err(usage()),
    }
}
