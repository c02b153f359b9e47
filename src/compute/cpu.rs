//! The reference CPU backend: packed, SIMD matrix products from the `gemm` crate (threads
//! natively when asked), and plain loops the compiler vectorises for everything elementwise.

use super::{small, AdamScalars, Compute, Operand};
use crate::core::lanes::relu;

/// CPU kernels. `threads` bounds the threads one matrix product may use (1 = this thread only;
/// always 1 on wasm32, which has no threads without SharedArrayBuffer).
#[derive(Clone, Debug)]
pub struct CpuBackend {
    threads: usize,
    small: SmallKernel,
    /// x86-64 with AVX2 and FMA (detected at run time): the elementwise kernels use them.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    avx2: bool,
}

/// Which build of the small-shape product (`small.rs`) this machine runs, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmallKernel {
    /// Separate multiply and add in the target's baseline SIMD (SIMD128 on wasm32).
    Plain,
    /// Fused multiply-add in the baseline instruction set (NEON on aarch64).
    Fused,
    /// Fused multiply-add with AVX2, chosen at run time on x86-64; the elementwise kernels
    /// (exp, Adam) then run their AVX2 builds too.
    Avx2Fma,
    /// Every product goes to the `gemm` crate; elementwise kernels at the baseline.
    Off,
}

impl SmallKernel {
    /// The best build this machine supports.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                SmallKernel::Avx2Fma
            } else {
                SmallKernel::Off
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            SmallKernel::Fused
        }
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        {
            SmallKernel::Plain
        }
    }
}

/// The small kernel with AVX2 and FMA enabled for this function alone: the rest of the native
/// build stays at the baseline instruction set.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments, reason = "the BLAS shape")]
fn small_gemm_avx2(
    alpha: f32,
    a: Operand<'_>,
    b: Operand<'_>,
    beta: f32,
    c: &mut [f32],
    m: usize,
    n: usize,
    k: usize,
) {
    if m <= 8 {
        small::gemm::<true, 8, 8>(alpha, a, b, beta, c, m, n, k);
    } else {
        small::gemm::<true, 16, 4>(alpha, a, b, beta, c, m, n, k);
    }
}

/// The elementwise kernels, written once and compiled twice on x86-64: at the baseline and, in
/// the `*_avx2` wrappers, with AVX2 for twice the vector width. Neither contracts a multiply and
/// an add into an FMA (Rust never does implicitly), so both builds give bit-identical results.
#[inline(always)]
fn adam_slices(param: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32], s: AdamScalars) {
    let (b1, b2) = (s.beta1, s.beta2);
    for (((p, &g), mi), vi) in param.iter_mut().zip(grad).zip(m).zip(v) {
        *mi = b1 * *mi + (1.0 - b1) * g;
        *vi = b2 * *vi + (1.0 - b2) * g * g;
        let denom = vi.sqrt() / s.bias2_sqrt + s.eps;
        *p -= s.step_size * *mi / denom;
    }
}

#[inline(always)]
fn exp_slices(x: &[f32], out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = fast_exp(v);
    }
}

/// The fused log-code step (see `Compute::adam_log_codes`): the same arithmetic, in the same
/// order, as the separate L1, chain-rule, Adam and exp passes it replaces.
#[inline(always)]
#[allow(clippy::too_many_arguments, reason = "mirrors the trait's kernel")]
fn log_codes_slices(
    u: &mut [f32],
    codes: &mut [f32],
    grad_s: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    l1_scale: f32,
    s: AdamScalars,
) {
    let (b1, b2) = (s.beta1, s.beta2);
    for ((((ui, ci), &gs), mi), vi) in u.iter_mut().zip(codes.iter_mut()).zip(grad_s).zip(m).zip(v)
    {
        let code = *ci;
        // d|s|/ds = sign(s), 0 at 0 (PyTorch's convention), as a select.
        let sign = if code > 0.0 {
            1.0
        } else if code < 0.0 {
            -1.0
        } else {
            0.0
        };
        let g = (gs + sign * l1_scale) * code;
        *mi = b1 * *mi + (1.0 - b1) * g;
        *vi = b2 * *vi + (1.0 - b2) * g * g;
        let denom = vi.sqrt() / s.bias2_sqrt + s.eps;
        *ui -= s.step_size * *mi / denom;
        *ci = fast_exp(*ui);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments, reason = "mirrors the trait's kernel")]
fn log_codes_avx2(
    u: &mut [f32],
    codes: &mut [f32],
    grad_s: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    l1_scale: f32,
    s: AdamScalars,
) {
    log_codes_slices(u, codes, grad_s, m, v, l1_scale, s);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn adam_avx2(param: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32], s: AdamScalars) {
    adam_slices(param, grad, m, v, s);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn exp_avx2(x: &[f32], out: &mut [f32]) {
    exp_slices(x, out);
}

/// Whether a product of this shape goes to the small kernel built as `build`.
///
/// Every build needs op(A), padded, small enough to stay in cache while it is re-read for every
/// block of C's columns. The AVX2 build then only takes the shapes it was measured to win (the
/// per-product table of `sparse-playground bench`): C at most 8 rows high, where the `gemm`
/// crate's 16-row AVX-512 micro-kernels leave half their lanes empty; taller products go to
/// the crate. The baseline
/// builds (SIMD128, NEON) take every product with one side of at most 64. On wasm32 the
/// crate has no SIMD micro-kernel, so there every product takes this one, which blocks itself
/// for the caches when op(A) is large (the real-activation sizes: 1,152 x 576 by 576 x 256).
fn small_shape(build: SmallKernel, m: usize, n: usize, k: usize) -> bool {
    if cfg!(target_arch = "wasm32") && build == SmallKernel::Plain {
        return true;
    }
    let a_cached = m.div_ceil(small::MR_MAX) * small::MR_MAX * k <= 256 * 1024;
    a_cached
        && match build {
            SmallKernel::Avx2Fma => m <= 8,
            SmallKernel::Plain | SmallKernel::Fused => m.min(n).min(k) <= 64,
            SmallKernel::Off => false,
        }
}

impl Default for CpuBackend {
    fn default() -> Self {
        Self::new(1)
    }
}

impl CpuBackend {
    pub fn new(threads: usize) -> Self {
        Self::with_small_kernel(threads, SmallKernel::detect())
    }

    /// A backend with the small-shape kernel forced (tests and benches compare the builds);
    /// `Avx2Fma` on a machine without AVX2 and FMA falls back to `Off`.
    pub fn with_small_kernel(threads: usize, small: SmallKernel) -> Self {
        let threads = if cfg!(target_arch = "wasm32") {
            1
        } else {
            threads.max(1)
        };
        let small = match small {
            SmallKernel::Avx2Fma if SmallKernel::detect() != SmallKernel::Avx2Fma => {
                SmallKernel::Off
            }
            other => other,
        };
        Self {
            threads,
            small,
            avx2: small == SmallKernel::Avx2Fma,
        }
    }

    pub fn small_kernel(&self) -> SmallKernel {
        self.small
    }

    /// Chunk length for spreading an elementwise pass of `len` over the backend's threads, or
    /// `None` to run it on this thread (one thread, or too short to repay the hand-off).
    #[cfg(not(target_arch = "wasm32"))]
    fn split(&self, len: usize) -> Option<usize> {
        (self.threads > 1 && len >= PAR_MIN)
            .then(|| len.div_ceil(self.threads).next_multiple_of(64))
    }

    fn adam_serial(
        &self,
        param: &mut [f32],
        grad: &[f32],
        m: &mut [f32],
        v: &mut [f32],
        s: AdamScalars,
    ) {
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: `avx2` is set only after run-time detection of AVX2 and FMA.
            return unsafe { adam_avx2(param, grad, m, v, s) };
        }
        adam_slices(param, grad, m, v, s);
    }

    fn exp_serial(&self, x: &[f32], out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: `avx2` is set only after run-time detection of AVX2 and FMA.
            return unsafe { exp_avx2(x, out) };
        }
        exp_slices(x, out);
    }

    #[allow(clippy::too_many_arguments, reason = "mirrors the trait's kernel")]
    fn log_codes_serial(
        &self,
        u: &mut [f32],
        codes: &mut [f32],
        grad_s: &[f32],
        m: &mut [f32],
        v: &mut [f32],
        l1_scale: f32,
        s: AdamScalars,
    ) {
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: `avx2` is set only after run-time detection of AVX2 and FMA.
            return unsafe { log_codes_avx2(u, codes, grad_s, m, v, l1_scale, s) };
        }
        log_codes_slices(u, codes, grad_s, m, v, l1_scale, s);
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    fn parallelism(&self) -> gemm::Parallelism {
        #[cfg(not(target_arch = "wasm32"))]
        if self.threads > 1 {
            return gemm::Parallelism::Rayon(self.threads);
        }
        gemm::Parallelism::None
    }
}

/// (row stride, column stride) of op(A) for column-major storage.
fn strides(op: &Operand<'_>) -> (isize, isize) {
    if op.transposed {
        (op.rows as isize, 1)
    } else {
        (1, op.rows as isize)
    }
}

impl Compute for CpuBackend {
    fn name(&self) -> String {
        format!(
            "cpu ({} thread{})",
            self.threads,
            if self.threads == 1 { "" } else { "s" }
        )
    }

    #[allow(clippy::too_many_arguments, reason = "mirrors the trait's BLAS shape")]
    fn gemm(
        &self,
        alpha: f32,
        a: Operand<'_>,
        b: Operand<'_>,
        beta: f32,
        c: &mut [f32],
        c_rows: usize,
        c_cols: usize,
    ) {
        let (m, k) = a.shape();
        let (k2, n) = b.shape();
        assert_eq!(
            k, k2,
            "gemm: inner dimensions differ ({m}x{k} times {k2}x{n})"
        );
        assert_eq!((m, n), (c_rows, c_cols), "gemm: output shape mismatch");
        assert_eq!(
            c.len(),
            m * n,
            "gemm: output storage does not match its shape"
        );
        if m == 0 || n == 0 {
            return;
        }
        if k == 0 {
            if beta == 0.0 {
                c.fill(0.0);
            } else {
                c.iter_mut().for_each(|v| *v *= beta);
            }
            return;
        }
        if small_shape(self.small, m, n, k) {
            match self.small {
                SmallKernel::Plain => {
                    return small::gemm::<false, 8, 4>(alpha, a, b, beta, c, m, n, k);
                }
                // A fused multiply-add is a library call per element on wasm32.
                #[cfg(not(target_arch = "wasm32"))]
                SmallKernel::Fused => {
                    return small::gemm::<true, 8, 4>(alpha, a, b, beta, c, m, n, k);
                }
                #[cfg(target_arch = "x86_64")]
                SmallKernel::Avx2Fma => {
                    // SAFETY: `Avx2Fma` is only ever stored after run-time detection of both
                    // features (`with_small_kernel` downgrades it otherwise).
                    return unsafe { small_gemm_avx2(alpha, a, b, beta, c, m, n, k) };
                }
                _ => {}
            }
        }
        let (a_rs, a_cs) = strides(&a);
        let (b_rs, b_cs) = strides(&b);
        // SAFETY: the asserts above tie every pointer's extent to the shapes passed in: a holds
        // m*k values, b holds k*n, c holds m*n, all column-major with the strides computed from
        // those shapes, and c does not alias a or b (it is a unique borrow).
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                c.as_mut_ptr(),
                m as isize,
                1,
                beta != 0.0,
                a.data.as_ptr(),
                a_cs,
                a_rs,
                b.data.as_ptr(),
                b_cs,
                b_rs,
                beta,
                alpha,
                false,
                false,
                false,
                self.parallelism(),
            );
        }
    }

    fn adam_update(
        &self,
        param: &mut [f32],
        grad: &[f32],
        m: &mut [f32],
        v: &mut [f32],
        s: AdamScalars,
    ) {
        assert!(param.len() == grad.len() && m.len() == grad.len() && v.len() == grad.len());
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(chunk) = self.split(grad.len()) {
            use rayon::prelude::*;
            param
                .par_chunks_mut(chunk)
                .zip(grad.par_chunks(chunk))
                .zip(m.par_chunks_mut(chunk))
                .zip(v.par_chunks_mut(chunk))
                .for_each(|(((p, g), m), v)| self.adam_serial(p, g, m, v, s));
            return;
        }
        self.adam_serial(param, grad, m, v, s);
    }

    fn relu(&self, data: &mut [f32]) {
        let pass = |d: &mut [f32]| d.iter_mut().for_each(|v| *v = relu(*v));
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(chunk) = self.split(data.len()) {
            use rayon::prelude::*;
            data.par_chunks_mut(chunk).for_each(pass);
            return;
        }
        pass(data);
    }

    fn relu_backward(&self, grad: &mut [f32], out: &[f32]) {
        assert_eq!(grad.len(), out.len());
        let pass = |g: &mut [f32], o: &[f32]| {
            for (gi, &oi) in g.iter_mut().zip(o) {
                *gi = if oi > 0.0 { *gi } else { 0.0 };
            }
        };
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(chunk) = self.split(grad.len()) {
            use rayon::prelude::*;
            grad.par_chunks_mut(chunk)
                .zip(out.par_chunks(chunk))
                .for_each(|(g, o)| pass(g, o));
            return;
        }
        pass(grad, out);
    }

    fn exp(&self, x: &[f32], out: &mut [f32]) {
        assert_eq!(x.len(), out.len());
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(chunk) = self.split(x.len()) {
            use rayon::prelude::*;
            x.par_chunks(chunk)
                .zip(out.par_chunks_mut(chunk))
                .for_each(|(x, out)| self.exp_serial(x, out));
            return;
        }
        self.exp_serial(x, out);
    }

    fn adam_log_codes(
        &self,
        log_codes: &mut [f32],
        codes: &mut [f32],
        grad_s: &[f32],
        m: &mut [f32],
        v: &mut [f32],
        l1_scale: f32,
        s: AdamScalars,
    ) {
        let len = grad_s.len();
        assert!(log_codes.len() == len && codes.len() == len && m.len() == len && v.len() == len);
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(chunk) = self.split(len) {
            use rayon::prelude::*;
            log_codes
                .par_chunks_mut(chunk)
                .zip(codes.par_chunks_mut(chunk))
                .zip(grad_s.par_chunks(chunk))
                .zip(m.par_chunks_mut(chunk))
                .zip(v.par_chunks_mut(chunk))
                .for_each(|((((u, c), g), m), v)| {
                    self.log_codes_serial(u, c, g, m, v, l1_scale, s)
                });
            return;
        }
        self.log_codes_serial(log_codes, codes, grad_s, m, v, l1_scale, s);
    }

    fn topk_columns(&self, data: &mut [f32], rows: usize, cols: usize, k: usize) {
        assert_eq!(data.len(), rows * cols);
        if k >= rows {
            return;
        }
        if k == 0 {
            data.fill(0.0);
            return;
        }
        // Short columns (the paper's N = 16): every entry's rank by counting the entries that
        // beat it, without a data-dependent branch (which mispredicts on every other entry of
        // random data); O(rows^2), but in vector compares.
        if rows <= 16 {
            data.chunks_mut(rows)
                .for_each(|col| topk_by_rank::<16>(col, k));
            return;
        }
        if rows <= 64 {
            data.chunks_mut(rows)
                .for_each(|col| topk_by_rank::<64>(col, k));
            return;
        }
        // Small k (the usual case, a few percent of the rows): an insertion list on the stack
        // that rejects most rows with one comparison. Large k: selection in O(rows) per column.
        if k <= SMALL_TOPK {
            let mut kept = [(0f32, 0u32); SMALL_TOPK];
            for col in data.chunks_mut(rows) {
                let mut len = 0;
                for (i, &v) in col.iter().enumerate() {
                    if v.is_nan() || (len == k && v <= kept[k - 1].0) {
                        continue;
                    }
                    // Shift smaller values down one place (the last falls off when full); ties
                    // stay after the earlier row.
                    let mut pos = len;
                    while pos > 0 && kept[pos - 1].0 < v {
                        if pos < k {
                            kept[pos] = kept[pos - 1];
                        }
                        pos -= 1;
                    }
                    kept[pos] = (v, i as u32);
                    len = (len + 1).min(k);
                }
                col.fill(0.0);
                for &(v, i) in &kept[..len] {
                    col[i as usize] = v;
                }
            }
            return;
        }
        let mut order: Vec<u32> = Vec::with_capacity(rows);
        let mut kept: Vec<(f32, u32)> = Vec::with_capacity(k);
        for col in data.chunks_mut(rows) {
            order.clear();
            order.extend(0..rows as u32);
            // Largest first; ties towards the lower row; NaN sorts last.
            order.select_nth_unstable_by(k - 1, |&i, &j| {
                let (a, b) = (col[i as usize], col[j as usize]);
                b.partial_cmp(&a)
                    .unwrap_or_else(|| a.is_nan().cmp(&b.is_nan()))
                    .then(i.cmp(&j))
            });
            kept.clear();
            kept.extend(
                order[..k]
                    .iter()
                    .map(|&i| (col[i as usize], i))
                    .filter(|(v, _)| !v.is_nan()),
            );
            col.fill(0.0);
            for &(v, i) in &kept {
                col[i as usize] = v;
            }
        }
    }
}

/// Top-k of one column of at most `R` rows by ranks: a fixed-width, branch-free count of the
/// entries larger than each entry. Padding rows are NaN, which beats nothing and is never kept.
/// When exactly k entries have fewer than k larger ones, they are the top k; otherwise ties
/// straddle the boundary (rare with real-valued data) and the exact count, where an equal
/// entry in an earlier row also beats, settles them.
#[inline(always)]
fn topk_by_rank<const R: usize>(col: &mut [f32], k: usize) {
    let mut vals = [f32::NAN; R];
    vals[..col.len()].copy_from_slice(col);
    let mut rank = [0u32; R];
    for &vj in col.iter() {
        for (r, &vi) in rank.iter_mut().zip(&vals) {
            *r += u32::from(vj > vi);
        }
    }
    let k32 = k as u32;
    let candidates: usize = rank
        .iter()
        .zip(&vals)
        .map(|(&r, v)| usize::from(r < k32 && !v.is_nan()))
        .sum();
    if candidates > k {
        for (i, (r, &vi)) in rank.iter_mut().zip(&vals).enumerate() {
            *r += vals[..i].iter().filter(|&&vj| vj == vi).count() as u32;
        }
    }
    for ((v, &r), &orig) in col.iter_mut().zip(&rank).zip(&vals) {
        *v = if r < k32 && !orig.is_nan() { orig } else { 0.0 };
    }
}

/// Elementwise passes shorter than this stay on the calling thread (natively, with threads).
#[cfg(not(target_arch = "wasm32"))]
const PAR_MIN: usize = 1 << 18;

/// Up to this k, `topk_columns` keeps a sorted list; beyond it, it selects.
const SMALL_TOPK: usize = 32;

/// e^x in f32 by range reduction to 2^n * e^r with |r| <= ln(2)/2 and a degree-7 polynomial:
/// under 2 ulp over the whole range, branch-free so the loop vectorises. Inputs beyond the f32
/// range saturate to 0 and +inf like `f32::exp`; NaN stays NaN.
#[inline(always)]
pub fn fast_exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split into a part exact in f32 and a correction (Cody-Waite).
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer in the FPU's default mode
    // (|x log2 e| < 2^22 here); unlike `f32::round` it is a plain add, so the loop vectorises
    // even on baseline x86-64, which has no packed rounding instruction before SSE4.1.
    const ROUNDER: f32 = 12_582_912.0;
    let x = x.clamp(-104.0, 89.0);
    let shifted = x * LOG2E + ROUNDER;
    let n = shifted - ROUNDER;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    // Taylor coefficients of e^r up to r^7: the remainder r^8/8! < 1e-8 for |r| <= 0.347.
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    // Scale by 2^n in two halves so that n down to -150 (subnormal results) and up to 128 work.
    // `shifted` lies in [2^23, 2^24), where one unit is one ulp: n is the difference of the bit
    // patterns, integer arithmetic that vectorises (an `as i32` cast saturates NaN lane by lane).
    let n = shifted.to_bits() as i32 - ROUNDER.to_bits() as i32;
    let half = n >> 1;
    let scale1 = f32::from_bits(((half + 127) as u32) << 23);
    let scale2 = f32::from_bits(((n - half + 127) as u32) << 23);
    p * scale1 * scale2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_matches_std_within_two_ulp() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp();
            let got = fast_exp(x) as f64;
            let ulp = (want as f32).abs() * f32::EPSILON;
            worst = worst.max((got - want).abs() / ulp as f64);
            x += 0.0137;
        }
        assert!(worst < 2.0, "worst error {worst} ulp");
        assert_eq!(fast_exp(-200.0), 0.0);
        assert!(fast_exp(200.0).is_infinite());
        assert!(fast_exp(f32::NAN).is_nan());
    }

    #[test]
    fn gemm_transposes_agree_with_naive() {
        let cpu = CpuBackend::new(1);
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        let mut c = vec![1.0f32; m * n];
        cpu.gemm(
            2.0,
            Operand::new(&a, m, k),
            Operand::new(&b, k, n),
            0.5,
            &mut c,
            m,
            n,
        );
        for i in 0..m {
            for j in 0..n {
                let dot: f32 = (0..k).map(|p| a[i + p * m] * b[p + j * k]).sum();
                assert!((c[i + j * m] - (2.0 * dot + 0.5)).abs() < 1e-5);
            }
        }
        // a^T (k x m) stored as m x k: c2 = a^T * a, symmetric.
        let mut c2 = vec![f32::NAN; k * k];
        let op = Operand::new(&a, m, k);
        cpu.gemm(1.0, op.t(), op, 0.0, &mut c2, k, k);
        for i in 0..k {
            for j in 0..k {
                let dot: f32 = (0..m).map(|p| a[p + i * m] * a[p + j * m]).sum();
                assert!((c2[i + j * k] - dot).abs() < 1e-5);
            }
        }
    }

    /// Every selection path (ranks for up to 16 and 64 rows, a sorted list for small k, selection
    /// for large k) against sorting, on columns full of ties and with NaNs.
    #[test]
    fn topk_matches_sorting_with_ties_and_nan() {
        let cpu = CpuBackend::new(1);
        let cols = 9;
        let mut state = 12345u32;
        for rows in [5, 16, 17, 40, 64, 80] {
            let data: Vec<f32> = (0..rows * cols)
                .map(|_| {
                    state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    match state >> 27 {
                        0 => f32::NAN,
                        r => (r % 9) as f32 - 3.0,
                    }
                })
                .collect();
            let ks = [1, 2, 3, 4, 16, SMALL_TOPK, SMALL_TOPK + 1, 50, 79, rows];
            for k in ks.into_iter().filter(|&k| k <= rows) {
                let mut got = data.clone();
                cpu.topk_columns(&mut got, rows, cols, k);
                for (c, (col, out)) in data.chunks(rows).zip(got.chunks(rows)).enumerate() {
                    let mut idx: Vec<usize> = (0..rows).filter(|&i| !col[i].is_nan()).collect();
                    idx.sort_by(|&i, &j| col[j].partial_cmp(&col[i]).unwrap().then(i.cmp(&j)));
                    let mut want = vec![0.0f32; rows];
                    for &i in idx.iter().take(k) {
                        want[i] = col[i];
                    }
                    if k == rows {
                        // k >= rows keeps the column untouched, NaNs included.
                        want.copy_from_slice(col);
                    }
                    let same = out
                        .iter()
                        .zip(&want)
                        .all(|(a, b)| a == b || (a.is_nan() && b.is_nan()));
                    assert!(same, "rows={rows}, k={k}, column {c}: {out:?} vs {want:?}");
                }
            }
        }
    }

    /// Every build of the small kernel and the `gemm` crate against a naive triple loop, for
    /// every transpose combination, row and column tails, alpha/beta, NaN in C when beta = 0,
    /// and the cache blocking of large products (slices of k, panels of n).
    #[test]
    fn small_kernel_builds_agree_with_naive() {
        let shapes = [
            (1, 1, 1),
            (5, 7, 3),
            (8, 33, 8),
            (16, 37, 16),
            (13, 4, 100),
            (16, 8, 1024),
            (64, 6, 24),
            // Large enough that the kernel blocks itself for the caches: k in two slices (one
            // short), then k in five slices and n in three panels (one short).
            (300, 40, 500),
            (60, 300, 1200),
        ];
        let builds = [
            SmallKernel::Plain,
            SmallKernel::Fused,
            SmallKernel::Avx2Fma,
            SmallKernel::Off,
        ];
        for (m, n, k) in shapes {
            assert!(
                small_shape(SmallKernel::Plain, m, n, k),
                "{m}x{n}x{k} should take the small kernel"
            );
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
                let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
                let c0: Vec<f32> = (0..m * n).map(|i| (i as f32 * 0.05).sin()).collect();
                let op_a = |i: usize, p: usize| if ta { a[p + i * k] } else { a[i + p * m] };
                let op_b = |p: usize, j: usize| if tb { b[j + p * n] } else { b[p + j * k] };
                let (sa, sb) = (
                    if ta { (k, m) } else { (m, k) },
                    if tb { (n, k) } else { (k, n) },
                );
                let mut oa = Operand::new(&a, sa.0, sa.1);
                let mut ob = Operand::new(&b, sb.0, sb.1);
                if ta {
                    oa = oa.t();
                }
                if tb {
                    ob = ob.t();
                }
                for build in builds {
                    let cpu = CpuBackend::with_small_kernel(1, build);
                    for (alpha, beta) in [(1.0f32, 0.0f32), (-0.5, 2.0)] {
                        let mut c = if beta == 0.0 {
                            vec![f32::NAN; m * n]
                        } else {
                            c0.clone()
                        };
                        cpu.gemm(alpha, oa, ob, beta, &mut c, m, n);
                        for i in 0..m {
                            for j in 0..n {
                                let dot: f64 = (0..k)
                                    .map(|p| f64::from(op_a(i, p)) * f64::from(op_b(p, j)))
                                    .sum();
                                let old = if beta == 0.0 { 0.0 } else { c0[i + j * m] };
                                let want = f64::from(alpha) * dot + f64::from(beta * old);
                                let got = f64::from(c[i + j * m]);
                                assert!(
                                    (got - want).abs() <= 1e-5 * (1.0 + k as f64),
                                    "{build:?} {m}x{n}x{k} ta={ta} tb={tb} alpha={alpha} \
                                     beta={beta} at ({i},{j}): {got} vs {want}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// The AVX2 builds of the elementwise kernels give the baseline's bits exactly.
    #[test]
    fn elementwise_builds_are_bit_identical() {
        let base = CpuBackend::with_small_kernel(1, SmallKernel::Off);
        let best = CpuBackend::new(1);
        let x: Vec<f32> = (0..1003).map(|i| (i as f32 * 0.731).sin() * 30.0).collect();
        let (mut e1, mut e2) = (vec![0f32; x.len()], vec![0f32; x.len()]);
        base.exp(&x, &mut e1);
        best.exp(&x, &mut e2);
        assert!(e1.iter().zip(&e2).all(|(a, b)| a.to_bits() == b.to_bits()));
        let s = AdamScalars {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            step_size: 0.01,
            bias2_sqrt: 0.3,
        };
        let grad: Vec<f32> = x.iter().map(|v| v.cos()).collect();
        let run = |backend: &CpuBackend| {
            let (mut p, mut m, mut v) = (x.clone(), vec![0.1f32; x.len()], vec![0.2f32; x.len()]);
            for _ in 0..3 {
                backend.adam_update(&mut p, &grad, &mut m, &mut v, s);
            }
            [p, m, v].concat()
        };
        let (a, b) = (run(&base), run(&best));
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
    }

    /// The fused log-code step equals the passes it replaces (L1 sign term, chain rule through
    /// e^u, Adam, exp) bit for bit, on one thread and split over threads.
    #[test]
    fn fused_log_code_step_matches_separate_passes() {
        let len = (1 << 18) + 37;
        let u0: Vec<f32> = (0..len)
            .map(|i| (i as f32 * 0.37).sin() * 3.0 - 2.0)
            .collect();
        let g: Vec<f32> = (0..len).map(|i| (i as f32 * 0.11).cos()).collect();
        let s = AdamScalars {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            step_size: 0.003,
            bias2_sqrt: 0.05,
        };
        let l1 = 0.25f32;
        let base = CpuBackend::with_small_kernel(1, SmallKernel::Off);
        // Reference: separate passes with the baseline kernels.
        let (mut u, mut m, mut v) = (u0.clone(), vec![0f32; len], vec![0f32; len]);
        let mut codes = vec![0f32; len];
        base.exp(&u, &mut codes);
        for _ in 0..2 {
            let grad: Vec<f32> = g
                .iter()
                .zip(&codes)
                .map(|(&gi, &c)| {
                    let sign = if c > 0.0 { 1.0 } else { 0.0 };
                    (gi + sign * l1) * c
                })
                .collect();
            base.adam_update(&mut u, &grad, &mut m, &mut v, s);
            base.exp(&u, &mut codes);
        }
        let want = [u, codes, m, v].concat();
        for backend in [base.clone(), CpuBackend::new(1), CpuBackend::new(2)] {
            let (mut u, mut m, mut v) = (u0.clone(), vec![0f32; len], vec![0f32; len]);
            let mut codes = vec![0f32; len];
            backend.exp(&u, &mut codes);
            for _ in 0..2 {
                backend.adam_log_codes(&mut u, &mut codes, &g, &mut m, &mut v, l1, s);
            }
            let got = [u, codes, m, v].concat();
            assert!(
                got.iter()
                    .zip(&want)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{}",
                backend.name()
            );
        }
    }

    /// The ReLU kernels, on one thread and split over two (past the threading threshold).
    #[test]
    fn relu_kernels_threaded_and_not() {
        let len = (1 << 18) + 5;
        let x: Vec<f32> = (0..len)
            .map(|i| match i % 7 {
                0 => f32::NAN,
                1 => -0.0,
                r => (i as f32 * 0.3).sin() * r as f32,
            })
            .collect();
        let g: Vec<f32> = (0..len).map(|i| i as f32).collect();
        for backend in [CpuBackend::new(1), CpuBackend::new(2)] {
            let mut out = x.clone();
            backend.relu(&mut out);
            for (o, v) in out.iter().zip(&x) {
                assert_eq!(*o, v.max(0.0));
            }
            let mut grad = g.clone();
            backend.relu_backward(&mut grad, &out);
            for ((gi, o), g0) in grad.iter().zip(&out).zip(&g) {
                assert_eq!(*gi, if *o > 0.0 { *g0 } else { 0.0 });
            }
        }
    }

    #[test]
    fn topk_keeps_largest_per_column() {
        let cpu = CpuBackend::new(1);
        let mut d = vec![0.1, 0.5, -0.3, 0.5, 2.0, 1.0, 3.0, -1.0];
        cpu.topk_columns(&mut d, 4, 2, 2);
        assert_eq!(d, vec![0.0, 0.5, 0.0, 0.5, 2.0, 0.0, 3.0, 0.0]);
    }
}
