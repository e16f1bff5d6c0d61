//! The model manifest (`models/manifest.toml`): which files to load, their checksums and input specs.

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

/// The manifest shipped with this version of the engine.
pub const DEFAULT_MANIFEST: &str = include_str!("../../models/manifest.toml");

/// Parsed `models/manifest.toml`.
#[derive(Clone, Debug, Deserialize)]
pub struct Manifest {
    /// The ONNX Runtime library.
    pub runtime: RuntimeSpec,
    /// The face detector.
    pub detector: DetectorSpec,
    /// The face recogniser.
    pub recognizer: RecognizerSpec,
    /// The second opinion that a detection is a human face.
    pub confirmer: ConfirmerSpec,
}

/// Where the ONNX Runtime library comes from.
#[derive(Clone, Debug, Deserialize)]
pub struct RuntimeSpec {
    /// Library file name, e.g. `libonnxruntime.so.1.31.1`.
    pub library: String,
    /// sha256 of the library.
    pub sha256: String,
    /// ONNX Runtime version.
    pub version: String,
}

/// A YuNet-style detector.
#[derive(Clone, Debug, Deserialize)]
pub struct DetectorSpec {
    /// Model id, e.g. `yunet-2023mar-int8bq`.
    pub id: String,
    /// File name inside the model directory.
    pub file: String,
    /// sha256 of that file.
    pub sha256: String,
    /// Minimum face score.
    pub score_threshold: f32,
    /// IoU above which a lower-scored box is suppressed.
    pub nms_iou_threshold: f32,
}

/// An ArcFace-style recogniser on 112x112 5-point aligned crops.
#[derive(Clone, Debug, Deserialize)]
pub struct RecognizerSpec {
    /// Model id, e.g. `sface-2021dec-int8bq`.
    pub id: String,
    /// File name inside the model directory.
    pub file: String,
    /// sha256 of that file.
    pub sha256: String,
    /// Input width and height.
    pub input_size: [u32; 2],
    /// `rgb` or `bgr`.
    pub colour_order: String,
    /// Per-channel mean subtracted before feeding (in the colour order above).
    pub mean: [f32; 3],
    /// Per-channel divisor.
    pub std: [f32; 3],
    /// Embedding dimension.
    pub output_dim: usize,
    /// Default cosine threshold for a match.
    pub threshold: f32,
}

/// An MTCNN O-Net-style face/non-face classifier on square crops of the face box.
#[derive(Clone, Debug, Deserialize)]
pub struct ConfirmerSpec {
    /// Model id, e.g. `mtcnn-onet`.
    pub id: String,
    /// File name inside the model directory.
    pub file: String,
    /// sha256 of that file.
    pub sha256: String,
    /// Side of the square input crop.
    pub input_size: u32,
    /// `rgb` or `bgr`.
    pub colour_order: String,
    /// Subtracted from every channel before feeding.
    pub mean: f32,
    /// Divisor after the mean.
    pub std: f32,
    /// The model takes images with rows and columns swapped (N x W x H x C).
    pub transposed: bool,
    /// Name of the `[not face, face]` softmax output.
    pub output: String,
    /// Face probability at or above which a detection counts as a human face.
    pub min_probability: f32,
}

impl Manifest {
    /// Parses manifest text.
    ///
    /// # Errors
    /// [`Error::Config`] when the text is not a valid manifest.
    pub fn parse(text: &str) -> Result<Self> {
        let manifest: Manifest =
            toml::from_str(text).map_err(|e| Error::Config(format!("model manifest: {e}")))?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Reads and parses a manifest file.
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Config`].
    pub fn load(path: &Path) -> Result<Self> {
        Self::parse(&std::fs::read_to_string(path)?)
    }

    /// The manifest compiled into this engine.
    ///
    /// # Errors
    /// Only if the compiled-in manifest were broken, which a test rules out.
    pub fn builtin() -> Result<Self> {
        Self::parse(DEFAULT_MANIFEST)
    }

    fn validate(&self) -> Result<()> {
        let r = &self.recognizer;
        if r.input_size[0] == 0 || r.input_size[1] == 0 || r.output_dim == 0 {
            return Err(Error::Config("recognizer input size and output_dim must be positive".into()));
        }
        if !matches!(r.colour_order.as_str(), "rgb" | "bgr") {
            return Err(Error::Config(format!(
                "recognizer colour_order {:?} is not rgb or bgr",
                r.colour_order
            )));
        }
        if r.std.contains(&0.0) {
            return Err(Error::Config("recognizer std must not be zero".into()));
        }
        if !(-1.0..=1.0).contains(&r.threshold) {
            return Err(Error::Config(format!("recognizer threshold {} is outside [-1, 1]", r.threshold)));
        }
        let c = &self.confirmer;
        if c.input_size == 0 || c.std == 0.0 || !matches!(c.colour_order.as_str(), "rgb" | "bgr") {
            return Err(Error::Config("confirmer needs a positive input_size and std, rgb or bgr".into()));
        }
        if !(0.0..=1.0).contains(&c.min_probability) {
            return Err(Error::Config(format!(
                "confirmer min_probability {} is outside [0, 1]",
                c.min_probability
            )));
        }
        let d = &self.detector;
        if !(0.0..=1.0).contains(&d.score_threshold) || !(0.0..=1.0).contains(&d.nms_iou_threshold) {
            return Err(Error::Config("detector thresholds must be within [0, 1]".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_manifest_parses() {
        let m = Manifest::builtin().expect("the shipped manifest is valid");
        assert_eq!(m.recognizer.output_dim, 128);
        assert_eq!(m.recognizer.colour_order, "rgb");
        assert_eq!(m.recognizer.sha256.len(), 64);
    }

    #[test]
    fn bad_manifest_is_a_config_error() {
        assert!(matches!(Manifest::parse("[detector]\n"), Err(Error::Config(_))));
    }
}
