//! Integration tests of the engine, on real models and real photos. One binary, one module per topic.
//!
//! Model-backed tests need `make setup` (the README's test command runs it first).

mod accuracy;
mod capture;
mod decode;
mod duplicates;
mod index;
mod liveness;
mod manifest;
mod pipeline;
mod reference;
mod store;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use wajah::{Engine, EngineConfig};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("engine/ has a parent").to_path_buf()
}

/// A file under testdata/.
pub fn testdata(rel: &str) -> PathBuf {
    root().join("testdata").join(rel)
}

/// The bytes of a file under testdata/.
pub fn read(rel: &str) -> Vec<u8> {
    let path = testdata(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// One engine for the whole test binary, on the provisioned models.
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let config = EngineConfig { sessions: 2, ..EngineConfig::in_dir(&root()) };
        Engine::new(config).unwrap_or_else(|e| panic!("loading the engine (run `make setup` first): {e}"))
    })
}

/// Rows of a CSV file with a header line (no quoting needed for our files).
pub fn csv_rows(rel: &str) -> Vec<Vec<String>> {
    let text = String::from_utf8(read(rel)).expect("utf-8 csv");
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}
