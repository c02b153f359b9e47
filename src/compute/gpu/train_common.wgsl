// Shared by the fused training kernels (`train.wgsl`, `train_mlp.wgsl`, `train_sc.wgsl`),
// prepended to each after `common.wgsl`; NN (atoms), MM (dimensions) and TG (the workgroup's
// invocations) are the kernel's own constants.

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

// The member's loss from the invocations' shares of the scaled residuals' squares and of the
// codes: mean squared error plus penalty times the mean code, into b3 (its hi/lo pair).
fn write_loss(lid: u32, member: u32, sq: f32, l1_sum: f32, mse: f32, n: u32, penalty: f32) {
    red_sh[lid] = sq;
    red_sh[64u + lid] = l1_sum;
    for (var half = 32u; half > 0u; half = half / 2u) {
        workgroupBarrier();
        if (lid < half) {
            red_sh[lid] += red_sh[lid + half];
            red_sh[64u + lid] += red_sh[64u + lid + half];
        }
    }
    workgroupBarrier();
    if (lid == 0u) {
        b3[2u * member] = red_sh[0] / (mse * mse) / f32(n * MM) + penalty * red_sh[64] / f32(n * NN);
        b3[2u * member + 1u] = 0.0;
    }
}
