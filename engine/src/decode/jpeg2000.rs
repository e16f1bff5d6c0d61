//! JPEG 2000 (ISO/IEC 15444-1), e.g. ICAO 9303 document photos: JP2 files and raw J2K codestreams,
//! decoded by `hayro-jpeg2000` (pure Rust). Greyscale or colour, with or without alpha (dropped);
//! every bit depth is scaled to 8 bits.
//!
//! The decoder reads what is there and fills what is missing, so the file's structure is walked
//! first: every JP2 box and every tile-part must lie within the data, and the codestream must reach
//! its end-of-codestream marker. The tile count is bounded as the standard bounds it (65535).

use hayro_jpeg2000::{ColorSpace, DecodeSettings, DecoderContext, Image};
use image::RgbImage;

use super::{DecodeLimits, check_header, unsupported};
use crate::error::Result;

/// The first box of a JP2 file: the JPEG 2000 signature box.
const JP2_SIGNATURE: [u8; 12] = [0, 0, 0, 0x0C, 0x6A, 0x50, 0x20, 0x20, 0x0D, 0x0A, 0x87, 0x0A];
/// A raw codestream starts with its SOC marker, then SIZ.
const J2K_START: [u8; 4] = [0xFF, 0x4F, 0xFF, 0x51];
/// Marker codes (after 0xFF) the walk needs: start of tile-part and end of codestream.
const SOT: u8 = 0x90;
const EOC: u8 = 0xD9;

/// `jp2` or `j2k` if the bytes start like a JPEG 2000 file or codestream.
pub(super) fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&JP2_SIGNATURE) {
        Some("jp2")
    } else if bytes.starts_with(&J2K_START) {
        Some("j2k")
    } else {
        None
    }
}

/// Reads the header, checks the limits, the colour space and that the data is complete. Nothing
/// is decoded: the main header only is parsed.
pub(super) fn open<'a>(bytes: &'a [u8], format: &str, limits: &DecodeLimits) -> Result<Image<'a>> {
    let image = Image::new(bytes, &DecodeSettings::default())
        .map_err(|e| unsupported(format!("the JPEG 2000 header cannot be read: {e}")))?;
    let channels = u64::from(colour_channels(&image)?) + u64::from(image.has_alpha());
    // The decoder holds two f32 planes per component, wavelet coefficients and samples: a 4000x3000
    // RGB image counts 288 MB here and raised peak memory by 290 MB when decoded.
    check_header(image.width(), image.height(), 8 * channels, limits)?;
    let stream = codestream(bytes, format)?;
    tiles(stream)?;
    complete(stream)?;
    Ok(image)
}

/// Decodes to RGB.
pub(super) fn decode(bytes: &[u8], format: &str, limits: &DecodeLimits) -> Result<RgbImage> {
    let image = open(bytes, format, limits)?;
    let (width, height) = (image.width(), image.height());
    let grey = colour_channels(&image)? == 1;
    let mut context = DecoderContext::default();
    let decoded =
        image.decode(&mut context).map_err(|e| unsupported(format!("the JPEG 2000 data is corrupt: {e}")))?;
    let channels = decoded.components().len();
    let samples = decoded.data_u8();
    drop(context); // frees the f32 planes
    let pixels = width as usize * height as usize;
    if channels < usize::from(if grey { 1u8 } else { 3 }) || samples.len() != pixels * channels {
        return Err(unsupported("the JPEG 2000 decoder returned fewer samples than the header declares"));
    }
    let rgb = match (grey, channels) {
        (false, 3) => samples,
        (false, _) => samples.chunks_exact(channels).flat_map(|p| [p[0], p[1], p[2]]).collect(),
        (true, _) => samples.chunks_exact(channels).flat_map(|p| [p[0]; 3]).collect(),
    };
    RgbImage::from_raw(width, height, rgb).ok_or_else(|| unsupported("the JPEG 2000 image has no pixels"))
}

/// 1 (grey) or 3 (colour), alpha not counted; other colour spaces are refused.
fn colour_channels(image: &Image<'_>) -> Result<u8> {
    match image.color_space() {
        ColorSpace::Gray => Ok(1),
        ColorSpace::RGB => Ok(3),
        ColorSpace::Icc { num_channels: n @ (1 | 3), .. } => Ok(*n),
        ColorSpace::CMYK => Err(unsupported("CMYK JPEG 2000 images are not accepted")),
        ColorSpace::Icc { num_channels, .. } | ColorSpace::Unknown { num_channels } => {
            Err(unsupported(format!("JPEG 2000 images with {num_channels} colour channels are not accepted")))
        }
    }
}

fn truncated() -> crate::error::Error {
    unsupported("the JPEG 2000 file is truncated")
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// The codestream: the bytes themselves, or the contents of a JP2 file's `jp2c` box. Every box up
/// to it must lie within the data.
fn codestream<'a>(bytes: &'a [u8], format: &str) -> Result<&'a [u8]> {
    if format == "j2k" {
        return Ok(bytes);
    }
    let mut at = 0usize;
    loop {
        let (Some(length), Some(kind)) = (be32(bytes, at), bytes.get(at + 4..at + 8)) else {
            return Err(truncated());
        };
        // Length 0: the box runs to the end of the file; 1: a 64-bit length follows the type.
        let (header, length) = match length {
            0 => (8, (bytes.len() - at) as u64),
            1 => {
                let (Some(high), Some(low)) = (be32(bytes, at + 8), be32(bytes, at + 12)) else {
                    return Err(truncated());
                };
                (16, u64::from(high) << 32 | u64::from(low))
            }
            n => (8, u64::from(n)),
        };
        let end = (at as u64).saturating_add(length);
        if length < header || end > bytes.len() as u64 {
            return Err(truncated());
        }
        if kind == b"jp2c" {
            return Ok(&bytes[at + header as usize..end as usize]);
        }
        at = end as usize;
    }
}

/// At most 65535 tiles: a tile-part numbers its tile in 16 bits (`Isot`). The decoder sets up every
/// tile first, so a few bytes declaring 1x1-pixel tiles would otherwise take gigabytes.
fn tiles(stream: &[u8]) -> Result<()> {
    // SOC, then SIZ: marker, Lsiz, Rsiz, image size, image offset, tile size, tile offset (32-bit).
    let field = |i: usize| be32(stream, 8 + 4 * i).map(u64::from).ok_or_else(truncated);
    let [width, height, tile_width, tile_height, tile_x, tile_y] =
        [field(0)?, field(1)?, field(4)?, field(5)?, field(6)?, field(7)?];
    let across = width.saturating_sub(tile_x).div_ceil(tile_width.max(1));
    let down = height.saturating_sub(tile_y).div_ceil(tile_height.max(1));
    let count = across.saturating_mul(down);
    if count > 65_535 {
        return Err(unsupported(format!(
            "the JPEG 2000 codestream declares {count} tiles; at most 65535 are allowed"
        )));
    }
    Ok(())
}

/// Walks the codestream: main-header marker segments up to the first tile-part, then tile-parts by
/// their lengths (`Psot`) up to the end-of-codestream marker.
fn complete(stream: &[u8]) -> Result<()> {
    let marker = |at: usize| match stream.get(at..at + 2) {
        Some(&[0xFF, code]) => Some(code),
        _ => None,
    };
    let segment =
        |at: usize| stream.get(at + 2..at + 4).map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])));
    let mut at = 2; // after SOC
    loop {
        match marker(at) {
            Some(SOT) => break,
            Some(0x30..=0x3F) => at += 2, // markers without a segment
            Some(_) => at += 2 + segment(at).ok_or_else(truncated)?,
            None if at + 2 > stream.len() => return Err(truncated()),
            None => return Err(unsupported("the JPEG 2000 main header is corrupt")),
        }
    }
    loop {
        match marker(at) {
            Some(EOC) => return Ok(()),
            Some(SOT) => {
                // SOT, Lsot, Isot, then Psot: the tile-part's length from its SOT marker on.
                let length = be32(stream, at + 6).ok_or_else(truncated)? as usize;
                if length == 0 {
                    // The last tile-part runs to the end of the codestream, which ends with EOC.
                    return if stream.ends_with(&[0xFF, EOC]) { Ok(()) } else { Err(truncated()) };
                }
                at = at.checked_add(length).filter(|&end| end <= stream.len()).ok_or_else(truncated)?;
            }
            None if at + 2 > stream.len() => return Err(truncated()),
            Some(_) | None => return Err(unsupported("the JPEG 2000 tile-parts are corrupt")),
        }
    }
}
