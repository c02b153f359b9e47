//! Elementwise passes that also reduce: a running f64 sum is one long dependency chain (each add
//! waits for the last), which keeps the loop scalar and costs as much as the products around
//! it. Summing into independent lanes lets the compiler vectorise the pass.

/// Independent partial sums; a multiple of every SIMD width in use (4 on wasm32, up to 16).
const LANES: usize = 16;

/// `f(&mut a[i], b[i])` for every i, returning the f64 sum of what `f` returns. The summation
/// order is fixed by the lengths alone, so the result is deterministic.
#[inline(always)]
pub fn zip_sum(a: &mut [f32], b: &[f32], f: impl Fn(&mut f32, f32) -> f32) -> f64 {
    assert_eq!(a.len(), b.len(), "zip_sum: lengths differ");
    let mut acc = [0f64; LANES];
    let mut a_chunks = a.chunks_exact_mut(LANES);
    let mut b_chunks = b.chunks_exact(LANES);
    for (ac, bc) in (&mut a_chunks).zip(&mut b_chunks) {
        for l in 0..LANES {
            acc[l] += f64::from(f(&mut ac[l], bc[l]));
        }
    }
    for (l, (av, &bv)) in a_chunks
        .into_remainder()
        .iter_mut()
        .zip(b_chunks.remainder())
        .enumerate()
    {
        acc[l] += f64::from(f(av, bv));
    }
    acc.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zip_sum_applies_and_sums_every_element() {
        for len in [0, 1, 15, 16, 17, 100] {
            let mut a: Vec<f32> = (0..len).map(|i| i as f32).collect();
            let b: Vec<f32> = (0..len).map(|i| 2.0 * i as f32).collect();
            let s = zip_sum(&mut a, &b, |x, y| {
                *x += y;
                y
            });
            let want: f64 = (0..len).map(|i| 2.0 * i as f64).sum();
            assert_eq!(s, want);
            assert!(a.iter().enumerate().all(|(i, &v)| v == 3.0 * i as f32));
        }
    }
}
