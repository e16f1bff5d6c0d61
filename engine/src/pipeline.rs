//! The [`Engine`]: photo bytes -> face -> template, and template comparison.

use std::path::{Path, PathBuf};
use std::time::Instant;

use image::RgbImage;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::align::{AlignedFace, align};
use crate::calibration::Calibration;
use crate::confirm::FaceConfirmer;
use crate::decode::{self, DecodeLimits, Photo, decode, decode_scaled};
use crate::detect::{DetectPolicy, Detector, Face, Point, YuNet, find_faces, redetect};
use crate::embed::{Embedder, OnnxEmbedder};
use crate::embedding::{Score, Template};
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::quality::{QualityReport, QualityThresholds, assess};
use crate::runtime::{self, SessionOptions};
use crate::warp::Affine;

/// What to do when a photo shows more than one face.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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

/// Engine settings. `Default` reads models from `.cache/` under the current directory, where
/// `make setup` puts them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Directory holding the model files named in the manifest.
    pub models_dir: PathBuf,
    /// Path of the ONNX Runtime shared library.
    pub onnxruntime: PathBuf,
    /// Model manifest; `None` uses the one compiled in.
    pub manifest: Option<PathBuf>,
    /// Id of the manifest's `[[recognizer]]` to use; `None` uses its `default_recognizer`.
    pub recognizer: Option<String>,
    /// Threads inside one inference call.
    pub intra_threads: usize,
    /// Sessions per model (concurrent inferences).
    pub sessions: usize,
    /// Match threshold (cosine); `None` uses the calibration file's, else the manifest's.
    pub threshold: Option<f32>,
    /// Calibration file written by `wajah calibrate` (must be for the same model).
    pub calibration: Option<PathBuf>,
    /// What to do with several faces.
    pub face_policy: FacePolicy,
    /// Detection resolution policy.
    pub detect: DetectPolicy,
    /// Capture check limits.
    pub quality: QualityThresholds,
    /// Refuse captures with quality issues (otherwise they are reported only).
    pub reject_low_quality: bool,
    /// Decoding limits.
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
            detect: DetectPolicy::default(),
            quality: QualityThresholds::default(),
            reject_low_quality: false,
            limits: DecodeLimits::default(),
        }
    }

    /// Checks every value.
    ///
    /// # Errors
    /// [`Error::Config`] naming the first bad value.
    pub fn validate(&self) -> Result<()> {
        if self.intra_threads == 0 || self.intra_threads > 256 {
            return Err(Error::Config(format!("intra_threads {} is outside 1..=256", self.intra_threads)));
        }
        if self.sessions == 0 || self.sessions > 256 {
            return Err(Error::Config(format!("sessions {} is outside 1..=256", self.sessions)));
        }
        if let Some(t) = self.threshold
            && !(-1.0..=1.0).contains(&t)
        {
            return Err(Error::Config(format!("threshold {t} is outside [-1, 1]")));
        }
        self.detect.validate()
    }
}

/// The outcome of comparing two templates, with its evidence.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// `score >= threshold`.
    pub matched: bool,
    /// Cosine similarity.
    pub score: Score,
    /// The threshold applied.
    pub threshold: f32,
}

/// Milliseconds spent per stage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Decoding and orientation.
    pub decode_ms: f64,
    /// Face detection (both passes).
    pub detect_ms: f64,
    /// Alignment.
    pub align_ms: f64,
    /// Capture checks.
    pub quality_ms: f64,
    /// Embedding.
    pub embed_ms: f64,
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
    /// sha256 of the photo bytes (hex).
    pub photo_sha256: String,
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

/// The face verification engine: owns the models and the settings.
pub struct Engine {
    config: EngineConfig,
    detector: Box<dyn Detector>,
    confirmer: FaceConfirmer,
    embedder: Box<dyn Embedder>,
    threshold: f32,
}

/// The first detection pass of a JPEG over twice [`DetectPolicy::max_side`] runs on a decode whose
/// longer side is at least this fraction of it.
const COARSE_FRACTION: f32 = 0.75;

/// The template path's first pass only has to find faces big enough to use: it runs at the
/// smallest size where a face of `min_interocular_px` still has a box of this many pixels.
const FIRST_PASS_FACE_PX: f32 = 20.0;

/// A frontal face's box is about this many times its eye distance.
const BOX_PER_INTEROCULAR: f32 = 2.5;

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

impl Engine {
    /// Loads the runtime and models named by `config` (checking every checksum).
    ///
    /// # Errors
    /// [`Error::Config`] for bad settings, [`Error::Model`] for missing or altered files.
    pub fn new(config: EngineConfig) -> Result<Self> {
        config.validate()?;
        let manifest = match &config.manifest {
            Some(path) => Manifest::load(path)?,
            None => Manifest::builtin()?,
        };
        let recognizer = manifest.recognizer(config.recognizer.as_deref())?;
        runtime::read_verified(&config.onnxruntime, &manifest.runtime.sha256)?;
        let env = runtime::environment(&config.onnxruntime)?;
        let options = SessionOptions { intra_threads: config.intra_threads, sessions: config.sessions };
        let detector = YuNet::load(env, &config.models_dir, &manifest.detector, options)?;
        let embedder = OnnxEmbedder::load(env, &config.models_dir, recognizer, options)?;
        let confirmer = FaceConfirmer::load(env, &config.models_dir, &manifest.confirmer, options)?;
        let calibrated = match &config.calibration {
            Some(path) => {
                let c = Calibration::load(path)?;
                if c.model != embedder.model_id() {
                    return Err(Error::ModelMismatch {
                        expected: embedder.model_id().into(),
                        found: c.model,
                    });
                }
                Some(c.threshold)
            }
            None => None,
        };
        let threshold = config.threshold.or(calibrated).unwrap_or(recognizer.threshold);
        Ok(Self { config, detector: Box::new(detector), confirmer, embedder: Box::new(embedder), threshold })
    }

    /// The settings in use.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Identity of the recogniser; stored with every template.
    pub fn model_id(&self) -> &str {
        self.embedder.model_id()
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.embedder.dim()
    }

    /// The match threshold in use.
    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    /// Decodes photo bytes under the configured limits.
    ///
    /// # Errors
    /// See [`decode`].
    pub fn decode(&self, bytes: &[u8]) -> Result<Photo> {
        decode(bytes, &self.config.limits)
    }

    /// All faces in a decoded image: the detector's, less those the [`FaceConfirmer`] does not
    /// take for human faces (as when making a template).
    ///
    /// # Errors
    /// [`Error::Inference`] when a model fails.
    pub fn faces(&self, image: &RgbImage) -> Result<Vec<Face>> {
        let faces = find_faces(self.detector.as_ref(), image, &self.config.detect)?;
        self.confirmed(image, faces)
    }

    /// `faces` (in `image` coordinates) that the [`FaceConfirmer`] takes for human faces.
    fn confirmed(&self, image: &RgbImage, faces: Vec<Face>) -> Result<Vec<Face>> {
        let probabilities = self.confirmer.probabilities(image, &faces)?;
        let min = self.confirmer.min_probability();
        Ok(faces.into_iter().zip(probabilities).filter(|(_, p)| *p >= min).map(|(f, _)| f).collect())
    }

    /// The raw detector on an image at its own resolution (no resizing, no second pass, no
    /// confirmation).
    ///
    /// # Errors
    /// [`Error::Inference`] when the detector fails.
    pub fn detect_native(&self, image: &RgbImage) -> Result<Vec<Face>> {
        self.detector.detect(image)
    }

    /// Decodes a photo and finds all faces.
    ///
    /// # Errors
    /// Decoding errors, or [`Error::Inference`].
    pub fn detect(&self, bytes: &[u8]) -> Result<Detection> {
        let photo = self.decode(bytes)?;
        let faces = self.faces(&photo.image)?;
        Ok(Detection { width: photo.image.width(), height: photo.image.height(), faces })
    }

    /// Aligns a face of `image` for the recogniser.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for degenerate landmarks.
    pub fn align(&self, image: &RgbImage, face: &Face) -> Result<AlignedFace> {
        let (w, h) = self.embedder.input_size();
        align(image, face, &self.embedder.alignment_template(), w, h)
    }

    /// Templates for aligned faces (batched through the recogniser).
    ///
    /// # Errors
    /// [`Error::Inference`] when the recogniser fails.
    pub fn embed(&self, faces: &[&AlignedFace]) -> Result<Vec<Template>> {
        let model = self.model_id().to_string();
        Ok(self
            .embedder
            .embed(faces)?
            .into_iter()
            .map(|embedding| Template { model: model.clone(), embedding })
            .collect())
    }

    /// Photo bytes -> the one face (under the configured [`FacePolicy`]) -> template.
    ///
    /// # Errors
    /// Decoding errors, [`Error::NoFace`], [`Error::MultipleFaces`], [`Error::FaceTooSmall`],
    /// [`Error::LowQuality`] (only with `reject_low_quality`), or internal errors.
    pub fn analyze(&self, bytes: &[u8]) -> Result<FaceAnalysis> {
        self.analyze_with(bytes, self.config.face_policy)
    }

    /// [`Engine::analyze`] with an explicit face policy.
    ///
    /// # Errors
    /// As [`Engine::analyze`].
    pub fn analyze_with(&self, bytes: &[u8], policy: FacePolicy) -> Result<FaceAnalysis> {
        let start = Instant::now();
        let photo_sha256 = hex::encode(Sha256::digest(bytes));
        // JPEGs are decoded at a DCT scale (libjpeg's n/8), not in full: up to twice the detection
        // size at the smallest scale that still covers it; larger ones (phone photos) at a scale at
        // least COARSE_FRACTION of it, so a 12 MP photo is detected at 1/8 without resampling.
        let limits = &self.config.limits;
        let (size, _) = decode::probe(bytes, limits)?;
        let (side, long) = (self.config.detect.max_side as f32, size.0.max(size.1).max(1) as f32);
        let coarse = if long > 2.0 * side { COARSE_FRACTION * side / long } else { side / long };
        let (photo, scale) = decode_scaled(bytes, limits, coarse)?;
        let mut decode_ms = ms(start);
        let t = Instant::now();
        let mut faces = self.coarse_faces(&photo.image, scale, long)?;
        let faces_found = faces.len();
        let mut detect_ms = ms(t);
        // Too few pixels on the chosen face at that scale: decode again, larger, and re-detect just
        // around it; it is aligned and embedded once, from that decode. A face that no longer scores
        // as one with enough pixels (an animal, say) is dropped and the choice made again.
        let wanted = self.config.detect.refine_size as f32 / self.config.detect.refine_context;
        let mut larger: Option<(Photo, f32)> = None;
        let (w, h) = photo.image.dimensions();
        let centre = Point { x: w as f32 / scale / 2.0, y: h as f32 / scale / 2.0 };
        let (face, photo, scale) = loop {
            let face = self.select(&faces, policy, centre)?;
            let face_px = face.bbox.width.max(face.bbox.height) * scale;
            if scale >= 1.0 || face_px >= wanted {
                break (face, &photo, scale);
            }
            let needed = scale * wanted / face_px.max(1.0);
            if larger.as_ref().is_none_or(|(_, s)| *s < needed.min(1.0)) {
                let t = Instant::now();
                larger = Some(decode_scaled(bytes, limits, needed)?);
                decode_ms += ms(t);
            }
            let (image, s) = larger.as_ref().map(|(p, s)| (&p.image, *s)).expect("decoded above");
            let t = Instant::now();
            let in_image = face.mapped(&Affine::scale(s));
            let refined = redetect(self.detector.as_ref(), image, &in_image, &self.config.detect)?
                .map(|f| f.mapped(&Affine::scale(1.0 / s)));
            detect_ms += ms(t);
            if let Some(refined) = refined.filter(|f| f.score >= self.config.quality.min_face_score) {
                let (photo, s) = larger.as_ref().expect("decoded above");
                break (refined, photo, *s);
            }
            let before = faces.len();
            faces.retain(|f| *f != face);
            if faces.len() == before {
                return Err(Error::NoFace);
            }
        };
        let mut analysis = self.finish(&photo.image, scale, size, face, faces_found)?;
        analysis.timings.detect_ms = detect_ms;
        analysis.timings.decode_ms = decode_ms;
        analysis.photo_sha256 = photo_sha256;
        Ok(analysis)
    }

    /// [`Engine::analyze_with`] on an already decoded image (`photo_sha256` is left empty).
    ///
    /// # Errors
    /// As [`Engine::analyze`], without decoding errors.
    pub fn analyze_image(&self, image: &RgbImage, policy: FacePolicy) -> Result<FaceAnalysis> {
        let t = Instant::now();
        let faces = self.coarse_faces(image, 1.0, image.width().max(image.height()) as f32)?;
        let centre = Point { x: image.width() as f32 / 2.0, y: image.height() as f32 / 2.0 };
        let face = self.select(&faces, policy, centre)?;
        let detect_ms = ms(t);
        let mut analysis = self.finish(image, 1.0, image.dimensions(), face, faces.len())?;
        analysis.timings.detect_ms = detect_ms;
        Ok(analysis)
    }

    /// The faces of `image` (the photo, whose longer side is `long`, scaled by `scale`) that could
    /// make a template, in photo coordinates. The first pass runs at the smallest size where a
    /// face of the minimum usable size is still found ([`FIRST_PASS_FACE_PX`]), between
    /// [`DetectPolicy::min_side`] and [`DetectPolicy::max_side`]; faces are then re-detected on
    /// their crops as usual, so templates do not depend on that size. Only faces scored at least
    /// `min_face_score` that the [`FaceConfirmer`] takes for human faces are kept.
    fn coarse_faces(&self, image: &RgbImage, scale: f32, long: f32) -> Result<Vec<Face>> {
        let policy = &self.config.detect;
        let min_box = self.config.quality.min_interocular_px * BOX_PER_INTEROCULAR;
        let side = (long * FIRST_PASS_FACE_PX / min_box.max(1.0)).ceil() as u32;
        let first = DetectPolicy { max_side: side.clamp(policy.min_side, policy.max_side), ..*policy };
        let mut faces = find_faces(self.detector.as_ref(), image, &first)?;
        faces.retain(|f| f.score >= self.config.quality.min_face_score);
        let to_photo = Affine::scale(1.0 / scale);
        Ok(self.confirmed(image, faces)?.iter().map(|f| f.mapped(&to_photo)).collect())
    }

    /// Align, assess and embed `face` (photo coordinates) from `image` (the photo at `scale`).
    fn finish(
        &self,
        image: &RgbImage,
        scale: f32,
        full: (u32, u32),
        face: Face,
        faces_found: usize,
    ) -> Result<FaceAnalysis> {
        let mut timings = Timings::default();
        let t = Instant::now();
        let in_image = face.mapped(&Affine::scale(scale));
        let aligned = self.align(image, &in_image)?;
        timings.align_ms = ms(t);

        let t = Instant::now();
        let quality = assess(&face, &aligned, full, &self.config.quality);
        timings.quality_ms = ms(t);
        if self.config.reject_low_quality && !quality.is_good() {
            return Err(Error::LowQuality {
                reasons: quality.issues.iter().map(|i| i.as_str().into()).collect(),
            });
        }

        let t = Instant::now();
        let template =
            self.embed(&[&aligned])?.pop().ok_or_else(|| Error::Inference("no embedding".into()))?;
        timings.embed_ms = ms(t);
        Ok(FaceAnalysis {
            face,
            faces_found,
            quality,
            template,
            aligned,
            photo_size: full,
            photo_sha256: String::new(),
            timings,
        })
    }

    /// Picks the face to use. Faces scored below `min_face_score` are not faces for this purpose;
    /// faces too small to recognise do not count as "another face". Of several usable faces, the
    /// main one (see [`FacePolicy::Largest`]) for a photo centred on `centre`.
    fn select(&self, faces: &[Face], policy: FacePolicy, centre: Point) -> Result<Face> {
        let q = &self.config.quality;
        let min = q.min_interocular_px;
        let candidates: Vec<&Face> = faces.iter().filter(|f| f.score >= q.min_face_score).collect();
        if candidates.is_empty() {
            return Err(Error::NoFace);
        }
        let usable: Vec<&Face> = candidates.iter().copied().filter(|f| f.interocular() >= min).collect();
        let largest = main_face(&usable, centre);
        match (largest, usable.len(), policy) {
            (None, _, _) => {
                let actual = candidates.iter().map(|f| f.interocular()).fold(0.0, f32::max);
                Err(Error::FaceTooSmall { actual, min })
            }
            (Some(face), 1, _) | (Some(face), _, FacePolicy::Largest) => Ok(*face),
            (Some(_), count, FacePolicy::Single) => Err(Error::MultipleFaces { count }),
        }
    }

    /// Photo bytes -> template, under the configured policy.
    ///
    /// # Errors
    /// As [`Engine::analyze`].
    pub fn template(&self, bytes: &[u8]) -> Result<Template> {
        Ok(self.analyze(bytes)?.template)
    }

    /// Analyses many photos in parallel (rayon), one result per photo, in order.
    pub fn analyze_batch(&self, photos: &[&[u8]]) -> Vec<Result<FaceAnalysis>> {
        photos.par_iter().map(|bytes| self.analyze(bytes)).collect()
    }

    /// Compares two templates against the engine's threshold.
    ///
    /// # Errors
    /// [`Error::ModelMismatch`] when either template was made by another model.
    pub fn compare(&self, a: &Template, b: &Template) -> Result<Decision> {
        for t in [a, b] {
            if t.model != self.model_id() {
                return Err(Error::ModelMismatch {
                    expected: self.model_id().into(),
                    found: t.model.clone(),
                });
            }
        }
        let score = a.similarity(b)?;
        Ok(Decision { matched: score.0 >= self.threshold, score, threshold: self.threshold })
    }

    /// 1:1 verification: a probe photo against an enrolled template.
    ///
    /// # Errors
    /// As [`Engine::analyze`] and [`Engine::compare`].
    pub fn verify(&self, probe: &[u8], enrolled: &Template) -> Result<(Decision, FaceAnalysis)> {
        let analysis = self.analyze(probe)?;
        let decision = self.compare(&analysis.template, enrolled)?;
        Ok((decision, analysis))
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
