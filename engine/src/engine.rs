//! The [`Engine`]: photo bytes -> face -> template, and template comparison.

use std::time::Instant;

use image::RgbImage;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::accuracy::{Mode, Techniques, averaged, extra_crops, rotated};
use crate::align::{AlignedFace, align};
use crate::analysis::{Decision, Detection, FaceAnalysis, Timings, ms};
use crate::calibration::Calibration;
use crate::config::{EngineConfig, FacePolicy};
use crate::confirm::FaceConfirmer;
use crate::decode::{Photo, decode};
use crate::detect::{Face, Point, YuNet};
use crate::embed::{Embedder, OnnxEmbedder};
use crate::embedding::Template;
use crate::error::{Error, Result};
use crate::liveness::{FacePatch, PresentationAttackDetector, plane_fit};
use crate::locate::{FaceFinder, FaceQuery};
use crate::manifest::Manifest;
use crate::occlusion::{OcclusionModel, Occlusions, features};
use crate::quality::{QualityIssue, assess};
use crate::runtime::{self, SessionOptions};
use crate::warp::Affine;

/// The face verification engine: owns the models and the settings.
pub struct Engine {
    config: EngineConfig,
    finder: FaceFinder,
    embedder: Box<dyn Embedder>,
    threshold: f32,
    /// Occlusion checks; `None` when the manifest has none or it was trained on another recogniser.
    occlusion: Option<OcclusionModel>,
    /// Trained presentation-attack detectors consulted by liveness checks (none ship).
    pub(crate) presentation_attack_detectors: Vec<Box<dyn PresentationAttackDetector>>,
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
        // The one place the threshold is chosen: explicit setting > calibration > manifest.
        let threshold = config.threshold.or(calibrated).unwrap_or(recognizer.threshold);
        let finder = FaceFinder {
            detector: Box::new(detector),
            confirmer,
            policy: config.detect,
            quality: config.quality,
        };
        let occlusion = match &manifest.occlusion {
            Some(spec) => {
                let model = OcclusionModel::builtin(&spec.sha256)?;
                (model.recognizer == embedder.model_id() && model.embedding_dim() == embedder.dim())
                    .then_some(model)
            }
            None => None,
        };
        Ok(Self {
            config,
            finder,
            embedder: Box::new(embedder),
            threshold,
            occlusion,
            presentation_attack_detectors: Vec::new(),
        })
    }

    /// Adds a presentation-attack detector to every later liveness check.
    pub fn add_presentation_attack_detector(&mut self, detector: Box<dyn PresentationAttackDetector>) {
        self.presentation_attack_detectors.push(detector);
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

    /// The occlusion model in use, if one fits the recogniser.
    pub fn occlusion_model(&self) -> Option<&OcclusionModel> {
        self.occlusion.as_ref()
    }

    /// Occlusion probabilities of an aligned face and its template (`None` without a fitting model).
    pub fn occlusions(&self, aligned: &AlignedFace, template: &Template) -> Option<Occlusions> {
        let model = self.occlusion.as_ref()?;
        Some(model.predict(&features(aligned.image(), template.embedding.as_slice())))
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

    /// The faces of a decoded image that `query` asks for (see [`FaceQuery`]).
    ///
    /// # Errors
    /// [`Error::Inference`] when a model fails.
    pub fn faces(&self, image: &RgbImage, query: FaceQuery) -> Result<Vec<Face>> {
        self.finder.find(image, query)
    }

    /// For each face of `image`, the confirmer's (O-Net's) probability that it is a human face;
    /// [`FaceQuery::All`] and [`FaceQuery::Usable`] keep faces at or above its `min_probability`.
    ///
    /// # Errors
    /// [`Error::Inference`] when the model fails.
    pub fn face_probabilities(&self, image: &RgbImage, faces: &[Face]) -> Result<Vec<f32>> {
        self.finder.confirmer.probabilities(image, faces)
    }

    /// Decodes a photo and finds every human face in it ([`FaceQuery::All`]).
    ///
    /// # Errors
    /// Decoding errors, or [`Error::Inference`].
    pub fn detect(&self, bytes: &[u8]) -> Result<Detection> {
        let photo = self.decode(bytes)?;
        let faces = self.faces(&photo.image, FaceQuery::All)?;
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
        self.analyze_in(bytes, policy, self.config.accuracy)
    }

    /// [`Engine::analyze_with`] in an explicit [`Mode`] (say `accurate` for ID photos only).
    ///
    /// # Errors
    /// As [`Engine::analyze`].
    pub fn analyze_in(&self, bytes: &[u8], policy: FacePolicy, mode: Mode) -> Result<FaceAnalysis> {
        self.analyze_checked(bytes, policy, mode, true)
    }

    /// [`Engine::analyze_in`]; without `occlusion` the occlusion checks are skipped (a liveness
    /// frame other than the straight one needs only its pose and template).
    pub(crate) fn analyze_checked(
        &self,
        bytes: &[u8],
        policy: FacePolicy,
        mode: Mode,
        occlusion: bool,
    ) -> Result<FaceAnalysis> {
        let photo_sha256 = hex::encode(Sha256::digest(bytes));
        let techniques = Techniques { occlusion, ..mode.techniques() };
        let min_iod = self.min_interocular(techniques);
        let located = match self.finder.locate(bytes, &self.config.limits, policy, min_iod) {
            Err(Error::NoFace) if techniques.retry_rotated => {
                let mut analysis = self.retry_rotated(bytes, policy, techniques)?;
                analysis.photo_sha256 = photo_sha256;
                return Ok(analysis);
            }
            located => located?,
        };
        let mut analysis = self.finish(
            &located.photo.image,
            located.scale,
            located.photo_size,
            located.face,
            located.faces_found,
            techniques,
        )?;
        analysis.timings.detect_ms = located.detect_ms;
        analysis.timings.decode_ms = located.decode_ms;
        analysis.photo_sha256 = photo_sha256;
        Ok(analysis)
    }

    /// [`Engine::analyze_with`] on an already decoded image (`photo_sha256` is left empty).
    ///
    /// # Errors
    /// As [`Engine::analyze`], without decoding errors.
    pub fn analyze_image(&self, image: &RgbImage, policy: FacePolicy) -> Result<FaceAnalysis> {
        self.analyze_image_with(image, policy, self.config.accuracy.techniques())
    }

    /// A photo where no face was found, turned a quarter, three quarters and half a turn: the first
    /// turn with a face gives the analysis (its `rotation` says which; coordinates are the turned
    /// photo's), with eyes at least the capture checks' `min_interocular_px` apart. Any other
    /// outcome is [`Error::NoFace`].
    fn retry_rotated(
        &self,
        bytes: &[u8],
        policy: FacePolicy,
        techniques: Techniques,
    ) -> Result<FaceAnalysis> {
        let photo = self.decode(bytes)?;
        // Turned photos are held to the capture checks' eye distance: with the lower bar too, a
        // dog in testdata/no_face/dogs.jpg turned a quarter passes for a 14 px face.
        let techniques = Techniques { min_interocular_px: None, ..techniques };
        for degrees in [90, 270, 180] {
            let turned = rotated(&photo.image, degrees);
            if let Ok(mut analysis) = self.analyze_image_with(&turned, policy, techniques) {
                analysis.rotation = degrees;
                return Ok(analysis);
            }
        }
        Err(Error::NoFace)
    }

    fn analyze_image_with(
        &self,
        image: &RgbImage,
        policy: FacePolicy,
        techniques: Techniques,
    ) -> Result<FaceAnalysis> {
        let t = Instant::now();
        let photo_side = image.width().max(image.height()) as f32;
        let min_iod = self.min_interocular(techniques);
        let faces = self.finder.find(image, FaceQuery::Usable { photo_side })?;
        let centre = Point { x: image.width() as f32 / 2.0, y: image.height() as f32 / 2.0 };
        let face = self.finder.select(&faces, policy, centre, min_iod)?;
        let detect_ms = ms(t);
        let mut analysis = self.finish(image, 1.0, image.dimensions(), face, faces.len(), techniques)?;
        analysis.timings.detect_ms = detect_ms;
        Ok(analysis)
    }

    /// The smallest eye distance a template is made from under `techniques`.
    fn min_interocular(&self, techniques: Techniques) -> f32 {
        techniques.min_interocular_px.unwrap_or(self.config.quality.min_interocular_px)
    }

    /// Align, assess and embed `face` (photo coordinates) from `image` (the photo at `scale`).
    fn finish(
        &self,
        image: &RgbImage,
        scale: f32,
        full: (u32, u32),
        face: Face,
        faces_found: usize,
        techniques: Techniques,
    ) -> Result<FaceAnalysis> {
        let mut timings = Timings::default();
        let t = Instant::now();
        let aligned = self.align(image, &face.mapped(&Affine::scale(scale)))?;
        timings.align_ms = ms(t);

        let t = Instant::now();
        let extra = extra_crops(&aligned, &face, techniques, |f| {
            self.align(image, &f.mapped(&Affine::scale(scale)))
        })?;
        let template = if extra.is_empty() {
            self.embed(&[&aligned])?.pop().ok_or_else(|| Error::Inference("no embedding".into()))?
        } else {
            let crops: Vec<&AlignedFace> = std::iter::once(&aligned).chain(&extra).collect();
            let embedding = averaged(&self.embedder.embed(&crops)?)?;
            Template { model: self.model_id().to_string(), embedding }
        };
        timings.embed_ms = ms(t);

        let t = Instant::now();
        let occlusion = if techniques.occlusion { self.occlusions(&aligned, &template) } else { None };
        let quality = assess(&face, &aligned, full, occlusion, &self.config.quality);
        timings.quality_ms = ms(t);
        if self.config.reject_low_quality && !quality.is_good() {
            return Err(Error::LowQuality {
                reasons: quality.issues.iter().map(|i| i.as_str().into()).collect(),
            });
        }
        Ok(FaceAnalysis {
            face,
            faces_found,
            quality,
            template,
            aligned,
            photo_size: full,
            photo_sha256: String::new(),
            rotation: 0,
            timings,
        })
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

    /// Checks that `template` was made by this engine's recogniser.
    ///
    /// # Errors
    /// [`Error::ModelMismatch`].
    pub fn check_model(&self, template: &Template) -> Result<()> {
        if template.model == self.model_id() {
            Ok(())
        } else {
            Err(Error::ModelMismatch { expected: self.model_id().into(), found: template.model.clone() })
        }
    }

    /// Compares two templates against the engine's threshold.
    ///
    /// # Errors
    /// [`Error::ModelMismatch`] when either template was made by another model.
    pub fn compare(&self, a: &Template, b: &Template) -> Result<Decision> {
        self.check_model(a)?;
        self.check_model(b)?;
        Ok(Decision::new(a.similarity(b)?, self.threshold))
    }

    /// 1:1 verification: a probe photo against an enrolled template.
    ///
    /// # Errors
    /// As [`Engine::analyze`] and [`Engine::compare`].
    /// The probe is flagged `photo_of_id_photo` when it is near-identical to the enrolled template
    /// (see [`Engine::flag_id_photo_replay`]).
    pub fn verify(&self, probe: &[u8], enrolled: &Template) -> Result<(Decision, FaceAnalysis)> {
        let mut analysis = self.analyze(probe)?;
        let decision = self.compare(&analysis.template, enrolled)?;
        self.flag_id_photo_replay(&decision, &mut analysis, None);
        Ok((decision, analysis))
    }

    /// Flags a selfie `photo_of_id_photo`: a photo of the enrolled photo (held up to the camera or
    /// re-photographed). With the ID photo's face patch at hand, when one homography explains the
    /// selfie's face from it (plane fit at or above `max_id_photo_plane_fit`); without it, when the
    /// score is at or above `max_id_photo_similarity`. Returns whether it did.
    pub fn flag_id_photo_replay(
        &self,
        decision: &Decision,
        selfie: &mut FaceAnalysis,
        id_photo: Option<&FacePatch>,
    ) -> bool {
        let replay = self.is_id_photo_replay(
            decision.score.0,
            id_photo,
            FacePatch::of(selfie.aligned.image()).as_ref(),
        );
        if replay {
            selfie.quality.flag(QualityIssue::PhotoOfIdPhoto);
        }
        replay
    }

    /// The rule of [`Engine::flag_id_photo_replay`] on a score and the two faces' patches.
    pub fn is_id_photo_replay(
        &self,
        score: f32,
        id_photo: Option<&FacePatch>,
        selfie: Option<&FacePatch>,
    ) -> bool {
        let q = &self.config.quality;
        match (id_photo, selfie) {
            (Some(id), Some(own)) => plane_fit(id, own).is_some_and(|f| f >= q.max_id_photo_plane_fit),
            _ => score >= q.max_id_photo_similarity,
        }
    }
}
