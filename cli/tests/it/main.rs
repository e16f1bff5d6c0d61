//! `wajah` command integration tests (needs `make setup`).

use std::path::{Path, PathBuf};
use std::process::Command;

mod capture;
mod closed_pipe;
mod degrade;
mod eval;
mod liveness;
mod reverify;
mod store;

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("cli/ has a parent").to_path_buf()
}

/// A photo of the project's `testdata/`.
fn testdata(path: &str) -> PathBuf {
    root().join("testdata").join(path)
}

/// The built `wajah` with the provisioned models and ONNX Runtime.
fn wajah(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wajah"));
    let root = root();
    cmd.args(args)
        .env("WAJAH_MODELS_DIR", root.join(".cache/models"))
        .env("WAJAH_ONNXRUNTIME", root.join(".cache/onnxruntime/libonnxruntime.so.1.31.1"));
    cmd
}

/// `wajah eval --pairs PAIRS --root testdata/ --out OUT`, then `extra`, run to completion.
fn run_eval(pairs: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let root = testdata("");
    let mut args = vec![
        "eval",
        "--pairs",
        pairs.to_str().expect("UTF-8"),
        "--root",
        root.to_str().expect("UTF-8"),
        "--out",
        out.to_str().expect("UTF-8"),
    ];
    args.extend_from_slice(extra);
    wajah(&args).output().expect("spawn wajah eval")
}

/// Writes a pairs CSV (header, then `image_a,image_b,label` with paths relative to `testdata/`).
fn write_pairs(dir: &Path, name: &str, rows: &[(&str, &str, &str)]) -> PathBuf {
    let mut csv = String::from("image_a,image_b,same_person\n");
    for (a, b, label) in rows {
        csv.push_str(&format!("{a},{b},{label}\n"));
    }
    let path = dir.join(name);
    std::fs::write(&path, csv).expect("writing the pairs file");
    path
}

/// Two genuine and two impostor pairs over clear frontal photos.
const PAIRS: [(&str, &str, &str); 4] = [
    ("identities/fr_obama/obama.jpg", "identities/fr_obama/obama1.jpg", "1"),
    ("identities/fr_biden/biden.jpg", "identities/fr_biden/biden2.jpg", "1"),
    ("identities/fr_obama/obama.jpg", "identities/fr_biden/biden.jpg", "0"),
    ("identities/of_lennon/lennon-1.jpg", "identities/fr_obama/obama2.jpg", "0"),
];
