//! 1:N search over enrolled templates: [`FaceIndex`], exact for small galleries, HNSW for large ones.
//!
//! This is the only module that touches `hnsw_rs`. Scores are similarities (higher = closer);
//! HNSW's distances (`1 - dot`) are converted here. Removal leaves a tombstone; the graph is rebuilt
//! once tombstones pass `rebuild_ratio` of the entries.

use std::collections::{HashMap, HashSet};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use hnsw_rs::prelude::{Distance, Hnsw};
use serde::{Deserialize, Serialize};

use crate::embedding::{Embedding, Score};
use crate::error::{Error, Result};
use crate::similarity::{dot, top_k};

/// Which search structure to use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexKind {
    /// Exact below `hnsw_from` entries, HNSW from there on.
    #[default]
    Auto,
    /// Always an exact scan (parallel).
    Exact,
    /// Always HNSW.
    Hnsw,
}

/// Index settings, validated before `hnsw_rs` sees them (it exits the process on some bad values).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IndexConfig {
    /// Exact, HNSW or automatic.
    pub kind: IndexKind,
    /// With `Auto`, galleries of at least this many entries use HNSW.
    pub hnsw_from: usize,
    /// HNSW links per node (M), 4..=128.
    pub max_connections: usize,
    /// Candidates examined while building, >= `max_connections`.
    pub ef_construction: usize,
    /// Candidates examined per query, >= 1 (raised to k when smaller).
    pub ef_search: usize,
    /// Rebuild when this fraction of entries are tombstones, in (0, 1].
    pub rebuild_ratio: f32,
}

impl Default for IndexConfig {
    fn default() -> Self {
        Self {
            kind: IndexKind::Auto,
            hnsw_from: 20_000,
            max_connections: 24,
            ef_construction: 200,
            ef_search: 128,
            rebuild_ratio: 0.2,
        }
    }
}

impl IndexConfig {
    /// Checks every value.
    ///
    /// # Errors
    /// [`Error::Config`] naming the first bad value.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(format!("index: {m}")));
        if !(4..=128).contains(&self.max_connections) {
            return bad(format!("max_connections {} is outside 4..=128", self.max_connections));
        }
        if self.ef_construction < self.max_connections || self.ef_construction > 10_000 {
            return bad(format!(
                "ef_construction {} must be within max_connections..=10000",
                self.ef_construction
            ));
        }
        if self.ef_search == 0 || self.ef_search > 10_000 {
            return bad(format!("ef_search {} is outside 1..=10000", self.ef_search));
        }
        if !(self.rebuild_ratio > 0.0 && self.rebuild_ratio <= 1.0) {
            return bad(format!("rebuild_ratio {} is outside (0, 1]", self.rebuild_ratio));
        }
        Ok(())
    }
}

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
        })
    }

    /// Number of live entries.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when there is no live entry.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// True when searches go through the HNSW graph.
    pub fn uses_hnsw(&self) -> bool {
        self.graph.is_some()
    }

    fn wants_hnsw(&self) -> bool {
        match self.config.kind {
            IndexKind::Exact => false,
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
        let capacity = self.subjects.len().max(1024);
        let max_layer = 16;
        let graph =
            Hnsw::new(self.config.max_connections, capacity, max_layer, self.config.ef_construction, UnitDot);
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
        self.check(query)?;
        let k = k.min(self.len());
        if k == 0 {
            return Ok(Vec::new());
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

    /// Writes the live entries (ids and vectors) to `path`; the graph is rebuilt on load.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn save(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("part");
        {
            let mut w = BufWriter::new(std::fs::File::create(&tmp)?);
            w.write_all(b"WAJAHIX1")?;
            w.write_all(&(self.dim as u64).to_le_bytes())?;
            w.write_all(&(self.len() as u64).to_le_bytes())?;
            for (slot, subject) in self.subjects.iter().enumerate().filter(|(s, _)| !self.removed.contains(s))
            {
                w.write_all(&(subject.len() as u32).to_le_bytes())?;
                w.write_all(subject.as_bytes())?;
                for v in &self.vectors[slot * self.dim..(slot + 1) * self.dim] {
                    w.write_all(&v.to_le_bytes())?;
                }
            }
            w.into_inner().map_err(|e| Error::Io(e.into_error()))?.sync_all()?;
        }
        std::fs::rename(tmp, path)?;
        Ok(())
    }

    /// Reads an index written by [`FaceIndex::save`].
    ///
    /// # Errors
    /// [`Error::Io`], or [`Error::Index`] for a file that is not an index.
    pub fn load(path: &Path, config: IndexConfig) -> Result<Self> {
        let mut r = BufReader::new(std::fs::File::open(path)?);
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic)?;
        if &magic != b"WAJAHIX1" {
            return Err(Error::Index(format!("{} is not a wajah index file", path.display())));
        }
        let mut u64b = [0u8; 8];
        r.read_exact(&mut u64b)?;
        let dim = u64::from_le_bytes(u64b) as usize;
        r.read_exact(&mut u64b)?;
        let count = u64::from_le_bytes(u64b) as usize;
        if dim == 0 || dim > 65_536 {
            return Err(Error::Index(format!("index dimension {dim} is implausible")));
        }
        let mut entries = Vec::with_capacity(count.min(1 << 24));
        let mut vec = vec![0u8; dim * 4];
        for _ in 0..count {
            let mut len = [0u8; 4];
            r.read_exact(&mut len)?;
            let mut name = vec![0u8; u32::from_le_bytes(len) as usize];
            r.read_exact(&mut name)?;
            r.read_exact(&mut vec)?;
            let subject =
                String::from_utf8(name).map_err(|_| Error::Index("subject id is not UTF-8".into()))?;
            entries.push((subject, Embedding::from_le_bytes(&vec)?));
        }
        let mut index = Self::new(dim, config)?;
        index.insert_many(entries)?;
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(seed: u64, dim: usize) -> Embedding {
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
        let path = std::env::temp_dir().join(format!("wajah-index-{}.bin", std::process::id()));
        let mut index = FaceIndex::new(8, IndexConfig::default()).expect("valid");
        index.insert_many((0..50).map(|i| (format!("s{i}"), unit(i, 8)))).expect("inserted");
        index.remove("s3");
        index.save(&path).expect("saved");
        let back = FaceIndex::load(&path, IndexConfig::default()).expect("loaded");
        assert_eq!(back.len(), 49);
        assert_eq!(back.search(&unit(9, 8), 1).expect("searched")[0].subject, "s9");
        std::fs::remove_file(path).ok();
    }
}
