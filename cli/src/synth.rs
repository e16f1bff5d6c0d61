//! Synthetic captures for training and tests: occlusions drawn on aligned face crops, photos of an
//! ID photo as a phone would take them (shrunk, tilted, on a background, blurred, re-compressed),
//! and frames of a flat picture turned in front of a camera.
//!
//! Everything is driven by a seeded [`Rng`], so a seed gives the same images on every machine.

use image::{Rgb, RgbImage, imageops};
use imageproc::drawing::draw_polygon_mut;
use imageproc::geometric_transformations::{Border, Interpolation, Projection, warp_into};
use imageproc::point::Point as IPoint;
use wajah::Occlusion;

/// splitmix64: small, seedable, and the same everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform index below `n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// Where the landmarks sit in an aligned crop, as fractions of its width and height (the ArcFace
/// template over 112): right eye, left eye, nose tip, right and left mouth corners.
const EYES: [(f32, f32); 2] = [(0.342, 0.4616), (0.6565, 0.4598)];
const NOSE: (f32, f32) = (0.5002, 0.6405);
const MOUTH_Y: f32 = 0.8240;

/// Draws `what` over an aligned face crop.
pub fn occlude(crop: &mut RgbImage, what: Occlusion, rng: &mut Rng) {
    match what {
        Occlusion::Eyeglasses => glasses(crop, rng, false),
        Occlusion::Sunglasses => glasses(crop, rng, true),
        Occlusion::Mask => mask(crop, rng),
        Occlusion::FaceOccluded => cover(crop, rng),
    }
}

fn blend(p: &mut Rgb<u8>, c: [f32; 3], alpha: f32) {
    for (v, c) in p.0.iter_mut().zip(c) {
        *v = (f32::from(*v) * (1.0 - alpha) + c * alpha).round().clamp(0.0, 255.0) as u8;
    }
}

/// Normalised ellipse distance of (x, y) from an ellipse centred at (cx, cy) with radii (rx, ry).
fn ellipse_distance(x: f32, y: f32, cx: f32, cy: f32, rx: f32, ry: f32) -> f32 {
    (((x - cx) / rx).powi(2) + ((y - cy) / ry).powi(2)).sqrt()
}

/// Paints every pixel for which `inside(x, y)` gives an opacity above zero.
fn paint(crop: &mut RgbImage, colour: impl Fn(u32, u32) -> [f32; 3], inside: impl Fn(f32, f32) -> f32) {
    let (w, h) = crop.dimensions();
    for y in 0..h {
        for x in 0..w {
            let a = inside(x as f32 + 0.5, y as f32 + 0.5);
            if a > 0.0 {
                blend(crop.get_pixel_mut(x, y), colour(x, y), a.min(1.0));
            }
        }
    }
}

fn glasses(crop: &mut RgbImage, rng: &mut Rng, dark: bool) {
    let (w, h) = (crop.width() as f32, crop.height() as f32);
    let frame = match rng.below(4) {
        0 => [20.0, 20.0, 20.0],
        1 => [70.0, 45.0, 25.0],
        2 => [150.0, 150.0, 155.0],
        _ => [rng.range(0.0, 120.0), rng.range(0.0, 120.0), rng.range(0.0, 120.0)],
    };
    let (rx, ry) = (w * rng.range(0.10, 0.14), h * rng.range(0.065, 0.10));
    let thick = rng.range(0.010, 0.030) * w;
    let (dx, dy) = (rng.range(-0.015, 0.015) * w, rng.range(-0.01, 0.02) * h);
    let lens = if dark {
        let base = rng.range(5.0, 60.0);
        [base + rng.range(0.0, 25.0), base + rng.range(0.0, 20.0), base + rng.range(0.0, 20.0)]
    } else {
        [200.0, 210.0, 220.0]
    };
    let lens_alpha = if dark { rng.range(0.85, 0.98) } else { rng.range(0.0, 0.12) };
    let centres: Vec<(f32, f32)> = EYES.iter().map(|(ex, ey)| (ex * w + dx, ey * h + dy)).collect();
    for &(cx, cy) in &centres {
        paint(
            crop,
            |_, _| lens,
            |x, y| {
                if ellipse_distance(x, y, cx, cy, rx, ry) <= 1.0 { lens_alpha } else { 0.0 }
            },
        );
        let (ox, oy) = (rx + thick / 2.0, ry + thick / 2.0);
        paint(
            crop,
            |_, _| frame,
            |x, y| {
                let d = ellipse_distance(x, y, cx, cy, ox, oy);
                if (d - 1.0).abs() * ox.min(oy) <= thick / 2.0 { 1.0 } else { 0.0 }
            },
        );
        if dark {
            // A highlight on the lens.
            let (hx, hy) = (cx - rx * 0.4, cy - ry * 0.4);
            paint(
                crop,
                |_, _| [235.0, 235.0, 235.0],
                |x, y| {
                    if ellipse_distance(x, y, hx, hy, rx * 0.25, ry * 0.15) <= 1.0 { 0.35 } else { 0.0 }
                },
            );
        }
    }
    // Bridge and arms.
    let (l, r) = (centres[0], centres[1]);
    let bridge_y = (l.1 + r.1) / 2.0 - ry * 0.4;
    let lines = [
        ((l.0 + rx, bridge_y), (r.0 - rx, bridge_y)),
        ((l.0 - rx, l.1 - ry * 0.3), (0.0, l.1 - ry * 0.5)),
        ((r.0 + rx, r.1 - ry * 0.3), (w, r.1 - ry * 0.5)),
    ];
    for ((x0, y0), (x1, y1)) in lines {
        paint(
            crop,
            |_, _| frame,
            |x, y| {
                let (vx, vy) = (x1 - x0, y1 - y0);
                let t = (((x - x0) * vx + (y - y0) * vy) / (vx * vx + vy * vy).max(1e-6)).clamp(0.0, 1.0);
                let d = ((x - x0 - t * vx).powi(2) + (y - y0 - t * vy).powi(2)).sqrt();
                if d <= thick / 2.0 { 1.0 } else { 0.0 }
            },
        );
    }
}

fn mask(crop: &mut RgbImage, rng: &mut Rng) {
    let (w, h) = (crop.width() as f32, crop.height() as f32);
    let colour = match rng.below(6) {
        0 => [140.0, 185.0, 220.0],
        1 => [235.0, 235.0, 235.0],
        2 => [30.0, 30.0, 35.0],
        3 => [120.0, 125.0, 130.0],
        4 => [200.0, 160.0, 170.0],
        _ => [rng.range(20.0, 240.0), rng.range(20.0, 240.0), rng.range(20.0, 240.0)],
    };
    let top = NOSE.1 * h - rng.range(0.04, 0.12) * h;
    let side = rng.range(0.04, 0.14) * w;
    let points = [
        IPoint::new(side as i32, (top + 0.06 * h) as i32),
        IPoint::new((0.5 * w) as i32, top as i32),
        IPoint::new((w - side) as i32, (top + 0.06 * h) as i32),
        IPoint::new((w - side * 0.5) as i32, (h * 0.92) as i32),
        IPoint::new((0.5 * w) as i32, (h + 8.0) as i32),
        IPoint::new((side * 0.5) as i32, (h * 0.92) as i32),
    ];
    let mut shape = RgbImage::new(crop.width(), crop.height());
    draw_polygon_mut(&mut shape, &points, Rgb([255, 0, 0]));
    let pleats = rng.below(2) == 0;
    let shade = rng.range(0.0, 0.25);
    let noise_seed = rng.next_u64();
    let (cw, ch) = (crop.width(), crop.height());
    for y in 0..ch {
        for x in 0..cw {
            if shape.get_pixel(x, y).0[0] == 0 {
                continue;
            }
            // Darker towards the sides, pleat lines across, a little grain.
            let fx = (x as f32 / w - 0.5).abs() * 2.0;
            let mut k = 1.0 - shade * fx;
            if pleats && ((y as f32 - top) / (0.09 * h)).fract() < 0.12 {
                k *= 0.85;
            }
            let grain = ((noise_seed ^ u64::from(x * 131 + y * 977)).wrapping_mul(0x2545_F491_4F6C_DD1D)
                >> 59) as f32
                - 16.0;
            let c = colour.map(|v| v * k + grain * 0.5);
            blend(crop.get_pixel_mut(x, y), c, 1.0);
        }
    }
}

/// A hand, hair or an object over the eyes, nose or mouth.
fn cover(crop: &mut RgbImage, rng: &mut Rng) {
    let (w, h) = (crop.width() as f32, crop.height() as f32);
    // Skin colour from the cheek, so a hand looks like the person's own.
    let cheek = {
        let (x0, y0) = ((0.28 * w) as u32, (0.62 * h) as u32);
        let mut s = [0.0f32; 3];
        for y in y0..y0 + 6 {
            for x in x0..x0 + 6 {
                let p = crop.get_pixel(x.min(crop.width() - 1), y.min(crop.height() - 1)).0;
                for k in 0..3 {
                    s[k] += f32::from(p[k]) / 36.0;
                }
            }
        }
        s
    };
    let targets =
        [(EYES[0].0, EYES[0].1), (EYES[1].0, EYES[1].1), (0.5, 0.46), (0.5, MOUTH_Y), (NOSE.0, 0.72)];
    let (tx, ty) = targets[rng.below(targets.len())];
    let (cx, cy) = (tx * w + rng.range(-0.05, 0.05) * w, ty * h + rng.range(-0.04, 0.04) * h);
    match rng.below(3) {
        0 => {
            // A hand: a palm and fingers, skin-coloured and a little darker.
            let k = rng.range(0.8, 1.05);
            let skin = cheek.map(|v| v * k);
            let (rx, ry) = (rng.range(0.16, 0.26) * w, rng.range(0.12, 0.2) * h);
            let angle = rng.range(-0.6, 0.6);
            let fingers = 4;
            paint(
                crop,
                |_, _| skin,
                |x, y| {
                    let (dx, dy) = (x - cx, y - cy);
                    let (u, v) = (dx * angle.cos() + dy * angle.sin(), -dx * angle.sin() + dy * angle.cos());
                    let palm = ellipse_distance(u, v, 0.0, 0.0, rx, ry) <= 1.0;
                    let finger = (0..fingers).any(|i| {
                        let fy = -ry + (i as f32 + 0.5) * 2.0 * ry / fingers as f32;
                        ellipse_distance(u, v, rx * 1.1, fy, rx * 0.6, ry / fingers as f32 * 0.9) <= 1.0
                    });
                    if palm || finger { 1.0 } else { 0.0 }
                },
            );
        }
        1 => {
            // Hair across the eyes and forehead.
            let dark = rng.range(10.0, 90.0);
            let hair = [dark * 1.1, dark * 0.9, dark * 0.7];
            let (rx, ry) = (rng.range(0.2, 0.4) * w, rng.range(0.08, 0.15) * h);
            let ey = EYES[0].1 * h + rng.range(-0.05, 0.03) * h;
            paint(
                crop,
                |x, y| hair.map(|c| c + ((x * 7 + y * 3) % 11) as f32 * 2.0),
                |x, y| {
                    if ellipse_distance(x, y, cx, ey, rx, ry) <= 1.0 { 0.95 } else { 0.0 }
                },
            );
        }
        _ => {
            // An object: a phone, a cup, a card, in a plain colour.
            let colour = [rng.range(0.0, 255.0), rng.range(0.0, 255.0), rng.range(0.0, 255.0)];
            let (hw, hh) = (rng.range(0.12, 0.25) * w, rng.range(0.10, 0.22) * h);
            paint(
                crop,
                |_, _| colour,
                |x, y| {
                    if (x - cx).abs() <= hw && (y - cy).abs() <= hh { 1.0 } else { 0.0 }
                },
            );
        }
    }
}

/// A photo of `id_photo` as a phone camera sees it when the photo is held up: shrunk to a card in
/// the frame, tilted in perspective, on a background, slightly blurred; the caller re-compresses.
pub fn replay(id_photo: &RgbImage, background: Option<&RgbImage>, rng: &mut Rng) -> RgbImage {
    let (fw, fh) = (720u32, 960u32);
    let mut frame = match background {
        Some(bg) => imageops::resize(bg, fw, fh, imageops::FilterType::Triangle),
        None => {
            let a = [rng.range(0.0, 255.0), rng.range(0.0, 255.0), rng.range(0.0, 255.0)];
            let b = [rng.range(0.0, 255.0), rng.range(0.0, 255.0), rng.range(0.0, 255.0)];
            RgbImage::from_fn(fw, fh, |x, y| {
                let t = (x + y) as f32 / (fw + fh) as f32;
                Rgb([0, 1, 2].map(|k| (a[k] * (1.0 - t) + b[k] * t) as u8))
            })
        }
    };
    // The card covers 45-85% of the frame's width, keeps the photo's aspect, and sits anywhere.
    let (pw, ph) = (id_photo.width() as f32, id_photo.height() as f32);
    let cw = fw as f32 * rng.range(0.45, 0.85);
    let ch = (cw * ph / pw).min(fh as f32 * 0.9);
    let cw = ch * pw / ph;
    let x0 = rng.range(0.0, fw as f32 - cw);
    let y0 = rng.range(0.0, fh as f32 - ch);
    // Perspective: each corner moved by up to 12% of the card's size.
    let j = |rng: &mut Rng, s: f32| rng.range(-0.12, 0.12) * s;
    let corners = [
        (x0 + j(rng, cw), y0 + j(rng, ch)),
        (x0 + cw + j(rng, cw), y0 + j(rng, ch)),
        (x0 + cw + j(rng, cw), y0 + ch + j(rng, ch)),
        (x0 + j(rng, cw), y0 + ch + j(rng, ch)),
    ];
    let from = [(0.0, 0.0), (pw, 0.0), (pw, ph), (0.0, ph)];
    if let Some(p) = Projection::from_control_points(from, corners) {
        let mut card = RgbImage::new(fw, fh);
        warp_into(id_photo, p, Interpolation::Bilinear, Border::Constant(Rgb([0, 0, 0])), &mut card);
        // Where the card lands (the inverse map falls inside the photo), it replaces the background.
        let inv = p.invert();
        for (x, y, px) in frame.enumerate_pixels_mut() {
            let (u, v) = inv * (x as f32 + 0.5, y as f32 + 0.5);
            if (0.0..pw).contains(&u) && (0.0..ph).contains(&v) {
                *px = *card.get_pixel(x, y);
            }
        }
    }
    // Light: a brightness and contrast shift, and a little glare.
    let gain = rng.range(0.8, 1.15);
    let offset = rng.range(-20.0, 20.0);
    for px in frame.pixels_mut() {
        for c in &mut px.0 {
            *c = (f32::from(*c) * gain + offset).clamp(0.0, 255.0) as u8;
        }
    }
    let sigma = rng.range(0.0, 1.6);
    if sigma > 0.3 { imageops::blur(&frame, sigma) } else { frame }
}

/// A flat picture (a printed photo or a phone screen showing `photo`) turned `yaw_deg` about its
/// vertical axis and `pitch_deg` about its horizontal one in front of a 640x480 camera (pinhole,
/// focal length 1.2 frame widths), on a gradient, with a brightness shift, moire-like interference
/// stripes and a little blur: one frame of a presentation attack.
pub fn card(photo: &RgbImage, yaw_deg: f32, pitch_deg: f32, rng: &mut Rng) -> RgbImage {
    let (fw, fh) = (640u32, 480u32);
    let a = [rng.range(0.0, 255.0), rng.range(0.0, 255.0), rng.range(0.0, 255.0)];
    let b = [rng.range(0.0, 255.0), rng.range(0.0, 255.0), rng.range(0.0, 255.0)];
    let mut frame = RgbImage::from_fn(fw, fh, |x, y| {
        let t = (x + y) as f32 / (fw + fh) as f32;
        Rgb([0, 1, 2].map(|k| (a[k] * (1.0 - t) + b[k] * t) as u8))
    });
    // The card in camera space: centred near the optical axis, its height 50-75% of the frame's at
    // distance `z`, then rotated (yaw, then pitch, then a little roll) about its centre.
    let (pw, ph) = (photo.width() as f32, photo.height() as f32);
    let f = 1.2 * fw as f32;
    let z = 1000.0;
    let height = fh as f32 * rng.range(0.5, 0.75) * z / f;
    let width = height * pw / ph;
    let (cx, cy) = (rng.range(-0.08, 0.08) * z, rng.range(-0.06, 0.06) * z);
    let (y, p, r) = (yaw_deg.to_radians(), pitch_deg.to_radians(), rng.range(-5.0, 5.0).to_radians());
    let project = |u: f32, v: f32| {
        let (x0, y0) = ((u / pw - 0.5) * width, (v / ph - 0.5) * height);
        let (x1, z1) = (x0 * y.cos(), -x0 * y.sin());
        let (y2, z2) = (y0 * p.cos() - z1 * p.sin(), y0 * p.sin() + z1 * p.cos());
        let (x3, y3) = (x1 * r.cos() - y2 * r.sin(), x1 * r.sin() + y2 * r.cos());
        let depth = z + z2;
        (fw as f32 / 2.0 + f * (cx + x3) / depth, fh as f32 / 2.0 + f * (cy + y3) / depth)
    };
    let from = [(0.0, 0.0), (pw, 0.0), (pw, ph), (0.0, ph)];
    let to = from.map(|(u, v)| project(u, v));
    if let Some(m) = Projection::from_control_points(from, to) {
        let mut card = RgbImage::new(fw, fh);
        warp_into(photo, m, Interpolation::Bilinear, Border::Constant(Rgb([0, 0, 0])), &mut card);
        let inv = m.invert();
        for (x, y, px) in frame.enumerate_pixels_mut() {
            let (u, v) = inv * (x as f32 + 0.5, y as f32 + 0.5);
            if (0.0..pw).contains(&u) && (0.0..ph).contains(&v) {
                *px = *card.get_pixel(x, y);
            }
        }
    }
    // Light and the screen's or print's interference pattern.
    let (gain, offset) = (rng.range(0.8, 1.15), rng.range(-20.0, 20.0));
    let (amp, period, angle) =
        (rng.range(2.0, 10.0), rng.range(3.0, 9.0), rng.range(0.0, std::f32::consts::PI));
    let (kx, ky) =
        (angle.cos() * std::f32::consts::TAU / period, angle.sin() * std::f32::consts::TAU / period);
    for (x, y, px) in frame.enumerate_pixels_mut() {
        let stripe = amp * (kx * x as f32 + ky * y as f32).sin();
        for c in &mut px.0 {
            *c = (f32::from(*c) * gain + offset + stripe).clamp(0.0, 255.0) as u8;
        }
    }
    let sigma = rng.range(0.0, 1.2);
    if sigma > 0.3 { imageops::blur(&frame, sigma) } else { frame }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_images() {
        let face = RgbImage::from_fn(112, 112, |x, y| Rgb([(x * 2) as u8, (y * 2) as u8, 120]));
        for what in Occlusion::ALL {
            let (mut a, mut b) = (face.clone(), face.clone());
            occlude(&mut a, what, &mut Rng::new(3));
            occlude(&mut b, what, &mut Rng::new(3));
            assert_eq!(a, b);
            assert_ne!(a, face, "{what:?} drew nothing");
        }
        let r1 = replay(&face, None, &mut Rng::new(9));
        let r2 = replay(&face, None, &mut Rng::new(9));
        assert_eq!(r1, r2);
        assert_eq!(r1.dimensions(), (720, 960));
    }
}
