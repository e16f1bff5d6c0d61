//! Request and response bodies. `/openapi.json` is generated from these types and the route table.

use std::time::Instant;

use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};
use utoipa::{IntoParams, ToSchema};
use wajah::{
    BBox, CaptureMode, Decision, Face, FaceAnalysis, Point, QualityIssue, QualityReport, Timings, Upsert,
    Verdict,
};

use crate::messages::{Lang, ProblemMessage};

/// A photo in JSON: the image file's bytes as a base64 string.
#[derive(Debug, ToSchema)]
#[schema(value_type = String, format = Byte, content_encoding = "base64")]
pub struct PhotoBytes(pub Vec<u8>);

/// A photo in multipart/form-data: a file part with the image file's bytes (JPEG, PNG, WebP, GIF,
/// BMP or PNM). Only described: the parts are read into [`PhotoBytes`].
#[derive(Debug, ToSchema)]
#[schema(value_type = String, format = Binary, content_media_type = "application/octet-stream")]
pub struct PhotoFile(pub Vec<u8>);

impl<'de> Deserialize<'de> for PhotoBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map(PhotoBytes)
            .map_err(|_| serde::de::Error::custom("not valid base64"))
    }
}

/// What `wajah::Nik::parse` accepts, as a pattern: a province code in use, regency/city and district
/// not 00, a day of birth that exists in its month (women add 40; 29 February in years divisible
/// by 4), a serial other than 0000.
pub const NIK_PATTERN: &str = concat!(
    "^(1[1-9]|21|3[1-6]|5[1-3]|6[1-5]|7[1-6]|8[12]|9[1-6])",
    "(0[1-9]|[1-9][0-9]){2}",
    "((0[1-9]|[12][0-9]|3[01]|4[1-9]|[56][0-9]|7[01])(0[13578]|1[02])[0-9]{2}",
    "|(0[1-9]|[12][0-9]|30|4[1-9]|[56][0-9]|70)(0[469]|11)[0-9]{2}",
    "|(0[1-9]|1[0-9]|2[0-8]|4[1-9]|5[0-9]|6[0-8])02[0-9]{2}",
    "|(29|69)02([02468][048]|[13579][26]))",
    "([0-9]{3}[1-9]|[0-9]{2}[1-9][0-9]|[0-9][1-9][0-9]{2}|[1-9][0-9]{3})$",
);

/// The description of a NIK, in a body or a path.
pub fn nik_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("The 16-digit NIK: province, regency/city, district, date of birth, serial."))
        .pattern(Some(NIK_PATTERN))
        .examples(["3201011505900001"])
        .build()
}

/// The path of `DELETE /v1/enrollments/{nik}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct NikPath {
    #[param(schema_with = nik_schema)]
    pub nik: String,
}

/// `POST /v1/enrollments`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    #[schema(schema_with = nik_schema)]
    pub nik: String,
    /// The KTP-el photo.
    pub photo: PhotoBytes,
    /// `registration` (default) refuses an ID photo with sunglasses, a mask or a covered face with
    /// 422 `capture_rejected`; `check` only reports problems.
    #[serde(default)]
    pub mode: CaptureMode,
}

/// `POST /v1/verifications`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    #[schema(schema_with = nik_schema)]
    pub nik: String,
    /// The selfie; or, instead, `challenge_id` and `frames`.
    #[serde(default)]
    pub selfie: Option<PhotoBytes>,
    /// A liveness challenge (`POST /v1/liveness/challenges`): then `frames` are checked for
    /// liveness and the straight frame is compared; matched only when live and the same person.
    #[serde(default)]
    pub challenge_id: Option<String>,
    /// One photo per step of the challenge, in order (multipart: one `frames` part each).
    #[serde(default)]
    pub frames: Vec<PhotoBytes>,
    /// `registration` (default) refuses a selfie with any capture problem, or one that is a photo
    /// of the ID photo, with 422 `capture_rejected` and no comparison; `check` only reports them.
    #[serde(default)]
    pub mode: CaptureMode,
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

/// A count from JSON: a whole number, also when written with a zero fraction (`5.0`), which JSON
/// Schema's `integer` admits too.
fn whole_number<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let number = serde_json::Number::deserialize(d)?;
    let whole = match (number.as_u64(), number.as_f64()) {
        (Some(n), _) => usize::try_from(n).ok(),
        (None, Some(f)) if f.fract() == 0.0 && (0.0..=1e15).contains(&f) => Some(f as usize),
        _ => None,
    };
    whole.ok_or_else(|| serde::de::Error::custom(format!("{number} is not a whole number")))
}

/// `POST /v1/identifications`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentifyRequest {
    /// The probe photo.
    pub photo: PhotoBytes,
    /// How many candidates (1..=100).
    #[serde(default = "default_k", deserialize_with = "whole_number")]
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

/// `POST /v1/enrollments` as multipart/form-data (described; read into [`EnrollRequest`]).
#[derive(Debug, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollForm {
    #[schema(schema_with = nik_schema)]
    pub nik: String,
    /// The KTP-el photo.
    pub photo: PhotoFile,
    /// `registration` (default) or `check`.
    #[serde(default)]
    pub mode: CaptureMode,
}

/// `POST /v1/verifications` as multipart/form-data (described; read into [`VerifyRequest`]).
#[derive(Debug, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyForm {
    #[schema(schema_with = nik_schema)]
    pub nik: String,
    /// The selfie; or, instead, `challenge_id` and `frames`.
    pub selfie: Option<PhotoFile>,
    /// A liveness challenge id.
    pub challenge_id: Option<String>,
    /// One `frames` part per step of the challenge, in order.
    #[serde(default)]
    pub frames: Vec<PhotoFile>,
    /// `registration` (default) or `check`.
    #[serde(default)]
    pub mode: CaptureMode,
}

/// `POST /v1/compare` as multipart/form-data (described; read into [`CompareRequest`]).
#[derive(Debug, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompareForm {
    /// The first photo (taken as the ID photo).
    pub photo_a: PhotoFile,
    /// The second photo (taken as the selfie).
    pub photo_b: PhotoFile,
    /// Also answer the aligned 112x112 crops as base64 PNG (`true` or `false`).
    #[serde(default)]
    pub include_crops: bool,
}

/// `POST /v1/identifications` as multipart/form-data (described; read into [`IdentifyRequest`]).
#[derive(Debug, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentifyForm {
    /// The probe photo.
    pub photo: PhotoFile,
    /// How many candidates (1..=100).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100, default = 5)]
    pub k: usize,
}

/// `POST /v1/detections` as multipart/form-data (described; read into [`DetectRequest`]).
#[derive(Debug, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DetectForm {
    /// The photo.
    pub photo: PhotoFile,
}

/// The face a template was made from.
#[derive(Debug, Serialize, ToSchema)]
pub struct FaceAnswer {
    /// Face box in photo pixels.
    pub bbox: BBox,
    /// Right eye, left eye, nose tip, right and left mouth corners.
    #[schema(min_items = 5, max_items = 5)]
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
    /// The same problems with what to do about each, in the language of `Content-Language`.
    pub capture_messages: Vec<ProblemMessage>,
    pub quality: QualityReport,
}

impl CaptureAnswer {
    pub fn of(a: &FaceAnalysis, lang: Lang) -> Self {
        Self {
            face: a.into(),
            capture_problems: a.quality.issues.clone(),
            capture_messages: ProblemMessage::all(&a.quality.issues, lang),
            quality: a.quality.clone(),
        }
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

/// Another enrolment whose template matches: its NIK masked, and the score.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DuplicateAnswer {
    /// The NIK with its middle eight digits hidden (`3201********0001`).
    pub nik: String,
    pub score: f32,
}

impl DuplicateAnswer {
    pub fn all(candidates: &[wajah::Candidate]) -> Vec<Self> {
        candidates
            .iter()
            .map(|c| DuplicateAnswer {
                nik: wajah::Nik::parse(&c.subject).map_or_else(|_| "*".repeat(16), |n| n.masked()),
                score: c.decision.score.0,
            })
            .collect()
    }
}

/// Answer of `POST /v1/enrollments`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EnrollmentAnswer {
    pub nik: String,
    pub status: Upsert,
    /// True when an earlier enrolment was replaced.
    pub replaced: bool,
    /// Other enrolments whose templates match this face (duplicate check, `flag` policy): stored,
    /// and to be reviewed. Empty when none.
    pub possible_duplicates: Vec<DuplicateAnswer>,
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
    /// With `challenge_id`: the liveness checks (`matched` needs `live`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub liveness: Option<crate::liveness::LivenessAnswer>,
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
    /// What to do about each problem, in the language of `Content-Language`.
    pub capture_messages: Vec<ProblemMessage>,
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
