//! `wajah eval`: a verification protocol over a folder of photos.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde::Serialize;
use serde_json::{Value, json};
use wajah::{Engine, FacePolicy, Mode, Template};

use crate::degrade::Degrade;
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
/// different-person lines `name1 i name2 j`) or a CSV `image_a,image_b,same_person` with a header line,
/// labels `1`/`0`, `true`/`false` or `same`/`different` (any case). Anything else is an error naming
/// the file and line.
///
/// Files with fewer than 10 folds (such as a slice of fold 1) are split into 10 folds in order,
/// each with the same share of same- and different-person pairs.
pub fn read_pairs(file: &Path, root: &Path) -> Result<Vec<Pair>> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    // (1-based line number, line) of every line that is not blank.
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l)).filter(|(_, l)| !l.trim().is_empty());
    let at = |n: usize, problem: String| anyhow!("{}:{n}: {problem}", file.display());
    let Some((first_n, first)) = lines.next() else { bail!("{}: empty pairs file", file.display()) };
    let mut pairs = Vec::new();
    if first.contains(',') {
        // The first line is the header, unless it already reads as a pair.
        pairs.extend(csv_pair(first, root).ok());
        for (n, line) in lines {
            pairs.push(csv_pair(line, root).map_err(|p| at(n, p))?);
        }
        assign_folds(&mut pairs);
        return Ok(pairs);
    }
    let header: Option<Vec<usize>> = first.split_whitespace().map(|t| t.parse().ok()).collect();
    let Some(&[folds, per_class]) = header.as_deref() else {
        return Err(at(
            first_n,
            format!("LFW header must be `folds pairs-per-fold-and-class`, found {first:?}"),
        ));
    };
    if per_class == 0 {
        return Err(at(first_n, "LFW header: zero pairs per fold and class".into()));
    }
    for (k, (n, line)) in lines.enumerate() {
        pairs.push(lfw_pair(line, root, k / (2 * per_class)).map_err(|p| at(n, p))?);
    }
    if folds < FOLDS {
        assign_folds(&mut pairs);
    }
    Ok(pairs)
}

/// A same-person label: `1`/`0`, `true`/`false`, `same`/`different`, in any case, spaces ignored.
fn parse_label(label: &str) -> Option<bool> {
    match label.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "same" => Some(true),
        "0" | "false" | "different" => Some(false),
        _ => None,
    }
}

/// One CSV line `image_a,image_b,same_person`; the error says what is wrong with it.
fn csv_pair(line: &str, root: &Path) -> Result<Pair, String> {
    let cols: Vec<&str> = line.split(',').map(str::trim).collect();
    let [a, b, label] = cols[..] else {
        return Err(format!(
            "expected 3 columns image_a,image_b,same_person, found {}: {line:?}",
            cols.len()
        ));
    };
    if a.is_empty() || b.is_empty() {
        return Err(format!("empty image path: {line:?}"));
    }
    let same = parse_label(label).ok_or_else(|| {
        format!("label {label:?} is not one of 1/0, true/false, same/different (same_person column)")
    })?;
    Ok(Pair { a: root.join(a), b: root.join(b), same, fold: 0 })
}

/// One LFW line: `name i j` (same person) or `name1 i name2 j` (different people).
fn lfw_pair(line: &str, root: &Path, fold: usize) -> Result<Pair, String> {
    let image = |name: &str, number: &str| -> Result<PathBuf, String> {
        let n: u32 = number.parse().map_err(|_| format!("image number {number:?} is not a whole number"))?;
        Ok(root.join(name).join(format!("{name}_{n:04}.jpg")))
    };
    let t: Vec<&str> = line.split_whitespace().collect();
    match t[..] {
        [name, i, j] => Ok(Pair { a: image(name, i)?, b: image(name, j)?, same: true, fold }),
        [n1, i, n2, j] => Ok(Pair { a: image(n1, i)?, b: image(n2, j)?, same: false, fold }),
        _ => Err(format!("not an LFW pair (`name i j` or `name1 i name2 j`): {line:?}")),
    }
}

fn assign_folds(pairs: &mut [Pair]) {
    for same in [true, false] {
        let n = pairs.iter().filter(|p| p.same == same).count().max(1);
        for (k, p) in pairs.iter_mut().filter(|p| p.same == same).enumerate() {
            p.fold = k * FOLDS / n;
        }
    }
}

/// The degradation applied to each side of the pairs before analysis (`None`: the photo as it is),
/// and the mode the A (ID) photos are analysed in (`None`: the engine's).
#[derive(Clone, Copy, Debug, Default)]
pub struct Degradation {
    pub a: Option<Degrade>,
    pub b: Option<Degrade>,
    pub accuracy_a: Option<Mode>,
}

/// One photo as analysed: its file and the degradation applied to it.
type PhotoKey = (PathBuf, Option<Variant>);

/// Which degradation a photo went through: side A's, or side B's when it differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Variant {
    A,
    B,
}

impl Degradation {
    fn keys(&self, p: &Pair) -> [PhotoKey; 2] {
        let b = match (self.a, self.b) {
            (_, None) => None,
            (Some(a), Some(b)) if a == b && self.accuracy_a.is_none() => Some(Variant::A),
            (_, Some(_)) => Some(Variant::B),
        };
        let a = (self.a.is_some() || self.accuracy_a.is_some()).then_some(Variant::A);
        [(p.a.clone(), a), (p.b.clone(), b)]
    }

    fn of(&self, variant: Option<Variant>) -> Option<Degrade> {
        match variant {
            None => None,
            Some(Variant::A) => self.a,
            Some(Variant::B) => self.b,
        }
    }

    /// The name a photo is reported under: its path, and its degradation if any.
    fn name(&self, key: &PhotoKey) -> String {
        match self.of(key.1) {
            Some(d) => format!("{} [{d}]", key.0.display()),
            None => key.0.display().to_string(),
        }
    }
}

/// What a score study needs of one photo's capture.
#[derive(Clone, Copy, Debug)]
pub struct Capture {
    /// Eye distance, photo pixels.
    pub interocular_px: f32,
    /// The 0-100 capture quality.
    pub quality_score: u8,
    /// Variance of the Laplacian over the aligned face.
    pub sharpness: f32,
    /// Detector score.
    pub detection_score: f32,
}

/// Templates and captures for every distinct photo, in parallel with a progress bar; `Err(code)`
/// for photos where no face could be used (failure to acquire).
fn templates(
    engine: &Engine,
    files: &[&PhotoKey],
    degradation: &Degradation,
) -> HashMap<PhotoKey, Result<(Template, Capture), String>> {
    let bar = ProgressBar::new(files.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix} {bar:40} {pos}/{len} photos {elapsed}/{eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_prefix("embedding");
    let out = files
        .par_iter()
        .map(|key| {
            let bytes = std::fs::read(&key.0).map_err(|_| "unreadable".to_string());
            let bytes = match degradation.of(key.1) {
                Some(d) => bytes.and_then(|b| d.apply(engine, &b)),
                None => bytes,
            };
            let mode = match (key.1, degradation.accuracy_a) {
                (Some(Variant::A), Some(mode)) => mode,
                _ => engine.config().accuracy,
            };
            let result = bytes.and_then(|b| {
                engine
                    .analyze_in(&b, FacePolicy::Largest, mode)
                    .map(|a| {
                        let q = &a.quality;
                        let capture = Capture {
                            interocular_px: a.face.interocular(),
                            quality_score: q.quality_score,
                            sharpness: q.sharpness,
                            detection_score: q.detection_score,
                        };
                        (a.template, capture)
                    })
                    .map_err(|e| e.code().to_string())
            });
            bar.inc(1);
            ((*key).clone(), result)
        })
        .collect();
    bar.finish_and_clear();
    out
}

/// The scores of the pairs whose photos both gave a template.
pub struct Scores {
    /// (score, same person, fold) of every scored pair.
    pub pairs: Vec<(f32, bool, usize)>,
    /// The A and B captures of every scored pair, in the order of `pairs`.
    pub captures: Vec<[Capture; 2]>,
    /// The A and B paths of every scored pair, in the order of `pairs`.
    pub names: Vec<[String; 2]>,
    /// Distinct photos in the pairs file.
    pub photos: usize,
    /// Photos where no face could be used (failure to acquire), sorted, with the error code.
    pub failed: Vec<(String, String)>,
    /// Median eye distance (photo pixels) of the A and of the B photos of the scored pairs.
    pub eye_distance_median: (f32, f32),
}

impl Scores {
    /// Genuine (`same`) or impostor scores.
    pub fn of(&self, same: bool) -> Vec<f32> {
        self.pairs.iter().filter(|s| s.1 == same).map(|s| s.0).collect()
    }
}

/// Embeds every photo and scores every pair. Refuses when no genuine or no impostor pair is left to
/// score, in the file or once failures to acquire are removed: no error rate could be measured.
pub fn score(engine: &Engine, pairs: &[Pair], source: &Path, degradation: &Degradation) -> Result<Scores> {
    let keys: Vec<[PhotoKey; 2]> = pairs.iter().map(|p| degradation.keys(p)).collect();
    let mut files: Vec<&PhotoKey> = keys.iter().flatten().collect();
    files.sort();
    files.dedup();
    let templates = templates(engine, &files, degradation);
    let mut failed: Vec<(String, String)> = templates
        .iter()
        .filter_map(|(k, t)| t.as_ref().err().map(|code| (degradation.name(k), code.clone())))
        .collect();
    failed.sort();
    let (mut scored, mut captures, mut names) = (Vec::new(), Vec::new(), Vec::new());
    for (p, [ka, kb]) in pairs.iter().zip(&keys) {
        if let (Ok(a), Ok(b)) = (&templates[ka], &templates[kb]) {
            scored.push((engine.compare(&a.0, &b.0)?.score.0, p.same, p.fold));
            captures.push([a.1, b.1]);
            names.push([degradation.name(ka), degradation.name(kb)]);
        }
    }
    for (same, kind) in [(true, "genuine (same-person)"), (false, "impostor (different-person)")] {
        let labelled = pairs.iter().filter(|p| p.same == same).count();
        if labelled == 0 {
            bail!("{}: no {kind} pairs; error rates need both genuine and impostor pairs", source.display());
        }
        if !scored.iter().any(|s| s.1 == same) {
            let shown = failed.iter().take(5).map(|f| f.0.clone()).collect::<Vec<_>>().join(", ");
            let more = failed.len().saturating_sub(5);
            bail!(
                "{}: none of the {labelled} {kind} pairs could be scored: each has a photo where no face \
                 could be used (failure to acquire: {shown}{})",
                source.display(),
                if more > 0 { format!(" and {more} more") } else { String::new() }
            );
        }
    }
    let median_eyes = |side: usize| {
        let mut v: Vec<f32> = captures.iter().map(|c: &[Capture; 2]| c[side].interocular_px).collect();
        v.sort_by(f32::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let eye_distance_median = (median_eyes(0), median_eyes(1));
    Ok(Scores { pairs: scored, captures, names, photos: files.len(), failed, eye_distance_median })
}

/// The false match rates at which the report gives the FNMR.
const FMRS: [f64; 3] = [1e-2, 1e-3, 1e-4];

#[derive(Serialize)]
struct FoldResult {
    fold: usize,
    threshold: f32,
    accuracy: f64,
}

/// Runs the protocol and writes the report and plots. Returns the report.
pub fn run(
    engine: &Engine,
    pairs: &[Pair],
    source: &Path,
    out: &Path,
    plots: Option<&Path>,
    scores_csv: Option<&Path>,
    degradation: &Degradation,
) -> Result<Value> {
    let scores = score(engine, pairs, source, degradation)?;
    if let Some(path) = scores_csv {
        write_scores(&scores, path)?;
    }
    let scored = &scores.pairs;
    let (genuine, impostor) = (scores.of(true), scores.of(false));
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
    // TAR at FAR is the same figure as 1 - FNMR at FMR, kept under its older name.
    let (fnmr_at_fmr, tar_at_far): (Vec<Value>, Vec<Value>) = FMRS
        .iter()
        .map(|&fmr| match metrics::fnmr_at_fmr(&genuine, &impostor, fmr) {
            Ok(p) => (
                json!({ "fmr": fmr, "fnmr": p.fnmr, "threshold": p.threshold, "fmr_measured": p.fmr }),
                json!({ "far": fmr, "tar": 1.0 - p.fnmr, "threshold": p.threshold }),
            ),
            Err(reason) => (
                json!({ "fmr": fmr, "fnmr": null, "reason": reason }),
                json!({ "far": fmr, "tar": null, "reason": reason }),
            ),
        })
        .unzip();
    let operating = metrics::at_threshold(&genuine, &impostor, engine.threshold());
    let eer = metrics::eer(&curve);
    let report = json!({
        "model": engine.model_id(),
        "pairs": pairs.len(),
        "scored_pairs": scored.len(),
        "genuine_pairs": genuine.len(),
        "impostor_pairs": impostor.len(),
        "photos": scores.photos,
        "degrade_a": degradation.a.map(|d| d.to_string()),
        "degrade_b": degradation.b.map(|d| d.to_string()),
        "accuracy": engine.config().accuracy,
        "accuracy_a": degradation.accuracy_a.unwrap_or(engine.config().accuracy),
        "failure_to_acquire": scores.failed.len(),
        "failure_reasons": reasons(&scores.failed),
        "failed_photos": scores.failed.iter().map(|f| &f.0).collect::<Vec<_>>(),
        "failed_photo_reasons": scores.failed.iter().map(|f| json!({ "photo": f.0, "reason": f.1 })).collect::<Vec<_>>(),
        "threshold": engine.threshold(),
        "operating_point": operating,
        "accuracy_at_threshold": metrics::accuracy(&labelled, engine.threshold()),
        "ten_fold": { "accuracy_mean": mean, "accuracy_std": std, "folds": folds },
        "roc_auc": metrics::auc(&curve),
        "separation": metrics::separation(&genuine, &impostor),
        "eye_distance_median_px": { "a": scores.eye_distance_median.0, "b": scores.eye_distance_median.1 },
        "eer": eer,
        "fnmr_at_fmr": fnmr_at_fmr,
        "tar_at_far": tar_at_far,
    });
    std::fs::write(out, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", out.display()))?;
    if let Some(dir) = plots {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        plot::roc(&dir.join("roc.png"), &curve)?;
        let det = metrics::det(&genuine, &impostor);
        plot::det(&dir.join("det.png"), &det, operating, eer, (genuine.len(), impostor.len()))?;
        plot::histograms(&dir.join("scores.png"), &genuine, &impostor, engine.threshold())?;
    }
    Ok(report)
}

/// One CSV row per scored pair: the paths, label, fold, score and both captures.
fn write_scores(scores: &Scores, path: &Path) -> Result<()> {
    use std::fmt::Write as _;
    let mut csv = String::from(
        "a,b,same,fold,score,interocular_a,interocular_b,quality_a,quality_b,sharpness_a,sharpness_b,\
         detection_a,detection_b\n",
    );
    for (((score, same, fold), [a, b]), [na, nb]) in
        scores.pairs.iter().zip(&scores.captures).zip(&scores.names)
    {
        let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        writeln!(
            csv,
            "{},{},{},{fold},{score:.6},{:.2},{:.2},{},{},{:.1},{:.1},{:.4},{:.4}",
            quote(na),
            quote(nb),
            u8::from(*same),
            a.interocular_px,
            b.interocular_px,
            a.quality_score,
            b.quality_score,
            a.sharpness,
            b.sharpness,
            a.detection_score,
            b.detection_score
        )?;
    }
    std::fs::write(path, csv).with_context(|| format!("writing {}", path.display()))
}

/// How many failures to acquire each error code accounts for.
fn reasons(failed: &[(String, String)]) -> Value {
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for (_, code) in failed {
        *counts.entry(code).or_default() += 1;
    }
    json!(counts)
}
