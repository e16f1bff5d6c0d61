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

/// A point of the DET curve (ISO/IEC 19795-1 terms) at one threshold.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct DetPoint {
    /// Match when score >= threshold.
    pub threshold: f32,
    /// False match rate: impostor comparisons that match / impostor comparisons.
    pub fmr: f64,
    /// False non-match rate: genuine comparisons that do not match / genuine comparisons.
    pub fnmr: f64,
}

/// Counts of (threshold, genuine matched, impostors matched) at every distinct score, from the
/// strictest threshold (+inf, nothing matches) to the loosest (the lowest score, everything matches).
fn sweep(genuine: &[f32], impostor: &[f32]) -> Vec<(f32, usize, usize)> {
    let mut all: Vec<(f32, bool)> =
        genuine.iter().map(|&s| (s, true)).chain(impostor.iter().map(|&s| (s, false))).collect();
    all.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut steps = vec![(f32::INFINITY, 0, 0)];
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
        steps.push((t, tp, fp));
    }
    steps
}

/// The ROC curve over every distinct score, from the strictest threshold to the loosest.
pub fn roc(genuine: &[f32], impostor: &[f32]) -> Vec<RocPoint> {
    let (ng, ni) = (genuine.len().max(1) as f64, impostor.len().max(1) as f64);
    sweep(genuine, impostor)
        .into_iter()
        .map(|(threshold, tp, fp)| RocPoint { threshold, far: fp as f64 / ni, tar: tp as f64 / ng })
        .collect()
}

/// The DET curve over every distinct score, from the strictest threshold to the loosest; each rate is
/// a ratio of counts, equal to [`fmr`] and [`fnmr`] at the point's threshold.
pub fn det(genuine: &[f32], impostor: &[f32]) -> Vec<DetPoint> {
    sweep(genuine, impostor)
        .into_iter()
        .map(|(threshold, tp, fp)| DetPoint {
            threshold,
            fmr: ratio(fp, impostor.len()),
            fnmr: ratio(genuine.len() - tp, genuine.len()),
        })
        .collect()
}

/// `count / total`; NaN (null in JSON) for an empty list.
fn ratio(count: usize, total: usize) -> f64 {
    count as f64 / total as f64
}

/// False match rate at `threshold`: the share of impostor scores >= threshold.
pub fn fmr(impostor: &[f32], threshold: f32) -> f64 {
    ratio(impostor.iter().filter(|&&s| s >= threshold).count(), impostor.len())
}

/// False non-match rate at `threshold`: the share of genuine scores < threshold.
pub fn fnmr(genuine: &[f32], threshold: f32) -> f64 {
    ratio(genuine.iter().filter(|&&s| s < threshold).count(), genuine.len())
}

/// The DET point at one threshold (the operating point).
pub fn at_threshold(genuine: &[f32], impostor: &[f32], threshold: f32) -> DetPoint {
    DetPoint { threshold, fmr: fmr(impostor, threshold), fnmr: fnmr(genuine, threshold) }
}

/// Impostor comparisons needed to estimate a false match rate of `fmr`: about 3 / fmr (the rule of
/// three: with n comparisons and no false match, the 95% upper bound of the FMR is about 3 / n).
pub fn min_impostors(fmr: f64) -> usize {
    (3.0 / fmr).round() as usize
}

/// FNMR at the loosest threshold whose FMR is at most `target` (the smallest FNMR such a threshold
/// allows). `Err(reason)` when there are fewer impostor scores than [`min_impostors`] or no genuine ones.
pub fn fnmr_at_fmr(genuine: &[f32], impostor: &[f32], target: f64) -> Result<DetPoint, String> {
    let needed = min_impostors(target);
    if impostor.len() < needed {
        return Err(format!(
            "{} impostor pairs cannot estimate FMR {target:e}: that needs at least {needed} (3/FMR)",
            impostor.len()
        ));
    }
    if genuine.is_empty() {
        return Err("no genuine pairs".into());
    }
    Ok(at_threshold(genuine, impostor, threshold_for_fmr(impostor, target)))
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
    // The epsilon keeps a product such as 0.3 * 10 (2.9999999999999996 in binary) at 3.
    let allowed = (fmr * sorted.len() as f64 + 1e-9).floor() as usize;
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

/// Mean and standard deviation of genuine and impostor scores, and the decidability index
/// d' = |mean_g - mean_i| / sqrt((var_g + var_i) / 2): how far apart the two distributions are.
pub fn separation(genuine: &[f32], impostor: &[f32]) -> serde_json::Value {
    let stats = |v: &[f32]| {
        let n = v.len().max(1) as f64;
        let mean = v.iter().map(|&s| f64::from(s)).sum::<f64>() / n;
        let var = v.iter().map(|&s| (f64::from(s) - mean).powi(2)).sum::<f64>() / n;
        (mean, var)
    };
    let ((mg, vg), (mi, vi)) = (stats(genuine), stats(impostor));
    let spread = ((vg + vi) / 2.0).sqrt();
    let d_prime = if spread > 0.0 { (mg - mi).abs() / spread } else { f64::INFINITY };
    serde_json::json!({
        "genuine_mean": mg,
        "genuine_std": vg.sqrt(),
        "impostor_mean": mi,
        "impostor_std": vi.sqrt(),
        "d_prime": if d_prime.is_finite() { serde_json::json!(d_prime) } else { serde_json::Value::Null },
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
    fn fmr_threshold_admits_at_most_that_many_impostors() {
        let impostor: Vec<f32> = (0..1000).map(|i| i as f32 / 1000.0).collect();
        let t = threshold_for_fmr(&impostor, 0.01);
        let accepted = impostor.iter().filter(|&&s| s >= t).count();
        assert!(accepted <= 10, "{accepted}");
        assert!(accepted >= 9, "{accepted}");
    }

    #[test]
    fn a_score_equal_to_the_threshold_is_a_match() {
        let (genuine, impostor) = ([0.2, 0.5, 0.5, 0.9], [0.1, 0.3, 0.5]);
        assert_eq!(fmr(&impostor, 0.5), 1.0 / 3.0);
        assert_eq!(fnmr(&genuine, 0.5), 1.0 / 4.0);
        assert_eq!(fmr(&impostor, 0.51), 0.0);
        assert_eq!(fnmr(&genuine, 0.51), 3.0 / 4.0);
    }

    #[test]
    fn det_points_are_the_rates_at_their_thresholds() {
        let (genuine, impostor) = ([0.2, 0.5, 0.5, 0.9], [0.1, 0.3, 0.5]);
        let curve = det(&genuine, &impostor);
        let expected = [
            (f32::INFINITY, 0.0, 1.0),
            (0.9, 0.0, 0.75),
            (0.5, 1.0 / 3.0, 0.25),
            (0.3, 2.0 / 3.0, 0.25),
            (0.2, 2.0 / 3.0, 0.0),
            (0.1, 1.0, 0.0),
        ];
        let got: Vec<(f32, f64, f64)> = curve.iter().map(|p| (p.threshold, p.fmr, p.fnmr)).collect();
        assert_eq!(got, expected);
        for p in curve {
            assert_eq!(p, at_threshold(&genuine, &impostor, p.threshold));
        }
    }

    /// Impostor scores 0, 1, ..., 2999. FMR 1e-2 allows the 30 highest (2970..=2999), so the threshold
    /// lies just above 2969; FMR 1e-3 allows the 3 highest, so it lies just above 2996.
    #[test]
    fn fnmr_at_fmr_on_known_scores() {
        let impostor: Vec<f32> = (0..3000).map(|i| i as f32).collect();
        let genuine = [2960.0, 2969.0, 2969.5, 2970.0, 2996.0, 2996.5, 2998.0, 3010.0];
        let p = fnmr_at_fmr(&genuine, &impostor, 1e-2).expect("3000 impostors resolve FMR 1e-2");
        assert!(p.threshold > 2969.0 && p.threshold < 2969.5, "{}", p.threshold);
        assert_eq!((p.fmr, p.fnmr), (0.01, 2.0 / 8.0));
        let p = fnmr_at_fmr(&genuine, &impostor, 1e-3).expect("3000 impostors resolve FMR 1e-3");
        assert!(p.threshold > 2996.0 && p.threshold < 2996.5, "{}", p.threshold);
        assert_eq!((p.fmr, p.fnmr), (0.001, 5.0 / 8.0));
        assert!(fnmr_at_fmr(&genuine, &impostor, 1e-4).is_err(), "3000 < 30000 impostors");
    }

    /// Twenty impostors tie at the top: admitting any of them would exceed FMR 1e-2, so none is.
    #[test]
    fn fnmr_at_fmr_never_exceeds_the_target_on_ties() {
        let impostor: Vec<f32> = [0.7; 20].into_iter().chain([0.1; 980]).collect();
        let genuine = [0.6, 0.7, 0.8, 0.9];
        let p = fnmr_at_fmr(&genuine, &impostor, 1e-2).expect("resolvable");
        assert_eq!((p.fmr, p.fnmr), (0.0, 0.5));
    }

    #[test]
    fn fnmr_at_fmr_needs_three_over_fmr_impostors() {
        let genuine = [0.9];
        let reason = fnmr_at_fmr(&genuine, &[0.1; 299], 1e-2).expect_err("299 < 300");
        assert!(reason.contains("299") && reason.contains("300"), "{reason}");
        assert!(fnmr_at_fmr(&genuine, &[0.1; 300], 1e-2).is_ok());
        assert_eq!(min_impostors(1e-3), 3000);
        assert_eq!(min_impostors(1e-4), 30000);
    }
}
