//! Capture compliance: training the occlusion model (`wajah train-occlusion`), measuring the capture
//! checks on labelled photos (`wajah eval-capture`), and measuring the ID-photo replay flag on
//! generated attacks (`wajah eval-replay`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use image::RgbImage;
use image::codecs::jpeg::JpegEncoder;
use rayon::prelude::*;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use wajah::occlusion_features as features;
use wajah::{Engine, FaceAnalysis, FacePolicy, Occlusion, OcclusionModel, QualityIssue};

use crate::eval::Pair;
use crate::plot;
use crate::synth::{self, Rng};

/// One labelled photo.
#[derive(Clone, Debug)]
pub struct Labelled {
    pub path: PathBuf,
    /// Eyeglasses, sunglasses, mask, face_occluded (the order of [`Occlusion::ALL`]).
    pub labels: [bool; 4],
}

/// Reads a labels CSV with a header naming `path` (or `file`) and the columns `eyeglasses`,
/// `sunglasses`, `mask`, `face_occluded` (0/1), and optionally `split`. Paths are relative to `root`.
pub fn read_labels(file: &Path, root: &Path, split: Option<&str>) -> Result<Vec<Labelled>> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or_else(|| anyhow!("{}: empty labels file", file.display()))?;
    let cols = csv_fields(header);
    let col = |name: &str| cols.iter().position(|c| *c == name);
    let path_col = col("path")
        .or_else(|| col("file"))
        .ok_or_else(|| anyhow!("{}: the header names no `path` or `file` column", file.display()))?;
    let label_cols: Vec<usize> = Occlusion::ALL
        .iter()
        .map(|o| col(o.as_str()).ok_or_else(|| anyhow!("{}: no `{}` column", file.display(), o.as_str())))
        .collect::<Result<_>>()?;
    let split_col = col("split");
    let mut out = Vec::new();
    for (i, line) in lines {
        let fields = csv_fields(line);
        let at = |what: String| anyhow!("{}:{}: {what}", file.display(), i + 1);
        let field = |c: usize| {
            fields.get(c).map(String::as_str).ok_or_else(|| at(format!("missing column {}", c + 1)))
        };
        let mut labels = [false; 4];
        for (k, &c) in label_cols.iter().enumerate() {
            labels[k] = match field(c)? {
                "1" => true,
                "0" => false,
                other => return Err(at(format!("label {other:?} is not 0 or 1"))),
            };
        }
        let row_split = split_col.map(field).transpose()?;
        if let Some(want) = split
            && row_split.is_some_and(|s| s != want)
        {
            continue;
        }
        out.push(Labelled { path: root.join(field(path_col)?), labels });
    }
    if out.is_empty() {
        bail!(
            "{}: no labelled photos{}",
            file.display(),
            split.map(|s| format!(" in split {s}")).unwrap_or_default()
        );
    }
    Ok(out)
}

/// The fields of one CSV line (RFC 4180 quoting: `"a,b"` and `""` inside quotes).
pub fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                if let Some(f) = fields.last_mut() {
                    f.push('"');
                }
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            (c, _) => {
                if let Some(f) = fields.last_mut() {
                    f.push(c);
                }
            }
        }
    }
    fields.iter_mut().for_each(|f| *f = f.trim().to_string());
    fields
}

/// Analyses every photo (the main face of each), in parallel; failures are kept as errors.
fn analyse(engine: &Engine, rows: &[Labelled]) -> Vec<Result<FaceAnalysis>> {
    rows.par_iter()
        .map(|r| {
            let bytes = std::fs::read(&r.path).with_context(|| format!("reading {}", r.path.display()))?;
            engine.analyze_with(&bytes, FacePolicy::Largest).map_err(|e| anyhow!("{}: {e}", r.path.display()))
        })
        .collect()
}

/// `wajah train-occlusion`: logistic models over [`features`] of real labelled photos plus, for
/// every photo without occlusions, `synthetic` variants with one occlusion drawn on its aligned crop.
pub fn train(
    engine: &Engine,
    rows: &[Labelled],
    labels_file: &Path,
    synthetic: usize,
    seed: u64,
    out: &Path,
) -> Result<Value> {
    let analyses = analyse(engine, rows);
    let mut x: Vec<Vec<f32>> = Vec::new();
    let mut y: Vec<[bool; 4]> = Vec::new();
    let mut skipped = 0usize;
    let mut analysed: Vec<(&FaceAnalysis, [bool; 4])> = Vec::new();
    // A fifth of the real photos (by a seeded hash of the photo) is held out to choose each
    // model's threshold; the models are fitted on the rest and on copies made from the rest.
    let mut validation: Vec<(Vec<f32>, [bool; 4])> = Vec::new();
    for (row, a) in rows.iter().zip(&analyses) {
        let Ok(a) = a else {
            skipped += 1;
            continue;
        };
        let f = features(a.aligned.image(), a.template.embedding.as_slice());
        if Rng::new(seed ^ u64::from_str_radix(&a.photo_sha256[..15], 16).unwrap_or(0)).below(5) == 0 {
            validation.push((f, row.labels));
            continue;
        }
        x.push(f);
        y.push(row.labels);
        analysed.push((a, row.labels));
    }
    let real = x.len();
    // Edited copies, embedded again: a greyscale copy of every colour photo (so that greyscale
    // sources, where glasses happen to be common, teach nothing about colour), and for every photo
    // without occlusions `synthetic` copies with one occlusion drawn (a third of them greyscale).
    let mut rng = Rng::new(seed);
    let mut jobs: Vec<(usize, Option<Occlusion>, bool, u64)> = Vec::new();
    for (i, (a, labels)) in analysed.iter().enumerate() {
        if !is_grey(a.aligned.image()) {
            jobs.push((i, None, true, 0));
        }
        if !labels.iter().any(|l| *l) {
            for k in 0..synthetic {
                jobs.push((i, Some(Occlusion::ALL[k % 4]), rng.below(3) == 0, rng.next_u64()));
            }
        }
    }
    let made: Vec<Result<(Vec<f32>, [bool; 4])>> = jobs
        .par_iter()
        .map(|&(i, what, grey, s)| {
            let (a, mut labels) = analysed[i];
            let mut crop = a.aligned.image().clone();
            if grey {
                to_grey(&mut crop);
            }
            if let Some(what) = what {
                synth::occlude(&mut crop, what, &mut Rng::new(s));
                labels[Occlusion::ALL.iter().position(|o| *o == what).unwrap_or(3)] = true;
            }
            let aligned = a.aligned.with_image(crop).ok_or_else(|| anyhow!("crop size changed"))?;
            let t = engine.embed(&[&aligned])?.pop().ok_or_else(|| anyhow!("no embedding"))?;
            Ok((features(aligned.image(), t.embedding.as_slice()), labels))
        })
        .collect();
    for m in made {
        let (f, l) = m?;
        x.push(f);
        y.push(l);
    }
    if x.is_empty() {
        bail!("no photo could be analysed");
    }
    let dim = x[0].len();
    let (mean, scale) = standardisation(&x, dim);
    let z: Vec<Vec<f32>> =
        x.iter().map(|v| v.iter().zip(&mean).zip(&scale).map(|((v, m), s)| (v - m) / s).collect()).collect();
    let mut heads = Vec::new();
    let mut counts = Value::Object(serde_json::Map::new());
    for (k, what) in Occlusion::ALL.iter().enumerate() {
        let labels: Vec<bool> = y.iter().map(|l| l[k]).collect();
        let positives = labels.iter().filter(|l| **l).count();
        let real_positives = labels[..real].iter().filter(|l| **l).count();
        counts[what.as_str()] = json!({ "positives": positives, "real_positives": real_positives, "negatives": labels.len() - positives });
        if positives == 0 || positives == labels.len() {
            bail!("no positive or no negative examples of {}", what.as_str());
        }
        let region: Vec<bool> = (0..dim).map(|i| wajah::occlusion_feature_in_region(*what, i)).collect();
        let (weights, bias) = logistic(&z, &labels, &region, 1e-2, 400);
        // The threshold: the lowest probability (from 0.5 up) at which no more than
        // `max_false_flags` of the held-out photos without this occlusion are flagged; the bias is
        // moved so that this threshold reads as 0.5.
        let logit = |v: &[f32]| {
            bias + v
                .iter()
                .zip(&mean)
                .zip(&scale)
                .zip(&weights)
                .map(|(((v, m), s), w)| w * (v - m) / s)
                .sum::<f32>()
        };
        let held: Vec<(f32, bool)> = validation.iter().map(|(v, l)| (logit(v), l[k])).collect();
        let negatives: Vec<f32> = held.iter().filter(|h| !h.1).map(|h| h.0).collect();
        let positives: Vec<f32> = held.iter().filter(|h| h.1).map(|h| h.0).collect();
        let target = max_false_flags(*what);
        let shift = (0..50)
            .map(|i| {
                let p = 0.5 + 0.01 * i as f32;
                (p / (1.0 - p)).ln()
            })
            .find(|t| negatives.iter().filter(|z| *z >= t).count() as f64 <= target * negatives.len() as f64)
            .unwrap_or((0.99f32 / 0.01).ln());
        let rate = |v: &[f32]| v.iter().filter(|z| **z >= shift).count() as f64 / v.len().max(1) as f64;
        counts[what.as_str()]["held_out"] = json!({
            "threshold": 1.0 / (1.0 + (-shift).exp()),
            "positives": positives.len(),
            "recall": rate(&positives),
            "negatives": negatives.len(),
            "false_flag_rate": rate(&negatives),
        });
        heads.push(json!({ "occlusion": what, "weights": weights, "bias": bias - shift }));
    }
    let model = json!({
        "features": wajah::OCCLUSION_FEATURES,
        "recognizer": engine.model_id(),
        "mean": mean,
        "scale": scale,
        "heads": heads,
        "training": {
            "command": format!("wajah train-occlusion --labels {} --synthetic {synthetic} --seed {seed}", labels_file.display()),
            "real_photos": real,
            "held_out_photos": validation.len(),
            "photos_without_a_face": skipped,
            "synthetic_per_clean_photo": synthetic,
            "greyscale_copies": "every colour photo",
            "examples": x.len(),
            "per_occlusion": counts,
            "method": "L2-regularised logistic regression (lambda 0.01, 400 Adam steps, class-balanced) on the standardised features of each occlusion's face region",
        },
    });
    let text = serde_json::to_string(&model)?;
    OcclusionModel::parse(&text).context("the trained model does not read back")?;
    std::fs::write(out, &text).with_context(|| format!("writing {}", out.display()))?;
    Ok(
        json!({ "model": out, "sha256": hex::encode(Sha256::digest(text.as_bytes())), "training": model["training"] }),
    )
}

/// The share of held-out photos without an occlusion that its model may flag: low for the checks
/// that refuse a selfie outright and are most often wrongly raised.
fn max_false_flags(o: Occlusion) -> f64 {
    match o {
        Occlusion::Eyeglasses => 0.04,
        Occlusion::Sunglasses | Occlusion::Mask => 0.02,
        Occlusion::FaceOccluded => 0.005,
    }
}

fn is_grey(image: &RgbImage) -> bool {
    image.pixels().all(|p| p.0[0] == p.0[1] && p.0[1] == p.0[2])
}

fn to_grey(image: &mut RgbImage) {
    for p in image.pixels_mut() {
        let [r, g, b] = p.0.map(f32::from);
        let v = (0.299 * r + 0.587 * g + 0.114 * b).round().clamp(0.0, 255.0) as u8;
        p.0 = [v, v, v];
    }
}

fn standardisation(x: &[Vec<f32>], dim: usize) -> (Vec<f32>, Vec<f32>) {
    let n = x.len() as f64;
    let mut mean = vec![0f64; dim];
    let mut sq = vec![0f64; dim];
    for v in x {
        for (k, &f) in v.iter().enumerate() {
            mean[k] += f64::from(f) / n;
            sq[k] += f64::from(f) * f64::from(f) / n;
        }
    }
    let scale = mean.iter().zip(&sq).map(|(m, s)| ((s - m * m).max(0.0).sqrt().max(1e-3)) as f32).collect();
    (mean.into_iter().map(|m| m as f32).collect(), scale)
}

/// Class-balanced, L2-regularised logistic regression by full-batch Adam; returns (weights, bias).
fn logistic(z: &[Vec<f32>], y: &[bool], region: &[bool], lambda: f64, steps: usize) -> (Vec<f32>, f32) {
    let dim = z[0].len();
    let pos = y.iter().filter(|v| **v).count() as f64;
    let neg = y.len() as f64 - pos;
    let (wp, wn) = (0.5 / pos, 0.5 / neg);
    let mut w = vec![0f64; dim + 1];
    let (mut m, mut v) = (vec![0f64; dim + 1], vec![0f64; dim + 1]);
    let (lr, b1, b2) = (0.05, 0.9, 0.999);
    for step in 1..=steps {
        let grads: Vec<f64> = z
            .par_iter()
            .zip(y)
            .map(|(x, &label)| {
                let s = w[dim] + x.iter().zip(&w).map(|(a, b)| f64::from(*a) * b).sum::<f64>();
                let p = 1.0 / (1.0 + (-s).exp());
                let weight = if label { wp } else { wn };
                let e = weight * (p - f64::from(u8::from(label)));
                let mut g: Vec<f64> = x.iter().map(|a| e * f64::from(*a)).collect();
                g.push(e);
                g
            })
            .reduce(
                || vec![0f64; dim + 1],
                |mut a, b| {
                    a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
                    a
                },
            );
        for k in 0..=dim {
            if k < dim && !region[k] {
                continue;
            }
            let g = grads[k] + if k < dim { lambda * w[k] / y.len() as f64 * 100.0 } else { 0.0 };
            m[k] = b1 * m[k] + (1.0 - b1) * g;
            v[k] = b2 * v[k] + (1.0 - b2) * g * g;
            let mh = m[k] / (1.0 - b1.powi(step as i32));
            let vh = v[k] / (1.0 - b2.powi(step as i32));
            w[k] -= lr * mh / (vh.sqrt() + 1e-8);
        }
    }
    let bias = w.pop().unwrap_or(0.0) as f32;
    (w.into_iter().map(|v| v as f32).collect(), bias)
}

#[derive(Serialize)]
struct ProblemFigures {
    problem: &'static str,
    labelled: usize,
    flagged: usize,
    true_positives: usize,
    precision: f64,
    recall: f64,
    /// Share of photos without this problem that were flagged with it.
    false_flag_rate: f64,
}

/// `wajah eval-capture`: per occlusion precision and recall, and the share of compliant photos
/// (no occlusion labelled) that any capture check rejects.
pub fn eval(
    engine: &Engine,
    rows: &[Labelled],
    labels_file: &Path,
    out: &Path,
    plot_to: Option<&Path>,
) -> Result<Value> {
    let analyses = analyse(engine, rows);
    let mut figures = Vec::new();
    let mut failed = Vec::new();
    let ok: Vec<(&Labelled, &FaceAnalysis)> = rows
        .iter()
        .zip(&analyses)
        .filter_map(|(r, a)| match a {
            Ok(a) => Some((r, a)),
            Err(e) => {
                failed.push(e.to_string());
                None
            }
        })
        .collect();
    for (k, what) in Occlusion::ALL.iter().enumerate() {
        let issue = QualityIssue::occlusion(*what);
        let (mut tp, mut fp, mut pos, mut neg) = (0usize, 0usize, 0usize, 0usize);
        for (r, a) in &ok {
            let flagged = a.quality.issues.contains(&issue);
            if r.labels[k] {
                pos += 1;
                tp += usize::from(flagged);
            } else {
                neg += 1;
                fp += usize::from(flagged);
            }
        }
        let ratio = |a: usize, b: usize| if b == 0 { f64::NAN } else { a as f64 / b as f64 };
        figures.push(ProblemFigures {
            problem: what.as_str(),
            labelled: pos,
            flagged: tp + fp,
            true_positives: tp,
            precision: ratio(tp, tp + fp),
            recall: ratio(tp, pos),
            false_flag_rate: ratio(fp, neg),
        });
    }
    // Every disagreement with the labels, for people to look at.
    let mut disagreements = Vec::new();
    for (r, a) in &ok {
        for (k, what) in Occlusion::ALL.iter().enumerate() {
            let flagged = a.quality.issues.contains(&QualityIssue::occlusion(*what));
            if flagged != r.labels[k] {
                let p = a.quality.occlusion.map(|o| o.get(*what));
                let kind = if flagged { "false_flag" } else { "missed" };
                disagreements.push(
                    json!({ "file": r.path, "problem": what.as_str(), "kind": kind, "probability": p }),
                );
            }
        }
    }
    let compliant: Vec<&(&Labelled, &FaceAnalysis)> =
        ok.iter().filter(|(r, _)| !r.labels.iter().any(|l| *l)).collect();
    // Refused in registration mode (every problem but those reported only).
    let rejected: Vec<Value> = compliant
        .iter()
        .filter(|(_, a)| a.quality.issues.iter().any(|i| i.refuses_selfie()))
        .map(|(r, a)| json!({ "file": r.path, "issues": a.quality.issues }))
        .collect();
    let mut scores: Vec<u8> = ok.iter().map(|(_, a)| a.quality.quality_score).collect();
    scores.sort_unstable();
    let report = json!({
        "labels": labels_file,
        "model": engine.model_id(),
        "occlusion_model": engine.occlusion_model().map(|m| m.training.clone()),
        "photos": rows.len(),
        "analysed": ok.len(),
        "not_analysed": failed,
        "problems": figures,
        "compliant": compliant.len(),
        "compliant_rejected": rejected.len(),
        "compliant_rejected_rate": if compliant.is_empty() { f64::NAN } else { rejected.len() as f64 / compliant.len() as f64 },
        "compliant_rejections": rejected,
        "disagreements": disagreements,
        "quality_score_median": scores.get(scores.len() / 2),
    });
    std::fs::write(out, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", out.display()))?;
    if let Some(p) = plot_to {
        let bars: Vec<(String, f64, f64)> =
            figures.iter().map(|f| (f.problem.to_string(), f.precision, f.recall)).collect();
        plot::capture_bars(p, &bars, report["compliant_rejected_rate"].as_f64().unwrap_or(f64::NAN))?;
    }
    Ok(report)
}

/// `wajah eval-replay`: how often the `photo_of_id_photo` bound flags generated photos of ID photos,
/// and how often it flags the genuine pairs of a pairs file (A as the ID photo, B as the selfie).
pub fn eval_replay(
    engine: &Engine,
    pairs: &[Pair],
    per_photo: usize,
    seed: u64,
    backgrounds: &[PathBuf],
    out: &Path,
) -> Result<Value> {
    let genuine: Vec<&Pair> = pairs.iter().filter(|p| p.same).collect();
    if genuine.is_empty() {
        bail!("the pairs file has no genuine pairs");
    }
    let bound = engine.config().quality.max_id_photo_similarity;
    // Every photo once.
    let mut paths: Vec<&Path> = genuine.iter().flat_map(|p| [p.a.as_path(), p.b.as_path()]).collect();
    paths.sort();
    paths.dedup();
    let templates: std::collections::HashMap<&Path, (wajah::Template, Vec<f32>)> = paths
        .par_iter()
        .filter_map(|path| {
            let bytes = std::fs::read(path).ok()?;
            let a = engine.analyze_with(&bytes, FacePolicy::Largest).ok()?;
            Some((*path, (a.template, wajah::appearance(a.aligned.image()))))
        })
        .collect();
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    let genuine_pairs: Vec<(f32, f32)> = genuine
        .iter()
        .filter_map(|p| {
            let (a, b) = (templates.get(p.a.as_path())?, templates.get(p.b.as_path())?);
            Some((engine.compare(&a.0, &b.0).ok()?.score.0, dot(&a.1, &b.1)))
        })
        .collect();
    let genuine_scores: Vec<f32> = genuine_pairs.iter().map(|p| p.0).collect();
    let backgrounds: Vec<RgbImage> =
        backgrounds.iter().filter_map(|p| image::open(p).ok().map(|i| i.to_rgb8())).collect();
    // The ID photos: the A side of every genuine pair, each once.
    let mut ids: Vec<&Path> = genuine.iter().map(|p| p.a.as_path()).collect();
    ids.sort();
    ids.dedup();
    let mut rng = Rng::new(seed);
    let jobs: Vec<(&Path, u64)> =
        ids.iter().flat_map(|p| (0..per_photo).map(move |_| *p)).map(|p| (p, rng.next_u64())).collect();
    let attacks: Vec<Option<(f32, f32)>> = jobs
        .par_iter()
        .map(|&(path, s)| {
            // The ID photo: a head-and-shoulders crop of the photo, as on a KTP-el, enrolled as it is.
            let (photo, id) = id_portrait(engine, &image::open(path).ok()?.to_rgb8())?;
            let id = (id.template, wajah::appearance(id.aligned.image()));
            let mut rng = Rng::new(s);
            let bg = (!backgrounds.is_empty() && rng.below(2) == 0)
                .then(|| &backgrounds[rng.below(backgrounds.len())]);
            let shot = synth::replay(&photo, bg, &mut rng);
            let jpeg = to_jpeg(&shot, rng.range(55.0, 92.0) as u8).ok()?;
            let selfie = engine.analyze_with(&jpeg, FacePolicy::Largest).ok()?;
            Some((
                engine.compare(&id.0, &selfie.template).ok()?.score.0,
                dot(&id.1, &wajah::appearance(selfie.aligned.image())),
            ))
        })
        .collect();
    let attack_pairs: Vec<(f32, f32)> = attacks.iter().flatten().copied().collect();
    let attack_scores: Vec<f32> = attack_pairs.iter().map(|p| p.0).collect();
    let genuine_look: Vec<f32> = genuine_pairs.iter().map(|p| p.1).collect();
    let attack_look: Vec<f32> = attack_pairs.iter().map(|p| p.1).collect();
    let share = |s: &[f32]| s.iter().filter(|v| **v >= bound).count() as f64 / s.len().max(1) as f64;
    let quantile = |s: &[f32], q: f64| {
        let mut v = s.to_vec();
        v.sort_by(f32::total_cmp);
        v.get(((v.len() as f64 - 1.0) * q).round() as usize).copied()
    };
    let report = json!({
        "bound": bound,
        "genuine_pairs": genuine_scores.len(),
        "genuine_flagged_rate": share(&genuine_scores),
        "genuine_score_p99": quantile(&genuine_scores, 0.99),
        "genuine_score_p995": quantile(&genuine_scores, 0.995),
        "genuine_score_max": quantile(&genuine_scores, 1.0),
        "attacks_generated": jobs.len(),
        "attacks_with_a_face": attack_scores.len(),
        "attacks_flagged_rate": share(&attack_scores),
        "attack_score_p05": quantile(&attack_scores, 0.05),
        "attack_score_median": quantile(&attack_scores, 0.5),
        "seed": seed,
        "per_photo": per_photo,
        "genuine_look_p99": quantile(&genuine_look, 0.99),
        "genuine_look_p995": quantile(&genuine_look, 0.995),
        "genuine_look_max": quantile(&genuine_look, 1.0),
        "attack_look_p05": quantile(&attack_look, 0.05),
        "attack_look_p02": quantile(&attack_look, 0.02),
        "attack_look_median": quantile(&attack_look, 0.5),
        "pairs": genuine_pairs.iter().map(|p| json!([p.0, p.1, "genuine"])).chain(attack_pairs.iter().map(|p| json!([p.0, p.1, "attack"]))).collect::<Vec<_>>(),
    });
    std::fs::write(out, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(report)
}

/// A head-and-shoulders crop around the main face of `photo` (the face about half the crop's width,
/// a third of its height below the top), as an ID photo frames it, and its analysis.
pub fn id_portrait(engine: &Engine, photo: &RgbImage) -> Option<(RgbImage, FaceAnalysis)> {
    let face = engine.analyze_image(photo, FacePolicy::Largest).ok()?.face.bbox;
    let (w, h) = (face.width * 2.0, face.height * 2.6);
    let x0 = (face.x + face.width / 2.0 - w / 2.0).max(0.0);
    let y0 = (face.y - face.height * 0.7).max(0.0);
    let w = w.min(photo.width() as f32 - x0).max(1.0);
    let h = h.min(photo.height() as f32 - y0).max(1.0);
    let crop = image::imageops::crop_imm(photo, x0 as u32, y0 as u32, w as u32, h as u32).to_image();
    let analysis = engine.analyze_image(&crop, FacePolicy::Largest).ok()?;
    Some((crop, analysis))
}

/// JPEG bytes of `image` at `quality` (1-100).
pub fn to_jpeg(image: &RgbImage, quality: u8) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality.clamp(1, 100)).encode_image(image)?;
    Ok(out)
}

/// `wajah make-replay`: the ID-photo crop of `photo` (`id_photo.jpg`) and `count` photos of it held
/// up to a camera, as JPEG files in `out`.
pub fn make_replay(
    engine: &Engine,
    photo: &Path,
    count: usize,
    seed: u64,
    backgrounds: &[PathBuf],
    out: &Path,
) -> Result<Value> {
    let full = image::open(photo).with_context(|| format!("reading {}", photo.display()))?.to_rgb8();
    let (image, _) =
        id_portrait(engine, &full).ok_or_else(|| anyhow!("{}: no usable face", photo.display()))?;
    let backgrounds: Vec<RgbImage> = backgrounds
        .iter()
        .map(|p| Ok(image::open(p).with_context(|| format!("reading {}", p.display()))?.to_rgb8()))
        .collect::<Result<_>>()?;
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("id_photo.jpg"), to_jpeg(&image, 92)?)?;
    let mut rng = Rng::new(seed);
    let mut files = Vec::new();
    for i in 0..count {
        let bg = (!backgrounds.is_empty() && rng.below(2) == 0)
            .then(|| &backgrounds[rng.below(backgrounds.len())]);
        let shot = synth::replay(&image, bg, &mut rng);
        let quality = rng.range(55.0, 92.0) as u8;
        let file = out.join(format!("replay_{seed}_{i:03}.jpg"));
        std::fs::write(&file, to_jpeg(&shot, quality)?)
            .with_context(|| format!("writing {}", file.display()))?;
        files.push(json!({ "file": file, "jpeg_quality": quality }));
    }
    Ok(json!({ "photo": photo, "seed": seed, "files": files }))
}
