//! Capture compliance on real labelled photos: occlusion checks, head pose, the quality score, the
//! registration mode and the ID-photo replay flag.

use image::imageops;
use wajah::{
    CaptureMode, Error, FacePolicy, Gallery, IndexConfig, Occlusion, QualityIssue, SqliteStore, TemplateKey,
};

use crate::{engine, read, testdata};

/// One labelled evaluation photo: (file under testdata/capture/, labels in [`Occlusion::ALL`] order).
fn labelled() -> Vec<(String, [bool; 4])> {
    let text = String::from_utf8(read("capture/eval.csv")).expect("utf-8");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
    // Only the first columns are read; later ones (licence, origin, notes) may be quoted.
    let col =
        |name: &str| header.iter().position(|c| *c == name).unwrap_or_else(|| panic!("no {name} column"));
    let file = col("file");
    let labels: Vec<usize> = Occlusion::ALL.iter().map(|o| col(o.as_str())).collect();
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let mut y = [false; 4];
            for (k, &c) in labels.iter().enumerate() {
                y[k] = match f[c] {
                    "1" => true,
                    "0" => false,
                    other => panic!("label {other:?} in {l}"),
                };
            }
            (f[file].to_string(), y)
        })
        .collect()
}

/// One assessed evaluation photo: its file, labels and the issues found.
type Assessed = (String, [bool; 4], Vec<QualityIssue>);

/// Every evaluation photo with a usable face, assessed once for all tests.
fn assessed() -> &'static [Assessed] {
    static DONE: std::sync::OnceLock<Vec<Assessed>> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        use rayon::prelude::*;
        labelled()
            .par_iter()
            .filter_map(|(file, y)| {
                let a = engine().analyze_with(&read(file), FacePolicy::Largest).ok()?;
                Some((file.clone(), *y, a.quality.issues))
            })
            .collect()
    })
}

/// (precision, recall, share of photos without the occlusion flagged, positives) for `o`.
fn figures(o: Occlusion) -> (f64, f64, f64, usize) {
    let k = Occlusion::ALL.iter().position(|x| *x == o).expect("listed");
    let issue = QualityIssue::occlusion(o);
    let (mut tp, mut fp, mut pos, mut neg) = (0, 0, 0, 0);
    for (_, y, issues) in assessed() {
        let flagged = issues.contains(&issue);
        if y[k] {
            pos += 1;
            tp += usize::from(flagged);
        } else {
            neg += 1;
            fp += usize::from(flagged);
        }
    }
    let r = |a: usize, b: usize| a as f64 / b.max(1) as f64;
    (r(tp, tp + fp), r(tp, pos), r(fp, neg), pos)
}

#[test]
fn masks_are_found_on_real_photos() {
    let (precision, recall, _, n) = figures(Occlusion::Mask);
    assert!(n >= 100, "only {n} masked photos");
    // Measured 0.970 / 0.963 (README.md); the issue's target is 0.95 / 0.95. The floor leaves
    // room for a photo or two near the bar to fall the other way on another CPU's int8 kernels.
    assert!(recall >= 0.94 && precision >= 0.94, "mask precision {precision:.3} recall {recall:.3} over {n}");
}

#[test]
fn sunglasses_are_found_on_real_photos() {
    let (_, recall, _, n) = figures(Occlusion::Sunglasses);
    // 11 committed photos with sunglasses have a usable face, most of them also masked; 9 are
    // found, the two missed have lightly tinted lenses (README.md also gives the recall on 81
    // held-out selfies that may not be redistributed: 0.914).
    assert!(n >= 10, "only {n} photos with sunglasses");
    assert!(recall >= 0.7, "sunglasses recall {recall:.3} over {n}");
}

#[test]
fn eyeglasses_are_found_and_bare_faces_are_left_alone() {
    let (_, recall, false_flags, n) = figures(Occlusion::Eyeglasses);
    assert!(n >= 100, "only {n} photos with eyeglasses");
    // Measured 0.811 and 1.4% (README.md); the issue's target is 0.80 and 5%. The recall floor is
    // two photos under the target, for photos near the bar (as for masks above).
    assert!(recall >= 0.78, "eyeglasses recall {recall:.3} over {n}");
    assert!(false_flags <= 0.05, "{false_flags:.3} of photos without eyeglasses flagged");
}

/// The testkit's whole photos without occlusions (its MIT and Apache-licensed portraits in
/// `identities/`, not dlib's face crops, which the frame check rightly calls cut off), labelled in
/// `labels_pool.csv`: how many registration mode refuses, all checks together. 41 of them were
/// training photos of the occlusion models (as faces without occlusions); the other 18 are in the
/// evaluation set (README.md).
#[test]
fn compliant_testkit_photos_are_rarely_refused() {
    let text = String::from_utf8(read("capture/labels_pool.csv")).expect("utf-8");
    let whole: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.splitn(8, ',').collect();
            let portrait =
                ["df_", "fr_", "of_"].iter().any(|p| f[0].starts_with(&format!("testkit/identities/{p}")));
            (portrait && f[2..6] == ["0", "0", "0", "0"]).then(|| f[0].replacen("testkit/", "", 1))
        })
        .collect();
    let refused: Vec<(&String, Vec<QualityIssue>)> = whole
        .iter()
        .filter_map(|file| {
            let a = engine().analyze_with(&read(file), FacePolicy::Largest).expect(file);
            let issues: Vec<QualityIssue> = a
                .quality
                .issues
                .into_iter()
                .filter(|i| i.refuses_selfie(engine().config().refuse_eyeglasses))
                .collect();
            (!issues.is_empty()).then_some((file, issues))
        })
        .collect();
    assert!(whole.len() >= 50, "only {} compliant photos", whole.len());
    // Measured 1 of 59 (1.7%: a portrait in eye make-up, flagged `eyeglasses`); the issue's target
    // is 3%. Another portrait's eyeglasses probability is 0.47 against the 0.5 bar, so the floor
    // allows it to cross on another CPU's int8 kernels.
    assert!(refused.len() <= 2, "{} of {} compliant photos refused: {refused:?}", refused.len(), whole.len());
}

/// The occlusion checks alone on every photo without occlusions, crops included.
#[test]
fn occlusion_checks_rarely_flag_a_bare_face() {
    let bare: Vec<&Assessed> = assessed().iter().filter(|(_, y, _)| !y.iter().any(|l| *l)).collect();
    let flagged = bare
        .iter()
        .filter(|(_, _, i)| Occlusion::ALL.iter().any(|o| i.contains(&QualityIssue::occlusion(*o))))
        .count();
    let rate = flagged as f64 / bare.len().max(1) as f64;
    assert!(bare.len() >= 200, "only {} bare faces", bare.len());
    // Measured 9 of 348 (2.6%) (README.md); 39 before the models were refitted.
    assert!(rate <= 0.04, "{flagged} of {} bare faces flagged with an occlusion", bare.len());
}

#[test]
fn a_turned_head_reads_turned_and_its_mirror_image_turned_the_other_way() {
    let engine = engine();
    let pose = |image: &image::RgbImage| {
        engine.analyze_image(image, FacePolicy::Largest).expect("a face").quality.pose
    };
    // A face turned to the photo's left (the nose points left): yaw well below 0; mirrored, above 0.
    let turned = engine
        .decode(&read("robustness/insightface___robustness__pose_left_face.jpeg"))
        .expect("decodes")
        .image;
    let (a, b) = (pose(&turned), pose(&imageops::flip_horizontal(&turned)));
    assert!(a.yaw_deg < -30.0 && b.yaw_deg > 30.0, "{a:?} vs mirrored {b:?}");
    assert!(a.roll_deg * b.roll_deg < 0.0, "roll keeps its sign when mirrored: {a:?} vs {b:?}");
    assert!((a.pitch_deg - b.pitch_deg).abs() < 5.0, "{a:?} vs mirrored {b:?}");
    // A portrait reads near frontal (within the landmarks' noise, about 5 degrees here).
    let portrait = engine.decode(&read("capture/replay/id_photo.jpg")).expect("decodes").image;
    let p = pose(&portrait);
    assert!(p.yaw_deg.abs() < 12.0 && p.pitch_deg.abs() < 15.0 && p.roll_deg.abs() < 8.0, "{p:?}");
}

#[test]
fn the_quality_score_falls_with_blur_and_with_a_mask() {
    let engine = engine();
    let photo = engine.decode(&read("identities/fr_obama/obama.jpg")).expect("decodes").image;
    let sharp = engine.analyze_image(&photo, FacePolicy::Single).expect("a face").quality;
    let sigma = photo.width().max(photo.height()) as f32 / 150.0;
    let blurred =
        engine.analyze_image(&imageops::blur(&photo, sigma), FacePolicy::Single).expect("a face").quality;
    assert!(sharp.quality_score >= 60, "{sharp:?}");
    assert!(blurred.quality_score + 20 <= sharp.quality_score, "sharp {sharp:?} blurred {blurred:?}");
    let masked = engine
        .analyze_with(&read("robustness/insightface___robustness__mask2.jpg"), FacePolicy::Largest)
        .expect("a face")
        .quality;
    assert!(masked.issues.contains(&QualityIssue::Mask), "{masked:?}");
    assert!(masked.quality_score < 40, "{masked:?}");
}

fn gallery() -> (tempfile::TempDir, Gallery) {
    gallery_with(engine().config().refuse_eyeglasses)
}

fn gallery_with(refuse_eyeglasses: bool) -> (tempfile::TempDir, Gallery) {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = TemplateKey::create(&dir.path().join("key")).expect("key");
    let store = SqliteStore::open(&dir.path().join("t.db"), vec![key]).expect("store");
    let config = wajah::EngineConfig { refuse_eyeglasses, ..engine().config().clone() };
    let engine = std::sync::Arc::new(wajah::Engine::new(config).expect("engine"));
    let gallery = Gallery::open(engine, Box::new(store), IndexConfig::default()).expect("gallery");
    (dir, gallery)
}

#[test]
fn registration_refuses_a_masked_id_photo_and_a_photo_of_the_id_photo() {
    let (_dir, gallery) = gallery();
    let nik = "3201011505900001";
    let masked = read("robustness/insightface___robustness__mask2.jpg");
    match gallery.enroll(nik, &masked, CaptureMode::Registration) {
        Err(Error::CaptureRejected { problems }) => assert!(problems.contains(&QualityIssue::Mask)),
        other => panic!("a masked ID photo was not refused: {:?}", other.map(|e| e.outcome)),
    }
    // Nothing was stored for the refused enrolment.
    assert!(matches!(gallery.template(nik), Err(Error::NotEnrolled)));

    let id_photo = gallery
        .enroll(nik, &read("capture/replay/id_photo.jpg"), CaptureMode::Registration)
        .expect("enrolled");
    // The same template enrolled alone (no face patch, as before patches were kept): the score
    // bound decides instead.
    let bare = "3201011505900002";
    let template_only = wajah::Enrollment {
        subject: bare.into(),
        template: id_photo.analysis.template.clone(),
        quality: serde_json::json!({}),
        photo_sha256: "0".repeat(64),
        created_ms: 0,
        updated_ms: 0,
    };
    gallery.enroll_template(&template_only).expect("enrolled");
    assert!(gallery.enrolled(bare).expect("enrolled").1.is_none());
    assert!(gallery.enrolled(nik).expect("enrolled").1.is_some());
    let mut by_score = 0;
    // Photos of the enrolled photo held up to a camera (made by `wajah make-replay`, see README.md).
    let replays = std::fs::read_dir(testdata("capture/replay")).expect("replay folder");
    let mut flagged = 0;
    let mut refused = 0;
    let mut total = 0;
    for entry in replays {
        let path = entry.expect("entry").path();
        if path.file_name().is_none_or(|n| !n.to_string_lossy().starts_with("replay_")) {
            continue;
        }
        total += 1;
        let bytes = std::fs::read(&path).expect("reads");
        // Check mode: compared, and flagged.
        let checked = gallery.verify(nik, &bytes, CaptureMode::Check).expect("compared in check mode");
        if checked.analysis.quality.issues.contains(&QualityIssue::PhotoOfIdPhoto) {
            flagged += 1;
        } else {
            eprintln!("{}: not flagged, score {:?}", path.display(), checked.decision.score);
        }
        let scored = gallery.verify(bare, &bytes, CaptureMode::Check).expect("compared in check mode");
        if scored.analysis.quality.issues.contains(&QualityIssue::PhotoOfIdPhoto) {
            assert!(scored.decision.score.0 >= 0.9, "{:?}", scored.decision);
            by_score += 1;
        }
        // Registration mode: refused (for this or for another capture problem).
        if matches!(
            gallery.verify(nik, &bytes, CaptureMode::Registration),
            Err(Error::CaptureRejected { .. })
        ) {
            refused += 1;
        }
    }
    assert!(total >= 4, "only {total} replay photos");
    // Every one: the enrolment kept the ID photo's face patch, and one homography explains each
    // photo of it (by score alone, 5 of these 6 were flagged: the sixth scores 0.886, under the
    // 0.90 bound used without a patch). README.md has the rates over generated attacks and genuine
    // pairs.
    assert_eq!(flagged, total, "{flagged} of {total} photos of the ID photo flagged");
    assert_eq!(by_score, 5, "by score alone");
    assert!(refused >= flagged, "{refused} of {total} refused in registration mode, {flagged} flagged");
    // A live photo of the same person is compared, not flagged.
    let live =
        gallery.verify(nik, &read("identities/fr_obama/obama2.jpg"), CaptureMode::Check).expect("compared");
    assert!(live.decision.matched, "{:?}", live.decision);
    assert!(!live.analysis.quality.issues.contains(&QualityIssue::PhotoOfIdPhoto));
}

/// Clear glasses refuse a selfie in registration mode with `refuse_eyeglasses` (the default) and are
/// only reported without it; an ID photo with them is enrolled either way.
#[test]
fn eyeglasses_refuse_a_selfie_only_when_the_operator_asks() {
    let (file, _, _) = assessed()
        .iter()
        .find(|(_, y, issues)| y[0] && issues.as_slice() == [QualityIssue::Eyeglasses])
        .expect("a labelled photo whose only problem is its glasses");
    let photo = read(file);
    for refuse in [false, true] {
        let (_dir, gallery) = gallery_with(refuse);
        let nik = "3201011505900003";
        gallery.enroll(nik, &photo, CaptureMode::Registration).expect("glasses do not refuse an ID photo");
        // The selfie is the ID photo itself, so without the glasses refusal it is compared and then
        // refused as a photo of the ID photo; with it, it is refused for the glasses before that.
        match gallery.verify(nik, &photo, CaptureMode::Registration) {
            Err(Error::CaptureRejected { problems }) => {
                let expected =
                    if refuse { vec![QualityIssue::Eyeglasses] } else { vec![QualityIssue::PhotoOfIdPhoto] };
                assert_eq!(problems, expected, "{file} with refuse_eyeglasses = {refuse}");
            }
            other => panic!("{file} with refuse_eyeglasses = {refuse}: {:?}", other.map(|v| v.decision)),
        }
    }
}
