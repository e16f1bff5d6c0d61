//! Photo bytes -> upright RGB image, with limits checked before any pixel is decoded.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Limits on what [`decode`] accepts. Checked against the header before decoding.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecodeLimits {
    /// Largest accepted input, in bytes.
    pub max_bytes: u64,
    /// Largest accepted width, in pixels.
    pub max_width: u32,
    /// Largest accepted height, in pixels.
    pub max_height: u32,
    /// Largest accepted width x height.
    pub max_pixels: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        // A 50 MP phone photo fits; a 30000x30000 decompression bomb does not.
        Self { max_bytes: 25 << 20, max_width: 12_000, max_height: 12_000, max_pixels: 50_000_000 }
    }
}

/// A decoded photo, EXIF orientation applied.
#[derive(Clone, Debug)]
pub struct Photo {
    /// Upright RGB pixels (alpha dropped, greyscale replicated).
    pub image: RgbImage,
    /// The format found by content sniffing (not the file name), e.g. `jpeg`.
    pub format: &'static str,
}

/// Decodes photo bytes by their content (JPEG, PNG, WebP, GIF, BMP, PNM), applying EXIF orientation.
///
/// # Errors
/// [`Error::EmptyInput`], [`Error::ImageTooLarge`] (checked on the header), or
/// [`Error::UnsupportedImage`] for unknown formats and corrupt or truncated data.
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<Photo> {
    if bytes.is_empty() {
        return Err(Error::EmptyInput);
    }
    check("bytes", bytes.len() as u64, limits.max_bytes)?;
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::UnsupportedImage { reason: e.to_string() })?;
    let format = reader.format().ok_or_else(|| Error::UnsupportedImage {
        reason: "not a JPEG, PNG, WebP, GIF, BMP or PNM image".into(),
    })?;
    let name = format_name(format)?;
    let mut reader = reader;
    let mut image_limits = image::Limits::default();
    image_limits.max_image_width = Some(limits.max_width);
    image_limits.max_image_height = Some(limits.max_height);
    image_limits.max_alloc = Some(limits.max_pixels.saturating_mul(8));
    reader.limits(image_limits);
    let mut decoder = reader.into_decoder().map_err(image_error)?;
    let (width, height) = decoder.dimensions();
    check("width", u64::from(width), u64::from(limits.max_width))?;
    check("height", u64::from(height), u64::from(limits.max_height))?;
    check("pixels", u64::from(width) * u64::from(height), limits.max_pixels)?;
    if width == 0 || height == 0 {
        return Err(Error::UnsupportedImage { reason: "the image has no pixels".into() });
    }
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(image_error)?;
    image.apply_orientation(orientation);
    Ok(Photo { image: image.to_rgb8(), format: name })
}

fn check(what: &'static str, actual: u64, limit: u64) -> Result<()> {
    if actual > limit { Err(Error::ImageTooLarge { what, actual, limit }) } else { Ok(()) }
}

fn format_name(format: ImageFormat) -> Result<&'static str> {
    Ok(match format {
        ImageFormat::Jpeg => "jpeg",
        ImageFormat::Png => "png",
        ImageFormat::WebP => "webp",
        ImageFormat::Gif => "gif",
        ImageFormat::Bmp => "bmp",
        ImageFormat::Pnm => "pnm",
        other => {
            return Err(Error::UnsupportedImage { reason: format!("{other:?} images are not accepted") });
        }
    })
}

fn image_error(e: image::ImageError) -> Error {
    match e {
        image::ImageError::Limits(l) => {
            Error::UnsupportedImage { reason: format!("over a decoding limit: {l}") }
        }
        other => Error::UnsupportedImage { reason: other.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).expect("encode");
        out.into_inner()
    }

    #[test]
    fn decodes_by_content_not_name() {
        let photo = decode(&png(5, 3), &DecodeLimits::default()).expect("valid png");
        assert_eq!(photo.format, "png");
        assert_eq!(photo.image.dimensions(), (5, 3));
        assert_eq!(photo.image.get_pixel(4, 2).0, [4, 2, 7]);
    }

    #[test]
    fn empty_truncated_and_random_bytes_are_typed_errors() {
        let limits = DecodeLimits::default();
        assert!(matches!(decode(&[], &limits), Err(Error::EmptyInput)));
        let full = png(64, 64);
        assert!(matches!(decode(&full[..full.len() / 2], &limits), Err(Error::UnsupportedImage { .. })));
        let noise: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        assert!(matches!(decode(&noise, &limits), Err(Error::UnsupportedImage { .. })));
    }

    #[test]
    fn limits_are_checked_on_the_header() {
        let limits = DecodeLimits { max_width: 10, ..DecodeLimits::default() };
        assert!(matches!(decode(&png(11, 2), &limits), Err(Error::ImageTooLarge { what: "width", .. })));
        let limits = DecodeLimits { max_bytes: 10, ..DecodeLimits::default() };
        assert!(matches!(decode(&png(11, 2), &limits), Err(Error::ImageTooLarge { what: "bytes", .. })));
    }
}
