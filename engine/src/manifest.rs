//! The model manifest (`models/manifest.toml`): which files to load, their checksums and input specs.
//! `models/README.md` explains the fields and how to add a recogniser.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::detect::Point;
use crate::error::{Error, Result};

/// The manifest shipped with this version of the engine.
pub const DEFAULT_MANIFEST: &str = include_str!("../../models/manifest.toml");

/// Parsed `models/manifest.toml`.
#[derive(Clone, Debug, Deserialize)]
pub struct Manifest {
    /// Id of the recogniser used when the engine's configuration names none.
    pub default_recognizer: String,
    /// The ONNX Runtime library.
    pub runtime: RuntimeSpec,
    /// The face detector.
    pub detector: DetectorSpec,
    /// The face recognisers (`[[recognizer]]` tables), each with its own id; the engine loads one.
    #[serde(rename = "recognizer")]
    pub recognizers: Vec<RecognizerSpec>,
    /// The second opinion that a detection is a human face.
    pub confirmer: ConfirmerSpec,
    /// The occlusion checks (eyeglasses, sunglasses, mask, other occlusion); none when absent.
    #[serde(default)]
    pub occlusion: Option<OcclusionSpec>,
}

/// The occlusion model built into the engine (trained in this repository, see `models/README.md`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OcclusionSpec {
    /// Model id, e.g. `wajah-occlusion-v1`.
    pub id: String,
    /// The committed file under `models/` (compiled into the engine).
    pub file: String,
    /// sha256 of that file.
    pub sha256: String,
    /// How it was made (the command), for people.
    #[serde(default)]
    pub trained_by: String,
}

/// The order of the colour channels a model takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColourOrder {
    /// Red, green, blue.
    Rgb,
    /// Blue, green, red (OpenCV's order).
    Bgr,
}

impl ColourOrder {
    /// For each input channel of the model, in order, its index in an RGB pixel.
    pub fn rgb_indices(self) -> [usize; 3] {
        match self {
            ColourOrder::Rgb => [0, 1, 2],
            ColourOrder::Bgr => [2, 1, 0],
        }
    }
}

/// How a detector's outputs are decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DetectorKind {
    /// YuNet: per stride S, outputs `cls_S`, `obj_S`, `bbox_S` and `kps_S` on an anchor-free grid.
    Yunet,
}

/// How a recogniser's input is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecognizerKind {
    /// A 5-point similarity alignment onto the spec's `alignment_template`, an N x 3 x H x W crop,
    /// one embedding per face (ArcFace, SFace).
    Arcface112,
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
    /// How the outputs are decoded.
    pub kind: DetectorKind,
    /// File name inside the model directory.
    pub file: String,
    /// sha256 of that file.
    pub sha256: String,
    /// Channel order of the input.
    pub colour_order: ColourOrder,
    /// Per-channel mean subtracted before feeding (in the colour order above).
    pub mean: [f32; 3],
    /// Per-channel divisor.
    pub std: [f32; 3],
    /// The input's width and height are padded up to a multiple of this.
    pub stride_multiple: u32,
    /// Output grid strides, in input pixels (powers of two dividing `stride_multiple`).
    pub strides: Vec<u32>,
    /// Landmarks per face (the engine uses five).
    pub landmarks: usize,
    /// Minimum face score.
    pub score_threshold: f32,
    /// IoU above which a lower-scored box is suppressed.
    pub nms_iou_threshold: f32,
}

/// A recogniser on aligned crops.
#[derive(Clone, Debug, Deserialize)]
pub struct RecognizerSpec {
    /// Model id, e.g. `sface-2021dec-int8bq`; unique within the manifest.
    pub id: String,
    /// How its input is made.
    pub kind: RecognizerKind,
    /// File name inside the model directory.
    pub file: String,
    /// sha256 of that file.
    pub sha256: String,
    /// Input width and height.
    pub input_size: [u32; 2],
    /// Channel order of the input.
    pub colour_order: ColourOrder,
    /// Per-channel mean subtracted before feeding (in the colour order above).
    pub mean: [f32; 3],
    /// Per-channel divisor.
    pub std: [f32; 3],
    /// Embedding dimension.
    pub output_dim: usize,
    /// Where the five landmarks go in the input crop, in its pixels (x, y).
    pub alignment_template: [[f32; 2]; 5],
    /// Default cosine threshold for a match.
    pub threshold: f32,
}

impl RecognizerSpec {
    /// [`RecognizerSpec::alignment_template`] as points.
    pub fn template_points(&self) -> [Point; 5] {
        self.alignment_template.map(|[x, y]| Point { x, y })
    }
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
    /// Channel order of the input.
    pub colour_order: ColourOrder,
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

    /// The recogniser with id `id`, or the default one for `None`.
    ///
    /// # Errors
    /// [`Error::Config`] when no `[[recognizer]]` has that id.
    pub fn recognizer(&self, id: Option<&str>) -> Result<&RecognizerSpec> {
        let id = id.unwrap_or(&self.default_recognizer);
        self.recognizers.iter().find(|r| r.id == id).ok_or_else(|| {
            let ids: Vec<&str> = self.recognizers.iter().map(|r| r.id.as_str()).collect();
            Error::Config(format!("unknown recogniser `{id}`; the manifest lists: {}", ids.join(", ")))
        })
    }

    fn validate(&self) -> Result<()> {
        validate_detector(&self.detector)?;
        for (i, r) in self.recognizers.iter().enumerate() {
            if self.recognizers[..i].iter().any(|other| other.id == r.id) {
                return Err(Error::Config(format!("recognizer id `{}` is listed twice", r.id)));
            }
            validate_recognizer(r)?;
        }
        self.recognizer(None).map_err(|e| Error::Config(format!("default_recognizer: {e}")))?;
        let c = &self.confirmer;
        if c.input_size == 0 || c.std == 0.0 {
            return Err(Error::Config("confirmer needs a positive input_size and a non-zero std".into()));
        }
        if !(0.0..=1.0).contains(&c.min_probability) {
            return Err(Error::Config(format!(
                "confirmer min_probability {} is outside [0, 1]",
                c.min_probability
            )));
        }
        Ok(())
    }
}

fn validate_detector(d: &DetectorSpec) -> Result<()> {
    if !(0.0..=1.0).contains(&d.score_threshold) || !(0.0..=1.0).contains(&d.nms_iou_threshold) {
        return Err(Error::Config("detector thresholds must be within [0, 1]".into()));
    }
    if d.std.contains(&0.0) {
        return Err(Error::Config("detector std must not be zero".into()));
    }
    if d.landmarks != 5 {
        return Err(Error::Config(format!("detector gives {} landmarks; the engine needs 5", d.landmarks)));
    }
    let m = d.stride_multiple;
    if !m.is_power_of_two() {
        return Err(Error::Config(format!("detector stride_multiple {m} is not a power of two")));
    }
    if d.strides.is_empty() {
        return Err(Error::Config("detector strides are empty".into()));
    }
    for (i, &s) in d.strides.iter().enumerate() {
        if !s.is_power_of_two() || !m.is_multiple_of(s) {
            return Err(Error::Config(format!(
                "detector stride {s} is not a power of two dividing stride_multiple {m}"
            )));
        }
        if d.strides[..i].contains(&s) {
            return Err(Error::Config(format!("detector stride {s} is listed twice")));
        }
    }
    Ok(())
}

fn validate_recognizer(r: &RecognizerSpec) -> Result<()> {
    let id = &r.id;
    let [w, h] = r.input_size;
    if w == 0 || h == 0 || r.output_dim == 0 {
        return Err(Error::Config(format!("recognizer `{id}`: input size and output_dim must be positive")));
    }
    if r.std.contains(&0.0) {
        return Err(Error::Config(format!("recognizer `{id}`: std must not be zero")));
    }
    if !(-1.0..=1.0).contains(&r.threshold) {
        return Err(Error::Config(format!(
            "recognizer `{id}`: threshold {} is outside [-1, 1]",
            r.threshold
        )));
    }
    for [x, y] in r.alignment_template {
        if !(0.0..=w as f32).contains(&x) || !(0.0..=h as f32).contains(&y) {
            return Err(Error::Config(format!(
                "recognizer `{id}`: alignment_template point ({x}, {y}) is outside the {w}x{h} input"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped manifest with `from` replaced by `to` (which must occur).
    fn edited(from: &str, to: &str) -> String {
        assert!(DEFAULT_MANIFEST.contains(from), "the manifest has no {from:?}");
        DEFAULT_MANIFEST.replacen(from, to, 1)
    }

    fn config_error(text: &str) -> String {
        match Manifest::parse(text) {
            Err(Error::Config(message)) => message,
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    #[test]
    fn builtin_manifest_parses() {
        let m = Manifest::builtin().expect("the shipped manifest is valid");
        let r = m.recognizer(None).expect("the default recogniser is listed");
        assert_eq!((r.id.as_str(), r.kind), ("sface-2021dec-int8bq", RecognizerKind::Arcface112));
        assert_eq!((r.output_dim, r.colour_order, r.sha256.len()), (128, ColourOrder::Rgb, 64));
        assert_eq!(r.template_points()[0], Point { x: 38.2946, y: 51.6963 });
        assert_eq!((m.detector.kind, m.detector.colour_order), (DetectorKind::Yunet, ColourOrder::Bgr));
        assert_eq!((m.detector.strides.as_slice(), m.detector.stride_multiple), (&[8, 16, 32][..], 32));
        assert_eq!(m.confirmer.colour_order, ColourOrder::Rgb);
    }

    #[test]
    fn bad_manifest_is_a_config_error() {
        assert!(matches!(Manifest::parse("[detector]\n"), Err(Error::Config(_))));
    }

    #[test]
    fn colour_order_is_rgb_or_bgr() {
        assert_eq!(ColourOrder::Bgr.rgb_indices(), [2, 1, 0]);
        let message = config_error(&edited("colour_order = \"rgb\"", "colour_order = \"RGB\""));
        assert!(message.contains("unknown variant `RGB`"), "{message}");
    }

    #[test]
    fn strides_are_checked() {
        for (strides, says) in [("[]", "empty"), ("[8, 12, 32]", "stride 12"), ("[8, 64]", "stride 64")] {
            let message = config_error(&edited("strides = [8, 16, 32]", &format!("strides = {strides}")));
            assert!(message.contains(says), "{strides}: {message}");
        }
        let message = config_error(&edited("stride_multiple = 32", "stride_multiple = 48"));
        assert!(message.contains("not a power of two"), "{message}");
    }

    /// The body of the shipped manifest's `[[recognizer]]` table.
    fn sface_table() -> &'static str {
        DEFAULT_MANIFEST
            .split("\n[[recognizer]]\n")
            .nth(1)
            .and_then(|t| t.split("\n[").next())
            .expect("the shipped manifest has a [[recognizer]] table")
    }

    #[test]
    fn recognizers_are_chosen_by_id() {
        let second = sface_table().replacen("id = \"sface-2021dec-int8bq\"", "id = \"second\"", 1);
        let m = Manifest::parse(&format!("{DEFAULT_MANIFEST}\n[[recognizer]]\n{second}")).expect("valid");
        assert_eq!(m.recognizer(Some("second")).expect("listed").id, "second");
        assert_eq!(m.recognizer(None).expect("default").id, "sface-2021dec-int8bq");
        let message = m.recognizer(Some("nope")).expect_err("not listed").to_string();
        assert!(
            message.contains("unknown recogniser `nope`; the manifest lists: sface-2021dec-int8bq, second"),
            "{message}"
        );
        let twice = format!("{DEFAULT_MANIFEST}\n[[recognizer]]\n{}", sface_table());
        assert!(config_error(&twice).contains("`sface-2021dec-int8bq` is listed twice"));
        let message = config_error(&edited("default_recognizer = \"sface", "default_recognizer = \"x-sface"));
        assert!(message.contains("unknown recogniser `x-sface-2021dec-int8bq`"), "{message}");
    }

    #[test]
    fn alignment_template_is_inside_the_input() {
        let message = config_error(&edited("[70.7299, 92.2041]", "[70.7299, 112.5]"));
        assert!(message.contains("outside the 112x112 input"), "{message}");
        let message = config_error(&edited("    [70.7299, 92.2041],\n", ""));
        assert!(message.contains("alignment_template"), "{message}");
    }
}
