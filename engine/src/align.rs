//! Alignment: a 5-point similarity transform onto the recogniser's template (the manifest's
//! `alignment_template`; for SFace the ArcFace 112x112 one).

use image::RgbImage;

use crate::detect::{Face, Point};
use crate::error::{Error, Result};
use crate::warp::{Affine, warp_affine};

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

    /// The same alignment with other pixels of the same size (an edited crop, e.g. occlusions drawn
    /// for training data); `None` when the size differs.
    pub fn with_image(&self, image: RgbImage) -> Option<AlignedFace> {
        (image.dimensions() == self.image.dimensions())
            .then_some(AlignedFace { image, transform: self.transform })
    }

    /// The map from photo coordinates to crop coordinates.
    pub fn transform(&self) -> Affine {
        self.transform
    }
}

/// Warps the face into a `width` x `height` crop so that its landmarks fall on `template` (crop
/// pixels; the recogniser's [`crate::RecognizerSpec::alignment_template`]) in the least-squares sense.
///
/// # Errors
/// [`Error::InvalidArgument`] when the landmarks are degenerate (all in one place).
pub fn align(
    image: &RgbImage,
    face: &Face,
    template: &[Point; 5],
    width: u32,
    height: u32,
) -> Result<AlignedFace> {
    let transform = similarity_transform(&face.landmarks, template)
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
    use crate::manifest::Manifest;

    /// SFace's template, from the shipped manifest.
    fn template() -> [Point; 5] {
        Manifest::builtin().expect("valid").recognizer(None).expect("default").template_points()
    }

    #[test]
    fn recovers_a_known_similarity() {
        let (angle, scale, tx, ty) = (0.3f32, 1.7f32, 5.0f32, -3.0f32);
        let (c, s) = (angle.cos() * scale, angle.sin() * scale);
        let src = template();
        let dst = src.map(|p| Point { x: c * p.x - s * p.y + tx, y: s * p.x + c * p.y + ty });
        let m = similarity_transform(&src, &dst).expect("non-degenerate");
        for (p, q) in src.iter().zip(&dst) {
            let (x, y) = m.apply(p.x, p.y);
            assert!((x - q.x).abs() < 1e-3 && (y - q.y).abs() < 1e-3);
        }
    }

    #[test]
    fn template_landmarks_map_onto_themselves() {
        let m = similarity_transform(&template(), &template()).expect("non-degenerate");
        let (x, y) = m.apply(10.0, 20.0);
        assert!((x - 10.0).abs() < 1e-4 && (y - 20.0).abs() < 1e-4);
    }

    #[test]
    fn degenerate_landmarks_are_refused() {
        assert!(similarity_transform(&[Point { x: 3.0, y: 3.0 }; 5], &template()).is_none());
    }

    #[test]
    fn align_puts_the_landmarks_on_the_template() {
        let image = RgbImage::from_fn(300, 200, |x, y| image::Rgb([x as u8, y as u8, 7]));
        // A face twice the template's size, shifted: it maps back onto the template exactly.
        let landmarks = template().map(|p| Point { x: 2.0 * p.x + 40.0, y: 2.0 * p.y + 10.0 });
        let face = Face { bbox: Default::default(), landmarks, score: 0.9 };
        let aligned = align(&image, &face, &template(), 112, 112).expect("aligns");
        assert_eq!(aligned.image().dimensions(), (112, 112));
        for (p, q) in landmarks.iter().zip(template()) {
            let (x, y) = aligned.transform().apply(p.x, p.y);
            assert!((x - q.x).abs() < 1e-3 && (y - q.y).abs() < 1e-3, "({x}, {y}) vs {q:?}");
        }
    }
}
