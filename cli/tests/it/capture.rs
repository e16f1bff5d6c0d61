//! `wajah eval-capture` and `wajah make-replay` on real photos.

use crate::{root, testdata, wajah};

#[test]
fn eval_capture_reports_each_problem_and_refuses_a_bad_label_by_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let labels = dir.path().join("labels.csv");
    std::fs::write(
        &labels,
        "file,eyeglasses,sunglasses,mask,face_occluded,notes\n\
         robustness/insightface___robustness__mask2.jpg,0,0,1,0,\"a mask, surgical\"\n\
         identities/fr_obama/obama.jpg,0,0,0,0,\n",
    )
    .expect("labels written");
    let out = dir.path().join("report.json");
    let plot = dir.path().join("capture.png");
    let run = wajah(&["eval-capture", "--labels"])
        .arg(&labels)
        .arg("--root")
        .arg(root().join("testdata"))
        .arg("--out")
        .arg(&out)
        .arg("--plot")
        .arg(&plot)
        .output()
        .expect("runs");
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out).expect("report")).expect("json");
    let mask =
        report["problems"].as_array().expect("problems").iter().find(|p| p["problem"] == "mask").cloned();
    let mask = mask.expect("a mask row");
    assert_eq!((mask["labelled"].as_u64(), mask["true_positives"].as_u64()), (Some(1), Some(1)), "{report}");
    assert_eq!(report["compliant"], 1);
    assert!(std::fs::metadata(&plot).expect("plot written").len() > 1000);

    std::fs::write(&labels, "file,eyeglasses,sunglasses,mask,face_occluded\nx.jpg,0,0,yes,0\n")
        .expect("written");
    let run = wajah(&["eval-capture", "--labels"])
        .arg(&labels)
        .arg("--root")
        .arg(dir.path())
        .output()
        .expect("runs");
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("labels.csv:2") && err.contains("\"yes\""), "{err}");
}

#[test]
fn make_replay_writes_the_id_photo_and_the_same_attacks_for_a_seed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let make = |out: &str| {
        let run = wajah(&["make-replay", "--count", "2", "--seed", "3", "--out"])
            .arg(dir.path().join(out))
            .arg(testdata("identities/fr_obama/obama.jpg"))
            .output()
            .expect("runs");
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    };
    make("a");
    make("b");
    for file in ["id_photo.jpg", "replay_3_000.jpg", "replay_3_001.jpg"] {
        let a = std::fs::read(dir.path().join("a").join(file)).expect("written");
        assert_eq!(a, std::fs::read(dir.path().join("b").join(file)).expect("written"), "{file}");
    }
}
