//! The one face finder: which detections are faces, for every entry point, and the coarse-to-fine
//! search that finds the face a template is made from.
//!
//! [`FaceFinder::find`] takes a [`FaceQuery`] and is the only place that runs the detector, drops
//! faces scored below `min_face_score`, and asks the [`FaceConfirmer`] whether a detection is a
//! human face. [`FaceFinder::locate`] adds the template path: decode small, find, choose one face,
//! and decode again larger when that face has too few pixels.

use std::time::Instant;

use image::RgbImage;

use crate::analysis::ms;
use crate::config::FacePolicy;
use crate::confirm::FaceConfirmer;
use crate::decode::{self, DecodeLimits, Photo, decode_scaled};
use crate::detect::{DetectPolicy, Detector, Face, Point, find_faces, redetect};
use crate::error::{Error, Result};
use crate::quality::QualityThresholds;
use crate::warp::Affine;

/// The first detection pass of a JPEG over twice [`DetectPolicy::max_side`] runs on a decode whose
/// longer side is at least this fraction of it.
const COARSE_FRACTION: f32 = 0.75;

/// The template path's first pass only has to find faces big enough to use: it runs at the
/// smallest size where a face of `min_interocular_px` still has a box of this many pixels.
const FIRST_PASS_FACE_PX: f32 = 20.0;

/// A frontal face's box is about this many times its eye distance.
const BOX_PER_INTEROCULAR: f32 = 2.5;

/// Which faces a caller asks for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FaceQuery {
    /// The detector alone, at the image's own resolution: no resizing, no second pass, no score
    /// bar, no confirmation (for checks against a reference implementation).
    Raw,
    /// Every human face: the first pass at [`DetectPolicy::max_side`], each face refined, scored
    /// at least `min_face_score` and confirmed.
    All,
    /// Faces that may make a template, from a photo whose longer side is `photo_side` pixels: as
    /// [`FaceQuery::All`], but the first pass runs at the smallest size where a face of the
    /// minimum eye distance is still found.
    Usable {
        /// Longer side of the photo (before any scaling), in pixels.
        photo_side: f32,
    },
}

/// The face a template will be made from, and the decode it is in.
pub(crate) struct Located {
    /// The decode the face is aligned from.
    pub photo: Photo,
    /// `photo`'s scale relative to the full photo.
    pub scale: f32,
    /// The full photo's size after orientation.
    pub photo_size: (u32, u32),
    /// The face, in full-photo coordinates.
    pub face: Face,
    /// Usable faces found in the first pass.
    pub faces_found: usize,
    pub decode_ms: f64,
    pub detect_ms: f64,
}

/// Detector, confirmer and the limits that say which detections are faces.
pub(crate) struct FaceFinder {
    pub detector: Box<dyn Detector>,
    pub confirmer: FaceConfirmer,
    pub policy: DetectPolicy,
    pub quality: QualityThresholds,
}

impl FaceFinder {
    /// The faces of `image` that `query` asks for, in `image` coordinates, highest score first.
    ///
    /// # Errors
    /// [`Error::Inference`] when a model fails.
    pub fn find(&self, image: &RgbImage, query: FaceQuery) -> Result<Vec<Face>> {
        let policy = match query {
            FaceQuery::Raw => return self.detector.detect(image),
            FaceQuery::All => self.policy,
            FaceQuery::Usable { photo_side } => {
                // In full-photo pixels: at `side`, the smallest usable face is FIRST_PASS_FACE_PX wide.
                let min_box = self.quality.min_interocular_px * BOX_PER_INTEROCULAR;
                let side = (photo_side * FIRST_PASS_FACE_PX / min_box.max(1.0)).ceil() as u32;
                DetectPolicy {
                    max_side: side.clamp(self.policy.min_side, self.policy.max_side),
                    ..self.policy
                }
            }
        };
        let mut faces = find_faces(self.detector.as_ref(), image, &policy)?;
        faces.retain(|f| f.score >= self.quality.min_face_score);
        let probabilities = self.confirmer.probabilities(image, &faces)?;
        let min = self.confirmer.min_probability();
        Ok(faces.into_iter().zip(probabilities).filter(|(_, p)| *p >= min).map(|(f, _)| f).collect())
    }

    /// Decodes `bytes` at the scale detection needs and locates the face to make a template from
    /// (one with at least `min_iod` pixels between the eyes).
    ///
    /// JPEGs are decoded at a DCT scale (libjpeg's n/8), not in full: up to twice the detection
    /// size at the smallest scale that still covers it; larger ones (phone photos) at a scale of at
    /// least [`COARSE_FRACTION`] of it, so a 12 MP photo is detected at 1/8 without resampling.
    /// When the chosen face has too few pixels at that scale, the photo is decoded again, larger,
    /// and that face alone detected again around it. A face not found again with enough score
    /// (an animal, say) is dropped and the choice made again.
    ///
    /// # Errors
    /// Decoding errors, [`Error::NoFace`], [`Error::MultipleFaces`], [`Error::FaceTooSmall`], or
    /// [`Error::Inference`].
    pub fn locate(
        &self,
        bytes: &[u8],
        limits: &DecodeLimits,
        choice: FacePolicy,
        min_iod: f32,
    ) -> Result<Located> {
        let start = Instant::now();
        let (photo_size, _) = decode::probe(bytes, limits)?;
        let (side, long) = (self.policy.max_side as f32, photo_size.0.max(photo_size.1).max(1) as f32);
        let coarse = if long > 2.0 * side { COARSE_FRACTION * side / long } else { side / long };
        let (photo, scale) = decode_scaled(bytes, limits, coarse)?;
        let mut decode_ms = ms(start);

        let t = Instant::now();
        let to_photo = Affine::scale(1.0 / scale);
        let mut faces: Vec<Face> = self
            .find(&photo.image, FaceQuery::Usable { photo_side: long })?
            .iter()
            .map(|f| f.mapped(&to_photo))
            .collect();
        let faces_found = faces.len();
        let mut detect_ms = ms(t);

        let wanted = self.policy.refine_size as f32 / self.policy.refine_context;
        let centre = Point { x: photo_size.0 as f32 / 2.0, y: photo_size.1 as f32 / 2.0 };
        let mut larger: Option<(Photo, f32)> = None;
        loop {
            let face = self.select(&faces, choice, centre, min_iod)?;
            let face_px = face.bbox.width.max(face.bbox.height) * scale;
            if scale >= 1.0 || face_px >= wanted {
                return Ok(Located { photo, scale, photo_size, face, faces_found, decode_ms, detect_ms });
            }
            let needed = (scale * wanted / face_px.max(1.0)).min(1.0);
            let (big, s) = match larger.take() {
                Some((p, s)) if s >= needed => (p, s),
                _ => {
                    let t = Instant::now();
                    let decoded = decode_scaled(bytes, limits, needed)?;
                    decode_ms += ms(t);
                    decoded
                }
            };
            let t = Instant::now();
            let refined =
                redetect(self.detector.as_ref(), &big.image, &face.mapped(&Affine::scale(s)), &self.policy)?
                    .map(|f| f.mapped(&Affine::scale(1.0 / s)))
                    .filter(|f| f.score >= self.quality.min_face_score);
            detect_ms += ms(t);
            if let Some(face) = refined {
                return Ok(Located {
                    photo: big,
                    scale: s,
                    photo_size,
                    face,
                    faces_found,
                    decode_ms,
                    detect_ms,
                });
            }
            larger = Some((big, s));
            let before = faces.len();
            faces.retain(|f| *f != face);
            if faces.len() == before {
                return Err(Error::NoFace);
            }
        }
    }

    /// Picks the face to use. Faces with eyes closer than `min` pixels are too small to recognise
    /// and do not count as "another face". Of
    /// several usable faces, the main one (see [`FacePolicy::Largest`]) for a photo centred on
    /// `centre`.
    ///
    /// # Errors
    /// [`Error::NoFace`], [`Error::FaceTooSmall`], or [`Error::MultipleFaces`].
    pub fn select(&self, faces: &[Face], choice: FacePolicy, centre: Point, min: f32) -> Result<Face> {
        if faces.is_empty() {
            return Err(Error::NoFace);
        }
        let usable: Vec<&Face> = faces.iter().filter(|f| f.interocular() >= min).collect();
        match (main_face(&usable, centre), usable.len(), choice) {
            (None, _, _) => {
                let actual = faces.iter().map(Face::interocular).fold(0.0, f32::max);
                Err(Error::FaceTooSmall { actual, min })
            }
            (Some(face), 1, _) | (Some(face), _, FacePolicy::Largest) => Ok(*face),
            (Some(_), count, FacePolicy::Single) => Err(Error::MultipleFaces { count }),
        }
    }
}

/// The main face of a photo centred on `centre` ([`FacePolicy::Largest`]): the largest box area
/// less twice the squared distance of the box's centre from the photo's (both in square pixels, so
/// the choice does not depend on the photo's scale).
fn main_face<'a>(faces: &[&'a Face], centre: Point) -> Option<&'a Face> {
    let weight = |f: &Face| {
        let c = f.bbox.centre();
        f.bbox.area() - 2.0 * ((c.x - centre.x).powi(2) + (c.y - centre.y).powi(2))
    };
    faces.iter().copied().max_by(|a, b| weight(a).total_cmp(&weight(b)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::BBox;

    fn face(x: f32, y: f32, w: f32, h: f32) -> Face {
        Face { bbox: BBox { x, y, width: w, height: h }, landmarks: [Point::default(); 5], score: 0.9 }
    }

    #[test]
    fn the_main_face_is_large_and_central() {
        let centre = Point { x: 125.0, y: 125.0 };
        // LFW's Charles_Grassley_0001: the subject in the middle, a bystander's larger box at the edge.
        let (subject, bystander) = (face(87.0, 63.0, 83.0, 120.0), face(159.0, 47.0, 88.0, 135.0));
        assert_eq!(main_face(&[&bystander, &subject], centre), Some(&subject));
        // Both central: the larger wins, at any scale.
        let (small, large) = (face(100.0, 100.0, 40.0, 50.0), face(90.0, 80.0, 70.0, 90.0));
        assert_eq!(main_face(&[&small, &large], centre), Some(&large));
        let scaled = |f: &Face| f.mapped(&Affine::scale(4.0));
        let (small4, large4) = (scaled(&small), scaled(&large));
        let centre4 = Point { x: 500.0, y: 500.0 };
        assert_eq!(main_face(&[&small4, &large4], centre4), Some(&large4));
        assert_eq!(main_face(&[], centre), None);
    }
}
