//! `--degrade-a` / `--degrade-b`: a side of every pair made to look like an ID-card photo before it
//! is analysed (shrunk, then saved again as a JPEG of low quality), so robustness to card photos
//! can be measured on any pairs file.

use std::fmt;
use std::io::Cursor;
use std::str::FromStr;

use image::codecs::jpeg::JpegEncoder;
use image::imageops::{FilterType, resize};
use wajah::Engine;

/// Smallest scale accepted: below it a photo is a few pixels wide.
const MIN_SCALE: f32 = 0.05;

/// How one side of the pairs is degraded: resized by `scale` (bilinear, with the area filter of
/// downscaling), then encoded as a baseline JPEG of quality `jpeg` (or as a lossless PNG when no
/// quality is given).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Degrade {
    /// Size factor in `[0.05, 1]`.
    pub scale: f32,
    /// JPEG quality in `1..=100`; `None` keeps the pixels lossless.
    pub jpeg: Option<u8>,
}

impl FromStr for Degrade {
    type Err = String;

    /// Parses `key=value` items separated by commas: `scale` (0.05 to 1) and `jpeg` (1 to 100),
    /// each at most once, at least one of them.
    fn from_str(spec: &str) -> Result<Self, String> {
        let (mut scale, mut jpeg): (Option<f32>, Option<u8>) = (None, None);
        if spec.trim().is_empty() {
            return Err("empty degradation: give scale=<0.05..1> and/or jpeg=<1..100>".into());
        }
        for item in spec.split(',') {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| format!("{item:?} is not key=value (keys: scale, jpeg)"))?;
            let (key, value) = (key.trim(), value.trim());
            match key {
                "scale" => {
                    let s: f32 = value.parse().map_err(|_| format!("scale {value:?} is not a number"))?;
                    if !(MIN_SCALE..=1.0).contains(&s) {
                        return Err(format!("scale {s} is outside [{MIN_SCALE}, 1]"));
                    }
                    if scale.replace(s).is_some() {
                        return Err("scale is given twice".into());
                    }
                }
                "jpeg" => {
                    let q: u8 =
                        value.parse().ok().filter(|q| (1..=100).contains(q)).ok_or_else(|| {
                            format!("jpeg quality {value:?} is not a whole number in 1..=100")
                        })?;
                    if jpeg.replace(q).is_some() {
                        return Err("jpeg is given twice".into());
                    }
                }
                other => return Err(format!("unknown degradation {other:?} (keys: scale, jpeg)")),
            }
        }
        Ok(Self { scale: scale.unwrap_or(1.0), jpeg })
    }
}

impl fmt::Display for Degrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "scale={}", self.scale)?;
        match self.jpeg {
            Some(q) => write!(f, ",jpeg={q}"),
            None => Ok(()),
        }
    }
}

impl Degrade {
    /// The degraded photo's bytes: decoded (upright) under the engine's limits, resized, encoded.
    ///
    /// # Errors
    /// The engine's error code when the photo cannot be decoded, or `degrade_failed`.
    pub fn apply(&self, engine: &Engine, bytes: &[u8]) -> Result<Vec<u8>, String> {
        let photo = engine.decode(bytes).map_err(|e| e.code().to_string())?;
        let (w, h) = photo.image.dimensions();
        let size = |v: u32| ((v as f32 * self.scale).round() as u32).max(1);
        let image = if self.scale < 1.0 {
            resize(&photo.image, size(w), size(h), FilterType::Triangle)
        } else {
            photo.image
        };
        let mut out = Cursor::new(Vec::new());
        let written = match self.jpeg {
            Some(q) => image.write_with_encoder(JpegEncoder::new_with_quality(&mut out, q)),
            None => image.write_to(&mut out, image::ImageFormat::Png),
        };
        written.map_err(|_| "degrade_failed".to_string())?;
        Ok(out.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_strictly() {
        let d: Degrade = "scale=0.6,jpeg=40".parse().expect("valid");
        assert_eq!(d, Degrade { scale: 0.6, jpeg: Some(40) });
        assert_eq!(d.to_string(), "scale=0.6,jpeg=40");
        assert_eq!("jpeg=90".parse::<Degrade>(), Ok(Degrade { scale: 1.0, jpeg: Some(90) }));
        assert_eq!(" scale = 0.5 ".parse::<Degrade>(), Ok(Degrade { scale: 0.5, jpeg: None }));
        for (bad, says) in [
            ("", "empty"),
            ("blur=2", "unknown degradation \"blur\""),
            ("scale=1.5", "outside"),
            ("scale=0", "outside"),
            ("scale=abc", "not a number"),
            ("jpeg=0", "1..=100"),
            ("jpeg=101", "1..=100"),
            ("jpeg=40.5", "1..=100"),
            ("scale=0.5,scale=0.6", "twice"),
            ("scale", "key=value"),
        ] {
            let err = bad.parse::<Degrade>().expect_err(bad);
            assert!(err.contains(says), "{bad:?}: {err}");
        }
    }
}
