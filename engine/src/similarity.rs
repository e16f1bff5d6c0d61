//! Similarity of unit-length vectors: a dot product, with SIMD kernels chosen at run time.
//!
//! Embeddings are normalised once when they are made, so cosine similarity is a plain dot product.
//! Kernels: AVX-512F and AVX2+FMA on x86_64, NEON on aarch64, and a scalar one everywhere; all give
//! the same result within float rounding (tested against the scalar one).

use std::sync::OnceLock;

use rayon::prelude::*;

type Kernel = fn(&[f32], &[f32]) -> f32;
type KernelI8 = fn(&[i8], &[i8], &[i32], &mut [i32]);

/// Integer dot products of the int8 `query` with each row of `codes` (rows of `query.len()`
/// bytes), into `out`: the [`crate::CompactIndex`] scan. `query` values must lie in -63..=63,
/// codes in -127..=127, and `code_sums` hold each row's sum: the AVX2 kernel multiplies the query
/// shifted to 1..=127 as unsigned bytes (`vpmaddubsw`, which cannot saturate in those ranges) and
/// takes 64 times the row's sum off. One call per block of rows.
pub fn dot_i8_rows(query: &[i8], codes: &[i8], code_sums: &[i32], out: &mut [i32]) {
    static KERNEL: OnceLock<KernelI8> = OnceLock::new();
    let kernel = KERNEL.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            return simd::dot_i8_rows_avx2;
        }
        dot_i8_rows_portable
    });
    kernel(query, codes, code_sums, out);
}

fn dot_i8_rows_portable(query: &[i8], codes: &[i8], _: &[i32], out: &mut [i32]) {
    if query.is_empty() {
        return;
    }
    for (row, o) in codes.chunks_exact(query.len()).zip(out.iter_mut()) {
        *o = dot_i8_portable(query, row);
    }
}

/// The portable int8 kernel: pairs of widened products summed into sixteen i32 lanes, the shape
/// of a 16-bit multiply-add (`pmaddwd`), which the compiler emits at the target's width.
#[inline(always)]
fn dot_i8_portable(a: &[i8], b: &[i8]) -> i32 {
    let mut sums = [0i32; 16];
    let (ca, cb) = (a.chunks_exact(32), b.chunks_exact(32));
    let tail: i32 =
        ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| i32::from(*x) * i32::from(*y)).sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..16 {
            let (x0, x1) = (i32::from(i16::from(x[2 * k])), i32::from(i16::from(x[2 * k + 1])));
            let (y0, y1) = (i32::from(i16::from(y[2 * k])), i32::from(i16::from(y[2 * k + 1])));
            sums[k] += x0 * y0 + x1 * y1;
        }
    }
    sums.iter().sum::<i32>() + tail
}

/// Dot product of two slices of equal length (extra elements of the longer one are ignored).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    static KERNEL: OnceLock<(Kernel, &'static str)> = OnceLock::new();
    let n = a.len().min(b.len());
    (KERNEL.get_or_init(select).0)(&a[..n], &b[..n])
}

/// Name of the kernel [`dot`] uses on this machine (`avx512`, `avx2`, `neon` or `scalar`).
pub fn kernel_name() -> &'static str {
    select().1
}

fn select() -> (Kernel, &'static str) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return (simd::dot_avx512, "avx512");
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return (simd::dot_avx2, "avx2");
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        return (simd::dot_neon, "neon");
    }
    #[allow(unreachable_code)]
    (dot_scalar, "scalar")
}

/// Independent partial sums in the portable kernel.
const SCALAR_LANES: usize = 8;

/// The portable kernel: eight independent accumulators so the compiler can vectorise it.
pub fn dot_scalar(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; SCALAR_LANES];
    let chunks = n / SCALAR_LANES;
    for i in 0..chunks {
        for j in 0..SCALAR_LANES {
            acc[j] += a[i * SCALAR_LANES + j] * b[i * SCALAR_LANES + j];
        }
    }
    let mut sum = acc.iter().sum::<f32>();
    for i in chunks * SCALAR_LANES..n {
        sum += a[i] * b[i];
    }
    sum
}

#[allow(unsafe_code)]
mod simd {
    //! SAFETY (whole module): each `unsafe` block calls a `#[target_feature]` function or intrinsic
    //! only after `select` (or `dot_i8_rows`) has checked at run time that the CPU has that feature, and every load
    //! reads `8` or `16` floats at an index `i` with `i + width <= n <= a.len(), b.len()`.

    #[cfg(target_arch = "x86_64")]
    use std::arch::x86_64::*;

    #[cfg(target_arch = "x86_64")]
    pub(super) fn dot_i8_rows_avx2(query: &[i8], codes: &[i8], sums: &[i32], out: &mut [i32]) {
        if query.is_empty() || !query.len().is_multiple_of(32) {
            return super::dot_i8_rows_portable(query, codes, sums, out);
        }
        // SAFETY: chosen only when avx2 is present (see `dot_i8_rows`); loads below stay inside
        // `codes` (whole rows of `query.len()` bytes, 32 at a time).
        unsafe { i8_rows_avx2(query, codes, sums, out) }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn i8_rows_avx2(query: &[i8], codes: &[i8], sums: &[i32], out: &mut [i32]) {
        let d = query.len();
        let ones = _mm256_set1_epi16(1);
        let shifted: Vec<__m256i> = query
            .chunks_exact(32)
            .map(|c| {
                let u: [u8; 32] = std::array::from_fn(|i| (i16::from(c[i]) + 64) as u8);
                // SAFETY: 32 bytes from a 32-byte array.
                unsafe { _mm256_loadu_si256(u.as_ptr().cast()) }
            })
            .collect();
        for ((row, sum), o) in codes.chunks_exact(d).zip(sums).zip(out.iter_mut()) {
            let mut acc = _mm256_setzero_si256();
            for (k, q) in shifted.iter().enumerate() {
                // SAFETY: bytes k*32..k*32+32 of a row of d = 32 * shifted.len() bytes.
                let c = unsafe { _mm256_loadu_si256(row.as_ptr().add(k * 32).cast()) };
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(*q, c), ones));
            }
            let s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256::<1>(acc));
            let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
            let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
            *o = _mm_cvtsi128_si32(s) - 64 * sum;
        }
    }

    #[cfg(target_arch = "x86_64")]
    pub(super) fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: chosen only when avx2 and fma are present (see module docs).
        unsafe { avx2(a, b) }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let (mut s0, mut s1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut i = 0;
        // SAFETY: all loads are within [0, n).
        unsafe {
            while i + 16 <= n {
                s0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), s0);
                s1 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i + 8)), _mm256_loadu_ps(pb.add(i + 8)), s1);
                i += 16;
            }
            if i + 8 <= n {
                s0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), s0);
                i += 8;
            }
        }
        let s = _mm256_add_ps(s0, s1);
        let hi = _mm256_extractf128_ps(s, 1);
        let lo = _mm256_castps256_ps128(s);
        let q = _mm_add_ps(hi, lo);
        let q = _mm_add_ps(q, _mm_movehl_ps(q, q));
        let q = _mm_add_ss(q, _mm_shuffle_ps(q, q, 1));
        let mut sum = _mm_cvtss_f32(q);
        for j in i..n {
            sum += a[j] * b[j];
        }
        sum
    }

    #[cfg(target_arch = "x86_64")]
    pub(super) fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: chosen only when avx512f is present (see module docs).
        unsafe { avx512(a, b) }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut s = _mm512_setzero_ps();
        let mut i = 0;
        // SAFETY: all loads are within [0, n).
        unsafe {
            while i + 16 <= n {
                s = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), s);
                i += 16;
            }
        }
        let mut sum = _mm512_reduce_add_ps(s);
        for j in i..n {
            sum += a[j] * b[j];
        }
        sum
    }

    #[cfg(target_arch = "aarch64")]
    pub(super) fn dot_neon(a: &[f32], b: &[f32]) -> f32 {
        use std::arch::aarch64::*;
        let n = a.len().min(b.len());
        let mut i = 0;
        // SAFETY: NEON is part of the aarch64 baseline; loads are within [0, n).
        let mut sum = unsafe {
            let (mut s0, mut s1) = (vdupq_n_f32(0.0), vdupq_n_f32(0.0));
            while i + 8 <= n {
                s0 = vfmaq_f32(s0, vld1q_f32(a.as_ptr().add(i)), vld1q_f32(b.as_ptr().add(i)));
                s1 = vfmaq_f32(s1, vld1q_f32(a.as_ptr().add(i + 4)), vld1q_f32(b.as_ptr().add(i + 4)));
                i += 8;
            }
            vaddvq_f32(vaddq_f32(s0, s1))
        };
        for j in i..n {
            sum += a[j] * b[j];
        }
        sum
    }
}

/// One hit of a search: the row's position and its similarity.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hit {
    /// Row index in the searched matrix.
    pub row: usize,
    /// Similarity (dot product).
    pub score: f32,
}

/// The `k` rows of `matrix` most similar to `query`, best first (ties: lower row first).
pub fn top_k(query: &[f32], matrix: &[f32], dim: usize, k: usize) -> Vec<Hit> {
    if dim == 0 || k == 0 {
        return Vec::new();
    }
    // Each rayon task keeps its own best k; the partial lists are merged.
    let rows = matrix.len() / dim;
    let chunk = rows.div_ceil(rayon::current_num_threads().max(1) * 4).max(1024);
    let partial: Vec<Vec<Hit>> = matrix
        .par_chunks(chunk * dim)
        .enumerate()
        .map(|(c, block)| {
            let mut best: Vec<Hit> = Vec::with_capacity(k + 1);
            for (i, row) in block.chunks_exact(dim).enumerate() {
                let hit = Hit { row: c * chunk + i, score: dot(query, row) };
                if best.len() < k || better(&hit, &best[best.len() - 1]) {
                    let at = best.partition_point(|h| better(h, &hit));
                    best.insert(at, hit);
                    best.truncate(k);
                }
            }
            best
        })
        .collect();
    let mut all: Vec<Hit> = partial.into_iter().flatten().collect();
    all.sort_by(|a, b| if better(a, b) { std::cmp::Ordering::Less } else { std::cmp::Ordering::Greater });
    all.truncate(k);
    all
}

fn better(a: &Hit, b: &Hit) -> bool {
    a.score > b.score || (a.score == b.score && a.row < b.row)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_int8_kernel_in_use_equals_the_portable_one_at_the_range_ends() {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut next = |m: i64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 33) as i64 % (2 * m + 1) - m) as i8
        };
        let query: Vec<i8> = (0..128).map(|i| if i % 17 == 0 { 63 } else { next(63) }).collect();
        let mut codes: Vec<i8> = (0..128 * 50).map(|_| next(127)).collect();
        codes[..128].fill(127);
        codes[128..256].fill(-127);
        let sums: Vec<i32> = codes.chunks(128).map(|r| r.iter().map(|c| i32::from(*c)).sum()).collect();
        let mut out = vec![0i32; 50];
        dot_i8_rows(&query, &codes, &sums, &mut out);
        for (r, row) in codes.chunks(128).enumerate() {
            let want: i32 = row.iter().zip(&query).map(|(c, q)| i32::from(*c) * i32::from(*q)).sum();
            assert_eq!(out[r], want, "row {r}");
        }
    }

    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn simd_equals_scalar(v in proptest::collection::vec((-1.0f32..1.0, -1.0f32..1.0), 1..1024)) {
            let (a, b): (Vec<f32>, Vec<f32>) = v.into_iter().unzip();
            let want = dot_scalar(&a, &b);
            prop_assert!((dot(&a, &b) - want).abs() <= 1e-5 * (1.0 + want.abs()), "{} vs {want}", dot(&a, &b));
        }

        #[test]
        fn top_k_equals_a_full_sort(rows in 1usize..3000, k in 1usize..40, seed in 0u64..1000) {
            let dim = 13;
            let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            let mut next = || { x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407); ((x >> 40) as f32 / (1u64 << 24) as f32) - 0.5 };
            let matrix: Vec<f32> = (0..rows * dim).map(|_| next()).collect();
            let query: Vec<f32> = (0..dim).map(|_| next()).collect();
            let mut all: Vec<Hit> = (0..rows).map(|r| Hit { row: r, score: dot(&query, &matrix[r * dim..(r + 1) * dim]) }).collect();
            all.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.row.cmp(&b.row)));
            all.truncate(k);
            prop_assert_eq!(top_k(&query, &matrix, dim, k), all);
        }
    }

    #[test]
    fn every_kernel_on_this_machine_matches_scalar() {
        let a: Vec<f32> = (0..1031).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..1031).map(|i| (i as f32 * 0.11).cos()).collect();
        let want = dot_scalar(&a, &b);
        assert!((dot(&a, &b) - want).abs() < 1e-3, "{} kernel", kernel_name());
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            assert!((simd::dot_avx2(&a, &b) - want).abs() < 1e-3);
        }
    }
}
