//! The [`Gallery`]: enrolled subjects, and the one place that enrols, verifies, identifies and
//! deletes them.
//!
//! It owns a [`TemplateStore`] (the system of record) and a [`FaceIndex`] (1:N search) and keeps
//! them in step: opening fills the index from the store; a change takes the index's write lock,
//! writes the store, then the index, and undoes the store write if the index step fails, so the
//! two never disagree. On a store that several servers share, [`Gallery::catch_up`] applies the
//! other servers' changes from the store's change feed.

use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;

use crate::analysis::{Decision, FaceAnalysis, Verdict};
use crate::config::DuplicatePolicy;
use crate::embedding::Template;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::index::{FaceIndex, IndexConfig};
use crate::liveness::FacePatch;
use crate::quality::CaptureMode;
use crate::store::{Change, Enrollment, LOAD_BATCH, TemplateStore, Upsert};

/// Where an enrolment's quality record (sealed in the store) keeps the ID photo's [`FacePatch`]
/// (its reference region, 1,156 bytes, base64).
const FACE_PATCH_KEY: &str = "id_face_patch";

/// A subject enrolled (or enrolled again).
#[derive(Clone, Debug)]
pub struct Enrolled {
    /// What the store did.
    pub outcome: Upsert,
    /// The enrolment photo's analysis.
    pub analysis: FaceAnalysis,
    /// Other subjects whose templates match this face (flagged for review), best first.
    pub possible_duplicates: Vec<Candidate>,
}

/// A 1:1 verification against an enrolled subject.
#[derive(Clone, Debug)]
pub struct Verification {
    /// Score, threshold and verdict.
    pub decision: Decision,
    /// The probe photo's analysis.
    pub analysis: FaceAnalysis,
}

/// One subject found by a 1:N search.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// Subject id.
    pub subject: String,
    /// The candidate's score against the engine's threshold.
    pub decision: Decision,
}

/// A 1:N search with a photo.
#[derive(Clone, Debug)]
pub struct Identification {
    /// The most similar subjects, best first.
    pub candidates: Vec<Candidate>,
    /// The probe photo's analysis.
    pub analysis: FaceAnalysis,
}

impl Identification {
    /// [`Verdict::Match`] when the best candidate matches.
    pub fn verdict(&self) -> Verdict {
        self.candidates.first().map_or(Verdict::NoMatch, |c| c.decision.verdict())
    }
}

/// Enrolled subjects: a template store and its search index, kept in step.
pub struct Gallery {
    engine: Arc<Engine>,
    store: Box<dyn TemplateStore>,
    index: RwLock<FaceIndex>,
    other_models: usize,
    /// The change-feed position the index reflects (`None`: the store has no feed).
    position: Mutex<Option<i64>>,
}

fn poisoned<T>(_: T) -> Error {
    Error::Index("index lock poisoned".into())
}

impl Gallery {
    /// Opens a gallery on `store`, filling the index with every template made by `engine`'s model.
    ///
    /// # Errors
    /// [`Error::Config`] for a bad index configuration; store and decryption errors.
    pub fn open(engine: Arc<Engine>, store: Box<dyn TemplateStore>, index: IndexConfig) -> Result<Self> {
        let mut face_index = FaceIndex::new(engine.dim(), index)?;
        // The position first: changes made while loading are applied again by `catch_up`, which
        // is harmless; none is missed.
        let position = store.change_position()?;
        let loaded =
            store.templates(engine.model_id(), LOAD_BATCH, &mut |batch| face_index.insert_many(batch))?;
        let other_models = store.count()?.saturating_sub(loaded);
        Ok(Self {
            engine,
            store,
            index: RwLock::new(face_index),
            other_models,
            position: Mutex::new(position),
        })
    }

    /// Applies the changes other servers made to a shared store since the last call (nothing for
    /// a store of this process alone). Returns how many were applied.
    ///
    /// # Errors
    /// Store errors ([`Error::StoreUnavailable`] when the database is down); the position is kept,
    /// so the next call catches up from there.
    pub fn catch_up(&self) -> Result<usize> {
        let mut position = self.position.lock().map_err(poisoned)?;
        let Some(from) = *position else { return Ok(0) };
        let mut applied = 0;
        let mut at = from;
        loop {
            let (next, changes) = self.store.changes_since(at, self.engine.model_id())?;
            if next == at {
                break;
            }
            let mut index = self.write_index()?;
            for change in changes {
                match change {
                    Change::Enrolled(e) => index.insert(&e.subject, &e.template.embedding)?,
                    Change::Erased(subject) => {
                        index.remove(&subject);
                    }
                }
                applied += 1;
            }
            at = next;
            *position = Some(at);
        }
        Ok(applied)
    }

    /// Waits until a shared store may have changed, or `timeout` passes (sleeps for a store
    /// of this process alone).
    ///
    /// # Errors
    /// [`Error::StoreUnavailable`].
    pub fn wait_for_change(&self, timeout: std::time::Duration) -> Result<()> {
        self.store.wait_for_change(timeout)
    }

    /// True when the store is shared and [`Gallery::catch_up`] has changes to follow.
    pub fn follows_changes(&self) -> bool {
        self.position.lock().is_ok_and(|p| p.is_some())
    }

    /// Whether the store answers now.
    pub fn store_available(&self) -> bool {
        self.store.is_available()
    }

    /// The engine that makes and compares the templates.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Number of searchable subjects.
    pub fn len(&self) -> usize {
        self.read_index().map_or(0, |i| i.len())
    }

    /// True when no subject is searchable.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when searches go through the HNSW graph.
    pub fn uses_hnsw(&self) -> bool {
        self.read_index().is_ok_and(|i| i.uses_hnsw())
    }

    /// Enrolments in the store made by another model (not searchable until re-enrolled).
    pub fn other_models(&self) -> usize {
        self.other_models
    }

    fn read_index(&self) -> Result<RwLockReadGuard<'_, FaceIndex>> {
        self.index.read().map_err(poisoned)
    }

    fn write_index(&self) -> Result<RwLockWriteGuard<'_, FaceIndex>> {
        self.index.write().map_err(poisoned)
    }

    /// Enrols `subject` with the face in `photo` (the KTP-el photo), replacing an earlier one. In
    /// registration mode an ID photo with sunglasses, a mask or a covered face is refused.
    ///
    /// # Errors
    /// As [`Engine::analyze`], [`Error::CaptureRejected`], and store errors.
    pub fn enroll(&self, subject: &str, photo: &[u8], mode: CaptureMode) -> Result<Enrolled> {
        let analysis = self.engine.analyze(photo)?;
        let problems = mode.id_photo_refusals(&analysis.quality);
        if !problems.is_empty() {
            return Err(Error::CaptureRejected { problems });
        }
        let possible_duplicates = self.duplicates_of(subject, &analysis.template)?;
        if !possible_duplicates.is_empty()
            && self.engine.config().duplicates.policy == DuplicatePolicy::Refuse
        {
            return Err(Error::PossibleDuplicate { candidates: possible_duplicates });
        }
        let mut quality = serde_json::to_value(&analysis.quality).unwrap_or(Value::Null);
        // The ID photo's face patch, to tell a photo of it from a live selfie later; sealed with
        // the template in the store's row and erased with it.
        if let (Some(map), Some(patch)) = (quality.as_object_mut(), FacePatch::of(analysis.aligned.image())) {
            map.insert(FACE_PATCH_KEY.into(), Value::String(BASE64.encode(patch.reference_bytes())));
        }
        let enrollment = Enrollment {
            subject: subject.to_string(),
            template: analysis.template.clone(),
            quality,
            photo_sha256: analysis.photo_sha256.clone(),
            created_ms: 0,
            updated_ms: 0,
        };
        let outcome = self.enroll_template(&enrollment)?;
        Ok(Enrolled { outcome, analysis, possible_duplicates })
    }

    /// Other subjects than `subject` whose templates score at least the duplicate bound against
    /// `template` (the engine's [`crate::DuplicateCheck`]), best first.
    ///
    /// # Errors
    /// As [`Gallery::search`].
    pub fn duplicates_of(&self, subject: &str, template: &Template) -> Result<Vec<Candidate>> {
        let check = self.engine.config().duplicates;
        let bound = check.min_score.unwrap_or(self.engine.threshold());
        Ok(self
            .search(template, check.candidates + 1)?
            .into_iter()
            .filter(|c| c.subject != subject && c.decision.score.0 >= bound)
            .take(check.candidates)
            .collect())
    }

    /// Stores `enrollment` and indexes it; if indexing fails the store is put back as it was and
    /// the error returned, so nothing unsearchable is acknowledged.
    ///
    /// # Errors
    /// [`Error::ModelMismatch`] for a template of another model; [`Error::DimensionMismatch`]
    /// (the store is then unchanged); store errors.
    pub fn enroll_template(&self, enrollment: &Enrollment) -> Result<Upsert> {
        self.engine.check_model(&enrollment.template)?;
        let mut index = self.write_index()?;
        let subject = &enrollment.subject;
        let before = match self.store.get(subject, self.engine.model_id()) {
            Ok(e) => Some(e),
            Err(Error::NotEnrolled | Error::ModelMismatch { .. }) => None,
            Err(e) => return Err(e),
        };
        let outcome = self.store.upsert(enrollment)?;
        if outcome == Upsert::Unchanged {
            return Ok(outcome);
        }
        if let Err(e) = index.insert(subject, &enrollment.template.embedding) {
            match before {
                Some(old) => self.store.upsert(&old).map(drop)?,
                None => self.store.delete(subject).map(drop)?,
            }
            return Err(e);
        }
        Ok(outcome)
    }

    /// The template enrolled for `subject`.
    ///
    /// # Errors
    /// [`Error::NotEnrolled`], [`Error::ModelMismatch`], store errors.
    pub fn template(&self, subject: &str) -> Result<Template> {
        self.store.get_template(subject, self.engine.model_id())
    }

    /// The template enrolled for `subject` and the ID photo's face patch (`None` for enrolments
    /// made from a template, or before patches were kept).
    ///
    /// # Errors
    /// As [`Gallery::template`].
    pub fn enrolled(&self, subject: &str) -> Result<(Template, Option<FacePatch>)> {
        let e = self.store.get(subject, self.engine.model_id())?;
        let patch = e
            .quality
            .get(FACE_PATCH_KEY)
            .and_then(Value::as_str)
            .and_then(|t| BASE64.decode(t).ok())
            .and_then(|b| FacePatch::from_reference_bytes(&b));
        Ok((e.template, patch))
    }

    /// 1:1: the face in `probe` (a selfie) against `subject`'s enrolment. In registration mode a
    /// selfie with a refusing problem ([`crate::QualityIssue::refuses_selfie`]) is refused before it
    /// is compared, and one that turns out to be a photo of the ID photo
    /// ([`crate::QualityIssue::PhotoOfIdPhoto`]) after; in check mode problems are only reported.
    ///
    /// # Errors
    /// [`Error::NotEnrolled`], and as [`Engine::verify`].
    pub fn verify(&self, subject: &str, probe: &[u8], mode: CaptureMode) -> Result<Verification> {
        let (enrolled, id_photo) = self.enrolled(subject)?;
        let mut analysis = self.engine.analyze(probe)?;
        let problems = mode.selfie_refusals(&analysis.quality, self.engine.config().refuse_eyeglasses);
        if !problems.is_empty() {
            return Err(Error::CaptureRejected { problems });
        }
        let decision = self.engine.compare(&analysis.template, &enrolled)?;
        if self.engine.flag_id_photo_replay(&decision, &mut analysis, id_photo.as_ref()) {
            let problems = mode.selfie_refusals(&analysis.quality, self.engine.config().refuse_eyeglasses);
            if !problems.is_empty() {
                return Err(Error::CaptureRejected { problems });
            }
        }
        Ok(Verification { decision, analysis })
    }

    /// 1:N: the `k` subjects most similar to the face in `photo`.
    ///
    /// # Errors
    /// As [`Engine::analyze`]; [`Error::InvalidArgument`] for `k` 0.
    pub fn identify(&self, photo: &[u8], k: usize) -> Result<Identification> {
        let analysis = self.engine.analyze(photo)?;
        let candidates = self.search(&analysis.template, k)?;
        Ok(Identification { candidates, analysis })
    }

    /// The `k` subjects most similar to `template`, each with its decision.
    ///
    /// # Errors
    /// [`Error::ModelMismatch`], [`Error::InvalidArgument`] for `k` 0.
    pub fn search(&self, template: &Template, k: usize) -> Result<Vec<Candidate>> {
        self.engine.check_model(template)?;
        if k == 0 {
            return Err(Error::InvalidArgument("k must be at least 1".into()));
        }
        let threshold = self.engine.threshold();
        // A compact index's shortlist is rescored with the templates decrypted from the store (a
        // row that cannot be read keeps its int8 score, within a hundredth of the exact one).
        let model = self.engine.model_id();
        let exact = |subject: &str| {
            let enrolled = self.store.get_template(subject, model).ok()?;
            Some(crate::similarity::dot(template.embedding.as_slice(), enrolled.embedding.as_slice()))
        };
        let matches = self.read_index()?.search_rescored(&template.embedding, k, exact)?;
        Ok(matches
            .into_iter()
            .map(|m| Candidate { subject: m.subject, decision: Decision::new(m.score, threshold) })
            .collect())
    }

    /// Erases `subject` from store and index; false if it was not enrolled.
    ///
    /// # Errors
    /// Store errors (the index is then unchanged).
    pub fn delete(&self, subject: &str) -> Result<bool> {
        let mut index = self.write_index()?;
        let deleted = self.store.delete(subject)?;
        index.remove(subject);
        Ok(deleted)
    }
}
