//! Alignment: a 5-point similarity transform onto the ArcFace 112x112 template.

use image::RgbImage;

use crate::detect::{Face, Point};
use crate::error::{Error, Result};
use crate::warp::{Affine, warp_affine};

/// Where the five landmarks go in a 112x112 crop (the ArcFace / SFace template).
pub const TEMPLATE_112: [Point; 5] = [
    Point { x: 38.2946, y: 51.6963 },
    Point { x: 73.5318, y: 51.5014 },
    Point { x: 56.0252, y: 71.7366 },
    Point { x: 41.5493, y: 92.3655 },
    Point { x: 70.7299, y: 92.2041 },
];

/// A face crop aligned to the template; made only by [`align`].
#[derive(Clone, Debug)]
pub struct AlignedFace {
    image: RgbImage,
    transform: Affine,
}

impl AlignedFace {
    /// The aligned pixels (RGB).
    pub fn image(&self) -> &RgbImage {
        &self.image
    }

    /// The map from photo coordinates to crop coordinates.
    pub fn transform(&self) -> Affine {
        self.transform
    }
}

/// Warps the face onto the template, scaled to a `width` x `height` crop (112x112 for SFace).
///
/// # Errors
/// [`Error::InvalidArgument`] when the landmarks are degenerate (all in one place).
pub fn align(image: &RgbImage, face: &Face, width: u32, height: u32) -> Result<AlignedFace> {
    let (sx, sy) = (width as f32 / 112.0, height as f32 / 112.0);
    let target = TEMPLATE_112.map(|p| Point { x: p.x * sx, y: p.y * sy });
    let transform = similarity_transform(&face.landmarks, &target)
        .ok_or_else(|| Error::InvalidArgument("face landmarks are degenerate".into()))?;
    Ok(AlignedFace { image: warp_affine(image, &transform, width, height), transform })
}

/// Least-squares similarity transform (rotation, uniform scale, translation) taking `src` to `dst`.
///
/// This is Umeyama's estimate without reflection, in closed form for two dimensions.
pub fn similarity_transform(src: &[Point; 5], dst: &[Point; 5]) -> Option<Affine> {
    let n = src.len() as f64;
    let mean = |ps: &[Point; 5]| {
        let (x, y) = ps.iter().fold((0.0, 0.0), |(x, y), p| (x + f64::from(p.x), y + f64::from(p.y)));
        (x / n, y / n)
    };
    let (msx, msy) = mean(src);
    let (mdx, mdy) = mean(dst);
    let (mut dot, mut cross, mut norm) = (0.0f64, 0.0f64, 0.0f64);
    for (s, d) in src.iter().zip(dst) {
        let (sx, sy) = (f64::from(s.x) - msx, f64::from(s.y) - msy);
        let (dx, dy) = (f64::from(d.x) - mdx, f64::from(d.y) - mdy);
        dot += sx * dx + sy * dy;
        cross += sx * dy - sy * dx;
        norm += sx * sx + sy * sy;
    }
    if norm < 1e-9 {
        return None;
    }
    let (a, b) = (dot / norm, cross / norm);
    let tx = mdx - (a * msx - b * msy);
    let ty = mdy - (b * msx + a * msy);
    Some(Affine([[a as f32, -b as f32, tx as f32], [b as f32, a as f32, ty as f32]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_a_known_similarity() {
        let (angle, scale, tx, ty) = (0.3f32, 1.7f32, 5.0f32, -3.0f32);
        let (c, s) = (angle.cos() * scale, angle.sin() * scale);
        let src = TEMPLATE_112;
        let dst = src.map(|p| Point { x: c * p.x - s * p.y + tx, y: s * p.x + c * p.y + ty });
        let m = similarity_transform(&src, &dst).expect("non-degenerate");
        for (p, q) in src.iter().zip(&dst) {
            let (x, y) = m.apply(p.x, p.y);
            assert!((x - q.x).abs() < 1e-3 && (y - q.y).abs() < 1e-3);
        }
    }

    #[test]
    fn template_landmarks_map_onto_themselves() {
        let m = similarity_transform(&TEMPLATE_112, &TEMPLATE_112).expect("non-degenerate");
        let (x, y) = m.apply(10.0, 20.0);
        assert!((x - 10.0).abs() < 1e-4 && (y - 20.0).abs() < 1e-4);
    }

    #[test]
    fn degenerate_landmarks_are_refused() {
        assert!(similarity_transform(&[Point { x: 3.0, y: 3.0 }; 5], &TEMPLATE_112).is_none());
    }
}
