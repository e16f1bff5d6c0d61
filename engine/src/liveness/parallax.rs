//! Parallax: how far a face's nose moves against the plane of its eyes and mouth between two frames.
//!
//! The eyes and mouth corners of a face lie close to one plane; the nose tip stands about 0.4 eye
//! distances in front of it. Between two views of anything flat (a printed photo or a phone screen,
//! however it is moved, tilted or turned) every point moves by one homography. Four points fix a
//! homography, so the eyes and mouth corners of the first frame mapped onto those of the second
//! predict where a flat nose would be; a real head that turned puts it elsewhere, by about
//! `depth * sin(turn)`: 0.15 eye distances for a 20 degree turn, and in the direction of the turn.
//! The detected nose less the predicted one, in eye distances, is the shift; its component along
//! the asked turn is the parallax (landmark noise on a flat picture points any way).

use crate::detect::{Face, Point, landmark};

/// The four points that fix the plane, in landmark order.
const PLANE: [usize; 4] =
    [landmark::RIGHT_EYE, landmark::LEFT_EYE, landmark::RIGHT_MOUTH, landmark::LEFT_MOUTH];

/// Where the nose of `to` is against where a flat `from` would put it: (x to the photo's right,
/// y down) in eye distances of `to`; `None` when the four plane points of either face are
/// degenerate (no homography between them).
pub fn nose_shift(from: &Face, to: &Face) -> Option<[f32; 2]> {
    let eye = f64::from(to.interocular());
    if eye.is_nan() || eye <= 0.0 {
        return None;
    }
    let src = PLANE.map(|i| from.landmarks[i]);
    let dst = PLANE.map(|i| to.landmarks[i]);
    let h = homography(&src, &dst)?;
    let nose = from.landmarks[landmark::NOSE];
    let (x, y) = apply(&h, f64::from(nose.x), f64::from(nose.y))?;
    let seen = to.landmarks[landmark::NOSE];
    let shift = [((f64::from(seen.x) - x) / eye) as f32, ((f64::from(seen.y) - y) / eye) as f32];
    shift.iter().all(|v| v.is_finite()).then_some(shift)
}

/// The homography (row-major 3x3, last entry 1) taking the four `src` points onto `dst`.
fn homography(src: &[Point; 4], dst: &[Point; 4]) -> Option<[f64; 9]> {
    // Conditioned: each side's points centred and scaled to unit mean distance.
    let (ns, ps) = normalise(src)?;
    let (nd, pd) = normalise(dst)?;
    // h = (a b c; d e f; g h 1): u = (a x + b y + c) / (g x + h y + 1), likewise v.
    let mut m = [[0.0f64; 9]; 8];
    for k in 0..4 {
        let ([x, y], [u, v]) = (ps[k], pd[k]);
        m[2 * k] = [x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y, u];
        m[2 * k + 1] = [0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y, v];
    }
    let h = solve8(m)?;
    let hn = [h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], 1.0];
    // Undo the conditioning: H = Nd^-1 Hn Ns.
    let nd_inv = [1.0 / nd[0], 0.0, nd[1], 0.0, 1.0 / nd[0], nd[2], 0.0, 0.0, 1.0];
    let ns_m = [ns[0], 0.0, -ns[0] * ns[1], 0.0, ns[0], -ns[0] * ns[2], 0.0, 0.0, 1.0];
    let full = mul3(&mul3(&nd_inv, &hn), &ns_m);
    (full[8].abs() > 1e-12).then(|| full.map(|v| v / full[8]))
}

/// Centres and scales points; returns (scale, centre x, centre y) and the conditioned points.
fn normalise(p: &[Point; 4]) -> Option<([f64; 3], [[f64; 2]; 4])> {
    let cx = p.iter().map(|q| f64::from(q.x)).sum::<f64>() / 4.0;
    let cy = p.iter().map(|q| f64::from(q.y)).sum::<f64>() / 4.0;
    let mean = p.iter().map(|q| (f64::from(q.x) - cx).hypot(f64::from(q.y) - cy)).sum::<f64>() / 4.0;
    if !(mean.is_finite() && mean > 1e-9) {
        return None;
    }
    let s = std::f64::consts::SQRT_2 / mean;
    Some(([s, cx, cy], p.map(|q| [(f64::from(q.x) - cx) * s, (f64::from(q.y) - cy) * s])))
}

fn apply(h: &[f64; 9], x: f64, y: f64) -> Option<(f64, f64)> {
    let w = h[6] * x + h[7] * y + h[8];
    (w.abs() > 1e-12).then(|| ((h[0] * x + h[1] * y + h[2]) / w, (h[3] * x + h[4] * y + h[5]) / w))
}

pub(super) fn mul3(a: &[f64; 9], b: &[f64; 9]) -> [f64; 9] {
    let mut out = [0.0; 9];
    for r in 0..3 {
        for c in 0..3 {
            out[r * 3 + c] = (0..3).map(|k| a[r * 3 + k] * b[k * 3 + c]).sum();
        }
    }
    out
}

/// Solves the 8x8 system `m[.., ..8] x = m[.., 8]` by Gaussian elimination with partial pivoting.
pub(super) fn solve8(mut m: [[f64; 9]; 8]) -> Option<[f64; 8]> {
    for col in 0..8 {
        let pivot = (col..8).max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))?;
        if m[pivot][col].abs() < 1e-10 {
            return None;
        }
        m.swap(col, pivot);
        let pivot_row = m[col];
        for (r, row) in m.iter_mut().enumerate() {
            if r != col {
                let f = row[col] / pivot_row[col];
                for (x, p) in row.iter_mut().zip(pivot_row.iter()).skip(col) {
                    *x -= f * p;
                }
            }
        }
    }
    let x: [f64; 8] = std::array::from_fn(|i| m[i][8] / m[i][i]);
    x.iter().all(|v| v.is_finite()).then_some(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::BBox;

    fn face(points: [(f32, f32); 5]) -> Face {
        Face { bbox: BBox::default(), landmarks: points.map(|(x, y)| Point { x, y }), score: 1.0 }
    }

    /// The generic face (eyes and mouth in one plane, nose 0.43 eye distances in front), seen by a
    /// pinhole camera after turning `yaw` degrees about the vertical axis.
    fn head(yaw: f64) -> Face {
        let model =
            [(-0.5, 0.57, 0.0), (0.5, 0.57, 0.0), (0.0, 0.0, 0.43), (-0.41, -0.59, 0.0), (0.41, -0.59, 0.0)];
        let (c, s) = (yaw.to_radians().cos(), yaw.to_radians().sin());
        let p = model.map(|(x, y, z)| {
            let (x, z) = (x * c + z * s, -x * s + z * c);
            let depth = 8.0 - z;
            ((320.0 + 900.0 * x / depth) as f32, (240.0 - 900.0 * y / depth) as f32)
        });
        face(p)
    }

    #[test]
    fn a_plane_moved_by_any_homography_shows_no_parallax() {
        let a = face([(100.0, 100.0), (160.0, 102.0), (131.0, 135.0), (108.0, 170.0), (152.0, 171.0)]);
        // A perspective tilt, a shift and a scale: a photo card turned in front of the camera.
        let h = [0.9, 0.15, 40.0, -0.05, 1.1, 12.0, 0.0009, -0.0004, 1.0];
        let b = face(a.landmarks.map(|p| {
            let (x, y) = apply(&h, f64::from(p.x), f64::from(p.y)).expect("finite");
            (x as f32, y as f32)
        }));
        let [x, y] = nose_shift(&a, &b).expect("homography");
        assert!(x.hypot(y) < 1e-3, "{x} {y}");
    }

    #[test]
    fn a_turning_head_shows_parallax_growing_with_the_turn() {
        let front = head(0.0);
        // Turned towards the photo's right: the nose moves right, by about 0.43 sin(turn).
        let [p10, y10] = nose_shift(&front, &head(10.0)).expect("homography");
        let [p25, _] = nose_shift(&front, &head(25.0)).expect("homography");
        assert!(p10 > 0.05 && p25 > 2.0 * p10 && p25 < 0.3 && y10.abs() < 0.01, "{p10} {p25} {y10}");
        let [m10, _] = nose_shift(&front, &head(-10.0)).expect("homography");
        assert!(m10 < -0.05, "{m10}");
    }

    #[test]
    fn degenerate_points_give_none() {
        let a = face([(1.0, 1.0); 5]);
        assert_eq!(nose_shift(&a, &head(0.0)), None);
        assert_eq!(nose_shift(&head(0.0), &a), None);
    }
}
