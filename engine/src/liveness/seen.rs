//! Memory of the frames of accepted liveness sessions, so that they cannot be sent again.

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::similarity::dot;

/// What is kept of one accepted frame: the sha256 of its bytes and the 28x28 appearance descriptor
/// of its aligned face (enough to know a re-encoded copy; not enough to recognise anyone).
struct Seen {
    sha256: String,
    appearance: Vec<f32>,
}

/// The frames of the last `capacity` accepted frames, in memory only (never stored, gone on
/// restart), oldest forgotten first.
pub struct SeenFrames {
    capacity: usize,
    frames: Mutex<VecDeque<Seen>>,
}

impl SeenFrames {
    /// An empty memory for `capacity` frames.
    pub fn new(capacity: usize) -> Self {
        Self { capacity, frames: Mutex::new(VecDeque::new()) }
    }

    /// Frames remembered.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a frame with these bytes, or with an aligned face at least `max_same` similar, was
    /// accepted before.
    pub fn contains(&self, sha256: &str, appearance: &[f32], max_same: f32) -> bool {
        self.lock().iter().any(|s| {
            s.sha256 == sha256
                || (s.appearance.len() == appearance.len() && dot(&s.appearance, appearance) >= max_same)
        })
    }

    /// Remembers the frames of an accepted session.
    pub fn remember<'a>(&self, frames: impl IntoIterator<Item = (&'a str, &'a [f32])>) {
        let mut all = self.lock();
        for (sha256, appearance) in frames {
            all.push_back(Seen { sha256: sha256.to_string(), appearance: appearance.to_vec() });
        }
        while all.len() > self.capacity {
            all.pop_front();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Seen>> {
        // A panic while holding the lock leaves a consistent deque: use it.
        self.frames.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Default for SeenFrames {
    /// Room for 4096 frames (about 1000 sessions, 13 MB).
    fn default() -> Self {
        Self::new(4096)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_by_bytes_or_appearance_and_forgets_the_oldest() {
        let seen = SeenFrames::new(2);
        let (a, b, c) = (vec![1.0, 0.0], vec![0.0, 1.0], vec![0.6, 0.8]);
        seen.remember([("aa", a.as_slice()), ("bb", b.as_slice())]);
        assert!(seen.contains("aa", &c, 0.99));
        assert!(seen.contains("zz", &[0.999, 0.0447], 0.99));
        assert!(!seen.contains("zz", &c, 0.99));
        seen.remember([("cc", c.as_slice())]);
        assert_eq!(seen.len(), 2);
        assert!(!seen.contains("aa", &[0.0, 0.0], 0.99), "the oldest frame is forgotten");
    }
}
