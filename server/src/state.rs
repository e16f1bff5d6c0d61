//! Shared state: the gallery (engine, template store, 1:N index), limits and keys.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wajah::{AuditEvent, AuditLog, Engine, Gallery, SeenFrames, SqliteStore, TemplateKey, TemplateStore};
use wajah_store_pg::PostgresStore;

use crate::challenges::Challenges;

use crate::clients::{Caller, ClientLimits, Clients};

/// Liveness challenges open at once (a few hundred bytes each).
const MAX_OPEN_CHALLENGES: usize = 100_000;
use crate::config::Config;
use crate::error::ApiError;
use crate::metrics::Metrics;

/// Requests admitted per worker (running or waiting); beyond that they are shed with 503.
const QUEUE_PER_WORKER: usize = 12;

/// A request's admission: a global slot and one of its client's share.
pub struct Admitted {
    _slot: OwnedSemaphorePermit,
    _share: OwnedSemaphorePermit,
    _bytes: OwnedSemaphorePermit,
}

/// What an audited operation decided.
pub struct Outcome {
    /// `created`, `replaced`, `unchanged`, `match`, `no_match`, `deleted`, or an error code.
    pub decision: String,
    pub score: Option<f32>,
    pub problems: Vec<wajah::QualityIssue>,
}

impl Outcome {
    /// An outcome without score or capture problems.
    pub fn plain(decision: impl Into<String>) -> Self {
        Self { decision: decision.into(), score: None, problems: Vec::new() }
    }

    /// The outcome of a result: `ok` on success, the error's code otherwise.
    pub fn of<T>(result: &wajah::Result<T>, ok: impl FnOnce(&T) -> Outcome) -> Self {
        match result {
            Ok(value) => ok(value),
            Err(e) if e.is_user_error() => Self::plain(e.code()),
            Err(_) => Self::plain("internal"),
        }
    }
}

/// Everything handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// The parts of [`AppState`].
pub struct Inner {
    /// Enrolled subjects, and the engine that makes and compares their templates.
    pub gallery: Gallery,
    /// Requests admitted (running or queued); beyond this they are shed with 503.
    pub admission: Arc<Semaphore>,
    /// Inferences running at once.
    pub workers: Arc<Semaphore>,
    /// Per-request time limit for the work.
    pub timeout: Duration,
    /// Time a client has to send its headers.
    pub header_timeout: Duration,
    /// Time a client has to send its body.
    pub body_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// Accepted API keys, with their rates and shares.
    pub clients: Clients,
    /// The audit trail.
    pub audit: AuditLog,
    /// How long audit records are kept.
    pub audit_retention: Duration,
    /// Metrics.
    pub metrics: Metrics,
    /// Largest body, in bytes.
    pub max_body: usize,
    /// Request bodies held in memory at once, in KiB permits.
    pub body_budget: Arc<Semaphore>,
    /// Open liveness challenges.
    pub challenges: Challenges,
    /// Frames of accepted liveness sessions (in memory), so that none is accepted twice.
    pub seen_frames: SeenFrames,
    ready: AtomicBool,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Inner {
    /// Records an operation in the audit trail.
    ///
    /// # Errors
    /// `Internal` when the record cannot be written (the operation is then not acknowledged).
    pub fn record(
        &self,
        caller: &Caller,
        operation: &str,
        subject: Option<&str>,
        outcome: Outcome,
    ) -> Result<(), ApiError> {
        let event = AuditEvent {
            request_id: caller.request_id.clone(),
            api_key_id: caller.client.id().to_string(),
            operation: operation.into(),
            subject: subject.map(|s| self.audit.subject_hash(s)).unwrap_or_default(),
            decision: outcome.decision,
            score: outcome.score,
            model: self.gallery.engine().model_id().into(),
            problems: outcome.problems.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(","),
            ..AuditEvent::default()
        };
        self.audit.append(event).map(drop).map_err(|e| ApiError::Internal(format!("audit: {e}")))
    }
}

impl AppState {
    /// Loads the models, opens (or creates) the store and its key, and builds the index.
    ///
    /// # Errors
    /// A message saying what could not be loaded.
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.data_dir)?;
        let engine = Arc::new(Engine::new(config.engine())?);

        let key_file =
            config.template_key_file.clone().unwrap_or_else(|| config.data_dir.join("template.key"));
        let key = if key_file.exists() {
            TemplateKey::load(&key_file)?
        } else {
            tracing::warn!(path = %key_file.display(), "no template key: generated a new one (keep it safe; without it templates cannot be read)");
            TemplateKey::create(&key_file)?
        };
        let mut keys = vec![key];
        for old in &config.old_template_key_files {
            keys.push(TemplateKey::load(old)?);
        }
        let db = config.data_dir.join("templates.db");
        let model = engine.model_id().to_string();
        // The PostgreSQL client blocks: open the store and load the index on a thread of their own
        // (this may run inside the async runtime).
        let gallery = std::thread::scope(|scope| {
            scope
                .spawn(|| -> anyhow::Result<Gallery> {
                    let store: Box<dyn TemplateStore> = match &config.store {
                        Some(url) => Box::new(
                            PostgresStore::open(url, keys, config.workers + 2)
                                .map_err(|e| anyhow::anyhow!("opening the PostgreSQL template store: {e}"))?,
                        ),
                        None => Box::new(SqliteStore::open(&db, keys)?),
                    };
                    Ok(Gallery::open(engine, store, config.index)?)
                })
                .join()
                .map_err(|_| anyhow::anyhow!("opening the template store panicked"))?
        })?;
        if gallery.other_models() > 0 {
            tracing::warn!(
                count = gallery.other_models(),
                "enrolments made by another model are not searchable; re-enrol them"
            );
        }
        tracing::info!(enrolled = gallery.len(), hnsw = gallery.uses_hnsw(), model, "store open");

        let slots = config.workers * QUEUE_PER_WORKER;
        let limits = ClientLimits { rate: config.rate_per_key, burst: config.burst_per_key, slots };
        let clients = Clients::new(api_key_hashes(config)?, limits);
        let audit = AuditLog::open(&db, TemplateKey::load(&key_file)?)?;
        let audit_retention = Duration::from_secs(config.audit_retention_days * 86_400);
        let pruned = audit.prune(audit_retention.as_millis() as i64)?;
        tracing::info!(pruned, verified = audit.verify()?, "audit trail checked");
        let state = AppState(Arc::new(Inner {
            gallery,
            admission: Arc::new(Semaphore::new(slots)),
            workers: Arc::new(Semaphore::new(config.workers)),
            timeout: Duration::from_secs(config.request_timeout_secs),
            header_timeout: Duration::from_secs(config.header_timeout_secs),
            body_timeout: Duration::from_secs(config.body_timeout_secs),
            max_connections: config.max_connections,
            clients,
            audit,
            audit_retention,
            metrics: Metrics::default(),
            max_body: config.max_body_mib << 20,
            body_budget: Arc::new(Semaphore::new(config.body_budget_mib << 10)),
            challenges: Challenges::new(Duration::from_secs(config.challenge_ttl_secs), MAX_OPEN_CHALLENGES),
            seen_frames: SeenFrames::default(),
            ready: AtomicBool::new(true),
        }));
        Ok(state)
    }

    /// True once models are loaded and the store is open, until shutdown begins.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Marks the service as going away (readiness fails first).
    pub fn set_not_ready(&self) {
        self.ready.store(false, Ordering::Relaxed);
    }

    /// An admission slot for `caller`, taken before a request's body is read: 503 `overloaded`
    /// when all are taken or the caller holds its share, so memory for bodies is bounded by the
    /// slots and one client cannot take them all.
    ///
    /// # Errors
    /// `Overloaded`.
    pub fn admit(&self, caller: &Caller, body_bytes: usize) -> Result<Admitted, ApiError> {
        let share = caller.share()?;
        let slot = self.admission.clone().try_acquire_owned().map_err(|_| ApiError::Overloaded)?;
        let kib = u32::try_from(body_bytes.min(self.max_body).div_ceil(1024).max(1)).unwrap_or(u32::MAX);
        let bytes = self.body_budget.clone().try_acquire_many_owned(kib).map_err(|_| ApiError::Overloaded)?;
        Ok(Admitted { _slot: slot, _share: share, _bytes: bytes })
    }

    /// Runs `f` on the blocking pool, holding the request's admission slot, once a worker is free,
    /// within the request time limit.
    ///
    /// # Errors
    /// `Timeout`, `Internal` if the task panicked, or what `f` returns.
    pub async fn run<T: Send + 'static>(
        &self,
        admitted: Admitted,
        f: impl FnOnce(&Inner) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let state = self.clone();
        let work = async move {
            let slot = state.workers.clone().acquire_owned().await.map_err(|_| ApiError::Overloaded)?;
            let task = tokio::task::spawn_blocking(move || {
                let _held = (admitted, slot);
                f(&state)
            });
            task.await.map_err(|e| ApiError::Internal(format!("inference task failed: {e}")))?
        };
        tokio::time::timeout(self.timeout, work).await.map_err(|_| ApiError::Timeout)?
    }
}

/// Configured key hashes, or, when none is configured, the hash of a key generated once into
/// `<data_dir>/api-key` (mode 0600).
fn api_key_hashes(config: &Config) -> anyhow::Result<Vec<[u8; 32]>> {
    let decode = |h: &str| -> anyhow::Result<[u8; 32]> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(h, &mut out)?;
        Ok(out)
    };
    if !config.api_key_sha256.is_empty() {
        return config.api_key_sha256.iter().map(|h| decode(h)).collect();
    }
    let path = config.data_dir.join("api-key");
    let key = match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().to_string(),
        Err(_) => {
            let key = generate_key(&path)?;
            tracing::warn!(path = %path.display(), "no API key configured: generated one into this file (send it as Authorization: Bearer KEY)");
            key
        }
    };
    Ok(vec![Sha256::digest(key.as_bytes()).into()])
}

fn generate_key(path: &Path) -> anyhow::Result<String> {
    use std::io::Write;
    let random = crate::challenges::random::<24>().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let key = format!("wajah_{}", hex::encode(random));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(key.as_bytes())?;
    Ok(key)
}
