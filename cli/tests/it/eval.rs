//! `wajah eval`: strict labels, malformed files named by line, refusals, and the ISO/IEC 19795-1
//! figures (FNMR at FMR, operating point, DET curve) on real photos.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::{PAIRS, run_eval, write_pairs};

fn eval(pairs: &Path, dir: &Path) -> Output {
    let plots = dir.join("plots");
    run_eval(pairs, &dir.join("report.json"), &["--plots", plots.to_str().expect("UTF-8")])
}

/// Runs `wajah eval` on `pairs`, expecting a refusal whose message contains each of `expected`.
fn assert_refused(pairs: &Path, dir: &Path, expected: &[&str]) {
    let out = eval(pairs, dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "eval of {} should have failed; it printed {}", pairs.display(), {
        String::from_utf8_lossy(&out.stdout)
    });
    for e in expected {
        assert!(stderr.contains(e), "{e:?} missing from the error: {stderr}");
    }
    assert!(!dir.join("report.json").exists(), "a refused evaluation wrote a report");
}

#[test]
fn word_labels_are_read_as_same_and_different() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rows: Vec<(&str, &str, &str)> = PAIRS
        .iter()
        .zip(["true", " Same ", "FALSE", "different"])
        .map(|(&(a, b, _), label)| (a, b, label))
        .collect();
    let pairs = write_pairs(dir.path(), "words.csv", &rows);
    let out = eval(&pairs, dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!((report["genuine_pairs"].as_u64(), report["impostor_pairs"].as_u64()), (Some(2), Some(2)));
    // Clear frontal photos: both genuine pairs match and both impostor pairs do not.
    assert_eq!(report["accuracy_at_threshold"], 1.0, "{report}");
}

#[test]
fn report_gives_the_operating_point_fnmr_at_fmr_with_reasons_and_a_det_plot() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pairs = write_pairs(dir.path(), "pairs.csv", &PAIRS);
    let out = eval(&pairs, dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let operating = &report["operating_point"];
    assert_eq!(operating["threshold"], report["threshold"], "{report}");
    assert_eq!((operating["fmr"].as_f64(), operating["fnmr"].as_f64()), (Some(0.0), Some(0.0)), "{report}");
    let rows = report["fnmr_at_fmr"].as_array().expect("fnmr_at_fmr list");
    let fmrs: Vec<f64> = rows.iter().map(|r| r["fmr"].as_f64().expect("fmr")).collect();
    assert_eq!(fmrs, [1e-2, 1e-3, 1e-4]);
    for (k, (row, needed)) in rows.iter().zip(["300", "3000", "30000"]).enumerate() {
        assert!(row["fnmr"].is_null(), "{row}");
        assert!(report["tar_at_far"][k]["tar"].is_null(), "{report}");
        let reason = row["reason"].as_str().expect("a reason");
        assert!(reason.contains(needed) && reason.starts_with("2 impostor pairs"), "{reason}");
    }
    let written: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).expect("report file"))
            .expect("report JSON");
    assert_eq!(written, report);
    for plot in ["roc.png", "det.png", "scores.png"] {
        let png = image::open(dir.path().join("plots").join(plot)).expect(plot);
        assert!(png.width() >= 800 && png.height() >= 600, "{plot}");
    }
}

#[test]
fn an_unknown_label_or_short_line_is_named_by_file_and_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = ("identities/fr_obama/obama.jpg", "identities/fr_biden/biden.jpg");
    // Line 1 is the header; the blank line 4 still counts.
    let good = format!("image_a,image_b,same_person\n{a},{a},1\n{a},{b},0\n\n");
    for (name, bad, problem) in [
        ("yes.csv", format!("{a},{b},yes\n"), "\"yes\""),
        ("two.csv", format!("{a},{b}\n"), "expected 3 columns"),
        ("empty.csv", format!("{a},,1\n"), "empty image path"),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("{good}{bad}")).expect("pairs file");
        assert_refused(&path, dir.path(), &[&format!("{}:5: ", path.display()), problem]);
    }
}

#[test]
fn a_malformed_lfw_line_is_named_by_file_and_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = "1\t2\nAbel_Pacheco\t1\t4\n";
    for (bad, problem) in [
        ("Abel_Pacheco\t1\tfour\n", "image number \"four\""),
        ("Abel_Pacheco\t1\t2\t3\t4\n", "not an LFW pair"),
    ] {
        let path = dir.path().join("pairs.txt");
        std::fs::write(&path, format!("{good}{bad}")).expect("pairs file");
        assert_refused(&path, dir.path(), &[&format!("{}:3: ", path.display()), problem]);
    }
}

#[test]
fn refuses_a_file_without_genuine_pairs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let impostors: Vec<_> = PAIRS.iter().copied().filter(|p| p.2 == "0").collect();
    let pairs = write_pairs(dir.path(), "impostors.csv", &impostors);
    assert_refused(&pairs, dir.path(), &[&pairs.display().to_string(), "no genuine (same-person) pairs"]);
}

#[test]
fn refuses_when_every_genuine_pair_fails_to_acquire() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut rows: Vec<_> = PAIRS.iter().copied().filter(|p| p.2 == "0").collect();
    // Labelled same person, but neither photo has a face to compare.
    rows.push(("no_face/dogs.jpg", "no_face/view.jpg", "1"));
    rows.push(("identities/fr_obama/obama.jpg", "no_face/no_face.png", "1"));
    let pairs = write_pairs(dir.path(), "no-faces.csv", &rows);
    assert_refused(
        &pairs,
        dir.path(),
        &["none of the 2 genuine (same-person) pairs could be scored", "failure to acquire", "no_face.png"],
    );
}

#[test]
fn scores_csv_has_a_row_per_scored_pair_with_both_captures() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pairs = write_pairs(dir.path(), "pairs.csv", &PAIRS);
    let csv = dir.path().join("scores.csv");
    let out = run_eval(&pairs, &dir.path().join("report.json"), &["--scores", csv.to_str().expect("UTF-8")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let text = std::fs::read_to_string(&csv).expect("scores CSV");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
    assert_eq!(header[..5], ["a", "b", "same", "fold", "score"]);
    assert!(header.contains(&"interocular_a") && header.contains(&"quality_b"), "{header:?}");
    let rows: Vec<&str> = lines.collect();
    assert_eq!(Some(rows.len() as u64), report["scored_pairs"].as_u64(), "{text}");
    for (row, (a, _, label)) in rows.iter().zip(PAIRS.iter()) {
        assert!(row.starts_with(&format!("\"{}", crate::testdata(a).display())), "{row}");
        let fields: Vec<&str> = row.rsplitn(12, ',').collect();
        // From the right: detection b, a, sharpness b, a, quality b, a, eyes b, a, score, fold, same.
        let (same, score): (&str, f32) = (fields[10], fields[8].parse().expect("a score"));
        assert_eq!(same, if *label == "1" { "1" } else { "0" }, "{row}");
        assert!((-1.0..=1.0).contains(&score), "{row}");
        let eyes: f32 = fields[7].parse().expect("an eye distance");
        assert!(eyes > 16.0, "{row}");
    }
}
