//! wajah: face verification for digital-ID registration.
//!
//! A photo goes through `decode -> detect -> align -> quality -> embed` and becomes a [`Template`];
//! two templates give a [`Score`], and a [`Decision`] against a threshold.

mod embedding;
mod error;
mod similarity;
// modules: other crates' work adds lines here

pub use embedding::{Embedding, Score, Template};
pub use error::{Error, Result};
