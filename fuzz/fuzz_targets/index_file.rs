//! The index file loader (`FaceIndex::load`) on arbitrary file contents, written to one temporary
//! file per process. The index settings build an HNSW graph from 8 entries on, so small files
//! reach hnsw_rs too.
//!
//! Checks: no panic; no allocation past libFuzzer's limit from a header that claims more than the
//! file holds; a file that loads saves and loads again to the same number of entries, and can be
//! searched.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use wajah::{FaceIndex, IndexConfig};

/// Two file paths for this process: the input, and its saved copy.
fn paths() -> &'static (PathBuf, PathBuf) {
    static PATHS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    PATHS.get_or_init(|| {
        let dir = std::env::temp_dir();
        let pid = std::process::id();
        (dir.join(format!("wajah-fuzz-{pid}.index")), dir.join(format!("wajah-fuzz-{pid}-saved.index")))
    })
}

fuzz_target!(|data: &[u8]| {
    let (input, saved) = paths();
    std::fs::write(input, data).expect("temporary file");
    let config = IndexConfig {
        hnsw_from: 8,
        max_connections: 4,
        ef_construction: 16,
        ef_search: 16,
        ..IndexConfig::default()
    };
    let Ok(index) = FaceIndex::load(input, config) else { return };
    index.save(saved).expect("save");
    let again = FaceIndex::load(saved, config).expect("a saved index loads");
    assert_eq!(again.len(), index.len());
    // A query of the index's dimension: the file's first vector, read back from the saved file.
    let bytes = std::fs::read(saved).expect("saved file");
    let dim = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")) as usize;
    if let Some(first) =
        bytes.get(24..28).map(|l| u32::from_le_bytes(l.try_into().expect("4 bytes")) as usize)
        && let Some(vector) = bytes.get(28 + first..28 + first + dim * 4)
    {
        let query = wajah::Embedding::from_le_bytes(vector).expect("a stored vector");
        let hits = again.search(&query, 3).expect("search");
        assert!(hits.len() <= 3);
    }
});
