//! A register-blocked product for the engine's small shapes.
//!
//! At the paper's size every product has one side of 8 or 16 (a 16 x 8 encoder times 8 x 1024
//! signals, an 8 x 1024 residual times its 1024 x 16 codes). A general packed `gemm` spends most
//! of such a call on set-up and packing, and on wasm32 the `gemm` crate has only a scalar
//! micro-kernel. Here C is computed in blocks of `MR` rows by up to `NR` columns held in
//! registers over the whole inner dimension, reading op(A) column by column (packed only when
//! it is transposed or its rows are not a multiple of `MR`) and op(B) in place through strides.
//! The code is generic and written for the auto-vectoriser: blocks are fixed-size arrays, so
//! LLVM keeps them in SIMD registers (two `v128` per column on wasm32 with SIMD128, one `ymm`
//! with AVX2).

use super::Operand;

/// Rows of C per register block on every build: the row padding `small_shape` budgets for.
pub const MR_MAX: usize = 16;

/// Multiply-add, fused where the target has it (a fused multiply-add is a library call on
/// targets without one, so the caller chooses).
#[inline(always)]
fn madd<const FUSED: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FUSED {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// op(B) read in place: element (p, j) is `data[p * rs + j * cs]`.
#[derive(Clone, Copy)]
struct Strided<'a> {
    data: &'a [f32],
    rs: usize,
    cs: usize,
}

/// One MR x W block of op(A) op(B): rows `i0..i0 + MR` of the column-major `a` (leading
/// dimension `lda`), columns `j0..j0 + W` of `b`, summed over the `k` inner indices.
#[inline(always)]
fn block<const FUSED: bool, const MR: usize, const W: usize>(
    a: &[f32],
    lda: usize,
    i0: usize,
    b: Strided<'_>,
    j0: usize,
    k: usize,
) -> [[f32; MR]; W] {
    // The last element either operand reads, checked once per block instead of per load.
    assert!(k > 0 && i0 + MR + (k - 1) * lda <= a.len());
    assert!((k - 1) * b.rs + (j0 + W - 1) * b.cs < b.data.len());
    let mut acc = [[0f32; MR]; W];
    let a_ptr = a.as_ptr();
    let b_ptr = b.data.as_ptr();
    for p in 0..k {
        // SAFETY: p < k, so the MR values from i0 + p * lda end at or before the asserted
        // i0 + MR + (k - 1) * lda <= a.len(); `[f32; MR]` has the alignment of f32.
        let col: [f32; MR] = unsafe { a_ptr.add(i0 + p * lda).cast::<[f32; MR]>().read() };
        for (jj, acc_col) in acc.iter_mut().enumerate() {
            // SAFETY: p < k and jj < W, so the index is at most the asserted last one.
            let bv = unsafe { *b_ptr.add(p * b.rs + (j0 + jj) * b.cs) };
            for (acc_v, &a_v) in acc_col.iter_mut().zip(&col) {
                *acc_v = madd::<FUSED>(a_v, bv, *acc_v);
            }
        }
    }
    acc
}

/// Write one block into C (column-major, `m` rows): `c = alpha * acc + beta * c`, skipping the
/// padding rows at or past `m`. `beta == 0` ignores C's old contents, NaN included.
#[inline(always)]
#[allow(
    clippy::too_many_arguments,
    reason = "the block's position and the BLAS scalars"
)]
fn store<const MR: usize, const W: usize>(
    acc: &[[f32; MR]; W],
    c: &mut [f32],
    m: usize,
    i0: usize,
    j0: usize,
    alpha: f32,
    beta: f32,
) {
    let rows = MR.min(m - i0);
    for (jj, acc_col) in acc.iter().enumerate() {
        let start = i0 + (j0 + jj) * m;
        let out = &mut c[start..start + rows];
        if beta == 0.0 {
            for (o, &v) in out.iter_mut().zip(acc_col) {
                *o = alpha * v;
            }
        } else {
            for (o, &v) in out.iter_mut().zip(acc_col) {
                *o = alpha * v + beta * *o;
            }
        }
    }
}

/// `c <- alpha * op(a) op(b) + beta * c` for shapes already checked by the caller: op(a) is
/// m x k, op(b) k x n, c m x n column-major, k > 0.
#[inline(always)]
#[allow(clippy::too_many_arguments, reason = "the BLAS shape")]
pub fn gemm<const FUSED: bool, const MR: usize, const NR: usize>(
    alpha: f32,
    a: Operand<'_>,
    b: Operand<'_>,
    beta: f32,
    c: &mut [f32],
    m: usize,
    n: usize,
    k: usize,
) {
    let m_pad = m.div_ceil(MR) * MR;
    // op(A) as column-major m_pad x k with leading dimension lda.
    let packed: Vec<f32>;
    let (a_data, lda): (&[f32], usize) = if !a.transposed && m == m_pad {
        (a.data, m)
    } else {
        let mut buf = vec![0f32; m_pad * k];
        for p in 0..k {
            let dst = &mut buf[p * m_pad..p * m_pad + m];
            if a.transposed {
                // op(A)[i, p] = stored[p, i], stored k x m: row p of the stored matrix.
                for (i, d) in dst.iter_mut().enumerate() {
                    *d = a.data[p + i * k];
                }
            } else {
                dst.copy_from_slice(&a.data[p * m..p * m + m]);
            }
        }
        packed = buf;
        (&packed, m_pad)
    };
    let bs = if b.transposed {
        // op(B)[p, j] = stored[j, p], stored n x k.
        Strided {
            data: b.data,
            rs: n,
            cs: 1,
        }
    } else {
        Strided {
            data: b.data,
            rs: 1,
            cs: k,
        }
    };
    // Blocked for the caches when op(A) is past L2: k in slices of KC (C accumulates over
    // them, beta applied once), n in panels of NC columns. Within a slice and panel, a block
    // row of op(A) (MR x KC) stays in L1 while it meets every block of the panel, and the
    // panel of op(B) (KC x NC) stays in L2 while every block row meets it. Smaller products
    // take k whole (their sums keep the order they always had); panels alone change no sum.
    let kc = if m_pad * k > A_IN_L2 { KC } else { k };
    for p0 in (0..k).step_by(kc) {
        let kb = kc.min(k - p0);
        let beta_p = if p0 == 0 { beta } else { 1.0 };
        let a_slice = &a_data[p0 * lda..];
        let b_slice = Strided {
            data: &bs.data[p0 * bs.rs..],
            ..bs
        };
        for n0 in (0..n).step_by(NC) {
            let n1 = (n0 + NC).min(n);
            let full = n1 - (n1 - n0) % NR;
            for i0 in (0..m).step_by(MR) {
                for j0 in (n0..full).step_by(NR) {
                    let acc = block::<FUSED, MR, NR>(a_slice, lda, i0, b_slice, j0, kb);
                    store(&acc, c, m, i0, j0, alpha, beta_p);
                }
                for j0 in full..n1 {
                    let acc = block::<FUSED, MR, 1>(a_slice, lda, i0, b_slice, j0, kb);
                    store(&acc, c, m, i0, j0, alpha, beta_p);
                }
            }
        }
    }
}

/// Inner indices per slice of the cache blocking: a block row of op(A) (MR x KC, 8 KiB at
/// MR = 8) stays in L1 across a panel.
const KC: usize = 256;
/// Columns per panel of op(B): KC x NC values (128 KiB) stay in L2 across the block rows.
const NC: usize = 128;
/// Values of op(A) past which k is sliced (256 KiB).
const A_IN_L2: usize = 64 * 1024;
