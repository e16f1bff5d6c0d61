//! wajah's side of the peer harness: per-stage medians of the photo -> template path over the
//! photos in a folder, one inference thread, printed as JSON.

use std::time::Instant;

use wajah::{Engine, EngineConfig, FacePolicy};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn main() -> anyhow::Result<()> {
    let dir = std::env::args().nth(1).ok_or_else(|| anyhow::anyhow!("usage: peer DIR [REPEATS]"))?;
    let repeats: usize = std::env::args().nth(2).map_or(Ok(5), |r| r.parse())?;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(std::path::Path::new("."));
    let engine = Engine::new(EngineConfig { intra_threads: 1, sessions: 1, ..EngineConfig::in_dir(root) })?;
    let mut files: Vec<_> = std::fs::read_dir(&dir)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    let photos: Vec<Vec<u8>> = files.iter().map(std::fs::read).collect::<Result<_, _>>()?;
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
