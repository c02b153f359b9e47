// The thin products of `gemm_block`, reading and writing four values per access, for software
// adapters. This module declares A, B, C and the epilogue's operand (b1..b4) as arrays of vec4
// (the same buffers and bindings as `gemm.wgsl`; gpu/mod.rs swaps the declarations of
// common.wgsl), so gpu/mod.rs takes it only where every vector is aligned: M and K multiples of
// 4, and N too where B is read transposed. p and {{TA}} / {{TB}} as in `gemm.wgsl`.
//
// Why: llvmpipe makes each load or store of a storage buffer a loop over its SIMD lanes, and
// that loop costs little more for a vector of four than for one value (the components go side
// by side). An invocation owns an 8 x 8 block of C as in `gemm_block`; per four steps of K it
// reads sixteen vectors where `gemm_block` reads 64 values, and it stores its block as sixteen
// vectors, the epilogue's operand read the same way, where `gemm_block` stores 64 values. Each
// element of C still sums straight down K in the order of `gemm_simple` and goes through the
// same epilogue, so the three kernels give the same bits.

// Four steps of K (q .. q + 3) of the block's eight rows of op(A) or eight columns of op(B):
// lt holds rows (or columns) 0-3 at step q + t, ht rows 4-7.
struct Quad {
    l0: vec4<f32>,
    h0: vec4<f32>,
    l1: vec4<f32>,
    h1: vec4<f32>,
    l2: vec4<f32>,
    h2: vec4<f32>,
    l3: vec4<f32>,
    h3: vec4<f32>,
}

// Where an invocation's vectors of one operand start (in vectors of four), set before the loop.
// Read along the block's side (A as stored, B transposed: four consecutive rows or columns at
// one step of K): `lo` and `hi` are the first and second four, `step` the distance between two
// steps of K. Read along K (A transposed, B as stored: four consecutive steps of one row or
// column): `at` holds the eight rows' or columns' starts.
struct Reach {
    lo: u32,
    hi: u32,
    step: u32,
    at: array<u32, 8>,
}

// Eight vectors along K, one per row or column, as a Quad (a transpose of named values).
fn transpose8(v0: vec4<f32>, v1: vec4<f32>, v2: vec4<f32>, v3: vec4<f32>, v4: vec4<f32>, v5: vec4<f32>, v6: vec4<f32>, v7: vec4<f32>) -> Quad {
    return Quad(
        vec4(v0.x, v1.x, v2.x, v3.x),
        vec4(v4.x, v5.x, v6.x, v7.x),
        vec4(v0.y, v1.y, v2.y, v3.y),
        vec4(v4.y, v5.y, v6.y, v7.y),
        vec4(v0.z, v1.z, v2.z, v3.z),
        vec4(v4.z, v5.z, v6.z, v7.z),
        vec4(v0.w, v1.w, v2.w, v3.w),
        vec4(v4.w, v5.w, v6.w, v7.w),
    );
}

// Along the side: `first` (a multiple of 4) and the next four, clamped to `len` (a multiple of 4)
// so that a block past the edge reads its last four again (never stored).
fn reach_side(base: u32, first: u32, len: u32) -> Reach {
    var r: Reach;
    r.lo = (base + first) / 4u;
    r.hi = (base + min(first + 4u, len - 4u)) / 4u;
    r.step = len / 4u;
    return r;
}

// Along K: rows or columns first .. first + 7 (the last one past the edge), each `k` long.
fn reach_along(base: u32, first: u32, last: u32, k: u32) -> Reach {
    var r: Reach;
    for (var t = 0u; t < 8u; t++) {
        r.at[t] = (base + min(first + t, last) * k) / 4u;
    }
    return r;
}

// op(A) at rows row.., steps q.. (q a multiple of 4): A as stored (m x k) or transposed.
fn quad_a_n(r: Reach, q: u32) -> Quad {
    let s0 = q * r.step;
    let s1 = s0 + r.step;
    let s2 = s1 + r.step;
    let s3 = s2 + r.step;
    return Quad(b1[r.lo + s0], b1[r.hi + s0], b1[r.lo + s1], b1[r.hi + s1], b1[r.lo + s2], b1[r.hi + s2], b1[r.lo + s3], b1[r.hi + s3]);
}
fn quad_a_t(r: Reach, q: u32) -> Quad {
    let s = q / 4u;
    return transpose8(b1[r.at[0] + s], b1[r.at[1] + s], b1[r.at[2] + s], b1[r.at[3] + s], b1[r.at[4] + s], b1[r.at[5] + s], b1[r.at[6] + s], b1[r.at[7] + s]);
}
// op(B) at steps q.., columns col..: B as stored (k x n) or transposed.
fn quad_b_n(r: Reach, q: u32) -> Quad {
    let s = q / 4u;
    return transpose8(b2[r.at[0] + s], b2[r.at[1] + s], b2[r.at[2] + s], b2[r.at[3] + s], b2[r.at[4] + s], b2[r.at[5] + s], b2[r.at[6] + s], b2[r.at[7] + s]);
}
fn quad_b_t(r: Reach, q: u32) -> Quad {
    let s0 = q * r.step;
    let s1 = s0 + r.step;
    let s2 = s1 + r.step;
    let s3 = s2 + r.step;
    return Quad(b2[r.lo + s0], b2[r.hi + s0], b2[r.lo + s1], b2[r.hi + s1], b2[r.lo + s2], b2[r.hi + s2], b2[r.lo + s3], b2[r.hi + s3]);
}

// Where the block's rows of op(A) and columns of op(B) start.
fn reach_a_n(base: u32, row: u32, m: u32, k: u32) -> Reach {
    return reach_side(base, row, m);
}
fn reach_a_t(base: u32, row: u32, m: u32, k: u32) -> Reach {
    return reach_along(base, row, m - 1u, k);
}
fn reach_b_n(base: u32, col: u32, n: u32, k: u32) -> Reach {
    return reach_along(base, col, n - 1u, k);
}
fn reach_b_t(base: u32, col: u32, n: u32, k: u32) -> Reach {
    return reach_side(base, col, n);
}

// alpha c + beta C at four rows (row.., a multiple of 4) of one column of C, at `at`, then the
// epilogue, as `store_c` does for one.
fn store4(at: u32, row: u32, member: u32, c: vec4<f32>, o: Out) {
    var old = vec4<f32>(0.0);
    if (o.beta != 0.0) {
        old = b3[at / 4u];
    }
    var x = vec4<f32>(0.0);
    if (reads_operand(o)) {
        x = b4[operand_at(at, row, member, o) / 4u];
    }
    b3[at / 4u] = finish(c, old, x, o);
}

// Rows row..row + 7 of one column of C (the second four only where M has them), to the edge.
fn store_column4(member: u32, row: u32, col: u32, lo: vec4<f32>, hi: vec4<f32>, o: Out) {
    if (col >= o.n) {
        return;
    }
    let at = member * o.m * o.n + row + col * o.m;
    store4(at, row, member, lo, o);
    if (row + 4u < o.m) {
        store4(at + 4u, row + 4u, member, hi, o);
    }
}

// The 8 x 8 block at rows row.., columns col.. of C, to the edge.
fn store_block4(member: u32, row: u32, col: u32, a: Block, o: Out) {
    store_column4(member, row, col, a.c0l, a.c0h, o);
    store_column4(member, row, col + 1u, a.c1l, a.c1h, o);
    store_column4(member, row, col + 2u, a.c2l, a.c2h, o);
    store_column4(member, row, col + 3u, a.c3l, a.c3h, o);
    store_column4(member, row, col + 4u, a.c4l, a.c4h, o);
    store_column4(member, row, col + 5u, a.c5l, a.c5h, o);
    store_column4(member, row, col + 6u, a.c6l, a.c6h, o);
    store_column4(member, row, col + 7u, a.c7l, a.c7h, o);
}

@compute @workgroup_size(64)
fn gemm_block4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let m = p[0];
    let n = p[1];
    let k = p[2];
    let out = out_params();
    let at = place(gid.x + gid.y * nwg.x * 64u, m, n, 8u, p[9]);
    if (!at.work) { return; }
    let member = at.member;
    let o = out_for(out, member);
    let row = at.row;
    let col = at.col;
    let ra = reach_a_{{TA}}(select(member, 0u, p[5] == 1u) * m * k, row, m, k);
    let rb = reach_b_{{TB}}(select(member, 0u, p[6] == 1u) * k * n, col, n, k);
    var acc = block_zero();
    for (var q = 0u; q < k; q += 4u) {
        let a = quad_a_{{TA}}(ra, q);
        let b = quad_b_{{TB}}(rb, q);
        acc = block_fma(acc, a.l0, a.h0, b.l0, b.h0);
        acc = block_fma(acc, a.l1, a.h1, b.l1, b.h1);
        acc = block_fma(acc, a.l2, a.h2, b.l2, b.h2);
        acc = block_fma(acc, a.l3, a.h3, b.l3, b.h3);
    }
    store_block4(member, row, col, acc, o);
}

// A 16 x 16 block per invocation, as four 8 x 8 blocks (rows r, columns c: acc_rc), where M and
// N are multiples of 16: per four steps of K, 32 vector loads for 1,024 multiply-adds, half as
// many per multiply-add as `gemm_block4`.
@compute @workgroup_size(16)
fn gemm_block16(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let m = p[0];
    let n = p[1];
    let k = p[2];
    let out = out_params();
    let at = place(gid.x + gid.y * nwg.x * 16u, m, n, 16u, p[9]);
    if (!at.work) { return; }
    let member = at.member;
    let o = out_for(out, member);
    let row = at.row;
    let col = at.col;
    let a_base = select(member, 0u, p[5] == 1u) * m * k;
    let b_base = select(member, 0u, p[6] == 1u) * k * n;
    let ra0 = reach_a_{{TA}}(a_base, row, m, k);
    let ra1 = reach_a_{{TA}}(a_base, row + 8u, m, k);
    let rb0 = reach_b_{{TB}}(b_base, col, n, k);
    let rb1 = reach_b_{{TB}}(b_base, col + 8u, n, k);
    var acc00 = block_zero();
    var acc01 = block_zero();
    var acc10 = block_zero();
    var acc11 = block_zero();
    for (var q = 0u; q < k; q += 4u) {
        let qa0 = quad_a_{{TA}}(ra0, q);
        let qa1 = quad_a_{{TA}}(ra1, q);
        let qb0 = quad_b_{{TB}}(rb0, q);
        let qb1 = quad_b_{{TB}}(rb1, q);
        acc00 = block_fma(acc00, qa0.l0, qa0.h0, qb0.l0, qb0.h0);
        acc01 = block_fma(acc01, qa0.l0, qa0.h0, qb1.l0, qb1.h0);
        acc10 = block_fma(acc10, qa1.l0, qa1.h0, qb0.l0, qb0.h0);
        acc11 = block_fma(acc11, qa1.l0, qa1.h0, qb1.l0, qb1.h0);
        acc00 = block_fma(acc00, qa0.l1, qa0.h1, qb0.l1, qb0.h1);
        acc01 = block_fma(acc01, qa0.l1, qa0.h1, qb1.l1, qb1.h1);
        acc10 = block_fma(acc10, qa1.l1, qa1.h1, qb0.l1, qb0.h1);
        acc11 = block_fma(acc11, qa1.l1, qa1.h1, qb1.l1, qb1.h1);
        acc00 = block_fma(acc00, qa0.l2, qa0.h2, qb0.l2, qb0.h2);
        acc01 = block_fma(acc01, qa0.l2, qa0.h2, qb1.l2, qb1.h2);
        acc10 = block_fma(acc10, qa1.l2, qa1.h2, qb0.l2, qb0.h2);
        acc11 = block_fma(acc11, qa1.l2, qa1.h2, qb1.l2, qb1.h2);
        acc00 = block_fma(acc00, qa0.l3, qa0.h3, qb0.l3, qb0.h3);
        acc01 = block_fma(acc01, qa0.l3, qa0.h3, qb1.l3, qb1.h3);
        acc10 = block_fma(acc10, qa1.l3, qa1.h3, qb0.l3, qb0.h3);
        acc11 = block_fma(acc11, qa1.l3, qa1.h3, qb1.l3, qb1.h3);
    }
    store_block4(member, row, col, acc00, o);
    store_block4(member, row, col + 8u, acc01, o);
    store_block4(member, row + 8u, col, acc10, o);
    store_block4(member, row + 8u, col + 8u, acc11, o);
}
