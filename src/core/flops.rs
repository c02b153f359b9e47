//! Analytic FLOP counts for what each method executes (a multiply-add counts 2).
//!
//! A matrix product (a x k)(k x b) counts 2akb. Elementwise work counts per entry: ReLU 1, bias
//! add 1, exp 1, residual and square 3 per signal entry, the L1 term 2 per code entry, Adam
//! `ADAM_PER_PARAM` per parameter. TopK selection counts 1 per pre-activation (a linear-time
//! selection). These are the definitions the UI shows next to every FLOP axis.

/// FLOPs of one Adam update of one parameter: two moment updates (3 + 4), the bias-corrected
/// denominator (sqrt, divide, add: 3) and the update itself (multiply, divide, subtract: 3).
pub const ADAM_PER_PARAM: f64 = 13.0;

fn mm(a: usize, k: usize, b: usize) -> f64 {
    2.0 * a as f64 * k as f64 * b as f64
}

/// Layer widths input..output: `[M, h1, ..., N]`.
pub fn widths(data_dim: usize, hidden: &[usize], num_atoms: usize) -> Vec<usize> {
    let mut w = Vec::with_capacity(hidden.len() + 2);
    w.push(data_dim);
    w.extend_from_slice(hidden);
    w.push(num_atoms);
    w
}

/// Encoder forward on b samples: products, biases, ReLUs, and TopK selection.
pub fn encoder_forward(widths: &[usize], batch: usize, bias: bool, topk: bool) -> f64 {
    let mut total = 0.0;
    for pair in widths.windows(2) {
        let (fan_in, fan_out) = (pair[0], pair[1]);
        total += mm(fan_out, fan_in, batch) + (fan_out * batch) as f64;
        if bias {
            total += (fan_out * batch) as f64;
        }
    }
    if topk {
        total += (widths[widths.len() - 1] * batch) as f64;
    }
    total
}

/// Parameters of an encoder.
pub fn encoder_params(widths: &[usize], bias: bool) -> usize {
    widths
        .windows(2)
        .map(|p| p[0] * p[1] + if bias { p[1] } else { 0 })
        .sum()
}

/// Decoding b codes and the reconstruction loss with its gradient w.r.t. the codes
/// (and, if `dict_grad`, w.r.t. the dictionary).
pub fn decoder_loss_backward(
    data_dim: usize,
    num_atoms: usize,
    batch: usize,
    dict_grad: bool,
) -> f64 {
    let forward = mm(data_dim, num_atoms, batch) + 3.0 * (data_dim * batch) as f64;
    let d_codes = mm(num_atoms, data_dim, batch) + 2.0 * (num_atoms * batch) as f64;
    let d_dict = if dict_grad {
        mm(data_dim, batch, num_atoms)
    } else {
        0.0
    };
    forward + d_codes + d_dict
}

/// One training step of an amortised encoder (SAE, TopK SAE, MLP) with a decoder.
pub fn encoder_train_step(
    widths: &[usize],
    batch: usize,
    bias: bool,
    topk: bool,
    learn_dict: bool,
) -> f64 {
    let (data_dim, num_atoms) = (widths[0], widths[widths.len() - 1]);
    let mut total = encoder_forward(widths, batch, bias, topk);
    total += decoder_loss_backward(data_dim, num_atoms, batch, learn_dict);
    total += encoder_backward(widths, batch, bias);
    let mut params = encoder_params(widths, bias);
    if learn_dict {
        params += data_dim * num_atoms;
        total += 3.0 * (data_dim * num_atoms) as f64; // re-projection to unit norm
    }
    total + ADAM_PER_PARAM * params as f64
}

/// One supervised step (known codes): encoder forward, cosine loss, backward, Adam.
pub fn supervised_train_step(widths: &[usize], batch: usize, bias: bool, topk: bool) -> f64 {
    let num_atoms = widths[widths.len() - 1];
    encoder_forward(widths, batch, bias, topk)
        + 10.0 * (num_atoms * batch) as f64
        + encoder_backward(widths, batch, bias)
        + ADAM_PER_PARAM * encoder_params(widths, bias) as f64
}

/// Backward through the encoder from dL/dS: masks, weight (and bias) gradients, and the
/// gradients w.r.t. every hidden activation (not w.r.t. the input).
pub fn encoder_backward(widths: &[usize], batch: usize, bias: bool) -> f64 {
    let mut total = 0.0;
    for (l, pair) in widths.windows(2).enumerate() {
        let (fan_in, fan_out) = (pair[0], pair[1]);
        total += (fan_out * batch) as f64 + mm(fan_out, batch, fan_in);
        if bias {
            total += (fan_out * batch) as f64;
        }
        if l > 0 {
            total += mm(fan_in, fan_out, batch);
        }
    }
    total
}

/// One sparse-coding training step on b samples (codes exp(u), dictionary learned).
pub fn sparse_coding_train_step(data_dim: usize, num_atoms: usize, batch: usize) -> f64 {
    (num_atoms * batch) as f64 // exp
        + decoder_loss_backward(data_dim, num_atoms, batch, true)
        + (num_atoms * batch) as f64 // chain rule through exp
        + 3.0 * (data_dim * num_atoms) as f64
        + ADAM_PER_PARAM * (data_dim * num_atoms + num_atoms * batch) as f64
}

/// One step of the paper's inference routine on n samples.
pub fn adam_inference_step(data_dim: usize, num_atoms: usize, n: usize) -> f64 {
    (num_atoms * n) as f64
        + decoder_loss_backward(data_dim, num_atoms, n, false)
        + (num_atoms * n) as f64
        + ADAM_PER_PARAM * (num_atoms * n) as f64
}

/// One FISTA iteration on n samples: two products, the proximal step and the momentum.
pub fn fista_iteration(data_dim: usize, num_atoms: usize, n: usize) -> f64 {
    mm(data_dim, num_atoms, n)
        + (data_dim * n) as f64
        + mm(num_atoms, data_dim, n)
        + 6.0 * (num_atoms * n) as f64
}

/// Cholesky factorisation and two triangular solves of a size x size system.
pub fn omp_solve(size: usize) -> f64 {
    let s = size as f64;
    s * s * s / 3.0 + 2.0 * s * s
}
