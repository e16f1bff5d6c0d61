//! Occlusion checks on the aligned face: eyeglasses, sunglasses, a mask, and anything else over the
//! eyes, nose or mouth.
//!
//! One feature vector per face ([`features`]): gradient-orientation histograms and colour statistics
//! on a grid over the aligned crop (where the landmarks put the eyes, nose and mouth in the same
//! cells for every face) and the recogniser's embedding. Each occlusion is a logistic model over it
//! ([`OcclusionModel`]), trained by `wajah train-occlusion` on labelled real photos and occlusions
//! drawn from the landmarks; the trained file is committed in `models/` and checked by its sha256.

use std::f32::consts::PI;

use image::RgbImage;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Name of the feature layout a model was trained on; [`features`] computes this one.
pub const FEATURES: &str = "wajah-occlusion-features-v2";

/// The trained model shipped with wajah (its sha256 is in the manifest's `[occlusion]` table).
pub const BUILTIN_MODEL: &str = include_str!("../../models/occlusion_v1.json");

/// HOG grid: cells per side and orientation bins per cell.
const HOG_CELLS: usize = 8;
const HOG_BINS: usize = 9;
/// Colour grid: cells per side; each gives r and g chromaticity, relative brightness and contrast.
const COLOUR_CELLS: usize = 6;

/// Length of the image part of the feature vector (the embedding follows it).
pub const IMAGE_FEATURES: usize = HOG_CELLS * HOG_CELLS * HOG_BINS + COLOUR_CELLS * COLOUR_CELLS * 4;

/// Whether feature `i` describes the part of the face where `o` shows: the eye band for glasses,
/// nose and mouth for a mask, everything for other occlusions; the embedding always. A model is
/// fitted on these features only (the others keep weight 0), so that what a photo shows elsewhere
/// (a collar, a crop edge) cannot stand in for the occlusion.
pub fn in_region(o: Occlusion, i: usize) -> bool {
    let hog_len = HOG_CELLS * HOG_CELLS * HOG_BINS;
    // Rows of the grids, as fractions of the crop height: [from, to).
    let (from, to) = match o {
        Occlusion::Eyeglasses | Occlusion::Sunglasses => (0.25, 0.625),
        Occlusion::Mask => (0.5, 1.0),
        Occlusion::FaceOccluded => (0.0, 1.0),
    };
    let row_in = |row: usize, rows: usize| {
        let (top, bottom) = (row as f32 / rows as f32, (row + 1) as f32 / rows as f32);
        bottom > from && top < to
    };
    if i < hog_len {
        row_in(i / (HOG_CELLS * HOG_BINS), HOG_CELLS)
    } else if i < IMAGE_FEATURES {
        row_in((i - hog_len) / (COLOUR_CELLS * 4), COLOUR_CELLS)
    } else {
        true
    }
}

/// Something over the face.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Occlusion {
    /// Clear glasses.
    Eyeglasses,
    /// Dark glasses: the eyes are hidden.
    Sunglasses,
    /// A mask over nose and mouth.
    Mask,
    /// A hand, hair or an object over the eyes, nose or mouth.
    FaceOccluded,
}

impl Occlusion {
    /// Every occlusion, in report order.
    pub const ALL: [Occlusion; 4] =
        [Occlusion::Eyeglasses, Occlusion::Sunglasses, Occlusion::Mask, Occlusion::FaceOccluded];

    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Occlusion::Eyeglasses => "eyeglasses",
            Occlusion::Sunglasses => "sunglasses",
            Occlusion::Mask => "mask",
            Occlusion::FaceOccluded => "face_occluded",
        }
    }
}

/// Probability of each occlusion (0-1).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Occlusions {
    /// Clear glasses.
    pub eyeglasses: f32,
    /// Dark glasses.
    pub sunglasses: f32,
    /// Mask over nose and mouth.
    pub mask: f32,
    /// Other occlusion of eyes, nose or mouth.
    pub face_occluded: f32,
}

impl Occlusions {
    /// The probability of `o`.
    pub fn get(&self, o: Occlusion) -> f32 {
        match o {
            Occlusion::Eyeglasses => self.eyeglasses,
            Occlusion::Sunglasses => self.sunglasses,
            Occlusion::Mask => self.mask,
            Occlusion::FaceOccluded => self.face_occluded,
        }
    }

    fn set(&mut self, o: Occlusion, p: f32) {
        match o {
            Occlusion::Eyeglasses => self.eyeglasses = p,
            Occlusion::Sunglasses => self.sunglasses = p,
            Occlusion::Mask => self.mask = p,
            Occlusion::FaceOccluded => self.face_occluded = p,
        }
    }
}

/// One logistic model: `p = sigmoid(weights . standardised(x) + bias)`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Head {
    /// What it detects.
    pub occlusion: Occlusion,
    /// One weight per feature (standardised features).
    pub weights: Vec<f32>,
    /// Intercept.
    pub bias: f32,
}

/// The trained occlusion models and the feature standardisation they share.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OcclusionModel {
    /// Feature layout ([`FEATURES`]).
    pub features: String,
    /// Recogniser whose embeddings are part of the features.
    pub recognizer: String,
    /// Feature means (subtracted before the weights).
    pub mean: Vec<f32>,
    /// Feature scales (divided before the weights).
    pub scale: Vec<f32>,
    /// One model per occlusion.
    pub heads: Vec<Head>,
    /// How it was trained: command, seed, data and counts (free-form, for people).
    #[serde(default)]
    pub training: serde_json::Value,
}

impl OcclusionModel {
    /// Parses and checks a model file.
    ///
    /// # Errors
    /// [`Error::Model`] when it is malformed or its vectors disagree in length.
    pub fn parse(text: &str) -> Result<Self> {
        let m: OcclusionModel = serde_json::from_str(text).map_err(|e| model_error(format!("{e}")))?;
        let n = m.mean.len();
        let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
        if m.features != FEATURES {
            return Err(model_error(format!("features {:?}, expected {FEATURES:?}", m.features)));
        }
        if n <= IMAGE_FEATURES
            || m.scale.len() != n
            || !finite(&m.mean)
            || !m.scale.iter().all(|s| s.is_finite() && *s > 0.0)
            || m.heads.iter().any(|h| h.weights.len() != n || !finite(&h.weights) || !h.bias.is_finite())
        {
            return Err(model_error("vectors of the wrong length or not finite".into()));
        }
        Ok(m)
    }

    /// The built-in model, checked against `sha256` (hex).
    ///
    /// # Errors
    /// [`Error::Model`] when the checksum differs or the file is malformed.
    pub fn builtin(sha256: &str) -> Result<Self> {
        let found = hex::encode(Sha256::digest(BUILTIN_MODEL.as_bytes()));
        if !found.eq_ignore_ascii_case(sha256) {
            return Err(model_error(format!("sha256 {found}, the manifest says {sha256}")));
        }
        Self::parse(BUILTIN_MODEL)
    }

    /// Embedding length the model expects.
    pub fn embedding_dim(&self) -> usize {
        self.mean.len() - IMAGE_FEATURES
    }

    /// Probabilities for one feature vector (see [`features`]); zeros if its length is wrong.
    pub fn predict(&self, x: &[f32]) -> Occlusions {
        let mut out = Occlusions::default();
        if x.len() != self.mean.len() {
            return out;
        }
        for head in &self.heads {
            let z = head.bias
                + head
                    .weights
                    .iter()
                    .zip(x)
                    .zip(self.mean.iter().zip(&self.scale))
                    .map(|((w, v), (m, s))| w * (v - m) / s)
                    .sum::<f32>();
            out.set(head.occlusion, sigmoid(z));
        }
        out
    }
}

fn model_error(reason: String) -> Error {
    Error::Model { path: std::path::PathBuf::from("models/occlusion_v1.json"), reason }
}

/// The logistic function.
pub fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// The feature vector of an aligned face crop and its embedding (any length; L2-normalised here).
pub fn features(crop: &RgbImage, embedding: &[f32]) -> Vec<f32> {
    let (w, h) = (crop.width() as usize, crop.height() as usize);
    let mut out = Vec::with_capacity(IMAGE_FEATURES + embedding.len());
    if w < 3 || h < 3 {
        out.resize(IMAGE_FEATURES, 0.0);
    } else {
        let raw = crop.as_raw();
        let px = |x: usize, y: usize| {
            let o = (y * w + x) * 3;
            [f32::from(raw[o]), f32::from(raw[o + 1]), f32::from(raw[o + 2])]
        };
        let grey: Vec<f32> = (0..w * h)
            .map(|i| {
                let [r, g, b] = px(i % w, i / w);
                0.299 * r + 0.587 * g + 0.114 * b
            })
            .collect();
        let padding: Vec<bool> = raw.chunks_exact(3).map(|p| p == [0, 0, 0]).collect();
        hog(&grey, &padding, w, h, &mut out);
        colour(&grey, &padding, w, h, &px, &mut out);
    }
    let norm = embedding.iter().map(|v| v * v).sum::<f32>().sqrt();
    let norm = if norm > 0.0 && norm.is_finite() { norm } else { 1.0 };
    out.extend(embedding.iter().map(|v| v / norm));
    out
}

/// Side of the [`appearance`] grid.
pub const APPEARANCE_SIDE: usize = 28;

/// The look of an aligned crop, for telling a re-photographed photo from a new capture: grey
/// levels averaged over a 28x28 grid (blur and JPEG change little at this scale), with their mean
/// removed and scaled to unit length (so brightness and contrast changes cancel). Two crops of the
/// same photo give a dot product near 1; two captures of one face differ in expression, light and
/// pose, and score lower. Cells that fall outside the photo count as 0 in both.
pub fn appearance(crop: &RgbImage) -> Vec<f32> {
    let (w, h) = (crop.width() as usize, crop.height() as usize);
    let n = APPEARANCE_SIDE;
    let mut sums = vec![(0.0f32, 0u32); n * n];
    for (x, y, p) in crop.enumerate_pixels() {
        if p.0 == [0, 0, 0] {
            continue;
        }
        let (x, y) = (x as usize, y as usize);
        let cell = &mut sums[(y * n / h.max(1)) * n + x * n / w.max(1)];
        cell.0 += 0.299 * f32::from(p.0[0]) + 0.587 * f32::from(p.0[1]) + 0.114 * f32::from(p.0[2]);
        cell.1 += 1;
    }
    let filled: Vec<Option<f32>> = sums.iter().map(|(s, c)| (*c > 0).then(|| s / *c as f32)).collect();
    let count = filled.iter().flatten().count().max(1) as f32;
    let mean = filled.iter().flatten().sum::<f32>() / count;
    let mut v: Vec<f32> = filled.iter().map(|c| c.map_or(0.0, |g| g - mean)).collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// Histograms of gradient orientation (unsigned, magnitude-weighted, split between the two nearest
/// bins) per cell, each normalised by the gradient energy of its 3x3 cell neighbourhood.
fn hog(grey: &[f32], padding: &[bool], w: usize, h: usize, out: &mut Vec<f32>) {
    let mut cells = vec![[0.0f32; HOG_BINS]; HOG_CELLS * HOG_CELLS];
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            // Pixels the alignment filled in from outside the photo are exactly black: gradients
            // that touch them describe the photo's edge, not the face.
            let around = [y * w + x + 1, y * w + x - 1, (y + 1) * w + x, (y - 1) * w + x];
            if around.iter().any(|&i| padding[i]) {
                continue;
            }
            let gx = grey[y * w + x + 1] - grey[y * w + x - 1];
            let gy = grey[(y + 1) * w + x] - grey[(y - 1) * w + x];
            let mag = (gx * gx + gy * gy).sqrt();
            if mag == 0.0 {
                continue;
            }
            let angle = gy.atan2(gx).rem_euclid(PI);
            let pos = angle / PI * HOG_BINS as f32 - 0.5;
            let lo = pos.floor();
            let frac = pos - lo;
            let b0 = (lo as i32).rem_euclid(HOG_BINS as i32) as usize;
            let b1 = (b0 + 1) % HOG_BINS;
            let cell = &mut cells[(y * HOG_CELLS / h) * HOG_CELLS + x * HOG_CELLS / w];
            cell[b0] += mag * (1.0 - frac);
            cell[b1] += mag * frac;
        }
    }
    let energy: Vec<f32> = cells.iter().map(|c| c.iter().map(|v| v * v).sum()).collect();
    for cy in 0..HOG_CELLS {
        for cx in 0..HOG_CELLS {
            let mut e = 0.0;
            for ny in cy.saturating_sub(1)..(cy + 2).min(HOG_CELLS) {
                for nx in cx.saturating_sub(1)..(cx + 2).min(HOG_CELLS) {
                    e += energy[ny * HOG_CELLS + nx];
                }
            }
            let norm = (e + 1.0).sqrt();
            out.extend(cells[cy * HOG_CELLS + cx].iter().map(|v| 3.0 * v / norm));
        }
    }
}

/// Per cell: r and g chromaticity, mean grey over the crop's mean grey, and grey standard
/// deviation over the crop's mean grey.
fn colour(
    grey: &[f32],
    padding: &[bool],
    w: usize,
    h: usize,
    px: &dyn Fn(usize, usize) -> [f32; 3],
    out: &mut Vec<f32>,
) {
    let n = COLOUR_CELLS * COLOUR_CELLS;
    let mut sums = vec![[0.0f64; 6]; n];
    for y in 0..h {
        for x in 0..w {
            if padding[y * w + x] {
                continue;
            }
            let [r, g, b] = px(x, y);
            let total = r + g + b + 1.0;
            let v = grey[y * w + x];
            let s = &mut sums[(y * COLOUR_CELLS / h) * COLOUR_CELLS + x * COLOUR_CELLS / w];
            s[0] += f64::from(r / total);
            s[1] += f64::from(g / total);
            s[2] += f64::from(v);
            s[3] += f64::from(v) * f64::from(v);
            s[4] += 1.0;
        }
    }
    let inside = padding.iter().filter(|p| !**p).count().max(1);
    let mean_grey = grey.iter().zip(padding).filter(|(_, p)| !**p).map(|(v, _)| f64::from(*v)).sum::<f64>()
        / inside as f64
        + 1.0;
    for s in &sums {
        let count = s[4].max(1.0);
        let mean = s[2] / count;
        let var = (s[3] / count - mean * mean).max(0.0);
        out.push((s[0] / count) as f32);
        out.push((s[1] / count) as f32);
        out.push((mean / mean_grey) as f32);
        out.push((var.sqrt() / mean_grey) as f32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_feature_vector_has_a_fixed_length_and_is_finite() {
        let crop = RgbImage::from_fn(112, 112, |x, y| image::Rgb([(x * 2) as u8, (y * 2) as u8, 90]));
        let f = features(&crop, &[3.0, 4.0]);
        assert_eq!(f.len(), IMAGE_FEATURES + 2);
        assert!(f.iter().all(|v| v.is_finite()));
        assert_eq!(&f[IMAGE_FEATURES..], &[0.6, 0.8]);
        // Degenerate crops and embeddings still give a vector of the same length.
        let f = features(&RgbImage::new(1, 1), &[0.0, 0.0]);
        assert_eq!(f.len(), IMAGE_FEATURES + 2);
        assert!(f.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn the_builtin_model_matches_the_feature_layout() {
        let m = OcclusionModel::parse(BUILTIN_MODEL).expect("built-in model parses");
        assert_eq!(m.heads.len(), Occlusion::ALL.len());
        for o in Occlusion::ALL {
            assert!(m.heads.iter().any(|h| h.occlusion == o), "no head for {o:?}");
        }
    }

    #[test]
    fn malformed_models_are_refused() {
        assert!(OcclusionModel::parse("{}").is_err());
        let mut m = OcclusionModel::parse(BUILTIN_MODEL).expect("parses");
        m.scale[0] = 0.0;
        let text = serde_json::to_string(&m).expect("serialises");
        assert!(OcclusionModel::parse(&text).is_err());
    }
}
