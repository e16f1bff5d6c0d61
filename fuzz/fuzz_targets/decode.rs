//! The photo decoder on arbitrary bytes, every format (JPEG, JPEG 2000, PNG, WebP, GIF, BMP, PNM),
//! with the engine's default limits and as the engine calls it: header probe, then a decode at a
//! DCT scale (chosen from the input's length, so seeds stay plain photos).
//!
//! Checks: no panic; no allocation past libFuzzer's limit (huge headers are refused, not
//! allocated); every refusal is a user error (4xx), never an internal one; a photo that decodes
//! stays within the limits and, decoded in full, has the size its header announced.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wajah::fuzzing::{decode_scaled, probe};
use wajah::{DecodeLimits, Error};

fuzz_target!(|data: &[u8]| {
    let limits = DecodeLimits::default();
    let probed = probe(data, &limits);
    let eighths = data.len() % 8 + 1;
    let decoded = decode_scaled(data, &limits, eighths as f32 / 8.0);
    for err in [probed.as_ref().err(), decoded.as_ref().err()].into_iter().flatten() {
        assert!(
            matches!(err, Error::EmptyInput | Error::UnsupportedImage { .. } | Error::ImageTooLarge { .. }),
            "not a typed photo error: {err:?}"
        );
    }
    if let Ok((photo, scale)) = decoded {
        let (w, h) = photo.image.dimensions();
        assert!(w > 0 && h > 0 && w <= limits.max_width && h <= limits.max_height);
        assert!(scale > 0.0 && scale <= 1.0);
        let Ok(((pw, ph), format)) = probed else { panic!("decoded but the probe refused it") };
        assert_eq!(format, photo.format);
        if scale == 1.0 {
            assert_eq!((pw, ph), (w, h), "{format}: header size differs from the decoded size");
        }
    }
});
