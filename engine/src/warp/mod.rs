//! Pixel resampling: bilinear affine warps (border 0) and resizing, on RGB images.
//!
//! Conventions follow OpenCV's so that results stay comparable with its pipeline: pixel centres at
//! integer coordinates, bilinear interpolation, zero outside the source image.

mod reduce;

use reduce::box_reduce;

use image::RgbImage;

/// A 2x3 affine map `[a b c; d e f]`: `(x, y) -> (a x + b y + c, d x + e y + f)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Affine(pub [[f32; 3]; 2]);

impl Affine {
    /// Uniform scale by `s` about the origin.
    pub fn scale(s: f32) -> Self {
        Self::crop_scale(0.0, 0.0, s)
    }

    /// Scale by `s` after translating by `(-x0, -y0)`.
    pub fn crop_scale(x0: f32, y0: f32, s: f32) -> Self {
        Affine([[s, 0.0, -x0 * s], [0.0, s, -y0 * s]])
    }

    /// Applies the map to a point.
    pub fn apply(&self, x: f32, y: f32) -> (f32, f32) {
        let m = &self.0;
        (m[0][0] * x + m[0][1] * y + m[0][2], m[1][0] * x + m[1][1] * y + m[1][2])
    }

    /// The inverse map, or `None` when the map is singular.
    pub fn inverse(&self) -> Option<Self> {
        let [[a, b, c], [d, e, f]] = self.0;
        let det = a * e - b * d;
        if det.abs() < 1e-12 {
            return None;
        }
        let (ia, ib, id, ie) = (e / det, -b / det, -d / det, a / det);
        Some(Affine([[ia, ib, -(ia * c + ib * f)], [id, ie, -(id * c + ie * f)]]))
    }

    /// `self` after `first`: `x -> self(first(x))`.
    pub fn after(&self, first: &Affine) -> Self {
        let [[a, b, c], [d, e, f]] = self.0;
        let [[p, q, r], [s, t, u]] = first.0;
        Affine([
            [a * p + b * s, a * q + b * t, a * r + b * u + c],
            [d * p + e * s, d * q + e * t, d * r + e * u + f],
        ])
    }
}

/// Warps `src` into a `width` x `height` image with `forward` mapping source to destination
/// coordinates: bilinear, pixels outside `src` read as 0 (OpenCV `warpAffine`, `INTER_LINEAR`,
/// `BORDER_CONSTANT`).
pub fn warp_affine(src: &RgbImage, forward: &Affine, width: u32, height: u32) -> RgbImage {
    warp_bilinear(src, forward, width, height, Border::Zero)
}

/// [`warp_affine`], but shrinking by more than 2x first averages `k x k` blocks (of only the region
/// the output reads) so that the result does not alias.
pub fn warp_affine_filtered(src: &RgbImage, forward: &Affine, width: u32, height: u32) -> RgbImage {
    warp(src, forward, width, height, Border::Zero)
}

/// What a sample outside the source image reads.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Border {
    /// Zero (OpenCV `BORDER_CONSTANT`), as for alignment and detector input.
    Zero,
    /// The nearest edge pixel (OpenCV `BORDER_REPLICATE`), as for resizing.
    Replicate,
}

fn warp(src: &RgbImage, forward: &Affine, width: u32, height: u32, border: Border) -> RgbImage {
    let scale = (forward.0[0][0] * forward.0[1][1] - forward.0[0][1] * forward.0[1][0]).abs().sqrt();
    let k = if scale > 0.0 { (1.0 / scale).floor() as u32 } else { 1 };
    if k < 2 {
        return warp_bilinear(src, forward, width, height, border);
    }
    // Average k x k blocks, but only over the part of the source the output reads.
    let Some(inv) = forward.inverse() else { return RgbImage::new(width, height) };
    let corners = [(0.0, 0.0), (width as f32, 0.0), (0.0, height as f32), (width as f32, height as f32)]
        .map(|(x, y)| inv.apply(x, y));
    let pad = 2.0 * k as f32 + 2.0;
    let lo = |i: usize| corners.iter().map(|c| if i == 0 { c.0 } else { c.1 }).fold(f32::MAX, f32::min) - pad;
    let hi = |i: usize| corners.iter().map(|c| if i == 0 { c.0 } else { c.1 }).fold(f32::MIN, f32::max) + pad;
    // Align the region to the block grid so that results do not depend on where the region starts.
    let x0 = ((lo(0).max(0.0) as u32) / k) * k;
    let y0 = ((lo(1).max(0.0) as u32) / k) * k;
    let x1 = (hi(0).max(0.0) as u32).min(src.width());
    let y1 = (hi(1).max(0.0) as u32).min(src.height());
    if x1 <= x0 || y1 <= y0 {
        return RgbImage::new(width, height);
    }
    let reduced = box_reduce(src, [x0, y0, x1, y1], k);
    // A reduced pixel i covers region pixels [k i, k i + k): its centre is at x0 + k i + (k - 1) / 2.
    let kf = k as f32;
    let off = (kf - 1.0) / 2.0;
    let expand = Affine([[kf, 0.0, x0 as f32 + off], [0.0, kf, y0 as f32 + off]]);
    warp_bilinear(&reduced, &forward.after(&expand), width, height, border)
}

fn warp_bilinear(src: &RgbImage, forward: &Affine, width: u32, height: u32, border: Border) -> RgbImage {
    let mut out = RgbImage::new(width, height);
    let Some(inv) = forward.inverse() else { return out };
    let (sw, sh) = (src.width() as i64, src.height() as i64);
    let raw = src.as_raw();
    let stride = sw as usize * 3;
    let [[a, b, c], [d, e, f]] = inv.0;
    let dst = out.as_mut();
    if b == 0.0 && d == 0.0 {
        scale_bilinear(src, [a, c, e, f], &mut out, border);
        return out;
    }
    for y in 0..height as usize {
        let yf = y as f32;
        for x in 0..width as usize {
            let xf = x as f32;
            let sx = a * xf + b * yf + c;
            let sy = d * xf + e * yf + f;
            // floor() and round() are library calls on baseline x86-64: use integer casts instead.
            let (x0, y0) = (floor(sx), floor(sy));
            let (fx, fy) = (sx - x0 as f32, sy - y0 as f32);
            let o = (y * width as usize + x) * 3;
            if x0 >= 0 && y0 >= 0 && x0 + 1 < sw && y0 + 1 < sh {
                // All four neighbours inside: index directly.
                let i = y0 as usize * stride + x0 as usize * 3;
                let (r0, r1) = (&raw[i..i + 6], &raw[i + stride..i + stride + 6]);
                for ch in 0..3 {
                    let top = f32::from(r0[ch]) + (f32::from(r0[ch + 3]) - f32::from(r0[ch])) * fx;
                    let bottom = f32::from(r1[ch]) + (f32::from(r1[ch + 3]) - f32::from(r1[ch])) * fx;
                    dst[o + ch] = (top + (bottom - top) * fy + 0.5) as u8; // in [0, 255.5): no clamp needed
                }
                continue;
            }
            if border == Border::Zero && (x0 < -1 || y0 < -1 || x0 >= sw || y0 >= sh) {
                continue;
            }
            dst[o..o + 3].copy_from_slice(&sample_at_edge(src, x0, y0, fx, fy, border));
        }
    }
    out
}

/// [`warp_bilinear`] for a map without rotation or shear (`sx = a x + c`, `sy = e y + f`), with
/// the same arithmetic, done in two passes: source rows are interpolated horizontally once (and
/// reused by the next output row), then pairs of them blended vertically. An integer translation
/// within the image is a copy.
fn scale_bilinear(src: &RgbImage, [a, c, e, f]: [f32; 4], out: &mut RgbImage, border: Border) {
    let (sw, sh) = (src.width() as i64, src.height() as i64);
    let (width, height) = (out.width() as usize, out.height() as usize);
    let raw = src.as_raw();
    let stride = sw as usize * 3;
    if a == 1.0 && e == 1.0 && c.fract() == 0.0 && f.fract() == 0.0 {
        let (dx, dy) = (c as i64, f as i64);
        if dx >= 0 && dy >= 0 && dx + width as i64 <= sw && dy + height as i64 <= sh {
            for (y, row) in out.as_mut().chunks_exact_mut(width * 3).enumerate() {
                let start = (y + dy as usize) * stride + dx as usize * 3;
                row.copy_from_slice(&raw[start..start + width * 3]);
            }
            return;
        }
    }
    // Source column and weight for every output column.
    let cols: Vec<(i64, f32)> = (0..width)
        .map(|x| {
            let sx = a * x as f32 + c;
            let x0 = floor(sx);
            (x0, sx - x0 as f32)
        })
        .collect();
    // The run of output columns whose two source neighbours are both inside: they are interpolated
    // in bulk; the others pixel by pixel.
    let inside = |&(x0, _): &(i64, f32)| x0 >= 0 && x0 + 1 < sw;
    let lo = cols.iter().position(inside).unwrap_or(width);
    let hi = lo + cols[lo..].iter().take_while(|c| inside(c)).count();
    let offsets: Vec<usize> = cols[lo..hi].iter().map(|&(x0, _)| x0 as usize * 3).collect();
    let weights: Vec<f32> = cols[lo..hi].iter().map(|&(_, fx)| fx).collect();
    // Columns whose 8-byte read (two pixels and two bytes beyond) stays inside a row take the
    // four-lane path below; the rest three channels at a time.
    let wide = offsets.iter().take_while(|&&at| at + 8 <= stride).count();
    let horizontal = |y: i64, line: &mut [f32]| {
        let row = &raw[y as usize * stride..(y as usize + 1) * stride];
        for (i, (&at, &fx)) in offsets[..wide].iter().zip(&weights).enumerate() {
            // Four lanes (the fourth is overwritten by the next pixel), which the compiler turns
            // into vector instructions.
            let p = &row[at..at + 8];
            let v: [f32; 4] =
                std::array::from_fn(|ch| f32::from(p[ch]) + (f32::from(p[ch + 3]) - f32::from(p[ch])) * fx);
            line[3 * i..3 * i + 4].copy_from_slice(&v);
        }
        for ((&at, &fx), v) in offsets.iter().zip(&weights).zip(line.chunks_exact_mut(3)).skip(wide) {
            let p = &row[at..at + 6];
            for ch in 0..3 {
                v[ch] = f32::from(p[ch]) + (f32::from(p[ch + 3]) - f32::from(p[ch])) * fx;
            }
        }
    };
    // Horizontally interpolated source rows (columns lo..hi, and one spare lane), by the row's
    // parity (y0 and y0 + 1 never collide).
    let span = (hi - lo) * 3;
    let mut lines = [(-1i64, vec![0f32; span + 1]), (-1i64, vec![0f32; span + 1])];
    for (y, row) in out.as_mut().chunks_exact_mut(width * 3).enumerate() {
        let sy = e * y as f32 + f;
        let y0 = floor(sy);
        let fy = sy - y0 as f32;
        if border == Border::Zero && (y0 < -1 || y0 >= sh) {
            continue;
        }
        let rows_inside = y0 >= 0 && y0 + 1 < sh;
        let bulk = if rows_inside {
            for yy in [y0, y0 + 1] {
                let (held, line) = &mut lines[yy.rem_euclid(2) as usize];
                if *held != yy {
                    horizontal(yy, line);
                    *held = yy;
                }
            }
            let (top, bottom) =
                if y0.rem_euclid(2) == 0 { (&lines[0].1, &lines[1].1) } else { (&lines[1].1, &lines[0].1) };
            for ((o, &t), &b) in row[lo * 3..hi * 3].iter_mut().zip(top).zip(bottom) {
                *o = (t + (b - t) * fy + 0.5) as u8; // in [0, 255.5): no clamp needed
            }
            lo..hi
        } else {
            0..0
        };
        for x in (0..bulk.start).chain(bulk.end..width) {
            let (x0, fx) = cols[x];
            if border == Border::Zero && (x0 < -1 || x0 >= sw) {
                continue;
            }
            row[x * 3..x * 3 + 3].copy_from_slice(&sample_at_edge(src, x0, y0, fx, fy, border));
        }
    }
}

/// Bilinear sample between source pixels (x0, y0) and (x0 + 1, y0 + 1), with weights (fx, fy), where
/// some of the four may lie outside the image and read as `border` says.
fn sample_at_edge(src: &RgbImage, x0: i64, y0: i64, fx: f32, fy: f32, border: Border) -> [u8; 3] {
    let (sw, sh) = (src.width() as i64, src.height() as i64);
    let raw = src.as_raw();
    let px = |x: i64, y: i64, ch: usize| -> f32 {
        let (x, y) = match border {
            Border::Zero if x < 0 || y < 0 || x >= sw || y >= sh => return 0.0,
            Border::Zero => (x, y),
            Border::Replicate => (x.clamp(0, sw - 1), y.clamp(0, sh - 1)),
        };
        f32::from(raw[(y as usize * sw as usize + x as usize) * 3 + ch])
    };
    std::array::from_fn(|ch| {
        let top = px(x0, y0, ch) * (1.0 - fx) + px(x0 + 1, y0, ch) * fx;
        let bottom = px(x0, y0 + 1, ch) * (1.0 - fx) + px(x0 + 1, y0 + 1, ch) * fx;
        (top * (1.0 - fy) + bottom * fy + 0.5).clamp(0.0, 255.0) as u8
    })
}

fn floor(v: f32) -> i64 {
    let t = v as i64;
    if (t as f32) > v { t - 1 } else { t }
}

/// Resizes to `width` x `height` (OpenCV `INTER_LINEAR` geometry; blocks averaged first when
/// shrinking more than 2x).
pub fn resize(src: &RgbImage, width: u32, height: u32) -> RgbImage {
    if src.dimensions() == (width, height) {
        return src.clone();
    }
    let sx = width as f32 / src.width() as f32;
    let sy = height as f32 / src.height() as f32;
    // Pixel centres: dst x maps to src (x + 0.5) / sx - 0.5.
    let forward = Affine([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5]]);
    warp(src, &forward, width, height, Border::Replicate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filtered_warp_averages_when_shrinking() {
        // Stripes one pixel wide: sampling aliases, averaging gives the mean grey.
        let src =
            RgbImage::from_fn(
                400,
                400,
                |x, _| if x % 2 == 0 { image::Rgb([0; 3]) } else { image::Rgb([200; 3]) },
            );
        let shrink = Affine::crop_scale(0.0, 0.0, 0.25);
        let out = warp_affine_filtered(&src, &shrink, 100, 100);
        assert!(out.get_pixel(50, 50).0[0].abs_diff(100) <= 2, "{:?}", out.get_pixel(50, 50));
    }

    #[test]
    fn identity_warp_is_exact() {
        let src = RgbImage::from_fn(7, 5, |x, y| image::Rgb([x as u8 * 10, y as u8 * 20, 3]));
        let out = warp_affine(&src, &Affine([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), 7, 5);
        assert_eq!(out, src);
    }

    #[test]
    fn translation_moves_pixels_and_fills_zero() {
        let src = RgbImage::from_fn(4, 4, |x, y| image::Rgb([1 + x as u8, 1 + y as u8, 9]));
        let out = warp_affine(&src, &Affine::crop_scale(-1.0, 0.0, 1.0), 4, 4);
        assert_eq!(out.get_pixel(1, 2).0, src.get_pixel(0, 2).0);
        assert_eq!(out.get_pixel(0, 0).0, [0, 0, 0]);
    }

    #[test]
    fn inverse_round_trips() {
        let m = Affine([[0.8, -0.3, 12.0], [0.3, 0.8, -4.0]]);
        let inv = m.inverse().expect("invertible");
        let (x, y) = inv.apply(m.apply(3.0, 7.0).0, m.apply(3.0, 7.0).1);
        assert!((x - 3.0).abs() < 1e-4 && (y - 7.0).abs() < 1e-4);
    }

    #[test]
    fn box_reduce_averages_blocks() {
        let src = RgbImage::from_fn(4, 2, |x, _| image::Rgb([if x < 2 { 10 } else { 30 }, 0, 0]));
        let out = box_reduce(&src, [0, 0, 4, 2], 2);
        assert_eq!(out.dimensions(), (2, 1));
        assert_eq!(out.get_pixel(0, 0).0[0], 10);
        assert_eq!(out.get_pixel(1, 0).0[0], 30);
    }

    #[test]
    fn box_reduce_matches_plain_averaging() {
        let src = RgbImage::from_fn(61, 47, |x, y| {
            image::Rgb([(x * 37 + y * 11) as u8, (x * y) as u8, 255 - ((x + 3 * y) % 256) as u8])
        });
        for k in 2..=9 {
            for region in [[0, 0, 61, 47], [5, 3, 58, 40], [7, 9, 7 + k + 1, 9 + 2 * k - 1]] {
                let [x0, y0, x1, y1] = region;
                let out = box_reduce(&src, region, k);
                assert_eq!(out.dimensions(), ((x1 - x0).div_ceil(k), (y1 - y0).div_ceil(k)));
                for (ox, oy, p) in out.enumerate_pixels() {
                    let xs = x0 + ox * k..(x0 + (ox + 1) * k).min(x1);
                    let ys = y0 + oy * k..(y0 + (oy + 1) * k).min(y1);
                    let n = xs.len() as u32 * ys.len() as u32;
                    let want: [u8; 3] = std::array::from_fn(|c| {
                        let sum: u32 = ys
                            .clone()
                            .flat_map(|y| xs.clone().map(move |x| (x, y)))
                            .map(|(x, y)| u32::from(src.get_pixel(x, y).0[c]))
                            .sum();
                        ((sum + n / 2) / n) as u8
                    });
                    assert_eq!(p.0, want, "k {k} region {region:?} at ({ox}, {oy})");
                }
            }
        }
    }

    /// Bilinear sample of `src` at (sx, sy), one pixel at a time, as the general warp computes it.
    fn naive(src: &RgbImage, sx: f32, sy: f32, border: Border) -> [u8; 3] {
        let (w, h) = (src.width() as i64, src.height() as i64);
        let px = |x: i64, y: i64, c: usize| -> f32 {
            let (x, y) = match border {
                Border::Zero if x < 0 || y < 0 || x >= w || y >= h => return 0.0,
                Border::Zero => (x, y),
                Border::Replicate => (x.clamp(0, w - 1), y.clamp(0, h - 1)),
            };
            f32::from(src.get_pixel(x as u32, y as u32).0[c])
        };
        let (x0, y0) = (floor(sx), floor(sy));
        let (fx, fy) = (sx - x0 as f32, sy - y0 as f32);
        std::array::from_fn(|c| {
            let top = px(x0, y0, c) * (1.0 - fx) + px(x0 + 1, y0, c) * fx;
            let bottom = px(x0, y0 + 1, c) * (1.0 - fx) + px(x0 + 1, y0 + 1, c) * fx;
            (top * (1.0 - fy) + bottom * fy + 0.5).clamp(0.0, 255.0) as u8
        })
    }

    #[test]
    fn scaling_without_rotation_matches_per_pixel_sampling() {
        let src = RgbImage::from_fn(37, 23, |x, y| {
            image::Rgb([(x * 7) as u8, (y * 11) as u8, ((x * y) % 251) as u8])
        });
        for border in [Border::Zero, Border::Replicate] {
            // Shrink, enlarge, a crop reaching past every edge, and integer shifts (a copy when
            // inside the image).
            for m in [
                Affine::crop_scale(0.0, 0.0, 0.6),
                Affine::crop_scale(3.5, 2.25, 1.7),
                Affine::crop_scale(-6.0, -4.0, 0.9),
                Affine::crop_scale(-2.0, 3.0, 1.0),
                Affine::crop_scale(2.0, 3.0, 1.0),
            ] {
                for (w, h) in [(41, 29), (20, 15)] {
                    let out = warp_bilinear(&src, &m, w, h, border);
                    let inv = m.inverse().expect("invertible");
                    for (x, y, p) in out.enumerate_pixels() {
                        let (sx, sy) = inv.apply(x as f32, y as f32);
                        let outside = border == Border::Zero
                            && (floor(sx) < -1 || floor(sy) < -1 || floor(sx) >= 37 || floor(sy) >= 23);
                        let want = if outside { [0; 3] } else { naive(&src, sx, sy, border) };
                        assert_eq!(p.0, want, "{border:?} {m:?} {w}x{h} at ({x}, {y})");
                    }
                }
            }
        }
    }

    #[test]
    fn uniform_image_stays_uniform_when_resized() {
        let src = RgbImage::from_pixel(1000, 600, image::Rgb([50, 100, 150]));
        let out = resize(&src, 320, 192);
        assert!(out.pixels().all(|p| p.0 == [50, 100, 150]), "edges must replicate, not darken");
    }
}
