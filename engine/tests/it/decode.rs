//! Decoding real and hostile inputs: every trap decodes, every junk input is a typed error.

use std::io::Cursor;

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
            let result = decode(&bytes[..cut], &limits);
            assert!(
                matches!(result, Err(Error::UnsupportedImage { .. }) | Ok(_)),
                "{} cut at {cut}: {:?}",
                row[0],
                result.err()
            );
        }
        // A truncated photo either fails as unsupported or still goes through the whole pipeline.
        let engine = engine();
        let result = engine.analyze_with(&bytes[..bytes.len() / 2], FacePolicy::Largest);
        if let Err(e) = result {
            assert!(e.is_user_error(), "{}: truncated photo gave internal error {e}", row[0]);
        }
    }
}
