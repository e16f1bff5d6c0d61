//! Embedding: aligned face crops -> unit-length [`Embedding`]s with an ONNX recogniser.

use std::path::Path;

use ort::value::TensorRef;

use crate::align::AlignedFace;
use crate::detect::Point;
use crate::embedding::Embedding;
use crate::error::{Error, Result, inference};
use crate::manifest::RecognizerSpec;
use crate::runtime::{SessionOptions, SessionPool};

/// Turns aligned faces into embeddings.
pub trait Embedder: Send + Sync {
    /// One embedding per face, in order.
    ///
    /// # Errors
    /// [`Error::Inference`] when the model fails; [`Error::InvalidArgument`] for a crop of the wrong size.
    fn embed(&self, faces: &[&AlignedFace]) -> Result<Vec<Embedding>>;

    /// Identity of the model, stored with every template it makes.
    fn model_id(&self) -> &str;

    /// Crop size the model takes (width, height).
    fn input_size(&self) -> (u32, u32);

    /// Where the five landmarks go in that crop (see [`crate::align`]).
    fn alignment_template(&self) -> [Point; 5];

    /// Embedding dimension.
    fn dim(&self) -> usize;
}

/// An ArcFace-style recogniser on ONNX Runtime (SFace by default), configured by its manifest entry.
pub struct OnnxEmbedder {
    pool: SessionPool,
    spec: RecognizerSpec,
    model_id: String,
    input: String,
}

/// Faces per inference call in batch mode.
const MAX_BATCH: usize = 16;

impl OnnxEmbedder {
    /// Loads the model file named by `spec` from `dir`, checking its sha256.
    ///
    /// # Errors
    /// [`Error::Model`] when the file is missing, has another checksum, or the wrong input/output.
    pub(crate) fn load(
        env: &ort::environment::Environment,
        dir: &Path,
        spec: &RecognizerSpec,
        options: SessionOptions,
    ) -> Result<Self> {
        let path = dir.join(&spec.file);
        let pool = SessionPool::load(env, &path, &spec.sha256, options)?;
        let (inputs, outputs) = pool.io_names()?;
        let (Some(input), 1) = (inputs.first().cloned(), outputs.len()) else {
            return Err(Error::Model { path, reason: "expected one input and one output".into() });
        };
        // Model id carries a checksum prefix: a template is tied to the exact weights that made it.
        let model_id = format!("{}:{}", spec.id, &spec.sha256[..spec.sha256.len().min(8)]);
        Ok(Self { pool, spec: spec.clone(), model_id, input })
    }

    fn run(&self, faces: &[&AlignedFace]) -> Result<Vec<Embedding>> {
        let [w, h] = self.spec.input_size.map(|v| v as usize);
        let plane = w * h;
        let order = self.spec.colour_order.rgb_indices();
        let mut input = vec![0f32; faces.len() * 3 * plane];
        for (n, face) in faces.iter().enumerate() {
            let img = face.image();
            if (img.width() as usize, img.height() as usize) != (w, h) {
                return Err(Error::InvalidArgument(format!(
                    "aligned crop is {}x{}, the model takes {w}x{h}",
                    img.width(),
                    img.height()
                )));
            }
            let base = n * 3 * plane;
            for (i, p) in img.as_raw().chunks_exact(3).enumerate() {
                for (c, &src) in order.iter().enumerate() {
                    input[base + c * plane + i] = (f32::from(p[src]) - self.spec.mean[c]) / self.spec.std[c];
                }
            }
        }
        let shape = [faces.len(), 3, h, w];
        let tensor = TensorRef::from_array_view((shape, &input[..])).map_err(inference)?;
        let mut session = self.pool.get()?;
        let outputs = session.run(ort::inputs![self.input.as_str() => tensor]).map_err(inference)?;
        let (_, raw) = outputs[0].try_extract_tensor::<f32>().map_err(inference)?;
        let dim = self.spec.output_dim;
        if raw.len() != dim * faces.len() {
            return Err(Error::Inference(format!(
                "recogniser gave {} values for {} faces of dimension {dim}",
                raw.len(),
                faces.len()
            )));
        }
        raw.chunks_exact(dim).map(|v| Embedding::from_raw(v.to_vec())).collect()
    }
}

impl Embedder for OnnxEmbedder {
    fn embed(&self, faces: &[&AlignedFace]) -> Result<Vec<Embedding>> {
        let mut out = Vec::with_capacity(faces.len());
        for chunk in faces.chunks(MAX_BATCH) {
            out.extend(self.run(chunk)?);
        }
        Ok(out)
    }

    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn input_size(&self) -> (u32, u32) {
        (self.spec.input_size[0], self.spec.input_size[1])
    }

    fn alignment_template(&self) -> [Point; 5] {
        self.spec.template_points()
    }

    fn dim(&self) -> usize {
        self.spec.output_dim
    }
}
