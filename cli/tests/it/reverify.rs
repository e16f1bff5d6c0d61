//! `wajah reverify` on 500 rows: killed halfway (SIGKILL) and restarted, every row exactly once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::{root, wajah};

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map(|t| t.lines().count()).unwrap_or(0)
}

#[test]
fn killed_halfway_and_restarted_every_row_exactly_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    // 500 rows over the small dlib photos (a selfie and a KTP photo each), plus two bad rows.
    let photos: Vec<PathBuf> = std::fs::read_to_string(root().join("testdata/ORIGINS.csv"))
        .expect("origins")
        .lines()
        .filter(|l| l.starts_with("identities/dj_"))
        .map(|l| root().join("testdata").join(l.split(',').next().expect("path")))
        .collect();
    assert!(photos.len() >= 30);
    let mut csv = String::from("id,selfie,ktp\n");
    for i in 0..500 {
        let (a, b) = (&photos[i % photos.len()], &photos[(i * 7 + 1) % photos.len()]);
        csv.push_str(&format!("row{i},{},{}\n", a.display(), b.display()));
    }
    csv.push_str("broken-row-without-photo\n");
    csv.push_str("row-missing-file,/nonexistent/selfie.jpg,/nonexistent/ktp.jpg\n");
    let input = dir.path().join("rows.csv");
    std::fs::write(&input, csv).expect("input");
    let output = dir.path().join("out.jsonl");
    let (i, o) = (input.to_str().expect("utf-8"), output.to_str().expect("utf-8"));

    let mut child = wajah(&["reverify", "--input", i, "--output", o])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let started = Instant::now();
    while lines(&output) < 200 {
        assert!(started.elapsed() < Duration::from_secs(300), "reverify made no progress");
        assert!(child.try_wait().expect("wait").is_none(), "reverify ended before it was killed");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let at_kill = lines(&output);
    assert!(at_kill < 502, "killed after {at_kill} rows: not halfway");

    let status =
        wajah(&["reverify", "--input", i, "--output", o]).stdout(Stdio::piped()).output().expect("restart");
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&status.stdout).expect("summary JSON");
    assert!(summary["rows_done_before"].as_u64().expect("count") >= 190, "{summary}");

    let mut seen: HashMap<String, usize> = HashMap::new();
    for line in std::fs::read_to_string(&output).expect("output").lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("every line is whole JSON");
        *seen.entry(v["id"].as_str().expect("id").to_string()).or_default() += 1;
    }
    for i in 0..500 {
        assert_eq!(seen.get(&format!("row{i}")), Some(&1), "row{i}");
    }
    assert_eq!(seen.len(), 502, "500 rows plus the two bad ones, each once");
    assert_eq!(summary["errors"], 2, "{summary}");
}
