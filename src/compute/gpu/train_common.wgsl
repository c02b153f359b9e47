// Shared by the fused training kernels (`train.wgsl`, `train_mlp.wgsl`, `train_sc.wgsl`),
// prepended to each after `common.wgsl`; NN (atoms), MM (dimensions) and TG (the workgroup's
// invocations) are the kernel's own constants.

// The encoders' supervised objective (the known-codes setting) instead of the reconstruction:
// minus the mean over latents of the cosine, across the batch, between a latent's codes and
// its true codes (`cosine_loss` of the kernel-by-kernel path). It needs the batch's sums before
// any gradient, so each step makes two passes over the chunks: the first sums, per latent j,
// its codes' dot with the targets and both squared norms into cos_sh[3j..3j+3]; the
// coefficients of its gradient, coef_t t + coef_p s, then replace the first two
// (`cosine_coefficients`), and the second pass computes the codes again and back-propagates.
const SUP: bool = {{SUP}};
var<workgroup> cos_sh: array<f32, {{N3}}>;

// The member's dictionary (MM x NN, column-major), in workgroup memory through a step.
var<workgroup> d_sh: array<f32, {{NM}}>;
// Room for two reductions over the workgroup.
var<workgroup> red_sh: array<f32, 128>;

// Adam's scalars of one step, as the host computed them (its clock, its bias corrections).
struct AdamStep {
    beta1: f32,
    beta2: f32,
    eps: f32,
    step_size: f32,
    bias2_sqrt: f32,
}

fn adam_step_at(at: u32) -> AdamStep {
    return AdamStep(pf(at), pf(at + 1u), pf(at + 2u), pf(at + 3u), pf(at + 4u));
}

// Adam on the value at b2[at] with gradient g; its moments lie `stride` and 2 `stride` further.
fn adam_b2(at: u32, stride: u32, g: f32, s: AdamStep) {
    let m = s.beta1 * b2[at + stride] + (1.0 - s.beta1) * g;
    let v = s.beta2 * b2[at + 2u * stride] + (1.0 - s.beta2) * g * g;
    b2[at + stride] = m;
    b2[at + 2u * stride] = v;
    b2[at] = b2[at] - s.step_size * m / (sqrt(v) / s.bias2_sqrt + s.eps);
}

// The atoms in d_sh to unit norm (norm 0 left alone), kept in the state from b2[at] as the
// step's own, and visible to the whole workgroup on return.
fn normalize_atoms(lid: u32, at: u32) {
    for (var j = lid; j < NN; j += TG) {
        var ss = 0.0;
        for (var i = 0u; i < MM; i++) {
            let v = d_sh[j * MM + i];
            ss += v * v;
        }
        let norm = sqrt(ss);
        if (norm > 0.0) {
            let inv = 1.0 / norm;
            for (var i = 0u; i < MM; i++) {
                let v = d_sh[j * MM + i] * inv;
                d_sh[j * MM + i] = v;
                b2[at + j * MM + i] = v;
            }
        }
    }
    storageBarrier();
    workgroupBarrier();
}

// The sums over the workgroup of two values of each invocation (in red_sh[0] and red_sh[64]).
fn reduce_pair(lid: u32, a: f32, b: f32) {
    red_sh[lid] = a;
    red_sh[64u + lid] = b;
    for (var half = 32u; half > 0u; half = half / 2u) {
        workgroupBarrier();
        if (lid < half) {
            red_sh[lid] += red_sh[lid + half];
            red_sh[64u + lid] += red_sh[64u + lid + half];
        }
    }
    workgroupBarrier();
}

// The member's loss from the invocations' shares of the scaled residuals' squares and of the
// codes: mean squared error plus penalty times the mean code, into b3 (its hi/lo pair).
fn write_loss(lid: u32, member: u32, sq: f32, l1_sum: f32, mse: f32, n: u32, penalty: f32) {
    reduce_pair(lid, sq, l1_sum);
    if (lid == 0u) {
        b3[2u * member] = red_sh[0] / (mse * mse) / f32(n * MM) + penalty * red_sh[64] / f32(n * NN);
        b3[2u * member + 1u] = 0.0;
    }
}

// Zero the supervised sums of the latents this invocation owns (at the start of a step).
fn clear_cosine(lid: u32) {
    for (var j = lid; j < NN; j += TG) {
        cos_sh[3u * j] = 0.0;
        cos_sh[3u * j + 1u] = 0.0;
        cos_sh[3u * j + 2u] = 0.0;
    }
}

// Add a code s of latent j and its target t to the supervised sums (by j's owner).
fn add_cosine(j: u32, s: f32, t: f32) {
    cos_sh[3u * j] += s * t;
    cos_sh[3u * j + 1u] += s * s;
    cos_sh[3u * j + 2u] += t * t;
}

// The batch's sums to the gradient's coefficients, as `cosine_loss` computes them (norms
// floored at 1e-8, no gradient through a zero prediction's norm), visible to the whole
// workgroup on return; returns this invocation's share of the loss.
fn cosine_coefficients(lid: u32) -> f32 {
    let eps = 1e-8;
    let rows = f32(NN);
    var loss = 0.0;
    for (var j = lid; j < NN; j += TG) {
        let np_raw = sqrt(cos_sh[3u * j + 1u]);
        let np = max(np_raw, eps);
        let nt = max(sqrt(cos_sh[3u * j + 2u]), eps);
        let cos = cos_sh[3u * j] / (np * nt);
        loss -= cos / rows;
        cos_sh[3u * j] = -1.0 / (rows * np * nt);
        cos_sh[3u * j + 1u] = select(0.0, cos / (rows * np * np), np_raw > eps);
    }
    workgroupBarrier();
    return loss;
}

// The gradient of the supervised loss at code s of latent j with target t, where s > 0.
fn cosine_grad(j: u32, s: f32, t: f32) -> f32 {
    return select(0.0, cos_sh[3u * j] * t + cos_sh[3u * j + 1u] * s, s > 0.0);
}

// The member's supervised loss from the invocations' shares, into b3 (its hi/lo pair).
fn write_cosine_loss(lid: u32, member: u32, share: f32) {
    reduce_pair(lid, share, 0.0);
    if (lid == 0u) {
        b3[2u * member] = red_sh[0];
        b3[2u * member + 1u] = 0.0;
    }
}
