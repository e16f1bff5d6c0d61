//! Verification metrics from genuine (same-person) and impostor (different-person) scores.

use serde::Serialize;

/// A point of the ROC curve at one threshold.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct RocPoint {
    /// Accept when score >= threshold.
    pub threshold: f32,
    /// False accept (match) rate: impostors accepted / impostors.
    pub far: f64,
    /// True accept rate: genuine accepted / genuine.
    pub tar: f64,
}

/// The ROC curve over every distinct score, from the strictest threshold to the loosest.
pub fn roc(genuine: &[f32], impostor: &[f32]) -> Vec<RocPoint> {
    let mut all: Vec<(f32, bool)> =
        genuine.iter().map(|&s| (s, true)).chain(impostor.iter().map(|&s| (s, false))).collect();
    all.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (ng, ni) = (genuine.len().max(1) as f64, impostor.len().max(1) as f64);
    let mut points = vec![RocPoint { threshold: f32::INFINITY, far: 0.0, tar: 0.0 }];
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut i = 0;
    while i < all.len() {
        let t = all[i].0;
        while i < all.len() && all[i].0 == t {
            if all[i].1 {
                tp += 1
            } else {
                fp += 1
            }
            i += 1;
        }
        points.push(RocPoint { threshold: t, far: fp as f64 / ni, tar: tp as f64 / ng });
    }
    points
}

/// Area under the ROC curve (trapezoids), equal to P(genuine score > impostor score).
pub fn auc(curve: &[RocPoint]) -> f64 {
    curve.windows(2).map(|w| (w[1].far - w[0].far) * (w[1].tar + w[0].tar) / 2.0).sum()
}

/// Equal error rate: where FAR = FRR (1 - TAR), interpolated between ROC points.
pub fn eer(curve: &[RocPoint]) -> f64 {
    for w in curve.windows(2) {
        let (d0, d1) = (w[0].far - (1.0 - w[0].tar), w[1].far - (1.0 - w[1].tar));
        if d0 <= 0.0 && d1 >= 0.0 {
            let t = if d1 - d0 > 0.0 { -d0 / (d1 - d0) } else { 0.0 };
            return w[0].far + t * (w[1].far - w[0].far);
        }
    }
    0.5
}

/// TAR at the largest threshold set whose FAR <= `far`; `None` when there are too few impostors
/// to measure that rate (fewer than 1 / far).
pub fn tar_at_far(curve: &[RocPoint], impostors: usize, far: f64) -> Option<(f64, f32)> {
    if (impostors as f64) < 1.0 / far {
        return None;
    }
    curve.iter().filter(|p| p.far <= far).max_by(|a, b| a.tar.total_cmp(&b.tar)).map(|p| (p.tar, p.threshold))
}

/// Accuracy of `score >= threshold` on labelled scores.
pub fn accuracy(scores: &[(f32, bool)], threshold: f32) -> f64 {
    if scores.is_empty() {
        return 0.0;
    }
    scores.iter().filter(|(s, same)| (*s >= threshold) == *same).count() as f64 / scores.len() as f64
}

/// The threshold with the best accuracy on `scores` (midpoint between neighbouring scores).
pub fn best_threshold(scores: &[(f32, bool)]) -> f32 {
    let mut sorted: Vec<f32> = scores.iter().map(|s| s.0).collect();
    sorted.sort_by(f32::total_cmp);
    sorted.dedup();
    let mut candidates: Vec<f32> = sorted.windows(2).map(|w| (w[0] + w[1]) / 2.0).collect();
    candidates.extend(sorted.first().map(|f| f - 1e-3));
    candidates.extend(sorted.last().map(|l| l + 1e-3));
    candidates
        .into_iter()
        .max_by(|a, b| accuracy(scores, *a).total_cmp(&accuracy(scores, *b)).then(b.total_cmp(a)))
        .unwrap_or(0.0)
}

/// The smallest threshold whose false match rate on `impostor` is at most `fmr`.
pub fn threshold_for_fmr(impostor: &[f32], fmr: f64) -> f32 {
    let mut sorted = impostor.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let allowed = (fmr * sorted.len() as f64).floor() as usize;
    // Accept strictly above the (allowed+1)-th highest impostor score.
    sorted.get(allowed).map_or(f32::NEG_INFINITY, |s| next_up(*s))
}

fn next_up(x: f32) -> f32 {
    if x.is_nan() || x == f32::INFINITY {
        return x;
    }
    let bits = x.to_bits();
    f32::from_bits(if x >= 0.0 {
        bits + 1
    } else if x == -0.0 {
        1
    } else {
        bits - 1
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_separation() {
        let curve = roc(&[0.9, 0.8, 0.7], &[0.1, 0.2, 0.3]);
        assert!((auc(&curve) - 1.0).abs() < 1e-12);
        assert!(eer(&curve) < 1e-12);
        let scores = [(0.9, true), (0.8, true), (0.1, false), (0.3, false)];
        let t = best_threshold(&scores);
        assert!(t > 0.3 && t < 0.8 && accuracy(&scores, t) == 1.0);
    }

    #[test]
    fn random_scores_give_auc_one_half() {
        let g: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.618).fract()).collect();
        let i: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.618 + 0.3).fract()).collect();
        let curve = roc(&g, &i);
        assert!((auc(&curve) - 0.5).abs() < 0.02, "{}", auc(&curve));
        assert!((eer(&curve) - 0.5).abs() < 0.03);
    }

    #[test]
    fn tar_at_far_needs_enough_impostors() {
        let curve = roc(&[0.9, 0.5], &[0.1; 50]);
        assert!(tar_at_far(&curve, 50, 1e-2).is_none());
        let curve = roc(&[0.9, 0.5], &[0.1; 100]);
        assert_eq!(tar_at_far(&curve, 100, 1e-2).map(|x| x.0), Some(1.0));
    }

    #[test]
    fn fmr_threshold_admits_at_most_that_many_impostors() {
        let impostor: Vec<f32> = (0..1000).map(|i| i as f32 / 1000.0).collect();
        let t = threshold_for_fmr(&impostor, 0.01);
        let accepted = impostor.iter().filter(|&&s| s >= t).count();
        assert!(accepted <= 10, "{accepted}");
        assert!(accepted >= 9, "{accepted}");
    }
}
