//! Capture checks on a detected, aligned face, before it is embedded.

use serde::{Deserialize, Serialize};

use crate::align::AlignedFace;
use crate::detect::{Face, landmark};

/// A capture problem.
#[non_exhaustive]
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
}

impl QualityIssue {
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
    /// Maximum |yaw| proxy: nose offset from the eye midline over the eye distance.
    pub max_yaw: f32,
    /// Maximum |roll| in degrees (eye line against horizontal).
    pub max_roll_deg: f32,
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
            max_yaw: 0.35,
            max_roll_deg: 25.0,
        }
    }
}

/// Measured capture properties and the problems found.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QualityReport {
    /// Distance between the eyes in the photo, pixels.
    pub interocular_px: f32,
    /// Detector score.
    pub detection_score: f32,
    /// Variance of the Laplacian over the central aligned face.
    pub sharpness: f32,
    /// Mean grey level over the central aligned face.
    pub brightness: f32,
    /// Nose offset from the eye midline over the eye distance (0 = frontal).
    pub yaw: f32,
    /// Eye-line angle in degrees (0 = level).
    pub roll_deg: f32,
    /// Problems found, empty for a good capture.
    pub issues: Vec<QualityIssue>,
}

impl QualityReport {
    /// True when no problem was found.
    pub fn is_good(&self) -> bool {
        self.issues.is_empty()
    }
}

/// Measures a face in a photo of `photo_size` (width, height).
pub fn assess(
    face: &Face,
    aligned: &AlignedFace,
    photo_size: (u32, u32),
    t: &QualityThresholds,
) -> QualityReport {
    let (re, le, nose) = (
        face.landmarks[landmark::RIGHT_EYE],
        face.landmarks[landmark::LEFT_EYE],
        face.landmarks[landmark::NOSE],
    );
    let iod = face.interocular();
    let (ex, ey) = (le.x - re.x, le.y - re.y);
    let roll_deg = ey.atan2(ex).to_degrees();
    // Nose position along the eye line, relative to the eye midpoint, over the eye distance.
    let (mx, my) = ((re.x + le.x) / 2.0, (re.y + le.y) / 2.0);
    let yaw = if iod > 0.0 { ((nose.x - mx) * ex + (nose.y - my) * ey) / (iod * iod) } else { 0.0 };
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
    flag(yaw.abs() > t.max_yaw, QualityIssue::HeadTurned);
    flag(roll_deg.abs() > t.max_roll_deg, QualityIssue::HeadTilted);
    QualityReport {
        interocular_px: iod,
        detection_score: face.score,
        sharpness,
        brightness,
        yaw,
        roll_deg,
        issues,
    }
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
