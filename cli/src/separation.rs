//! `wajah plot-separation`: genuine/impostor separation (d') against the ID photos' eye distance,
//! from `wajah eval` reports (say a `--degrade-a scale=...` sweep), one line per series.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use plotters::prelude::*;
use serde_json::{Value, json};

use crate::plot::{err, fonts};

/// One line of the plot: a name and its reports.
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub reports: Vec<PathBuf>,
}

impl std::str::FromStr for Series {
    type Err = String;

    /// `name=report.json,report.json,...`
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, files) =
            s.split_once('=').ok_or_else(|| format!("{s:?} is not name=report,report,..."))?;
        let reports: Vec<PathBuf> = files.split(',').filter(|f| !f.is_empty()).map(PathBuf::from).collect();
        if name.is_empty() || reports.is_empty() {
            return Err(format!("{s:?}: a series needs a name and at least one report"));
        }
        Ok(Self { name: name.into(), reports })
    }
}

/// (A photos' median eye distance, d', 10-fold accuracy, failures to acquire) of one report.
fn point(path: &Path) -> Result<(f64, f64, f64, u64)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let r: Value = serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    let get = |v: &Value, what: &str| v.as_f64().ok_or_else(|| anyhow!("{}: no {what}", path.display()));
    Ok((
        get(&r["eye_distance_median_px"]["a"], "eye_distance_median_px.a")?,
        get(&r["separation"]["d_prime"], "separation.d_prime")?,
        get(&r["ten_fold"]["accuracy_mean"], "ten_fold.accuracy_mean")?,
        r["failure_to_acquire"].as_u64().unwrap_or(0),
    ))
}

/// Draws d' against eye distance for every series to `out` and returns the points.
pub fn plot(series: &[Series], out: &Path) -> Result<Value> {
    if series.is_empty() {
        bail!("give at least one --series name=report,report,...");
    }
    let mut lines = Vec::new();
    for s in series {
        let mut pts = s.reports.iter().map(|p| point(p)).collect::<Result<Vec<_>>>()?;
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        lines.push((s.name.clone(), pts));
    }
    let all = lines.iter().flat_map(|l| l.1.iter());
    let (x_max, y_max) = all.fold((1.0f64, 1.0f64), |(x, y), p| (x.max(p.0), y.max(p.1)));
    fonts();
    let root = BitMapBackend::new(out, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("genuine/impostor separation against eye distance", ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max * 1.05, 0.0..y_max * 1.1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("median eye distance of the degraded photos (px)")
        .y_desc("d' (genuine vs impostor scores)")
        .draw()
        .map_err(err)?;
    for (k, (name, pts)) in lines.iter().enumerate() {
        let colour = Palette99::pick(k).to_rgba();
        chart
            .draw_series(LineSeries::new(pts.iter().map(|p| (p.0, p.1)), colour.stroke_width(2)))
            .map_err(err)?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
        chart.draw_series(pts.iter().map(|p| Circle::new((p.0, p.1), 4, colour.filled()))).map_err(err)?;
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(json!(
        lines
            .iter()
            .map(|(name, pts)| json!({
                "series": name,
                "points": pts.iter().map(|p| json!({
                    "eye_distance_px": p.0, "d_prime": p.1, "ten_fold_accuracy": p.2, "failure_to_acquire": p.3,
                })).collect::<Vec<_>>(),
            }))
            .collect::<Vec<_>>()
    ))
}
