// Fused full-batch training of sparse coding: a learned dictionary and one free code per
// training sample, s = exp(u), many steps per dispatch, one workgroup per member. Each step
// matches the kernel-by-kernel path (`SparseCodingModel::train_step`): atoms to unit norm,
// S = exp(U), the scaled residual R = mse (D S - X), dL/dS = D^T R + l1 sign(S), then Adam on
// U with dL/dU = dL/dS * S, and on D with dD = R S^T.
//
// The member's dictionary and its gradient live in workgroup memory. Samples go in chunks of
// CH: one invocation per sample keeps its signal, code and residual in registers, updates its
// own log-codes and their moments by Adam at once (nothing else reads them within the step),
// and leaves R and S in the chunk's columns of workgroup memory; then each invocation adds the
// chunk's share of the dictionary gradient values it owns, and at the end of the step updates
// those values by Adam. NN, MM and CH are substituted by the host; CH is a multiple of 4.
//
// Bindings: b1 the signals X (stack of 1 or per member, MM x n), b2 the dictionary's state
// (per member [D | m | v], MM x NN each, column-major), b3 the loss (stack x 2), b4 the codes'
// state (per member [U | m | v], NN x n each, column-major).
// p = [n, steps, x_broadcast, members, mse, want_loss, count, stride, l1 scales (count)...,
// l1 penalties (count)..., Adam scalars (beta1, beta2, eps, step_size, bias2_sqrt) per step for
// one member (stride 1) or each]

const NN: u32 = {{NN}}u;
const MM: u32 = {{MM}}u;
const CH: u32 = {{CH}}u;
const TG: u32 = 64u;

var<workgroup> dg_sh: array<f32, {{NM}}>;
var<workgroup> s_sh: array<f32, {{NC}}>;
var<workgroup> r_sh: array<f32, {{MC}}>;

// With PRIVATE (the host's choice on software adapters, for dictionaries of up to 256 values),
// each invocation that computes samples copies the step's normalised dictionary into a private
// array and sums its samples' share of dD = R S^T in another over the whole batch; the
// workgroup adds those sums once per step (`add_own_gradient`) instead of reading the
// dictionary from workgroup memory for every sample and reducing R and S per chunk. llvmpipe
// makes each workgroup read inside a loop a loop over its SIMD lanes; private values at the
// unrolled loops' constant indices are registers or stack slots (see `train.wgsl`). The sums
// come in another order, so the two forms differ in the last bits.
const PRIVATE: bool = {{PRIVATE}};
var<private> d_own: array<f32, {{OWN}}>;
var<private> gd_own: array<f32, {{OWN}}>;

fn d_at(o: u32) -> f32 {
    if (PRIVATE) {
        return d_own[o];
    }
    return d_sh[o];
}

// With PRIVATE, this invocation's copy of the step's dictionary and its sums cleared. The
// caller passes NN * MM behind a test of a parameter, so that the loop stays rolled (see
// `own_step` in `train.wgsl`).
fn own_step(len: u32) {
    if (PRIVATE) {
        for (var t = 0u; t < len; t++) {
            d_own[t] = d_sh[t];
            gd_own[t] = 0.0;
        }
    }
}

// With PRIVATE, the batch's dD from the invocations' sums into dg_sh: NN values at a time, each
// through s_sh (a column per invocation that computed samples), then summed over the columns by
// its owner. `latents` is NN behind a test of a parameter (see `own_step`).
fn add_own_gradient(lid: u32, latents: u32) {
    for (var o0 = 0u; o0 < NN * MM; o0 += NN) {
        if (lid < CH) {
            for (var t = 0u; t < latents; t++) {
                s_sh[t * CH + lid] = gd_own[o0 + t];
            }
        }
        workgroupBarrier();
        if (lid < NN) {
            var acc = vec4<f32>(0.0);
            for (var c = 0u; c < CH; c += 4u) {
                acc += vec4<f32>(s_sh[lid * CH + c], s_sh[lid * CH + c + 1u], s_sh[lid * CH + c + 2u], s_sh[lid * CH + c + 3u]);
            }
            dg_sh[o0 + lid] = (acc.x + acc.y) + (acc.z + acc.w);
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(64)
fn train_sparse_coding(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let lid = lid3.x;
    let member = wg.x + wg.y * nwg.x;
    if (member >= p[3]) { return; }
    let n = p[0];
    let steps = p[1];
    let mse = pf(4u);
    let count = p[6];
    let stride = p[7];
    let l1 = member_value(8u, count, member);
    let penalty = member_value(8u + count, count, member);
    let scalars_at = 8u + 2u * count + 5u * select(member, 0u, stride == 1u);
    let dbase = member * 3u * NN * MM;
    let cblock = NN * n;
    let cbase = member * 3u * cblock;
    let xbase = select(member, 0u, p[2] == 1u) * MM * n;
    // This invocation's share of the last step's loss.
    var sq = 0.0;
    var l1_sum = 0.0;
    for (var step = 0u; step < steps; step++) {
        let st = adam_step_at(scalars_at + 5u * stride * step);
        for (var o = lid; o < NN * MM; o += TG) {
            d_sh[o] = b2[dbase + o];
            dg_sh[o] = 0.0;
        }
        workgroupBarrier();
        normalize_atoms(lid, dbase);
        own_step(select(NN * MM, 0u, n == 0u));
        sq = 0.0;
        l1_sum = 0.0;
        for (var c0 = 0u; c0 < n; c0 += CH) {
            if (lid < CH) {
                let c = lid;
                let sample = c0 + c;
                if (sample < n) {
                    var x: array<f32, MM>;
                    var s: array<f32, NN>;
                    var r: array<f32, MM>;
                    let ubase = cbase + sample * NN;
                    for (var i = 0u; i < MM; i++) { x[i] = b1[xbase + sample * MM + i]; }
                    for (var j = 0u; j < NN; j++) {
                        s[j] = exp(b4[ubase + j]);
                        l1_sum += s[j];
                        if (!PRIVATE) {
                            s_sh[j * CH + c] = s[j];
                        }
                    }
                    for (var i = 0u; i < MM; i++) { r[i] = -x[i]; }
                    for (var j = 0u; j < NN; j++) {
                        let sj = s[j];
                        for (var i = 0u; i < MM; i++) { r[i] = fma(d_at(j * MM + i), sj, r[i]); }
                    }
                    for (var i = 0u; i < MM; i++) {
                        let ri = r[i] * mse;
                        r[i] = ri;
                        sq += ri * ri;
                        if (!PRIVATE) {
                            r_sh[i * CH + c] = ri;
                        }
                    }
                    if (PRIVATE) {
                        for (var j = 0u; j < NN; j++) {
                            let sj = s[j];
                            for (var i = 0u; i < MM; i++) {
                                gd_own[j * MM + i] = fma(r[i], sj, gd_own[j * MM + i]);
                            }
                        }
                    }
                    // This sample's log-codes by Adam, through s = exp(u).
                    for (var j = 0u; j < NN; j++) {
                        var g = 0.0;
                        for (var i = 0u; i < MM; i++) { g = fma(d_at(j * MM + i), r[i], g); }
                        let du = (g + l1 * sign_of(s[j])) * s[j];
                        let m = st.beta1 * b4[ubase + cblock + j] + (1.0 - st.beta1) * du;
                        let v = st.beta2 * b4[ubase + 2u * cblock + j] + (1.0 - st.beta2) * du * du;
                        b4[ubase + cblock + j] = m;
                        b4[ubase + 2u * cblock + j] = v;
                        b4[ubase + j] = b4[ubase + j] - st.step_size * m / (sqrt(v) / st.bias2_sqrt + st.eps);
                    }
                } else if (!PRIVATE) {
                    for (var i = 0u; i < MM; i++) { r_sh[i * CH + c] = 0.0; }
                    for (var j = 0u; j < NN; j++) { s_sh[j * CH + c] = 0.0; }
                }
            }
            if (PRIVATE) {
                // The sums stay in each invocation until the batch is done.
                continue;
            }
            workgroupBarrier();
            // The chunk's share of dD = R S^T, each value by the invocation that owns it.
            for (var o = lid; o < NN * MM; o += TG) {
                let i = o % MM;
                let j = o / MM;
                var acc = vec4<f32>(0.0);
                for (var c = 0u; c < CH; c += 4u) {
                    let rv = vec4<f32>(r_sh[i * CH + c], r_sh[i * CH + c + 1u], r_sh[i * CH + c + 2u], r_sh[i * CH + c + 3u]);
                    let sv = vec4<f32>(s_sh[j * CH + c], s_sh[j * CH + c + 1u], s_sh[j * CH + c + 2u], s_sh[j * CH + c + 3u]);
                    acc = fma(rv, sv, acc);
                }
                dg_sh[o] += (acc.x + acc.y) + (acc.z + acc.w);
            }
            workgroupBarrier();
        }
        if (PRIVATE) {
            add_own_gradient(lid, select(NN, 0u, n == 0u));
        }
        // Adam on the dictionary values this invocation owns.
        for (var o = lid; o < NN * MM; o += TG) { adam_b2(dbase + o, NN * MM, dg_sh[o], st); }
        storageBarrier();
    }
    if (p[5] == 1u) {
        write_loss(lid, member, sq, l1_sum, mse, n, penalty);
    }
}
