// Losses: one workgroup of 256 per member reduces in workgroup memory.

var<workgroup> red: array<f32, 768>;

fn reduce3(lid: u32) {
    for (var stride = 128u; stride > 0u; stride = stride / 2u) {
        workgroupBarrier();
        if (lid < stride) {
            red[lid] += red[lid + stride];
            red[256u + lid] += red[256u + lid + stride];
            red[512u + lid] += red[512u + lid + stride];
        }
    }
    workgroupBarrier();
}

// b3 (stack x 2 x 1) <- the reconstruction loss of each member from its scaled residual b1
// (M x b) and codes b2 (N x b): sum(r^2) / (mse^2 b M) + l1 sum|s| / (b N).
// p = [M, N, b, n_mse, n_l1, mse..., l1...]
@compute @workgroup_size(256)
fn reconstruction_loss(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>) {
    let lid = lid3.x;
    let member = wg.x;
    let m_dim = p[0];
    let n_atoms = p[1];
    let batch = p[2];
    let r_len = m_dim * batch;
    let c_len = n_atoms * batch;
    var sq = 0.0;
    for (var i = lid; i < r_len; i += WG) {
        let v = b1[member * r_len + i];
        sq += v * v;
    }
    var l1 = 0.0;
    for (var i = lid; i < c_len; i += WG) {
        l1 += abs(b2[member * c_len + i]);
    }
    red[lid] = sq;
    red[256u + lid] = l1;
    red[512u + lid] = 0.0;
    reduce3(lid);
    if (lid == 0u) {
        let mse = member_value(5u, p[3], member);
        let lambda = member_value(5u + p[3], p[4], member);
        let loss = red[0] / (mse * mse) / f32(batch * m_dim) + lambda * red[256] / f32(batch * n_atoms);
        b3[2u * member] = loss;
        b3[2u * member + 1u] = 0.0;
    }
}

// The supervised loss: minus the mean over latents of the cosine across samples between row i
// of b1 (predictions) and of b2 (targets); the gradient into b3, the loss into b4 (stack x 2).
// p = [N (rows), cols, target_is_broadcast]
@compute @workgroup_size(256)
fn cosine_loss(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>) {
    let lid = lid3.x;
    let member = wg.x;
    let rows = p[0];
    let cols = p[1];
    let base = member * rows * cols;
    let tbase = select(base, 0u, p[2] == 1u);
    let eps = 1e-8;
    var loss = 0.0;
    for (var r = 0u; r < rows; r++) {
        var dot = 0.0;
        var pp = 0.0;
        var tt = 0.0;
        for (var c = lid; c < cols; c += WG) {
            let pv = b1[base + c * rows + r];
            let tv = b2[tbase + c * rows + r];
            dot += pv * tv;
            pp += pv * pv;
            tt += tv * tv;
        }
        red[lid] = dot;
        red[256u + lid] = pp;
        red[512u + lid] = tt;
        reduce3(lid);
        let np_raw = sqrt(red[256]);
        let np = max(np_raw, eps);
        let nt = max(sqrt(red[512]), eps);
        let cos = red[0] / (np * nt);
        let n = f32(rows);
        loss -= cos / n;
        let coef_t = -1.0 / (n * np * nt);
        let coef_p = select(0.0, cos / (n * np * np), np_raw > eps);
        for (var c = lid; c < cols; c += WG) {
            let at = base + c * rows + r;
            b3[at] = coef_t * b2[tbase + c * rows + r] + coef_p * b1[at];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        b4[2u * member] = loss;
        b4[2u * member + 1u] = 0.0;
    }
}
