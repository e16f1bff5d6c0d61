//! Faithfulness to OpenCV's own pipeline (`cv2.FaceDetectorYN` + `cv2.FaceRecognizerSF` on the
//! original model files), from the fixture written by `scripts/reference/make_opencv_fixture.py`.

use serde::Deserialize;
use wajah::{BBox, Embedding, Face, Point};

use crate::{engine, read};

#[derive(Deserialize)]
struct Fixture {
    photos: Vec<Photo>,
}

#[derive(Deserialize)]
struct Photo {
    file: String,
    width: u32,
    height: u32,
    faces: Vec<RefFace>,
}

#[derive(Deserialize)]
struct RefFace {
    bbox: [f32; 4],
    landmarks: [[f32; 2]; 5],
    feature_unit: Vec<f32>,
}

fn fixture() -> Fixture {
    serde_json::from_slice(&read("reference/opencv_yunet_sface.json")).expect("fixture parses")
}

fn to_bbox(b: &[f32; 4]) -> BBox {
    BBox { x: b[0], y: b[1], width: b[2], height: b[3] }
}

/// Our face that overlaps the reference face most.
fn matching<'a>(ours: &'a [Face], reference: &RefFace) -> &'a Face {
    let want = to_bbox(&reference.bbox);
    ours.iter().max_by(|a, b| a.bbox.iou(&want).total_cmp(&b.bbox.iou(&want))).expect("at least one face")
}

#[test]
fn fixture_covers_enough_photos_of_different_sizes() {
    let f = fixture();
    assert!(f.photos.len() >= 10, "{} photos", f.photos.len());
    let mut sizes: Vec<u32> = f.photos.iter().map(|p| p.width.max(p.height)).collect();
    sizes.sort_unstable();
    sizes.dedup();
    assert!(sizes.len() >= 5, "photo sizes {sizes:?}");
    assert!(f.photos.iter().map(|p| p.faces.len()).sum::<usize>() >= 10);
}

#[test]
fn detection_matches_opencv_within_one_pixel() {
    let engine = engine();
    for photo in fixture().photos {
        let decoded = engine.decode(&read(&photo.file)).expect("decodes");
        assert_eq!(decoded.image.dimensions(), (photo.width, photo.height), "{}", photo.file);
        let ours = engine.faces(&decoded.image, wajah::FaceQuery::Raw).expect("detects");
        assert_eq!(ours.len(), photo.faces.len(), "{}: face count", photo.file);
        for reference in &photo.faces {
            let face = matching(&ours, reference);
            let b = face.bbox;
            let got = [b.x, b.y, b.width, b.height];
            for (g, r) in got.iter().zip(&reference.bbox) {
                assert!((g - r).abs() <= 1.0, "{}: box {got:?} vs OpenCV {:?}", photo.file, reference.bbox);
            }
            for (p, r) in face.landmarks.iter().zip(&reference.landmarks) {
                let err = ((p.x - r[0]).powi(2) + (p.y - r[1]).powi(2)).sqrt();
                assert!(err <= 1.0, "{}: landmark {p:?} vs OpenCV {r:?} ({err:.3} px)", photo.file);
            }
        }
    }
}

#[test]
fn embeddings_match_opencv() {
    let engine = engine();
    let mut worst = f32::MAX;
    for photo in fixture().photos {
        let decoded = engine.decode(&read(&photo.file)).expect("decodes");
        let ours = engine.faces(&decoded.image, wajah::FaceQuery::Raw).expect("detects");
        for reference in &photo.faces {
            let face = matching(&ours, reference);
            let aligned = engine.align(&decoded.image, face).expect("aligns");
            let template = engine.embed(&[&aligned]).expect("embeds").remove(0);
            let want = Embedding::from_raw(reference.feature_unit.clone()).expect("valid reference");
            let cosine = template.embedding.similarity(&want).expect("same dim").0;
            worst = worst.min(cosine);

            // Required: >= 0.995. Pixels are bit-identical to OpenCV's, so this holds far tighter.
            assert!(cosine >= 0.999, "{}: cosine to OpenCV {cosine:.5}", photo.file);
        }
    }
    eprintln!("worst embedding cosine to OpenCV: {worst:.5}");
}

#[test]
fn aligning_the_reference_landmarks_gives_the_reference_embedding() {
    // Isolates alignment + embedding from detection: OpenCV's own landmarks in, OpenCV's feature out.
    let engine = engine();
    for photo in fixture().photos.iter() {
        let decoded = engine.decode(&read(&photo.file)).expect("decodes");
        for reference in &photo.faces {
            let landmarks = reference.landmarks.map(|[x, y]| Point { x, y });
            let face = Face { bbox: to_bbox(&reference.bbox), landmarks, score: 1.0 };
            let aligned = engine.align(&decoded.image, &face).expect("aligns");
            let template = engine.embed(&[&aligned]).expect("embeds").remove(0);
            let want = Embedding::from_raw(reference.feature_unit.clone()).expect("valid reference");
            let cosine = template.embedding.similarity(&want).expect("same dim").0;
            assert!(cosine >= 0.995, "{}: cosine {cosine:.5}", photo.file);
        }
    }
}
