//! Every command ends quietly when the reader of its output has gone away (`wajah ... | head -1`).

use std::path::Path;
use std::process::Stdio;

use crate::{PAIRS, testdata, wajah, write_pairs};

/// Runs `wajah args` with stdout a pipe whose reading end is closed before the command starts, so
/// the first write to stdout fails with a broken pipe.
fn assert_quiet_into_closed_pipe(args: &[&str]) {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = wajah(args).stdout(writer).stderr(Stdio::piped()).output().expect("spawn wajah");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "wajah {args:?} panicked: {stderr}");
    assert!(out.status.success(), "wajah {args:?} ended with {}: {stderr}", out.status);
}

fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

#[test]
fn every_command_ends_quietly_when_stdout_is_closed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (obama, obama1) =
        (testdata("identities/fr_obama/obama.jpg"), testdata("identities/fr_obama/obama1.jpg"));
    assert_quiet_into_closed_pipe(&["compare", s(&obama), s(&obama1)]);
    assert_quiet_into_closed_pipe(&["detect", s(&obama)]);

    let pairs = write_pairs(dir.path(), "pairs.csv", &PAIRS);
    let (root, out) = (testdata(""), dir.path().join("report.json"));
    assert_quiet_into_closed_pipe(&["eval", "--pairs", s(&pairs), "--root", s(&root), "--out", s(&out)]);
    let calibration = dir.path().join("calibration.toml");
    let calibrate = ["calibrate", "--pairs", s(&pairs), "--root", s(&root), "--rounds", "10"];
    assert_quiet_into_closed_pipe(&[&calibrate[..], &["--out", s(&calibration)]].concat());

    let rows = dir.path().join("rows.csv");
    std::fs::write(&rows, format!("id,selfie,ktp\nr1,{},{}\n", obama.display(), obama1.display()))
        .expect("rows");
    let decisions = dir.path().join("decisions.jsonl");
    assert_quiet_into_closed_pipe(&["reverify", "--input", s(&rows), "--output", s(&decisions)]);
}
