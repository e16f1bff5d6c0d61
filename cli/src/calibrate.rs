//! `wajah calibrate`: thresholds for target false-match rates, with bootstrap confidence intervals.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Result;
use serde_json::{Value, json};
use wajah::{Calibration, Engine};

use crate::eval::{Degradation, Pair, score};
use crate::metrics::{self, threshold_for_fmr};

/// Deterministic xorshift, enough for resampling.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// The value at share `p` (0-1) of a sorted, non-empty list (nearest rank).
pub fn percentile(sorted: &[f32], p: f64) -> f32 {
    sorted[((p * (sorted.len() - 1) as f64).round() as usize).min(sorted.len() - 1)]
}

/// Chooses thresholds for each target FMR; writes the first target's to `out`.
pub fn run(
    engine: &Engine,
    pairs: &[Pair],
    source: &Path,
    fmrs: &[f64],
    rounds: usize,
    out: &Path,
) -> Result<Value> {
    let scores = score(engine, pairs, source, &Degradation::default())?;
    let (genuine, impostor) = (scores.of(true), scores.of(false));
    let mut results = Vec::new();
    let mut rng = Rng(0x5EED_CAFE_F00D_1234);
    let mut first: Option<Calibration> = None;
    for &fmr in fmrs {
        let resolvable = impostor.len() as f64 * fmr >= 1.0;
        let threshold = threshold_for_fmr(&impostor, fmr);
        let mut boot: Vec<f32> = (0..rounds)
            .map(|_| {
                let sample: Vec<f32> =
                    (0..impostor.len()).map(|_| impostor[rng.below(impostor.len())]).collect();
                threshold_for_fmr(&sample, fmr)
            })
            .collect();
        boot.sort_by(f32::total_cmp);
        let ci = [percentile(&boot, 0.025), percentile(&boot, 0.975)];
        let fnmr = metrics::fnmr(&genuine, threshold);
        results.push(json!({
            "target_fmr": fmr,
            "threshold": threshold,
            "threshold_ci95": ci,
            "fnmr": fnmr,
            "resolvable": resolvable,
            "note": if resolvable { "" } else { "fewer impostor pairs than 1/FMR: the threshold is only an upper bound of the strictness needed" },
        }));
        if first.is_none() {
            first = Some(Calibration {
                model: engine.model_id().to_string(),
                threshold,
                target_fmr: fmr,
                threshold_ci95: ci,
                fnmr,
                genuine_pairs: genuine.len(),
                impostor_pairs: impostor.len(),
                source: source.display().to_string(),
                created_unix: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            });
        }
    }
    if let Some(c) = &first {
        c.save(out)?;
    }
    Ok(
        json!({ "model": engine.model_id(), "genuine_pairs": genuine.len(), "impostor_pairs": impostor.len(), "bootstrap_rounds": rounds, "thresholds": results, "written": out }),
    )
}
