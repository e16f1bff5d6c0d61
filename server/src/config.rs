//! Service configuration: one struct that is both the command line and the TOML file. Precedence:
//! defaults < TOML file (`--config`) < `WAJAH_*` environment variables < flags, validated once.
//!
//! How: the file (or the defaults) gives a whole [`Config`]; clap then overwrites exactly the
//! values that were given as flags or environment variables (no clap defaults are declared, so
//! an absent flag leaves the file's value alone).

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};
use serde::{Deserialize, Serialize};
use wajah::{EngineConfig, IndexConfig};

/// Bounds checked at start-up.
const WORKERS: std::ops::RangeInclusive<usize> = 1..=64;
const MAX_BODY_MIB: std::ops::RangeInclusive<usize> = 1..=100;
const TIMEOUT_SECS: std::ops::RangeInclusive<u64> = 1..=600;
const CONNECTIONS: std::ops::RangeInclusive<usize> = 8..=100_000;
/// Requests a second per key: below 0.01 the `Retry-After` wait would not fit a `Duration`.
const RATE: std::ops::RangeInclusive<f64> = 0.01..=1_000_000.0;
const BURST: std::ops::RangeInclusive<f64> = 1.0..=1_000_000.0;

/// The service's settings.
#[derive(Clone, Debug, Parser, Serialize, Deserialize)]
#[command(name = "wajah-server", version, about = "Face verification service for digital-ID registration")]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// TOML configuration file (same names as the flags, with underscores; engine settings under `[engine]`).
    #[arg(long, env = "WAJAH_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "WAJAH_LISTEN", required = false)]
    pub listen: SocketAddr,
    /// Directory for the template database (`templates.db`) and generated secrets [default: .cache/data].
    #[arg(long, env = "WAJAH_DATA_DIR", required = false)]
    pub data_dir: PathBuf,
    /// Template store: a PostgreSQL URL (`postgres://user@host/db`, or `host=... dbname=...`) for
    /// several servers on one database; unset, the embedded SQLite file `<data_dir>/templates.db`.
    #[arg(long, env = "WAJAH_STORE")]
    pub store: Option<String>,
    /// AES-256 template key file (64 hex digits). Default `<data_dir>/template.key`, created on first start.
    #[arg(long, env = "WAJAH_TEMPLATE_KEY_FILE")]
    pub template_key_file: Option<PathBuf>,
    /// Older key files still accepted for reading (key rotation); comma-separated.
    #[arg(long, env = "WAJAH_OLD_TEMPLATE_KEY_FILES", value_delimiter = ',')]
    pub old_template_key_files: Vec<PathBuf>,
    /// sha256 (hex) of accepted API keys; comma-separated. When none, a key is generated on first
    /// start into `<data_dir>/api-key` (mode 0600) and its hash is used.
    #[arg(long, env = "WAJAH_API_KEY_SHA256", value_delimiter = ',')]
    pub api_key_sha256: Vec<String>,
    /// Concurrent inferences (also the number of model sessions) [default: 2].
    #[arg(long, env = "WAJAH_WORKERS", required = false)]
    pub workers: usize,
    /// Largest request body, in MiB [default: 15].
    #[arg(long, env = "WAJAH_MAX_BODY_MIB", required = false)]
    pub max_body_mib: usize,
    /// Request bodies held in memory at once, in MiB (a request reserves its Content-Length, or
    /// `max_body_mib` when it sends none, before its body is read) [default: 64].
    #[arg(long, env = "WAJAH_BODY_BUDGET_MIB", required = false)]
    pub body_budget_mib: usize,
    /// Per-request time limit for the work once the body is in, in seconds [default: 30].
    #[arg(long, env = "WAJAH_REQUEST_TIMEOUT_SECS", required = false)]
    pub request_timeout_secs: u64,
    /// Time a client has to send its request headers, in seconds [default: 10].
    #[arg(long, env = "WAJAH_HEADER_TIMEOUT_SECS", required = false)]
    pub header_timeout_secs: u64,
    /// Time a client has to send its whole request body, in seconds [default: 20].
    #[arg(long, env = "WAJAH_BODY_TIMEOUT_SECS", required = false)]
    pub body_timeout_secs: u64,
    /// Lifetime of a liveness challenge, in seconds [default: 90].
    #[arg(long, env = "WAJAH_CHALLENGE_TTL_SECS", required = false)]
    pub challenge_ttl_secs: u64,
    /// Requests a second per API key; past it 429 `rate_limited` [default: 50].
    #[arg(long, env = "WAJAH_RATE_PER_KEY", required = false)]
    pub rate_per_key: f64,
    /// Requests an API key may send at once after a quiet spell [default: 100].
    #[arg(long, env = "WAJAH_BURST_PER_KEY", required = false)]
    pub burst_per_key: f64,
    /// Days audit records are kept [default: 365].
    #[arg(long, env = "WAJAH_AUDIT_RETENTION_DAYS", required = false)]
    pub audit_retention_days: u64,
    /// Connections served at once (kept below the open-file limit) [default: 1024].
    #[arg(long, env = "WAJAH_MAX_CONNECTIONS", required = false)]
    pub max_connections: usize,
    /// The engine (models, threshold, calibration): the same flags and variables as `wajah`.
    #[command(flatten)]
    pub engine: EngineConfig,
    /// The 1:N index (config file only).
    #[arg(skip)]
    pub index: IndexConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            config: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from(".cache/data"),
            store: None,
            template_key_file: None,
            old_template_key_files: Vec::new(),
            api_key_sha256: Vec::new(),
            workers: 2,
            max_body_mib: 15,
            body_budget_mib: 64,
            request_timeout_secs: 30,
            header_timeout_secs: 10,
            body_timeout_secs: 20,
            challenge_ttl_secs: 90,
            max_connections: 1024,
            rate_per_key: 50.0,
            burst_per_key: 100.0,
            audit_retention_days: 365,
            engine: EngineConfig::default(),
            index: IndexConfig::default(),
        }
    }
}

impl Config {
    /// The process's command line and environment, over the file they name, over the defaults.
    ///
    /// # Errors
    /// A message naming the file or value at fault. (`--help` and `--version` print and exit.)
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_matches(&Self::command().get_matches())
    }

    /// As [`Config::from_env`], from the given arguments (the first is the program name).
    ///
    /// # Errors
    /// Bad arguments, or as [`Config::from_env`].
    pub fn from_args<I: IntoIterator<Item = T>, T: Into<OsString> + Clone>(args: I) -> anyhow::Result<Self> {
        Self::from_matches(&Self::command().try_get_matches_from(args)?)
    }

    fn from_matches(matches: &ArgMatches) -> anyhow::Result<Self> {
        let mut config = match matches.get_one::<PathBuf>("config") {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        config.update_from_arg_matches(matches)?;
        config.validate()?;
        Ok(config)
    }

    fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))?;
        let mut config = Self::parse(&text).map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))?;
        config.config = Some(path.to_path_buf());
        Ok(config)
    }

    /// The settings a TOML file gives, over the defaults (not yet validated).
    ///
    /// # Errors
    /// The text is not TOML or names an unknown setting or a value of the wrong type.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        Ok(toml::from_str(text)?)
    }

    /// The engine's settings as the service runs them (one model session per worker).
    pub fn engine(&self) -> EngineConfig {
        EngineConfig { sessions: self.workers, ..self.engine.clone() }
    }

    /// Checks every value, with messages that say what to change.
    ///
    /// # Errors
    /// The first bad value.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            WORKERS.contains(&self.workers),
            "workers = {} must be within {WORKERS:?}",
            self.workers
        );
        anyhow::ensure!(
            MAX_BODY_MIB.contains(&self.max_body_mib),
            "max_body_mib = {} must be within {MAX_BODY_MIB:?}",
            self.max_body_mib
        );
        anyhow::ensure!(
            self.body_budget_mib >= self.max_body_mib && self.body_budget_mib <= 4096,
            "body_budget_mib = {} must be within max_body_mib ({})..=4096",
            self.body_budget_mib,
            self.max_body_mib
        );
        anyhow::ensure!(
            TIMEOUT_SECS.contains(&self.request_timeout_secs),
            "request_timeout_secs = {} must be within {TIMEOUT_SECS:?}",
            self.request_timeout_secs
        );
        for (name, value) in [
            ("header_timeout_secs", self.header_timeout_secs),
            ("body_timeout_secs", self.body_timeout_secs),
            ("challenge_ttl_secs", self.challenge_ttl_secs),
        ] {
            anyhow::ensure!(
                TIMEOUT_SECS.contains(&value),
                "{name} = {value} must be within {TIMEOUT_SECS:?}"
            );
        }
        anyhow::ensure!(
            CONNECTIONS.contains(&self.max_connections),
            "max_connections = {} must be within {CONNECTIONS:?}",
            self.max_connections
        );
        anyhow::ensure!(
            RATE.contains(&self.rate_per_key) && BURST.contains(&self.burst_per_key),
            "rate_per_key must be within {RATE:?} and burst_per_key within {BURST:?}"
        );
        anyhow::ensure!(self.audit_retention_days >= 1, "audit_retention_days must be at least 1");
        for hash in &self.api_key_sha256 {
            anyhow::ensure!(
                hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
                "api_key_sha256 entries must be 64 hex digits (the sha256 of a key, never the key)"
            );
        }
        self.engine().validate().map_err(|e| anyhow::anyhow!("{e}"))?;
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
        // A rate this low once made the 429's Retry-After overflow `Duration` (a panic holding the
        // key's bucket lock, after which the key went unlimited).
        for rate in [1e-300, 0.0, f64::NAN, f64::INFINITY] {
            let bad = Config { rate_per_key: rate, ..Config::default() };
            assert!(bad.validate().expect_err("must fail").to_string().contains("rate_per_key"), "{rate}");
        }
        let bad = Config { burst_per_key: f64::INFINITY, ..Config::default() };
        assert!(bad.validate().is_err());
        let bad = Config { api_key_sha256: vec!["secret".into()], ..Config::default() };
        assert!(bad.validate().expect_err("must fail").to_string().contains("api_key_sha256"));
    }

    #[test]
    fn flags_over_file_over_defaults() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("wajah.toml");
        std::fs::write(&file, "workers = 3\nlisten = \"127.0.0.1:9000\"\n[engine]\nthreshold = 0.4\n")
            .expect("write");
        let path = file.to_str().expect("utf-8 path");
        let config = Config::from_args(["wajah-server", "--config", path, "--workers", "5"]).expect("loads");
        // The flag wins over the file; the file over the defaults; untouched values stay default.
        assert_eq!((config.workers, config.listen.port(), config.engine.threshold), (5, 9000, Some(0.4)));
        assert_eq!((config.max_body_mib, config.request_timeout_secs), (15, 30));
        let config =
            Config::from_args(["wajah-server", "--config", path, "--threshold", "0.5"]).expect("loads");
        assert_eq!((config.workers, config.engine.threshold), (3, Some(0.5)));
        let defaults = Config::from_args(["wajah-server"]).expect("loads");
        assert_eq!(defaults.listen, Config::default().listen);
        std::fs::write(&file, "wrokers = 3\n").expect("write");
        let err = Config::from_args(["wajah-server", "--config", path]).expect_err("must fail").to_string();
        assert!(err.contains("wrokers"), "{err}");
    }
}
