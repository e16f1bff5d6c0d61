//! wajah: face verification for digital-ID registration.
//!
//! A photo goes `decode -> locate -> confirm -> align -> embed -> quality` and becomes a
//! [`Template`]; two templates give a [`Score`] and a [`Decision`] against a threshold. A
//! [`Gallery`] keeps enrolled templates (a [`TemplateStore`] and a [`FaceIndex`]) in step.
//!
//! ```no_run
//! use wajah::{Engine, EngineConfig};
//!
//! let engine = Engine::new(EngineConfig::default())?;
//! let ktp = engine.template(&std::fs::read("ktp.jpg")?)?;
//! let (decision, _) = engine.verify(&std::fs::read("selfie.jpg")?, &ktp)?;
//! println!("match: {} (score {:.3}, threshold {:.3})", decision.matched, decision.score.0, decision.threshold);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod accuracy;
mod align;
mod analysis;
mod calibration;
mod config;
mod confirm;
mod decode;
mod detect;
mod embed;
mod embedding;
mod engine;
mod error;
// Hooks for the fuzz targets (`fuzz/`); not API.
#[doc(hidden)]
pub mod fuzzing;
mod gallery;
mod index;
mod liveness;
mod locate;
mod manifest;
mod nik;
mod occlusion;
mod pose;
mod quality;
mod runtime;
mod similarity;
mod store;
mod warp;

pub use accuracy::{ACCURATE_MIN_INTEROCULAR_PX, ALIGNMENT_JITTER, Mode, SMALL_FACE_INTEROCULAR_PX};
pub use align::AlignedFace;
pub use analysis::{Decision, Detection, FaceAnalysis, Timings, Verdict};
pub use calibration::Calibration;
pub use config::{DuplicateCheck, DuplicatePolicy, EngineConfig, FacePolicy};
pub use decode::{DecodeLimits, Photo, decode};
pub use detect::{BBox, DetectPolicy, Face, Point, landmark};
pub use embedding::{Embedding, Score, Template};
pub use engine::Engine;
pub use error::{Error, ErrorKind, Result};
pub use gallery::{Candidate, Enrolled, Gallery, Identification, Verification};
pub use index::{CompactIndex, FaceIndex, IndexConfig, IndexKind, Match};
pub use liveness::{
    FacePatch, FrameReport, Liveness, LivenessReason, LivenessReport, LivenessThresholds,
    PresentationAttackDetector, SameFrame, SeenFrames, Step, challenge_steps, nose_shift, plane_fit,
};
pub use locate::FaceQuery;
pub use manifest::{
    ColourOrder, ConfirmerSpec, DEFAULT_MANIFEST, DetectorKind, DetectorSpec, Manifest, OcclusionSpec,
    RecognizerKind, RecognizerSpec, RuntimeSpec,
};
pub use nik::{Nik, Sex};
pub use occlusion::{
    FEATURES as OCCLUSION_FEATURES, Occlusion, OcclusionModel, Occlusions, appearance,
    features as occlusion_features, in_region as occlusion_feature_in_region,
};
pub use pose::{HeadPose, head_pose};
pub use quality::{CaptureMode, QualityIssue, QualityReport, QualityThresholds, quality_score};
pub use similarity::{Hit, dot, dot_scalar, kernel_name, top_k};
pub use store::{
    AuditEvent, AuditLog, AuditRecord, Change, Enrollment, Keyring, LOAD_BATCH, SealedRow, SqliteStore,
    TemplateKey, TemplateStore, Upsert,
};
pub use warp::resize;
