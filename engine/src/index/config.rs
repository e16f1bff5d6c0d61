//! [`IndexConfig`]: validated before `hnsw_rs` sees it (it exits the process on some bad values).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Bounds of the HNSW settings (hnsw_rs exits the process above 256 links).
const MAX_CONNECTIONS: std::ops::RangeInclusive<usize> = 4..=128;
const MAX_EF: usize = 10_000;

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
    /// int8 codes only (144 bytes per entry, for tens of millions): a parallel scan of the codes,
    /// then the best `rescore` rescored exactly from the store. Subjects must be numbers (NIKs).
    Compact,
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
    /// With `Compact`, how many of the best int8 scores are rescored exactly, 1..=10000.
    pub rescore: usize,
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
            rescore: 100,
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
        if !MAX_CONNECTIONS.contains(&self.max_connections) {
            return bad(format!("max_connections {} is outside {MAX_CONNECTIONS:?}", self.max_connections));
        }
        if self.ef_construction < self.max_connections || self.ef_construction > MAX_EF {
            return bad(format!(
                "ef_construction {} must be within max_connections..={MAX_EF}",
                self.ef_construction
            ));
        }
        if self.ef_search == 0 || self.ef_search > MAX_EF {
            return bad(format!("ef_search {} is outside 1..={MAX_EF}", self.ef_search));
        }
        if self.rescore == 0 || self.rescore > MAX_EF {
            return bad(format!("rescore {} is outside 1..={MAX_EF}", self.rescore));
        }
        if !(self.rebuild_ratio > 0.0 && self.rebuild_ratio <= 1.0) {
            return bad(format!("rebuild_ratio {} is outside (0, 1]", self.rebuild_ratio));
        }
        Ok(())
    }
}
