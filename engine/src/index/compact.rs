//! [`CompactIndex`]: int8 templates for galleries of tens of millions, 144 bytes per entry.
//!
//! Each unit vector is stored as 128 signed bytes, one f32 scale (its largest component over
//! 127) and the codes' sum (for the AVX2 kernel), with a u64 id (a NIK's 16 digits fit). The query
//! is quantised to 7 bits. A query scans every code in parallel with integer
//! dot products, keeps a shortlist of the best approximate scores, and rescores the shortlist with
//! exact f32 templates that the caller supplies (decrypted from the store, or from a file), so the
//! answer's order and scores are exact wherever the shortlist holds the true neighbours.

use rayon::prelude::*;

use crate::similarity::dot_i8_rows;

/// Rows per parallel chunk of the scan.
const CHUNK: usize = 1 << 16;

/// int8 codes of unit vectors with ids.
pub struct CompactIndex {
    dim: usize,
    codes: Vec<i8>,
    scales: Vec<f32>,
    sums: Vec<i32>,
    ids: Vec<u64>,
}

/// The code of `v` in -`levels`..=`levels` and its scale (`v ~ code * scale`).
fn quantize(v: &[f32], levels: f32) -> (Vec<i8>, f32) {
    let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let scale = if max > 0.0 { max / levels } else { 1.0 };
    (v.iter().map(|x| (x / scale).round().clamp(-levels, levels) as i8).collect(), scale)
}

/// Keeps the `n` best (score, row) pairs.
fn shortlist(mut v: Vec<(f32, usize)>, n: usize) -> Vec<(f32, usize)> {
    if v.len() > n {
        v.select_nth_unstable_by(n - 1, |a, b| b.0.total_cmp(&a.0));
        v.truncate(n);
    }
    v
}

impl CompactIndex {
    /// An empty index of `dim`-dimensional vectors.
    pub fn new(dim: usize) -> Self {
        Self { dim, codes: Vec::new(), scales: Vec::new(), sums: Vec::new(), ids: Vec::new() }
    }

    /// Entries.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Memory per entry, in bytes: the code, its scale, its sum and its id.
    pub fn bytes_per_entry(&self) -> usize {
        self.dim + size_of::<f32>() + size_of::<i32>() + size_of::<u64>()
    }

    /// Adds a unit vector; returns its row. Vectors of another dimension are refused (`None`).
    pub fn push(&mut self, id: u64, v: &[f32]) -> Option<usize> {
        if v.len() != self.dim {
            return None;
        }
        let (code, scale) = quantize(v, 127.0);
        self.sums.push(code.iter().map(|c| i32::from(*c)).sum());
        self.codes.extend_from_slice(&code);
        self.scales.push(scale);
        self.ids.push(id);
        Some(self.ids.len() - 1)
    }

    /// The id of `row`.
    pub fn id(&self, row: usize) -> u64 {
        self.ids[row]
    }

    /// The row holding `id`: a scan of the ids (80 MB at 10 M entries, a few ms; writes are rare
    /// next to searches, and each enrolment's duplicate search reads 18 times more).
    pub fn row_of(&self, id: u64) -> Option<usize> {
        self.ids.iter().position(|&x| x == id)
    }

    /// Adds `id`'s vector, or replaces it if `id` is there; returns its row. Vectors of another
    /// dimension are refused (`None`).
    pub fn upsert(&mut self, id: u64, v: &[f32]) -> Option<usize> {
        match self.row_of(id) {
            Some(row) => self.set(row, v).then_some(row),
            None => self.push(id, v),
        }
    }

    /// Adds or replaces many entries at once (the last of an id wins): one pass over the ids for
    /// the whole batch instead of one per entry. Entries of another dimension are refused first
    /// (`false`, nothing added).
    pub fn upsert_many<'a>(&mut self, entries: impl IntoIterator<Item = (u64, &'a [f32])>) -> bool {
        let entries: Vec<(u64, &[f32])> = entries.into_iter().collect();
        if entries.iter().any(|(_, v)| v.len() != self.dim) {
            return false;
        }
        let wanted: std::collections::HashSet<u64> = entries.iter().map(|e| e.0).collect();
        let mut rows: std::collections::HashMap<u64, usize> = self
            .ids
            .iter()
            .enumerate()
            .filter(|(_, id)| wanted.contains(id))
            .map(|(row, id)| (*id, row))
            .collect();
        for (id, v) in entries {
            match rows.get(&id) {
                Some(&row) => {
                    self.set(row, v);
                }
                None => {
                    let row = self.push(id, v).expect("dimension checked");
                    rows.insert(id, row);
                }
            }
        }
        true
    }

    /// Removes `id`; false if it was not there. The last row moves into its place.
    pub fn remove(&mut self, id: u64) -> bool {
        let Some(row) = self.row_of(id) else { return false };
        let last = self.ids.len() - 1;
        if row != last {
            self.codes.copy_within(last * self.dim..(last + 1) * self.dim, row * self.dim);
        }
        self.codes.truncate(last * self.dim);
        self.scales.swap_remove(row);
        self.sums.swap_remove(row);
        self.ids.swap_remove(row);
        true
    }

    /// Overwrites `row` with `v`; false for another dimension.
    fn set(&mut self, row: usize, v: &[f32]) -> bool {
        if v.len() != self.dim {
            return false;
        }
        let (code, scale) = quantize(v, 127.0);
        self.sums[row] = code.iter().map(|c| i32::from(*c)).sum();
        self.codes[row * self.dim..(row + 1) * self.dim].copy_from_slice(&code);
        self.scales[row] = scale;
        true
    }

    /// The `k` best entries for `query` (a unit vector): the `shortlist` best by int8 score,
    /// rescored by `exact(row)` (an exact similarity, or `None` to keep the int8 one), best first,
    /// as (row, score).
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        shortlist_len: usize,
        exact: impl Fn(usize) -> Option<f32> + Sync,
    ) -> Vec<(usize, f32)> {
        if query.len() != self.dim || k == 0 || self.is_empty() {
            return Vec::new();
        }
        let n = shortlist_len.max(k);
        let (q, qscale) = quantize(query, 63.0);
        let found: Vec<(f32, usize)> = self
            .codes
            .par_chunks(CHUNK * self.dim)
            .enumerate()
            .flat_map_iter(|(c, codes)| {
                // Integer dots for the whole chunk, then the best `n` in a buffer of 2n cut back
                // to n when full; rows under the n-th best score are skipped at once.
                let first = c * CHUNK;
                let mut dots = vec![0i32; codes.len() / self.dim];
                dot_i8_rows(&q, codes, &self.sums[first..first + dots.len()], &mut dots);
                let mut kept: Vec<(f32, usize)> = Vec::with_capacity(2 * n);
                let mut floor = f32::NEG_INFINITY;
                for (i, d) in dots.into_iter().enumerate() {
                    let score = d as f32 * qscale * self.scales[first + i];
                    if score > floor {
                        kept.push((score, first + i));
                        if kept.len() == 2 * n {
                            kept = shortlist(kept, n);
                            floor = kept.iter().fold(f32::INFINITY, |m, k| m.min(k.0));
                        }
                    }
                }
                shortlist(kept, n)
            })
            .collect();
        let mut best: Vec<(usize, f32)> =
            shortlist(found, n).into_par_iter().map(|(s, row)| (row, exact(row).unwrap_or(s))).collect();
        best.sort_by(|a, b| b.1.total_cmp(&a.1));
        best.truncate(k);
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index tests' seeded unit vector, as plain floats.
    fn unit(seed: u64, dim: usize) -> Vec<f32> {
        crate::index::tests::unit(seed, dim).as_slice().to_vec()
    }

    #[test]
    fn int8_scores_are_within_a_percent_and_rescoring_makes_them_exact() {
        let mut index = CompactIndex::new(128);
        let all: Vec<Vec<f32>> = (0..5000).map(|i| unit(i, 128)).collect();
        for (i, v) in all.iter().enumerate() {
            index.push(1000 + i as u64, v);
        }
        assert_eq!(index.bytes_per_entry(), 144);
        let exact = |q: &[f32], row: usize| q.iter().zip(&all[row]).map(|(a, b)| a * b).sum::<f32>();
        for probe in [7usize, 4321] {
            let q = &all[probe];
            let approx = index.search(q, 5, 5, |_| None);
            assert_eq!((approx[0].0, index.id(approx[0].0)), (probe, 1000 + probe as u64));
            assert!((approx[0].1 - 1.0).abs() < 0.01, "{approx:?}");
            let rescored = index.search(q, 5, 50, |row| Some(exact(q, row)));
            let mut want: Vec<(usize, f32)> = (0..all.len()).map(|r| (r, exact(q, r))).collect();
            want.sort_by(|a, b| b.1.total_cmp(&a.1));
            assert_eq!(
                rescored.iter().map(|r| r.0).collect::<Vec<_>>(),
                want[..5].iter().map(|r| r.0).collect::<Vec<_>>()
            );
        }
        assert_eq!(index.push(1, &[0.5; 64]), None);
    }

    #[test]
    fn upserts_replace_and_removals_keep_every_other_entry_findable() {
        let mut index = CompactIndex::new(64);
        assert!(index.upsert_many(
            (0..300u64).map(|i| (i, unit(i, 64))).collect::<Vec<_>>().iter().map(|(i, v)| (*i, v.as_slice()))
        ));
        assert_eq!(index.len(), 300);
        // Replacing keeps one entry; the id now finds the new vector.
        let new = unit(9999, 64);
        assert_eq!(index.upsert(5, &new), Some(5));
        assert_eq!(index.len(), 300);
        assert_eq!(index.id(index.search(&new, 1, 1, |_| None)[0].0), 5);
        // Removing a row moves the last one into its place; both stay consistent.
        assert!(index.remove(10));
        assert!(!index.remove(10));
        assert_eq!(index.len(), 299);
        assert_eq!(index.row_of(10), None);
        for probe in [0u64, 11, 299] {
            let top = index.search(&unit(probe, 64), 1, 1, |_| None);
            assert_eq!(index.id(top[0].0), probe);
        }
        assert!(!index.upsert_many([(1u64, &[0.5f32; 8][..])]));
        assert_eq!(index.len(), 299);
    }
}
