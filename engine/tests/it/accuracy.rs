//! `Mode::Accurate`: the mirror image's embedding averaged in, templates of faces a little smaller
//! than the capture checks want, and photos turned until their face is found; `fast` unchanged.

use std::io::Cursor;

use image::imageops::{FilterType, flip_horizontal, resize, rotate90};
use image::{ImageFormat, RgbImage};
use wajah::{
    ACCURATE_MIN_INTEROCULAR_PX, ALIGNMENT_JITTER, Embedding, Error, FacePolicy, Mode, Point, QualityIssue,
    SMALL_FACE_INTEROCULAR_PX,
};

use crate::{engine, read};

const PHOTO: &str = "identities/fr_obama/obama.jpg";

fn png(image: &RgbImage) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, ImageFormat::Png).expect("PNG");
    out.into_inner()
}

fn upright() -> RgbImage {
    engine().decode(&read(PHOTO)).expect("decodes").image
}

#[test]
fn the_accurate_template_averages_the_face_and_its_mirror_image() {
    let e = engine();
    let fast = e.analyze_in(&read(PHOTO), FacePolicy::Single, Mode::Fast).expect("fast");
    let accurate = e.analyze_in(&read(PHOTO), FacePolicy::Single, Mode::Accurate).expect("accurate");
    assert_eq!(fast.aligned.image(), accurate.aligned.image(), "same face, same alignment");
    let mirror = accurate.aligned.with_image(flip_horizontal(accurate.aligned.image())).expect("same size");
    let both = e.embed(&[&accurate.aligned, &mirror]).expect("embeds");
    let sum: Vec<f32> =
        both[0].embedding.as_slice().iter().zip(both[1].embedding.as_slice()).map(|(a, b)| a + b).collect();
    let expected = Embedding::from_raw(sum).expect("unit vector");
    let same = expected.similarity(&accurate.template.embedding).expect("same dimension").0;
    assert!(same > 0.99999, "accurate template is not the mirror average: {same}");
    let plain = fast.template.similarity(&accurate.template).expect("same model").0;
    assert!(plain < 0.9999 && plain > 0.9, "fast and accurate templates of one photo: {plain}");
    // Templates of both modes are comparable: the same model id.
    assert_eq!(fast.template.model, accurate.template.model);
}

#[test]
fn a_small_face_is_averaged_over_two_more_alignments_in_accurate_mode() {
    let e = engine();
    let image = upright();
    let eyes = e.analyze_in(&read(PHOTO), FacePolicy::Single, Mode::Fast).expect("fast").face.interocular();
    assert!(eyes >= SMALL_FACE_INTEROCULAR_PX, "the full photo's face is not small: {eyes}");
    // Eyes about 26 px apart, like a face on an ID card.
    let scale = 26.0 / eyes;
    let (w, h) = ((image.width() as f32 * scale) as u32, (image.height() as f32 * scale) as u32);
    let small_image = resize(&image, w, h, FilterType::Triangle);
    let accurate = e.analyze_in(&png(&small_image), FacePolicy::Single, Mode::Accurate).expect("accurate");
    assert!(accurate.face.interocular() < SMALL_FACE_INTEROCULAR_PX);

    // The same four crops by hand: the face, its mirror, and the face aligned with its landmarks
    // spread and drawn in about their centroid.
    let face = accurate.face;
    let centre =
        face.landmarks.iter().fold(Point::default(), |c, p| Point { x: c.x + p.x / 5.0, y: c.y + p.y / 5.0 });
    let spread = |factor: f32| {
        let mut f = face;
        for p in &mut f.landmarks {
            *p = Point { x: centre.x + (p.x - centre.x) * factor, y: centre.y + (p.y - centre.y) * factor };
        }
        e.align(&small_image, &f).expect("aligns")
    };
    let mirror = accurate.aligned.with_image(flip_horizontal(accurate.aligned.image())).expect("same size");
    let (larger, smaller) = (spread(1.0 + ALIGNMENT_JITTER), spread(1.0 - ALIGNMENT_JITTER));
    let four = e.embed(&[&accurate.aligned, &mirror, &larger, &smaller]).expect("embeds");
    let average = |templates: &[wajah::Template]| {
        let mut sum = vec![0f32; 128];
        for t in templates {
            sum.iter_mut().zip(t.embedding.as_slice()).for_each(|(s, x)| *s += x);
        }
        Embedding::from_raw(sum).expect("unit vector")
    };
    let same = average(&four).similarity(&accurate.template.embedding).expect("same dimension").0;
    assert!(same > 0.99999, "not the average of the four crops: {same}");
    let flip_only = average(&four[..2]).similarity(&accurate.template.embedding).expect("same dimension").0;
    assert!(flip_only < 0.9999, "the extra alignments changed nothing: {flip_only}");
}

#[test]
fn a_turned_photo_is_found_turned_back_in_accurate_mode_only() {
    let e = engine();
    let turned = png(&rotate90(&upright()));
    assert!(matches!(e.analyze_in(&turned, FacePolicy::Single, Mode::Fast), Err(Error::NoFace)));
    let found = e.analyze_in(&turned, FacePolicy::Single, Mode::Accurate).expect("found turned");
    assert_eq!(found.rotation, 270, "a quarter turn clockwise is undone by three more");
    let reference = e.analyze_in(&read(PHOTO), FacePolicy::Single, Mode::Accurate).expect("upright");
    let score = e.compare(&found.template, &reference.template).expect("compares").score.0;
    assert!(score > 0.9, "the turned photo's template is the person's: {score}");
    assert_eq!(reference.rotation, 0);
}

#[test]
fn turning_finds_no_face_in_photos_without_one() {
    for file in
        ["no_face/dogs.jpg", "no_face/view.jpg", "no_face/mask_texture_blue.jpg", "no_face/no_face.png"]
    {
        let result = engine().analyze_in(&read(file), FacePolicy::Largest, Mode::Accurate);
        assert!(matches!(result, Err(Error::NoFace)), "{file}: {:?}", result.map(|a| (a.rotation, a.face)));
    }
}

#[test]
fn accurate_mode_makes_templates_of_smaller_faces_and_still_flags_them() {
    let e = engine();
    let image = upright();
    let eyes = e.analyze_in(&read(PHOTO), FacePolicy::Single, Mode::Fast).expect("fast").face.interocular();
    // Eyes about 14 px apart: below the capture checks' 16, above accurate's bar.
    let scale = 14.0 / eyes;
    let (w, h) = ((image.width() as f32 * scale) as u32, (image.height() as f32 * scale) as u32);
    let small = png(&resize(&image, w, h, FilterType::Triangle));
    let fast = e.analyze_in(&small, FacePolicy::Single, Mode::Fast);
    assert!(matches!(fast, Err(Error::FaceTooSmall { .. })), "{:?}", fast.map(|a| a.face));
    let accurate = e.analyze_in(&small, FacePolicy::Single, Mode::Accurate).expect("accurate");
    let iod = accurate.face.interocular();
    assert!((ACCURATE_MIN_INTEROCULAR_PX..16.0).contains(&iod), "eye distance {iod}");
    assert!(accurate.quality.issues.contains(&QualityIssue::FaceTooSmall), "{:?}", accurate.quality.issues);
}
