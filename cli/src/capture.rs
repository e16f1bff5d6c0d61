//! Measuring the capture checks on labelled photos (`wajah eval-capture`), and the labels file
//! that training reads too.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use rayon::prelude::*;
use serde::Serialize;
use serde_json::{Value, json};
use wajah::{Engine, FaceAnalysis, FacePolicy, Occlusion, QualityIssue};

use crate::plot;

/// One labelled photo.
#[derive(Clone, Debug)]
pub struct Labelled {
    pub path: PathBuf,
    /// Eyeglasses, sunglasses, mask, face_occluded (the order of [`Occlusion::ALL`]).
    pub labels: [bool; 4],
}

/// Reads a labels CSV with a header naming `path` (or `file`) and the columns `eyeglasses`,
/// `sunglasses`, `mask`, `face_occluded` (0/1), and optionally `split` and `notes`. Paths are relative
/// to `root`. Rows whose notes start with `EXCLUDE` (not a usable real face: a cartoon, a mannequin)
/// are skipped.
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
    let notes_col = col("notes");
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
        if notes_col.map(field).transpose()?.is_some_and(|n| n.starts_with("EXCLUDE")) {
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
pub fn analyse(engine: &Engine, rows: &[Labelled]) -> Vec<Result<FaceAnalysis>> {
    rows.par_iter()
        .map(|r| {
            let bytes = std::fs::read(&r.path).with_context(|| format!("reading {}", r.path.display()))?;
            engine.analyze_with(&bytes, FacePolicy::Largest).map_err(|e| anyhow!("{}: {e}", r.path.display()))
        })
        .collect()
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
        .filter(|(_, a)| a.quality.issues.iter().any(|i| i.refuses_selfie(engine.config().refuse_eyeglasses)))
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
