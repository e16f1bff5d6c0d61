//! Head pose and liveness on real photos: testdata/liveness (labels by eye, README there).

use std::collections::HashMap;

use wajah::{CaptureMode, FacePolicy, HeadPose, LivenessReason, LivenessThresholds, SeenFrames, Step};

use crate::{csv_rows, engine, read};

/// (file, direction, identity, pose) for every labelled photo.
fn poses() -> Vec<(String, String, String, HeadPose)> {
    csv_rows("liveness/poses.csv")
        .into_iter()
        .map(|row| {
            let a = engine()
                .analyze_with(&read(&row[0]), FacePolicy::Largest)
                .unwrap_or_else(|e| panic!("{}: {e}", row[0]));
            (row[0].clone(), row[1].clone(), row[2].clone(), a.quality.pose)
        })
        .collect()
}

#[test]
fn head_pose_reads_the_direction_seen_on_real_photos() {
    let all = poses();
    let count = |d: &str| all.iter().filter(|p| p.1 == d).count();
    assert!(
        count("straight") >= 20
            && count("turn_left") >= 20
            && count("turn_right") >= 15
            && count("look_up") >= 6
    );
    let straight_pitch: HashMap<&str, f32> =
        all.iter().filter(|p| p.1 == "straight").map(|p| (p.2.as_str(), p.3.pitch_deg)).collect();
    for (file, direction, identity, pose) in &all {
        let ok = match direction.as_str() {
            // Turned photos: yaw of the right sign (nose towards the photo's right is the
            // citizen's own left) and at least 6 degrees.
            "turn_left" => pose.yaw_deg >= 6.0,
            "turn_right" => pose.yaw_deg <= -6.0,
            "straight" => pose.yaw_deg.abs() <= 10.0 && pose.pitch_deg.abs() <= 8.0,
            // Raised chins read above level, and above the same person's straight photo.
            "look_up" => {
                pose.pitch_deg >= 5.0
                    && straight_pitch.get(identity.as_str()).is_none_or(|s| pose.pitch_deg > *s)
            }
            // Lowered chins are labelled but five landmarks do not measure them reliably.
            "look_down" => true,
            other => panic!("unknown direction {other}"),
        };
        assert!(ok, "{file} labelled {direction} reads {pose:?}");
    }
}

/// The bytes of a sequence's photos, by file name under testdata/liveness/poses/.
fn frames(names: &[&str]) -> Vec<Vec<u8>> {
    names.iter().map(|n| read(&format!("liveness/poses/{n}"))).collect()
}

fn check(steps: &[Step], frames: &[Vec<u8>], seen: Option<&SeenFrames>) -> wajah::LivenessReport {
    let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    engine().check_liveness(steps, &refs, CaptureMode::Check, seen).expect("checked").report
}

const STEPS: [Step; 3] = [Step::Straight, Step::TurnLeft, Step::TurnRight];
/// A real sequence: ORL person 10 looking straight, then turning left, then right.
const REAL: [&str; 3] = ["orl_s10_5.pgm", "orl_s10_4.pgm", "orl_s10_9.pgm"];

#[test]
fn a_real_head_turn_is_live_and_its_frames_cannot_be_sent_again() {
    let seen = SeenFrames::default();
    let live = check(&STEPS, &frames(&REAL), Some(&seen));
    assert!(live.live, "{live:?}");
    assert!(
        live.frames[1].parallax.expect("moved") > 0.05
            && live.frames[1].pose.yaw_deg > live.frames[0].pose.yaw_deg
    );
    // A real turn is not one homography of the straight face.
    for f in &live.frames[1..] {
        assert!(f.plane_fit.expect("textured faces") < 0.95, "{live:?}");
    }
    let refs: Vec<Vec<u8>> = frames(&REAL);
    let slices: Vec<&[u8]> = refs.iter().map(Vec::as_slice).collect();
    engine()
        .check_liveness(&STEPS, &slices, CaptureMode::Check, Some(&seen))
        .expect("checked")
        .remember_in(&seen);
    let again = check(&STEPS, &frames(&REAL), Some(&seen));
    assert_eq!(again.reasons, vec![LivenessReason::ReplayedFrames]);
}

#[test]
fn each_failure_gives_its_reason() {
    // The turns asked the other way round: poses not reached.
    let swapped = check(&[Step::Straight, Step::TurnRight, Step::TurnLeft], &frames(&REAL), None);
    assert!(swapped.reasons.contains(&LivenessReason::PoseNotReached), "{swapped:?}");
    // Another person's head turned left in the middle: identity switch.
    let spliced = check(&STEPS, &frames(&["orl_s10_5.pgm", "orl_s4_10.pgm", "orl_s10_9.pgm"]), None);
    assert!(spliced.reasons.contains(&LivenessReason::IdentityMismatch), "{spliced:?}");
    // One photo three times: identical frames, and no pose or parallax.
    let same = check(&STEPS, &frames(&["orl_s10_5.pgm"; 3]), None);
    for r in [LivenessReason::IdenticalFrames, LivenessReason::PoseNotReached, LivenessReason::PlanarMotion] {
        assert!(same.reasons.contains(&r), "{same:?}");
    }
    // Wrong frame count and a challenge not starting straight are bad requests.
    let two = frames(&REAL[..2]);
    let refs: Vec<&[u8]> = two.iter().map(Vec::as_slice).collect();
    let err = engine().check_liveness(&STEPS, &refs, CaptureMode::Check, None).err().expect("refused");
    assert_eq!(err.code(), "invalid_argument");
    let err = engine().check_liveness(&[Step::TurnLeft, Step::Straight], &refs, CaptureMode::Check, None);
    assert_eq!(err.err().expect("refused").code(), "invalid_argument");
}

#[test]
fn a_flat_photo_turned_like_a_card_moves_as_a_plane() {
    // The straight photo warped by the homography of a card turned 35 degrees: the nose keeps to
    // the plane of the eyes and mouth.
    let photo =
        image::load_from_memory(&read("liveness/poses/fr_obama_obama_small.jpg")).expect("photo").to_rgb8();
    let (w, h) = (photo.width() as f32, photo.height() as f32);
    let turned = imageproc::geometric_transformations::Projection::from_control_points(
        [(0.0, 0.0), (w, 0.0), (w, h), (0.0, h)],
        [(0.12 * w, 0.0), (0.8 * w, 0.1 * h), (0.8 * w, 0.9 * h), (0.12 * w, h)],
    )
    .expect("projection");
    let card = imageproc::geometric_transformations::warp(
        &photo,
        turned,
        imageproc::geometric_transformations::Interpolation::Bilinear,
        imageproc::geometric_transformations::Border::Constant(image::Rgb([90, 90, 90])),
    );
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(card)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .expect("png");
    let original = read("liveness/poses/fr_obama_obama_small.jpg");
    let report = check(&[Step::Straight, Step::TurnRight], &[original, png], None);
    assert!(!report.live, "{report:?}");
    let p = report.frames[1].parallax.expect("moved");
    assert!(p.abs() < 0.05, "{report:?}");
    // Its pixels too: one homography of the straight face explains the turned card's face.
    let fit = report.frames[1].plane_fit.expect("textured faces");
    assert!(fit >= LivenessThresholds::default().max_plane_fit, "{report:?}");
}
