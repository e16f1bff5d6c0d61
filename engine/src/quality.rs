//! Capture checks on a detected, aligned face, before it is embedded.

use serde::{Deserialize, Serialize};

use crate::align::AlignedFace;
use crate::detect::Face;
use crate::occlusion::{Occlusion, Occlusions};
use crate::pose::{HeadPose, head_pose};

/// A capture problem (not `non_exhaustive`: every user of the list, such as the service's messages,
/// must handle a new one).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QualityIssue {
    /// Eyes closer together than `min_interocular_px`.
    FaceTooSmall,
    /// The face box runs off the photo.
    FaceCutOff,
    /// The detector is unsure this is a face.
    LowDetectionScore,
    /// The face is out of focus or motion-blurred.
    Blurry,
    /// The face is underexposed.
    TooDark,
    /// The face is overexposed.
    TooBright,
    /// The head is turned left or right.
    HeadTurned,
    /// The head is tilted sideways.
    HeadTilted,
    /// The head is raised or lowered.
    HeadPitched,
    /// Clear glasses are worn.
    Eyeglasses,
    /// Dark glasses hide the eyes.
    Sunglasses,
    /// A mask covers nose and mouth.
    Mask,
    /// A hand, hair or an object covers the eyes, nose or mouth.
    FaceOccluded,
    /// The selfie is a photo of the enrolled ID photo (held up to the camera or re-photographed).
    PhotoOfIdPhoto,
}

impl QualityIssue {
    /// Every issue, in report order.
    pub const ALL: [QualityIssue; 14] = [
        QualityIssue::FaceTooSmall,
        QualityIssue::FaceCutOff,
        QualityIssue::LowDetectionScore,
        QualityIssue::Blurry,
        QualityIssue::TooDark,
        QualityIssue::TooBright,
        QualityIssue::HeadTurned,
        QualityIssue::HeadTilted,
        QualityIssue::HeadPitched,
        QualityIssue::Eyeglasses,
        QualityIssue::Sunglasses,
        QualityIssue::Mask,
        QualityIssue::FaceOccluded,
        QualityIssue::PhotoOfIdPhoto,
    ];

    /// Stable snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            QualityIssue::FaceTooSmall => "face_too_small",
            QualityIssue::FaceCutOff => "face_cut_off",
            QualityIssue::LowDetectionScore => "low_detection_score",
            QualityIssue::Blurry => "blurry",
            QualityIssue::TooDark => "too_dark",
            QualityIssue::TooBright => "too_bright",
            QualityIssue::HeadTurned => "head_turned",
            QualityIssue::HeadTilted => "head_tilted",
            QualityIssue::HeadPitched => "head_pitched",
            QualityIssue::Eyeglasses => "eyeglasses",
            QualityIssue::Sunglasses => "sunglasses",
            QualityIssue::Mask => "mask",
            QualityIssue::FaceOccluded => "face_occluded",
            QualityIssue::PhotoOfIdPhoto => "photo_of_id_photo",
        }
    }

    /// The issue an occlusion raises.
    pub fn occlusion(o: Occlusion) -> Self {
        match o {
            Occlusion::Eyeglasses => QualityIssue::Eyeglasses,
            Occlusion::Sunglasses => QualityIssue::Sunglasses,
            Occlusion::Mask => QualityIssue::Mask,
            Occlusion::FaceOccluded => QualityIssue::FaceOccluded,
        }
    }

    /// Whether a selfie with this problem is refused in registration mode. Every problem is;
    /// `eyeglasses` only with `refuse_eyeglasses` (the engine setting, on by default).
    pub fn refuses_selfie(self, refuse_eyeglasses: bool) -> bool {
        self != QualityIssue::Eyeglasses || refuse_eyeglasses
    }

    /// Whether an ID photo (the enrolment) may have this problem. An enrolment is held to the ID-photo
    /// rules: no sunglasses, no mask, nothing over the face. Clear glasses and the other photographic
    /// problems are reported but do not stop an ID photo being enrolled.
    pub fn refuses_id_photo(self) -> bool {
        matches!(self, QualityIssue::Sunglasses | QualityIssue::Mask | QualityIssue::FaceOccluded)
    }
}

/// What the capture checks do to a request.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptureMode {
    /// The IKD registration rule: a non-compliant capture is refused before any comparison. A
    /// selfie must have no problem that [`QualityIssue::refuses_selfie`] names; an ID photo
    /// (enrolment) none that [`QualityIssue::refuses_id_photo`] names.
    #[default]
    Registration,
    /// Problems are reported beside the answer; nothing is refused for them.
    Check,
}

impl std::str::FromStr for CaptureMode {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "registration" => Ok(CaptureMode::Registration),
            "check" => Ok(CaptureMode::Check),
            other => Err(format!("capture mode {other:?} is not `registration` or `check`")),
        }
    }
}

impl CaptureMode {
    /// The problems of a selfie that refuse it in this mode (`refuse_eyeglasses`: the engine setting).
    pub fn selfie_refusals(self, report: &QualityReport, refuse_eyeglasses: bool) -> Vec<QualityIssue> {
        match self {
            CaptureMode::Registration => {
                report.issues.iter().copied().filter(|i| i.refuses_selfie(refuse_eyeglasses)).collect()
            }
            CaptureMode::Check => Vec::new(),
        }
    }

    /// The problems of an ID photo (an enrolment) that refuse it in this mode.
    pub fn id_photo_refusals(self, report: &QualityReport) -> Vec<QualityIssue> {
        match self {
            CaptureMode::Registration => {
                report.issues.iter().copied().filter(|i| i.refuses_id_photo()).collect()
            }
            CaptureMode::Check => Vec::new(),
        }
    }
}

/// Limits for the capture checks.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QualityThresholds {
    /// Minimum distance between the eyes in the photo, in pixels.
    pub min_interocular_px: f32,
    /// Faces the detector scored below this are not used to make templates (a photo with only
    /// such faces is `NoFace`). Whether a detection is a human face at all is decided by the face
    /// confirmer (MTCNN's O-Net): the detector scores a dog's face 0.82-0.87, like some real ones.
    pub min_face_score: f32,
    /// Below this detector score a face is flagged `low_detection_score`.
    pub min_detection_score: f32,
    /// Minimum variance of the Laplacian of the aligned face (grey levels squared).
    pub min_sharpness: f32,
    /// Minimum mean grey level of the aligned face.
    pub min_brightness: f32,
    /// Maximum mean grey level of the aligned face.
    pub max_brightness: f32,
    /// Maximum |yaw| in degrees (see [`crate::HeadPose`]).
    pub max_yaw_deg: f32,
    /// Maximum |pitch| in degrees.
    pub max_pitch_deg: f32,
    /// Maximum |roll| in degrees (eye line against horizontal).
    pub max_roll_deg: f32,
    /// Eyeglasses probability at or above which `eyeglasses` is flagged.
    pub max_eyeglasses: f32,
    /// Sunglasses probability at or above which `sunglasses` is flagged.
    pub max_sunglasses: f32,
    /// Mask probability at or above which `mask` is flagged.
    pub max_mask: f32,
    /// Other-occlusion probability at or above which `face_occluded` is flagged.
    pub max_face_occluded: f32,
    /// Cosine similarity to the enrolled template at or above which a selfie is flagged
    /// `photo_of_id_photo` when the ID photo's face patch is not at hand (enrolments made before
    /// it was kept): two live captures of one person rarely come this close.
    pub max_id_photo_similarity: f32,
    /// Plane fit ([`crate::plane_fit`]) of the selfie's face to the ID photo's at or above which
    /// the selfie is flagged `photo_of_id_photo`: one homography explains a photo of a photo, not a
    /// new capture.
    pub max_id_photo_plane_fit: f32,
}

impl QualityThresholds {
    /// Checks that every limit is a number in its range.
    ///
    /// # Errors
    /// [`crate::Error::Config`] naming the first bad limit.
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |name: &str, v: f32| crate::Error::Config(format!("quality.{name} = {v} is out of range"));
        for (name, v) in [
            ("max_eyeglasses", self.max_eyeglasses),
            ("max_sunglasses", self.max_sunglasses),
            ("max_mask", self.max_mask),
            ("max_face_occluded", self.max_face_occluded),
            ("min_face_score", self.min_face_score),
            ("min_detection_score", self.min_detection_score),
            ("max_id_photo_plane_fit", self.max_id_photo_plane_fit),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(bad(name, v));
            }
        }
        if !(-1.0..=1.0).contains(&self.max_id_photo_similarity) {
            return Err(bad("max_id_photo_similarity", self.max_id_photo_similarity));
        }
        for (name, v) in [
            ("max_yaw_deg", self.max_yaw_deg),
            ("max_pitch_deg", self.max_pitch_deg),
            ("max_roll_deg", self.max_roll_deg),
        ] {
            if !(0.0..=180.0).contains(&v) {
                return Err(bad(name, v));
            }
        }
        for (name, v) in [
            ("min_interocular_px", self.min_interocular_px),
            ("min_sharpness", self.min_sharpness),
            ("min_brightness", self.min_brightness),
            ("max_brightness", self.max_brightness),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(bad(name, v));
            }
        }
        Ok(())
    }

    /// The probability bar for `o`.
    pub fn occlusion(&self, o: Occlusion) -> f32 {
        match o {
            Occlusion::Eyeglasses => self.max_eyeglasses,
            Occlusion::Sunglasses => self.max_sunglasses,
            Occlusion::Mask => self.max_mask,
            Occlusion::FaceOccluded => self.max_face_occluded,
        }
    }
}

impl Default for QualityThresholds {
    fn default() -> Self {
        Self {
            min_interocular_px: 16.0,
            min_face_score: 0.75,
            min_detection_score: 0.9,
            min_sharpness: 15.0,
            min_brightness: 40.0,
            max_brightness: 220.0,
            max_yaw_deg: 30.0,
            max_pitch_deg: 25.0,
            max_roll_deg: 25.0,
            max_eyeglasses: 0.5,
            max_sunglasses: 0.5,
            max_mask: 0.5,
            max_face_occluded: 0.5,
            max_id_photo_similarity: 0.9,
            max_id_photo_plane_fit: 0.96,
        }
    }
}

/// Measured capture properties and the problems found.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QualityReport {
    /// One figure for the capture, 0 (unusable) to 100, in the spirit of ISO/IEC 29794-5: the
    /// product of the components' utilities (see [`quality_score`]).
    pub quality_score: u8,
    /// Distance between the eyes in the photo, pixels.
    pub interocular_px: f32,
    /// Detector score.
    pub detection_score: f32,
    /// Variance of the Laplacian over the central aligned face.
    pub sharpness: f32,
    /// Mean grey level over the central aligned face.
    pub brightness: f32,
    /// Head rotation in degrees.
    pub pose: HeadPose,
    /// Occlusion probabilities; absent when the occlusion model does not fit the recogniser.
    pub occlusion: Option<Occlusions>,
    /// Problems found, empty for a good capture.
    pub issues: Vec<QualityIssue>,
}

impl QualityReport {
    /// True when no problem was found.
    pub fn is_good(&self) -> bool {
        self.issues.is_empty()
    }

    /// Adds `issue` once.
    pub fn flag(&mut self, issue: QualityIssue) {
        if !self.issues.contains(&issue) {
            self.issues.push(issue);
        }
    }
}

/// Measures a face in a photo of `photo_size` (width, height); `occlusion` comes from the
/// [`crate::OcclusionModel`] when one fits the recogniser.
pub fn assess(
    face: &Face,
    aligned: &AlignedFace,
    photo_size: (u32, u32),
    occlusion: Option<Occlusions>,
    t: &QualityThresholds,
) -> QualityReport {
    let iod = face.interocular();
    let pose = head_pose(&face.landmarks);
    let (sharpness, brightness) = texture(aligned);

    let mut issues = Vec::new();
    let mut flag = |bad: bool, issue| {
        if bad {
            issues.push(issue);
        }
    };
    flag(iod < t.min_interocular_px, QualityIssue::FaceTooSmall);
    let (w, h) = (photo_size.0 as f32, photo_size.1 as f32);
    let b = &face.bbox;
    let margin = 0.1 * b.width.min(b.height);
    flag(
        b.x < -margin || b.y < -margin || b.x + b.width > w + margin || b.y + b.height > h + margin,
        QualityIssue::FaceCutOff,
    );
    flag(face.score < t.min_detection_score, QualityIssue::LowDetectionScore);
    flag(sharpness < t.min_sharpness, QualityIssue::Blurry);
    flag(brightness < t.min_brightness, QualityIssue::TooDark);
    flag(brightness > t.max_brightness, QualityIssue::TooBright);
    flag(pose.yaw_deg.abs() > t.max_yaw_deg, QualityIssue::HeadTurned);
    flag(pose.roll_deg.abs() > t.max_roll_deg, QualityIssue::HeadTilted);
    flag(pose.pitch_deg.abs() > t.max_pitch_deg, QualityIssue::HeadPitched);
    if let Some(o) = &occlusion {
        for kind in Occlusion::ALL {
            flag(o.get(kind) >= t.occlusion(kind), QualityIssue::occlusion(kind));
        }
    }
    let mut report = QualityReport {
        quality_score: 0,
        interocular_px: iod,
        detection_score: face.score,
        sharpness,
        brightness,
        pose,
        occlusion,
        issues,
    };
    report.quality_score = quality_score(&report, t);
    report
}

/// The 0-100 figure: 100 times the product of one utility (0-1) per component. Each utility is 1
/// where the component is comfortably good, falls linearly to 0 past its threshold, and so a capture
/// that fails a check scores low whatever else it does well:
/// - size: eye distance, 0 at half `min_interocular_px`, 1 from 60 px (ICAO asks for 90);
/// - detector confidence: 0 at 0.5, 1 from 0.95;
/// - sharpness: 0 at half `min_sharpness`, 1 from three times it;
/// - exposure: 1 inside the brightness limits pulled in by 20 grey levels, 0 at 20 past them;
/// - pose: per angle, 1 up to a third of its limit, 0 at 1.5 times it;
/// - occlusion: 1 minus the largest of the sunglasses, mask and other-occlusion probabilities,
///   and 1 minus half the eyeglasses probability (glasses hide less).
pub fn quality_score(r: &QualityReport, t: &QualityThresholds) -> u8 {
    let ramp = |v: f32, zero: f32, one: f32| {
        if one == zero { f32::from(u8::from(v >= one)) } else { ((v - zero) / (one - zero)).clamp(0.0, 1.0) }
    };
    let angle = |deg: f32, max: f32| 1.0 - ramp(deg.abs(), max / 3.0, 1.5 * max);
    let exposure = ramp(r.brightness, t.min_brightness - 20.0, t.min_brightness + 20.0)
        * (1.0 - ramp(r.brightness, t.max_brightness - 20.0, t.max_brightness + 20.0));
    let occlusion = r
        .occlusion
        .map_or(1.0, |o| (1.0 - o.sunglasses.max(o.mask).max(o.face_occluded)) * (1.0 - 0.5 * o.eyeglasses));
    let utilities = [
        ramp(r.interocular_px, t.min_interocular_px / 2.0, 60.0f32.max(t.min_interocular_px)),
        ramp(r.detection_score, 0.5, 0.95),
        ramp(r.sharpness, t.min_sharpness / 2.0, 3.0 * t.min_sharpness),
        exposure,
        angle(r.pose.yaw_deg, t.max_yaw_deg),
        angle(r.pose.pitch_deg, t.max_pitch_deg),
        angle(r.pose.roll_deg, t.max_roll_deg),
        occlusion,
    ];
    let product: f32 = utilities.iter().map(|u| if u.is_finite() { *u } else { 0.0 }).product();
    (100.0 * product).round().clamp(0.0, 100.0) as u8
}

/// (variance of the 4-neighbour Laplacian, mean grey) over the central half of the aligned crop.
fn texture(aligned: &AlignedFace) -> (f32, f32) {
    let img = aligned.image();
    let (w, h) = (img.width() as usize, img.height() as usize);
    let raw = img.as_raw();
    let grey = |x: usize, y: usize| {
        let o = (y * w + x) * 3;
        0.299 * f32::from(raw[o]) + 0.587 * f32::from(raw[o + 1]) + 0.114 * f32::from(raw[o + 2])
    };
    let (x0, x1, y0, y1) = (w / 4, 3 * w / 4, h / 4, 3 * h / 4);
    let (mut sum, mut lap_sum, mut lap_sq, mut n) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for y in y0.max(1)..y1.min(h.saturating_sub(1)) {
        for x in x0.max(1)..x1.min(w.saturating_sub(1)) {
            let c = grey(x, y);
            let lap = grey(x - 1, y) + grey(x + 1, y) + grey(x, y - 1) + grey(x, y + 1) - 4.0 * c;
            sum += f64::from(c);
            lap_sum += f64::from(lap);
            lap_sq += f64::from(lap) * f64::from(lap);
            n += 1.0;
        }
    }
    if n == 0.0 {
        return (0.0, 0.0);
    }
    let mean_lap = lap_sum / n;
    ((lap_sq / n - mean_lap * mean_lap) as f32, (sum / n) as f32)
}
