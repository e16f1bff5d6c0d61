//! What the engine answers: [`Decision`], [`FaceAnalysis`], [`Detection`], [`Timings`].

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::align::AlignedFace;
use crate::detect::Face;
use crate::embedding::{Score, Template};
use crate::quality::QualityReport;

/// The two answers of a comparison, as clients see them (`"match"` / `"no_match"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Same person: the score reached the threshold.
    Match,
    /// Not the same person, or not similar enough to say so.
    NoMatch,
}

impl Verdict {
    /// `"match"` or `"no_match"`, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Match => "match",
            Verdict::NoMatch => "no_match",
        }
    }
}

/// The outcome of comparing two templates, with its evidence. The match rule lives here alone.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// `score >= threshold`.
    pub matched: bool,
    /// Cosine similarity.
    pub score: Score,
    /// The threshold applied.
    pub threshold: f32,
}

impl Decision {
    /// The decision for `score` against `threshold`: a match when `score >= threshold`.
    pub fn new(score: Score, threshold: f32) -> Self {
        Self { matched: score.0 >= threshold, score, threshold }
    }

    /// [`Verdict::Match`] or [`Verdict::NoMatch`].
    pub fn verdict(&self) -> Verdict {
        if self.matched { Verdict::Match } else { Verdict::NoMatch }
    }
}

/// Milliseconds spent per stage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Decoding and orientation.
    pub decode_ms: f64,
    /// Face detection (both passes) and confirmation.
    pub detect_ms: f64,
    /// Alignment.
    pub align_ms: f64,
    /// Capture checks.
    pub quality_ms: f64,
    /// Embedding.
    pub embed_ms: f64,
}

impl Timings {
    /// Stage by stage sum.
    pub fn sum<'a>(all: impl IntoIterator<Item = &'a Timings>) -> Timings {
        all.into_iter().fold(Timings::default(), |a, t| Timings {
            decode_ms: a.decode_ms + t.decode_ms,
            detect_ms: a.detect_ms + t.detect_ms,
            align_ms: a.align_ms + t.align_ms,
            quality_ms: a.quality_ms + t.quality_ms,
            embed_ms: a.embed_ms + t.embed_ms,
        })
    }
}

/// Everything learnt from one photo on the way to its template.
#[derive(Clone, Debug)]
pub struct FaceAnalysis {
    /// The face the template was made from.
    pub face: Face,
    /// How many faces were found (scored at least `min_face_score` and confirmed as human faces).
    pub faces_found: usize,
    /// Capture checks.
    pub quality: QualityReport,
    /// The template.
    pub template: Template,
    /// The aligned crop that was embedded.
    pub aligned: AlignedFace,
    /// Photo width and height after orientation.
    pub photo_size: (u32, u32),
    /// sha256 of the photo bytes (hex); empty for an already decoded image.
    pub photo_sha256: String,
    /// Degrees clockwise the photo was turned before its face was found (`accurate` mode retries a
    /// photo without a face turned; 0 otherwise). `face` is in the turned photo's coordinates.
    pub rotation: u16,
    /// Time per stage.
    pub timings: Timings,
}

/// Faces found in a photo.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Detection {
    /// Photo width after orientation.
    pub width: u32,
    /// Photo height after orientation.
    pub height: u32,
    /// Faces, highest score first.
    pub faces: Vec<Face>,
}

/// Milliseconds since `since`.
pub(crate) fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_score_at_the_threshold_matches() {
        assert_eq!(Decision::new(Score(0.363), 0.363).verdict(), Verdict::Match);
        assert_eq!(Decision::new(Score(0.3629), 0.363).verdict(), Verdict::NoMatch);
        assert_eq!(serde_json::to_string(&Verdict::NoMatch).expect("serialises"), "\"no_match\"");
    }
}
