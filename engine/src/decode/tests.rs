//! Unit tests of the decoder: limits, completeness and JPEG paths, on real photos re-encoded in memory.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, RgbImage};

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

/// A real photo: face_recognition's `obama_small.jpg` (MIT), 320x240.
fn photo() -> RgbImage {
    let bytes = std::fs::read(testdata("identities/fr_obama/obama_small.jpg")).expect("testdata photo");
    decode(&bytes, &DecodeLimits::default()).expect("decodes").image
}

fn testdata(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata").join(rel)
}

fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).expect("encodes");
    out.into_inner()
}

fn reason(result: Result<impl std::fmt::Debug>) -> String {
    match result {
        Err(Error::UnsupportedImage { reason }) => reason,
        other => panic!("expected UnsupportedImage, got {other:?}"),
    }
}

#[test]
fn decoded_bytes_are_checked_on_the_header_by_bytes_per_pixel() {
    let photo = photo();
    let pixels = u64::from(photo.width() * photo.height());
    let rgb = DynamicImage::ImageRgb8(photo.clone());
    let rgba16 = DynamicImage::ImageRgba16(rgb.to_rgba16());
    // Bytes per pixel the decoder fills: the colour type's, and 3 for any JPEG (libjpeg gives RGB).
    let cases = [
        (encode(&rgba16, ImageFormat::Png), 8),
        (encode(&rgb, ImageFormat::Png), 3),
        (encode(&DynamicImage::ImageRgba8(rgb.to_rgba8()), ImageFormat::WebP), 4),
        (encode(&rgb, ImageFormat::Gif), 4),
        (encode(&rgb, ImageFormat::Bmp), 3),
        (encode(&DynamicImage::ImageLuma8(rgb.to_luma8()), ImageFormat::Jpeg), 3),
    ];
    for (bytes, per_pixel) in cases {
        let exact = DecodeLimits { max_decoded_bytes: pixels * per_pixel, ..DecodeLimits::default() };
        // At the limit it decodes: the image crate's own allocation limit is the same figure.
        let decoded = decode(&bytes, &exact).unwrap_or_else(|e| panic!("{per_pixel} bytes per pixel: {e}"));
        assert_eq!(decoded.image.dimensions(), photo.dimensions());
        let under = DecodeLimits { max_decoded_bytes: pixels * per_pixel - 1, ..exact };
        for result in [decode(&bytes, &under).map(|_| ()), probe(&bytes, &under).map(|_| ())] {
            match result {
                Err(Error::ImageTooLarge { what: "decoded bytes", actual, limit }) => {
                    assert_eq!((actual, limit), (pixels * per_pixel, pixels * per_pixel - 1));
                }
                other => panic!("{} at {per_pixel} bytes per pixel: {other:?}", decoded.format),
            }
        }
    }
    // 16 bits per channel are scaled to 8 exactly; alpha is dropped.
    let rgba16 = decode(&encode(&rgba16, ImageFormat::Png), &DecodeLimits::default()).expect("decodes");
    assert!(rgba16.image == photo, "16-bit RGBA PNG differs from its 8-bit source");
    // The default lets every 8-bit photo the pixel limit lets through, at 4 bytes per pixel.
    let limits = DecodeLimits::default();
    assert_eq!(limits.max_decoded_bytes, limits.max_pixels * 4);
}

#[test]
fn a_file_cut_before_its_end_marker_is_refused_and_trailing_bytes_are_not() {
    let rgb = DynamicImage::ImageRgb8(photo());
    for format in [ImageFormat::Png, ImageFormat::Gif, ImageFormat::WebP] {
        let bytes = encode(&rgb, format);
        for cut in [bytes.len() / 10, bytes.len() / 2, bytes.len() * 9 / 10, bytes.len() - 2, bytes.len() - 1]
        {
            let why = reason(decode(&bytes[..cut], &DecodeLimits::default()));
            assert!(why.contains("truncated"), "{format:?} cut at {cut}: {why}");
            assert!(probe(&bytes[..cut], &DecodeLimits::default()).is_err(), "{format:?} probe at {cut}");
        }
        let mut padded = bytes.clone();
        padded.extend_from_slice(b"bytes after the end marker");
        let decoded = decode(&padded, &DecodeLimits::default()).expect("trailing bytes are ignored");
        assert_eq!(decoded.image, decode(&bytes, &DecodeLimits::default()).expect("whole").image);
    }
}

/// The photo compressed by libjpeg (mozjpeg's encoder: progressive) in `space`, from `samples`.
fn libjpeg_encode(space: mozjpeg::ColorSpace, samples: &[u8], (w, h): (u32, u32)) -> Vec<u8> {
    let mut compress = mozjpeg::Compress::new(space);
    compress.set_size(w as usize, h as usize);
    compress.set_quality(95.0);
    let mut started = compress.start_compress(Vec::new()).expect("starts");
    started.write_scanlines(samples).expect("rows");
    started.finish().expect("finishes")
}

#[test]
fn truncated_jpegs_are_refused_at_every_dct_scale() {
    let baseline = std::fs::read(testdata("identities/fr_obama/obama_small.jpg")).expect("testdata photo");
    let photo = photo();
    let progressive = libjpeg_encode(mozjpeg::ColorSpace::JCS_RGB, photo.as_raw(), photo.dimensions());
    let limits = DecodeLimits::default();
    for bytes in [baseline, progressive] {
        for cut in [bytes.len() / 10, bytes.len() / 2, bytes.len() * 9 / 10, bytes.len() - 2] {
            for scale in [0.125, 0.5, 1.0] {
                let why = reason(decode_scaled(&bytes[..cut], &limits, scale));
                assert!(why.contains("truncated"), "cut at {cut} of {}, scale {scale}: {why}", bytes.len());
            }
        }
        let (whole, scale) = decode_scaled(&bytes, &limits, 0.5).expect("the whole file decodes");
        assert_eq!((whole.image.width(), scale), (160, 0.5));
    }
}

#[test]
fn cmyk_jpeg_decodes_to_rgb_as_opencv_does() {
    // Adobe CMYK as libjpeg stores it (inverted): K = the brightest channel, C, M, Y scaled by it.
    let photo = photo();
    let cmyk: Vec<u8> = photo
        .pixels()
        .flat_map(|p| {
            let k = p.0.into_iter().max().unwrap_or(0).max(1);
            let ink = |v: u8| (u32::from(v) * 255 / u32::from(k)) as u8;
            [ink(p.0[0]), ink(p.0[1]), ink(p.0[2]), k]
        })
        .collect();
    let bytes = libjpeg_encode(mozjpeg::ColorSpace::JCS_CMYK, &cmyk, photo.dimensions());
    // Used to unwind out of decode (libjpeg cannot convert CMYK to RGB itself).
    let decoded = decode(&bytes, &DecodeLimits::default()).expect("a CMYK JPEG decodes");
    let diff: u64 =
        decoded.image.as_raw().iter().zip(photo.as_raw()).map(|(a, b)| u64::from(a.abs_diff(*b))).sum();
    let mean = diff as f64 / photo.as_raw().len() as f64;
    assert!(mean < 3.0, "mean difference {mean:.2} from the RGB photo");
    let pixels = u64::from(photo.width() * photo.height());
    let limits = DecodeLimits { max_decoded_bytes: pixels * 4 - 1, ..DecodeLimits::default() };
    assert!(matches!(decode(&bytes, &limits), Err(Error::ImageTooLarge { what: "decoded bytes", .. })));
    assert!(reason(decode(&bytes[..bytes.len() - 2], &DecodeLimits::default())).contains("truncated"));
}
