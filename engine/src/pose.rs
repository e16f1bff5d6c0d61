//! Head pose (yaw, pitch, roll in degrees) from the five landmarks.
//!
//! Method: a scaled-orthographic fit of a generic 3D five-point face to the landmarks. The model's
//! x/y are the ArcFace alignment template (frontal faces, so a frontal face reads 0/0/0); its depths
//! are average head proportions (eye centres and mouth corners behind the nose tip by about 0.43 and
//! 0.37 of the eye distance). The 2x3 projection `M` minimising `sum |q - M P|^2` over the centred
//! points is solved in closed form, its rows are made orthonormal, and the rotation is read as
//! yaw (about the vertical axis), then pitch, then roll.
//!
//! The raw pitch of people looking at the camera is not 0: YuNet puts the nose point lower between
//! eyes and mouth than the template does, so the median over the testkit's 100 identity photos
//! read -14 degrees (quartiles -17 and -9). That median, [`NEUTRAL_PITCH_DEG`], is taken off.
//!
//! Signs, as seen in the photo: yaw > 0 when the nose moves to the photo's right, pitch > 0 when the
//! face looks up, roll > 0 when the eye line turns clockwise (the left eye, on the photo's right,
//! sits lower).

use serde::{Deserialize, Serialize};

use crate::detect::Point;

/// Head rotation in degrees (signs in the module docs).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HeadPose {
    /// Left/right turn; > 0 towards the photo's right.
    pub yaw_deg: f32,
    /// Up/down; > 0 looking up.
    pub pitch_deg: f32,
    /// In-plane tilt; > 0 clockwise in the photo.
    pub roll_deg: f32,
}

/// The generic face in model units (x to the photo's right, y up, z towards the camera), in the
/// landmark order of [`crate::landmark`]: right eye, left eye, nose tip, right and left mouth corner.
/// x/y: the ArcFace template scaled to an eye distance of 300; z: average depths behind the nose tip.
const MODEL: [[f64; 3]; 5] = [
    [-150.0, 170.0, -130.0],
    [150.0, 170.0, -130.0],
    [0.0, 0.0, 0.0],
    [-124.0, -177.0, -110.0],
    [124.0, -177.0, -110.0],
];

/// The raw pitch, in degrees, of a face looking at the camera (module docs).
pub const NEUTRAL_PITCH_DEG: f32 = -14.0;

/// Head pose of a face from its five landmarks (photo pixels); 0/0/0 for degenerate landmarks.
pub fn head_pose(landmarks: &[Point; 5]) -> HeadPose {
    fit(landmarks)
        .map_or_else(HeadPose::default, |p| HeadPose { pitch_deg: p.pitch_deg - NEUTRAL_PITCH_DEG, ..p })
}

/// The rotation of the generic face that best explains the landmarks; `None` when degenerate.
fn fit(landmarks: &[Point; 5]) -> Option<HeadPose> {
    // Photo points with y up, centred; model points centred.
    let q: Vec<[f64; 2]> = landmarks.iter().map(|p| [f64::from(p.x), -f64::from(p.y)]).collect();
    let qm = [q.iter().map(|p| p[0]).sum::<f64>() / 5.0, q.iter().map(|p| p[1]).sum::<f64>() / 5.0];
    let mut pm = [0.0; 3];
    for p in &MODEL {
        for k in 0..3 {
            pm[k] += p[k] / 5.0;
        }
    }
    // A = sum q P^T (2x3), B = sum P P^T (3x3).
    let mut a = [[0.0f64; 3]; 2];
    let mut b = [[0.0f64; 3]; 3];
    for (qi, pi) in q.iter().zip(&MODEL) {
        let qc = [qi[0] - qm[0], qi[1] - qm[1]];
        let pc = [pi[0] - pm[0], pi[1] - pm[1], pi[2] - pm[2]];
        for r in 0..3 {
            for c in 0..3 {
                b[r][c] += pc[r] * pc[c];
            }
            a[0][r] += qc[0] * pc[r];
            a[1][r] += qc[1] * pc[r];
        }
    }
    let binv = invert3(&b)?;
    let mul = |row: &[f64; 3]| -> [f64; 3] {
        [0, 1, 2].map(|c| row[0] * binv[0][c] + row[1] * binv[1][c] + row[2] * binv[2][c])
    };
    let (m0, m1) = (mul(&a[0]), mul(&a[1]));
    let (r0, r1) = (unit(m0)?, unit(m1)?);
    // Split the non-orthogonality evenly between the two rows, then normalise again.
    let e = dot(r0, r1) / 2.0;
    let r0n = unit([0, 1, 2].map(|k| r0[k] - e * r1[k]))?;
    let r1 = unit([0, 1, 2].map(|k| r1[k] - e * r0[k]))?;
    let r0 = r0n;
    let r2 = [r0[1] * r1[2] - r0[2] * r1[1], r0[2] * r1[0] - r0[0] * r1[2], r0[0] * r1[1] - r0[1] * r1[0]];
    // R = Rz(roll) Rx(pitch) Ry(yaw): its third row is (-cos p sin y, -sin p, cos p cos y).
    let pitch = (-r2[1]).clamp(-1.0, 1.0).asin();
    let yaw = (-r2[0]).atan2(r2[2]);
    let roll_ccw = (-r0[1]).atan2(r1[1]);
    Some(HeadPose {
        yaw_deg: yaw.to_degrees() as f32,
        pitch_deg: pitch.to_degrees() as f32,
        roll_deg: (-roll_ccw.to_degrees()) as f32,
    })
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn unit(v: [f64; 3]) -> Option<[f64; 3]> {
    let n = dot(v, v).sqrt();
    (n > 1e-12 && n.is_finite()).then(|| v.map(|x| x / n))
}

fn invert3(m: &[[f64; 3]; 3]) -> Option<[[f64; 3]; 3]> {
    let c = |r0: usize, c0: usize, r1: usize, c1: usize| m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0];
    let cof = [
        [c(1, 1, 2, 2), -c(1, 0, 2, 2), c(1, 0, 2, 1)],
        [-c(0, 1, 2, 2), c(0, 0, 2, 2), -c(0, 0, 2, 1)],
        [c(0, 1, 1, 2), -c(0, 0, 1, 2), c(0, 0, 1, 1)],
    ];
    let det = m[0][0] * cof[0][0] + m[0][1] * cof[0][1] + m[0][2] * cof[0][2];
    if det.abs() < 1e-12 || !det.is_finite() {
        return None;
    }
    // The inverse is the transposed cofactor matrix over the determinant.
    Some([0, 1, 2].map(|r| [0, 1, 2].map(|col| cof[col][r] / det)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rotates the model by known angles (yaw, then pitch, then roll, as the module docs define
    /// them), projects it orthographically into a photo and reads the angles back.
    fn project(yaw: f64, pitch: f64, roll: f64) -> [Point; 5] {
        let (y, p, r) = (yaw.to_radians(), pitch.to_radians(), -roll.to_radians());
        MODEL.map(|v| {
            // Ry, then Rx, then Rz (y up, z to the camera).
            let (x1, z1) = (v[0] * y.cos() + v[2] * y.sin(), -v[0] * y.sin() + v[2] * y.cos());
            let y1 = v[1];
            let (y2, _z2) = (y1 * p.cos() + z1 * p.sin(), -y1 * p.sin() + z1 * p.cos());
            let (x3, y3) = (x1 * r.cos() - y2 * r.sin(), x1 * r.sin() + y2 * r.cos());
            Point { x: (400.0 + 0.3 * x3) as f32, y: (300.0 - 0.3 * y3) as f32 }
        })
    }

    #[test]
    fn known_rotations_are_read_back() {
        for (yaw, pitch, roll) in
            [(0.0, 0.0, 0.0), (30.0, 0.0, 0.0), (-25.0, 10.0, 0.0), (0.0, -20.0, 15.0), (20.0, 15.0, -10.0)]
        {
            let pose = fit(&project(yaw, pitch, roll)).expect("fits");
            assert_eq!(head_pose(&project(yaw, pitch, roll)).pitch_deg, pose.pitch_deg - NEUTRAL_PITCH_DEG);
            for (got, want) in [(pose.yaw_deg, yaw), (pose.pitch_deg, pitch), (pose.roll_deg, roll)] {
                assert!((f64::from(got) - want).abs() < 0.5, "{pose:?} for {yaw}/{pitch}/{roll}");
            }
        }
    }

    #[test]
    fn signs_follow_the_photo() {
        // The nose moved to the photo's right: yaw > 0. The left eye (photo right) lower: roll > 0.
        let mut p = project(0.0, 0.0, 0.0);
        p[2].x += 15.0;
        assert!(head_pose(&p).yaw_deg > 5.0);
        // Turned clockwise in the photo (y down): the left eye, on the photo's right, goes down.
        let (c, s) = (10f32.to_radians().cos(), 10f32.to_radians().sin());
        let p = project(0.0, 0.0, 0.0).map(|q| {
            let (x, y) = (q.x - 400.0, q.y - 300.0);
            Point { x: 400.0 + x * c - y * s, y: 300.0 + x * s + y * c }
        });
        assert!(p[1].y > p[0].y);
        assert!((head_pose(&p).roll_deg - 10.0).abs() < 0.5, "{:?}", head_pose(&p));
        let mut p = project(0.0, 0.0, 0.0);
        p[2].y -= 10.0;
        assert!(head_pose(&p).pitch_deg > head_pose(&project(0.0, 0.0, 0.0)).pitch_deg + 5.0);
    }

    #[test]
    fn degenerate_landmarks_read_frontal() {
        assert_eq!(head_pose(&[Point::default(); 5]), HeadPose::default());
    }
}
