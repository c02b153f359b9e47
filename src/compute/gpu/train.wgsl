// Fused training of a one-layer encoder (SAE or TopK SAE) with its decoder: many full-batch
// steps per dispatch, one workgroup per member. Each step matches the kernel-by-kernel path
// (`EncoderModel::train_step`): learned atoms to unit norm, codes S = relu(topk(W X + b)),
// the scaled residual R = mse (D S - X), G = (D^T R + l1 sign(S)) where S > 0, then
// dW = G X^T, db = sum G, dD = R S^T and Adam on every parameter.
//
// The member's weight, bias and dictionary are copied into workgroup memory at the start of
// each step. Samples go in chunks of CH: one invocation per sample keeps its signal, code and
// residual in registers and leaves S, G, R and X in the chunk's columns of workgroup memory;
// then each invocation reduces the gradient values it owns over the chunk, adding them to the
// gradient block of the state (which it alone touches, as it alone updates those values by
// Adam at the end of the step). NN, MM and CH are substituted by the host.
//
// With SUP (see `train_common.wgsl`), the supervised objective: no decoder, G the cosine
// loss's gradient where S > 0, two passes over the chunks per step.
//
// Bindings: b1 the signals X (stack of 1 or per member, MM x n), b2 the packed state (per
// member [params | m | v | grad], P values each: W (NN x MM, column-major), the bias (NN) if
// any, the dictionary D (MM x NN) if learned), b3 the loss (stack x 2), b4 a frozen dictionary
// (with SUP: the true codes, NN x n, stack of 1 or per member).
// p = [n, steps, x_broadcast, P, bias, learned, largest k (0: no top-k), mse, want_loss,
// members, dict_broadcast (with SUP: targets_broadcast), count, stride, l1 scales (count)...,
// l1 penalties (count)..., k (count)..., Adam scalars (beta1, beta2, eps, step_size, bias2_sqrt) per step for
// one member (stride 1) or each]

const NN: u32 = {{NN}}u;
const MM: u32 = {{MM}}u;
const CH: u32 = {{CH}}u;
const TG: u32 = 64u;

var<workgroup> w_sh: array<f32, {{NM}}>;
var<workgroup> bias_sh: array<f32, {{NN}}>;
var<workgroup> s_sh: array<f32, {{NC}}>;
var<workgroup> g_sh: array<f32, {{NC}}>;
var<workgroup> r_sh: array<f32, {{MC}}>;
var<workgroup> x_sh: array<f32, {{MC}}>;

// With PRIVATE (the host's choice on software adapters, for the reconstruction objective and
// small dictionaries), each invocation that computes samples copies the step's weight, bias and
// dictionary into private arrays, and sums its samples' gradients in private arrays over the
// whole batch; the workgroup adds the invocations' sums once per step, not once per chunk.
// llvmpipe computes a SIMD group's lanes together and turns every load inside a loop or branch
// into a loop over the lanes, even a workgroup load at the same address in every lane (see
// `fused.wgsl`); a private array indexed by the unrolled loops' constants is registers or
// stack slots instead. A hardware adapter broadcasts uniform workgroup reads and keeps the
// workgroup form, whose few registers leave room for many samples in flight.
const PRIVATE: bool = {{PRIVATE}};
var<private> w_own: array<f32, {{OWN}}>;
var<private> d_own: array<f32, {{OWN}}>;
var<private> gw_own: array<f32, {{OWN}}>;
var<private> gd_own: array<f32, {{OWN}}>;
var<private> bias_own: array<f32, {{OWNB}}>;
var<private> gb_own: array<f32, {{OWNB}}>;

fn w_at(o: u32) -> f32 {
    if (PRIVATE) {
        return w_own[o];
    }
    return w_sh[o];
}

fn d_at(o: u32) -> f32 {
    if (PRIVATE) {
        return d_own[o];
    }
    return d_sh[o];
}

fn bias_at(j: u32) -> f32 {
    if (PRIVATE) {
        return bias_own[j];
    }
    return bias_sh[j];
}

// With PRIVATE, this invocation's copy of the step's parameters and its sums cleared. The
// caller passes NN * MM and NN behind a test of a parameter: bounds the compiler cannot fold
// keep these loops rolled (unrolled, llvmpipe spends seconds compiling a lane loop per value).
fn own_step(len: u32, latents: u32) {
    if (PRIVATE) {
        for (var t = 0u; t < len; t++) {
            w_own[t] = w_sh[t];
            d_own[t] = d_sh[t];
            gw_own[t] = 0.0;
            gd_own[t] = 0.0;
        }
        for (var j = 0u; j < latents; j++) {
            bias_own[j] = bias_sh[j];
            gb_own[j] = 0.0;
        }
    }
}

// This invocation's sum of gradient value o (the packed order: W, the bias, D).
fn own_grad(o: u32, off_d: u32) -> f32 {
    if (o < NN * MM) {
        return gw_own[o];
    }
    if (o < off_d) {
        return gb_own[o - NN * MM];
    }
    return gd_own[o - off_d];
}

// With PRIVATE, the batch's gradient from the invocations' sums, into the state's gradient
// block: NN values at a time, each through g_sh (a column per invocation), then summed over
// the columns by its owner. `latents` is NN behind a test of a parameter (see `own_step`).
fn add_own_gradients(lid: u32, grad_at: u32, plen: u32, off_d: u32, latents: u32) {
    for (var o0 = 0u; o0 < plen; o0 += NN) {
        if (lid < CH) {
            for (var t = 0u; t < latents; t++) {
                g_sh[t * CH + lid] = select(0.0, own_grad(o0 + t, off_d), o0 + t < plen);
            }
        }
        workgroupBarrier();
        if (lid < NN && o0 + lid < plen) {
            var acc = vec4<f32>(0.0);
            for (var c = 0u; c < CH; c += 4u) {
                acc += vec4<f32>(g_sh[lid * CH + c], g_sh[lid * CH + c + 1u], g_sh[lid * CH + c + 2u], g_sh[lid * CH + c + 3u]);
            }
            b2[grad_at + o0 + lid] = (acc.x + acc.y) + (acc.z + acc.w);
        }
        workgroupBarrier();
    }
    // Adam reads each value in another invocation than the one that wrote it.
    storageBarrier();
}

// The top-k order of the kernel-by-kernel path: larger first, ties to the lower row.
fn ahead(v: f32, i: u32, w: f32, j: u32) -> bool {
    return v > w || (v == w && i < j);
}

@compute @workgroup_size(64)
fn train_encoder(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let lid = lid3.x;
    let member = wg.x + wg.y * nwg.x;
    if (member >= p[9]) { return; }
    let n = p[0];
    let steps = p[1];
    let plen = p[3];
    let has_bias = p[4] == 1u;
    let learned = p[5] == 1u;
    // p[6] is the largest k; each member's follows the penalties.
    let k = p[13u + 2u * p[11] + select(member, 0u, p[11] == 1u)];
    let mse = pf(7u);
    let count = p[11];
    let stride = p[12];
    let l1 = member_value(13u, count, member);
    let penalty = member_value(13u + count, count, member);
    let scalars_at = 13u + 3u * count + 5u * select(member, 0u, stride == 1u);
    let base = member * 4u * plen;
    let grad_at = base + 3u * plen;
    let off_d = NN * MM + select(0u, NN, has_bias);
    let xbase = select(member, 0u, p[2] == 1u) * MM * n;
    let dbase = select(member, 0u, p[10] == 1u) * MM * NN;
    let tbase = select(member, 0u, p[10] == 1u) * NN * n;
    // This invocation's share of the last step's loss.
    var sq = 0.0;
    var l1_sum = 0.0;
    var sup_loss = 0.0;
    for (var step = 0u; step < steps; step++) {
        for (var o = lid; o < NN * MM; o += TG) {
            w_sh[o] = b2[base + o];
            if (SUP) {
                continue;
            }
            if (learned) {
                d_sh[o] = b2[base + off_d + o];
            } else {
                d_sh[o] = b4[dbase + o];
            }
        }
        if (has_bias) {
            for (var j = lid; j < NN; j += TG) { bias_sh[j] = b2[base + NN * MM + j]; }
        }
        workgroupBarrier();
        if (learned) {
            normalize_atoms(lid, base + off_d);
        }
        if (lid < CH) {
            own_step(select(NN * MM, 0u, n == 0u), select(NN, 0u, n == 0u));
        }
        sq = 0.0;
        l1_sum = 0.0;
        if (SUP) { clear_cosine(lid); }
        // Phase 0 (supervised only) sums over the batch; phase 1 computes the gradient.
        for (var phase = select(1u, 0u, SUP); phase < 2u; phase++) {
            for (var c0 = 0u; c0 < n; c0 += CH) {
                if (lid < CH) {
                    // Sample c of the chunk: its signal, code and residual in registers, then its
                    // column of the chunk's buffers (row-major over the chunk: neighbouring
                    // invocations write neighbouring addresses).
                    let c = lid;
                    let sample = c0 + c;
                    var x: array<f32, MM>;
                    var s: array<f32, NN>;
                    var r: array<f32, MM>;
                    if (sample < n) {
                        for (var i = 0u; i < MM; i++) { x[i] = b1[xbase + sample * MM + i]; }
                        for (var j = 0u; j < NN; j++) {
                            var a = 0.0;
                            if (has_bias) { a = bias_at(j); }
                            for (var i = 0u; i < MM; i++) { a = fma(w_at(i * NN + j), x[i], a); }
                            s[j] = a;
                        }
                        if (k > 0u) {
                            // k passes find the k-th entry in the top-k order; keep what is not after it.
                            var last_v = 0.0;
                            var last_i = 0u;
                            var found = 0u;
                            for (var pass_ = 0u; pass_ < k; pass_++) {
                                var best_v = 0.0;
                                var best_i = NN;
                                for (var j = 0u; j < NN; j++) {
                                    let v = s[j];
                                    if (is_nan(v)) { continue; }
                                    let below = found == 0u || ahead(last_v, last_i, v, j);
                                    if (below && (best_i == NN || ahead(v, j, best_v, best_i))) {
                                        best_v = v;
                                        best_i = j;
                                    }
                                }
                                if (best_i == NN) { break; }
                                last_v = best_v;
                                last_i = best_i;
                                found++;
                            }
                            for (var j = 0u; j < NN; j++) {
                                let v = s[j];
                                let keep = found > 0u && !is_nan(v) && !ahead(last_v, last_i, v, j);
                                s[j] = select(0.0, v, keep);
                            }
                        }
                        for (var j = 0u; j < NN; j++) {
                            let v = s[j];
                            s[j] = select(0.0, v, v > 0.0 && !is_nan(v));
                            l1_sum += s[j];
                            if (!PRIVATE) {
                                s_sh[j * CH + c] = s[j];
                            }
                        }
                        if (SUP) {
                            if (phase == 1u) {
                                for (var i = 0u; i < MM; i++) { x_sh[i * CH + c] = x[i]; }
                                for (var j = 0u; j < NN; j++) {
                                    g_sh[j * CH + c] = cosine_grad(j, s[j], b4[tbase + sample * NN + j]);
                                }
                            }
                        } else {
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
                                    x_sh[i * CH + c] = x[i];
                                }
                            }
                            for (var j = 0u; j < NN; j++) {
                                var g = 0.0;
                                for (var i = 0u; i < MM; i++) { g = fma(d_at(j * MM + i), r[i], g); }
                                let gj = select(0.0, g + l1, s[j] > 0.0);
                                if (PRIVATE) {
                                    // This sample's share of dW = G X^T, db = sum G, dD = R S^T.
                                    for (var i = 0u; i < MM; i++) {
                                        gw_own[i * NN + j] = fma(gj, x[i], gw_own[i * NN + j]);
                                        gd_own[j * MM + i] = fma(r[i], s[j], gd_own[j * MM + i]);
                                    }
                                    gb_own[j] += gj;
                                } else {
                                    g_sh[j * CH + c] = gj;
                                }
                            }
                        }
                    } else if (!PRIVATE) {
                        for (var i = 0u; i < MM; i++) {
                            r_sh[i * CH + c] = 0.0;
                            x_sh[i * CH + c] = 0.0;
                        }
                        for (var j = 0u; j < NN; j++) {
                            s_sh[j * CH + c] = 0.0;
                            g_sh[j * CH + c] = 0.0;
                        }
                    }
                }
                if (PRIVATE) {
                    // The sums stay in each invocation until the batch is done.
                    continue;
                }
                workgroupBarrier();
                if (phase == 0u) {
                    // The owners of the latents add the chunk's codes and targets to their sums.
                    for (var j = lid; j < NN; j += TG) {
                        for (var c = 0u; c < CH && c0 + c < n; c++) {
                            add_cosine(j, s_sh[j * CH + c], b4[tbase + (c0 + c) * NN + j]);
                        }
                    }
                    workgroupBarrier();
                    continue;
                }
                for (var o = lid; o < plen; o += TG) {
                    // Over the chunk in fours (CH is a multiple of 8): four sums in flight, and a
                    // quarter of the loop's iterations.
                    var acc = vec4<f32>(0.0);
                    if (o < NN * MM) {
                        let j = o % NN;
                        let i = o / NN;
                        for (var c = 0u; c < CH; c += 4u) {
                            let gv = vec4<f32>(g_sh[j * CH + c], g_sh[j * CH + c + 1u], g_sh[j * CH + c + 2u], g_sh[j * CH + c + 3u]);
                            let xv = vec4<f32>(x_sh[i * CH + c], x_sh[i * CH + c + 1u], x_sh[i * CH + c + 2u], x_sh[i * CH + c + 3u]);
                            acc = fma(gv, xv, acc);
                        }
                    } else if (o < off_d) {
                        let j = o - NN * MM;
                        for (var c = 0u; c < CH; c += 4u) {
                            acc += vec4<f32>(g_sh[j * CH + c], g_sh[j * CH + c + 1u], g_sh[j * CH + c + 2u], g_sh[j * CH + c + 3u]);
                        }
                    } else {
                        let q = o - off_d;
                        let i = q % MM;
                        let j = q / MM;
                        for (var c = 0u; c < CH; c += 4u) {
                            let rv = vec4<f32>(r_sh[i * CH + c], r_sh[i * CH + c + 1u], r_sh[i * CH + c + 2u], r_sh[i * CH + c + 3u]);
                            let sv = vec4<f32>(s_sh[j * CH + c], s_sh[j * CH + c + 1u], s_sh[j * CH + c + 2u], s_sh[j * CH + c + 3u]);
                            acc = fma(rv, sv, acc);
                        }
                    }
                    let total = (acc.x + acc.y) + (acc.z + acc.w);
                    if (c0 == 0u) {
                        b2[grad_at + o] = total;
                    } else {
                        b2[grad_at + o] = b2[grad_at + o] + total;
                    }
                }
                workgroupBarrier();
            }
            if (phase == 0u) {
                sup_loss = cosine_coefficients(lid);
            }
        }
        if (PRIVATE) {
            add_own_gradients(lid, grad_at, plen, off_d, select(NN, 0u, n == 0u));
        }
        // Adam on the values this invocation owns (the host's scalars of this step).
        let st = adam_step_at(scalars_at + 5u * stride * step);
        for (var o = lid; o < plen; o += TG) { adam_b2(base + o, plen, b2[grad_at + o], st); }
        storageBarrier();
    }
    if (p[8] == 1u) {
        if (SUP) {
            write_cosine_loss(lid, member, sup_loss);
        } else {
            write_loss(lid, member, sq, l1_sum, mse, n, penalty);
        }
    }
}
