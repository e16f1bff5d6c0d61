//! `wajah eval-liveness`: the head-turn challenge in ISO/IEC 30107-3 terms. BPCER over labelled
//! real sequences of one person turning; APCER per attack species generated from them.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use image::RgbImage;
use rayon::prelude::*;
use serde_json::{Value, json};
use wajah::{CaptureMode, Engine, FrameReport, Liveness, SeenFrames, Step};

use crate::capture::csv_fields;
use crate::replay::to_jpeg;
use crate::synth::{self, Rng};

/// A bona fide sequence: one person, one photo per step.
pub struct Sequence {
    pub name: String,
    pub steps: Vec<Step>,
    pub files: Vec<PathBuf>,
}

/// What is known of one labelled photo: its direction and its person.
pub struct Label {
    pub direction: String,
    pub identity: String,
}

/// Reads `sequence,step,file` rows (files relative to `root`). Steps a challenge never asks
/// (`look_down`) are left out; every sequence must start `straight` and keep two frames or more.
///
/// # Errors
/// Unreadable file, or a bad row (with its line number).
pub fn read_sequences(path: &Path, root: &Path) -> Result<Vec<Sequence>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out: Vec<Sequence> = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1).filter(|(_, l)| !l.trim().is_empty()) {
        let at = || format!("{}:{}", path.display(), n + 1);
        let f = csv_fields(line);
        let [name, step, file] = f.as_slice() else { bail!("{}: expected sequence,step,file", at()) };
        if step == "look_down" {
            continue;
        }
        let step: Step = step.parse().map_err(|e: String| anyhow::anyhow!("{}: {e}", at()))?;
        match out.last_mut() {
            Some(s) if s.name == *name => {
                s.steps.push(step);
                s.files.push(root.join(file));
            }
            _ => {
                if step != Step::Straight {
                    bail!("{}: sequence {name} must start with a straight photo", at());
                }
                out.push(Sequence { name: name.clone(), steps: vec![step], files: vec![root.join(file)] });
            }
        }
    }
    out.retain(|s| s.steps.len() >= 2);
    if out.is_empty() {
        bail!("{}: no sequence of two frames or more", path.display());
    }
    Ok(out)
}

/// Reads `file,direction,identity,...` rows (files relative to `root`).
///
/// # Errors
/// Unreadable file, or a short row (with its line number).
pub fn read_labels(path: &Path, root: &Path) -> Result<HashMap<PathBuf, Label>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = HashMap::new();
    for (n, line) in text.lines().enumerate().skip(1).filter(|(_, l)| !l.trim().is_empty()) {
        let f = csv_fields(line);
        let [file, direction, identity, ..] = f.as_slice() else {
            bail!("{}:{}: expected file,direction,identity", path.display(), n + 1)
        };
        out.insert(root.join(file), Label { direction: direction.clone(), identity: identity.clone() });
    }
    Ok(out)
}

/// What a check answered.
type Outcome = std::result::Result<Liveness, wajah::Error>;

/// One attempt: the species (or `bona_fide`), its steps and frames.
struct Attempt {
    species: &'static str,
    steps: Vec<Step>,
    frames: Vec<Vec<u8>>,
}

/// The attack species, in report order.
const SPECIES: [&str; 5] =
    ["static_photo", "still_photo_recaptured", "tilted_card", "spliced_identity", "replayed_session"];

/// `wajah eval-liveness`.
pub fn eval_liveness(
    engine: &Engine,
    sequences: &[Sequence],
    labels: &HashMap<PathBuf, Label>,
    per_sequence: usize,
    seed: u64,
    mode: CaptureMode,
    plot: Option<&Path>,
) -> Result<Value> {
    let read = |p: &PathBuf| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    let bona: Vec<Attempt> = sequences
        .iter()
        .map(|s| {
            Ok(Attempt {
                species: "bona_fide",
                steps: s.steps.clone(),
                frames: s.files.iter().map(read).collect::<Result<_>>()?,
            })
        })
        .collect::<Result<_>>()?;
    // Bona fide first, one after another: an accepted session is remembered, as the service does.
    let seen = SeenFrames::default();
    let mut bona_results = Vec::new();
    for (s, a) in sequences.iter().zip(&bona) {
        let outcome = check(engine, a, mode, Some(&seen));
        if let Ok(l) = &outcome
            && l.report.live
        {
            l.remember_in(&seen);
        }
        bona_results.push((s.name.clone(), outcome));
    }

    let mut rng = Rng::new(seed);
    let mut attacks: Vec<Attempt> = Vec::new();
    for (s, a) in sequences.iter().zip(&bona) {
        let n = a.steps.len();
        attacks.push(Attempt {
            species: "static_photo",
            steps: a.steps.clone(),
            frames: vec![a.frames[0].clone(); n],
        });
        let still = image::load_from_memory(&a.frames[0])
            .with_context(|| s.files[0].display().to_string())?
            .to_rgb8();
        for _ in 0..per_sequence {
            let frames = (0..n)
                .map(|_| to_jpeg(&recapture(&still, &mut rng), rng.range(80.0, 95.0) as u8))
                .collect::<Result<_>>()?;
            attacks.push(Attempt { species: "still_photo_recaptured", steps: a.steps.clone(), frames });
            let frames = a
                .steps
                .iter()
                .map(|step| {
                    let (yaw, pitch) = card_pose(*step, &mut rng);
                    to_jpeg(&synth::card(&still, yaw, pitch, &mut rng), rng.range(70.0, 92.0) as u8)
                })
                .collect::<Result<_>>()?;
            attacks.push(Attempt { species: "tilted_card", steps: a.steps.clone(), frames });
            // Another person's photo, turned the same way, in place of one moved frame.
            let k = 1 + rng.below(n - 1);
            let identity = labels.get(&s.files[0]).map(|l| l.identity.as_str());
            let mut others: Vec<&PathBuf> = labels
                .iter()
                .filter(|(_, l)| l.direction == a.steps[k].as_str() && Some(l.identity.as_str()) != identity)
                .map(|(p, _)| p)
                .collect();
            others.sort();
            if !others.is_empty() {
                let mut frames = a.frames.clone();
                frames[k] = read(others[rng.below(others.len())])?;
                attacks.push(Attempt { species: "spliced_identity", steps: a.steps.clone(), frames });
            }
        }
    }
    let replays: Vec<Attempt> = bona
        .iter()
        .zip(&bona_results)
        .filter(|(_, (_, r))| r.as_ref().is_ok_and(|l| l.report.live))
        .flat_map(|(a, _)| {
            let recoded: Vec<Vec<u8>> = a
                .frames
                .iter()
                .filter_map(|f| to_jpeg(&image::load_from_memory(f).ok()?.to_rgb8(), 90).ok())
                .collect();
            [a.frames.clone(), recoded].map(|frames| Attempt {
                species: "replayed_session",
                steps: a.steps.clone(),
                frames,
            })
        })
        .collect();
    let attack_results: Vec<(&'static str, Outcome)> = attacks
        .par_iter()
        .map(|a| (a.species, check(engine, a, mode, None)))
        .chain(replays.par_iter().map(|a| (a.species, check(engine, a, mode, Some(&seen)))))
        .collect();

    let reasons_of = |r: &Outcome| -> Vec<String> {
        match r {
            Ok(l) => l.report.reasons.iter().map(|x| x.as_str().to_string()).collect(),
            Err(e) => vec![format!("error:{}", e.code())],
        }
    };
    let live = |r: &Outcome| r.as_ref().is_ok_and(|l| l.report.live);
    let tally = |results: &mut dyn Iterator<Item = &Outcome>| {
        let (mut n, mut accepted, mut reasons) = (0usize, 0usize, BTreeMap::<String, usize>::new());
        for r in results {
            n += 1;
            accepted += usize::from(live(r));
            for reason in reasons_of(r) {
                *reasons.entry(reason).or_default() += 1;
            }
        }
        (n, accepted, reasons)
    };
    let (bn, baccepted, breasons) = tally(&mut bona_results.iter().map(|(_, r)| r));
    let bpcer = (bn - baccepted) as f64 / bn as f64;
    let mut species = serde_json::Map::new();
    for name in SPECIES {
        let (n, accepted, reasons) =
            tally(&mut attack_results.iter().filter(|(s, _)| *s == name).map(|(_, r)| r));
        let apcer = if n > 0 { accepted as f64 / n as f64 } else { f64::NAN };
        // The accepted attacks frame by frame: what an attack that passes looks like.
        let passed: Vec<Value> = attack_results
            .iter()
            .filter(|(s, r)| *s == name && live(r))
            .map(|(_, r)| json!({ "frames": frames_of(r) }))
            .collect();
        species.insert(
            name.into(),
            json!({ "attacks": n, "accepted": accepted, "apcer": apcer, "reasons": reasons, "passed": passed }),
        );
    }
    // Parallax and plane fit of moved frames: bona fide against the flat card.
    let moved = |value: fn(&FrameReport) -> Option<f32>| {
        let of = move |r: &Outcome| -> Vec<f32> {
            r.as_ref().map(|l| l.report.frames.iter().skip(1).filter_map(value).collect()).unwrap_or_default()
        };
        let bona: Vec<f32> = bona_results.iter().flat_map(|(_, r)| of(r)).collect();
        let card: Vec<f32> =
            attack_results.iter().filter(|(s, _)| *s == "tilted_card").flat_map(|(_, r)| of(r)).collect();
        (bona, card)
    };
    let (bona_parallax, card_parallax) = moved(|f| f.parallax);
    let (bona_fits, card_fits) = moved(|f| f.plane_fit);
    // Every moved frame as (step, yaw and pitch change from the straight frame, parallax, plane
    // fit), for studying the bounds.
    let raw = |r: &Outcome| -> Vec<Value> {
        r.as_ref()
            .map(|l| {
                let first = &l.report.frames[0].pose;
                l.report
                    .frames
                    .iter()
                    .skip(1)
                    .map(|f| {
                        json!([
                            f.step,
                            f.pose.yaw_deg - first.yaw_deg,
                            f.pose.pitch_deg - first.pitch_deg,
                            f.parallax,
                            f.plane_fit
                        ])
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let bona_raw: Vec<Value> = bona_results.iter().flat_map(|(_, r)| raw(r)).collect();
    let card_raw: Vec<Value> =
        attack_results.iter().filter(|(s, _)| *s == "tilted_card").flat_map(|(_, r)| raw(r)).collect();
    let thresholds = engine.config().liveness;
    if let Some(path) = plot {
        crate::plot::parallax(path, &bona_parallax, &card_parallax, thresholds.min_parallax)?;
        crate::plot::plane_fit(&plane_plot_path(path), &bona_fits, &card_fits, thresholds.max_plane_fit)?;
    }
    let quantiles = |v: &[f32]| {
        let mut v = v.to_vec();
        v.sort_by(f32::total_cmp);
        if v.is_empty() {
            return json!({ "n": 0 });
        }
        let q = |p: f64| crate::calibrate::percentile(&v, p);
        json!({ "n": v.len(), "p1": q(0.01), "p5": q(0.05), "median": q(0.5), "p95": q(0.95), "p99": q(0.99) })
    };
    Ok(json!({
        "mode": mode,
        "thresholds": thresholds,
        "match_threshold": engine.threshold(),
        "bona_fide": {
            "sequences": bn, "rejected": bn - baccepted, "bpcer": bpcer, "reasons": breasons,
            "each": bona_results.iter().map(|(name, r)| json!({
                "sequence": name, "live": live(r), "reasons": reasons_of(r), "frames": frames_of(r),
            })).collect::<Vec<_>>(),
        },
        "attacks": species,
        "plane_fit": { "bona_fide_moved_frames": quantiles(&bona_fits), "tilted_card_moved_frames": quantiles(&card_fits) },
        "parallax": { "bona_fide_moved_frames": quantiles(&bona_parallax), "tilted_card_moved_frames": quantiles(&card_parallax) },
        "moved_frames": { "columns": ["step", "yaw_change", "pitch_change", "parallax", "plane_fit"], "bona_fide": bona_raw, "tilted_card": card_raw },
        "seed": seed,
        "per_sequence": per_sequence,
    }))
}

/// The plane-fit plot beside the parallax plot: `parallax.png` -> `parallax_plane_fit.png`.
pub fn plane_plot_path(parallax: &Path) -> PathBuf {
    let stem = parallax.file_stem().map_or("liveness".into(), |s| s.to_string_lossy().into_owned());
    parallax.with_file_name(format!("{stem}_plane_fit.png"))
}

/// Each frame's step, pose, identity score, parallax and plane fit.
fn frames_of(r: &Outcome) -> Vec<Value> {
    r.as_ref()
        .map(|l| {
            l.report
                .frames
                .iter()
                .map(|f| {
                    json!({
                        "step": f.step, "reached": f.reached, "yaw": f.pose.yaw_deg, "pitch": f.pose.pitch_deg,
                        "identity_score": f.identity_score, "parallax": f.parallax, "plane_fit": f.plane_fit,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

fn check(engine: &Engine, a: &Attempt, mode: CaptureMode, seen: Option<&SeenFrames>) -> Outcome {
    let frames: Vec<&[u8]> = a.frames.iter().map(Vec::as_slice).collect();
    engine.check_liveness(&a.steps, &frames, mode, seen)
}

/// The same still photo captured again: a slight zoom and shift and a light change, as a hand-held
/// phone gives between frames.
fn recapture(photo: &RgbImage, rng: &mut Rng) -> RgbImage {
    let (w, h) = photo.dimensions();
    let s = rng.range(0.97, 1.03);
    let (dx, dy) = (rng.range(-3.0, 3.0), rng.range(-3.0, 3.0));
    let gain = rng.range(0.9, 1.1);
    RgbImage::from_fn(w, h, |x, y| {
        let u = ((x as f32 - w as f32 / 2.0 - dx) / s + w as f32 / 2.0).clamp(0.0, w as f32 - 1.0);
        let v = ((y as f32 - h as f32 / 2.0 - dy) / s + h as f32 / 2.0).clamp(0.0, h as f32 - 1.0);
        let p = photo.get_pixel(u as u32, v as u32);
        image::Rgb(p.0.map(|c| (f32::from(c) * gain).clamp(0.0, 255.0) as u8))
    })
}

/// How an attacker turns the card for a step: straight roughly facing the camera, turns 20-50
/// degrees either way about the vertical axis, looking up 20-45 degrees either way about the
/// horizontal one.
fn card_pose(step: Step, rng: &mut Rng) -> (f32, f32) {
    let sign = |rng: &mut Rng| if rng.below(2) == 0 { 1.0 } else { -1.0 };
    match step {
        Step::Straight => (rng.range(-5.0, 5.0), rng.range(-5.0, 5.0)),
        Step::TurnLeft | Step::TurnRight => (sign(rng) * rng.range(20.0, 50.0), rng.range(-5.0, 5.0)),
        Step::LookUp => (rng.range(-5.0, 5.0), sign(rng) * rng.range(20.0, 45.0)),
    }
}
