// Kernels over the columns and rows of every matrix of a stack.

var<workgroup> col_sums: array<f32, 256>;

// b2 (stack x rows x 1) <- the sum of b1's columns. A workgroup takes 32 rows of one member:
// eight lanes of 32 consecutive rows each (reads coalesce along the rows) sum every eighth
// column, then the eight partial sums of a row add up in workgroup memory. Each invocation
// walks cols / 8 columns (one walking all of them left a real GPU a thread per row, and ran
// past llvmpipe's loop guard beyond 65,535 columns).
// p = [stack * row_blocks, rows, cols, row_blocks]
@compute @workgroup_size(256)
fn sum_columns(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let g = wid.x + wid.y * nwg.x;
    if (g >= p[0]) { return; }
    let rows = p[1];
    let cols = p[2];
    let member = g / p[3];
    let row = (g % p[3]) * 32u + lid.x % 32u;
    let lane = lid.x / 32u;
    var acc = 0.0;
    if (row < rows) {
        let base = member * rows * cols + row;
        for (var c = lane; c < cols; c += 8u) {
            acc += b1[base + c * rows];
        }
    }
    col_sums[lid.x] = acc;
    workgroupBarrier();
    if (lane == 0u && row < rows) {
        var total = 0.0;
        for (var l = 0u; l < 8u; l++) {
            total += col_sums[l * 32u + lid.x];
        }
        b2[member * rows + row] = total;
    }
}

// Every column of b1 to unit L2 norm (norm 0 left alone); one invocation per column, for
// short columns (the paper's 8 to 64 rows).
// p = [stack * cols, rows]
@compute @workgroup_size(256)
fn normalize_columns(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= p[0]) { return; }
    let rows = p[1];
    let base = i * rows;
    var ss = 0.0;
    for (var r = 0u; r < rows; r++) {
        let v = b1[base + r];
        ss += v * v;
    }
    let norm = sqrt(ss);
    if (norm > 0.0) {
        let inv = 1.0 / norm;
        for (var r = 0u; r < rows; r++) {
            b1[base + r] = b1[base + r] * inv;
        }
    }
}

var<workgroup> norm_sums: array<f32, 64>;

// The same for long columns (real activations' 576 rows and more): 64 invocations per column,
// each taking every 64th row (reads coalesce), their squares reduced in workgroup memory.
// p = [stack * cols, rows]
@compute @workgroup_size(64)
fn normalize_long_columns(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let col = wid.x + wid.y * nwg.x;
    if (col >= p[0]) { return; }
    let rows = p[1];
    let base = col * rows;
    let t = lid.x;
    var ss = 0.0;
    for (var r = t; r < rows; r += 64u) {
        let v = b1[base + r];
        ss += v * v;
    }
    norm_sums[t] = ss;
    workgroupBarrier();
    for (var half = 32u; half > 0u; half = half / 2u) {
        if (t < half) {
            norm_sums[t] += norm_sums[t + half];
        }
        workgroupBarrier();
    }
    let norm = sqrt(norm_sums[0]);
    if (norm > 0.0) {
        let inv = 1.0 / norm;
        for (var r = t; r < rows; r += 64u) {
            b1[base + r] = b1[base + r] * inv;
        }
    }
}

// The k of the column `col` of a top-k selection: p[3] values from p[4], one for every member or
// one per member of p[2] columns.
fn topk_k(col: u32) -> u32 {
    return p[4u + select(col / p[2], 0u, p[3] == 1u)];
}

// Whether (v, i) comes before (w, j) in the top-k order: larger first, ties to the lower row,
// NaN never (so NaN is never kept).
fn before(v: f32, i: u32, w: f32, j: u32) -> bool {
    return v > w || (v == w && i < j);
}

// Keep the k largest entries of every column of b1, zero the rest; one invocation per column.
// k passes find the k-th entry in the order above, then one pass keeps what is not after it.
// For short columns (k (rows + 1) small; gpu/mod.rs chooses): one invocation walks its column
// k + 1 times, which past about 65,000 iterations would also run into llvmpipe's loop guard.
// p = [stack * cols, rows, cols, count, k (one, or one per member)...]
@compute @workgroup_size(256)
fn topk_columns_short(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let col = flat(gid, nwg);
    if (col >= p[0]) { return; }
    let rows = p[1];
    let k = topk_k(col);
    if (k >= rows) { return; }
    let base = col * rows;
    // The last entry taken (none yet while `first`).
    var last_v = 0.0;
    var last_i = 0u;
    var first = true;
    var found = 0u;
    for (var pass_ = 0u; pass_ < k; pass_++) {
        var best_v = 0.0;
        var best_i = rows;
        for (var r = 0u; r < rows; r++) {
            let v = b1[base + r];
            if (is_nan(v)) { continue; }
            let below_last = first || before(last_v, last_i, v, r);
            if (below_last && (best_i == rows || before(v, r, best_v, best_i))) {
                best_v = v;
                best_i = r;
            }
        }
        if (best_i == rows) { break; }
        last_v = best_v;
        last_i = best_i;
        first = false;
        found++;
    }
    for (var r = 0u; r < rows; r++) {
        let v = b1[base + r];
        let keep = found > 0u && !is_nan(v) && !before(last_v, last_i, v, r);
        b1[base + r] = select(0.0, v, keep);
    }
}

// b3[:, j] <- b1[:, b2[j]] per member (column numbers as bits); one invocation per value of b3.
// p = [stack * rows * dst_cols, rows, dst_cols, src_cols, src_is_broadcast]
@compute @workgroup_size(256)
fn gather_columns(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= p[0]) { return; }
    let rows = p[1];
    let dst_cols = p[2];
    let per = rows * dst_cols;
    let member = i / per;
    let j = (i % per) / rows;
    let c = bitcast<u32>(b2[member * dst_cols + j]);
    let src = select(member, 0u, p[4] == 1u);
    b3[i] = b1[(src * p[3] + c) * rows + i % rows];
}

// Adam on the columns b5[j] of b1 (param) with moments b3, b4 from the columns of b2 (grad).
// p = [stack * rows * batch, rows, batch, param_cols, n_scalars, scalars (5 each)...]
@compute @workgroup_size(256)
fn adam_columns(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= p[0]) { return; }
    let rows = p[1];
    let batch = p[2];
    let per = rows * batch;
    let member = i / per;
    let j = (i % per) / rows;
    let c = bitcast<u32>(b5[member * batch + j]);
    let at = (member * p[3] + c) * rows + i % rows;
    let s = 5u + 5u * select(member, 0u, p[4] == 1u);
    let beta1 = pf(s);
    let beta2 = pf(s + 1u);
    let g = b2[i];
    let m = beta1 * b3[at] + (1.0 - beta1) * g;
    let v = beta2 * b4[at] + (1.0 - beta2) * g * g;
    b3[at] = m;
    b4[at] = v;
    let denom = sqrt(v) / pf(s + 4u) + pf(s + 2u);
    b1[at] = b1[at] - pf(s + 3u) * m / denom;
}

// JumpReLU's straight-through threshold gradient (see `Backend::jump_relu_threshold_grad`):
// b1 pre-activations, b2 the gradient at the gate's output, b3 the thresholds over theta_scale
// (stack x rows x 1), b4 the output (same shape); one invocation per (member, row).
// p = [stack * rows, rows, cols, bandwidth, l0_scale, theta_scale]
@compute @workgroup_size(256)
fn jump_relu_threshold_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= p[0]) { return; }
    let rows = p[1];
    let cols = p[2];
    let bandwidth = pf(3u);
    let l0 = pf(4u);
    let scale = pf(5u);
    let theta = scale * b3[i];
    let base = (i / rows) * rows * cols + i % rows;
    var acc = 0.0;
    for (var c = 0u; c < cols; c++) {
        let at = base + c * rows;
        if (abs(b1[at] - theta) < 0.5 * bandwidth) {
            acc += -theta * b2[at] - l0;
        }
    }
    b4[i] = scale * acc / bandwidth;
}

// Working state of `batch_topk` (one workgroup per member).
var<workgroup> topk_hist: array<atomic<u32>, 256>;
var<workgroup> topk_prefix: u32;
var<workgroup> topk_remaining: u32;

// One invocation's step of a radix select, after a pass has filled the histogram of the byte at
// `shift` of the keys that match the prefix: the bin that holds the remaining-th largest of
// them extends the prefix, and the keys in the bins above it are no longer to be found. False
// (nothing changed) when fewer keys than that match.
fn radix_choose(shift: u32) -> bool {
    var above = 0u;
    for (var bin = 255i; bin >= 0i; bin--) {
        let count = atomicLoad(&topk_hist[u32(bin)]);
        if (above + count >= topk_remaining) {
            topk_prefix = topk_prefix | (u32(bin) << shift);
            topk_remaining = topk_remaining - above;
            return true;
        }
        above += count;
    }
    return false;
}
var<workgroup> topk_all: u32;
var<workgroup> topk_smallest: atomic<u32>;

// BatchTopK's histogram of the bytes at `shift` of the positive values in b1[base + e] for e
// from `first` to `end` in steps of the workgroup, among those whose bits under `mask` are
// `prefix` (the bytes chosen before).
fn topk_count(base: u32, first: u32, end: u32, mask: u32, prefix: u32, shift: u32) {
    for (var e = first; e < end; e += WG) {
        let v = b1[base + e];
        let bits = bitcast<u32>(v);
        if (v > 0.0 && !is_nan(v) && (bits & mask) == prefix) {
            atomicAdd(&topk_hist[(bits >> shift) & 255u], 1u);
        }
    }
}

// BatchTopK's cut over the same range: zero what lies below `cut` (all but the positive values
// when `keep_all`; everything when nothing is kept), and the smallest kept value's bits into
// topk_smallest.
fn topk_cut(base: u32, first: u32, end: u32, cut: u32, keep_all: bool) {
    for (var e = first; e < end; e += WG) {
        let v = b1[base + e];
        let bits = bitcast<u32>(v);
        let keep = p[1] > 0u && v > 0.0 && !is_nan(v) && (keep_all || bits >= cut);
        if (keep) {
            atomicMin(&topk_smallest, bits);
        } else {
            b1[base + e] = 0.0;
        }
    }
}

// BatchTopK (see `Backend::batch_topk`): b1 the member's matrices, b2 the thresholds
// (stack x 1 x 1). A radix select on the bits of the positive values (which order like the
// values) finds the keep-th largest in four passes of a 256-bin histogram, byte by byte from the
// top; a last pass zeroes what lies below it and finds the smallest kept value.
// p = [member_len, keep, decay]
@compute @workgroup_size(256)
fn batch_topk(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let len = p[0];
    let base = wid.x * len;
    let t = lid.x;
    if (t == 0u) {
        topk_prefix = 0u;
        topk_remaining = p[1];
        topk_all = select(0u, 1u, p[1] == 0u);
        atomicStore(&topk_smallest, 0xffffffffu);
    }
    var mask = 0u;
    for (var pass_ = 0u; pass_ < 4u; pass_++) {
        let shift = 24u - 8u * pass_;
        atomicStore(&topk_hist[t], 0u);
        workgroupBarrier();
        topk_count(base, t, len, mask, topk_prefix, shift);
        workgroupBarrier();
        if (t == 0u && topk_all == 0u && !radix_choose(shift)) {
            // Fewer positive values than `keep`: keep them all.
            topk_all = 1u;
            topk_prefix = 0u;
        }
        mask = mask | (255u << shift);
        workgroupBarrier();
    }
    topk_cut(base, t, len, topk_prefix, topk_all == 1u);
    workgroupBarrier();
    if (t == 0u) {
        let bits = atomicLoad(&topk_smallest);
        let seen = select(bitcast<f32>(bits), 0.0, bits == 0xffffffffu);
        let old = b2[wid.x];
        b2[wid.x] = select(pf(2u) * old + (1.0 - pf(2u)) * seen, seen, old < 0.0);
    }
}

// BatchTopK over members too long for one workgroup (`Backend::batch_topk` past
// WIDE_SELECT values per member): the same radix select, each pass split into a histogram
// dispatch (a workgroup per chunk of WIDE_CHUNK values per member, grid chunk x member) and a
// choice dispatch (a workgroup per member sums its chunks' histograms and picks the byte), then
// an apply dispatch and a threshold dispatch. A member's selection state lies in b3 from word
// 0, as bits, 4 words per member: [prefix, remaining, keep all, -]; the chunks' histograms
// (counts as floats, exact below 2^24) or smallest kept values (-1: none) from word p[4].
// p = [member_len, keep, decay, chunks, histograms at, pass, members]
const WIDE_CHUNK: u32 = 262144u;

fn wide_pass_mask(pass_: u32) -> u32 {
    // The bytes chosen in the passes before: none in the first.
    return select(~((1u << (32u - 8u * pass_)) - 1u), 0u, pass_ == 0u);
}

@compute @workgroup_size(256)
fn wide_topk_histogram(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let len = p[0];
    let chunks = p[3];
    let pass_ = p[5];
    let chunk = wid.x;
    let member = wid.y;
    let shift = 24u - 8u * pass_;
    let mask = wide_pass_mask(pass_);
    let prefix = select(bitcast<u32>(b3[4u * member]), 0u, pass_ == 0u);
    let done = pass_ > 0u && bitcast<u32>(b3[4u * member + 2u]) == 1u;
    atomicStore(&topk_hist[lid.x], 0u);
    workgroupBarrier();
    let end = select(min(chunk * WIDE_CHUNK + WIDE_CHUNK, len), 0u, done);
    topk_count(member * len, chunk * WIDE_CHUNK + lid.x, end, mask, prefix, shift);
    workgroupBarrier();
    b3[p[4] + (member * chunks + chunk) * 256u + lid.x] = f32(atomicLoad(&topk_hist[lid.x]));
}

@compute @workgroup_size(256)
fn wide_topk_choose(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let chunks = p[3];
    let pass_ = p[5];
    let member = wid.x;
    let st = 4u * member;
    var count = 0u;
    for (var c = 0u; c < chunks; c++) {
        count += u32(b3[p[4] + (member * chunks + c) * 256u + lid.x]);
    }
    atomicStore(&topk_hist[lid.x], count);
    workgroupBarrier();
    if (lid.x == 0u) {
        if (pass_ == 0u) {
            topk_prefix = 0u;
            topk_remaining = p[1];
            topk_all = select(0u, 1u, p[1] == 0u);
        } else {
            topk_prefix = bitcast<u32>(b3[st]);
            topk_remaining = bitcast<u32>(b3[st + 1u]);
            topk_all = bitcast<u32>(b3[st + 2u]);
        }
        if (topk_all == 0u && !radix_choose(24u - 8u * pass_)) {
            // Fewer positive values than `keep`: keep them all.
            topk_all = 1u;
            topk_prefix = 0u;
        }
        b3[st] = bitcast<f32>(topk_prefix);
        b3[st + 1u] = bitcast<f32>(topk_remaining);
        b3[st + 2u] = bitcast<f32>(topk_all);
    }
}

@compute @workgroup_size(256)
fn wide_topk_apply(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let len = p[0];
    let chunks = p[3];
    let chunk = wid.x;
    let member = wid.y;
    let cut = bitcast<u32>(b3[4u * member]);
    let keep_all = bitcast<u32>(b3[4u * member + 2u]) == 1u;
    if (lid.x == 0u) {
        atomicStore(&topk_smallest, 0xffffffffu);
    }
    workgroupBarrier();
    let end = min(chunk * WIDE_CHUNK + WIDE_CHUNK, len);
    topk_cut(member * len, chunk * WIDE_CHUNK + lid.x, end, cut, keep_all);
    workgroupBarrier();
    if (lid.x == 0u) {
        let bits = atomicLoad(&topk_smallest);
        b3[p[4] + member * chunks + chunk] = select(bitcast<f32>(bits), -1.0, bits == 0xffffffffu);
    }
}

// The running threshold of each member (b2) from its chunks' smallest kept values.
@compute @workgroup_size(256)
fn wide_topk_threshold(@builtin(global_invocation_id) gid: vec3<u32>) {
    let member = gid.x;
    let chunks = p[3];
    if (member >= p[6]) {
        return;
    }
    var seen = -1.0;
    for (var c = 0u; c < chunks; c++) {
        let v = b3[p[4] + member * chunks + c];
        if (v >= 0.0 && (seen < 0.0 || v < seen)) {
            seen = v;
        }
    }
    seen = max(seen, 0.0);
    let old = b2[member];
    b2[member] = select(pf(2u) * old + (1.0 - pf(2u)) * seen, seen, old < 0.0);
}

var<workgroup> topk_ties: array<u32, 256>;

// A key that orders like the values (larger value, larger key), with -0 as +0; NaN is kept out
// by the callers.
fn order_key(v: f32) -> u32 {
    let bits = bitcast<u32>(select(v, 0.0, v == 0.0));
    return select(bits | 0x80000000u, ~bits, (bits & 0x80000000u) != 0u);
}

// The same selection as topk_columns_short, one workgroup per column (columns of real
// activations' widths: thousands of rows). A radix select on the order keys of the column's
// non-NaN values finds the key of the k-th largest in four passes of a 256-bin histogram, byte
// by byte from the top; then every invocation takes a run of consecutive rows, counts the
// entries equal to that key in its run, and an exclusive scan of the counts gives each run how
// many equal entries earlier rows hold, so ties keep the lowest rows as on the CPU. Columns
// with at most k non-NaN values keep them all.
// p = [stack * cols, rows, cols, count, k (one, or one per member)...]
@compute @workgroup_size(256)
fn topk_columns(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let col = wid.x + wid.y * nwg.x;
    if (col >= p[0]) { return; }
    let rows = p[1];
    // The same for every invocation of the workgroup (one column).
    let k = topk_k(col);
    if (k >= rows) { return; }
    let base = col * rows;
    let t = lid.x;
    if (t == 0u) {
        topk_prefix = 0u;
        topk_remaining = k;
        topk_all = 0u;
    }
    var mask = 0u;
    for (var pass_ = 0u; pass_ < 4u; pass_++) {
        let shift = 24u - 8u * pass_;
        atomicStore(&topk_hist[t], 0u);
        workgroupBarrier();
        let prefix = topk_prefix;
        for (var e = t; e < rows; e += WG) {
            let v = b1[base + e];
            let key = order_key(v);
            if (!is_nan(v) && (key & mask) == prefix) {
                atomicAdd(&topk_hist[(key >> shift) & 255u], 1u);
            }
        }
        workgroupBarrier();
        if (t == 0u && topk_all == 0u && !radix_choose(shift)) {
            // Only in the first pass, which counts every value: fewer than k of them.
            topk_all = 1u;
        }
        mask = mask | (255u << shift);
        workgroupBarrier();
    }
    let cut = topk_prefix;
    let need = topk_remaining;
    let keep_all = topk_all == 1u;
    let run = (rows + WG - 1u) / WG;
    let lo = min(t * run, rows);
    let hi = min(lo + run, rows);
    var ties = 0u;
    for (var r = lo; r < hi; r++) {
        let v = b1[base + r];
        if (!is_nan(v) && order_key(v) == cut) { ties++; }
    }
    topk_ties[t] = ties;
    workgroupBarrier();
    if (t == 0u) {
        var total = 0u;
        for (var i = 0u; i < WG; i++) {
            let count = topk_ties[i];
            topk_ties[i] = total;
            total += count;
        }
    }
    workgroupBarrier();
    var earlier = topk_ties[t];
    for (var r = lo; r < hi; r++) {
        let v = b1[base + r];
        let key = order_key(v);
        var keep = !is_nan(v) && (keep_all || key > cut);
        if (!is_nan(v) && !keep_all && key == cut) {
            keep = earlier < need;
            earlier++;
        }
        if (!keep) { b1[base + r] = 0.0; }
    }
}
