//! Elementwise passes that also reduce: a running f64 sum is one long dependency chain (each add
//! waits for the last), which keeps the loop scalar and costs as much as the products around
//! it. Summing into independent lanes lets the compiler vectorise the pass.

/// max(v, 0) with `f32::max`'s answer for NaN (0), written as a select: `f32::max` becomes a
/// call to libm's `fmaxf` per element on wasm32, where it cannot vectorise.
#[inline(always)]
pub fn relu(v: f32) -> f32 {
    if v > 0.0 {
        v
    } else {
        0.0
    }
}

/// Independent partial sums; a multiple of every SIMD width in use (4 on wasm32, up to 16).
const LANES: usize = 16;
/// Elements summed in f32 lanes before the lanes are added into f64: 16 terms per lane, so the
/// f32 partial sums lose no more than the f32 terms themselves carry.
const BLOCK: usize = 16 * LANES;

/// The sum of `f(x[i])`: in f32 lanes within blocks of `BLOCK` elements, in f64 across blocks.
/// A read-only map-reduce in fixed lanes is the shape both x86-64 and wasm32 vectorise (fusing
/// a store into it keeps wasm32 scalar). The summation order is fixed by the length alone, so
/// the result is deterministic.
#[inline(always)]
pub fn sum_map(x: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    let mut total = [0f64; LANES];
    for block in x.chunks(BLOCK) {
        let mut acc = [0f32; LANES];
        let mut chunks = block.chunks_exact(LANES);
        for chunk in &mut chunks {
            for l in 0..LANES {
                acc[l] += f(chunk[l]);
            }
        }
        for (l, &v) in chunks.remainder().iter().enumerate() {
            acc[l] += f(v);
        }
        for (t, &v) in total.iter_mut().zip(&acc) {
            *t += f64::from(v);
        }
    }
    total.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relu_agrees_with_max() {
        for v in [
            -1.0,
            -0.0,
            0.0,
            2.5,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
        ] {
            assert_eq!(relu(v), v.max(0.0), "{v}");
        }
    }

    #[test]
    fn sum_map_sums_every_element() {
        for len in [0, 1, 15, 16, 17, 100, 256, 257, 1000] {
            let x: Vec<f32> = (0..len).map(|i| i as f32).collect();
            let s = sum_map(&x, |v| 2.0 * v);
            let want: f64 = (0..len).map(|i| 2.0 * i as f64).sum();
            assert_eq!(s, want);
        }
    }
}
