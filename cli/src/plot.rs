//! PNG plots for people: the ROC and DET curves and the genuine/impostor score histograms.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use crate::metrics::{DetPoint, RocPoint};

/// Registers a system TTF (DejaVu or Liberation, from Debian's font packages) for labels, once.
pub(crate) fn fonts() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for path in [
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        ] {
            if let Ok(bytes) = std::fs::read(path) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return;
                }
            }
        }
    });
}

pub(crate) fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("plot: {e}")
}

/// ROC: true accept rate against false accept rate (log scale).
pub fn roc(path: &Path, curve: &[RocPoint]) -> Result<()> {
    fonts();
    let root = BitMapBackend::new(path, (800, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let min_far = curve.iter().map(|p| p.far).filter(|f| *f > 0.0).fold(1.0f64, f64::min).max(1e-5);
    let mut chart = ChartBuilder::on(&root)
        .caption("ROC", ("sans-serif", 28))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d((min_far / 2.0..1.0).log_scale(), 0.0..1.0)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("false accept rate (log)")
        .y_desc("true accept rate")
        .draw()
        .map_err(err)?;
    chart
        .draw_series(LineSeries::new(
            curve.iter().filter(|p| p.far > 0.0).map(|p| (p.far, p.tar)),
            BLUE.stroke_width(2),
        ))
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// Tick label of a decade on a log axis (`1e-3`, `1`), or `0` at `edge`, where rates of 0 are drawn.
fn decade_label(v: f64, edge: f64) -> String {
    let k = v.log10().round() as i32;
    if v <= edge * 1.001 {
        "0".into()
    } else if k == 0 {
        "1".into()
    } else {
        format!("1e{k}")
    }
}

/// A rate for a legend: `0`, `0.123` or `4.6e-4`.
fn rate(r: f64) -> String {
    if r == 0.0 {
        "0".into()
    } else if r >= 0.01 {
        format!("{r:.3}")
    } else {
        format!("{r:.1e}")
    }
}

/// DET (ISO/IEC 19795-1): FNMR against FMR, both on log axes with a tick at every decade, the
/// operating point at `operating.threshold` marked. A log axis has no 0, so rates of 0 are drawn on
/// the edge one decade below the smallest non-zero rate the pair counts allow, labelled `0`.
pub fn det(
    path: &Path,
    curve: &[DetPoint],
    operating: DetPoint,
    eer: f64,
    (genuine, impostors): (usize, usize),
) -> Result<()> {
    fonts();
    let smallest = 1.0 / genuine.max(impostors).max(1) as f64;
    let lowest = smallest.log10().floor() as i32 - 1;
    let edge = 10f64.powi(lowest);
    let decades: Vec<f64> = (lowest..=0).map(|k| 10f64.powi(k)).collect();
    // No minor lines between the edge (0) and the smallest rate the counts allow.
    let minor: Vec<f64> =
        decades[1..decades.len() - 1].iter().flat_map(|&d| (2..10).map(move |m| d * m as f64)).collect();
    let axis = || (edge..1.0).log_scale().with_key_points(decades.clone()).with_light_points(minor.clone());
    let at = |p: &DetPoint| (p.fmr.max(edge), p.fnmr.max(edge));

    let root = BitMapBackend::new(path, (800, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("DET: {genuine} genuine, {impostors} impostor pairs"), ("sans-serif", 26))
        .margin(20)
        .x_label_area_size(60)
        .y_label_area_size(70)
        .build_cartesian_2d(axis(), axis())
        .map_err(err)?;
    let label = |v: &f64| decade_label(*v, edge);
    chart
        .configure_mesh()
        .x_desc("FMR (false match rate)")
        .y_desc("FNMR (false non-match rate)")
        .x_label_formatter(&label)
        .y_label_formatter(&label)
        .axis_desc_style(("sans-serif", 20))
        .label_style(("sans-serif", 16))
        .light_line_style(RGBColor(225, 225, 225))
        .bold_line_style(RGBColor(185, 185, 185))
        .draw()
        .map_err(err)?;
    let grey = RGBColor(120, 120, 120);
    chart
        .draw_series(DashedLineSeries::new([(edge, edge), (1.0, 1.0)], 6, 6, grey.stroke_width(1)))
        .map_err(err)?
        .label(format!("FMR = FNMR (EER {})", rate(eer)))
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], grey.stroke_width(1)));
    chart
        .draw_series(LineSeries::new(curve.iter().map(at), BLUE.stroke_width(2)))
        .map_err(err)?
        .label("DET curve")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 24, y)], BLUE.stroke_width(2)));
    chart
        .draw_series([Circle::new(at(&operating), 7, RED.filled())])
        .map_err(err)?
        .label(format!(
            "threshold {:.3}: FMR {}, FNMR {}",
            operating.threshold,
            rate(operating.fmr),
            rate(operating.fnmr)
        ))
        .legend(|(x, y)| Circle::new((x + 12, y), 6, RED.filled()));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 17))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// Score histograms of genuine and impostor pairs, with the threshold marked.
pub fn histograms(path: &Path, genuine: &[f32], impostor: &[f32], threshold: f32) -> Result<()> {
    let caption = "Scores: genuine (green) vs impostor (red)";
    two_histograms(
        path,
        caption,
        ("cosine similarity", "share of pairs"),
        (-0.4, 1.0),
        genuine,
        impostor,
        threshold,
    )
}

/// Nose parallax of the moved frames: real head turns against a flat card turned in front of the
/// camera, with the liveness bound marked.
pub fn parallax(path: &Path, bona_fide: &[f32], card: &[f32], bound: f32) -> Result<()> {
    let caption = "Nose parallax: real head turns (green) vs a turned flat card (red)";
    two_histograms(
        path,
        caption,
        ("parallax (eye distances)", "share of moved frames"),
        (0.0, 0.4),
        bona_fide,
        card,
        bound,
    )
}

/// Plane fit of moved frames against the straight one: real head turns against a turned flat card.
pub fn plane_fit(path: &Path, bona_fide: &[f32], card: &[f32], bound: f32) -> Result<()> {
    let caption = "Plane fit: real head turns (green) vs a turned flat card (red)";
    two_histograms(
        path,
        caption,
        ("correlation after the best homography", "share of moved frames"),
        (0.5, 1.0),
        bona_fide,
        card,
        bound,
    )
}

/// Two normalised histograms over `range` (green `good`, red `bad`) and a vertical line at `line`.
fn two_histograms(
    path: &Path,
    caption: &str,
    (x_desc, y_desc): (&str, &str),
    (lo, hi): (f32, f32),
    good: &[f32],
    bad: &[f32],
    line: f32,
) -> Result<()> {
    fonts();
    const BINS: usize = 60;
    let bin = |s: f32| (((s - lo) / (hi - lo) * BINS as f32) as usize).min(BINS - 1);
    let share = |scores: &[f32]| {
        let mut h = vec![0f64; BINS];
        for &s in scores {
            h[bin(s.clamp(lo, hi))] += 1.0 / scores.len().max(1) as f64;
        }
        h
    };
    let (g, i) = (share(good), share(bad));
    let top = g.iter().chain(&i).copied().fold(0.0, f64::max) * 1.1;
    let root = BitMapBackend::new(path, (800, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(lo as f64..hi as f64, 0.0..top.max(0.01))
        .map_err(err)?;
    chart.configure_mesh().x_desc(x_desc).y_desc(y_desc).draw().map_err(err)?;
    let width = (hi - lo) as f64 / BINS as f64;
    for (h, colour) in [(&i, RED.mix(0.5)), (&g, GREEN.mix(0.5))] {
        chart
            .draw_series(h.iter().enumerate().map(|(k, &v)| {
                let x = lo as f64 + k as f64 * width;
                Rectangle::new([(x, 0.0), (x + width, v)], colour.filled())
            }))
            .map_err(err)?;
    }
    let t = line as f64;
    chart.draw_series(LineSeries::new([(t, 0.0), (t, top)], BLACK.stroke_width(2))).map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// Capture checks: precision and recall per problem as bars, the compliant rejection rate in the
/// caption.
pub fn capture_bars(path: &Path, bars: &[(String, f64, f64)], compliant_rejected: f64) -> Result<()> {
    fonts();
    let root = BitMapBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let n = bars.len().max(1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Capture checks: precision (blue), recall (green); compliant rejected {:.1}%",
                100.0 * compliant_rejected
            ),
            ("sans-serif", 20),
        )
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..n, 0.0..1.05)
        .map_err(err)?;
    chart.configure_mesh().x_labels(0).disable_x_mesh().y_desc("rate").draw().map_err(err)?;
    // Each problem's name above its pair of bars.
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (name, _, _))| {
            Text::new(name.clone(), (i as f64 + 0.2, 1.03), ("sans-serif", 16).into_font())
        }))
        .map_err(err)?;
    let value = |v: f64| if v.is_finite() { v } else { 0.0 };
    chart
        .draw_series(bars.iter().enumerate().flat_map(|(i, (_, p, r))| {
            let x = i as f64;
            [
                Rectangle::new([(x + 0.15, 0.0), (x + 0.5, value(*p))], BLUE.mix(0.7).filled()),
                Rectangle::new([(x + 0.5, 0.0), (x + 0.85, value(*r))], GREEN.mix(0.7).filled()),
            ]
        }))
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}
