//! `wajah eval-liveness` on the real sequences of testdata/liveness.

use crate::{root, wajah};

#[test]
fn eval_liveness_reports_bpcer_and_apcer_per_species() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (out, plot) = (dir.path().join("liveness.json"), dir.path().join("parallax.png"));
    let data = root().join("testdata");
    let run = wajah(&["eval-liveness", "--per-sequence", "2", "--sequences"])
        .arg(data.join("liveness/bona_fide.csv"))
        .arg("--labels")
        .arg(data.join("liveness/poses.csv"))
        .arg("--root")
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .arg("--plot")
        .arg(&plot)
        .output()
        .expect("runs");
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).expect("report")).expect("json");
    // Measured with --per-sequence 16: BPCER 0 of 15; 4 of 240 tilted cards accepted, no other attack.
    assert_eq!(r["bona_fide"]["sequences"], 15, "{r}");
    assert!(r["bona_fide"]["bpcer"].as_f64().expect("bpcer") <= 0.07, "{}", r["bona_fide"]);
    for species in
        ["static_photo", "still_photo_recaptured", "spliced_identity", "tilted_card", "replayed_session"]
    {
        let s = &r["attacks"][species];
        assert!(s["attacks"].as_u64().expect("count") >= 10, "{species}: {s}");
        let bound = if species == "tilted_card" { 0.07 } else { 0.0 };
        assert!(s["apcer"].as_f64().expect("apcer") <= bound, "{species}: {s}");
    }
    assert!(std::fs::metadata(&plot).expect("plot written").len() > 1000);

    std::fs::write(dir.path().join("bad.csv"), "sequence,step,file\na,turn_left,x.jpg\n").expect("written");
    let run = wajah(&["eval-liveness", "--sequences"])
        .arg(dir.path().join("bad.csv"))
        .arg("--labels")
        .arg(data.join("liveness/poses.csv"))
        .arg("--root")
        .arg(&data)
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success() && err.contains("bad.csv:2") && err.contains("straight"), "{err}");
}
