//! wajah: face verification for digital-ID registration.
//!
//! A photo goes `decode -> detect -> align -> quality -> embed` and becomes a [`Template`]; two
//! templates give a [`Score`] and a [`Decision`] against a threshold.
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

mod align;
mod calibration;
mod confirm;
mod decode;
mod detect;
mod embed;
mod embedding;
mod error;
mod index;
mod manifest;
mod nik;
mod pipeline;
mod quality;
mod runtime;
mod similarity;
mod store;
mod warp;
// modules: other crates' work adds lines here

pub use align::{AlignedFace, align, similarity_transform};
pub use calibration::Calibration;
pub use confirm::FaceConfirmer;
pub use decode::{DecodeLimits, Photo, decode, decode_scaled, probe};
pub use detect::{BBox, DetectPolicy, Detector, Face, Point, find_faces, landmark, nms};
pub use embed::Embedder;
pub use embedding::{Embedding, Score, Template};
pub use error::{Error, Result};
pub use index::{FaceIndex, IndexConfig, IndexKind, Match};
pub use manifest::{
    ColourOrder, ConfirmerSpec, DEFAULT_MANIFEST, DetectorKind, DetectorSpec, Manifest, RecognizerKind,
    RecognizerSpec, RuntimeSpec,
};
pub use nik::{Nik, Sex};
pub use pipeline::{Decision, Detection, Engine, EngineConfig, FaceAnalysis, FacePolicy, Timings};
pub use quality::{QualityIssue, QualityReport, QualityThresholds, assess};
pub use similarity::{Hit, dot, dot_many, dot_scalar, kernel_name, top_k};
pub use store::{Enrollment, SqliteStore, TemplateKey, TemplateStore, Upsert};
pub use warp::{Affine, resize, warp_affine, warp_affine_filtered};
