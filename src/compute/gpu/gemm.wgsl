// Batched C = alpha op(A) op(B) + beta C for every matrix of a stack, column-major, in 64 x 64
// tiles of C: 16 x 16 invocations each own a 4 x 4 block held in registers, and K advances 16
// at a time through tiles of op(A) and op(B) staged in workgroup memory. Workgroup z is the
// member; an operand with a stack of 1 is shared by every member.
// b1 = A, b2 = B, b3 = C. p = [M, N, K, a_transposed, b_transposed, a_broadcast, b_broadcast,
// alpha, beta]

const TILE: u32 = 64u;
const TK: u32 = 16u;

var<workgroup> a_tile: array<f32, 1024>; // [k][i]: TK x TILE
var<workgroup> b_tile: array<f32, 1024>; // [k][j]: TK x TILE

@compute @workgroup_size(16, 16)
fn gemm(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>) {
    let m = p[0];
    let n = p[1];
    let k = p[2];
    let ta = p[3] == 1u;
    let tb = p[4] == 1u;
    let member = wg.z;
    let a_base = select(member, 0u, p[5] == 1u) * m * k;
    let b_base = select(member, 0u, p[6] == 1u) * k * n;
    let c_base = member * m * n;
    let row0 = wg.y * TILE;
    let col0 = wg.x * TILE;
    let tid = lid.y * 16u + lid.x;
    var acc: array<array<f32, 4>, 4>;
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            acc[i][j] = 0.0;
        }
    }
    for (var k0 = 0u; k0 < k; k0 += TK) {
        // 1024 values of each tile, 4 per invocation; consecutive invocations read consecutive
        // memory (along i for A as stored, along k for A transposed; likewise for B).
        for (var t = 0u; t < 4u; t++) {
            let e = tid + t * 256u;
            var kk: u32;
            var ii: u32;
            if (ta) {
                kk = e % TK;
                ii = e / TK;
            } else {
                kk = e / TILE;
                ii = e % TILE;
            }
            let gi = row0 + ii;
            let gk = k0 + kk;
            var v = 0.0;
            if (gi < m && gk < k) {
                v = select(b1[a_base + gi + gk * m], b1[a_base + gk + gi * k], ta);
            }
            a_tile[kk * TILE + ii] = v;
            var jj: u32;
            if (tb) {
                kk = e / TILE;
                jj = e % TILE;
            } else {
                kk = e % TK;
                jj = e / TK;
            }
            let gj = col0 + jj;
            let gk2 = k0 + kk;
            var w = 0.0;
            if (gj < n && gk2 < k) {
                w = select(b2[b_base + gk2 + gj * k], b2[b_base + gj + gk2 * n], tb);
            }
            b_tile[kk * TILE + jj] = w;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            var av: array<f32, 4>;
            var bv: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                av[i] = a_tile[kk * TILE + lid.y * 4u + i];
                bv[i] = b_tile[kk * TILE + lid.x * 4u + i];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i][j] = fma(av[i], bv[j], acc[i][j]);
                }
            }
        }
        workgroupBarrier();
    }
    let alpha = pf(7u);
    let beta = pf(8u);
    for (var i = 0u; i < 4u; i++) {
        let gi = row0 + lid.y * 4u + i;
        if (gi >= m) { continue; }
        for (var j = 0u; j < 4u; j++) {
            let gj = col0 + lid.x * 4u + j;
            if (gj >= n) { continue; }
            let at = c_base + gi + gj * m;
            var out = alpha * acc[i][j];
            if (beta != 0.0) {
                out += beta * b3[at];
            }
            b3[at] = out;
        }
    }
}

// The same product for shapes too thin for tiles (the paper's: one side of 8 or 16, or few
// outputs per member): one invocation per element of C, straight down K. Consecutive
// invocations take consecutive rows of C, so C, A (as stored) and B read and write coalesced.
// p as for `gemm`, plus p[9] = stack.
@compute @workgroup_size(256)
fn gemm_simple(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let m = p[0];
    let n = p[1];
    let k = p[2];
    let i = flat(gid, nwg);
    let per = m * n;
    if (i >= per * p[9]) { return; }
    let member = i / per;
    let row = (i % per) % m;
    let col = (i % per) / m;
    let ta = p[3] == 1u;
    let tb = p[4] == 1u;
    let a_base = select(member, 0u, p[5] == 1u) * m * k;
    let b_base = select(member, 0u, p[6] == 1u) * k * n;
    var acc = 0.0;
    if (!ta && !tb) {
        for (var q = 0u; q < k; q++) {
            acc = fma(b1[a_base + row + q * m], b2[b_base + q + col * k], acc);
        }
    } else {
        for (var q = 0u; q < k; q++) {
            let a = select(b1[a_base + row + q * m], b1[a_base + q + row * k], ta);
            let b = select(b2[b_base + q + col * k], b2[b_base + col + q * n], tb);
            acc = fma(a, b, acc);
        }
    }
    let alpha = pf(7u);
    let beta = pf(8u);
    let at = member * per + row + col * m;
    var out = alpha * acc;
    if (beta != 0.0) {
        out += beta * b3[at];
    }
    b3[at] = out;
}
