//! Decoding real and hostile inputs: every trap decodes, every junk input is a typed error.

use std::io::{Cursor, Write};
use std::time::{Duration, Instant};

use wajah::{DecodeLimits, Error, FacePolicy, decode};

use crate::{csv_rows, engine, read};

#[test]
fn every_trap_decodes() {
    let traps = csv_rows("traps.csv");
    assert!(traps.len() >= 5, "traps.csv lists {} files", traps.len());
    for row in &traps {
        let photo = decode(&read(&row[0]), &DecodeLimits::default())
            .unwrap_or_else(|e| panic!("{} ({}) does not decode: {e}", row[0], row[1]));
        assert!(photo.image.width() > 0 && photo.image.height() > 0);
    }
    let kinds: Vec<&str> = traps.iter().map(|r| r[1].as_str()).collect();
    for kind in ["gif", "greyscale_pgm", "exif_rotated"] {
        assert!(kinds.contains(&kind), "no {kind} trap in traps.csv");
    }
}

#[test]
fn exif_rotated_photo_matches_its_upright_twin() {
    // The trap is stored sideways with EXIF Orientation = 6 (rotate 90 degrees clockwise to display).
    // Its upright twin: the stored pixels, rotated by hand, saved losslessly.
    let engine = engine();
    let row =
        csv_rows("traps.csv").into_iter().find(|r| r[1] == "exif_rotated").expect("an exif-rotated trap");
    let bytes = read(&row[0]);
    let stored = image::load_from_memory(&bytes).expect("decodes without orientation");
    let mut twin = Cursor::new(Vec::new());
    stored.rotate90().write_to(&mut twin, image::ImageFormat::Png).expect("encodes");
    let twin = twin.into_inner();

    let decoded = decode(&bytes, &DecodeLimits::default()).expect("decodes");
    assert_eq!(decoded.image.dimensions(), (stored.height(), stored.width()), "orientation applied");
    let rotated = engine.analyze_with(&bytes, FacePolicy::Largest).expect("face in the EXIF-rotated photo");
    let upright = engine.analyze_with(&twin, FacePolicy::Largest).expect("face in the upright twin");
    let decision = engine.compare(&rotated.template, &upright.template).expect("same model");
    assert!(decision.matched && decision.score.0 > 0.95, "{}: score {:.4}", row[0], decision.score.0);
}

/// A binary PNM header claiming `w` x `h` pixels, followed by too few bytes.
fn pnm_header(w: u32, h: u32) -> Vec<u8> {
    let mut bytes = format!("P6\n{w} {h}\n255\n").into_bytes();
    bytes.extend_from_slice(&[0u8; 64]);
    bytes
}

/// A GIF whose logical screen and image claim `w` x `h`.
fn gif_header(w: u16, h: u16) -> Vec<u8> {
    let mut b = b"GIF89a".to_vec();
    b.extend_from_slice(&w.to_le_bytes());
    b.extend_from_slice(&h.to_le_bytes());
    b.extend_from_slice(&[0x00, 0x00, 0x00]); // no global colour table
    b.push(0x2C); // image descriptor
    b.extend_from_slice(&[0, 0, 0, 0]);
    b.extend_from_slice(&w.to_le_bytes());
    b.extend_from_slice(&h.to_le_bytes());
    b.extend_from_slice(&[0x00, 0x02, 0x02, 0x4C, 0x01, 0x00, 0x3B]);
    b
}

#[test]
fn junk_inputs_are_typed_errors_never_panics() {
    let limits = DecodeLimits::default();
    assert!(matches!(decode(&[], &limits), Err(Error::EmptyInput)));

    let noise: Vec<u8> = (0..10_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
    assert!(matches!(decode(&noise, &limits), Err(Error::UnsupportedImage { .. })));

    let huge = decode(&pnm_header(30_000, 30_000), &limits);
    assert!(matches!(huge, Err(Error::ImageTooLarge { .. })), "{huge:?}");
    let huge = decode(&gif_header(30_000, 30_000), &limits);
    assert!(matches!(huge, Err(Error::ImageTooLarge { .. })), "{huge:?}");

    let rows = csv_rows("ORIGINS.csv");
    for row in rows.iter().filter(|r| r[0].ends_with(".jpg")).take(5) {
        let bytes = read(&row[0]);
        for cut in [1, 10, bytes.len() / 3, bytes.len() - 1] {
            let result = decode(&bytes[..cut], &limits).map(|p| p.image.dimensions());
            assert!(
                matches!(result, Err(Error::UnsupportedImage { .. })),
                "{} cut at {cut}: {result:?}",
                row[0]
            );
        }
        // The whole pipeline (header probe, then a DCT-scaled decode) refuses it too.
        let result = engine().analyze_with(&bytes[..bytes.len() / 2], FacePolicy::Largest);
        assert!(
            matches!(result, Err(Error::UnsupportedImage { .. })),
            "{}: {:?}",
            row[0],
            result.map(|a| a.face)
        );
    }
}

/// The reason of an `UnsupportedImage` error.
fn refusal<T>(result: Result<T, Error>) -> String {
    match result {
        Err(Error::UnsupportedImage { reason }) => reason,
        Err(e) => panic!("expected unsupported_image, got {}: {e}", e.code()),
        Ok(_) => panic!("expected unsupported_image, got a decoded image"),
    }
}

#[test]
fn photos_cut_short_are_refused_in_every_format() {
    // Real photos of each format: JPEG (baseline, and obama1.jpg progressive), PNG, GIF, WebP, PGM,
    // JPEG 2000 (file and codestream).
    let files = [
        "identities/fr_obama/obama.jpg",
        "identities/fr_obama/obama1.jpg",
        "identities/of_adams/adams.jpg",
        "identities/dj_John_Simm/000288_00470387.jpg",
        "identities/fr_alex_lacamoire/alex-lacamoire.png",
        "robustness/face_recognition___format__32bit.png",
        "robustness/yalefaces__subject01__subject01.glasses.gif",
        "robustness/insightface__rd__d1.jpeg",
        "identities/orl_s1/1.pgm",
        "jpeg2000/obama_id.jp2",
        "jpeg2000/obama_id_grey16.j2k",
    ];
    let limits = DecodeLimits::default();
    for file in files {
        let bytes = read(file);
        let whole = decode(&bytes, &limits).unwrap_or_else(|e| panic!("{file} whole: {e}"));
        for cut in [bytes.len() / 10, bytes.len() / 2, bytes.len() * 9 / 10, bytes.len() - 2] {
            let why = refusal(decode(&bytes[..cut], &limits));
            assert!(why.contains("truncated"), "{file} ({}) cut at {cut}: {why}", whole.format);
        }
    }
}

#[test]
fn corrupt_jpeg_data_is_refused_not_decoded_in_part() {
    let files =
        ["identities/fr_obama/obama.jpg", "identities/fr_obama/obama1.jpg", "identities/of_adams/adams.jpg"];
    for file in files {
        let bytes = read(file);
        let mid = bytes.len() / 2;
        // An end-of-image marker in the middle of the scan data: libjpeg stops there, greys the rest.
        let mut early_end = bytes.clone();
        early_end[mid..mid + 2].copy_from_slice(&[0xFF, 0xD9]);
        // Garbage over 256 bytes, and bits flipped across the middle fifth.
        let mut garbage = bytes.clone();
        garbage[mid..mid + 256].iter_mut().enumerate().for_each(|(i, b)| *b = (i * 37 % 251) as u8);
        let mut flipped = bytes.clone();
        flipped[mid - mid / 10..mid + mid / 10].iter_mut().step_by(97).for_each(|b| *b ^= 0x10);
        for (what, corrupt) in [("early EOI", early_end), ("garbage", garbage), ("flipped bits", flipped)] {
            let why = refusal(decode(&corrupt, &DecodeLimits::default()));
            assert!(why.contains("corrupt"), "{file} with {what}: {why}");
        }
    }
}

/// A `side` x `side` 16-bit RGBA PNG, written row by row (never held decoded): a real photo scaled up
/// (nearest neighbour), alpha opaque. Compresses to under 1 MB.
fn rgba16_png(side: u32) -> Vec<u8> {
    let photo =
        decode(&read("identities/fr_obama/obama_small.jpg"), &DecodeLimits::default()).expect("photo");
    let (w, h) = photo.image.dimensions();
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Sixteen);
    let mut header = encoder.write_header().expect("header");
    let mut writer = header.stream_writer().expect("writer");
    for y in 0..side {
        let row: Vec<u8> = (0..side)
            .flat_map(|x| {
                let [r, g, b] = photo.image.get_pixel(x * w / side, y * h / side).0;
                [r, r, g, g, b, b, 255, 255]
            })
            .collect();
        writer.write_all(&row).expect("row");
    }
    writer.finish().expect("image data");
    header.finish().expect("finished");
    out
}

/// Peak resident memory of this process so far (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("VmHWM in kB")
}

#[test]
fn a_16_bit_rgba_bomb_is_refused_on_its_header_without_decoding() {
    const CHILD: &str = "WAJAH_TEST_RGBA16_BOMB";
    if std::env::var_os(CHILD).is_none() {
        // Peak memory is per process: measured in a child that runs this test alone.
        let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args(["decode::a_16_bit_rgba_bomb_is_refused_on_its_header_without_decoding", "--exact"])
            .args(["--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .output()
            .expect("child runs");
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        eprintln!("{}", stderr.lines().filter(|l| l.contains("RGBA16")).collect::<Vec<_>>().join("\n"));
        assert!(out.status.success() && stdout.contains("1 passed"), "child failed:\n{stdout}\n{stderr}");
        return;
    }
    let bomb = rgba16_png(7000);
    let before = peak_rss_kib();
    let started = Instant::now();
    let result = decode(&bomb, &DecodeLimits::default());
    let elapsed = started.elapsed();
    let grew = peak_rss_kib().saturating_sub(before);
    eprintln!("RGBA16 7000x7000 PNG, {} KB: {elapsed:?}, peak RSS +{} MiB", bomb.len() / 1000, grew / 1024);
    match result {
        Err(Error::ImageTooLarge { what: "decoded bytes", actual, limit }) => {
            assert_eq!((actual, limit), (7000 * 7000 * 8, 200_000_000));
        }
        other => {
            panic!("expected image_too_large on decoded bytes, got {:?}", other.map(|p| p.image.dimensions()))
        }
    }
    assert!(elapsed < Duration::from_millis(500), "took {elapsed:?}");
    assert!(grew < 16 * 1024, "peak RSS grew by {grew} KiB");
}

/// The lossy JPEG 2000 ID photo: a 300x400 crop of face_recognition's obama.jpg at 20:1 (ORIGINS.csv).
const ID_PHOTO: &str = "jpeg2000/obama_id.jp2";

#[test]
fn jpeg2000_id_photo_matches_a_jpeg_selfie_of_the_same_person_only() {
    let bytes = read(ID_PHOTO);
    let photo = decode(&bytes, &DecodeLimits::default()).expect("the JP2 decodes");
    assert_eq!((photo.format, photo.image.dimensions()), ("jp2", (300, 400)));
    let runs = 10;
    let started = Instant::now();
    for _ in 0..runs {
        decode(&bytes, &DecodeLimits::default()).expect("decodes");
    }
    eprintln!("{ID_PHOTO} ({} bytes): decoded in {:?}", bytes.len(), started.elapsed() / runs);

    let engine = engine();
    let id = engine.analyze(&bytes).expect("one face in the ID photo");
    let selfie =
        engine.analyze_with(&read("identities/fr_obama/obama1.jpg"), FacePolicy::Largest).expect("a face");
    let same = engine.compare(&id.template, &selfie.template).expect("same model");
    assert!(same.matched, "the same person: score {:.3} under {:.3}", same.score.0, same.threshold);
    for other in ["identities/fr_biden/biden.jpg", "identities/of_adams/adams.jpg"] {
        let them = engine.analyze_with(&read(other), FacePolicy::Largest).expect("a face");
        let decision = engine.compare(&id.template, &them.template).expect("same model");
        assert!(!decision.matched, "{other}: score {:.3}", decision.score.0);
    }
    eprintln!("{ID_PHOTO} vs obama1.jpg: score {:.3} (threshold {:.3})", same.score.0, same.threshold);
}

/// The codestream inside a JP2 file: the contents of its `jp2c` box (boxes with 32-bit lengths).
fn jp2c(jp2: &[u8]) -> &[u8] {
    let mut at = 0;
    loop {
        let length = u32::from_be_bytes(jp2[at..at + 4].try_into().expect("4 bytes")) as usize;
        if &jp2[at + 4..at + 8] == b"jp2c" {
            return &jp2[at + 8..if length == 0 { jp2.len() } else { at + length }];
        }
        at += length;
    }
}

#[test]
fn jpeg2000_codestreams_are_sniffed_by_content_grey_and_16_bit_included() {
    let jp2 = decode(&read(ID_PHOTO), &DecodeLimits::default()).expect("decodes");
    // The JP2's own codestream, bare: a J2K by its SOC and SIZ markers.
    let bare = decode(jp2c(&read(ID_PHOTO)), &DecodeLimits::default()).expect("the raw codestream decodes");
    assert_eq!(bare.format, "j2k");
    assert!(bare.image == jp2.image, "the bare codestream decodes differently from its JP2 file");
    // A 16-bit greyscale codestream of the same crop: grey replicated, 16 bits scaled to 8.
    let grey = decode(&read("jpeg2000/obama_id_grey16.j2k"), &DecodeLimits::default()).expect("decodes");
    assert_eq!((grey.format, grey.image.dimensions()), ("j2k", (300, 400)));
    assert!(grey.image.pixels().all(|p| p.0[0] == p.0[1] && p.0[1] == p.0[2]));
    let luma = image::DynamicImage::ImageRgb8(jp2.image).to_luma8();
    let diff: u64 =
        grey.image.pixels().zip(luma.pixels()).map(|(g, l)| u64::from(g.0[0].abs_diff(l.0[0]))).sum();
    let mean = diff as f64 / f64::from(300 * 400);
    assert!(mean < 4.0, "grey codestream differs from the colour one's luma by {mean:.2} on average");
    engine().analyze(&read("jpeg2000/obama_id_grey16.j2k")).expect("a face in the greyscale codestream");
}

#[test]
fn jpeg2000_limits_are_checked_on_the_header_before_decoding() {
    // The real ID photo with its SIZ marker (and JP2 header box) claiming 60000 x 60000 pixels.
    let mut bytes = read(ID_PHOTO);
    let siz = bytes.windows(2).position(|w| w == [0xFF, 0x51]).expect("SIZ marker");
    let ihdr = bytes.windows(4).position(|w| w == b"ihdr").expect("ihdr box");
    for at in [siz + 6, siz + 10, ihdr + 4, ihdr + 8] {
        bytes[at..at + 4].copy_from_slice(&60_000u32.to_be_bytes());
    }
    let started = Instant::now();
    let result = decode(&bytes, &DecodeLimits::default());
    let elapsed = started.elapsed();
    match result {
        Err(e @ Error::ImageTooLarge { .. }) => assert_eq!(e.code(), "image_too_large"),
        other => panic!("expected image_too_large, got {:?}", other.map(|p| p.image.dimensions())),
    }
    assert!(elapsed < Duration::from_millis(50), "refused in {elapsed:?}");
    // Within every limit, but in 16 million 1x1 tiles (the decoder would set them all up: 40 s and
    // 4.7 GB for these 12 KB): more tiles than a tile-part can number.
    let mut tiny_tiles = read("jpeg2000/obama_id_grey16.j2k");
    for (at, value) in [(8, 4000u32), (12, 4000), (24, 1), (28, 1)] {
        tiny_tiles[at..at + 4].copy_from_slice(&value.to_be_bytes());
    }
    let started = Instant::now();
    let why = refusal(decode(&tiny_tiles, &DecodeLimits::default()));
    assert!(why.contains("16000000 tiles") && started.elapsed() < Duration::from_millis(50), "{why}");
    // Within width and height but over the pixel limit: refused all the same.
    let small = DecodeLimits { max_pixels: 300 * 400 - 1, ..DecodeLimits::default() };
    let result = decode(&read(ID_PHOTO), &small);
    assert!(matches!(result, Err(Error::ImageTooLarge { what: "pixels", .. })), "{:?}", result.err());
}
