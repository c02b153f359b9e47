// Elementwise kernels over every value of a stack (one invocation per value). Word 0 of the
// parameters is always the number of values.

// b1[i] <- p[1]
@compute @workgroup_size(256)
fn fill(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= p[0]) { return; }
    b1[i] = pf(1u);
}

// b2 <- b1; p = [len, member_len, src_is_broadcast]
@compute @workgroup_size(256)
fn copy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= p[0]) { return; }
    b2[i] = b1[select(i, i % p[1], p[2] == 1u)];
}

// A block of every member: b2[m * p[4] + p[5] + e] <- b1[m * p[2] + p[3] + e] for e < p[1].
// p = [stack * len, len, src_member_len, src_at, dst_member_len, dst_at]
@compute @workgroup_size(256)
fn copy_block(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= p[0]) { return; }
    let m = i / p[1];
    let e = i % p[1];
    b2[m * p[4] + p[5] + e] = b1[m * p[2] + p[3] + e];
}

// b1 <- max(b1, 0), NaN to 0
@compute @workgroup_size(256)
fn relu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= p[0]) { return; }
    let v = b1[i];
    b1[i] = select(0.0, v, v > 0.0 && !is_nan(v));
}

// b1 <- b1 where b1 > max(scale * theta, 0), else 0 (NaN to 0); theta = b2 per member and row,
// or per member. p = [len, rows, member_len, theta_rows, scale]
@compute @workgroup_size(256)
fn threshold_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= p[0]) { return; }
    let member = i / p[2];
    let row = select((i % p[2]) % p[1], 0u, p[3] == 1u);
    let cut = max(pf(4u) * b2[member * p[3] + row], 0.0);
    let v = b1[i];
    b1[i] = select(0.0, v, v > cut && !is_nan(v));
}

// b1 (gradient) <- b1 where b2 (the ReLU's output) > 0, else 0
@compute @workgroup_size(256)
fn relu_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= p[0]) { return; }
    b1[i] = select(0.0, b1[i], b2[i] > 0.0);
}

// b2 <- e^b1 (clamped to the f32 range like the CPU's exp)
@compute @workgroup_size(256)
fn exp_kernel(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= p[0]) { return; }
    b2[i] = exp(clamp(b1[i], -104.0, 88.7));
}

// b1 <- b1 * b2
@compute @workgroup_size(256)
fn mul(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= p[0]) { return; }
    b1[i] = b1[i] * b2[i];
}

// b1 <- (b1 - b2) * scale[member]; p = [len, member_len, x_is_broadcast, n_scales, scales...]
@compute @workgroup_size(256)
fn residual(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= p[0]) { return; }
    let ml = p[1];
    let scale = member_value(4u, p[3], i / ml);
    b1[i] = (b1[i] - b2[select(i, i % ml, p[2] == 1u)]) * scale;
}

// b1 <- b1 + scale[member] * sign(b2); p = [len, member_len, n_scales, scales...]
@compute @workgroup_size(256)
fn l1_subgradient(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= p[0]) { return; }
    let scale = member_value(3u, p[2], i / p[1]);
    b1[i] = b1[i] + sign_of(b2[i]) * scale;
}

// b1[:, j] += b2 (bias); p = [len, rows, member_len, bias_is_broadcast]
@compute @workgroup_size(256)
fn add_bias(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= p[0]) { return; }
    let rows = p[1];
    let member = select(i / p[2], 0u, p[3] == 1u);
    b1[i] = b1[i] + b2[member * rows + (i % p[2]) % rows];
}

// One Adam step; b1 param, b2 grad, b3 m, b4 v. p = [len, member_len, n_scalars, then per
// member (beta1, beta2, eps, step_size, bias2_sqrt)].
fn adam_at(i: u32, g: f32, member: u32) -> f32 {
    let at = 3u + 5u * select(member, 0u, p[2] == 1u);
    let beta1 = pf(at);
    let beta2 = pf(at + 1u);
    let m = beta1 * b3[i] + (1.0 - beta1) * g;
    let v = beta2 * b4[i] + (1.0 - beta2) * g * g;
    b3[i] = m;
    b4[i] = v;
    let denom = sqrt(v) / pf(at + 4u) + pf(at + 2u);
    return pf(at + 3u) * m / denom;
}

@compute @workgroup_size(256)
fn adam(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= p[0]) { return; }
    b1[i] = b1[i] - adam_at(i, b2[i], i / p[1]);
}

// The fused log-code step: b1 u, b2 codes, b3 m... see `Backend::adam_log_codes`. Bindings:
// b1 u, b2 codes, b3 m, b4 v, b5 grad_s. p = [len, member_len, n_scalars, scalars (5 each)...,
// then n_l1 and the l1 scales].
@compute @workgroup_size(256)
fn adam_log_codes(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= p[0]) { return; }
    let member = i / p[1];
    let l1_at = 3u + 5u * p[2];
    let l1 = member_value(l1_at + 1u, p[l1_at], member);
    let code = b2[i];
    let g = (b5[i] + sign_of(code) * l1) * code;
    let u = b1[i] - adam_at(i, g, member);
    b1[i] = u;
    b2[i] = exp(clamp(u, -104.0, 88.7));
}

// FISTA's proximal and momentum update: b1 s, b2 s_prev, b3 y. A member whose skip flag is
// set (a converged one, whose products were skipped) gets its codes back from s_prev (where
// the swap of s and s_prev put them) and keeps its y.
// p = [len, member_len, nonneg, count, thresholds (count)..., momenta (count)..., skip_count,
// skip flags...]
@compute @workgroup_size(256)
fn fista_update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= p[0]) { return; }
    let member = i / p[1];
    let skips = 4u + 2u * p[3];
    if (p[skips] != 0u && p[skips + 1u + member] != 0u) {
        b1[i] = b2[i];
        return;
    }
    let th = member_value(4u, p[3], member);
    let mom = member_value(4u + p[3], p[3], member);
    let v = b1[i];
    var s: f32;
    if (p[2] == 1u) {
        let t = v - th;
        s = select(0.0, t, t > 0.0);
    } else {
        let t = abs(v) - th;
        s = select(-1.0, 1.0, v >= 0.0) * select(0.0, t, t > 0.0);
    }
    b1[i] = s;
    b3[i] = s + mom * (s - b2[i]);
}
