//! Liveness by challenge: the citizen is asked for a random sequence of head poses (look straight,
//! then turn left, turn right, look up in some order) and sends one frame per step.
//!
//! The frames are live when, all together:
//! - each frame's head pose reached its step, measured against the straight frame;
//! - every frame shows the person of the straight frame (score at `min_frame_similarity` and at
//!   the match threshold or above);
//! - the frames are distinct captures: no two with the same bytes or the same aligned face, and
//!   none seen in an earlier accepted session ([`SeenFrames`]);
//! - the motion is not that of a flat picture: in every moved frame the nose moves against the
//!   eyes and mouth, the way the step turns, by at least `min_parallax` eye distances
//!   ([`nose_shift`]), and no homography of the straight frame's aligned face explains the moved
//!   face's pixels to `max_plane_fit` ([`plane_fit`]);
//! - the straight frame passes the selfie capture checks of the [`CaptureMode`];
//! - no [`PresentationAttackDetector`] plugged into the engine calls a frame an attack.
//!
//! What this stops: one photo shown or moved in front of the camera (printed, on a screen, tilted
//! or turned), another person's face in one of the frames, frames sent twice. What it does not
//! stop: a video of the person making the same moves, photos of the person at each pose shown in
//! order, 3D masks, or frames injected into the app; those need a trained PAD model and device
//! attestation.

mod parallax;
mod plane;
mod seen;
mod thresholds;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::analysis::FaceAnalysis;
use crate::detect::Face;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::occlusion::appearance;
use crate::pose::HeadPose;
use crate::quality::{CaptureMode, QualityIssue};
use crate::similarity::dot;

pub use parallax::nose_shift;
pub use plane::{FacePatch, plane_fit};
pub use seen::{SameFrame, SeenFrames};
pub use thresholds::LivenessThresholds;

/// One pose asked of the citizen. Left and right are the citizen's own: turning to their left
/// moves the nose towards the photo's right (yaw > 0) in a camera photo, which is not mirrored.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Look at the camera.
    Straight,
    /// Turn the head to one's own left.
    TurnLeft,
    /// Turn the head to one's own right.
    TurnRight,
    /// Raise the chin. (Lowering it is not asked: five landmarks measure it too weakly.)
    LookUp,
}

impl Step {
    /// Every step.
    pub const ALL: [Step; 4] = [Step::Straight, Step::TurnLeft, Step::TurnRight, Step::LookUp];

    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Straight => "straight",
            Step::TurnLeft => "turn_left",
            Step::TurnRight => "turn_right",
            Step::LookUp => "look_up",
        }
    }

    /// The parallax of a frame for this step: the nose shift along the direction the step turns
    /// the head (`None` for the straight step).
    pub fn parallax(self, shift: [f32; 2]) -> Option<f32> {
        match self {
            Step::Straight => None,
            Step::TurnLeft => Some(shift[0]),
            Step::TurnRight => Some(-shift[0]),
            Step::LookUp => Some(-shift[1]),
        }
    }

    /// Whether `pose` reaches this step, with `straight` the pose of the challenge's straight frame.
    pub fn reached(self, pose: &HeadPose, straight: &HeadPose, t: &LivenessThresholds) -> bool {
        let (dyaw, dpitch) = (pose.yaw_deg - straight.yaw_deg, pose.pitch_deg - straight.pitch_deg);
        match self {
            Step::Straight => {
                pose.yaw_deg.abs() <= t.straight_max_deg && pose.pitch_deg.abs() <= t.straight_max_deg
            }
            Step::TurnLeft => dyaw >= t.turn_min_yaw_deg,
            Step::TurnRight => -dyaw >= t.turn_min_yaw_deg,
            Step::LookUp => dpitch >= t.look_up_min_pitch_deg,
        }
    }
}

impl std::str::FromStr for Step {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Step::ALL
            .into_iter()
            .find(|step| step.as_str() == s)
            .ok_or_else(|| format!("step {s:?} is not one of straight, turn_left, turn_right, look_up"))
    }
}

/// The steps of a new challenge: straight, then three moves, each different from the one before
/// (12 orders), chosen by `entropy` (which must come from a CSPRNG).
pub fn challenge_steps(entropy: [u8; 8]) -> Vec<Step> {
    let moves = [Step::TurnLeft, Step::TurnRight, Step::LookUp];
    let mut steps = vec![Step::Straight];
    let mut previous: Option<Step> = None;
    for (i, byte) in entropy.iter().take(3).enumerate() {
        let choices: Vec<Step> = moves.into_iter().filter(|m| Some(*m) != previous).collect();
        // 255 is dropped so that 0..=254 splits evenly into 3 or 2; the spare bytes replace it.
        let b = if *byte == 255 { entropy[3 + i] % 254 } else { *byte };
        let next = choices[usize::from(b) % choices.len()];
        steps.push(next);
        previous = Some(next);
    }
    steps
}

/// Why frames were found not live.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LivenessReason {
    /// A frame's head pose did not reach its step.
    PoseNotReached,
    /// A frame shows someone other than the straight frame.
    IdentityMismatch,
    /// Two frames are the same capture (same bytes or the same aligned face).
    IdenticalFrames,
    /// A frame was already sent in an earlier accepted session.
    ReplayedFrames,
    /// The head moved like a flat picture.
    PlanarMotion,
    /// The straight frame fails the selfie capture checks (its problems are in the report).
    FrontalCaptureRejected,
    /// A presentation-attack detector called a frame an attack.
    PresentationAttack,
}

impl LivenessReason {
    /// Every reason, in report order.
    pub const ALL: [LivenessReason; 7] = [
        LivenessReason::PoseNotReached,
        LivenessReason::IdentityMismatch,
        LivenessReason::IdenticalFrames,
        LivenessReason::ReplayedFrames,
        LivenessReason::PlanarMotion,
        LivenessReason::FrontalCaptureRejected,
        LivenessReason::PresentationAttack,
    ];

    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            LivenessReason::PoseNotReached => "pose_not_reached",
            LivenessReason::IdentityMismatch => "identity_mismatch",
            LivenessReason::IdenticalFrames => "identical_frames",
            LivenessReason::ReplayedFrames => "replayed_frames",
            LivenessReason::PlanarMotion => "planar_motion",
            LivenessReason::FrontalCaptureRejected => "frontal_capture_rejected",
            LivenessReason::PresentationAttack => "presentation_attack",
        }
    }
}

/// Where a trained presentation-attack-detection model plugs in (none ships with wajah: no model
/// with usable weights and licence is available). Called on every frame's analysis.
pub trait PresentationAttackDetector: Send + Sync {
    /// Name for reports.
    fn name(&self) -> &str;

    /// Probability (0-1) that the frame is a presentation attack; 0.5 and above counts as one.
    ///
    /// # Errors
    /// [`Error::Inference`] when the model fails.
    fn attack_probability(&self, frame: &FaceAnalysis) -> Result<f32>;
}

/// What was measured on one frame.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameReport {
    /// The step this frame answers.
    pub step: Step,
    /// Whether its pose reached the step.
    pub reached: bool,
    /// Head pose.
    pub pose: HeadPose,
    /// The face used.
    pub face: Face,
    /// Score against the straight frame (1 for the straight frame itself).
    pub identity_score: f32,
    /// Nose parallax against the straight frame along the step's turn, in eye distances (absent
    /// for the straight step).
    pub parallax: Option<f32>,
    /// Correlation of its face with the straight frame's after the best homography (absent for the
    /// straight step, or when the faces have no texture to correlate).
    pub plane_fit: Option<f32>,
    /// Capture quality, 0-100.
    pub quality_score: u8,
}

/// The answer for a challenge's frames.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LivenessReport {
    /// True when no reason was found.
    pub live: bool,
    /// Why not, each once, in [`LivenessReason::ALL`] order.
    pub reasons: Vec<LivenessReason>,
    /// The straight frame's capture problems that refuse it in the mode used.
    pub frontal_problems: Vec<QualityIssue>,
    /// One per frame, in step order.
    pub frames: Vec<FrameReport>,
}

/// The report and the analysis of the straight frame (whose template a verification compares).
pub struct Liveness {
    /// The answer.
    pub report: LivenessReport,
    /// The straight frame's analysis.
    pub frontal: FaceAnalysis,
    /// sha256, appearance descriptor and pose of every frame, to remember an accepted session by.
    pub fingerprints: Vec<(String, Vec<f32>, HeadPose)>,
}

impl Liveness {
    /// Remembers this session's frames in `seen` (call once it is accepted).
    pub fn remember_in(&self, seen: &SeenFrames) {
        seen.remember(self.fingerprints.iter().map(|(s, a, p)| (s.as_str(), a.as_slice(), *p)));
    }
}

impl Engine {
    /// Checks the `frames` (photo bytes, one per step, in order) sent for a challenge's `steps`.
    /// Frames are analysed in parallel. `seen` holds the frames of earlier accepted sessions.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the steps do not start with [`Step::Straight`] or the frame
    /// count differs from the step count; as [`Engine::analyze`] for each frame.
    pub fn check_liveness(
        &self,
        steps: &[Step],
        frames: &[&[u8]],
        mode: CaptureMode,
        seen: Option<&SeenFrames>,
    ) -> Result<Liveness> {
        if steps.first() != Some(&Step::Straight) {
            return Err(Error::InvalidArgument("a challenge starts with the straight step".into()));
        }
        if frames.len() != steps.len() {
            return Err(Error::InvalidArgument(format!(
                "the challenge has {} steps but {} frames were sent",
                steps.len(),
                frames.len()
            )));
        }
        // Only the straight frame is held to the capture checks; the others need pose and template.
        let policy = self.config().face_policy;
        let analyses: Vec<FaceAnalysis> = frames
            .par_iter()
            .enumerate()
            .map(|(k, bytes)| self.analyze_checked(bytes, policy, self.config().accuracy, k == 0))
            .collect::<Result<_>>()?;
        let t = self.config().liveness;
        let fingerprints: Vec<(String, Vec<f32>, HeadPose)> = analyses
            .iter()
            .map(|a| (a.photo_sha256.clone(), appearance(a.aligned.image()), a.quality.pose))
            .collect();
        let mut reasons = Vec::new();
        let mut reason = |r: LivenessReason| {
            if !reasons.contains(&r) {
                reasons.push(r);
            }
        };

        let frontal = &analyses[0];
        let straight = frontal.quality.pose;
        let frontal_patch = FacePatch::of(frontal.aligned.image());
        let mut frames_out = Vec::with_capacity(steps.len());
        for (k, (step, a)) in steps.iter().zip(&analyses).enumerate() {
            let reached = step.reached(&a.quality.pose, &straight, &t);
            let identity_score = frontal.template.similarity(&a.template)?.0;
            let shift = if k > 0 { nose_shift(&frontal.face, &a.face).unwrap_or_default() } else { [0.0; 2] };
            let parallax = step.parallax(shift);
            let plane_fit = match (k, &frontal_patch, FacePatch::of(a.aligned.image())) {
                (1.., Some(f), Some(m)) => plane_fit(f, &m),
                _ => None,
            };
            if !reached {
                reason(LivenessReason::PoseNotReached);
            }
            if identity_score < t.min_frame_similarity.max(self.threshold()) {
                reason(LivenessReason::IdentityMismatch);
            }
            if parallax.is_some_and(|p| p < t.min_parallax) || plane_fit.is_some_and(|f| f >= t.max_plane_fit)
            {
                reason(LivenessReason::PlanarMotion);
            }
            frames_out.push(FrameReport {
                step: *step,
                reached,
                pose: a.quality.pose,
                face: a.face,
                identity_score,
                parallax,
                plane_fit,
                quality_score: a.quality.quality_score,
            });
        }
        let same_frame = SameFrame {
            appearance: t.max_same_face,
            close_appearance: t.max_seen_face,
            pose_deg: t.seen_pose_deg,
        };
        for (i, (sha_i, app_i, pose_i)) in fingerprints.iter().enumerate() {
            let same = fingerprints[i + 1..]
                .iter()
                .any(|(sha_j, app_j, _)| sha_i == sha_j || dot(app_i, app_j) >= t.max_same_face);
            if same {
                reason(LivenessReason::IdenticalFrames);
            }
            if seen.is_some_and(|s| s.contains(sha_i, app_i, pose_i, same_frame)) {
                reason(LivenessReason::ReplayedFrames);
            }
        }
        let frontal_problems = mode.selfie_refusals(&frontal.quality, self.config().refuse_eyeglasses);
        if !frontal_problems.is_empty() {
            reason(LivenessReason::FrontalCaptureRejected);
        }
        for detector in &self.presentation_attack_detectors {
            for a in &analyses {
                if detector.attack_probability(a)? >= 0.5 {
                    reason(LivenessReason::PresentationAttack);
                }
            }
        }
        reasons.sort_by_key(|r| LivenessReason::ALL.iter().position(|x| x == r));
        let report =
            LivenessReport { live: reasons.is_empty(), reasons, frontal_problems, frames: frames_out };
        let frontal = analyses.into_iter().next().ok_or_else(|| Error::Inference("no frame".into()))?;
        Ok(Liveness { report, frontal, fingerprints })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_start_straight_and_never_repeat_a_move() {
        let mut orders = std::collections::HashSet::new();
        for seed in 0u64..2000 {
            let entropy = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes();
            let steps = challenge_steps(entropy);
            assert_eq!(steps.len(), 4);
            assert_eq!(steps[0], Step::Straight);
            assert!(steps.windows(2).all(|w| w[0] != w[1]), "{steps:?}");
            orders.insert(steps);
        }
        assert_eq!(orders.len(), 12);
    }

    #[test]
    fn steps_are_reached_relative_to_the_straight_frame() {
        let t = LivenessThresholds::default();
        let straight = HeadPose { yaw_deg: -4.0, pitch_deg: 2.0, roll_deg: 0.0 };
        let pose = |yaw_deg, pitch_deg| HeadPose { yaw_deg, pitch_deg, roll_deg: 0.0 };
        assert!(Step::Straight.reached(&straight, &straight, &t));
        assert!(Step::TurnLeft.reached(&pose(9.0, 0.0), &straight, &t));
        assert!(!Step::TurnLeft.reached(&pose(-20.0, 0.0), &straight, &t));
        assert!(Step::TurnRight.reached(&pose(-20.0, 0.0), &straight, &t));
        assert!(Step::LookUp.reached(&pose(0.0, 12.0), &straight, &t));
        assert!(!Step::LookUp.reached(&pose(0.0, -12.0), &straight, &t));
        assert_eq!("turn_left".parse::<Step>(), Ok(Step::TurnLeft));
        assert!("left".parse::<Step>().is_err());
    }

    #[test]
    fn thresholds_out_of_range_are_refused() {
        assert!(LivenessThresholds::default().validate().is_ok());
        let bad = LivenessThresholds { min_parallax: f32::NAN, ..LivenessThresholds::default() };
        assert!(bad.validate().is_err());
    }
}
