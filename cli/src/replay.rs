//! Photos of an ID photo held up to a camera: `wajah make-replay` writes them, `wajah eval-replay`
//! measures the `photo_of_id_photo` flag on them and on genuine pairs.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use image::RgbImage;
use image::codecs::jpeg::JpegEncoder;
use rayon::prelude::*;
use serde_json::{Value, json};
use wajah::{Engine, FaceAnalysis, FacePatch, FacePolicy};

use crate::calibrate::percentile;
use crate::eval::Pair;
use crate::synth::{self, Rng};

/// One ID photo against one selfie: score, look, plane fit, and whether it was flagged.
type Measure = (f32, f32, f32, bool);

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
    let q = engine.config().quality;
    // Every photo once.
    let mut paths: Vec<&Path> = genuine.iter().flat_map(|p| [p.a.as_path(), p.b.as_path()]).collect();
    paths.sort();
    paths.dedup();
    let templates: std::collections::HashMap<&Path, (wajah::Template, Vec<f32>, Option<FacePatch>)> = paths
        .par_iter()
        .filter_map(|path| {
            let bytes = std::fs::read(path).ok()?;
            let a = engine.analyze_with(&bytes, FacePolicy::Largest).ok()?;
            Some((
                *path,
                (a.template, wajah::appearance(a.aligned.image()), FacePatch::of(a.aligned.image())),
            ))
        })
        .collect();
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    // (score, look, plane fit, flagged) of each genuine pair.
    let fit = |a: &Option<FacePatch>, b: &Option<FacePatch>| {
        a.as_ref().zip(b.as_ref()).and_then(|(a, b)| wajah::plane_fit(a, b)).unwrap_or(0.0)
    };
    let measured: Vec<(&Pair, Measure)> = genuine
        .iter()
        .filter_map(|p| {
            let (a, b) = (templates.get(p.a.as_path())?, templates.get(p.b.as_path())?);
            let score = engine.compare(&a.0, &b.0).ok()?.score.0;
            let flagged = engine.is_id_photo_replay(score, a.2.as_ref(), b.2.as_ref());
            Some((*p, (score, dot(&a.1, &b.1), fit(&a.2, &b.2), flagged)))
        })
        .collect();
    let genuine_pairs: Vec<Measure> = measured.iter().map(|m| m.1).collect();
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
    let attacks: Vec<Option<Measure>> = jobs
        .par_iter()
        .map(|&(path, s)| {
            // The ID photo: a head-and-shoulders crop of the photo, as on a KTP-el, enrolled as it is.
            let (photo, id) = id_portrait(engine, &image::open(path).ok()?.to_rgb8())?;
            let id = (id.template, wajah::appearance(id.aligned.image()), FacePatch::of(id.aligned.image()));
            let mut rng = Rng::new(s);
            let bg = (!backgrounds.is_empty() && rng.below(2) == 0)
                .then(|| &backgrounds[rng.below(backgrounds.len())]);
            let shot = synth::replay(&photo, bg, &mut rng);
            let jpeg = to_jpeg(&shot, rng.range(55.0, 92.0) as u8).ok()?;
            let selfie = engine.analyze_with(&jpeg, FacePolicy::Largest).ok()?;
            let score = engine.compare(&id.0, &selfie.template).ok()?.score.0;
            let own = FacePatch::of(selfie.aligned.image());
            Some((
                score,
                dot(&id.1, &wajah::appearance(selfie.aligned.image())),
                fit(&id.2, &own),
                engine.is_id_photo_replay(score, id.2.as_ref(), own.as_ref()),
            ))
        })
        .collect();
    let attack_pairs: Vec<Measure> = attacks.iter().flatten().copied().collect();
    let attack_scores: Vec<f32> = attack_pairs.iter().map(|p| p.0).collect();
    let genuine_look: Vec<f32> = genuine_pairs.iter().map(|p| p.1).collect();
    let attack_look: Vec<f32> = attack_pairs.iter().map(|p| p.1).collect();
    let genuine_fit: Vec<f32> = genuine_pairs.iter().map(|p| p.2).collect();
    let attack_fit: Vec<f32> = attack_pairs.iter().map(|p| p.2).collect();
    let flagged = |s: &[Measure]| s.iter().filter(|p| p.3).count() as f64 / s.len().max(1) as f64;
    let quantile = |s: &[f32], q: f64| {
        let mut v = s.to_vec();
        v.sort_by(f32::total_cmp);
        (!v.is_empty()).then(|| percentile(&v, q))
    };
    let report = json!({
        "score_bound_without_patch": q.max_id_photo_similarity,
        "plane_fit_bound": q.max_id_photo_plane_fit,
        "genuine_pairs": genuine_scores.len(),
        "genuine_flagged_rate": flagged(&genuine_pairs),
        "genuine_score_p99": quantile(&genuine_scores, 0.99),
        "genuine_score_p995": quantile(&genuine_scores, 0.995),
        "genuine_score_max": quantile(&genuine_scores, 1.0),
        "attacks_generated": jobs.len(),
        "attacks_with_a_face": attack_scores.len(),
        "attacks_flagged_rate": flagged(&attack_pairs),
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
        "genuine_fit_p99": quantile(&genuine_fit, 0.99),
        "genuine_fit_max": quantile(&genuine_fit, 1.0),
        "attack_fit_p05": quantile(&attack_fit, 0.05),
        "attack_fit_median": quantile(&attack_fit, 0.5),
        "genuine_flagged": measured.iter().filter(|(_, g)| g.3).map(|(p, g)| json!([p.a, p.b, g.2])).collect::<Vec<_>>(),
        "pairs": genuine_pairs.iter().map(|p| json!([p.0, p.1, p.2, "genuine"])).chain(attack_pairs.iter().map(|p| json!([p.0, p.1, p.2, "attack"]))).collect::<Vec<_>>(),
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
