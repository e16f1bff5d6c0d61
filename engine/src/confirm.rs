//! A second, independent opinion that a detection is a human face: MTCNN's output network (O-Net)
//! on a 48x48 crop of the face box.
//!
//! YuNet scores some animal faces like people: the testkit's dog scores 0.82-0.87 depending on the
//! detection resolution, above some real faces. O-Net, trained with non-face crops, gives that dog
//! 0.02 and every human face in the testkit at least 0.9.

use std::path::Path;

use image::RgbImage;
use ort::value::TensorRef;

use crate::detect::Face;
use crate::error::{Error, Result, inference};
use crate::manifest::ConfirmerSpec;
use crate::runtime::{SessionOptions, SessionPool};
use crate::warp::{Affine, warp_affine_filtered};

/// MTCNN's O-Net, configured by the manifest.
pub struct FaceConfirmer {
    pool: SessionPool,
    spec: ConfirmerSpec,
    input: String,
}

impl FaceConfirmer {
    /// Loads the model file named by `spec` from `dir`, checking its sha256.
    ///
    /// # Errors
    /// [`Error::Model`] when the file is missing, has another checksum, or lacks the named output.
    pub(crate) fn load(
        env: &ort::environment::Environment,
        dir: &Path,
        spec: &ConfirmerSpec,
        options: SessionOptions,
    ) -> Result<Self> {
        let path = dir.join(&spec.file);
        let pool = SessionPool::load(env, &path, &spec.sha256, options)?;
        let (inputs, outputs) = pool.io_names()?;
        let (Some(input), true) = (inputs.first().cloned(), outputs.contains(&spec.output)) else {
            return Err(Error::Model { path, reason: format!("expected an output named {}", spec.output) });
        };
        Ok(Self { pool, spec: spec.clone(), input })
    }

    /// For each face (in `image` coordinates), the probability that it is a human face.
    ///
    /// # Errors
    /// [`Error::Inference`] when the model fails.
    pub fn probabilities(&self, image: &RgbImage, faces: &[Face]) -> Result<Vec<f32>> {
        if faces.is_empty() {
            return Ok(Vec::new());
        }
        let side = self.spec.input_size as usize;
        let per_face = side * side * 3;
        let order = self.spec.colour_order.rgb_indices();
        let mut input = vec![0f32; faces.len() * per_face];
        for (face, out) in faces.iter().zip(input.chunks_exact_mut(per_face)) {
            // The box made square around its centre, as MTCNN's stages crop, zero outside the photo.
            let b = &face.bbox;
            let s = b.width.max(b.height).max(1.0);
            let c = b.centre();
            let to_crop = Affine::crop_scale(c.x - s / 2.0, c.y - s / 2.0, side as f32 / s);
            let crop = warp_affine_filtered(image, &to_crop, side as u32, side as u32);
            for (i, p) in crop.as_raw().chunks_exact(3).enumerate() {
                let (x, y) = (i % side, i / side);
                // Layout N x W x H x C when the model was trained on transposed images.
                let at = if self.spec.transposed { (x * side + y) * 3 } else { i * 3 };
                for (c, &src) in order.iter().enumerate() {
                    out[at + c] = (f32::from(p[src]) - self.spec.mean) / self.spec.std;
                }
            }
        }
        let shape = [faces.len(), side, side, 3];
        let tensor = TensorRef::from_array_view((shape, &input[..])).map_err(inference)?;
        let mut session = self.pool.get()?;
        let outputs = session.run(ort::inputs![self.input.as_str() => tensor]).map_err(inference)?;
        let value = outputs
            .get(&self.spec.output)
            .ok_or_else(|| Error::Inference(format!("no output {}", self.spec.output)))?;
        let (_, probs) = value.try_extract_tensor::<f32>().map_err(inference)?;
        if probs.len() != 2 * faces.len() {
            return Err(Error::Inference(format!(
                "face confirmer gave {} values for {} faces",
                probs.len(),
                faces.len()
            )));
        }
        // Softmax over [not a face, face].
        Ok(probs.chunks_exact(2).map(|p| p[1]).collect())
    }

    /// Probability at or above which a detection counts as a human face.
    pub fn min_probability(&self) -> f32 {
        self.spec.min_probability
    }
}
