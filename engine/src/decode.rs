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
    let (decoder, format, orientation) = open(bytes, limits)?;
    // JPEGs are decoded by libjpeg-turbo, bit-identical to OpenCV's imread; image's own JPEG decoder
    // is the fallback for what libjpeg cannot turn into RGB (CMYK).
    let full = if format == "jpeg" { jpeg(bytes, 8) } else { None };
    let mut image = match full {
        Some(image) => image,
        None => DynamicImage::from_decoder(decoder).map_err(image_error)?,
    };
    image.apply_orientation(orientation);
    Ok(Photo { image: image.to_rgb8(), format })
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
        && let Some(mut image) = jpeg(bytes, n)
    {
        let scale = image.width() as f32 / width as f32;
        image.apply_orientation(orientation);
        return Ok((Photo { image: image.to_rgb8(), format }, scale));
    }
    Ok((decode(bytes, limits)?, 1.0))
}

/// A JPEG decoded by libjpeg-turbo at scale `eighths`/8 (IDCT scaling); `None` if it cannot be decoded
/// to RGB that way (the caller then uses image's decoder, whose error, if any, is the one reported).
fn jpeg(bytes: &[u8], eighths: u8) -> Option<DynamicImage> {
    // libjpeg reports errors by unwinding; the crate turns them into io errors.
    let mut decompress = mozjpeg::Decompress::with_markers(&[]).from_mem(bytes).ok()?;
    decompress.scale(eighths);
    let mut started = decompress.rgb().ok()?;
    let (w, h) = (u32::try_from(started.width()).ok()?, u32::try_from(started.height()).ok()?);
    let pixels = started.read_scanlines::<u8>().ok()?;
    started.finish().ok()?;
    RgbImage::from_raw(w, h, pixels).map(DynamicImage::ImageRgb8)
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
    // Width and height are checked below with precise errors; this bounds what a decoder allocates.
    let mut image_limits = image::Limits::default();
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
    fn jpeg_decodes_at_reduced_scale() {
        let img = RgbImage::from_fn(800, 600, |x, y| image::Rgb([(x / 4) as u8, (y / 4) as u8, 128]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Jpeg).expect("encode");
        let bytes = out.into_inner();
        let (photo, scale) = decode_scaled(&bytes, &DecodeLimits::default(), 0.2).expect("decodes");
        assert_eq!((photo.image.dimensions(), scale), ((200, 150), 0.25));
        let (finer, scale) = decode_scaled(&bytes, &DecodeLimits::default(), 0.3).expect("decodes");
        assert_eq!((finer.image.dimensions(), scale), ((300, 225), 0.375));
        let p = photo.image.get_pixel(100, 75).0;
        assert!(p[0].abs_diff(100) <= 3 && p[1].abs_diff(75) <= 3 && p[2].abs_diff(128) <= 3, "{p:?}");
        let (full, scale) = decode_scaled(&bytes, &DecodeLimits::default(), 0.9).expect("decodes");
        assert_eq!((full.image.dimensions(), scale), ((800, 600), 1.0));
        let (png, scale) = decode_scaled(&png(40, 30), &DecodeLimits::default(), 0.1).expect("decodes");
        assert_eq!((png.image.dimensions(), scale), ((40, 30), 1.0));
    }

    #[test]
    fn limits_are_checked_on_the_header() {
        let limits = DecodeLimits { max_width: 10, ..DecodeLimits::default() };
        assert!(matches!(decode(&png(11, 2), &limits), Err(Error::ImageTooLarge { what: "width", .. })));
        let limits = DecodeLimits { max_bytes: 10, ..DecodeLimits::default() };
        assert!(matches!(decode(&png(11, 2), &limits), Err(Error::ImageTooLarge { what: "bytes", .. })));
    }
}
