//! Request and response bodies. `/openapi.json` is generated from these types and the route table.

use std::time::Instant;

use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use wajah::{
    BBox, Decision, Face, FaceAnalysis, Point, QualityIssue, QualityReport, Timings, Upsert, Verdict,
};

/// Photo bytes: a file part in multipart/form-data, a base64 string in JSON.
#[derive(Debug, ToSchema)]
#[schema(value_type = String, format = Byte)]
pub struct PhotoBytes(pub Vec<u8>);

impl<'de> Deserialize<'de> for PhotoBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map(PhotoBytes)
            .map_err(|_| serde::de::Error::custom("not valid base64"))
    }
}

/// `POST /v1/enrollments`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The 16-digit NIK.
    #[schema(pattern = "^[0-9]{16}$")]
    pub nik: String,
    /// The KTP-el photo.
    pub photo: PhotoBytes,
}

/// `POST /v1/verifications`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The 16-digit NIK.
    #[schema(pattern = "^[0-9]{16}$")]
    pub nik: String,
    /// The selfie.
    pub selfie: PhotoBytes,
}

/// `POST /v1/compare`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompareRequest {
    /// The first photo (taken as the ID photo).
    pub photo_a: PhotoBytes,
    /// The second photo (taken as the selfie).
    pub photo_b: PhotoBytes,
    /// Also answer the aligned 112x112 crops as base64 PNG.
    #[serde(default)]
    pub include_crops: bool,
}

/// Default and largest `k` of an identification.
pub const DEFAULT_K: usize = 5;
/// The largest `k` a client may ask for.
pub const MAX_K: usize = 100;

fn default_k() -> usize {
    DEFAULT_K
}

/// `POST /v1/identifications`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentifyRequest {
    /// The probe photo.
    pub photo: PhotoBytes,
    /// How many candidates (1..=100).
    #[serde(default = "default_k")]
    #[schema(minimum = 1, maximum = 100, default = 5)]
    pub k: usize,
}

/// `POST /v1/detections`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DetectRequest {
    /// The photo.
    pub photo: PhotoBytes,
}

/// The face a template was made from.
#[derive(Debug, Serialize, ToSchema)]
pub struct FaceAnswer {
    /// Face box in photo pixels.
    pub bbox: BBox,
    /// Right eye, left eye, nose tip, right and left mouth corners.
    pub landmarks: [Point; 5],
    /// Detector score.
    pub score: f32,
    /// Usable faces in the photo.
    pub faces_found: usize,
    /// Photo width after orientation.
    pub photo_width: u32,
    /// Photo height after orientation.
    pub photo_height: u32,
}

impl From<&FaceAnalysis> for FaceAnswer {
    fn from(a: &FaceAnalysis) -> Self {
        Self {
            bbox: a.face.bbox,
            landmarks: a.face.landmarks,
            score: a.face.score,
            faces_found: a.faces_found,
            photo_width: a.photo_size.0,
            photo_height: a.photo_size.1,
        }
    }
}

/// Milliseconds per stage, summed over the request's photos.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimingsAnswer {
    pub decode_ms: f64,
    pub detect_ms: f64,
    pub align_ms: f64,
    pub quality_ms: f64,
    pub embed_ms: f64,
    /// The whole request, parsing included.
    pub total_ms: f64,
}

impl TimingsAnswer {
    /// Stage sums of `analyses`, and the time since `started`.
    pub fn of(analyses: &[&FaceAnalysis], started: Instant) -> Self {
        let t = Timings::sum(analyses.iter().map(|a| &a.timings));
        Self {
            decode_ms: t.decode_ms,
            detect_ms: t.detect_ms,
            align_ms: t.align_ms,
            quality_ms: t.quality_ms,
            embed_ms: t.embed_ms,
            total_ms: started.elapsed().as_secs_f64() * 1e3,
        }
    }
}

/// One photo's face and capture checks.
#[derive(Debug, Serialize, ToSchema)]
pub struct CaptureAnswer {
    pub face: FaceAnswer,
    /// Capture problems found (empty for a good capture).
    pub capture_problems: Vec<QualityIssue>,
    pub quality: QualityReport,
}

impl From<&FaceAnalysis> for CaptureAnswer {
    fn from(a: &FaceAnalysis) -> Self {
        Self { face: a.into(), capture_problems: a.quality.issues.clone(), quality: a.quality.clone() }
    }
}

/// A score against the threshold.
#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionAnswer {
    /// `score >= threshold`.
    pub matched: bool,
    pub decision: Verdict,
    /// Cosine similarity.
    pub score: f32,
    pub threshold: f32,
}

impl From<Decision> for DecisionAnswer {
    fn from(d: Decision) -> Self {
        Self { matched: d.matched, decision: d.verdict(), score: d.score.0, threshold: d.threshold }
    }
}

/// Answer of `POST /v1/enrollments`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EnrollmentAnswer {
    pub nik: String,
    pub status: Upsert,
    /// True when an earlier enrolment was replaced.
    pub replaced: bool,
    /// Recogniser that made the template.
    pub model: String,
    #[serde(flatten)]
    pub capture: CaptureAnswer,
    pub timings_ms: TimingsAnswer,
}

/// Answer of `POST /v1/verifications`.
#[derive(Debug, Serialize, ToSchema)]
pub struct VerificationAnswer {
    pub nik: String,
    #[serde(flatten)]
    pub decision: DecisionAnswer,
    pub model: String,
    #[serde(flatten)]
    pub capture: CaptureAnswer,
    pub timings_ms: TimingsAnswer,
}

/// One side of a comparison.
#[derive(Debug, Serialize, ToSchema)]
pub struct CompareSide {
    #[serde(flatten)]
    pub capture: CaptureAnswer,
    /// The aligned 112x112 crop as base64 PNG (with `include_crops`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aligned_png_base64: Option<String>,
}

/// Answer of `POST /v1/compare`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CompareAnswer {
    #[serde(flatten)]
    pub decision: DecisionAnswer,
    pub model: String,
    pub a: CompareSide,
    pub b: CompareSide,
    pub timings_ms: TimingsAnswer,
}

/// One enrolled subject found by identification.
#[derive(Debug, Serialize, ToSchema)]
pub struct CandidateAnswer {
    pub nik: String,
    pub score: f32,
    /// `score >= threshold`.
    pub matched: bool,
}

/// Answer of `POST /v1/identifications`.
#[derive(Debug, Serialize, ToSchema)]
pub struct IdentificationAnswer {
    /// Best first.
    pub candidates: Vec<CandidateAnswer>,
    pub k: usize,
    pub threshold: f32,
    pub model: String,
    pub face: FaceAnswer,
    pub capture_problems: Vec<QualityIssue>,
    pub timings_ms: TimingsAnswer,
}

/// Answer of `POST /v1/detections`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DetectionAnswer {
    /// Photo width after orientation.
    pub width: u32,
    /// Photo height after orientation.
    pub height: u32,
    /// Human faces, highest score first.
    pub faces: Vec<Face>,
}

/// Answer of `GET /readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyAnswer {
    pub ready: bool,
    /// The recogniser in use (when ready).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}
