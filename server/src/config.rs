//! Service configuration: one struct from defaults, an optional TOML file, `WAJAH_*` environment
//! variables and flags (later wins), validated once at start-up.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Parser;
use serde::{Deserialize, Serialize};
use wajah::{EngineConfig, FacePolicy, IndexConfig};

/// Command line and environment. Every value is optional so that only what is given overrides.
#[derive(Debug, Default, Parser)]
#[command(name = "wajah-server", version, about = "Face verification service for digital-ID registration")]
pub struct Args {
    /// TOML configuration file.
    #[arg(long, env = "WAJAH_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "WAJAH_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for the template database and generated secrets.
    #[arg(long, env = "WAJAH_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Directory with the model files.
    #[arg(long, env = "WAJAH_MODELS_DIR")]
    pub models_dir: Option<PathBuf>,
    /// The ONNX Runtime shared library.
    #[arg(long, env = "WAJAH_ONNXRUNTIME")]
    pub onnxruntime: Option<PathBuf>,
    /// File holding the AES-256 template key (64 hex digits).
    #[arg(long, env = "WAJAH_TEMPLATE_KEY_FILE")]
    pub template_key_file: Option<PathBuf>,
    /// sha256 (hex) of an accepted API key; repeat or separate with commas.
    #[arg(long, env = "WAJAH_API_KEY_SHA256", value_delimiter = ',')]
    pub api_key_sha256: Option<Vec<String>>,
    /// Concurrent inferences; more requests are shed with 503.
    #[arg(long, env = "WAJAH_WORKERS")]
    pub workers: Option<usize>,
    /// Match threshold (cosine); default from the model manifest.
    #[arg(long, env = "WAJAH_THRESHOLD")]
    pub threshold: Option<f32>,
    /// Largest request body, in MiB.
    #[arg(long, env = "WAJAH_MAX_BODY_MIB")]
    pub max_body_mib: Option<usize>,
    /// Per-request time limit, in seconds.
    #[arg(long, env = "WAJAH_REQUEST_TIMEOUT_SECS")]
    pub request_timeout_secs: Option<u64>,
}

/// The service's settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory for the template database (`templates.db`) and generated secrets.
    pub data_dir: PathBuf,
    /// AES-256 template key file. Default `<data_dir>/template.key`, created on first start.
    pub template_key_file: Option<PathBuf>,
    /// Older key files still accepted for reading (key rotation).
    pub old_template_key_files: Vec<PathBuf>,
    /// sha256 (hex) of accepted API keys. When empty, a key is generated on first start into
    /// `<data_dir>/api-key` (mode 0600) and its hash is used.
    pub api_key_sha256: Vec<String>,
    /// Concurrent inferences (also the number of model sessions).
    pub workers: usize,
    /// Largest request body, in MiB.
    pub max_body_mib: usize,
    /// Per-request time limit, in seconds.
    pub request_timeout_secs: u64,
    /// The engine.
    pub engine: EngineConfig,
    /// The 1:N index.
    pub index: IndexConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from(".cache/data"),
            template_key_file: None,
            old_template_key_files: Vec::new(),
            api_key_sha256: Vec::new(),
            workers: 2,
            max_body_mib: 15,
            request_timeout_secs: 30,
            engine: EngineConfig { face_policy: FacePolicy::Single, ..EngineConfig::default() },
            index: IndexConfig::default(),
        }
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

impl Config {
    /// Defaults, then the TOML file, then environment and flags.
    ///
    /// # Errors
    /// A message naming the file or value at fault.
    pub fn load(args: Args) -> anyhow::Result<Self> {
        let mut config = match &args.config {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        set(&mut config.listen, args.listen);
        set(&mut config.data_dir, args.data_dir);
        set(&mut config.engine.models_dir, args.models_dir);
        set(&mut config.engine.onnxruntime, args.onnxruntime);
        set(&mut config.api_key_sha256, args.api_key_sha256);
        set(&mut config.workers, args.workers);
        set(&mut config.max_body_mib, args.max_body_mib);
        set(&mut config.request_timeout_secs, args.request_timeout_secs);
        if args.template_key_file.is_some() {
            config.template_key_file = args.template_key_file;
        }
        if args.threshold.is_some() {
            config.engine.threshold = args.threshold;
        }
        config.validate()?;
        Ok(config)
    }

    fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))
    }

    /// Checks every value, with messages that say what to change.
    ///
    /// # Errors
    /// The first bad value.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!((1..=64).contains(&self.workers), "workers = {} must be within 1..=64", self.workers);
        anyhow::ensure!(
            (1..=100).contains(&self.max_body_mib),
            "max_body_mib = {} must be within 1..=100",
            self.max_body_mib
        );
        anyhow::ensure!(
            (1..=600).contains(&self.request_timeout_secs),
            "request_timeout_secs = {} must be within 1..=600",
            self.request_timeout_secs
        );
        for hash in &self.api_key_sha256 {
            anyhow::ensure!(
                hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
                "api_key_sha256 entries must be 64 hex digits (the sha256 of a key, never the key)"
            );
        }
        let mut engine = self.engine.clone();
        engine.sessions = self.workers;
        engine.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
        self.index.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        Config::default().validate().expect("defaults are valid");
        let bad = Config { workers: 0, ..Config::default() };
        assert!(bad.validate().expect_err("must fail").to_string().contains("workers"));
        let bad = Config { api_key_sha256: vec!["secret".into()], ..Config::default() };
        assert!(bad.validate().expect_err("must fail").to_string().contains("api_key_sha256"));
    }

    #[test]
    fn file_then_flags() {
        let dir = std::env::temp_dir().join(format!("wajah-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("wajah.toml");
        std::fs::write(&file, "workers = 3\nlisten = \"127.0.0.1:9000\"\n[engine]\nthreshold = 0.4\n")
            .expect("write");
        let args = Args { config: Some(file.clone()), workers: Some(5), ..Args::default() };
        let config = Config::load(args).expect("loads");
        assert_eq!((config.workers, config.listen.port(), config.engine.threshold), (5, 9000, Some(0.4)));
        std::fs::write(&file, "wrokers = 3\n").expect("write");
        let err =
            Config::load(Args { config: Some(file), ..Args::default() }).expect_err("must fail").to_string();
        assert!(err.contains("wrokers"), "{err}");
        std::fs::remove_dir_all(dir).ok();
    }
}
