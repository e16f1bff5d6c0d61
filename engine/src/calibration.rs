//! A calibrated match threshold for one model, chosen for a target false-match rate by
//! `wajah calibrate` and read by the engine (and so the server) in place of the manifest's default.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The calibration file (TOML).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// Model id the threshold was measured for (with its checksum prefix).
    pub model: String,
    /// Cosine threshold: accept when score >= threshold.
    pub threshold: f32,
    /// The false-match rate the threshold was chosen for.
    pub target_fmr: f64,
    /// 95% bootstrap interval of the threshold.
    pub threshold_ci95: [f32; 2],
    /// False non-match rate at the threshold on the calibration pairs.
    pub fnmr: f64,
    /// Genuine (same-person) pairs used.
    pub genuine_pairs: usize,
    /// Impostor (different-person) pairs used.
    pub impostor_pairs: usize,
    /// Where the pairs came from.
    pub source: String,
    /// When, in unix seconds.
    pub created_unix: u64,
}

impl Calibration {
    /// Reads a calibration file.
    ///
    /// # Errors
    /// [`Error::Config`] when it cannot be read or parsed, or the threshold is outside [-1, 1].
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("calibration {}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| {
            if let Error::Config(m) = &e { Error::Config(format!("{m} ({})", path.display())) } else { e }
        })
    }

    /// Parses calibration text (TOML).
    ///
    /// # Errors
    /// [`Error::Config`] when it does not parse, or the threshold is outside [-1, 1].
    pub fn parse(text: &str) -> Result<Self> {
        let c: Calibration = toml::from_str(text).map_err(|e| Error::Config(format!("calibration: {e}")))?;
        if !(-1.0..=1.0).contains(&c.threshold) {
            return Err(Error::Config(format!("calibration threshold {} is outside [-1, 1]", c.threshold)));
        }
        Ok(c)
    }

    /// Writes the file.
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Config`].
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = toml::to_string_pretty(self).map_err(|e| Error::Config(format!("calibration: {e}")))?;
        let header = "# Written by `wajah calibrate`; read through EngineConfig.calibration (server: [engine] calibration = ...).\n";
        std::fs::write(path, format!("{header}{text}"))?;
        Ok(())
    }
}
