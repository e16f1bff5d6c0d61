//! Is the file all there? The container structure of PNG, GIF and WebP is walked (lengths only, no
//! pixel data is read) to the marker that ends it. Their decoders already refuse pixel data cut
//! short, but accept a PNG without its `IEND` chunk or a GIF without its trailer: a file cut in
//! transit, however little is missing, is refused like a truncated JPEG. A JPEG's header segments
//! are walked up to its first scan (its data is checked by libjpeg as it is decoded).

use super::unsupported;
use crate::error::Result;

/// Refuses a PNG, GIF or WebP file that ends before its end marker, or a JPEG before its first scan
/// (other formats pass).
pub(super) fn check(format: &str, bytes: &[u8]) -> Result<()> {
    let (whole, name) = match format {
        "png" => (png(bytes), "PNG"),
        "gif" => (gif(bytes), "GIF"),
        "webp" => (webp(bytes), "WebP"),
        // Its data is checked as libjpeg decodes it; here only the header, before it is parsed.
        "jpeg" => (jpeg_header(bytes), "JPEG"),
        _ => return Ok(()),
    };
    if whole { Ok(()) } else { Err(unsupported(format!("the {name} is truncated"))) }
}

/// `n` bytes at `at`, if the data has them.
fn take(bytes: &[u8], at: usize, n: usize) -> Option<&[u8]> {
    bytes.get(at..at.checked_add(n)?)
}

/// Chunks (length, type, data, CRC) from after the signature up to a whole `IEND` chunk.
fn png(bytes: &[u8]) -> bool {
    let mut at = 8;
    while let Some(head) = take(bytes, at, 8) {
        let length = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let Some(end) = at.checked_add(12).and_then(|a| a.checked_add(length)) else { return false };
        if end > bytes.len() {
            return false;
        }
        if &head[4..] == b"IEND" {
            return true;
        }
        at = end;
    }
    false
}

/// Marker segments from SOI up to and including the first start-of-scan segment.
fn jpeg_header(bytes: &[u8]) -> bool {
    let mut at = 2;
    loop {
        match take(bytes, at, 2) {
            Some(&[0xFF, 0xFF]) => at += 1, // fill byte
            // Markers without a segment: TEM, RSTn, SOI; EOI before any scan is for the decoder.
            Some(&[0xFF, 0x01 | 0xD0..=0xD8]) => at += 2,
            Some(&[0xFF, 0xD9]) => return true,
            Some(&[0xFF, code]) => {
                let Some(length) = take(bytes, at + 2, 2) else { return false };
                at += 2 + usize::from(u16::from_be_bytes([length[0], length[1]]));
                if at > bytes.len() {
                    return false;
                }
                if code == 0xDA {
                    return true;
                }
            }
            Some(_) => return true, // not a marker: corrupt, the decoder says how
            None => return false,
        }
    }
}

/// Header, screen descriptor and colour table, then extension and image blocks up to the trailer.
fn gif(bytes: &[u8]) -> bool {
    // A colour table follows a packed field with bit 7 set; it holds 2^(n+1) RGB entries.
    let table = |packed: u8| if packed & 0x80 != 0 { 3usize << ((packed & 7) + 1) } else { 0 };
    let Some(&screen) = bytes.get(10) else { return false };
    let mut at = 13 + table(screen);
    loop {
        match bytes.get(at) {
            Some(0x3B) => return true,
            Some(0x21) => at += 2, // extension introducer and label
            Some(0x2C) => {
                let Some(&packed) = bytes.get(at + 9) else { return false };
                at += 10 + table(packed) + 1; // descriptor, local colour table, LZW code size
            }
            // Not a block: corrupt rather than cut short; the decoder says what is wrong.
            Some(_) => return true,
            None => return false,
        }
        // Data sub-blocks: a size byte and that many bytes, until a size of 0.
        loop {
            match bytes.get(at) {
                Some(0) => {
                    at += 1;
                    break;
                }
                Some(&size) => at += 1 + usize::from(size),
                None => return false,
            }
        }
    }
}

/// The RIFF header's size covers the whole file after its first 8 bytes.
fn webp(bytes: &[u8]) -> bool {
    take(bytes, 4, 4).is_some_and(|size| {
        let size = u32::from_le_bytes([size[0], size[1], size[2], size[3]]) as usize;
        bytes.len() - 8 >= size
    })
}
