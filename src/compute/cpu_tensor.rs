//! The CPU backend's tensors: host vectors, each kernel run member by member of the stack
//! through the slice kernels of `cpu.rs`. This is the reference every other backend is tested
//! against; its arithmetic is the engine's from before tensors existed, operation for operation.

use super::tensor::{
    per_member, Backend, BackendKind, JumpReluScalars, Op, Readback, Shape, Store, Tensor,
};
use super::{AdamScalars, Compute, CpuBackend, Operand};
use crate::core::lanes::{relu, sum_map};

/// Floor on vector norms in the cosine loss (PyTorch's `cosine_similarity` eps).
const COSINE_EPS: f64 = 1e-8;

/// Member `i`'s matrix of `t`, or its only matrix when `t` broadcasts (a stack of 1).
fn member(t: &Tensor, i: usize) -> &[f32] {
    let len = t.shape().matrix_len();
    let at = if t.stack() == 1 { 0 } else { i };
    &t.host()[at * len..(at + 1) * len]
}

fn member_mut(t: &mut Tensor, i: usize) -> &mut [f32] {
    let len = t.shape().matrix_len();
    &mut t.host_mut()[i * len..(i + 1) * len]
}

/// The bounds of a [`Backend::copy_block`], checked the same way by every backend.
pub(crate) fn check_block(
    what: &str,
    src: &Tensor,
    src_at: usize,
    dst: &Tensor,
    dst_at: usize,
    len: usize,
) {
    assert_eq!(src.stack(), dst.stack(), "{what}: stacks differ");
    assert!(
        src_at + len <= src.shape().matrix_len() && dst_at + len <= dst.shape().matrix_len(),
        "{what}: a block of {len} at {src_at} -> {dst_at} outside {:?} -> {:?}",
        src.shape(),
        dst.shape()
    );
}

/// `input` may broadcast to `out`'s stack: a stack of 1 or the same stack.
fn check_broadcast(what: &str, input: Shape, out: Shape) {
    assert!(
        input.stack == 1 || input.stack == out.stack,
        "{what}: a stack of {} cannot feed a stack of {}",
        input.stack,
        out.stack
    );
}

fn check_same(what: &str, a: Shape, b: Shape) {
    assert_eq!(a, b, "{what}: shapes differ");
}

/// Column numbers stored in a tensor by `upload_indices` (their bits, not their values).
fn indices(t: &Tensor, i: usize) -> impl Iterator<Item = usize> + '_ {
    member(t, i).iter().map(|v| v.to_bits() as usize)
}

/// The sign as a select (0 at 0, PyTorch's convention), so loops over it vectorise.
#[inline(always)]
fn sign(v: f32) -> f32 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// Every column of a column-major (rows x cols) slice rescaled to unit L2 norm, the norm summed
/// in f64; columns of norm 0 are left alone.
pub fn normalize_columns_slice(data: &mut [f32], rows: usize) {
    if rows == 0 {
        return;
    }
    for col in data.chunks_mut(rows) {
        let norm = col
            .iter()
            .map(|v| f64::from(*v) * f64::from(*v))
            .sum::<f64>()
            .sqrt();
        if norm > 0.0 {
            let inv = (1.0 / norm) as f32;
            col.iter_mut().for_each(|v| *v *= inv);
        }
    }
}

/// A loss as the pair (hi, lo) of f32 with hi + lo = the f64 value to about 48 bits, so a
/// loss tensor keeps f64 precision where the backend computes in f64 (see [`loss_value`]).
fn write_loss(out: &mut [f32], value: f64) {
    let hi = value as f32;
    out[0] = hi;
    out[1] = (value - f64::from(hi)) as f32;
}

/// The supervised loss on one member (see `Backend::cosine_loss`): returns the loss and writes
/// the gradient. Sums in f64.
fn cosine_member(pred: &[f32], target: &[f32], grad: &mut [f32], n_lat: usize) -> f64 {
    let mut dot = vec![0f64; n_lat];
    let mut pp = vec![0f64; n_lat];
    let mut tt = vec![0f64; n_lat];
    for (pc, tc) in pred.chunks(n_lat).zip(target.chunks(n_lat)) {
        for i in 0..n_lat {
            let (p, t) = (f64::from(pc[i]), f64::from(tc[i]));
            dot[i] += p * t;
            pp[i] += p * p;
            tt[i] += t * t;
        }
    }
    let mut loss = 0.0;
    // Per latent: cos = dot / (max(|p|, eps) max(|t|, eps)); the clamped norm is a constant.
    let mut coef_t = vec![0f64; n_lat];
    let mut coef_p = vec![0f64; n_lat];
    for i in 0..n_lat {
        let np = pp[i].sqrt().max(COSINE_EPS);
        let nt = tt[i].sqrt().max(COSINE_EPS);
        let cos = dot[i] / (np * nt);
        loss -= cos / n_lat as f64;
        coef_t[i] = -1.0 / (n_lat as f64 * np * nt);
        coef_p[i] = if pp[i].sqrt() > COSINE_EPS {
            cos / (n_lat as f64 * np * np)
        } else {
            0.0
        };
    }
    for ((gc, pc), tc) in grad
        .chunks_mut(n_lat)
        .zip(pred.chunks(n_lat))
        .zip(target.chunks(n_lat))
    {
        for i in 0..n_lat {
            gc[i] = (coef_t[i] * f64::from(tc[i]) + coef_p[i] * f64::from(pc[i])) as f32;
        }
    }
    loss
}

#[allow(clippy::too_many_arguments, reason = "mirrors the trait's kernels")]
impl Backend for CpuBackend {
    fn name(&self) -> String {
        Compute::name(self)
    }

    fn kind(&self) -> BackendKind {
        BackendKind::Cpu
    }

    fn upload(&self, shape: Shape, values: &[f32]) -> Tensor {
        assert_eq!(
            values.len(),
            shape.len(),
            "upload: values do not fill the shape"
        );
        Tensor::new(shape, Store::Host(values.to_vec()))
    }

    fn zeros(&self, shape: Shape) -> Tensor {
        Tensor::new(shape, Store::Host(vec![0.0; shape.len()]))
    }

    fn write(&self, t: &mut Tensor, values: &[f32]) {
        t.host_mut().copy_from_slice(values);
    }

    fn read(&self, t: &Tensor) -> Readback {
        Readback::ready(t.host().to_vec())
    }

    fn copy(&self, src: &Tensor, dst: &mut Tensor) {
        let (s, d) = (src.shape(), dst.shape());
        assert_eq!((s.rows, s.cols), (d.rows, d.cols), "copy: shapes differ");
        check_broadcast("copy", s, d);
        if s.stack == d.stack {
            dst.host_mut().copy_from_slice(src.host());
        } else {
            for i in 0..d.stack {
                member_mut(dst, i).copy_from_slice(member(src, 0));
            }
        }
    }

    fn copy_block(&self, src: &Tensor, src_at: usize, dst: &mut Tensor, dst_at: usize, len: usize) {
        check_block("copy_block", src, src_at, dst, dst_at, len);
        for i in 0..dst.stack() {
            let from = &member(src, i)[src_at..src_at + len];
            member_mut(dst, i)[dst_at..dst_at + len].copy_from_slice(from);
        }
    }

    fn fill(&self, t: &mut Tensor, value: f32) {
        t.host_mut().fill(value);
    }

    fn gemm(&self, alpha: f32, a: Op<'_>, b: Op<'_>, beta: f32, c: &mut Tensor) {
        let cs = c.shape();
        check_broadcast("gemm (a)", a.tensor.shape(), cs);
        check_broadcast("gemm (b)", b.tensor.shape(), cs);
        fn operand<'a>(op: Op<'a>, i: usize) -> Operand<'a> {
            let s = op.tensor.shape();
            let o = Operand::new(member(op.tensor, i), s.rows, s.cols);
            if op.transposed {
                o.t()
            } else {
                o
            }
        }
        for i in 0..cs.stack {
            let (oa, ob) = (operand(a, i), operand(b, i));
            Compute::gemm(
                self,
                alpha,
                oa,
                ob,
                beta,
                member_mut(c, i),
                cs.rows,
                cs.cols,
            );
        }
    }

    fn add_bias(&self, out: &mut Tensor, bias: &Tensor) {
        let (os, bs) = (out.shape(), bias.shape());
        assert_eq!(
            (bs.rows, bs.cols),
            (os.rows, 1),
            "add_bias: bias must be rows x 1"
        );
        check_broadcast("add_bias", bs, os);
        for i in 0..os.stack {
            let b = member(bias, i);
            for col in member_mut(out, i).chunks_mut(os.rows) {
                for (v, bi) in col.iter_mut().zip(b) {
                    *v += bi;
                }
            }
        }
    }

    fn sum_columns(&self, src: &Tensor, out: &mut Tensor) {
        let (ss, os) = (src.shape(), out.shape());
        assert_eq!(
            (os.stack, os.rows, os.cols),
            (ss.stack, ss.rows, 1),
            "sum_columns: out must be rows x 1"
        );
        for i in 0..ss.stack {
            let mut acc = vec![0f32; ss.rows];
            for col in member(src, i).chunks(ss.rows) {
                for (g, d) in acc.iter_mut().zip(col) {
                    *g += d;
                }
            }
            member_mut(out, i).copy_from_slice(&acc);
        }
    }

    fn relu(&self, t: &mut Tensor) {
        Compute::relu(self, t.host_mut());
    }

    fn relu_backward(&self, grad: &mut Tensor, out: &Tensor) {
        check_same("relu_backward", grad.shape(), out.shape());
        Compute::relu_backward(self, grad.host_mut(), out.host());
    }

    fn topk_columns(&self, t: &mut Tensor, k: &[usize]) {
        let s = t.shape();
        if let [k] = k {
            Compute::topk_columns(self, t.host_mut(), s.rows, s.cols * s.stack, *k);
            return;
        }
        let ks: Vec<usize> = per_member(k, s.stack).collect();
        for (i, k) in ks.into_iter().enumerate() {
            Compute::topk_columns(self, member_mut(t, i), s.rows, s.cols, k);
        }
    }

    fn batch_topk(&self, t: &mut Tensor, keep: usize, threshold: &mut Tensor, decay: f32) {
        let s = t.shape();
        assert_eq!(
            threshold.shape(),
            Shape::new(s.stack, 1, 1),
            "batch_topk: one threshold per member"
        );
        for i in 0..s.stack {
            let values = member_mut(t, i);
            let mut positive: Vec<f32> = values.iter().copied().filter(|v| *v > 0.0).collect();
            let cut = if keep == 0 {
                f32::INFINITY
            } else if positive.len() > keep {
                let (_, kth, _) = positive.select_nth_unstable_by(keep - 1, |a, b| b.total_cmp(a));
                *kth
            } else {
                0.0
            };
            let mut smallest = f32::INFINITY;
            for v in values.iter_mut() {
                if *v > 0.0 && *v >= cut {
                    smallest = smallest.min(*v);
                } else {
                    *v = 0.0;
                }
            }
            let seen = if smallest.is_finite() { smallest } else { 0.0 };
            let old = &mut member_mut(threshold, i)[0];
            *old = if *old < 0.0 {
                seen
            } else {
                decay * *old + (1.0 - decay) * seen
            };
        }
    }

    fn threshold_rows(&self, t: &mut Tensor, theta: &Tensor, scale: f32) {
        let (s, ts) = (t.shape(), theta.shape());
        assert!(
            ts.stack == s.stack && ts.cols == 1 && (ts.rows == s.rows || ts.rows == 1),
            "threshold_rows: theta {ts:?} against {s:?}"
        );
        for i in 0..s.stack {
            let th = member(theta, i);
            for col in member_mut(t, i).chunks_mut(s.rows) {
                for (r, v) in col.iter_mut().enumerate() {
                    let cut = (scale * th[if ts.rows == 1 { 0 } else { r }]).max(0.0);
                    // NaN fails the comparison and becomes 0 too.
                    *v = if *v > cut { *v } else { 0.0 };
                }
            }
        }
    }

    fn jump_relu_threshold_grad(
        &self,
        pre: &Tensor,
        grad: &Tensor,
        theta: &Tensor,
        js: JumpReluScalars,
        out: &mut Tensor,
    ) {
        super::tensor::check_jump_relu_shapes(pre, grad, theta, out);
        let s = pre.shape();
        let half = 0.5 * js.bandwidth;
        for i in 0..s.stack {
            let th: Vec<f32> = member(theta, i).iter().map(|u| js.scale * u).collect();
            let mut acc = vec![0f32; s.rows];
            for (z, g) in member(pre, i)
                .chunks(s.rows)
                .zip(member(grad, i).chunks(s.rows))
            {
                for r in 0..s.rows {
                    if (z[r] - th[r]).abs() < half {
                        acc[r] += -th[r] * g[r] - js.l0;
                    }
                }
            }
            for (o, a) in member_mut(out, i).iter_mut().zip(acc) {
                *o = js.scale * a / js.bandwidth;
            }
        }
    }

    fn exp(&self, x: &Tensor, out: &mut Tensor) {
        check_same("exp", x.shape(), out.shape());
        Compute::exp(self, x.host(), out.host_mut());
    }

    fn mul(&self, grad: &mut Tensor, s: &Tensor) {
        check_same("mul", grad.shape(), s.shape());
        for (g, &v) in grad.host_mut().iter_mut().zip(s.host()) {
            *g *= v;
        }
    }

    fn adam(
        &self,
        param: &mut Tensor,
        grad: &Tensor,
        m: &mut Tensor,
        v: &mut Tensor,
        s: &[AdamScalars],
    ) {
        let shape = param.shape();
        check_same("adam (grad)", grad.shape(), shape);
        check_same("adam (m)", m.shape(), shape);
        check_same("adam (v)", v.shape(), shape);
        for (i, sc) in per_member(s, shape.stack).enumerate() {
            let g = member(grad, i);
            // Split borrows of the three outputs.
            let len = shape.matrix_len();
            let p = &mut param.host_mut()[i * len..(i + 1) * len];
            let mm = &mut m.host_mut()[i * len..(i + 1) * len];
            let vv = &mut v.host_mut()[i * len..(i + 1) * len];
            self.adam_update(p, g, mm, vv, sc);
        }
    }

    fn adam_log_codes(
        &self,
        log_codes: &mut Tensor,
        codes: &mut Tensor,
        grad_s: &Tensor,
        m: &mut Tensor,
        v: &mut Tensor,
        l1_scale: &[f32],
        s: &[AdamScalars],
    ) {
        let shape = log_codes.shape();
        for t in [codes.shape(), grad_s.shape(), m.shape(), v.shape()] {
            check_same("adam_log_codes", t, shape);
        }
        let len = shape.matrix_len();
        let scales: Vec<f32> = per_member(l1_scale, shape.stack).collect();
        for (i, sc) in per_member(s, shape.stack).enumerate() {
            let r = i * len..(i + 1) * len;
            Compute::adam_log_codes(
                self,
                &mut log_codes.host_mut()[r.clone()],
                &mut codes.host_mut()[r.clone()],
                &grad_s.host()[r.clone()],
                &mut m.host_mut()[r.clone()],
                &mut v.host_mut()[r],
                scales[i],
                sc,
            );
        }
    }

    fn normalize_columns(&self, t: &mut Tensor) {
        let rows = t.rows();
        normalize_columns_slice(t.host_mut(), rows);
    }

    fn residual(&self, recon: &mut Tensor, x: &Tensor, scale: &[f32]) {
        let (rs, xs) = (recon.shape(), x.shape());
        assert_eq!(
            (rs.rows, rs.cols),
            (xs.rows, xs.cols),
            "residual: shapes differ"
        );
        check_broadcast("residual", xs, rs);
        for (i, sc) in per_member(scale, rs.stack).enumerate() {
            for (r, &xv) in member_mut(recon, i).iter_mut().zip(member(x, i)) {
                *r = (*r - xv) * sc;
            }
        }
    }

    fn l1_subgradient(&self, grad: &mut Tensor, codes: &Tensor, scale: &[f32]) {
        let shape = grad.shape();
        check_same("l1_subgradient", codes.shape(), shape);
        let len = shape.matrix_len();
        for (i, sc) in per_member(scale, shape.stack).enumerate() {
            let c = &codes.host()[i * len..(i + 1) * len];
            for (g, &s) in grad.host_mut()[i * len..(i + 1) * len].iter_mut().zip(c) {
                *g += sign(s) * sc;
            }
        }
    }

    fn reconstruction_loss(
        &self,
        scaled_residual: &Tensor,
        codes: &Tensor,
        mse_scale: &[f32],
        l1_penalty: &[f32],
        out: &mut Tensor,
    ) {
        let (rs, cs) = (scaled_residual.shape(), codes.shape());
        assert_eq!(rs.stack, cs.stack, "reconstruction_loss: stacks differ");
        assert_eq!(rs.cols, cs.cols, "reconstruction_loss: batches differ");
        let l1s: Vec<f32> = per_member(l1_penalty, rs.stack).collect();
        let batch = rs.cols as f64;
        for (i, sc) in per_member(mse_scale, rs.stack).enumerate() {
            let sq = sum_map(member(scaled_residual, i), |g| g * g) / f64::from(sc).powi(2);
            let l1 = sum_map(member(codes, i), f32::abs);
            let loss =
                sq / (batch * rs.rows as f64) + f64::from(l1s[i]) * l1 / (batch * cs.rows as f64);
            write_loss(member_mut(out, i), loss);
        }
    }

    fn cosine_loss(&self, pred: &Tensor, target: &Tensor, grad: &mut Tensor, loss: &mut Tensor) {
        let ps = pred.shape();
        check_same("cosine_loss (grad)", grad.shape(), ps);
        check_broadcast("cosine_loss (target)", target.shape(), ps);
        for i in 0..ps.stack {
            let l = cosine_member(
                member(pred, i),
                member(target, i),
                member_mut(grad, i),
                ps.rows,
            );
            write_loss(member_mut(loss, i), l);
        }
    }

    fn gather_columns(&self, src: &Tensor, idx: &Tensor, dst: &mut Tensor) {
        let (ss, ds) = (src.shape(), dst.shape());
        assert_eq!(ss.rows, ds.rows, "gather_columns: rows differ");
        assert_eq!(idx.rows(), ds.cols, "gather_columns: one index per column");
        check_broadcast("gather_columns", ss, ds);
        let rows = ss.rows;
        for i in 0..ds.stack {
            let s = member(src, i);
            let d = member_mut(dst, i);
            for (j, c) in indices(idx, i).enumerate() {
                assert!(
                    c < ss.cols,
                    "gather_columns: index {c} past {} columns",
                    ss.cols
                );
                d[j * rows..(j + 1) * rows].copy_from_slice(&s[c * rows..(c + 1) * rows]);
            }
        }
    }

    fn adam_columns(
        &self,
        param: &mut Tensor,
        grad: &Tensor,
        m: &mut Tensor,
        v: &mut Tensor,
        idx: &Tensor,
        s: &[AdamScalars],
    ) {
        let (ps, gs) = (param.shape(), grad.shape());
        assert_eq!(
            (ps.stack, ps.rows),
            (gs.stack, gs.rows),
            "adam_columns: shapes differ"
        );
        assert_eq!(
            idx.rows(),
            gs.cols,
            "adam_columns: one index per gradient column"
        );
        let rows = ps.rows;
        let len = ps.matrix_len();
        for (i, sc) in per_member(s, ps.stack).enumerate() {
            for (j, c) in indices(idx, i).enumerate() {
                assert!(
                    c < ps.cols,
                    "adam_columns: index {c} past {} columns",
                    ps.cols
                );
                let r = i * len + c * rows..i * len + (c + 1) * rows;
                let g = &member(grad, i)[j * rows..(j + 1) * rows];
                self.adam_update(
                    &mut param.host_mut()[r.clone()],
                    g,
                    &mut m.host_mut()[r.clone()],
                    &mut v.host_mut()[r],
                    sc,
                );
            }
        }
    }

    fn upload_indices(&self, stack: usize, indices: &[u32]) -> Tensor {
        assert!(
            stack > 0 && indices.len() % stack == 0,
            "upload_indices: ragged indices"
        );
        let shape = Shape::new(stack, indices.len() / stack, 1);
        Tensor::new(
            shape,
            Store::Host(indices.iter().map(|&i| f32::from_bits(i)).collect()),
        )
    }

    fn fista_update(
        &self,
        s: &mut Tensor,
        s_prev: &Tensor,
        y: &mut Tensor,
        threshold: &[f32],
        momentum: &[f32],
        nonneg: bool,
    ) {
        let shape = s.shape();
        check_same("fista_update (s_prev)", s_prev.shape(), shape);
        check_same("fista_update (y)", y.shape(), shape);
        let len = shape.matrix_len();
        let each = per_member(threshold, shape.stack).zip(per_member(momentum, shape.stack));
        for (i, (th, momentum)) in each.enumerate() {
            let r = i * len..(i + 1) * len;
            for v in &mut s.host_mut()[r.clone()] {
                *v = if nonneg {
                    relu(*v - th)
                } else {
                    v.signum() * relu(v.abs() - th)
                };
            }
            let (sv, pv) = (&s.host()[r.clone()], &s_prev.host()[r.clone()]);
            let ynew: Vec<f32> = sv
                .iter()
                .zip(pv)
                .map(|(&si, &pi)| si + momentum * (si - pi))
                .collect();
            y.host_mut()[r].copy_from_slice(&ynew);
        }
    }
}
