//! The API description against the running service, and the API test tools it runs.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::root;

/// A program of the API tools venv: `.cache/venv-api-<first 12 hex of the requirements' sha256>`,
/// the directory `scripts/setup-api-tools.sh` installs into.
pub fn api_tool(name: &str) -> PathBuf {
    let requirements = std::fs::read(root().join("scripts/requirements-api.txt")).expect("requirements");
    let venv = format!("venv-api-{}", &hex::encode(Sha256::digest(&requirements))[..12]);
    let path = root().join(".cache").join(venv).join("bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `bash scripts/setup-api-tools.sh` (make test does)",
        path.display()
    );
    path
}
