//! Block averaging: the first step of shrinking more than 2x, exact to the rounding of plain
//! averaging (see `box_reduce_matches_plain_averaging` in the parent's tests).

use image::RgbImage;

/// Averages `k x k` blocks of the region `[x0, y0, x1, y1)` of `src` (blocks cut by the region's
/// right or bottom edge average what there is).
pub(super) fn box_reduce(src: &RgbImage, [x0, y0, x1, y1]: [u32; 4], k: u32) -> RgbImage {
    let (w, h) = (x1 - x0, y1 - y0);
    let (ow, oh) = (w.div_ceil(k), h.div_ceil(k));
    let mut out = RgbImage::new(ow, oh);
    let stride = src.width() as usize * 3;
    let raw = src.as_raw();
    let ku = k as usize;
    let whole = (w / k) as usize * 3; // output bytes of blocks k columns wide
    // Each block row: source rows summed column by column (contiguous, so it vectorises), then
    // each block's columns summed.
    let mut line = vec![0u32; w as usize * 3];
    for (oy, dst) in out.as_mut().chunks_exact_mut(ow as usize * 3).enumerate() {
        line.fill(0);
        let top = y0 + oy as u32 * k;
        let bottom = (top + k).min(y1);
        for y in top..bottom {
            let start = y as usize * stride + x0 as usize * 3;
            for (l, &v) in line.iter_mut().zip(&raw[start..start + w as usize * 3]) {
                *l += u32::from(v);
            }
        }
        let rows = bottom - top;
        let (body, edge) = dst.split_at_mut(whole);
        let divide = Divider::new(k * rows);
        match k {
            2 => sum_blocks::<2>(body, &line, divide),
            3 => sum_blocks::<3>(body, &line, divide),
            4 => sum_blocks::<4>(body, &line, divide),
            _ => {
                for (d, block) in body.chunks_exact_mut(3).zip(line.chunks_exact(3 * ku)) {
                    let sum: [u32; 3] = std::array::from_fn(|c| block.iter().skip(c).step_by(3).sum());
                    d.copy_from_slice(&sum.map(|s| divide.rounded(s) as u8));
                }
            }
        }
        if !edge.is_empty() {
            // The block cut by the region's right edge.
            let block = &line[whole / 3 * ku * 3..];
            let divide = Divider::new((block.len() / 3) as u32 * rows);
            let sum: [u32; 3] = std::array::from_fn(|c| block.iter().skip(c).step_by(3).sum());
            edge.copy_from_slice(&sum.map(|s| divide.rounded(s) as u8));
        }
    }
    out
}

/// Each `K`-pixel block of `line` (RGB sums) into one pixel of `dst`, divided and rounded.
fn sum_blocks<const K: usize>(dst: &mut [u8], line: &[u32], divide: Divider) {
    for (d, block) in dst.chunks_exact_mut(3).zip(line.chunks_exact(3 * K)) {
        let sum: [u32; 3] = std::array::from_fn(|c| (0..K).map(|j| block[3 * j + c]).sum());
        d.copy_from_slice(&sum.map(|s| divide.rounded(s) as u8));
    }
}

/// Rounded division of pixel sums by a block's pixel count `n`, without a divide instruction where
/// it can: a shift for powers of two, else a multiply-shift, exact for `n < 4096` and sums up to
/// `255 n` since then `(x + n / 2) * n < 2^32`, so `floor(x * ceil(2^32 / n) / 2^32) == floor(x / n)`.
#[derive(Clone, Copy)]
enum Divider {
    Shift(u32, u32),
    Magic(u32, u64),
    Plain(u32),
}

impl Divider {
    fn new(n: u32) -> Self {
        if n.is_power_of_two() {
            Divider::Shift(n / 2, n.trailing_zeros())
        } else if n < 4096 {
            Divider::Magic(n, (1u64 << 32).div_ceil(u64::from(n)))
        } else {
            Divider::Plain(n)
        }
    }

    /// `round(sum / n)`, halves up.
    fn rounded(self, sum: u32) -> u32 {
        match self {
            Divider::Shift(half, shift) => (sum + half) >> shift,
            Divider::Magic(n, m) => ((u64::from(sum + n / 2) * m) >> 32) as u32,
            Divider::Plain(n) => (sum + n / 2) / n,
        }
    }
}
