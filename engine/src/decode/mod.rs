//! Photo bytes -> upright RGB image, with limits checked before any pixel is decoded.

#[cfg(test)]
mod tests;

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
    /// Largest accepted decoded size: width x height x the bytes per pixel the decoder fills (a JPEG:
    /// 3, libjpeg decodes to RGB; PNG and the others: their colour type, e.g. 8 for 16-bit RGBA).
    /// Also the `image` crate's allocation limit. The default, 200 MB, is the pixel limit at 4 bytes
    /// per pixel: every 8-bit photo the pixel limit lets through (a 50 MP JPEG decodes to 150 MB,
    /// RGBA to 200 MB), but 16-bit RGBA only up to 25 MP: a 7000x7000 one (392 MB, under 1 MB as a
    /// PNG) is refused.
    pub max_decoded_bytes: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        // A 50 MP phone photo fits; a 30000x30000 decompression bomb does not.
        Self {
            max_bytes: 25 << 20,
            max_width: 12_000,
            max_height: 12_000,
            max_pixels: 50_000_000,
            max_decoded_bytes: 200_000_000,
        }
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
    let (decoder, format, orientation) = open(bytes, limits)?;
    // JPEGs are decoded by libjpeg-turbo, bit-identical to OpenCV's imread; image's own JPEG decoder
    // is the fallback for what libjpeg cannot turn into RGB (CMYK).
    let full = if format == "jpeg" { jpeg(bytes, 8) } else { None };
    let image = match full {
        Some(image) => image,
        None => DynamicImage::from_decoder(decoder).map_err(image_error)?.into_rgb8(),
    };
    Ok(Photo { image: orient(image, orientation), format })
}

/// Width and height (after EXIF orientation) and format, from the header only.
///
/// # Errors
/// As [`decode`], for what the header shows.
pub fn probe(bytes: &[u8], limits: &DecodeLimits) -> Result<((u32, u32), &'static str)> {
    use image::metadata::Orientation::{Rotate90, Rotate90FlipH, Rotate270, Rotate270FlipH};
    let (decoder, format, orientation) = open(bytes, limits)?;
    let (w, h) = decoder.dimensions();
    let swapped = matches!(orientation, Rotate90 | Rotate270 | Rotate90FlipH | Rotate270FlipH);
    Ok((if swapped { (h, w) } else { (w, h) }, format))
}

/// Decodes at a reduced size where the format allows it cheaply: a JPEG is decoded at the smallest
/// DCT scale n/8 (n = 1..=8) that is at least `min_scale`; other formats are decoded in full.
///
/// Returns the photo and its scale relative to the full-size photo (1.0 when decoded in full).
///
/// # Errors
/// As [`decode`].
pub fn decode_scaled(bytes: &[u8], limits: &DecodeLimits, min_scale: f32) -> Result<(Photo, f32)> {
    let (decoder, format, orientation) = open(bytes, limits)?;
    let width = decoder.dimensions().0;
    drop(decoder);
    let eighths = (1..8u8).find(|&n| f32::from(n) / 8.0 >= min_scale);
    if let (Some(n), "jpeg") = (eighths, format)
        && let Some(image) = jpeg(bytes, n)
    {
        let scale = image.width() as f32 / width as f32;
        return Ok((Photo { image: orient(image, orientation), format }, scale));
    }
    Ok((decode(bytes, limits)?, 1.0))
}

/// A JPEG decoded by libjpeg-turbo at scale `eighths`/8 (IDCT scaling); `None` if it cannot be decoded
/// to RGB that way (the caller then uses image's decoder, whose error, if any, is the one reported).
fn jpeg(bytes: &[u8], eighths: u8) -> Option<RgbImage> {
    // libjpeg reports errors by unwinding; the crate turns them into io errors.
    let mut decompress = mozjpeg::Decompress::with_markers(&[]).from_mem(bytes).ok()?;
    decompress.scale(eighths);
    let mut started = decompress.rgb().ok()?;
    let (w, h) = (u32::try_from(started.width()).ok()?, u32::try_from(started.height()).ok()?);
    let pixels = started.read_scanlines::<u8>().ok()?;
    started.finish().ok()?;
    RgbImage::from_raw(w, h, pixels)
}

/// Applies EXIF orientation to RGB pixels: after conversion, so that a rotation moves 3 bytes per
/// pixel, not the source's 8; an image already RGB is not copied.
fn orient(image: RgbImage, orientation: image::metadata::Orientation) -> RgbImage {
    let mut image = DynamicImage::ImageRgb8(image);
    image.apply_orientation(orientation);
    image.into_rgb8()
}

/// Sniffs the format, checks the limits on the header and opens a decoder.
fn open<'a>(
    bytes: &'a [u8],
    limits: &DecodeLimits,
) -> Result<(impl ImageDecoder + 'a, &'static str, image::metadata::Orientation)> {
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
    // Width, height and decoded bytes are checked below with precise errors; this bounds any single
    // buffer a decoder reserves (e.g. a GIF frame larger than its screen) by the same figure.
    let mut image_limits = image::Limits::default();
    image_limits.max_alloc = Some(limits.max_decoded_bytes);
    reader.limits(image_limits);
    let mut decoder = reader.into_decoder().map_err(image_error)?;
    let (width, height) = decoder.dimensions();
    check("width", u64::from(width), u64::from(limits.max_width))?;
    check("height", u64::from(height), u64::from(limits.max_height))?;
    let pixels = u64::from(width) * u64::from(height);
    check("pixels", pixels, limits.max_pixels)?;
    // libjpeg decodes every JPEG to RGB.
    let bytes_per_pixel = if name == "jpeg" { 3 } else { decoder.color_type().bytes_per_pixel() };
    check("decoded bytes", pixels.saturating_mul(u64::from(bytes_per_pixel)), limits.max_decoded_bytes)?;
    if width == 0 || height == 0 {
        return Err(Error::UnsupportedImage { reason: "the image has no pixels".into() });
    }
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    Ok((decoder, name, orientation))
}

fn check(what: &'static str, actual: u64, limit: u64) -> Result<()> {
    if actual > limit { Err(Error::ImageTooLarge { what, actual, limit }) } else { Ok(()) }
}

// `ImageFormat` is another crate's non-exhaustive enum: a wildcard arm is required, and every
// format not named here is refused.
#[allow(clippy::wildcard_enum_match_arm)]
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
    #[allow(clippy::wildcard_enum_match_arm)] // every other failure is an unreadable image
    match e {
        image::ImageError::Limits(l) => {
            Error::UnsupportedImage { reason: format!("over a decoding limit: {l}") }
        }
        other => Error::UnsupportedImage { reason: other.to_string() },
    }
}
