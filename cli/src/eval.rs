//! `wajah eval`: a verification protocol over a folder of photos.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde::Serialize;
use serde_json::{Value, json};
use wajah::{Engine, FacePolicy, Template};

use crate::metrics;
use crate::plot;

/// One labelled pair and the fold it belongs to.
#[derive(Clone, Debug)]
pub struct Pair {
    pub a: PathBuf,
    pub b: PathBuf,
    pub same: bool,
    pub fold: usize,
}

const FOLDS: usize = 10;

/// Reads LFW `pairs.txt` (header `folds n`, then per fold n same-person lines `name i j` and n
/// different-person lines `name1 i name2 j`) or a CSV `image_a,image_b,same_person`.
///
/// Files with fewer than 10 folds (such as a slice of fold 1) are split into 10 folds in order,
/// each with the same share of same- and different-person pairs.
pub fn read_pairs(file: &Path, root: &Path) -> Result<Vec<Pair>> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let first = lines.next().context("empty pairs file")?;
    let lfw_image = |name: &str, n: &str| -> Result<PathBuf> {
        let n: u32 = n.parse().with_context(|| format!("bad image number {n:?}"))?;
        Ok(root.join(name).join(format!("{name}_{n:04}.jpg")))
    };
    let mut pairs = Vec::new();
    if first.contains(',') {
        for (i, line) in lines.enumerate() {
            let cols: Vec<&str> = line.split(',').map(str::trim).collect();
            if cols.len() < 3 {
                bail!("line {}: expected image_a,image_b,same_person", i + 2);
            }
            pairs.push(Pair { a: root.join(cols[0]), b: root.join(cols[1]), same: cols[2] == "1", fold: 0 });
        }
        assign_folds(&mut pairs);
        return Ok(pairs);
    }
    let header: Vec<usize> =
        first.split_whitespace().map(str::parse).collect::<Result<_, _>>().context("LFW header")?;
    let [folds, per_class] = header[..] else { bail!("LFW header must be `folds pairs-per-class`") };
    for (i, line) in lines.enumerate() {
        let t: Vec<&str> = line.split_whitespace().collect();
        let fold = i / (2 * per_class.max(1));
        let pair = match t[..] {
            [name, i1, i2] => Pair { a: lfw_image(name, i1)?, b: lfw_image(name, i2)?, same: true, fold },
            [n1, i1, n2, i2] => Pair { a: lfw_image(n1, i1)?, b: lfw_image(n2, i2)?, same: false, fold },
            _ => bail!("line {}: not an LFW pair: {line:?}", i + 2),
        };
        pairs.push(pair);
    }
    if folds < FOLDS {
        assign_folds(&mut pairs);
    }
    Ok(pairs)
}

fn assign_folds(pairs: &mut [Pair]) {
    for same in [true, false] {
        let n = pairs.iter().filter(|p| p.same == same).count().max(1);
        for (k, p) in pairs.iter_mut().filter(|p| p.same == same).enumerate() {
            p.fold = k * FOLDS / n;
        }
    }
}

/// Templates for every distinct photo, in parallel with a progress bar; `Err(code)` for photos
/// where no face could be used (failure to acquire).
pub fn templates(engine: &Engine, files: &[&PathBuf]) -> HashMap<PathBuf, Result<Template, String>> {
    let bar = ProgressBar::new(files.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix} {bar:40} {pos}/{len} photos {elapsed}/{eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_prefix("embedding");
    let out = files
        .par_iter()
        .map(|f| {
            let result = match std::fs::read(f) {
                Ok(bytes) => engine
                    .analyze_with(&bytes, FacePolicy::Largest)
                    .map(|a| a.template)
                    .map_err(|e| e.code().to_string()),
                Err(_) => Err("unreadable".to_string()),
            };
            bar.inc(1);
            ((*f).clone(), result)
        })
        .collect();
    bar.finish_and_clear();
    out
}

#[derive(Serialize)]
struct FoldResult {
    fold: usize,
    threshold: f32,
    accuracy: f64,
}

/// Runs the protocol and writes the report and plots. Returns the report.
pub fn run(engine: &Engine, pairs: &[Pair], out: &Path, plots: Option<&Path>) -> Result<Value> {
    let mut files: Vec<&PathBuf> = pairs.iter().flat_map(|p| [&p.a, &p.b]).collect();
    files.sort();
    files.dedup();
    let templates = templates(engine, &files);
    let failed: Vec<String> =
        templates.iter().filter(|(_, t)| t.is_err()).map(|(f, _)| f.display().to_string()).collect();

    let mut scored: Vec<(f32, bool, usize)> = Vec::new();
    for p in pairs {
        if let (Ok(a), Ok(b)) = (&templates[&p.a], &templates[&p.b]) {
            scored.push((engine.compare(a, b)?.score.0, p.same, p.fold));
        }
    }
    let genuine: Vec<f32> = scored.iter().filter(|s| s.1).map(|s| s.0).collect();
    let impostor: Vec<f32> = scored.iter().filter(|s| !s.1).map(|s| s.0).collect();
    let curve = metrics::roc(&genuine, &impostor);
    let labelled: Vec<(f32, bool)> = scored.iter().map(|s| (s.0, s.1)).collect();

    // 10-fold: the threshold is chosen on the other nine folds, accuracy measured on this one.
    let mut folds = Vec::new();
    for k in 0..FOLDS {
        let train: Vec<(f32, bool)> = scored.iter().filter(|s| s.2 != k).map(|s| (s.0, s.1)).collect();
        let test: Vec<(f32, bool)> = scored.iter().filter(|s| s.2 == k).map(|s| (s.0, s.1)).collect();
        if test.is_empty() || train.is_empty() {
            continue;
        }
        let threshold = metrics::best_threshold(&train);
        folds.push(FoldResult { fold: k, threshold, accuracy: metrics::accuracy(&test, threshold) });
    }
    let accs: Vec<f64> = folds.iter().map(|f| f.accuracy).collect();
    let mean = accs.iter().sum::<f64>() / accs.len().max(1) as f64;
    let std = (accs.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / accs.len().max(1) as f64).sqrt();
    let tar = |far: f64| -> Value {
        match metrics::tar_at_far(&curve, impostor.len(), far) {
            Some((tar, threshold)) => json!({ "far": far, "tar": tar, "threshold": threshold }),
            None => {
                json!({ "far": far, "tar": "n/a", "reason": format!("needs at least {} impostor pairs", (1.0 / far) as u64) })
            }
        }
    };
    let report = json!({
        "model": engine.model_id(),
        "pairs": pairs.len(),
        "scored_pairs": scored.len(),
        "genuine_pairs": genuine.len(),
        "impostor_pairs": impostor.len(),
        "photos": files.len(),
        "failure_to_acquire": failed.len(),
        "failed_photos": failed,
        "threshold": engine.threshold(),
        "accuracy_at_threshold": metrics::accuracy(&labelled, engine.threshold()),
        "ten_fold": { "accuracy_mean": mean, "accuracy_std": std, "folds": folds },
        "roc_auc": metrics::auc(&curve),
        "eer": metrics::eer(&curve),
        "tar_at_far": [tar(1e-2), tar(1e-3), tar(1e-4)],
    });
    std::fs::write(out, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", out.display()))?;
    if let Some(dir) = plots {
        std::fs::create_dir_all(dir)?;
        plot::roc(&dir.join("roc.png"), &curve)?;
        plot::histograms(&dir.join("scores.png"), &genuine, &impostor, engine.threshold())?;
    }
    Ok(report)
}
