//! Index files: the live entries (ids and vectors); the graph is rebuilt on load.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use super::{FaceIndex, IndexConfig};
use crate::embedding::Embedding;
use crate::error::{Error, Result};

/// First bytes of an index file (format version 1).
const FILE_MAGIC: &[u8; 8] = b"WAJAHIX1";

impl FaceIndex {
    /// Writes the live entries (ids and vectors) to `path`; the graph is rebuilt on load.
    ///
    /// # Errors
    /// [`Error::Io`]; [`Error::Index`] for a compact index.
    pub fn save(&self, path: &Path) -> Result<()> {
        if self.is_compact() {
            return Err(Error::Index(
                "a compact index holds no full vectors to save; it is filled from the store".into(),
            ));
        }
        let tmp = path.with_extension("part");
        {
            let mut w = BufWriter::new(std::fs::File::create(&tmp)?);
            w.write_all(FILE_MAGIC)?;
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
        let file = std::fs::File::open(path)?;
        // Nothing is reserved on the header's word: counts and lengths are checked against what the
        // file holds first (a 40-byte file could otherwise claim 4 GB ids or 16 M entries).
        let mut left = file.metadata()?.len();
        let mut r = BufReader::new(file);
        let truncated =
            || Error::Index(format!("{} is cut short or claims more than it holds", path.display()));
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic)?;
        if &magic != FILE_MAGIC {
            return Err(Error::Index(format!("{} is not a wajah index file", path.display())));
        }
        let mut u64b = [0u8; 8];
        r.read_exact(&mut u64b)?;
        let dim = u64::from_le_bytes(u64b);
        r.read_exact(&mut u64b)?;
        let count = u64::from_le_bytes(u64b);
        if dim == 0 || dim > 65_536 {
            return Err(Error::Index(format!("index dimension {dim} is implausible")));
        }
        left = left.saturating_sub(24);
        // Every entry takes at least its id length (4 bytes) and its vector.
        let vector_bytes = dim * 4;
        if count > left / (4 + vector_bytes) {
            return Err(truncated());
        }
        let mut entries = Vec::with_capacity(count as usize);
        let mut vec = vec![0u8; vector_bytes as usize];
        for _ in 0..count {
            let mut len = [0u8; 4];
            r.read_exact(&mut len)?;
            let len = u64::from(u32::from_le_bytes(len));
            left = left.checked_sub(4 + len + vector_bytes).ok_or_else(truncated)?;
            let mut name = vec![0u8; len as usize];
            r.read_exact(&mut name)?;
            r.read_exact(&mut vec)?;
            let subject =
                String::from_utf8(name).map_err(|_| Error::Index("subject id is not UTF-8".into()))?;
            entries.push((subject, Embedding::from_le_bytes(&vec)?));
        }
        let mut index = Self::new(dim as usize, config)?;
        index.insert_many(entries)?;
        Ok(index)
    }
}
