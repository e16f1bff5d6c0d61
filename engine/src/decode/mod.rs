//! Photo bytes -> upright RGB image.
//!
//! Formats are found by content, never by file name: JPEG (libjpeg-turbo, as OpenCV decodes it,
//! optionally DCT-scaled), JPEG 2000 (JP2 files and raw J2K codestreams; greyscale or colour, any
//! bit depth scaled to 8 bits), PNG, WebP, GIF (first frame), BMP and PNM. EXIF orientation is
//! applied.
//!
//! [`DecodeLimits`] (input bytes, width, height, pixels, decoded bytes) are checked on the header,
//! before any pixel is decoded. Data cut short or corrupt is refused, never decoded in part: a JPEG
//! whose data ends before its end marker or that libjpeg finds corrupt, a PNG without its `IEND`
//! chunk, a GIF without its trailer, a WebP shorter than its RIFF size, a JPEG 2000 file whose boxes
//! or tile-parts run past the end or that lacks its end-of-codestream marker; BMP and PNM pixel data
//! cut short is refused by their decoders.

mod complete;
mod jpeg;
mod jpeg2000;
#[cfg(test)]
mod tests;

use std::io::Cursor;

use image::metadata::Orientation;
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
    /// 3, libjpeg decodes to RGB, or 4 for CMYK; PNG and the others: their colour type, e.g. 8 for
    /// 16-bit RGBA; JPEG 2000: 8 per component, two `f32` planes). Also the `image` crate's
    /// allocation limit. The default, 200 MB, is the pixel limit at 4 bytes per pixel: every 8-bit
    /// photo the pixel limit lets through (a 50 MP JPEG decodes to 150 MB, RGBA to 200 MB), but
    /// 16-bit RGBA only up to 25 MP: a 7000x7000 one (392 MB, under 1 MB as a PNG) is refused.
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
    /// The format found by content sniffing (not the file name): `jpeg`, `jp2` (JPEG 2000 file),
    /// `j2k` (raw JPEG 2000 codestream), `png`, `webp`, `gif`, `bmp` or `pnm`.
    pub format: &'static str,
}

/// Decodes photo bytes by their content, applying EXIF orientation.
///
/// # Errors
/// [`Error::EmptyInput`], [`Error::ImageTooLarge`] (checked on the header), or
/// [`Error::UnsupportedImage`] for unknown formats and corrupt or truncated data.
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<Photo> {
    decode_scaled(bytes, limits, 1.0).map(|(photo, _)| photo)
}

/// Width and height (after EXIF orientation) and format, from the header only.
///
/// # Errors
/// As [`decode`], for what the header shows.
pub fn probe(bytes: &[u8], limits: &DecodeLimits) -> Result<((u32, u32), &'static str)> {
    use Orientation::{Rotate90, Rotate90FlipH, Rotate270, Rotate270FlipH};
    check_input(bytes, limits)?;
    if let Some(format) = jpeg2000::sniff(bytes) {
        let image = jpeg2000::open(bytes, format, limits)?;
        return Ok(((image.width(), image.height()), format));
    }
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
    check_input(bytes, limits)?;
    if let Some(format) = jpeg2000::sniff(bytes) {
        return Ok((Photo { image: jpeg2000::decode(bytes, format, limits)?, format }, 1.0));
    }
    let (decoder, format, orientation) = open(bytes, limits)?;
    let width = decoder.dimensions().0;
    let image = if format == "jpeg" {
        drop(decoder);
        let eighths = (1..8u8).find(|&n| f32::from(n) / 8.0 >= min_scale).unwrap_or(8);
        jpeg::decode(bytes, eighths, limits)?
    } else {
        // Converted before orienting: a rotation then moves 3 bytes per pixel, not the source's 8.
        DynamicImage::from_decoder(decoder).map_err(image_error)?.into_rgb8()
    };
    let scale = image.width() as f32 / width as f32;
    let mut oriented = DynamicImage::ImageRgb8(image);
    oriented.apply_orientation(orientation);
    Ok((Photo { image: oriented.into_rgb8(), format }, scale))
}

/// Refuses empty and oversized input.
fn check_input(bytes: &[u8], limits: &DecodeLimits) -> Result<()> {
    if bytes.is_empty() {
        return Err(Error::EmptyInput);
    }
    check("bytes", bytes.len() as u64, limits.max_bytes)
}

/// Sniffs the format (for the formats the `image` crate reads), checks the limits and that the data
/// is complete, and opens a decoder. No pixel is decoded.
fn open<'a>(
    bytes: &'a [u8],
    limits: &DecodeLimits,
) -> Result<(impl ImageDecoder + 'a, &'static str, Orientation)> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::UnsupportedImage { reason: e.to_string() })?;
    let format = reader.format().ok_or_else(|| Error::UnsupportedImage {
        reason: "not a JPEG, JPEG 2000, PNG, WebP, GIF, BMP or PNM image".into(),
    })?;
    let name = format_name(format)?;
    let mut reader = reader;
    // Width, height and decoded bytes are checked below with precise errors; this bounds any single
    // buffer a decoder reserves (e.g. a GIF frame larger than its screen) by the same figure.
    let mut image_limits = image::Limits::default();
    image_limits.max_alloc = Some(limits.max_decoded_bytes);
    reader.limits(image_limits);
    complete::check(name, bytes)?;
    let mut decoder = reader.into_decoder().map_err(image_error)?;
    let (width, height) = decoder.dimensions();
    // libjpeg decodes every JPEG to RGB (a CMYK one is checked again at 4 bytes per pixel).
    let bytes_per_pixel = if name == "jpeg" { 3 } else { decoder.color_type().bytes_per_pixel() };
    check_header(width, height, u64::from(bytes_per_pixel), limits)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    Ok((decoder, name, orientation))
}

/// The limits a header can be checked against: width, height, pixels and decoded bytes.
fn check_header(width: u32, height: u32, bytes_per_pixel: u64, limits: &DecodeLimits) -> Result<()> {
    check("width", u64::from(width), u64::from(limits.max_width))?;
    check("height", u64::from(height), u64::from(limits.max_height))?;
    let pixels = u64::from(width) * u64::from(height);
    check("pixels", pixels, limits.max_pixels)?;
    check("decoded bytes", pixels.saturating_mul(bytes_per_pixel), limits.max_decoded_bytes)?;
    if pixels == 0 {
        return Err(unsupported("the image has no pixels"));
    }
    Ok(())
}

fn check(what: &'static str, actual: u64, limit: u64) -> Result<()> {
    if actual > limit { Err(Error::ImageTooLarge { what, actual, limit }) } else { Ok(()) }
}

fn unsupported(reason: impl Into<String>) -> Error {
    Error::UnsupportedImage { reason: reason.into() }
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
        other => return Err(unsupported(format!("{other:?} images are not accepted"))),
    })
}

fn image_error(e: image::ImageError) -> Error {
    #[allow(clippy::wildcard_enum_match_arm)] // every other failure is an unreadable image
    match e {
        image::ImageError::Limits(l) => unsupported(format!("over a decoding limit: {l}")),
        image::ImageError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            unsupported(format!("the image is truncated: {e}"))
        }
        other => unsupported(other.to_string()),
    }
}
