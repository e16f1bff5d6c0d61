//! `wajah train-occlusion`: the occlusion models, fitted on labelled photos and occlusions drawn on
//! the clean ones.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use image::RgbImage;
use rayon::prelude::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use wajah::occlusion_features as features;
use wajah::{Engine, FaceAnalysis, Occlusion, OcclusionModel};

use crate::capture::{Labelled, analyse};
use crate::synth::{self, Rng};

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
    // What was drawn on each example (`None` for the real photos and their greyscale copies).
    let mut drawn: Vec<Option<Occlusion>> = vec![None; real];
    for (m, job) in made.into_iter().zip(&jobs) {
        let (f, l) = m?;
        x.push(f);
        y.push(l);
        drawn.push(job.1);
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
        // A model sees the real photos, their greyscale copies and only its own drawn occlusion:
        // a drawn occlusion of another kind, counted as a negative, taught the eyeglasses model
        // that dark frames are not glasses, and the mask model to flag lower faces that differ from
        // the drawn masks (a moustache). With this and the stronger penalty of `LAMBDA`, held-out
        // eyeglasses recall rose from 0.76 to 0.88 at 1.2% false flags instead of 3.2% (on the pool
        // as labelled before its glasses were looked at on 2026-12-07).
        let used: Vec<usize> = (0..x.len()).filter(|&i| drawn[i].is_none_or(|d| d == *what)).collect();
        let zk: Vec<&[f32]> = used.iter().map(|&i| z[i].as_slice()).collect();
        let labels: Vec<bool> = used.iter().map(|&i| y[i][k]).collect();
        let positives = labels.iter().filter(|l| **l).count();
        let real_positives = y[..real].iter().filter(|l| l[k]).count();
        counts[what.as_str()] = json!({ "positives": positives, "real_positives": real_positives, "negatives": labels.len() - positives });
        if positives == 0 || positives == labels.len() {
            bail!("no positive or no negative examples of {}", what.as_str());
        }
        let region: Vec<bool> = (0..dim).map(|i| wajah::occlusion_feature_in_region(*what, i)).collect();
        let (weights, bias) = logistic(&zk, &labels, &region, LAMBDA, 400);
        // The threshold: the lowest probability (from 0.1 up) at which no more than
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
        let shift = (0..90)
            .map(|i| {
                let p = 0.1 + 0.01 * i as f32;
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
            "method": format!("L2-regularised logistic regression (lambda {LAMBDA}, 400 Adam steps, class-balanced) on the standardised features of each occlusion's face region; each model sees the real photos, their greyscale copies and its own drawn occlusion"),
        },
    });
    let text = serde_json::to_string(&model)?;
    OcclusionModel::parse(&text).context("the trained model does not read back")?;
    std::fs::write(out, &text).with_context(|| format!("writing {}", out.display()))?;
    Ok(
        json!({ "model": out, "sha256": hex::encode(Sha256::digest(text.as_bytes())), "training": model["training"] }),
    )
}

/// L2 penalty of the logistic models: strong, because the real positives are few (about two hundred
/// for eyeglasses) beside 848 features; 0.01 fitted the training photos' quirks and flagged twice
/// as many held-out faces without glasses.
const LAMBDA: f64 = 0.2;

/// The share of held-out photos without an occlusion that its model may flag: low for the checks
/// that refuse a selfie outright and are most often wrongly raised. A mask refusal tells a citizen
/// to take off a mask they are not wearing, so it gets the lowest bound the held-out photos can
/// measure (1% of their 517 faces without a mask).
fn max_false_flags(o: Occlusion) -> f64 {
    match o {
        Occlusion::Eyeglasses => 0.02,
        Occlusion::Sunglasses => 0.01,
        Occlusion::Mask => 0.01,
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

/// Examples per partial gradient sum in [`logistic`].
const GRADIENT_CHUNK: usize = 256;

/// Class-balanced, L2-regularised logistic regression by full-batch Adam; returns (weights, bias).
fn logistic(z: &[&[f32]], y: &[bool], region: &[bool], lambda: f64, steps: usize) -> (Vec<f32>, f32) {
    let dim = z[0].len();
    let pos = y.iter().filter(|v| **v).count() as f64;
    let neg = y.len() as f64 - pos;
    let (wp, wn) = (0.5 / pos, 0.5 / neg);
    let mut w = vec![0f64; dim + 1];
    let (mut m, mut v) = (vec![0f64; dim + 1], vec![0f64; dim + 1]);
    let (lr, b1, b2) = (0.05, 0.9, 0.999);
    for step in 1..=steps {
        // Partial sums over fixed chunks, added in order: the same model from the same data on
        // every run, whatever the thread count or scheduling.
        let partial: Vec<Vec<f64>> = z
            .par_chunks(GRADIENT_CHUNK)
            .zip(y.par_chunks(GRADIENT_CHUNK))
            .map(|(xs, labels)| {
                let mut g = vec![0f64; dim + 1];
                for (x, &label) in xs.iter().zip(labels) {
                    let s = w[dim] + x.iter().zip(&w).map(|(a, b)| f64::from(*a) * b).sum::<f64>();
                    let p = 1.0 / (1.0 + (-s).exp());
                    let e = if label { wp } else { wn } * (p - f64::from(u8::from(label)));
                    g.iter_mut().zip(x.iter()).for_each(|(g, a)| *g += e * f64::from(*a));
                    g[dim] += e;
                }
                g
            })
            .collect();
        let mut grads = vec![0f64; dim + 1];
        for g in partial {
            grads.iter_mut().zip(g).for_each(|(a, b)| *a += b);
        }
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
