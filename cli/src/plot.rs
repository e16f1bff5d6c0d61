//! PNG plots for people: the ROC curve and the genuine/impostor score histograms.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use crate::metrics::RocPoint;

/// Registers a system TTF (DejaVu or Liberation, from Debian's font packages) for labels, once.
fn fonts() {
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

fn err(e: impl std::fmt::Display) -> anyhow::Error {
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

/// Score histograms of genuine and impostor pairs, with the threshold marked.
pub fn histograms(path: &Path, genuine: &[f32], impostor: &[f32], threshold: f32) -> Result<()> {
    fonts();
    const BINS: usize = 60;
    let (lo, hi) = (-0.4f32, 1.0f32);
    let bin = |s: f32| (((s - lo) / (hi - lo) * BINS as f32) as usize).min(BINS - 1);
    let share = |scores: &[f32]| {
        let mut h = vec![0f64; BINS];
        for &s in scores {
            h[bin(s.clamp(lo, hi))] += 1.0 / scores.len().max(1) as f64;
        }
        h
    };
    let (g, i) = (share(genuine), share(impostor));
    let top = g.iter().chain(&i).copied().fold(0.0, f64::max) * 1.1;
    let root = BitMapBackend::new(path, (800, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Scores: genuine (green) vs impostor (red)", ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(lo as f64..hi as f64, 0.0..top.max(0.01))
        .map_err(err)?;
    chart.configure_mesh().x_desc("cosine similarity").y_desc("share of pairs").draw().map_err(err)?;
    let width = (hi - lo) as f64 / BINS as f64;
    for (h, colour) in [(&i, RED.mix(0.5)), (&g, GREEN.mix(0.5))] {
        chart
            .draw_series(h.iter().enumerate().map(|(k, &v)| {
                let x = lo as f64 + k as f64 * width;
                Rectangle::new([(x, 0.0), (x + width, v)], colour.filled())
            }))
            .map_err(err)?;
    }
    let t = threshold as f64;
    chart.draw_series(LineSeries::new([(t, 0.0), (t, top)], BLACK.stroke_width(2))).map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}
