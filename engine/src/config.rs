//! [`EngineConfig`]: every engine setting, with defaults that read models from `.cache/`.
//!
//! The match threshold is decided in one place ([`EngineConfig::threshold`]'s doc): an explicit
//! `threshold` wins, else the calibration file's, else the model manifest's.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::accuracy::Mode;
use crate::decode::DecodeLimits;
use crate::detect::DetectPolicy;
use crate::error::{Error, Result};
use crate::liveness::LivenessThresholds;
use crate::manifest::Manifest;
use crate::quality::QualityThresholds;

/// Upper bound for thread and session counts.
const MAX_THREADS: usize = 256;

/// What to do when a photo shows more than one face.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum FacePolicy {
    /// Refuse with [`Error::MultipleFaces`] (the default: an ID photo or a selfie shows one person).
    #[default]
    Single,
    /// Take the main face; others are ignored. That is the largest box, discounted by its distance
    /// from the photo's centre (box area less twice the squared offset), so that a bystander cut
    /// off at the edge, or closer to the camera at the side, does not win over the centred subject.
    /// Eye distance is not used: it shrinks as a head turns.
    Largest,
}

/// What enrolment does with a face that matches other enrolled subjects (the duplicate check a
/// national registry's ABIS makes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DuplicatePolicy {
    /// Store the enrolment and report the matching subjects for review.
    #[default]
    Flag,
    /// Refuse it ([`Error::PossibleDuplicate`]) and store nothing.
    Refuse,
}

/// The duplicate check at enrolment.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DuplicateCheck {
    /// Flag or refuse.
    pub policy: DuplicatePolicy,
    /// Other subjects scoring at least this are reported; `None` uses the match threshold.
    pub min_score: Option<f32>,
    /// At most this many are reported.
    pub candidates: usize,
}

impl Default for DuplicateCheck {
    fn default() -> Self {
        Self { policy: DuplicatePolicy::Flag, min_score: None, candidates: 5 }
    }
}

/// Engine settings. `Default` reads models from `.cache/` under the current directory, where
/// `make setup` puts them. With the `clap` feature the fields are also flags and `WAJAH_*`
/// environment variables, shared by `wajah` and `wajah-server`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Directory holding the model files named in the manifest.
    #[cfg_attr(feature = "clap", arg(long, env = "WAJAH_MODELS_DIR", global = true, required = false))]
    pub models_dir: PathBuf,
    /// Path of the ONNX Runtime shared library.
    #[cfg_attr(feature = "clap", arg(long, env = "WAJAH_ONNXRUNTIME", global = true, required = false))]
    pub onnxruntime: PathBuf,
    /// Model manifest; `None` uses the one compiled in.
    #[cfg_attr(feature = "clap", arg(long, env = "WAJAH_MANIFEST", global = true))]
    pub manifest: Option<PathBuf>,
    /// Id of the manifest's `[[recognizer]]` to use; `None` uses its `default_recognizer`.
    #[cfg_attr(feature = "clap", arg(long, env = "WAJAH_RECOGNIZER", global = true))]
    pub recognizer: Option<String>,
    /// Threads inside one inference call.
    #[cfg_attr(
        feature = "clap",
        arg(long, alias = "threads", env = "WAJAH_INTRA_THREADS", global = true, required = false)
    )]
    pub intra_threads: usize,
    /// Sessions per model (concurrent inferences).
    #[cfg_attr(feature = "clap", arg(skip))]
    pub sessions: usize,
    /// Match threshold (cosine). Precedence: this value (flag, `WAJAH_THRESHOLD`, or config file),
    /// else the calibration file's, else the manifest's published one.
    #[cfg_attr(feature = "clap", arg(long, env = "WAJAH_THRESHOLD", global = true))]
    pub threshold: Option<f32>,
    /// Calibration file written by `wajah calibrate` (must be for the same model).
    #[cfg_attr(feature = "clap", arg(long, env = "WAJAH_CALIBRATION", global = true))]
    pub calibration: Option<PathBuf>,
    /// What to do with several faces.
    #[cfg_attr(
        feature = "clap",
        arg(long, value_enum, env = "WAJAH_FACE_POLICY", global = true, required = false)
    )]
    pub face_policy: FacePolicy,
    /// `fast` (one embedding per face) or `accurate` (the face and its mirror image, smaller faces,
    /// turned photos); see README, *Accuracy modes*.
    #[cfg_attr(
        feature = "clap",
        arg(long, value_enum, env = "WAJAH_ACCURACY", global = true, required = false)
    )]
    pub accuracy: Mode,
    /// Detection resolution policy.
    #[cfg_attr(feature = "clap", arg(skip))]
    pub detect: DetectPolicy,
    /// Capture check limits.
    #[cfg_attr(feature = "clap", arg(skip))]
    pub quality: QualityThresholds,
    /// Liveness check limits.
    #[cfg_attr(feature = "clap", arg(skip))]
    pub liveness: LivenessThresholds,
    /// The duplicate check at enrolment.
    #[cfg_attr(feature = "clap", arg(skip))]
    pub duplicates: DuplicateCheck,
    /// Refuse captures with quality issues (otherwise they are reported only).
    #[cfg_attr(feature = "clap", arg(skip))]
    pub reject_low_quality: bool,
    /// In registration mode, refuse a selfie with clear glasses too (the IKD rule, and the default).
    /// The check flags 1.4% of faces without glasses (README.md, "Capture compliance"); an
    /// operator who would rather report glasses than refuse on them sets this to false.
    #[cfg_attr(feature = "clap", arg(skip))]
    pub refuse_eyeglasses: bool,
    /// Decoding limits.
    #[cfg_attr(feature = "clap", arg(skip))]
    pub limits: DecodeLimits,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self::in_dir(Path::new("."))
    }
}

impl EngineConfig {
    /// Settings reading models and runtime from `root/.cache`, as `make setup` provisions them.
    pub fn in_dir(root: &Path) -> Self {
        let runtime = Manifest::builtin().map(|m| m.runtime.library).unwrap_or_default();
        Self {
            models_dir: root.join(".cache/models"),
            onnxruntime: root.join(".cache/onnxruntime").join(runtime),
            manifest: None,
            recognizer: None,
            intra_threads: 1,
            sessions: 1,
            threshold: None,
            calibration: None,
            face_policy: FacePolicy::Single,
            accuracy: Mode::Fast,
            detect: DetectPolicy::default(),
            quality: QualityThresholds::default(),
            liveness: LivenessThresholds::default(),
            duplicates: DuplicateCheck::default(),
            reject_low_quality: false,
            refuse_eyeglasses: true,
            limits: DecodeLimits::default(),
        }
    }

    /// Checks every value.
    ///
    /// # Errors
    /// [`Error::Config`] naming the first bad value.
    pub fn validate(&self) -> Result<()> {
        if self.intra_threads == 0 || self.intra_threads > MAX_THREADS {
            return Err(Error::Config(format!(
                "intra_threads {} is outside 1..={MAX_THREADS}",
                self.intra_threads
            )));
        }
        if self.sessions == 0 || self.sessions > MAX_THREADS {
            return Err(Error::Config(format!("sessions {} is outside 1..={MAX_THREADS}", self.sessions)));
        }
        if let Some(t) = self.threshold
            && !(-1.0..=1.0).contains(&t)
        {
            return Err(Error::Config(format!("threshold {t} is outside [-1, 1]")));
        }
        self.quality.validate()?;
        self.liveness.validate()?;
        if self.duplicates.candidates == 0 || self.duplicates.candidates > 100 {
            return Err(Error::Config(format!(
                "duplicates.candidates {} is outside 1..=100",
                self.duplicates.candidates
            )));
        }
        if let Some(t) = self.duplicates.min_score
            && !(-1.0..=1.0).contains(&t)
        {
            return Err(Error::Config(format!("duplicates.min_score {t} is outside [-1, 1]")));
        }
        self.detect.validate()
    }
}
