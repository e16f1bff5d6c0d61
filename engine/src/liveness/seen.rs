//! Memory of the frames of accepted liveness sessions, so that they cannot be sent again.

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::pose::HeadPose;
use crate::similarity::dot;

/// What is kept of one accepted frame: the sha256 of its bytes, the 28x28 appearance descriptor
/// of its aligned face and its head pose (enough to know a re-encoded copy; not enough to
/// recognise anyone).
struct Seen {
    sha256: String,
    appearance: Vec<f32>,
    pose: HeadPose,
}

/// When a frame counts as one seen before.
#[derive(Clone, Copy, Debug)]
pub struct SameFrame {
    /// Appearance at least this similar: the same capture, whatever the pose.
    pub appearance: f32,
    /// Appearance at least this similar with yaw, pitch and roll each within `pose_deg`: the same
    /// capture re-encoded (its face is found again a little differently).
    pub close_appearance: f32,
    /// See `close_appearance`, in degrees.
    pub pose_deg: f32,
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

    /// Whether a frame with these bytes, or the same face (see [`SameFrame`]), was accepted before.
    pub fn contains(&self, sha256: &str, appearance: &[f32], pose: &HeadPose, same: SameFrame) -> bool {
        self.lock().iter().any(|s| {
            if s.sha256 == sha256 {
                return true;
            }
            if s.appearance.len() != appearance.len() {
                return false;
            }
            let a = dot(&s.appearance, appearance);
            let near = (s.pose.yaw_deg - pose.yaw_deg).abs() <= same.pose_deg
                && (s.pose.pitch_deg - pose.pitch_deg).abs() <= same.pose_deg
                && (s.pose.roll_deg - pose.roll_deg).abs() <= same.pose_deg;
            a >= same.appearance || (near && a >= same.close_appearance)
        })
    }

    /// Remembers the frames of an accepted session.
    pub fn remember<'a>(&self, frames: impl IntoIterator<Item = (&'a str, &'a [f32], HeadPose)>) {
        let mut all = self.lock();
        for (sha256, appearance, pose) in frames {
            all.push_back(Seen { sha256: sha256.to_string(), appearance: appearance.to_vec(), pose });
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
    fn remembers_by_bytes_appearance_or_appearance_and_pose_and_forgets_the_oldest() {
        let seen = SeenFrames::new(2);
        let same = SameFrame { appearance: 0.99, close_appearance: 0.9, pose_deg: 1.5 };
        let (a, b, c) = (vec![1.0, 0.0], vec![0.0, 1.0], vec![0.6, 0.8]);
        let (p, q) = (HeadPose::default(), HeadPose { yaw_deg: 10.0, ..HeadPose::default() });
        seen.remember([("aa", a.as_slice(), p), ("bb", b.as_slice(), q)]);
        assert!(seen.contains("aa", &c, &p, same));
        assert!(seen.contains("zz", &[0.999, 0.0447], &q, same));
        // 0.95 like the first frame: the same capture only at the same pose.
        assert!(seen.contains("zz", &[0.95, 0.3122], &HeadPose { yaw_deg: 1.0, ..p }, same));
        assert!(!seen.contains("zz", &[0.95, 0.3122], &q, same));
        assert!(!seen.contains("zz", &c, &p, same));
        seen.remember([("cc", c.as_slice(), p)]);
        assert_eq!(seen.len(), 2);
        assert!(!seen.contains("aa", &[0.0, 0.0], &p, same), "the oldest frame is forgotten");
    }
}
