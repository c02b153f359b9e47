//! The Donoho-Tanner weak thresholds of l1 recovery: the curves rho(delta) below which l1
//! minimisation recovers almost every K-sparse signal from M random measurements as N grows
//! (delta = M/N, rho = K/M), for signed codes (the cross-polytope) and for non-negative codes
//! solved with s >= 0 (the simplex).
//!
//! Closed parametric form (Donoho, Maleki and Montanari, PNAS 2009), z over (0, infinity),
//! with phi the standard normal density and Q its upper tail:
//! - signed:       delta(z) = 2 phi / (z + 2 (phi - z Q)),  rho(z) = 1 - z Q / phi;
//! - non-negative: delta(z) =   phi / (z +    phi - z Q),   rho(z) = 1 - z Q / phi.
//!
//! delta(z) falls strictly from 1 (z -> 0) to 0 (z -> infinity), so a curve is traced by
//! sweeping z and read at a given delta by bisection.

/// Which polytope: codes of any sign, or non-negative codes recovered with s >= 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signs {
    Signed,
    NonNegative,
}

fn phi(z: f64) -> f64 {
    (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// The standard normal upper tail 1 - Phi(z).
fn upper_tail(z: f64) -> f64 {
    0.5 * libm::erfc(z / std::f64::consts::SQRT_2)
}

/// (delta, rho) of the curve at parameter z > 0.
pub fn point(z: f64, signs: Signs) -> (f64, f64) {
    let (p, q) = (phi(z), upper_tail(z));
    let rho = 1.0 - z * q / p;
    let delta = match signs {
        Signs::Signed => 2.0 * p / (z + 2.0 * (p - z * q)),
        Signs::NonNegative => p / (z + p - z * q),
    };
    (delta, rho)
}

/// The weak threshold rho at undersampling `delta` in (0, 1]; 0 at delta = 0, 1 at delta = 1.
pub fn rho_at(delta: f64, signs: Signs) -> f64 {
    if delta.is_nan() || delta <= 0.0 {
        return 0.0;
    }
    if delta >= 1.0 {
        return 1.0;
    }
    // delta(z) decreases: find z with delta(z) = delta between a tiny and a large z.
    let (mut lo, mut hi) = (1e-12, 40.0);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if point(mid, signs).0 > delta {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    point(0.5 * (lo + hi), signs).1
}

/// Both curves at `points` values of delta evenly spaced over (0, 1]: rows of
/// (delta, rho signed, rho non-negative).
pub fn curves(points: usize) -> Vec<(f64, f64, f64)> {
    (1..=points.max(1))
        .map(|i| {
            let delta = i as f64 / points.max(1) as f64;
            (
                delta,
                rho_at(delta, Signs::Signed),
                rho_at(delta, Signs::NonNegative),
            )
        })
        .collect()
}
