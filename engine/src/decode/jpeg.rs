//! JPEG through libjpeg-turbo (the `mozjpeg` crate's decoder), as OpenCV's `imread` decodes it: RGB,
//! greyscale replicated, CMYK converted with OpenCV's formula, optionally DCT-scaled by n/8.
//!
//! libjpeg decodes whatever it is given: at the end of the data it warns, fakes an end-of-image
//! marker and fills the missing rows with grey; on corrupt entropy data it warns and goes on. Here
//! the reader notes when libjpeg asks for data past the end, and an error manager counts warnings,
//! so a JPEG cut short or corrupt is refused instead. Fatal libjpeg errors unwind (the crate's
//! error model); they are caught here and become typed errors.

use std::cell::Cell;
use std::io::{self, BufRead, Read};
use std::os::raw::c_int;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use image::RgbImage;
use mozjpeg::Decompress;
use mozjpeg_sys::{J_COLOR_SPACE, jpeg_common_struct, jpeg_error_mgr, msg_parm_union};

use super::{DecodeLimits, check, unsupported};
use crate::error::{Error, Result};

thread_local! {
    /// libjpeg warnings on this thread since the last reset (libjpeg runs on the calling thread).
    static WARNINGS: Cell<u32> = const { Cell::new(0) };
}

/// The payload of the unwind that ends a fatal libjpeg error.
struct Fatal;

/// Decodes a JPEG at scale `eighths`/8 (1..=8) to RGB.
///
/// # Errors
/// [`Error::UnsupportedImage`] if the data ends early, is corrupt, or libjpeg cannot decode it;
/// [`Error::ImageTooLarge`] for a CMYK JPEG over the decoded-bytes limit at 4 bytes per pixel.
pub(super) fn decode(bytes: &[u8], eighths: u8, limits: &DecodeLimits) -> Result<RgbImage> {
    let ran_out = Cell::new(false);
    let outcome = catch_unwind(AssertUnwindSafe(|| run(bytes, eighths, limits, &ran_out)));
    let warnings = WARNINGS.with(Cell::take);
    if ran_out.get() {
        return Err(unsupported("the JPEG is truncated: its data ends before the end-of-image marker"));
    }
    match outcome {
        Ok(Ok(_)) if warnings > 0 => {
            Err(unsupported("the JPEG is corrupt: libjpeg found bad compressed data"))
        }
        Ok(result) => result,
        Err(payload) if payload.is::<Fatal>() => {
            Err(unsupported("libjpeg cannot decode this JPEG: it is corrupt or uses an unsupported feature"))
        }
        // Not libjpeg's error exit: a bug, kept a panic.
        Err(payload) => resume_unwind(payload),
    }
}

fn run(bytes: &[u8], eighths: u8, limits: &DecodeLimits, ran_out: &Cell<bool>) -> Result<RgbImage> {
    let reader = Tracked { rest: bytes, ran_out };
    let mut decompress = Decompress::builder().with_err(error_manager()).from_reader(reader).map_err(io)?;
    // Warnings while the header is read are about metadata (an unknown JFIF revision, an odd Adobe
    // transform code), which OpenCV accepts too; from here on they are about the image data.
    WARNINGS.with(|w| w.set(0));
    let cmyk = matches!(decompress.color_space(), J_COLOR_SPACE::JCS_CMYK | J_COLOR_SPACE::JCS_YCCK);
    if cmyk {
        let pixels = decompress.width() as u64 * decompress.height() as u64;
        check("decoded bytes", pixels.saturating_mul(4), limits.max_decoded_bytes)?;
    }
    decompress.scale(eighths.clamp(1, 8));
    let mut started = if cmyk { decompress.to_colorspace(J_COLOR_SPACE::JCS_CMYK) } else { decompress.rgb() }
        .map_err(io)?;
    let (width, height) = (dimension(started.width())?, dimension(started.height())?);
    let mut pixels = started.read_scanlines::<u8>().map_err(io)?;
    // Reads on to the end-of-image marker: data cut after the last row shows up here.
    started.finish().map_err(io)?;
    if cmyk {
        cmyk_to_rgb(&mut pixels);
    }
    RgbImage::from_raw(width, height, pixels)
        .ok_or_else(|| unsupported("libjpeg returned fewer rows than the JPEG declares"))
}

/// CMYK (as libjpeg returns Adobe's inverted CMYK) to RGB in place, as OpenCV converts it:
/// each of R, G, B is `k - (255 - c) * k / 256` for its ink `c`. The buffer shrinks to 3 bytes a pixel.
fn cmyk_to_rgb(pixels: &mut Vec<u8>) {
    let count = pixels.len() / 4;
    for i in 0..count {
        let k = u32::from(pixels[4 * i + 3]);
        let ink = |c: u8| (k - (255 - u32::from(c)) * k / 256) as u8;
        let rgb = [ink(pixels[4 * i]), ink(pixels[4 * i + 1]), ink(pixels[4 * i + 2])];
        // Pixel i is written at 3i, at or before where it was read (4i): nothing unread is overwritten.
        pixels[3 * i..3 * i + 3].copy_from_slice(&rgb);
    }
    pixels.truncate(3 * count);
}

fn dimension(n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| unsupported("the JPEG's size does not fit in 32 bits"))
}

fn io(e: io::Error) -> Error {
    unsupported(format!("libjpeg cannot decode this JPEG: {e}"))
}

/// The bytes of the JPEG, noting when libjpeg asks for more after the last one.
struct Tracked<'a> {
    rest: &'a [u8],
    ran_out: &'a Cell<bool>,
}

impl Read for Tracked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.rest.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.ran_out.set(true);
        }
        Ok(n)
    }
}

impl BufRead for Tracked<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.rest.is_empty() {
            self.ran_out.set(true);
        }
        Ok(self.rest)
    }

    fn consume(&mut self, amount: usize) {
        self.rest = self.rest.get(amount..).unwrap_or_default();
    }
}

/// libjpeg's error manager, in safe code: fatal errors unwind with [`Fatal`]; warnings (message
/// level -1) are counted; trace messages are dropped. Nothing is printed.
fn error_manager() -> jpeg_error_mgr {
    jpeg_error_mgr {
        error_exit: Some(fatal),
        emit_message: Some(message),
        output_message: Some(ignore),
        format_message: Some(no_text),
        reset_error_mgr: Some(ignore),
        msg_code: 0,
        msg_parm: msg_parm_union::default(),
        trace_level: 0,
        num_warnings: 0,
        jpeg_message_table: std::ptr::null(),
        last_jpeg_message: 0,
        addon_message_table: std::ptr::null(),
        first_addon_message: 0,
        last_addon_message: 0,
    }
}

extern "C-unwind" fn fatal(_: &mut jpeg_common_struct) {
    resume_unwind(Box::new(Fatal))
}

extern "C-unwind" fn message(_: &mut jpeg_common_struct, level: c_int) {
    if level < 0 {
        WARNINGS.with(|w| w.set(w.get().saturating_add(1)));
    }
}

extern "C-unwind" fn ignore(_: &mut jpeg_common_struct) {}

extern "C-unwind" fn no_text(_: &mut jpeg_common_struct, _: &[u8; 80]) {}
