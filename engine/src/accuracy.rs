//! [`Mode`]: what the engine spends to get more out of a photo. `fast` makes one template from the
//! aligned face as detected; `accurate` adds the mirror image's embedding (flip test-time
//! augmentation), averages over slightly different alignments of a small face, makes templates of
//! smaller faces, and turns a photo without a face.
//!
//! The figures behind each choice are in README (*Accuracy modes*).

use image::RgbImage;
use image::imageops::{flip_horizontal, rotate90, rotate180, rotate270};
use serde::{Deserialize, Serialize};

use crate::align::AlignedFace;
use crate::detect::{Face, Point};
use crate::embedding::Embedding;
use crate::error::{Error, Result};

/// How much work a template gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// One embedding per face; faces below `min_interocular_px` are refused (`face_too_small`).
    #[default]
    Fast,
    /// The face and its mirror image embedded and averaged (two recogniser runs per photo); a face
    /// under [`SMALL_FACE_INTEROCULAR_PX`] is also aligned [`ALIGNMENT_JITTER`] larger and smaller
    /// (four runs); faces down to [`ACCURATE_MIN_INTEROCULAR_PX`] between the eyes are used (still
    /// flagged `face_too_small`); a photo without a face is tried again turned 90, 270 and 180
    /// degrees.
    Accurate,
}

/// The smallest eye distance `accurate` makes a template from.
pub const ACCURATE_MIN_INTEROCULAR_PX: f32 = 12.0;

/// Below this eye distance (photo pixels) `accurate` averages over several alignments: a landmark
/// off by a pixel is a larger part of a small face.
pub const SMALL_FACE_INTEROCULAR_PX: f32 = 40.0;

/// How far the extra alignments of a small face spread or draw in its landmarks about their
/// centroid (a fraction of their distance from it).
pub const ALIGNMENT_JITTER: f32 = 0.06;

/// What a mode does, one switch per technique.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Techniques {
    /// Average the embeddings of the face and its mirror image.
    pub flip: bool,
    /// Also average, for a face under [`SMALL_FACE_INTEROCULAR_PX`], alignments with its landmarks
    /// scaled by 1 +- [`ALIGNMENT_JITTER`] about their centroid.
    pub jitter_small_faces: bool,
    /// Smallest eye distance a template is made from; `None`: the capture checks' minimum.
    pub min_interocular_px: Option<f32>,
    /// A photo without a face is tried again turned by 90, 270 and 180 degrees.
    pub retry_rotated: bool,
    /// Run the occlusion checks (a liveness frame other than the straight one skips them).
    pub occlusion: bool,
}

impl Mode {
    pub(crate) fn techniques(self) -> Techniques {
        match self {
            Mode::Fast => Techniques {
                flip: false,
                jitter_small_faces: false,
                min_interocular_px: None,
                retry_rotated: false,
                occlusion: true,
            },
            Mode::Accurate => Techniques {
                flip: true,
                jitter_small_faces: true,
                min_interocular_px: Some(ACCURATE_MIN_INTEROCULAR_PX),
                retry_rotated: true,
                occlusion: true,
            },
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "fast" => Ok(Mode::Fast),
            "accurate" => Ok(Mode::Accurate),
            other => Err(format!("mode {other:?} is not `fast` or `accurate`")),
        }
    }
}

/// The crops `techniques` embeds beside `aligned` (their embeddings are averaged with its): its
/// mirror image and, for a small `face` (photo coordinates), the face realigned by `realign` with
/// its landmarks spread and drawn in (see [`Mode::Accurate`]).
pub(crate) fn extra_crops(
    aligned: &AlignedFace,
    face: &Face,
    techniques: Techniques,
    realign: impl Fn(&Face) -> Result<AlignedFace>,
) -> Result<Vec<AlignedFace>> {
    let mut out = Vec::new();
    if techniques.flip {
        out.push(mirrored(aligned)?);
    }
    if techniques.jitter_small_faces && face.interocular() < SMALL_FACE_INTEROCULAR_PX {
        for factor in [1.0 + ALIGNMENT_JITTER, 1.0 - ALIGNMENT_JITTER] {
            out.push(realign(&spread_landmarks(face, factor))?);
        }
    }
    Ok(out)
}

/// The normalised sum of `embeddings` (one template from several crops of a face).
pub(crate) fn averaged(embeddings: &[Embedding]) -> Result<Embedding> {
    let mut sum = vec![0f32; embeddings.first().map_or(0, |e| e.as_slice().len())];
    for e in embeddings {
        sum.iter_mut().zip(e.as_slice()).for_each(|(s, x)| *s += x);
    }
    Embedding::from_raw(sum)
}

/// `face` with its landmarks moved `factor` times their distance from their centroid (box and score
/// kept): the same face aligned a little larger (`factor` < 1) or smaller (`factor` > 1).
fn spread_landmarks(face: &Face, factor: f32) -> Face {
    let n = face.landmarks.len() as f32;
    let cx = face.landmarks.iter().map(|p| p.x).sum::<f32>() / n;
    let cy = face.landmarks.iter().map(|p| p.y).sum::<f32>() / n;
    let mut out = *face;
    for p in &mut out.landmarks {
        *p = Point { x: cx + (p.x - cx) * factor, y: cy + (p.y - cy) * factor };
    }
    out
}

/// The aligned face's mirror image (left and right swapped; the recogniser's template is symmetric).
pub(crate) fn mirrored(face: &AlignedFace) -> Result<AlignedFace> {
    face.with_image(flip_horizontal(face.image()))
        .ok_or_else(|| Error::Inference("mirror image of another size".into()))
}

/// `image` turned clockwise by `degrees` (90, 180 or 270; anything else: unturned).
pub(crate) fn rotated(image: &RgbImage, degrees: u16) -> RgbImage {
    match degrees {
        90 => rotate90(image),
        180 => rotate180(image),
        270 => rotate270(image),
        _ => image.clone(),
    }
}
