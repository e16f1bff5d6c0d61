//! `wajah eval --degrade-a/--degrade-b`: one side made to look like an ID-card photo changes the
//! figures, is named in the report, and a bad specification is refused before any model loads.

use serde_json::Value;

use crate::{PAIRS, run_eval as eval, write_pairs};

fn report(out: &std::process::Output) -> Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

#[test]
fn degrading_the_id_photos_lowers_genuine_scores_and_is_reported() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pairs = write_pairs(dir.path(), "pairs.csv", &PAIRS);
    let plain = report(&eval(&pairs, &dir.path().join("plain.json"), &[]));
    let small = report(&eval(&pairs, &dir.path().join("small.json"), &["--degrade-a", "scale=0.25,jpeg=20"]));
    assert!(plain["degrade_a"].is_null() && plain["degrade_b"].is_null(), "{plain}");
    assert_eq!(small["degrade_a"], "scale=0.25,jpeg=20", "{small}");
    let genuine = |r: &Value| r["separation"]["genuine_mean"].as_f64().expect("genuine mean");
    // A quarter of the size at JPEG quality 20: still recognised, but further from the B photos.
    assert!(genuine(&small) < genuine(&plain) - 0.02, "{} vs {}", genuine(&small), genuine(&plain));
    assert_eq!(small["scored_pairs"], 4, "{small}");

    // Too small to use: the failures to acquire name the degraded photo and the reason.
    let rows = [
        PAIRS[0],
        ("identities/fr_biden/biden.jpg", "identities/fr_obama/obama2.jpg", "0"),
        PAIRS[3],
        ("identities/fr_biden/biden2.jpg", "identities/fr_biden/biden.jpg", "1"),
        ("identities/fr_obama/obama1.jpg", "identities/fr_obama/obama.jpg", "1"),
    ];
    let pairs = write_pairs(dir.path(), "tiny.csv", &rows);
    let tiny = report(&eval(&pairs, &dir.path().join("tiny.json"), &["--degrade-a", "scale=0.12,jpeg=20"]));
    let failed = tiny["failed_photo_reasons"].as_array().expect("failures");
    // obama.jpg and biden.jpg as A photos (B photos are left as they are).
    assert_eq!((failed.len(), tiny["scored_pairs"].as_u64()), (2, Some(3)), "{tiny}");
    for f in failed {
        assert!(f["photo"].as_str().is_some_and(|p| p.ends_with("[scale=0.12,jpeg=20]")), "{f}");
        assert_eq!(f["reason"], "face_too_small", "{f}");
    }
    assert_eq!(tiny["failure_reasons"]["face_too_small"], failed.len(), "{tiny}");
}

#[test]
fn a_bad_degradation_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pairs = write_pairs(dir.path(), "pairs.csv", &PAIRS);
    let out_file = dir.path().join("report.json");
    for (flag, spec, says) in [
        ("--degrade-a", "blur=2", "unknown degradation \"blur\""),
        ("--degrade-b", "scale=1.5", "scale 1.5 is outside [0.05, 1]"),
        ("--degrade-a", "scale=0.6,jpeg=0", "not a whole number in 1..=100"),
        ("--degrade-a", "scale=0.6,scale=0.5", "scale is given twice"),
    ] {
        let out = eval(&pairs, &out_file, &[flag, spec]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flag} {spec} was accepted");
        assert!(stderr.contains(says) && stderr.contains(flag), "{flag} {spec}: {stderr}");
        assert!(!out_file.exists(), "a refused evaluation wrote a report");
    }
}
