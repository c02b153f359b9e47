// Fused training of a two-layer encoder (the MLP encoder: one hidden ReLU layer of width HH,
// then the code layer, ReLU or top-k then ReLU) with its decoder: many full-batch steps per
// dispatch, one workgroup per member. Each step matches the kernel-by-kernel path
// (`EncoderModel::train_step`): learned atoms to unit norm, H = relu(W1 X + b1),
// S = relu(topk(W2 H + b2)), the scaled residual R = mse (D S - X), G = (D^T R + l1) where
// S > 0, GH = (W2^T G) where H > 0, then dW2 = G H^T, db2 = sum G, dW1 = GH X^T,
// db1 = sum GH, dD = R S^T and Adam on every parameter.
//
// Unlike `train.wgsl`, whose invocations each carry one sample through the whole step in
// registers, every stage here is spread over the whole workgroup (an output of the chunk's
// hidden layer, codes, residual or gradients per invocation in turn), so the hidden width is
// bounded by workgroup memory alone, not by registers. The layers' weights are copied into
// workgroup memory at the start of each step where they fit, else read from the state buffer
// (each by a whole row of invocations at once, which a GPU serves from its caches); the
// dictionary and the chunk's six blocks of activations and gradients live in workgroup memory
// as rows of vec4 (four samples of the chunk each), laid out [row * CQ + quad] so that
// neighbouring invocations touch neighbouring words; an invocation's output in a stage is one
// vec4 (a unit for four samples), so each of its multiply-adds does four. NN, MM, HH, CH, WSH
// and PWS are substituted by the host; CH is a multiple of 4.
//
// With SUP (see `train_common.wgsl`), the supervised objective: no decoder, G the cosine loss's
// gradient where S > 0, two passes over the chunks per step.
//
// Bindings and parameters: as `train.wgsl`. The packed state per member is
// [params | m | v | grad], P values each: W1 (HH x MM, column-major), b1 (HH) if bias,
// W2 (NN x HH, column-major), b2 (NN) if bias, the dictionary D (MM x NN) if learned.

const NN: u32 = {{NN}}u;
const MM: u32 = {{MM}}u;
const HH: u32 = {{HH}}u;
const CH: u32 = {{CH}}u;
// Quads (vec4s of samples) per chunk.
const CQ: u32 = CH / 4u;
const TG: u32 = 64u;
// The layers' parameters (W1, b1, W2, b2) copied into workgroup memory each step where they
// fit beside the chunk's blocks; else read from the state buffer.
const WSH: bool = {{WSH}};

var<workgroup> w_sh: array<f32, {{PWS}}>;
var<workgroup> x_sh: array<vec4<f32>, {{MQ}}>;
var<workgroup> r_sh: array<vec4<f32>, {{MQ}}>;
var<workgroup> h_sh: array<vec4<f32>, {{HQ}}>;
var<workgroup> gh_sh: array<vec4<f32>, {{HQ}}>;
var<workgroup> s_sh: array<vec4<f32>, {{NQ}}>;
var<workgroup> g_sh: array<vec4<f32>, {{NQ}}>;

// The top-k order of the kernel-by-kernel path: larger first, ties to the lower row.
fn ahead(v: f32, i: u32, w: f32, j: u32) -> bool {
    return v > w || (v == w && i < j);
}

fn is_nan4(v: vec4<f32>) -> vec4<bool> {
    return (bitcast<vec4<u32>>(v) & vec4<u32>(0x7fffffffu)) > vec4<u32>(0x7f800000u);
}

// Which of the four samples from `first` are in the batch.
fn in_batch(first: u32, n: u32) -> vec4<bool> {
    return vec4<u32>(first) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(n);
}

// The layers' parameter `i` of the member whose parameters start at `base`.
fn wv(base: u32, i: u32) -> f32 {
    if (WSH) {
        return w_sh[i];
    }
    return b2[base + i];
}

// Sums over the chunk of a row of one block times a row of another, in vec4s.
fn dot_gh_x(j: u32, i: u32) -> f32 {
    var acc = vec4<f32>(0.0);
    for (var q = 0u; q < CQ; q++) { acc = fma(gh_sh[j * CQ + q], x_sh[i * CQ + q], acc); }
    return (acc.x + acc.y) + (acc.z + acc.w);
}

fn dot_g_h(j: u32, h: u32) -> f32 {
    var acc = vec4<f32>(0.0);
    for (var q = 0u; q < CQ; q++) { acc = fma(g_sh[j * CQ + q], h_sh[h * CQ + q], acc); }
    return (acc.x + acc.y) + (acc.z + acc.w);
}

fn dot_r_s(i: u32, j: u32) -> f32 {
    var acc = vec4<f32>(0.0);
    for (var q = 0u; q < CQ; q++) { acc = fma(r_sh[i * CQ + q], s_sh[j * CQ + q], acc); }
    return (acc.x + acc.y) + (acc.z + acc.w);
}

fn sum_gh(j: u32) -> f32 {
    var acc = vec4<f32>(0.0);
    for (var q = 0u; q < CQ; q++) { acc += gh_sh[j * CQ + q]; }
    return (acc.x + acc.y) + (acc.z + acc.w);
}

fn sum_g(j: u32) -> f32 {
    var acc = vec4<f32>(0.0);
    for (var q = 0u; q < CQ; q++) { acc += g_sh[j * CQ + q]; }
    return (acc.x + acc.y) + (acc.z + acc.w);
}

// Top-k then ReLU on lane `l` of quad `q` of the codes (what is after the k-th entry in the
// top-k order, not positive or NaN becomes 0), in k passes.
fn topk_lane(q: u32, l: u32, k: u32) {
    var last_v = 0.0;
    var last_i = 0u;
    var found = 0u;
    for (var pass_ = 0u; pass_ < k; pass_++) {
        var best_v = 0.0;
        var best_i = NN;
        for (var j = 0u; j < NN; j++) {
            let v = s_sh[j * CQ + q][l];
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
        let v = s_sh[j * CQ + q][l];
        let keep = found > 0u && !is_nan(v) && !ahead(last_v, last_i, v, j) && v > 0.0;
        s_sh[j * CQ + q][l] = select(0.0, v, keep);
    }
}

@compute @workgroup_size(64)
fn train_mlp(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
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
    // Offsets of the blocks in a member's parameters.
    let off_b1 = HH * MM;
    let off_w2 = off_b1 + select(0u, HH, has_bias);
    let off_b2 = off_w2 + NN * HH;
    let off_d = off_b2 + select(0u, NN, has_bias);
    let xbase = select(member, 0u, p[2] == 1u) * MM * n;
    let dbase = select(member, 0u, p[10] == 1u) * MM * NN;
    let tbase = select(member, 0u, p[10] == 1u) * NN * n;
    let zero = vec4<f32>(0.0);
    // This invocation's share of the last step's loss.
    var sq = 0.0;
    var l1_sum = 0.0;
    var sup_loss = 0.0;
    for (var step = 0u; step < steps; step++) {
        if (WSH) {
            for (var o = lid; o < off_d; o += TG) { w_sh[o] = b2[base + o]; }
        }
        for (var o = lid; o < NN * MM; o += TG) {
            if (SUP) {
                break;
            }
            if (learned) {
                d_sh[o] = b2[base + off_d + o];
            } else {
                d_sh[o] = b4[dbase + o];
            }
        }
        workgroupBarrier();
        if (learned) {
            normalize_atoms(lid, base + off_d);
        }
        sq = 0.0;
        l1_sum = 0.0;
        if (SUP) { clear_cosine(lid); }
        // Phase 0 (supervised only) sums over the batch; phase 1 computes the gradient.
        for (var phase = select(1u, 0u, SUP); phase < 2u; phase++) {
            for (var c0 = 0u; c0 < n; c0 += CH) {
                // The chunk's signals (zero past the batch).
                for (var o = lid; o < MM * CQ; o += TG) {
                    let i = o / CQ;
                    let first = c0 + 4u * (o % CQ);
                    let last = n - 1u;
                    let v = vec4<f32>(
                        b1[xbase + min(first, last) * MM + i],
                        b1[xbase + min(first + 1u, last) * MM + i],
                        b1[xbase + min(first + 2u, last) * MM + i],
                        b1[xbase + min(first + 3u, last) * MM + i],
                    );
                    x_sh[o] = select(zero, v, in_batch(first, n));
                }
                workgroupBarrier();
                // The hidden layer (zero past the batch, so that padding adds nothing below).
                for (var o = lid; o < HH * CQ; o += TG) {
                    let j = o / CQ;
                    let q = o % CQ;
                    var a = zero;
                    if (has_bias) { a = vec4<f32>(wv(base, off_b1 + j)); }
                    for (var i = 0u; i < MM; i++) { a = fma(vec4<f32>(wv(base, i * HH + j)), x_sh[i * CQ + q], a); }
                    let keep = (a > zero) & !is_nan4(a) & in_batch(c0 + 4u * q, n);
                    h_sh[o] = select(zero, a, keep);
                }
                workgroupBarrier();
                // The codes' pre-activations; ReLU here when there is no top-k.
                for (var o = lid; o < NN * CQ; o += TG) {
                    let j = o / CQ;
                    let q = o % CQ;
                    var a = zero;
                    if (has_bias) { a = vec4<f32>(wv(base, off_b2 + j)); }
                    for (var h = 0u; h < HH; h++) { a = fma(vec4<f32>(wv(base, off_w2 + h * NN + j)), h_sh[h * CQ + q], a); }
                    var keep = in_batch(c0 + 4u * q, n);
                    if (k == 0u) { keep = keep & (a > zero) & !is_nan4(a); }
                    s_sh[o] = select(zero, a, keep);
                }
                workgroupBarrier();
                if (k > 0u && lid < CQ) {
                    // One invocation per quad, its samples in turn (it alone writes the quad).
                    for (var l = 0u; l < 4u; l++) {
                        if (c0 + 4u * lid + l < n) { topk_lane(lid, l, k); }
                    }
                }
                workgroupBarrier();
                if (phase == 0u) {
                    // The owners of the latents add the chunk's codes and targets to their sums.
                    for (var j = lid; j < NN; j += TG) {
                        for (var c = 0u; c < CH && c0 + c < n; c++) {
                            add_cosine(j, s_sh[j * CQ + c / 4u][c % 4u], b4[tbase + (c0 + c) * NN + j]);
                        }
                    }
                    workgroupBarrier();
                    continue;
                }
                if (SUP) {
                    // The codes' gradient of the supervised objective, where a code is positive.
                    for (var o = lid; o < NN * CQ; o += TG) {
                        let j = o / CQ;
                        let first = c0 + 4u * (o % CQ);
                        var gv = zero;
                        for (var l = 0u; l < 4u; l++) {
                            if (first + l < n) { gv[l] = cosine_grad(j, s_sh[o][l], b4[tbase + (first + l) * NN + j]); }
                        }
                        g_sh[o] = gv;
                    }
                } else {
                    // The scaled residual, and this invocation's share of the loss.
                    for (var o = lid; o < MM * CQ; o += TG) {
                        let i = o / CQ;
                        let q = o % CQ;
                        var a = -x_sh[o];
                        for (var j = 0u; j < NN; j++) { a = fma(vec4<f32>(d_sh[j * MM + i]), s_sh[j * CQ + q], a); }
                        let r = a * mse;
                        sq += dot(r, r);
                        r_sh[o] = r;
                    }
                    for (var o = lid; o < NN * CQ; o += TG) { l1_sum += dot(s_sh[o], vec4<f32>(1.0)); }
                    workgroupBarrier();
                    // The codes' gradient, where a code is positive.
                    for (var o = lid; o < NN * CQ; o += TG) {
                        let j = o / CQ;
                        let q = o % CQ;
                        var a = zero;
                        for (var i = 0u; i < MM; i++) { a = fma(vec4<f32>(d_sh[j * MM + i]), r_sh[i * CQ + q], a); }
                        g_sh[o] = select(zero, a + vec4<f32>(l1), s_sh[o] > zero);
                    }
                }
                workgroupBarrier();
                // Back through the code layer to the hidden layer, where a hidden unit is positive.
                for (var o = lid; o < HH * CQ; o += TG) {
                    let h = o / CQ;
                    let q = o % CQ;
                    var a = zero;
                    for (var j = 0u; j < NN; j++) { a = fma(vec4<f32>(wv(base, off_w2 + h * NN + j)), g_sh[j * CQ + q], a); }
                    gh_sh[o] = select(zero, a, h_sh[o] > zero);
                }
                workgroupBarrier();
                // Each invocation adds the chunk's share of the gradient values it owns.
                for (var o = lid; o < plen; o += TG) {
                    var total = 0.0;
                    if (o < off_b1) {
                        total = dot_gh_x(o % HH, o / HH);
                    } else if (o < off_w2) {
                        total = sum_gh(o - off_b1);
                    } else if (o < off_b2) {
                        let q = o - off_w2;
                        total = dot_g_h(q % NN, q / NN);
                    } else if (o < off_d) {
                        total = sum_g(o - off_b2);
                    } else {
                        let q = o - off_d;
                        total = dot_r_s(q % MM, q / MM);
                    }
                    if (c0 == 0u) {
                        b2[grad_at + o] = total;
                    } else {
                        b2[grad_at + o] = b2[grad_at + o] + total;
                    }
                }
                // Every read of the weights in this chunk comes before Adam below, and every read of
                // the chunk's blocks before the next chunk overwrites them.
                workgroupBarrier();
            }
            if (phase == 0u) {
                sup_loss = cosine_coefficients(lid);
            }
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
