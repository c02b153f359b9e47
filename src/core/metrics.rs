//! Metrics against ground truth: code and dictionary MCC, reconstruction error, sparsity.
//!
//! MCC (mean correlation coefficient): correlate every true latent with every inferred latent
//! (absolute Pearson correlation across samples; a latent with zero variance correlates 0),
//! match them one-to-one to maximise the summed correlation (Hungarian assignment), and average
//! the matched correlations over the true latents. When the model has more latents than the
//! truth, the best-matching subset is used; when it has fewer, the unmatched true latents count 0.
//! Dictionary MCC is the same computation on atoms, correlated across the M coordinates.
//!
//! Every metric refuses input it cannot score honestly with a [`MetricError`]: empty or
//! zero-width arrays, mismatched sample counts, and NaN or infinite values (a diverged model
//! must never read as a perfect correlation).

use super::Matrix;
use crate::compute::{host_backend, Compute, Operand};
use pathfinding::kuhn_munkres::kuhn_munkres;

/// Scale of the integer weights handed to the assignment solver (exact to 1e-9).
const ASSIGNMENT_SCALE: f64 = 1e9;

/// Why a metric could not be computed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum MetricError {
    #[error("{what} is empty ({rows} x {cols}): nothing to score")]
    Empty {
        what: &'static str,
        rows: usize,
        cols: usize,
    },
    #[error("{what} contains NaN or infinite values (did training diverge?)")]
    NonFinite { what: &'static str },
    #[error("{a} have {a_count} samples but {b} have {b_count}: they must match")]
    SampleMismatch {
        a: &'static str,
        a_count: usize,
        b: &'static str,
        b_count: usize,
    },
}

/// `m` must be non-empty in both dimensions and finite everywhere.
pub fn check_scorable(what: &'static str, m: &Matrix) -> Result<(), MetricError> {
    let (rows, cols) = m.shape();
    if rows == 0 || cols == 0 {
        return Err(MetricError::Empty { what, rows, cols });
    }
    if m.as_slice().iter().any(|v| !v.is_finite()) {
        return Err(MetricError::NonFinite { what });
    }
    Ok(())
}

fn check_pair(
    a_what: &'static str,
    a: &Matrix,
    b_what: &'static str,
    b: &Matrix,
) -> Result<(), MetricError> {
    check_scorable(a_what, a)?;
    check_scorable(b_what, b)?;
    if a.ncols() != b.ncols() {
        return Err(MetricError::SampleMismatch {
            a: a_what,
            a_count: a.ncols(),
            b: b_what,
            b_count: b.ncols(),
        });
    }
    Ok(())
}

/// Result of matching true latents to inferred ones.
#[derive(Clone, Debug, PartialEq)]
pub struct Matching {
    /// Mean matched |correlation| over the true latents (0..1).
    pub mcc: f64,
    /// For each true latent: the inferred latent it is matched to (if any) and |correlation|.
    pub pairs: Vec<(usize, Option<usize>, f64)>,
}

/// Rows of `m` (one variable per row, samples across columns) centred and scaled to unit norm;
/// rows with (numerically) zero variance become all zero.
fn standardized_rows(m: &Matrix) -> Matrix {
    let (rows, cols) = m.shape();
    let mut out = Matrix::zeros(rows, cols);
    for r in 0..rows {
        let mean = (0..cols).map(|c| f64::from(m[(r, c)])).sum::<f64>() / cols as f64;
        let mut ss = 0.0;
        let mut max_abs = 0f64;
        for c in 0..cols {
            let v = f64::from(m[(r, c)]);
            ss += (v - mean) * (v - mean);
            max_abs = max_abs.max(v.abs());
        }
        let norm = ss.sqrt();
        // Relative floor: a constant row (dead latent, constant coordinate) correlates 0.
        if norm <= 1e-7 * max_abs.max(1e-30) * (cols as f64).sqrt() || norm == 0.0 {
            continue;
        }
        for c in 0..cols {
            out[(r, c)] = ((f64::from(m[(r, c)]) - mean) / norm) as f32;
        }
    }
    out
}

/// |Pearson correlation| between every row of `a` and every row of `b` (same number of columns):
/// an (a rows x b rows) matrix. Both must be non-empty and finite.
pub fn abs_correlations(a: &Matrix, b: &Matrix) -> Result<Matrix, MetricError> {
    check_pair("the first array", a, "the second array", b)?;
    Ok(abs_correlations_checked(a, b))
}

fn abs_correlations_checked(a: &Matrix, b: &Matrix) -> Matrix {
    let backend = host_backend();
    let sa = standardized_rows(a);
    let sb = standardized_rows(b);
    let mut c = Matrix::zeros(a.nrows(), b.nrows());
    let (rows, cols) = c.shape();
    backend.gemm(
        1.0,
        (&sa).into(),
        Operand::from(&sb).t(),
        0.0,
        c.as_mut_slice(),
        rows,
        cols,
    );
    for v in c.as_mut_slice() {
        // Inputs are finite, so v is too; the clamp only trims rounding above 1. A NaN would
        // pass through as NaN (never as 1), which `match_correlations` refuses.
        *v = v.abs().min(1.0);
    }
    c
}

/// Maximum-weight one-to-one matching of the rows of `corr` (true latents) to its columns.
/// Entries must be finite correlations in [0, 1].
pub fn match_correlations(corr: &Matrix) -> Result<Matching, MetricError> {
    if corr
        .as_slice()
        .iter()
        .any(|v| !v.is_finite() || *v < 0.0 || *v > 1.0)
    {
        return Err(MetricError::NonFinite {
            what: "the correlation matrix",
        });
    }
    Ok(match_checked(corr))
}

fn match_checked(corr: &Matrix) -> Matching {
    let (n_true, n_pred) = corr.shape();
    if n_true == 0 {
        return Matching {
            mcc: 0.0,
            pairs: vec![],
        };
    }
    if n_pred == 0 {
        return Matching {
            mcc: 0.0,
            pairs: (0..n_true).map(|i| (i, None, 0.0)).collect(),
        };
    }
    let weight = |v: f32| (f64::from(v) * ASSIGNMENT_SCALE).round() as i64;
    // The solver needs rows <= columns: transpose when the model has fewer latents.
    let transposed = n_true > n_pred;
    let (r, c) = if transposed {
        (n_pred, n_true)
    } else {
        (n_true, n_pred)
    };
    let mut data = Vec::with_capacity(r * c);
    for i in 0..r {
        for j in 0..c {
            let v = if transposed {
                corr[(j, i)]
            } else {
                corr[(i, j)]
            };
            data.push(weight(v));
        }
    }
    let weights =
        pathfinding::matrix::Matrix::from_vec(r, c, data).expect("weight matrix has r*c entries");
    let (_, assignment) = kuhn_munkres(&weights);
    let mut pairs: Vec<(usize, Option<usize>, f64)> = (0..n_true).map(|i| (i, None, 0.0)).collect();
    for (row, &col) in assignment.iter().enumerate() {
        let (t, p) = if transposed { (col, row) } else { (row, col) };
        pairs[t] = (t, Some(p), f64::from(corr[(t, p)]));
    }
    let mcc = pairs.iter().map(|p| p.2).sum::<f64>() / n_true as f64;
    Matching { mcc, pairs }
}

/// Code MCC: true codes (N x n) against inferred codes (N' x n), latents as rows.
pub fn code_mcc(true_codes: &Matrix, inferred: &Matrix) -> Result<Matching, MetricError> {
    check_pair("the true codes", true_codes, "the inferred codes", inferred)?;
    Ok(match_checked(&abs_correlations_checked(
        true_codes, inferred,
    )))
}

/// Dictionary MCC: true dictionary (M x N) against learned (M x N'), atoms as columns.
pub fn dict_mcc(true_dict: &Matrix, learned: &Matrix) -> Result<Matching, MetricError> {
    check_scorable("the true dictionary", true_dict)?;
    check_scorable("the learned dictionary", learned)?;
    if true_dict.nrows() != learned.nrows() {
        return Err(MetricError::SampleMismatch {
            a: "the true atoms",
            a_count: true_dict.nrows(),
            b: "the learned atoms",
            b_count: learned.nrows(),
        });
    }
    let (t, l) = (true_dict.transpose(), learned.transpose());
    Ok(match_checked(&abs_correlations_checked(&t, &l)))
}

/// Mean over latents of the Pearson correlation between true latent i and predicted latent i
/// (no matching: the known-codes setting fixes the correspondence).
pub fn index_matched_correlation(
    true_codes: &Matrix,
    predicted: &Matrix,
) -> Result<f64, MetricError> {
    check_pair(
        "the true codes",
        true_codes,
        "the predicted codes",
        predicted,
    )?;
    let sa = standardized_rows(true_codes);
    let sb = standardized_rows(predicted);
    let n = true_codes.nrows().min(predicted.nrows());
    let mut total = 0.0;
    for i in 0..n {
        total += sa
            .row(i)
            .iter()
            .zip(sb.row(i).iter())
            .map(|(a, b)| f64::from(*a) * f64::from(*b))
            .sum::<f64>();
    }
    Ok(total / true_codes.nrows() as f64)
}

/// Reconstruction quality of X_hat against X (both M x n).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reconstruction {
    /// Mean over all n*M entries of (x_hat - x)^2.
    pub mse: f64,
    /// Normalised MSE: sum (x_hat - x)^2 / sum (x - mean_x)^2, mean_x per coordinate over the
    /// samples (the fraction of variance unexplained; explained variance = 1 - nmse).
    pub nmse: f64,
}

pub fn reconstruction(x_hat: &Matrix, x: &Matrix) -> Result<Reconstruction, MetricError> {
    check_pair("the signals", x, "the reconstructions", x_hat)?;
    if x_hat.nrows() != x.nrows() {
        return Err(MetricError::SampleMismatch {
            a: "the signal dimensions",
            a_count: x.nrows(),
            b: "the reconstruction dimensions",
            b_count: x_hat.nrows(),
        });
    }
    let (dim, n) = x.shape();
    let mut sq = 0.0;
    for (a, b) in x_hat.as_slice().iter().zip(x.as_slice()) {
        sq += (f64::from(*a) - f64::from(*b)).powi(2);
    }
    let mut var = 0.0;
    for r in 0..dim {
        let mean = (0..n).map(|c| f64::from(x[(r, c)])).sum::<f64>() / n as f64;
        var += (0..n)
            .map(|c| (f64::from(x[(r, c)]) - mean).powi(2))
            .sum::<f64>();
    }
    Ok(Reconstruction {
        mse: sq / (dim * n) as f64,
        nmse: if var > 0.0 { sq / var } else { f64::NAN },
    })
}

/// Sparsity of codes (N x n): mean active latents per sample and latents never active.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sparsity {
    pub l0: f64,
    pub dead_latents: usize,
}

pub fn sparsity(codes: &Matrix, threshold: f64) -> Result<Sparsity, MetricError> {
    check_scorable("the codes", codes)?;
    let (n_lat, n) = codes.shape();
    let mut active = 0usize;
    let mut alive = vec![false; n_lat];
    for col in codes.as_slice().chunks(n_lat) {
        for (i, &v) in col.iter().enumerate() {
            if f64::from(v.abs()) > threshold {
                active += 1;
                alive[i] = true;
            }
        }
    }
    Ok(Sparsity {
        l0: active as f64 / n as f64,
        dead_latents: alive.iter().filter(|a| !**a).count(),
    })
}
