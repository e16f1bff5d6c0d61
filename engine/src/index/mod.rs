//! 1:N search over enrolled templates: [`FaceIndex`], exact for small galleries, HNSW for large ones,
//! int8 codes with exact rescoring ([`CompactIndex`]) for tens of millions.
//!
//! This is the only module that touches `hnsw_rs`. Scores are similarities (higher = closer);
//! HNSW's distances (`1 - dot`) are converted here. Removal leaves a tombstone; the graph is rebuilt
//! once tombstones pass `rebuild_ratio` of the entries (a compact index moves its last row in).

mod compact;
mod config;
mod file;

use std::collections::{HashMap, HashSet};

use hnsw_rs::prelude::{Distance, Hnsw};
use serde::{Deserialize, Serialize};

use crate::embedding::{Embedding, Score};
use crate::error::{Error, Result};
use crate::similarity::{dot, top_k};

pub use compact::CompactIndex;
pub use config::{IndexConfig, IndexKind};

/// Layers of the HNSW graph: 16 is hnsw_rs's maximum and plenty for billions of entries.
const HNSW_MAX_LAYERS: usize = 16;

/// The graph is allocated for at least this many entries.
const HNSW_MIN_CAPACITY: usize = 1024;

/// HNSW distance on unit vectors: `1 - dot`, clamped at 0 (rounding can push a self-match past 1).
#[derive(Clone, Copy, Default)]
struct UnitDot;

impl Distance<f32> for UnitDot {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        (1.0 - dot(a, b)).max(0.0)
    }
}

/// A search result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Match {
    /// Subject id.
    pub subject: String,
    /// Similarity to the query.
    pub score: Score,
}

/// Subjects' embeddings, searchable by similarity.
pub struct FaceIndex {
    dim: usize,
    config: IndexConfig,
    subjects: Vec<String>,
    slots: HashMap<String, usize>,
    vectors: Vec<f32>,
    removed: HashSet<usize>,
    graph: Option<Hnsw<'static, f32, UnitDot>>,
    /// With [`IndexKind::Compact`], every entry lives here alone (keyed by the subject's number).
    compact: Option<CompactIndex>,
}

/// A subject's number in a compact index: 1 to 19 digits, no leading zero (a NIK is 16).
fn subject_number(subject: &str) -> Result<u64> {
    let digits = !subject.is_empty() && subject.len() <= 19 && subject.bytes().all(|b| b.is_ascii_digit());
    match subject.parse::<u64>() {
        Ok(n) if digits && n.to_string() == subject => Ok(n),
        _ => Err(Error::InvalidArgument(format!(
            "a compact index keys subjects by number (a NIK); {subject:?} is not one"
        ))),
    }
}

impl FaceIndex {
    /// An empty index for embeddings of `dim` components.
    ///
    /// # Errors
    /// [`Error::Config`] for invalid settings or `dim` 0.
    pub fn new(dim: usize, config: IndexConfig) -> Result<Self> {
        config.validate()?;
        if dim == 0 {
            return Err(Error::Config("index: dimension 0".into()));
        }
        Ok(Self {
            dim,
            config,
            subjects: Vec::new(),
            slots: HashMap::new(),
            vectors: Vec::new(),
            removed: HashSet::new(),
            graph: None,
            compact: (config.kind == IndexKind::Compact).then(|| CompactIndex::new(dim)),
        })
    }

    /// Number of live entries.
    pub fn len(&self) -> usize {
        self.compact.as_ref().map_or(self.slots.len(), CompactIndex::len)
    }

    /// True when there is no live entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when entries are int8 codes whose scores are rescored by the caller
    /// ([`FaceIndex::search_rescored`]).
    pub fn is_compact(&self) -> bool {
        self.compact.is_some()
    }

    /// Sets the candidates examined per HNSW query (`IndexConfig::ef_search`) without a rebuild.
    ///
    /// # Errors
    /// [`Error::Config`] when `ef` is out of range; nothing changes then.
    pub fn set_ef_search(&mut self, ef: usize) -> Result<()> {
        let config = IndexConfig { ef_search: ef, ..self.config };
        config.validate()?;
        self.config = config;
        Ok(())
    }

    /// True when searches go through the HNSW graph.
    pub fn uses_hnsw(&self) -> bool {
        self.graph.is_some()
    }

    fn wants_hnsw(&self) -> bool {
        match self.config.kind {
            IndexKind::Exact | IndexKind::Compact => false,
            IndexKind::Hnsw => true,
            IndexKind::Auto => self.len() >= self.config.hnsw_from,
        }
    }

    fn check(&self, e: &Embedding) -> Result<()> {
        if e.dim() == self.dim {
            Ok(())
        } else {
            Err(Error::DimensionMismatch { expected: self.dim, found: e.dim() })
        }
    }

    /// Adds or replaces a subject's embedding.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`].
    pub fn insert(&mut self, subject: &str, embedding: &Embedding) -> Result<()> {
        self.insert_many(std::iter::once((subject.to_string(), embedding.clone())))
    }

    /// Adds or replaces many embeddings; the HNSW graph is filled in parallel.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`]; nothing is added then.
    pub fn insert_many(&mut self, entries: impl IntoIterator<Item = (String, Embedding)>) -> Result<()> {
        let entries: Vec<(String, Embedding)> = entries.into_iter().collect();
        for (_, e) in &entries {
            self.check(e)?;
        }
        if let Some(compact) = &mut self.compact {
            let numbered = entries
                .iter()
                .map(|(subject, e)| Ok((subject_number(subject)?, e.as_slice())))
                .collect::<Result<Vec<_>>>()?;
            compact.upsert_many(numbered);
            return Ok(());
        }
        let first_new = self.subjects.len();
        for (subject, embedding) in entries {
            if let Some(old) = self.slots.remove(&subject) {
                self.removed.insert(old);
            }
            let slot = self.subjects.len();
            self.slots.insert(subject.clone(), slot);
            self.subjects.push(subject);
            self.vectors.extend_from_slice(embedding.as_slice());
        }
        if self.graph.is_some() {
            self.add_to_graph(first_new);
        }
        self.maintain();
        Ok(())
    }

    /// Removes a subject; false if it was not there.
    pub fn remove(&mut self, subject: &str) -> bool {
        if let Some(compact) = &mut self.compact {
            return subject_number(subject).is_ok_and(|n| compact.remove(n));
        }
        let Some(slot) = self.slots.remove(subject) else { return false };
        self.removed.insert(slot);
        self.maintain();
        true
    }

    /// Switches between exact and HNSW and rebuilds when tombstones have piled up.
    fn maintain(&mut self) {
        let slots = self.subjects.len();
        let wants = self.wants_hnsw();
        let stale = slots > 0 && self.removed.len() as f32 / slots as f32 >= self.config.rebuild_ratio;
        if stale {
            self.compact();
        }
        if wants && (self.graph.is_none() || stale) {
            self.build_graph();
        } else if !wants {
            self.graph = None;
        }
    }

    /// Drops tombstoned rows, renumbering slots.
    fn compact(&mut self) {
        let mut subjects = Vec::with_capacity(self.slots.len());
        let mut vectors = Vec::with_capacity(self.slots.len() * self.dim);
        for (slot, subject) in self.subjects.iter().enumerate() {
            if !self.removed.contains(&slot) {
                subjects.push(subject.clone());
                vectors.extend_from_slice(&self.vectors[slot * self.dim..(slot + 1) * self.dim]);
            }
        }
        self.slots = subjects.iter().enumerate().map(|(i, s)| (s.clone(), i)).collect();
        self.subjects = subjects;
        self.vectors = vectors;
        self.removed.clear();
        self.graph = None;
    }

    /// Rebuilds the HNSW graph from the live entries.
    pub fn build_graph(&mut self) {
        let capacity = self.subjects.len().max(HNSW_MIN_CAPACITY);
        let (links, ef) = (self.config.max_connections, self.config.ef_construction);
        let graph = Hnsw::new(links, capacity, HNSW_MAX_LAYERS, ef, UnitDot);
        self.graph = Some(graph);
        self.add_to_graph(0);
    }

    fn add_to_graph(&mut self, from_slot: usize) {
        let Some(graph) = &self.graph else { return };
        let batch: Vec<(&[f32], usize)> = (from_slot..self.subjects.len())
            .filter(|s| !self.removed.contains(s))
            .map(|s| (&self.vectors[s * self.dim..(s + 1) * self.dim], s))
            .collect();
        graph.parallel_insert_slice(&batch);
    }

    /// The `k` subjects most similar to `query`, best first.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`].
    pub fn search(&self, query: &Embedding, k: usize) -> Result<Vec<Match>> {
        self.search_rescored(query, k, |_| None)
    }

    /// As [`FaceIndex::search`], with a compact index's shortlist rescored by `exact(subject)`
    /// (the similarity to the subject's full template, `None` to keep the int8 score). Other kinds
    /// hold full vectors and never call it.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`].
    pub fn search_rescored(
        &self,
        query: &Embedding,
        k: usize,
        exact: impl Fn(&str) -> Option<f32> + Sync,
    ) -> Result<Vec<Match>> {
        self.check(query)?;
        let k = k.min(self.len());
        if k == 0 {
            return Ok(Vec::new());
        }
        if let Some(compact) = &self.compact {
            let found = compact
                .search(query.as_slice(), k, self.config.rescore, |row| exact(&compact.id(row).to_string()));
            return Ok(found
                .into_iter()
                .map(|(row, score)| Match { subject: compact.id(row).to_string(), score: Score(score) })
                .collect());
        }
        let live = |slot: usize| !self.removed.contains(&slot);
        let mut hits: Vec<(usize, f32)> = match &self.graph {
            Some(graph) => {
                let want = k + self.removed.len().min(k * 4);
                let ef = self.config.ef_search.max(want);
                graph
                    .search(query.as_slice(), want, ef)
                    .into_iter()
                    .filter(|n| live(n.d_id))
                    .map(|n| (n.d_id, 1.0 - n.distance))
                    .collect()
            }
            None => top_k(query.as_slice(), &self.vectors, self.dim, k + self.removed.len())
                .into_iter()
                .filter(|h| live(h.row))
                .map(|h| (h.row, h.score))
                .collect(),
        };
        // Exact scores for what the graph returned (its distances are the same dot, clamped).
        for (slot, score) in &mut hits {
            *score = dot(query.as_slice(), &self.vectors[*slot * self.dim..(*slot + 1) * self.dim]);
        }
        hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        hits.truncate(k);
        Ok(hits
            .into_iter()
            .map(|(slot, score)| Match { subject: self.subjects[slot].clone(), score: Score(score) })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A seeded unit vector (xorshift components).
    pub(super) fn unit(seed: u64, dim: usize) -> Embedding {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let v = (0..dim)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect();
        Embedding::from_raw(v).expect("non-zero")
    }

    #[test]
    fn config_is_validated_before_hnsw_sees_it() {
        for bad in [
            IndexConfig { max_connections: 300, ..IndexConfig::default() },
            IndexConfig { ef_construction: 2, ..IndexConfig::default() },
            IndexConfig { ef_search: 0, ..IndexConfig::default() },
            IndexConfig { rebuild_ratio: 0.0, ..IndexConfig::default() },
        ] {
            assert!(matches!(FaceIndex::new(8, bad), Err(Error::Config(_))));
        }
    }

    #[test]
    fn exact_and_hnsw_find_the_same_subject_and_honour_removal() {
        for kind in [IndexKind::Exact, IndexKind::Hnsw] {
            let mut index =
                FaceIndex::new(32, IndexConfig { kind, ..IndexConfig::default() }).expect("valid");
            index.insert_many((0..500).map(|i| (format!("s{i}"), unit(i, 32)))).expect("inserted");
            assert_eq!(index.uses_hnsw(), kind == IndexKind::Hnsw);
            let top = index.search(&unit(42, 32), 3).expect("searched");
            assert_eq!(top[0].subject, "s42");
            assert!((top[0].score.0 - 1.0).abs() < 1e-5);
            assert!(index.remove("s42"));
            assert!(index.search(&unit(42, 32), 3).expect("searched").iter().all(|m| m.subject != "s42"));
            // Replacing a subject keeps one entry for it.
            index.insert("s7", &unit(1000, 32)).expect("replaced");
            assert_eq!(index.len(), 499);
            assert_eq!(index.search(&unit(1000, 32), 1).expect("searched")[0].subject, "s7");
        }
    }

    #[test]
    fn many_removals_trigger_a_rebuild() {
        let mut index = FaceIndex::new(16, IndexConfig { kind: IndexKind::Hnsw, ..IndexConfig::default() })
            .expect("valid");
        index.insert_many((0..200).map(|i| (format!("s{i}"), unit(i, 16)))).expect("inserted");
        for i in 0..100 {
            index.remove(&format!("s{i}"));
        }
        assert_eq!(index.len(), 100);
        assert!(index.removed.len() < 40, "tombstones were compacted");
        assert_eq!(index.search(&unit(150, 16), 1).expect("searched")[0].subject, "s150");
    }

    #[test]
    fn save_and_load_round_trip() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("index.bin");
        let mut index = FaceIndex::new(8, IndexConfig::default()).expect("valid");
        index.insert_many((0..50).map(|i| (format!("s{i}"), unit(i, 8)))).expect("inserted");
        index.remove("s3");
        index.save(&path).expect("saved");
        let back = FaceIndex::load(&path, IndexConfig::default()).expect("loaded");
        assert_eq!(back.len(), 49);
        assert_eq!(back.search(&unit(9, 8), 1).expect("searched")[0].subject, "s9");
    }
}
