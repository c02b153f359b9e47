// Per-sample solvers, many iterations per dispatch: once the dictionary is fixed every sample's
// problem is independent, so one invocation owns one (member, sample) and keeps its code and
// optimiser state in registers, with the member's dictionary in workgroup memory. NN (atoms)
// and MM (dimension) are substituted by the host (at most 64 each, NN * MM at most 4096). MM
// is the dimension rounded up to a multiple of 8, so that a grid of cells of many dimensions
// (a phase diagram's deltas) compiles a few kernels rather than one per dimension: the real
// dimension is p[6]. The dictionary's rows past it are zeros, so whatever the residual holds
// there adds nothing to a code's gradient (the signal's are copies of its last row, read in
// bounds). Workgroup y is the member.

const NN: u32 = {{NN}}u;
const MM: u32 = {{MM}}u;

var<workgroup> dict: array<f32, {{NN_MM}}>;

// With PRIVATE (the host's choice on software adapters, for small dictionaries), each invocation
// also copies the dictionary into its own private array once per dispatch, and the iterations
// read that copy. llvmpipe computes a SIMD group's lanes together and turns every load made
// inside a loop or branch into a loop over the lanes, even a workgroup load at the same address
// in every lane; reads of a private array whose indices its unrolled loops make constant are
// registers (or stack slots) instead. The paper's inference at 16 x 8: 9x faster on lavapipe.
// A hardware adapter broadcasts workgroup reads at a uniform address, so it keeps one copy.
const PRIVATE: bool = {{PRIVATE}};
var<private> dict_own: array<f32, {{OWN}}>;

fn load_dict(member: u32, lid: u32, dim: u32) {
    for (var t = lid; t < NN * MM; t += 64u) {
        let i = t % MM;
        let v = b1[member * NN * dim + t / MM * dim + min(i, dim - 1u)];
        dict[t] = select(0.0, v, i < dim);
    }
    workgroupBarrier();
}
// The sample's signal (dim values at `at`; past dim, its last value again: met only by the
// dictionary's zero rows).
fn load_signal(at: u32, dim: u32) -> array<f32, MM> {
    var x: array<f32, MM>;
    for (var i = 0u; i < MM; i++) {
        x[i] = b2[at + min(i, dim - 1u)];
    }
    return x;
}

// With PRIVATE, this invocation's copy (by the invocations that have a sample). The callers pass
// NN * MM behind a test of a parameter (n is never 0 here): a bound the compiler cannot fold
// keeps this loop rolled (unrolled, llvmpipe takes seconds to compile a lane loop per value).
fn own_dict(len: u32) {
    if (PRIVATE) {
        for (var t = 0u; t < len; t++) {
            dict_own[t] = dict[t];
        }
    }
}

// The dictionary's value t (column-major, MM x NN).
fn dict_at(t: u32) -> f32 {
    if (PRIVATE) {
        return dict_own[t];
    }
    return dict[t];
}

// The paper's inference: Adam on u with s = e^u through the dictionary b1 for the signals b2;
// state b3 u, b4 codes, b5 m, b6 v (stack x NN x n). Each step's Adam scalars are the host's
// (beta1, beta2, eps, step_size, bias2_sqrt), as the kernel-by-kernel path takes them: one set
// per step for every member (stride 1) or one per step and member (stride = members).
// p = [n, steps, x_broadcast, mse_scale, n_l1, stride, dim, l1..., scalars (5 per step x
// stride)...]
@compute @workgroup_size(64)
fn adam_exp(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>) {
    let member = wg.y;
    let dim = p[6];
    load_dict(member, lid.x, dim);
    let n = p[0];
    let sample = gid.x;
    if (sample >= n) { return; }
    own_dict(select(NN * MM, 0u, n == 0u));
    let steps = p[1];
    let mse = pf(3u);
    let l1 = member_value(7u, p[4], member);
    let stride = p[5];
    let scalars_at = 7u + p[4] + 5u * select(member, 0u, stride == 1u);
    let sb = member * NN * n + sample * NN;
    let x = load_signal(select(member, 0u, p[2] == 1u) * dim * n + sample * dim, dim);
    var u: array<f32, NN>;
    var s: array<f32, NN>;
    var m: array<f32, NN>;
    var v: array<f32, NN>;
    for (var k = 0u; k < NN; k++) {
        u[k] = b3[sb + k];
        s[k] = b4[sb + k];
        m[k] = b5[sb + k];
        v[k] = b6[sb + k];
    }
    var r: array<f32, MM>;
    for (var step = 0u; step < steps; step++) {
        let at = scalars_at + 5u * stride * step;
        let beta1 = pf(at);
        let beta2 = pf(at + 1u);
        let eps = pf(at + 2u);
        let step_size = pf(at + 3u);
        let bias2_sqrt = pf(at + 4u);
        // r = D s - x
        for (var i = 0u; i < MM; i++) { r[i] = -x[i]; }
        for (var k = 0u; k < NN; k++) {
            let sk = s[k];
            for (var i = 0u; i < MM; i++) {
                r[i] = fma(dict_at(k * MM + i), sk, r[i]);
            }
        }
        for (var k = 0u; k < NN; k++) {
            var g = 0.0;
            for (var i = 0u; i < MM; i++) {
                g = fma(dict_at(k * MM + i), r[i], g);
            }
            let code = s[k];
            let grad = (mse * g + sign_of(code) * l1) * code;
            let mk = beta1 * m[k] + (1.0 - beta1) * grad;
            let vk = beta2 * v[k] + (1.0 - beta2) * grad * grad;
            m[k] = mk;
            v[k] = vk;
            let uk = u[k] - step_size * mk / (sqrt(vk) / bias2_sqrt + eps);
            u[k] = uk;
            s[k] = exp(clamp(uk, -104.0, 88.7));
        }
    }
    for (var k = 0u; k < NN; k++) {
        b3[sb + k] = u[k];
        b4[sb + k] = s[k];
        b5[sb + k] = m[k];
        b6[sb + k] = v[k];
    }
}

// FISTA iterations through the dictionary b1 for the signals b2; state b3 s, b4 s_prev, b5 y.
// p = [n, iters, x_broadcast, nonneg, n_members_values, momentum stride, dim, steps (g)...,
// thresholds..., momenta (per iteration: one, or one per member)...]
@compute @workgroup_size(64)
fn fista(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>) {
    let member = wg.y;
    let dim = p[6];
    load_dict(member, lid.x, dim);
    let n = p[0];
    let sample = gid.x;
    if (sample >= n) { return; }
    let iters = p[1];
    let count = p[4];
    let g = member_value(7u, count, member);
    // A member that converged (the host keeps its codes) takes the step 0: left alone.
    if (g == 0.0) { return; }
    own_dict(select(NN * MM, 0u, n == 0u));
    let th = member_value(7u + count, count, member);
    // Momenta: iteration-major, p[5] per iteration (one for all members, or one each).
    let mom_at = 7u + 2u * count + select(member, 0u, p[5] == 1u);
    let sb = member * NN * n + sample * NN;
    let x = load_signal(select(member, 0u, p[2] == 1u) * dim * n + sample * dim, dim);
    var s: array<f32, NN>;
    var sp: array<f32, NN>;
    var y: array<f32, NN>;
    for (var k = 0u; k < NN; k++) {
        s[k] = b3[sb + k];
        sp[k] = b4[sb + k];
        y[k] = b5[sb + k];
    }
    var r: array<f32, MM>;
    for (var it = 0u; it < iters; it++) {
        let mom = pf(mom_at + it * p[5]);
        // r = g (D y - x)
        for (var i = 0u; i < MM; i++) { r[i] = 0.0; }
        for (var k = 0u; k < NN; k++) {
            let yk = y[k];
            for (var i = 0u; i < MM; i++) {
                r[i] = fma(dict_at(k * MM + i), yk, r[i]);
            }
        }
        for (var i = 0u; i < MM; i++) { r[i] = (r[i] - x[i]) * g; }
        for (var k = 0u; k < NN; k++) {
            var dr = 0.0;
            for (var i = 0u; i < MM; i++) {
                dr = fma(dict_at(k * MM + i), r[i], dr);
            }
            let v = y[k] - dr;
            var sk: f32;
            if (p[3] == 1u) {
                let t = v - th;
                sk = select(0.0, t, t > 0.0);
            } else {
                let t = abs(v) - th;
                sk = select(-1.0, 1.0, v >= 0.0) * select(0.0, t, t > 0.0);
            }
            sp[k] = s[k];
            s[k] = sk;
            y[k] = sk + mom * (sk - sp[k]);
        }
    }
    for (var k = 0u; k < NN; k++) {
        b3[sb + k] = s[k];
        b4[sb + k] = sp[k];
        b5[sb + k] = y[k];
    }
}
