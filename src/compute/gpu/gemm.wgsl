// Batched C = alpha op(A) op(B) + beta C for every matrix of a stack, column-major. Workgroup z
// is the member; an operand with a stack of 1 is shared by every member.
// One module per transpose case: gpu/mod.rs replaces {{TA}} and {{TB}} by `n` (as stored) or
// `t` (transposed), so each load reads one layout (no kernel loads both and selects one).
// b1 = A, b2 = B, b3 = C, b4 = the epilogue's operand. p = [M, N, K, a_transposed,
// b_transposed, a_broadcast, b_broadcast, alpha, beta, stack, epilogue, operand_broadcast,
// epilogue_flags, scale_count, scales..., skip_count, skip flags...]. The epilogue (see `Epilogue` in compute/tensor.rs)
// applies to each value as it is stored: 0 none; 1 + bias (flag 1), ReLU (flag 2); 2 the
// scaled residual against b4; 3 + l1 sign(b4) (flag 1), zero where b4 <= 0 (flag 2). A member
// whose skip flag is set is left alone (its C as it was): FISTA's converged members.

const TILE: u32 = 64u;
const TK: u32 = 16u;
// A staged tile holds TK rows of TILE values as vectors of 4, each row padded by one vector
// (17 vectors, 68 words): staging along k (a transposed A, a B as stored) then spreads 16
// consecutive invocations over 8 banks instead of one.
const ROW: u32 = 17u;

var<workgroup> a_tile: array<vec4<f32>, 272>; // [k][i / 4]: TK x ROW
var<workgroup> b_tile: array<vec4<f32>, 272>; // [k][j / 4]

// Index of op(A)(i, q): A stored m x k (n) or k x m (t).
fn a_n(base: u32, i: u32, q: u32, m: u32, k: u32) -> u32 {
    return base + i + q * m;
}
fn a_t(base: u32, i: u32, q: u32, m: u32, k: u32) -> u32 {
    return base + q + i * k;
}
// Index of op(B)(q, j): B stored k x n (n) or n x k (t).
fn b_n(base: u32, q: u32, j: u32, k: u32, n: u32) -> u32 {
    return base + q + j * k;
}
fn b_t(base: u32, q: u32, j: u32, k: u32, n: u32) -> u32 {
    return base + j + q * n;
}

// Where the e-th of a staged tile's 1,024 values belongs, as (k, i) or (k, j): consecutive
// invocations take consecutive addresses of the operand as stored (along i for A, along k
// for A transposed and for B, along j for B transposed), so global reads coalesce.
fn tile_a_n(e: u32) -> vec2<u32> {
    return vec2(e / TILE, e % TILE);
}
fn tile_a_t(e: u32) -> vec2<u32> {
    return vec2(e % TK, e / TK);
}
fn tile_b_n(e: u32) -> vec2<u32> {
    return vec2(e % TK, e / TK);
}
fn tile_b_t(e: u32) -> vec2<u32> {
    return vec2(e / TILE, e % TILE);
}

// alpha c + beta C at one element of C (row `row` of member `member`), then the epilogue.
fn store_c(at: u32, row: u32, member: u32, c: f32, o: Out) {
    var old = 0.0;
    if (o.beta != 0.0) {
        old = b3[at];
    }
    var x = 0.0;
    if (reads_operand(o)) {
        x = b4[operand_at(at, row, member, o)];
    }
    b3[at] = finish(vec4(c), vec4(old), vec4(x), o).x;
}

// Rows row..row + 7 of one column of C (lo holds the first four, hi the next), to the edge.
fn store_column(member: u32, row: u32, col: u32, lo: vec4<f32>, hi: vec4<f32>, o: Out) {
    let m = o.m;
    if (col >= o.n) {
        return;
    }
    let at = member * m * o.n + row + col * m;
    if (row < m) { store_c(at, row, member, lo.x, o); }
    if (row + 1u < m) { store_c(at + 1u, row + 1u, member, lo.y, o); }
    if (row + 2u < m) { store_c(at + 2u, row + 2u, member, lo.z, o); }
    if (row + 3u < m) { store_c(at + 3u, row + 3u, member, lo.w, o); }
    if (row + 4u < m) { store_c(at + 4u, row + 4u, member, hi.x, o); }
    if (row + 5u < m) { store_c(at + 5u, row + 5u, member, hi.y, o); }
    if (row + 6u < m) { store_c(at + 6u, row + 6u, member, hi.z, o); }
    if (row + 7u < m) { store_c(at + 7u, row + 7u, member, hi.w, o); }
}


// The block at rows row.., columns col.. of C, to the edge.
fn store_block(member: u32, row: u32, col: u32, a: Block, o: Out) {
    store_column(member, row, col, a.c0l, a.c0h, o);
    store_column(member, row, col + 1u, a.c1l, a.c1h, o);
    store_column(member, row, col + 2u, a.c2l, a.c2h, o);
    store_column(member, row, col + 3u, a.c3l, a.c3h, o);
    store_column(member, row, col + 4u, a.c4l, a.c4h, o);
    store_column(member, row, col + 5u, a.c5l, a.c5h, o);
    store_column(member, row, col + 6u, a.c6l, a.c6h, o);
    store_column(member, row, col + 7u, a.c7l, a.c7h, o);
}

// 64 x 64 tiles of C: 8 x 8 invocations each own an 8 x 8 block (rows 8 lid.x.., columns
// 8 lid.y..), read from the staged tiles four values at a time: per step of k, four vector
// loads feed 64 multiply-adds into a `Block`. K advances 16 at a time through tiles of op(A)
// and op(B) staged in workgroup memory; each invocation stages 16 values of each.
@compute @workgroup_size(8, 8)
fn gemm(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>) {
    let m = p[0];
    let n = p[1];
    let k = p[2];
    let out = out_params();
    let member = wg.z;
    if (skipped(member)) { return; }
    let o = out_for(out, member);
    let a_base = select(member, 0u, p[5] == 1u) * m * k;
    let b_base = select(member, 0u, p[6] == 1u) * k * n;
    let row0 = wg.y * TILE;
    let col0 = wg.x * TILE;
    let tid = lid.y * 8u + lid.x;
    var acc = block_zero();
    for (var k0 = 0u; k0 < k; k0 += TK) {
        for (var t = 0u; t < 16u; t++) {
            let e = tid + t * 64u;
            let ea = tile_a_{{TA}}(e);
            let gi = row0 + ea.y;
            let ga = k0 + ea.x;
            var v = 0.0;
            if (gi < m && ga < k) {
                v = b1[a_{{TA}}(a_base, gi, ga, m, k)];
            }
            a_tile[ea.x * ROW + ea.y / 4u][ea.y % 4u] = v;
            let eb = tile_b_{{TB}}(e);
            let gj = col0 + eb.y;
            let gb = k0 + eb.x;
            var w = 0.0;
            if (gj < n && gb < k) {
                w = b2[b_{{TB}}(b_base, gb, gj, k, n)];
            }
            b_tile[eb.x * ROW + eb.y / 4u][eb.y % 4u] = w;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            let o = kk * ROW;
            let al = a_tile[o + 2u * lid.x];
            let ah = a_tile[o + 2u * lid.x + 1u];
            let bl = b_tile[o + 2u * lid.y];
            let bh = b_tile[o + 2u * lid.y + 1u];
            acc = block_fma(acc, al, ah, bl, bh);
        }
        workgroupBarrier();
    }
    let row = row0 + 8u * lid.x;
    let col = col0 + 8u * lid.y;
    store_block(member, row, col, acc, o);
}

// The same product for shapes too thin for tiles (the paper's: one side of 8 or 16, or few
// outputs per member): one invocation per element of C, straight down K. Consecutive
// invocations take consecutive rows of C, so C, A (as stored) and B read and write coalesced.
@compute @workgroup_size(256)
fn gemm_simple(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let m = p[0];
    let n = p[1];
    let k = p[2];
    let out = out_params();
    let i = flat(gid, nwg);
    let per = m * n;
    if (i >= per * p[9]) { return; }
    let member = i / per;
    if (skipped(member)) { return; }
    let o = out_for(out, member);
    let row = (i % per) % m;
    let col = (i % per) / m;
    let a_base = select(member, 0u, p[5] == 1u) * m * k;
    let b_base = select(member, 0u, p[6] == 1u) * k * n;
    var acc = 0.0;
    for (var q = 0u; q < k; q++) {
        acc = fma(b1[a_{{TA}}(a_base, row, q, m, k)], b2[b_{{TB}}(b_base, q, col, k, n)], acc);
    }
    store_c(member * per + row + col * m, row, member, acc, o);
}

// The same thin products on software adapters (the host's choice): each invocation an 8 x 8
// block of C, straight down K with sixteen loads per step for 64 multiply-adds where
// `gemm_simple` makes two loads per multiply-add. llvmpipe turns every load inside a loop into
// a loop over its SIMD lanes, so loads, not arithmetic, are its cost. A block's rows and
// columns past the edge read the last row or column (no branch in the loop) and are not
// stored. Each element of C sums in the order of `gemm_simple`, so the two give the same bits.
// A GPU runs `gemm_simple`, whose one element per invocation keeps many more in flight.
// Workgroups of 64: the long thin products have few blocks (256 x 8 over K = 1,024: 32), and
// llvmpipe runs a workgroup on one core.
@compute @workgroup_size(64)
fn gemm_block(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
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
    let a_base = select(member, 0u, p[5] == 1u) * m * k;
    let b_base = select(member, 0u, p[6] == 1u) * k * n;
    let last_row = m - 1u;
    let last_col = n - 1u;
    let r1 = min(row + 1u, last_row);
    let r2 = min(row + 2u, last_row);
    let r3 = min(row + 3u, last_row);
    let r4 = min(row + 4u, last_row);
    let r5 = min(row + 5u, last_row);
    let r6 = min(row + 6u, last_row);
    let r7 = min(row + 7u, last_row);
    let j1 = min(col + 1u, last_col);
    let j2 = min(col + 2u, last_col);
    let j3 = min(col + 3u, last_col);
    let j4 = min(col + 4u, last_col);
    let j5 = min(col + 5u, last_col);
    let j6 = min(col + 6u, last_col);
    let j7 = min(col + 7u, last_col);
    var acc = block_zero();
    for (var q = 0u; q < k; q++) {
        let al = vec4<f32>(
            b1[a_{{TA}}(a_base, row, q, m, k)],
            b1[a_{{TA}}(a_base, r1, q, m, k)],
            b1[a_{{TA}}(a_base, r2, q, m, k)],
            b1[a_{{TA}}(a_base, r3, q, m, k)],
        );
        let ah = vec4<f32>(
            b1[a_{{TA}}(a_base, r4, q, m, k)],
            b1[a_{{TA}}(a_base, r5, q, m, k)],
            b1[a_{{TA}}(a_base, r6, q, m, k)],
            b1[a_{{TA}}(a_base, r7, q, m, k)],
        );
        let bl = vec4<f32>(
            b2[b_{{TB}}(b_base, q, col, k, n)],
            b2[b_{{TB}}(b_base, q, j1, k, n)],
            b2[b_{{TB}}(b_base, q, j2, k, n)],
            b2[b_{{TB}}(b_base, q, j3, k, n)],
        );
        let bh = vec4<f32>(
            b2[b_{{TB}}(b_base, q, j4, k, n)],
            b2[b_{{TB}}(b_base, q, j5, k, n)],
            b2[b_{{TB}}(b_base, q, j6, k, n)],
            b2[b_{{TB}}(b_base, q, j7, k, n)],
        );
        acc = block_fma(acc, al, ah, bl, bh);
    }
    store_block(member, row, col, acc, o);
}
