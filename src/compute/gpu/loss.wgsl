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

// The loss of a member from its sums of squared scaled residuals and of code magnitudes, with
// p = [M, N, b, n_mse, n_l1] and from word `lists` the per-member lists of the MSE scales and
// the penalties: sum(r^2) / (mse^2 b M) + l1 sum|s| / (b N).
fn reconstruction_value(sq: f32, l1: f32, member: u32, lists: u32) -> f32 {
    let mse = member_value(lists, p[3], member);
    let lambda = member_value(lists + p[3], p[4], member);
    return sq / (mse * mse) / f32(p[2] * p[0]) + lambda * l1 / f32(p[2] * p[1]);
}

// A member's sum of squares of the scaled residual b1 (M x b) over entries `first` to `r_end`
// and of magnitudes of the codes b2 (N x b) over `first` to `c_end`, in steps of the workgroup,
// reduced into red[0] and red[256].
fn reconstruction_sums(member: u32, first: u32, r_end: u32, c_end: u32, lid: u32) {
    let r_base = member * p[0] * p[2];
    let c_base = member * p[1] * p[2];
    var sq = 0.0;
    for (var i = first; i < r_end; i += WG) {
        let v = b1[r_base + i];
        sq += v * v;
    }
    var l1 = 0.0;
    for (var i = first; i < c_end; i += WG) {
        l1 += abs(b2[c_base + i]);
    }
    red[lid] = sq;
    red[256u + lid] = l1;
    red[512u + lid] = 0.0;
    reduce3(lid);
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
    reconstruction_sums(member, lid, m_dim * batch, n_atoms * batch, lid);
    if (lid == 0u) {
        b3[2u * member] = reconstruction_value(red[0], red[256], member, 5u);
        b3[2u * member + 1u] = 0.0;
    }
}

// The reconstruction loss of members too long for one workgroup (past WIDE_LOSS values), in
// two dispatches: each workgroup of a chunk x member grid sums the squares of its chunk of the
// residual b1 and the magnitudes of its chunk of the codes b2 into b3 (2 per chunk and member,
// from word 0); then a workgroup per member sums its chunks and stores the loss into b4.
// p = [M, N, b, n_mse, n_l1, chunks, mse..., l1...]
const LOSS_CHUNK: u32 = 262144u;

@compute @workgroup_size(256)
fn reconstruction_loss_chunks(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>) {
    let lid = lid3.x;
    let chunk = wg.x;
    let member = wg.y;
    let end = chunk * LOSS_CHUNK + LOSS_CHUNK;
    reconstruction_sums(member, chunk * LOSS_CHUNK + lid, min(end, p[0] * p[2]), min(end, p[1] * p[2]), lid);
    if (lid == 0u) {
        let at = 2u * (member * p[5] + chunk);
        b3[at] = red[0];
        b3[at + 1u] = red[256];
    }
}

@compute @workgroup_size(256)
fn reconstruction_loss_finish(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>) {
    let lid = lid3.x;
    let member = wg.x;
    let chunks = p[5];
    var sq = 0.0;
    var l1 = 0.0;
    for (var c = lid; c < chunks; c += WG) {
        sq += b3[2u * (member * chunks + c)];
        l1 += b3[2u * (member * chunks + c) + 1u];
    }
    red[lid] = sq;
    red[256u + lid] = l1;
    red[512u + lid] = 0.0;
    reduce3(lid);
    if (lid == 0u) {
        b4[2u * member] = reconstruction_value(red[0], red[256], member, 6u);
        b4[2u * member + 1u] = 0.0;
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
