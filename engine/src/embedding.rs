//! Face templates: unit-length embeddings and similarity scores.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::similarity;

/// A face embedding, always of unit L2 length, so cosine similarity is a dot product.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Vec<f32>", into = "Vec<f32>")]
pub struct Embedding(Box<[f32]>);

impl Embedding {
    /// L2-normalises a raw model output.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the vector is empty, has a non-finite value or is all zeros.
    pub fn from_raw(mut values: Vec<f32>) -> Result<Self> {
        if values.is_empty() {
            return Err(Error::InvalidArgument("embedding is empty".into()));
        }
        if values.iter().any(|v| !v.is_finite()) {
            return Err(Error::InvalidArgument("embedding has a non-finite value".into()));
        }
        let norm = values.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>().sqrt();
        if norm < 1e-12 {
            return Err(Error::InvalidArgument("embedding has zero length".into()));
        }
        for v in &mut values {
            *v = (f64::from(*v) / norm) as f32;
        }
        Ok(Self(values.into_boxed_slice()))
    }

    /// The components.
    pub fn as_slice(&self) -> &[f32] {
        &self.0
    }

    /// Number of components.
    pub fn dim(&self) -> usize {
        self.0.len()
    }

    /// Cosine similarity with another embedding of the same dimension.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] when the dimensions differ.
    pub fn similarity(&self, other: &Embedding) -> Result<Score> {
        if self.dim() != other.dim() {
            return Err(Error::DimensionMismatch { expected: self.dim(), found: other.dim() });
        }
        Ok(Score(similarity::dot(&self.0, &other.0)))
    }

    /// Little-endian f32 bytes (for storage).
    pub fn to_le_bytes(&self) -> Vec<u8> {
        self.0.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    /// Reads little-endian f32 bytes written by [`Embedding::to_le_bytes`], re-normalising.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the length is not a multiple of 4 or the values are invalid.
    pub fn from_le_bytes(bytes: &[u8]) -> Result<Self> {
        if !bytes.len().is_multiple_of(4) {
            return Err(Error::InvalidArgument(format!(
                "embedding bytes length {} is not a multiple of 4",
                bytes.len()
            )));
        }
        let values = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        Self::from_raw(values)
    }
}

impl TryFrom<Vec<f32>> for Embedding {
    type Error = Error;
    fn try_from(values: Vec<f32>) -> Result<Self> {
        Self::from_raw(values)
    }
}

impl From<Embedding> for Vec<f32> {
    fn from(e: Embedding) -> Self {
        e.0.into_vec()
    }
}

/// A similarity score: cosine similarity in [-1, 1], higher means more alike.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Score(pub f32);

/// An embedding together with the identity of the model that produced it.
///
/// Templates from different models are never compared: [`Template::similarity`] refuses them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Template {
    /// Model identity, e.g. `sface-2021dec-int8bq:fb143eea`.
    pub model: String,
    /// The unit-length embedding.
    pub embedding: Embedding,
}

impl Template {
    /// Similarity with another template from the same model.
    ///
    /// # Errors
    /// [`Error::ModelMismatch`] when the two templates come from different models.
    pub fn similarity(&self, other: &Template) -> Result<Score> {
        if self.model != other.model {
            return Err(Error::ModelMismatch { expected: self.model.clone(), found: other.model.clone() });
        }
        self.embedding.similarity(&other.embedding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalising_twice_is_stable() {
        let e = Embedding::from_raw(vec![3.0, 4.0, 0.0, -12.0]).expect("valid");
        let again = Embedding::from_raw(e.as_slice().to_vec()).expect("valid");
        for (a, b) in e.as_slice().iter().zip(again.as_slice()) {
            assert!((a - b).abs() < 1e-7);
        }
        let norm: f32 = e.as_slice().iter().map(|v| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-6);
    }

    #[test]
    fn rejects_degenerate_vectors() {
        assert!(Embedding::from_raw(vec![]).is_err());
        assert!(Embedding::from_raw(vec![0.0; 8]).is_err());
        assert!(Embedding::from_raw(vec![1.0, f32::NAN]).is_err());
    }

    #[test]
    fn bytes_round_trip_is_bit_identical() {
        let e = Embedding::from_raw((0..128).map(|i| (i as f32).sin()).collect()).expect("valid");
        let back = Embedding::from_le_bytes(&e.to_le_bytes()).expect("valid");
        assert_eq!(e.to_le_bytes(), back.to_le_bytes());
    }

    #[test]
    fn templates_of_other_models_are_refused() {
        let e = Embedding::from_raw(vec![1.0, 0.0]).expect("valid");
        let a = Template { model: "a".into(), embedding: e.clone() };
        let b = Template { model: "b".into(), embedding: e };
        assert!(matches!(a.similarity(&b), Err(Error::ModelMismatch { .. })));
        assert!((a.similarity(&a).expect("same model").0 - 1.0).abs() < 1e-6);
    }
}
