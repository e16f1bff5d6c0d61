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
    // Real photos of each format: JPEG (baseline, and obama1.jpg progressive), PNG, GIF, WebP, PGM.
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
