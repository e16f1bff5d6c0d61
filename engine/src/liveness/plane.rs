//! Plane fit: how well one homography of the straight frame's face explains a moved frame's face.
//!
//! A flat picture (printed or on a screen), however it is held, moves as a plane: after the
//! five-point alignment, the moved frame's face is the straight frame's under one homography, up
//! to blur, noise and light. A turning head is not: the nose slides over the cheek, the far cheek
//! narrows and the near one widens. The landmarks alone cannot tell (a face detector places the
//! landmarks of a steeply tilted card where a turned head's would be); the pixels can. The fit
//! aligns the central regions of the two aligned faces with a homography (inverse-compositional
//! Gauss-Newton from the identity, with gain and offset matched at each step) and answers their
//! correlation after alignment: near 1 for a picture, lower for a head that turned.
//!
//! The same fit tells a photo of the ID photo from a live selfie: a KTP-el photo held up to the
//! camera is that photo under a homography, a live capture is not. For that the gallery keeps the
//! enrolled face's [`FacePatch`] (56 x 56 grey levels, sealed with the template).

use image::RgbImage;

use super::parallax::{mul3, solve8};

/// The aligned faces are compared at half size: 2x2 means smooth out JPEG blocks and moire.
const BIN: usize = 2;
/// The compared region of the half-size aligned face (112 px -> 56): brows to chin, cheek to
/// cheek, inside the face for any face the alignment template puts in place.
const REGION: (usize, usize, usize, usize) = (12, 18, 44, 50);
/// Gauss-Newton steps at most; the fit stops earlier when a step moves the corners < 0.01 px.
const STEPS: usize = 40;

/// Side of a [`FacePatch`]: the 112 px aligned face at half size.
const SIDE: usize = 56;

/// Grey levels of an aligned face at half size (56 x 56, row-major): what [`plane_fit`] compares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FacePatch(Vec<u8>);

impl FacePatch {
    /// The patch of a 112 x 112 aligned face; `None` for another size.
    pub fn of(aligned: &RgbImage) -> Option<Self> {
        (aligned.width() as usize == SIDE * BIN && aligned.height() as usize == SIDE * BIN)
            .then(|| Self(Grey::of(aligned).px.iter().map(|v| v.round().clamp(0.0, 255.0) as u8).collect()))
    }

    /// What a reference patch needs (the compared region and one pixel around it, for the
    /// gradients: 34 x 34 bytes), to keep beside a template.
    pub fn reference_bytes(&self) -> Vec<u8> {
        let (x0, y0, x1, y1) = REGION;
        (y0 - 1..=y1).flat_map(|y| self.0[y * SIDE + x0 - 1..=y * SIDE + x1].iter().copied()).collect()
    }

    /// A reference patch from [`FacePatch::reference_bytes`] (outside the region: its mean grey,
    /// never read when the patch is the reference of [`plane_fit`]); `None` for a wrong length.
    pub fn from_reference_bytes(bytes: &[u8]) -> Option<Self> {
        let (x0, y0, x1, y1) = REGION;
        let w = x1 - x0 + 2;
        if bytes.len() != w * (y1 - y0 + 2) {
            return None;
        }
        let mean = (bytes.iter().map(|&b| u32::from(b)).sum::<u32>() / bytes.len() as u32) as u8;
        let mut px = vec![mean; SIDE * SIDE];
        for (row, y) in bytes.chunks_exact(w).zip(y0 - 1..) {
            px[y * SIDE + x0 - 1..=y * SIDE + x1].copy_from_slice(row);
        }
        Some(Self(px))
    }

    fn grey(&self) -> Grey {
        Grey { w: SIDE, h: SIDE, px: self.0.iter().map(|&v| f32::from(v)).collect() }
    }
}

/// Grey levels of an aligned face at half size, row-major.
struct Grey {
    w: usize,
    h: usize,
    px: Vec<f32>,
}

impl Grey {
    fn of(image: &RgbImage) -> Self {
        let (w, h) = (image.width() as usize / BIN, image.height() as usize / BIN);
        let mut px = vec![0.0f32; w * h];
        for (y, row) in px.chunks_exact_mut(w).enumerate() {
            for (x, v) in row.iter_mut().enumerate() {
                let mut sum = 0.0;
                for dy in 0..BIN {
                    for dx in 0..BIN {
                        let p = image.get_pixel((x * BIN + dx) as u32, (y * BIN + dy) as u32).0;
                        sum += 0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]);
                    }
                }
                *v = sum / (BIN * BIN) as f32;
            }
        }
        Self { w, h, px }
    }

    fn at(&self, x: usize, y: usize) -> f32 {
        self.px[y * self.w + x]
    }

    /// Bilinear sample; `None` outside the image.
    fn sample(&self, x: f64, y: f64) -> Option<f32> {
        if !(x >= 0.0 && y >= 0.0 && x <= (self.w - 1) as f64 && y <= (self.h - 1) as f64) {
            return None;
        }
        let (x0, y0) = (x.floor() as usize, y.floor() as usize);
        let (x1, y1) = ((x0 + 1).min(self.w - 1), (y0 + 1).min(self.h - 1));
        let (fx, fy) = ((x - x0 as f64) as f32, (y - y0 as f64) as f32);
        let top = self.at(x0, y0) * (1.0 - fx) + self.at(x1, y0) * fx;
        let bottom = self.at(x0, y1) * (1.0 - fx) + self.at(x1, y1) * fx;
        Some(top * (1.0 - fy) + bottom * fy)
    }
}

/// The correlation (-1..=1) of one face with another after the homography that best aligns them
/// (`reference`: the straight frame, or the ID photo); `None` when either face is flat grey (no
/// correlation exists).
pub fn plane_fit(reference: &FacePatch, other: &FacePatch) -> Option<f32> {
    let (t, img) = (reference.grey(), other.grey());
    let (x0, y0, x1, y1) = REGION;
    // Coordinates centred on the region and scaled to about -1..1, for a well-conditioned system.
    let (cx, cy, s) = ((x0 + x1) as f64 / 2.0, (y0 + y1) as f64 / 2.0, (x1 - x0) as f64 / 2.0);
    let mut points = Vec::with_capacity((x1 - x0) * (y1 - y0));
    for y in y0..y1 {
        for x in x0..x1 {
            let gx = f64::from(t.at(x + 1, y) - t.at(x - 1, y)) / 2.0;
            let gy = f64::from(t.at(x, y + 1) - t.at(x, y - 1)) / 2.0;
            let (u, v) = ((x as f64 - cx) / s, (y as f64 - cy) / s);
            // d(warp)/d(p) at the identity, times the template's gradient (per unit of u, v).
            let (gu, gv) = (gx * s, gy * s);
            let sd = [
                gu * u,
                gu * v,
                gu,
                gv * u,
                gv * v,
                gv,
                -(gu * u * u + gv * u * v),
                -(gu * u * v + gv * v * v),
            ];
            points.push((x, y, u, v, sd));
        }
    }
    let mut hessian = [[0.0f64; 8]; 8];
    for (.., sd) in &points {
        for r in 0..8 {
            for c in 0..8 {
                hessian[r][c] += sd[r] * sd[c];
            }
        }
    }
    let (t_mean, t_sd) = stats(points.iter().map(|p| t.at(p.0, p.1)))?;
    // The warp maps region coordinates of the straight face to those of the moved one.
    let mut warp = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
    let sample = |warp: &[f64; 9], u: f64, v: f64| {
        let w = warp[6] * u + warp[7] * v + warp[8];
        let (wu, wv) = ((warp[0] * u + warp[1] * v + warp[2]) / w, (warp[3] * u + warp[4] * v + warp[5]) / w);
        img.sample(wu * s + cx, wv * s + cy)
    };
    for _ in 0..STEPS {
        let warped: Vec<Option<f32>> = points.iter().map(|p| sample(&warp, p.2, p.3)).collect();
        let (w_mean, w_sd) = stats(warped.iter().flatten().copied())?;
        let mut rhs = [0.0f64; 8];
        for (p, w) in points.iter().zip(&warped) {
            let Some(w) = w else { continue };
            let error = f64::from((w - w_mean) / w_sd * t_sd + t_mean - t.at(p.0, p.1));
            for (r, sd) in rhs.iter_mut().zip(&p.4) {
                *r += sd * error;
            }
        }
        let mut system = [[0.0f64; 9]; 8];
        for r in 0..8 {
            system[r][..8].copy_from_slice(&hessian[r]);
            system[r][8] = rhs[r];
        }
        let dp = solve8(system)?;
        let step = [1.0 + dp[0], dp[1], dp[2], dp[3], 1.0 + dp[4], dp[5], dp[6], dp[7], 1.0];
        warp = mul3(&warp, &invert(&step)?);
        warp = warp.map(|v| v / warp[8]);
        if dp.iter().map(|d| d.abs()).fold(0.0, f64::max) * s < 0.01 {
            break;
        }
    }
    let pairs: Vec<(f32, f32)> =
        points.iter().filter_map(|p| Some((t.at(p.0, p.1), sample(&warp, p.2, p.3)?))).collect();
    // Most of the region must stay in view: a warp that slid off the face fits nothing.
    if pairs.len() * 4 < points.len() * 3 {
        return Some(0.0);
    }
    correlation(&pairs)
}

/// Mean and standard deviation; `None` for a flat or empty set.
fn stats(values: impl Iterator<Item = f32>) -> Option<(f32, f32)> {
    let (mut n, mut sum, mut sq) = (0.0f64, 0.0f64, 0.0f64);
    for v in values {
        n += 1.0;
        sum += f64::from(v);
        sq += f64::from(v) * f64::from(v);
    }
    let mean = sum / n.max(1.0);
    let sd = (sq / n.max(1.0) - mean * mean).max(0.0).sqrt();
    (n > 0.0 && sd > 1e-3).then_some((mean as f32, sd as f32))
}

fn correlation(pairs: &[(f32, f32)]) -> Option<f32> {
    let (ma, sa) = stats(pairs.iter().map(|p| p.0))?;
    let (mb, sb) = stats(pairs.iter().map(|p| p.1))?;
    let cov = pairs.iter().map(|(a, b)| f64::from((a - ma) * (b - mb))).sum::<f64>() / pairs.len() as f64;
    Some((cov / f64::from(sa * sb)) as f32)
}

/// The inverse of a 3x3 matrix (row-major); `None` when singular.
fn invert(m: &[f64; 9]) -> Option<[f64; 9]> {
    let c = [
        m[4] * m[8] - m[5] * m[7],
        m[2] * m[7] - m[1] * m[8],
        m[1] * m[5] - m[2] * m[4],
        m[5] * m[6] - m[3] * m[8],
        m[0] * m[8] - m[2] * m[6],
        m[2] * m[3] - m[0] * m[5],
        m[3] * m[7] - m[4] * m[6],
        m[1] * m[6] - m[0] * m[7],
        m[0] * m[4] - m[1] * m[3],
    ];
    let det = m[0] * c[0] + m[1] * c[3] + m[2] * c[6];
    (det.abs() > 1e-12).then(|| c.map(|v| v / det))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A textured 112x112 face-sized test card: smooth blobs of several sizes.
    fn texture(f: impl Fn(f64, f64) -> (f64, f64)) -> RgbImage {
        RgbImage::from_fn(112, 112, |x, y| {
            let (u, v) = f(f64::from(x), f64::from(y));
            let g = 128.0
                + 50.0 * (u / 7.0).sin() * (v / 9.0).cos()
                + 30.0 * ((u + v) / 13.0).sin()
                + 20.0 * ((u - 2.0 * v) / 5.0).cos();
            let g = g.clamp(0.0, 255.0) as u8;
            image::Rgb([g, g, g])
        })
    }

    #[test]
    fn a_picture_under_a_homography_fits_and_a_bulging_surface_does_not() {
        let straight = texture(|x, y| (x, y));
        // The same picture tilted: a perspective warp about the centre, light a little brighter.
        let tilted = texture(|x, y| {
            let (u, v) = (x - 56.0, y - 56.0);
            let w = 1.0 + 0.0025 * u + 0.0008 * v;
            (56.0 + (0.93 * u + 0.05 * v + 1.5) / w, 56.0 + (-0.03 * u + 1.02 * v - 1.0) / w)
        });
        let tilted = RgbImage::from_fn(112, 112, |x, y| {
            image::Rgb(tilted.get_pixel(x, y).0.map(|c| (f32::from(c) * 1.1).min(255.0) as u8))
        });
        // A surface that is not a plane: the centre slides sideways against the edges (a nose
        // against the cheeks, as a head turns).
        let turned = texture(|x, y| {
            let (u, v) = (x - 56.0, y - 56.0);
            let bump = (-(u * u + v * v) / 300.0).exp();
            (x + 8.0 * bump, y)
        });
        let patch = |m: &RgbImage| FacePatch::of(m).expect("112 px");
        let fit = |m: &RgbImage| plane_fit(&patch(&straight), &patch(m)).expect("fit");
        let (same, flat, bent) = (fit(&straight), fit(&tilted), fit(&turned));
        let bound = super::super::LivenessThresholds::default().max_plane_fit;
        assert!(same > 0.999, "{same}");
        assert!(flat > 0.99, "tilted picture {flat}");
        assert!(bent < bound, "bent {bent} against the bound {bound}");
    }

    #[test]
    fn flat_faces_give_none_and_patches_round_trip() {
        let grey = FacePatch::of(&RgbImage::from_pixel(112, 112, image::Rgb([90, 90, 90]))).expect("112 px");
        assert_eq!(plane_fit(&grey, &grey), None);
        assert_eq!(FacePatch::of(&RgbImage::new(56, 56)), None);
        // A reference kept by its region fits exactly as the whole patch does.
        let face = FacePatch::of(&texture(|x, y| (x, y))).expect("112 px");
        let other = FacePatch::of(&texture(|x, y| (x * 0.97 + 2.0, y * 1.02 - 1.0))).expect("112 px");
        let kept = FacePatch::from_reference_bytes(&face.reference_bytes()).expect("34 x 34");
        assert_eq!(face.reference_bytes().len(), 34 * 34);
        assert_eq!(plane_fit(&kept, &other), plane_fit(&face, &other));
        assert_eq!(FacePatch::from_reference_bytes(&face.reference_bytes()[1..]), None);
    }
}
