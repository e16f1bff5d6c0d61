//! Similarity of unit-length vectors: a dot product.

/// Dot product of two equal-length slices (extra elements of the longer one are ignored).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
