//! Enrolled templates at rest: the [`TemplateStore`] trait and its SQLite backend.
//!
//! Templates are biometric data and NIKs personal data (UU PDP 27/2022). Nothing identifying is
//! stored in clear: a row is found by a keyed hash of its subject (HMAC-SHA256), and the subject,
//! the template, the photo's hash and its quality summary are sealed together with AES-256-GCM.
//! Keys come from files, never from the database; each row records the id of the key that sealed
//! it, and its lookup hash and model are bound to the ciphertext, so a row cannot be moved.

mod audit;
pub(crate) mod seal;
mod sqlite;

use serde::{Deserialize, Serialize};

use crate::embedding::{Embedding, Template};

/// How many rows a gallery has [`TemplateStore::templates`] read and decrypt at a time (about
/// 120 MB of sealed rows that carry a face patch).
pub const LOAD_BATCH: usize = 50_000;
use crate::error::Result;

pub use audit::{AuditEvent, AuditLog, AuditRecord};
pub use seal::{Keyring, SealedRow, TemplateKey};
pub use sqlite::SqliteStore;

/// One enrolled subject.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Enrollment {
    /// Subject id (for IKD, the NIK).
    pub subject: String,
    /// The template and its model id.
    pub template: Template,
    /// Capture-quality summary of the enrolment photo (JSON).
    pub quality: serde_json::Value,
    /// sha256 (hex) of the enrolment photo's bytes.
    pub photo_sha256: String,
    /// First enrolment, unix milliseconds.
    pub created_ms: i64,
    /// Last change, unix milliseconds.
    pub updated_ms: i64,
}

impl Upsert {
    /// What storing `new` over `before` (the subject's current enrolment, if any) does: unchanged
    /// for the same model and photo, replaced otherwise, created when there was none.
    pub fn between(before: Option<&Enrollment>, new: &Enrollment) -> Self {
        match before {
            Some(b) if b.template.model == new.template.model && b.photo_sha256 == new.photo_sha256 => {
                Upsert::Unchanged
            }
            Some(_) => Upsert::Replaced,
            None => Upsert::Created,
        }
    }

    /// `"created"`, `"replaced"` or `"unchanged"`, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            Upsert::Created => "created",
            Upsert::Replaced => "replaced",
            Upsert::Unchanged => "unchanged",
        }
    }
}

/// What an upsert did.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Upsert {
    /// The subject was not enrolled.
    Created,
    /// The subject's earlier enrolment was replaced.
    Replaced,
    /// The same photo was enrolled again with the same model: nothing changed.
    Unchanged,
}

/// Where enrolments live. Implementations are shared between threads.
pub trait TemplateStore: Send + Sync {
    /// Inserts or replaces one enrolment.
    ///
    /// # Errors
    /// [`Error::Store`] or [`Error::Crypto`].
    fn upsert(&self, enrollment: &Enrollment) -> Result<Upsert> {
        Ok(self.upsert_many(std::slice::from_ref(enrollment))?.remove(0))
    }

    /// Inserts or replaces several enrolments atomically: all or none.
    ///
    /// # Errors
    /// [`Error::Store`] or [`Error::Crypto`].
    fn upsert_many(&self, enrollments: &[Enrollment]) -> Result<Vec<Upsert>>;

    /// The subject's enrolment, which must have been made by `model`.
    ///
    /// # Errors
    /// [`Error::NotEnrolled`]; [`Error::ModelMismatch`] when it was made by another model;
    /// [`Error::Crypto`] when it cannot be decrypted (wrong key, or tampered).
    fn get(&self, subject: &str, model: &str) -> Result<Enrollment>;

    /// The subject's template alone (what a search rescores with), without reading the rest of
    /// the record.
    ///
    /// # Errors
    /// As [`TemplateStore::get`].
    fn get_template(&self, subject: &str, model: &str) -> Result<Template>;

    /// Erases the subject's enrolment, leaving no trace of it in the store's files; false if there
    /// was none.
    ///
    /// # Errors
    /// [`Error::Store`].
    fn delete(&self, subject: &str) -> Result<bool>;

    /// Number of enrolments (all models).
    ///
    /// # Errors
    /// [`Error::Store`].
    fn count(&self) -> Result<usize>;

    /// Every enrolment made by `model`, decrypted, ordered by subject. Holds every row in memory:
    /// for a small store (tests, tools); a search index is built with [`TemplateStore::templates`].
    ///
    /// # Errors
    /// [`Error::Store`] or [`Error::Crypto`].
    fn all(&self, model: &str) -> Result<Vec<Enrollment>>;

    /// Every template made by `model`, decrypted, handed to `each` as (subject, embedding) in
    /// batches of at most `batch` (at least 1; a gallery uses [`LOAD_BATCH`]), in no particular
    /// order; returns how many. One batch of rows is held at a time, so a gallery of millions
    /// loads in the memory of its index.
    ///
    /// # Errors
    /// [`Error::Store`], [`Error::Crypto`], or the first error `each` returns.
    fn templates(
        &self,
        model: &str,
        batch: usize,
        each: &mut dyn FnMut(Vec<(String, Embedding)>) -> Result<()>,
    ) -> Result<usize>;

    /// The position of the latest change, for a store that several processes share; `None` for
    /// one only this process writes (it has no change feed).
    ///
    /// # Errors
    /// [`Error::Store`], [`Error::StoreUnavailable`].
    fn change_position(&self) -> Result<Option<i64>> {
        Ok(None)
    }

    /// The changes after `position` to enrolments made by `model`, in order, and the new position.
    ///
    /// # Errors
    /// [`Error::Store`], [`Error::StoreUnavailable`], [`Error::Crypto`].
    fn changes_since(&self, position: i64, model: &str) -> Result<(i64, Vec<Change>)> {
        let _ = model;
        Ok((position, Vec::new()))
    }

    /// Waits until another process may have changed the store, or `timeout` passes.
    ///
    /// # Errors
    /// [`Error::StoreUnavailable`].
    fn wait_for_change(&self, timeout: std::time::Duration) -> Result<()> {
        std::thread::sleep(timeout);
        Ok(())
    }

    /// Whether the store answers now.
    fn is_available(&self) -> bool {
        true
    }
}

/// One change in a shared store's feed.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// A subject was enrolled or re-enrolled.
    Enrolled(Enrollment),
    /// A subject was erased.
    Erased(String),
}
