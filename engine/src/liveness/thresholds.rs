//! [`LivenessThresholds`]: the limits of the liveness checks, validated before use.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Limits of the liveness checks (calibration in README.md, "Liveness").
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LivenessThresholds {
    /// A straight frame has |yaw| and |pitch| at most this, in degrees.
    pub straight_max_deg: f32,
    /// A turn moves the yaw at least this far from the straight frame, in degrees.
    pub turn_min_yaw_deg: f32,
    /// Looking up raises the pitch at least this far above the straight frame, in degrees.
    pub look_up_min_pitch_deg: f32,
    /// Every moved frame shows at least this nose parallax, in eye distances.
    pub min_parallax: f32,
    /// No moved frame's face is explained by one homography of the straight frame's this well
    /// (correlation after the best homography, [`plane_fit`]).
    pub max_plane_fit: f32,
    /// Two aligned faces at least this similar (appearance descriptor) are the same capture.
    pub max_same_face: f32,
    /// A frame at least this similar to one of an earlier accepted session, at the same pose
    /// (within `seen_pose_deg`), is that frame re-encoded. Real sessions of one person on one
    /// background reached 0.881 here.
    pub max_seen_face: f32,
    /// See `max_seen_face`, in degrees per angle.
    pub seen_pose_deg: f32,
    /// Every frame scores at least this against the straight frame: one person, seconds apart,
    /// so stricter than the match threshold (real sequences: 0.53 and above).
    pub min_frame_similarity: f32,
}

impl Default for LivenessThresholds {
    fn default() -> Self {
        Self {
            straight_max_deg: 15.0,
            turn_min_yaw_deg: 8.0,
            look_up_min_pitch_deg: 4.0,
            min_parallax: 0.02,
            max_plane_fit: 0.98,
            max_same_face: 0.97,
            max_seen_face: 0.9,
            seen_pose_deg: 1.5,
            min_frame_similarity: 0.45,
        }
    }
}

impl LivenessThresholds {
    /// Checks every limit.
    ///
    /// # Errors
    /// [`Error::Config`] naming the first bad limit.
    pub fn validate(&self) -> Result<()> {
        for (name, v, max) in [
            ("straight_max_deg", self.straight_max_deg, 90.0),
            ("turn_min_yaw_deg", self.turn_min_yaw_deg, 90.0),
            ("look_up_min_pitch_deg", self.look_up_min_pitch_deg, 90.0),
            ("min_parallax", self.min_parallax, 1.0),
            ("max_plane_fit", self.max_plane_fit, 1.0),
            ("max_same_face", self.max_same_face, 1.0),
            ("max_seen_face", self.max_seen_face, 1.0),
            ("seen_pose_deg", self.seen_pose_deg, 90.0),
            ("min_frame_similarity", self.min_frame_similarity, 1.0),
        ] {
            if !(0.0..=max).contains(&v) {
                return Err(Error::Config(format!("liveness.{name} = {v} is outside 0..={max}")));
            }
        }
        Ok(())
    }
}
