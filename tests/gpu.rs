//! The GPU backend against the CPU reference, natively (Mesa's lavapipe in CI): every kernel on
//! seeded inputs with stated tolerances, the fused solvers against the step-by-step ones,
//! short whole runs of every method, and stacks against runs one by one.
//!
//! Without an adapter these tests skip with a message, except where
//! `SPARSE_PLAYGROUND_REQUIRE_GPU=1` (set by `.ci/run`): there a missing adapter fails them, so
//! they can never pass by skipping.
#![cfg(not(target_arch = "wasm32"))]

use sparse_playground::compute::gpu::GpuBackend;
use sparse_playground::compute::{
    read_now, AdamScalars, Backend, CpuBackend, Epilogue, JumpReluScalars, Op, Shape, Tensor,
};
use sparse_playground::core::config::{CheckedConfig, MethodConfig, Preset, Setting, SolverConfig};
use sparse_playground::core::results::Results;
use sparse_playground::core::rng::Rng;
use sparse_playground::core::run::Grouping;
use sparse_playground::core::solvers;
use sparse_playground::Experiment;
use std::sync::{Arc, OnceLock};

/// One device for the whole test binary (making one costs far more than any test).
fn gpu() -> Option<Arc<GpuBackend>> {
    static GPU: OnceLock<Option<Arc<GpuBackend>>> = OnceLock::new();
    GPU.get_or_init(|| match GpuBackend::request_blocking() {
        Ok(g) => {
            eprintln!("GPU tests on {:?}", g.adapter());
            Some(Arc::new(g))
        }
        Err(e) => {
            let required = std::env::var("SPARSE_PLAYGROUND_REQUIRE_GPU").is_ok_and(|v| v == "1");
            assert!(!required, "SPARSE_PLAYGROUND_REQUIRE_GPU=1 but no GPU: {e}");
            eprintln!("skipping GPU tests: {e}");
            None
        }
    })
    .clone()
}

fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..len).map(|_| rng.normal() as f32).collect()
}

/// The same values as a CPU and a GPU tensor.
fn pair(g: &GpuBackend, shape: Shape, values: &[f32]) -> (Tensor, Tensor) {
    (
        CpuBackend::new(1).upload(shape, values),
        g.upload(shape, values),
    )
}

fn host(b: &dyn Backend, t: &Tensor) -> Vec<f32> {
    read_now(b, t).expect("read back")
}

/// |a - b| <= tol * (1 + |b|) everywhere (NaN only against NaN).
fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        let ok = (a.is_nan() && b.is_nan()) || (a - b).abs() <= tol * (1.0 + b.abs());
        assert!(ok, "{what}[{i}]: GPU {a} vs CPU {b} (tolerance {tol})");
    }
}

/// Relative L2 distance |a - b| / |b|: the tolerance for iterations whose rounding differences
/// drift apart slowly (FISTA's momentum does not contract them).
fn assert_rel_l2(what: &str, got: &[f32], want: &[f32], tol: f64) {
    let num: f64 = got
        .iter()
        .zip(want)
        .map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2))
        .sum::<f64>()
        .sqrt();
    let den: f64 = want
        .iter()
        .map(|b| f64::from(*b).powi(2))
        .sum::<f64>()
        .sqrt();
    assert!(
        num <= tol * den,
        "{what}: relative L2 distance {} over {tol}",
        num / den
    );
}

fn scalars(t: u32, lr: f64) -> AdamScalars {
    let mut clock = sparse_playground::core::adam::AdamClock::new(
        sparse_playground::core::adam::AdamHyper::with_lr(lr),
    );
    let mut s = clock.tick();
    for _ in 1..t {
        s = clock.tick();
    }
    s
}

#[test]
fn elementwise_kernels_match_the_cpu() {
    let Some(g) = gpu() else { return };
    let cpu = CpuBackend::new(1);
    let g: &GpuBackend = &g;
    let shape = Shape::new(3, 7, 33);
    let x = random(shape.len(), 1);
    let y = random(shape.len(), 2);
    // relu, with NaN and signed zeros in the input
    let mut xs = x.clone();
    xs[5] = f32::NAN;
    xs[6] = -0.0;
    let (mut c, mut d) = pair(g, shape, &xs);
    cpu.relu(&mut c);
    g.relu(&mut d);
    assert_close("relu", &host(g, &d), &host(&cpu, &c), 0.0);
    // relu_backward
    let (mut cg, mut dg) = pair(g, shape, &y);
    cpu.relu_backward(&mut cg, &c);
    g.relu_backward(&mut dg, &d);
    assert_close("relu_backward", &host(g, &dg), &host(&cpu, &cg), 0.0);
    // exp (WGSL's exp within a few ulp of ours)
    let (cx, dx) = pair(g, shape, &x.iter().map(|v| v * 4.0).collect::<Vec<_>>());
    let (mut ce, mut de) = pair(g, shape, &y);
    cpu.exp(&cx, &mut ce);
    g.exp(&dx, &mut de);
    assert_close("exp", &host(g, &de), &host(&cpu, &ce), 2e-6);
    // mul, residual (broadcast x, per-member scales), l1_subgradient, fill, copy
    let (mut cm, mut dm) = pair(g, shape, &x);
    let (cy, dy) = pair(g, shape, &y);
    cpu.mul(&mut cm, &cy);
    g.mul(&mut dm, &dy);
    assert_close("mul", &host(g, &dm), &host(&cpu, &cm), 0.0);
    let one = shape.with_stack(1);
    let (cb, db) = pair(g, one, &y[..one.len()]);
    let scales = [0.5f32, -2.0, 3.0];
    cpu.residual(&mut cm, &cb, &scales);
    g.residual(&mut dm, &db, &scales);
    assert_close("residual", &host(g, &dm), &host(&cpu, &cm), 1e-6);
    let mut codes = y.clone();
    codes[3] = 0.0;
    let (cc, dc) = pair(g, shape, &codes);
    cpu.l1_subgradient(&mut cm, &cc, &[0.25]);
    g.l1_subgradient(&mut dm, &dc, &[0.25]);
    assert_close("l1_subgradient", &host(g, &dm), &host(&cpu, &cm), 1e-6);
    let (mut cf, mut df) = pair(g, shape, &x);
    cpu.fill(&mut cf, 1.5);
    g.fill(&mut df, 1.5);
    assert_close("fill", &host(g, &df), &host(&cpu, &cf), 0.0);
    cpu.copy(&cb, &mut cf);
    g.copy(&db, &mut df);
    assert_close("copy (broadcast)", &host(g, &df), &host(&cpu, &cf), 0.0);
    cpu.copy(&cy, &mut cf);
    g.copy(&dy, &mut df);
    assert_close("copy", &host(g, &df), &host(&cpu, &cf), 0.0);
    // copy_block: 9 values of every member from 4 into a wider stack at 20, and back
    let wide = Shape::new(3, 40, 1);
    let (mut cw, mut dw) = pair(g, wide, &random(wide.len(), 4));
    cpu.copy_block(&cy, 4, &mut cw, 20, 9);
    g.copy_block(&dy, 4, &mut dw, 20, 9);
    let got = host(g, &dw);
    assert_close("copy_block", &got, &host(&cpu, &cw), 0.0);
    assert_eq!(
        got[40 + 20..40 + 29],
        y[231 + 4..231 + 13],
        "member 1's block"
    );
    cpu.copy_block(&cw, 0, &mut cf, 7, 30);
    g.copy_block(&dw, 0, &mut df, 7, 30);
    assert_close("copy_block back", &host(g, &df), &host(&cpu, &cf), 0.0);
    // add_bias, sum_columns
    let bias_shape = Shape::new(3, 7, 1);
    let (cbias, dbias) = pair(g, bias_shape, &random(bias_shape.len(), 3));
    cpu.add_bias(&mut cf, &cbias);
    g.add_bias(&mut df, &dbias);
    assert_close("add_bias", &host(g, &df), &host(&cpu, &cf), 1e-6);
    let (mut cs, mut ds) = pair(g, bias_shape, &vec![0.0; bias_shape.len()]);
    cpu.sum_columns(&cf, &mut cs);
    g.sum_columns(&df, &mut ds);
    assert_close("sum_columns", &host(g, &ds), &host(&cpu, &cs), 1e-5);
    // normalize_columns
    cpu.normalize_columns(&mut cf);
    g.normalize_columns(&mut df);
    assert_close("normalize_columns", &host(g, &df), &host(&cpu, &cf), 1e-6);
    // Long columns, each reduced by a workgroup: sums over 5,000 columns of 70 rows (three
    // blocks of rows, the last partly filled), and unit norms of 600-row columns, one all zero.
    let long = Shape::new(2, 70, 5_000);
    let (cl, dl) = pair(g, long, &random(long.len(), 5));
    let sums = Shape::new(2, 70, 1);
    let (mut cs, mut ds) = pair(g, sums, &vec![0.0; sums.len()]);
    cpu.sum_columns(&cl, &mut cs);
    g.sum_columns(&dl, &mut ds);
    assert_rel_l2(
        "sum_columns over 5,000 columns",
        &host(g, &ds),
        &host(&cpu, &cs),
        1e-5,
    );
    let tall = Shape::new(2, 600, 9);
    let mut values = random(tall.len(), 6);
    values[600 * 4..600 * 5].fill(0.0);
    let (mut ct, mut dt) = pair(g, tall, &values);
    cpu.normalize_columns(&mut ct);
    g.normalize_columns(&mut dt);
    assert_close(
        "normalize_columns, 600 rows",
        &host(g, &dt),
        &host(&cpu, &ct),
        1e-6,
    );
}

#[test]
fn optimiser_kernels_match_the_cpu() {
    let Some(g) = gpu() else { return };
    let cpu = CpuBackend::new(1);
    let g: &GpuBackend = &g;
    let shape = Shape::new(2, 5, 40);
    let p0 = random(shape.len(), 4);
    let grad = random(shape.len(), 5);
    let (mut cp, mut dp) = pair(g, shape, &p0);
    let (cg, dg) = pair(g, shape, &grad);
    let (mut cm, mut dm) = pair(g, shape, &vec![0.0; shape.len()]);
    let (mut cv, mut dv) = pair(g, shape, &vec![0.0; shape.len()]);
    for t in 1..4 {
        let s = [scalars(t, 1e-2), scalars(t, 3e-3)];
        cpu.adam(&mut cp, &cg, &mut cm, &mut cv, &s);
        g.adam(&mut dp, &dg, &mut dm, &mut dv, &s);
    }
    assert_close("adam param", &host(g, &dp), &host(&cpu, &cp), 1e-5);
    assert_close("adam m", &host(g, &dm), &host(&cpu, &cm), 1e-6);
    assert_close("adam v", &host(g, &dv), &host(&cpu, &cv), 1e-6);
    // The fused log-code step.
    let u0: Vec<f32> = random(shape.len(), 6).iter().map(|v| v - 2.0).collect();
    let (mut cu, mut du) = pair(g, shape, &u0);
    let (mut cc, mut dc) = pair(g, shape, &vec![0.0; shape.len()]);
    cpu.exp(&cu, &mut cc);
    g.exp(&du, &mut dc);
    let (mut cm, mut dm) = pair(g, shape, &vec![0.0; shape.len()]);
    let (mut cv, mut dv) = pair(g, shape, &vec![0.0; shape.len()]);
    for t in 1..4 {
        let s = [scalars(t, 3e-3)];
        cpu.adam_log_codes(&mut cu, &mut cc, &cg, &mut cm, &mut cv, &[0.1, 0.2], &s);
        g.adam_log_codes(&mut du, &mut dc, &dg, &mut dm, &mut dv, &[0.1, 0.2], &s);
    }
    assert_close("adam_log_codes u", &host(g, &du), &host(&cpu, &cu), 1e-5);
    assert_close(
        "adam_log_codes codes",
        &host(g, &dc),
        &host(&cpu, &cc),
        1e-5,
    );
    // Adam on a minibatch's columns, and gathering them.
    let idx: Vec<u32> = vec![3, 0, 39, 17, 3, 8];
    let (ci, di) = (cpu.upload_indices(2, &idx), g.upload_indices(2, &idx));
    let bshape = Shape::new(2, 5, 3);
    let (mut cgat, mut dgat) = pair(g, bshape, &vec![0.0; bshape.len()]);
    cpu.gather_columns(&cp, &ci, &mut cgat);
    g.gather_columns(&dp, &di, &mut dgat);
    assert_close("gather_columns", &host(g, &dgat), &host(&cpu, &cgat), 1e-5);
    let (cbg, dbg) = pair(g, bshape, &random(bshape.len(), 7));
    cpu.adam_columns(&mut cp, &cbg, &mut cm, &mut cv, &ci, &[scalars(4, 1e-2)]);
    g.adam_columns(&mut dp, &dbg, &mut dm, &mut dv, &di, &[scalars(4, 1e-2)]);
    assert_close("adam_columns", &host(g, &dp), &host(&cpu, &cp), 1e-5);
    // FISTA's update, signed and non-negative.
    for nonneg in [true, false] {
        let (mut cs, mut ds) = pair(g, shape, &p0);
        let (cprev, dprev) = pair(g, shape, &grad);
        let (mut cy, mut dy) = pair(g, shape, &vec![0.0; shape.len()]);
        cpu.fista_update(&mut cs, &cprev, &mut cy, &[0.3, 0.1], &[0.7, 0.4], nonneg);
        g.fista_update(&mut ds, &dprev, &mut dy, &[0.3, 0.1], &[0.7, 0.4], nonneg);
        assert_close("fista s", &host(g, &ds), &host(&cpu, &cs), 1e-6);
        assert_close("fista y", &host(g, &dy), &host(&cpu, &cy), 1e-6);
    }
}

/// A product's epilogue (bias and ReLU, the scaled residual, the L1 sign and the mask back
/// through a ReLU) gives what the product followed by the operations it stands for gives, on
/// the CPU (the reference) and on the GPU run as separate dispatches, in one dispatch; tiled
/// and thin shapes (by every thin kernel: an element per invocation, a block, a block in
/// vectors of four, 16 x 16 blocks), operands per member and broadcast, one scale and one per
/// member.
#[test]
fn product_epilogues_match_the_operations_they_fuse() {
    if gpu().is_none() {
        return;
    }
    // A device of its own, so that other tests' work does not enter its counters.
    let g = GpuBackend::request_blocking().expect("a second device on the same adapter");
    let cpu = CpuBackend::new(1);
    let g: &GpuBackend = &g;
    let cpu_ref: &dyn Backend = &cpu;
    for ((m, n, k), blocked) in [
        ((70, 65, 130), None),
        ((16, 300, 8), Some(false)),
        ((16, 300, 8), Some(true)),
        ((16, 304, 16), Some(true)),
        ((13, 30, 6), Some(true)),
    ] {
        g.set_blocked_thin_products(blocked);
        let a_shape = Shape::new(3, m, k);
        let b_shape = Shape::new(3, n, k);
        let c_shape = Shape::new(3, m, n);
        let (ca, da) = pair(g, a_shape, &random(a_shape.len(), 30));
        let (cb, db) = pair(g, b_shape, &random(b_shape.len(), 31));
        let mut out = random(c_shape.len(), 32);
        for v in out.iter_mut().step_by(3) {
            *v = v.max(0.0);
        }
        let (cout, dout) = pair(g, c_shape, &out);
        for operand_stack in [3, 1] {
            let bias_shape = Shape::new(operand_stack, m, 1);
            let (cbias, dbias) = pair(g, bias_shape, &random(bias_shape.len(), 33));
            let x_shape = c_shape.with_stack(operand_stack);
            let (cx, dx) = pair(g, x_shape, &random(x_shape.len(), 34));
            let scales = [0.5f32, -2.0, 3.0];
            let on_cpu = epilogue_cases(&cbias, &cx, &cout, &scales);
            let on_gpu = epilogue_cases(&dbias, &dx, &dout, &scales);
            for ((what, cpu_epilogue), (_, epilogue)) in on_cpu.into_iter().zip(on_gpu) {
                let what = format!(
                    "{what} at {m}x{n}x{k} (blocked {blocked:?}), operands of stack {operand_stack}"
                );
                let zero = vec![0.0; c_shape.len()];
                let (mut cc, mut fused) = pair(g, c_shape, &zero);
                let mut apart = g.upload(c_shape, &zero);
                cpu_ref.gemm_epilogue(0.7, Op::n(&ca), Op::t(&cb), &mut cc, cpu_epilogue);
                let before = g.counters();
                g.gemm_epilogue(0.7, Op::n(&da), Op::t(&db), &mut fused, epilogue);
                let dispatches = g.counters().since(&before).dispatches;
                assert_eq!(dispatches, 1, "{what}: one dispatch");
                // The same operations as separate kernels, on the GPU.
                g.gemm(0.7, Op::n(&da), Op::t(&db), 0.0, &mut apart);
                epilogue.apply_apart(g, &mut apart);
                let got = host(g, &fused);
                let tol = 2e-6 * (k as f32).sqrt() * 4.0;
                assert_close(
                    &format!("{what}, against the CPU"),
                    &got,
                    &host(&cpu, &cc),
                    tol,
                );
                assert_close(
                    &format!("{what}, against separate dispatches"),
                    &got,
                    &host(g, &apart),
                    1e-6,
                );
                if what.starts_with("mask") || what.starts_with("bias + relu") {
                    assert!(got.contains(&0.0), "{what}: something masked");
                }
            }
        }
    }
}

/// Every epilogue, on these operands, named.
fn epilogue_cases<'a>(
    bias: &'a Tensor,
    x: &'a Tensor,
    out: &'a Tensor,
    scales: &'a [f32],
) -> Vec<(&'static str, Epilogue<'a>)> {
    let gradient = |l1, through_relu| Epilogue::Gradient {
        out,
        l1,
        through_relu,
    };
    vec![
        (
            "bias + relu",
            Epilogue::Activation {
                bias: Some(bias),
                relu: true,
            },
        ),
        (
            "bias",
            Epilogue::Activation {
                bias: Some(bias),
                relu: false,
            },
        ),
        (
            "relu",
            Epilogue::Activation {
                bias: None,
                relu: true,
            },
        ),
        ("residual", Epilogue::Residual { x, scale: scales }),
        ("l1 + mask", gradient(Some(&[0.25][..]), true)),
        ("l1 per member", gradient(Some(scales), false)),
        ("mask", gradient(None, true)),
    ]
}

#[test]
fn products_match_the_cpu_in_every_layout() {
    let Some(g) = gpu() else { return };
    let cpu = CpuBackend::new(1);
    let g: &GpuBackend = &g;
    for (m, n, k) in [
        (1, 1, 1),
        (16, 1024, 8),
        (8, 16, 1024),
        (70, 65, 130),
        (5, 3, 200),
        (13, 6, 40),
        (12, 20, 12),
        (32, 48, 20),
    ] {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            for (a_stack, b_stack) in [(3, 3), (1, 3), (3, 1)] {
                let a_shape = if ta {
                    Shape::new(a_stack, k, m)
                } else {
                    Shape::new(a_stack, m, k)
                };
                let b_shape = if tb {
                    Shape::new(b_stack, n, k)
                } else {
                    Shape::new(b_stack, k, n)
                };
                let c_shape = Shape::new(3, m, n);
                let (ca, da) = pair(g, a_shape, &random(a_shape.len(), 8));
                let (cb, db) = pair(g, b_shape, &random(b_shape.len(), 9));
                let c0 = random(c_shape.len(), 10);
                fn op(t: &Tensor, tr: bool) -> Op<'_> {
                    if tr {
                        Op::t(t)
                    } else {
                        Op::n(t)
                    }
                }
                for (alpha, beta) in [(1.0, 0.0), (-0.5, 2.0)] {
                    let case =
                        format!("gemm {m}x{n}x{k} ta={ta} tb={tb} stacks {a_stack}/{b_stack}");
                    let (mut cc, _) = pair(g, c_shape, &c0);
                    cpu.gemm(alpha, op(&ca, ta), op(&cb, tb), beta, &mut cc);
                    let want = host(&cpu, &cc);
                    // Thin shapes both ways (an element or a block of C per invocation; the
                    // block read and written in vectors of four where M and K are multiples of
                    // 4, and N where B is transposed, else value by value; 16 x 16 where M and N
                    // are multiples of 16 and K at least 16): the same sums in the same order,
                    // so the same bits.
                    let mut thin = Vec::new();
                    for blocked in [false, true] {
                        g.set_blocked_thin_products(Some(blocked));
                        let (_, mut dc) = pair(g, c_shape, &c0);
                        g.gemm(alpha, op(&da, ta), op(&db, tb), beta, &mut dc);
                        let got = host(g, &dc);
                        let tol = 2e-6 * (k as f32).sqrt() * 4.0;
                        assert_close(&format!("{case} blocked={blocked}"), &got, &want, tol);
                        thin.push(got);
                    }
                    g.set_blocked_thin_products(None);
                    assert!(
                        thin[0]
                            .iter()
                            .zip(&thin[1])
                            .all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{case}: the blocked kernel's bits differ"
                    );
                }
            }
        }
    }
}

#[test]
fn selections_and_losses_match_the_cpu() {
    let Some(g) = gpu() else { return };
    let cpu = CpuBackend::new(1);
    let g: &GpuBackend = &g;
    // top-k with ties and NaN
    let shape = Shape::new(2, 17, 30);
    let mut state = 7u32;
    let values: Vec<f32> = (0..shape.len())
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            match state >> 27 {
                0 => f32::NAN,
                r => (r % 9) as f32 - 3.0,
            }
        })
        .collect();
    // One k for both members, then one each (a k of 17 or more keeps the column, NaN too).
    for k in [&[1][..], &[3], &[16], &[2, 5], &[0, 17], &[16, 40]] {
        let (mut c, mut d) = pair(g, shape, &values);
        cpu.topk_columns(&mut c, k);
        g.topk_columns(&mut d, k);
        assert_close(&format!("topk k={k:?}"), &host(g, &d), &host(&cpu, &c), 0.0);
    }
    // Per member, each member as it would be alone.
    let (mut each, _) = pair(g, shape, &values);
    cpu.topk_columns(&mut each, &[2, 5]);
    let each = host(&cpu, &each);
    let half = shape.len() / 2;
    for (i, k) in [2, 5].into_iter().enumerate() {
        let mut alone = cpu.upload(
            Shape::new(1, shape.rows, shape.cols),
            &values[i * half..(i + 1) * half],
        );
        cpu.topk_columns(&mut alone, &[k]);
        assert_eq!(
            host(&cpu, &alone),
            each[i * half..(i + 1) * half].to_vec(),
            "member {i}"
        );
    }
    // Real-activation widths: 4,608 latents, signed values with many ties (an eighth of them on
    // a grid of five values, another eighth -0), and NaN. One invocation walking the column k
    // times ran past llvmpipe's 65,535-iteration loop guard here. k = 2,300 cuts through the
    // zeros (about 690 per column, +0 and -0 tied, kept from the lowest rows), and 4,600 is
    // more than a column's non-NaN values (all of them kept).
    let wide = Shape::new(2, 4_608, 5);
    let mut rng = Rng::new(21);
    let values: Vec<f32> = (0..wide.len())
        .map(|i| match (i % 97, i % 8) {
            (3, _) => f32::NAN,
            (_, 0) => (rng.below(5) as f32 - 2.0) * 0.5,
            (_, 1) => -0.0,
            _ => rng.normal() as f32,
        })
        .collect();
    for k in [
        &[0][..],
        &[1],
        &[32],
        &[64],
        &[2_300],
        &[4_000],
        &[4_600],
        &[32, 2_300],
        &[4_608, 64],
    ] {
        let (mut c, mut d) = pair(g, wide, &values);
        cpu.topk_columns(&mut c, k);
        g.topk_columns(&mut d, k);
        let (got, want) = (host(g, &d), host(&cpu, &c));
        let kept = |v: &[f32]| v.iter().filter(|x| **x != 0.0).count();
        assert_eq!(
            kept(&got),
            kept(&want),
            "topk k={k:?} at 4,608 rows: entries kept"
        );
        assert_close(&format!("topk k={k:?} at 4,608 rows"), &got, &want, 0.0);
    }
    // The reconstruction loss (f32 on the GPU, f64 on the CPU).
    let r_shape = Shape::new(3, 8, 100);
    let c_shape = Shape::new(3, 16, 100);
    let (cr, dr) = pair(g, r_shape, &random(r_shape.len(), 11));
    let (cc, dc) = pair(g, c_shape, &random(c_shape.len(), 12));
    let l_shape = sparse_playground::compute::loss_shape(3);
    let (mut cl, mut dl) = pair(g, l_shape, &[0.0; 6]);
    cpu.reconstruction_loss(&cr, &cc, &[0.02, 0.03, 0.04], &[0.01], &mut cl);
    g.reconstruction_loss(&dr, &dc, &[0.02, 0.03, 0.04], &[0.01], &mut dl);
    let loss = |v: Vec<f32>| {
        (0..3)
            .map(|i| sparse_playground::compute::loss_value(&v, i) as f32)
            .collect::<Vec<_>>()
    };
    assert_close(
        "reconstruction_loss",
        &loss(host(g, &dl)),
        &loss(host(&cpu, &cl)),
        1e-5,
    );
    // Members past one workgroup's chunk (262,144 values) sum in chunks, then per member.
    let r_shape = Shape::new(2, 64, 5_000);
    let c_shape = Shape::new(2, 128, 5_000);
    let (cr, dr) = pair(g, r_shape, &random(r_shape.len(), 15));
    let (cc, dc) = pair(g, c_shape, &random(c_shape.len(), 16));
    let l2 = sparse_playground::compute::loss_shape(2);
    let (mut cl2, mut dl2) = pair(g, l2, &[0.0; 4]);
    cpu.reconstruction_loss(&cr, &cc, &[0.5], &[0.02, 0.03], &mut cl2);
    g.reconstruction_loss(&dr, &dc, &[0.5], &[0.02, 0.03], &mut dl2);
    assert_close(
        "reconstruction_loss over 640,000 codes",
        &host(g, &dl2),
        &host(&cpu, &cl2),
        1e-5,
    );
    // The supervised cosine loss and its gradient (target broadcast).
    let p_shape = Shape::new(3, 6, 300);
    let (cp, dp) = pair(g, p_shape, &random(p_shape.len(), 13));
    let (ct, dt) = pair(
        g,
        p_shape.with_stack(1),
        &random(p_shape.with_stack(1).len(), 14),
    );
    let (mut cgr, mut dgr) = pair(g, p_shape, &vec![0.0; p_shape.len()]);
    cpu.cosine_loss(&cp, &ct, &mut cgr, &mut cl);
    g.cosine_loss(&dp, &dt, &mut dgr, &mut dl);
    assert_close(
        "cosine_loss",
        &loss(host(g, &dl)),
        &loss(host(&cpu, &cl)),
        1e-5,
    );
    assert_close(
        "cosine_loss gradient",
        &host(g, &dgr),
        &host(&cpu, &cgr),
        1e-4,
    );
}

/// BatchTopK's selection over a whole batch (ties, NaN, fewer positives than asked, nothing
/// asked) with its running threshold, the threshold gate of JumpReLU and BatchTopK's inference,
/// and JumpReLU's straight-through threshold gradient.
#[test]
fn batch_topk_and_jump_relu_kernels_match_the_cpu() {
    let Some(g) = gpu() else { return };
    let cpu = CpuBackend::new(1);
    let g: &GpuBackend = &g;
    let shape = Shape::new(3, 40, 70);
    let mut values = random(shape.len(), 21);
    // Ties, NaN and negative zero in the first member; the third has only 5 positives.
    for (i, v) in values.iter_mut().enumerate().take(2800) {
        match i % 97 {
            0 => *v = f32::NAN,
            1..=4 => *v = 1.25,
            5 => *v = -0.0,
            _ => {}
        }
    }
    let third = 2 * shape.matrix_len();
    for (i, v) in values[third..].iter_mut().enumerate() {
        *v = if i % 600 == 7 {
            0.5 + i as f32 * 1e-4
        } else {
            -v.abs()
        };
    }
    for (keep, start) in [(0, -1.0), (1, -1.0), (35, 0.4), (140, -1.0), (2799, 0.1)] {
        let (mut c, mut d) = pair(g, shape, &values);
        let (mut ct, mut dt) = pair(g, Shape::new(3, 1, 1), &[start, 0.2, start]);
        cpu.batch_topk(&mut c, keep, &mut ct, 0.9);
        g.batch_topk(&mut d, keep, &mut dt, 0.9);
        let kept = host(&cpu, &c);
        assert_close(&format!("batch_topk keep={keep}"), &host(g, &d), &kept, 0.0);
        assert_close(
            &format!("batch_topk threshold keep={keep}"),
            &host(g, &dt),
            &host(&cpu, &ct),
            1e-6,
        );
        // The CPU keeps `keep` per member (more only on ties), and never a NaN.
        for m in 0..3 {
            let range = m * shape.matrix_len()..(m + 1) * shape.matrix_len();
            let positives = values[range.clone()].iter().filter(|v| **v > 0.0).count();
            let n = kept[range.clone()].iter().filter(|v| **v != 0.0).count();
            assert!(
                n >= keep.min(positives) && n <= keep.min(positives) + 4,
                "member {m}, keep={keep}: {n} kept of {positives} positives"
            );
            assert!(kept[range].iter().all(|v| !v.is_nan()));
        }
    }
    // Members past one workgroup's chunk (262,144 values) select in passes across workgroups:
    // the same entries and thresholds. The first member has ties, NaN and negative zeros, the
    // second only 9 positives; keep cuts through the ties (the value 1.25 is the largest).
    let wide = Shape::new(2, 96, 6_000);
    let mut wide_values = random(wide.len(), 25);
    for (i, v) in wide_values.iter_mut().enumerate().take(wide.matrix_len()) {
        match i % 1_009 {
            0 => *v = f32::NAN,
            1..=3 => *v = 1.25,
            4 => *v = -0.0,
            _ => {}
        }
    }
    for (i, v) in wide_values[wide.matrix_len()..].iter_mut().enumerate() {
        *v = if i % 64_000 == 5 { 0.25 } else { -v.abs() };
    }
    for (keep, start) in [(0, -1.0), (1, 0.5), (1_000, -1.0), (300_000, 0.1)] {
        let (mut c, mut d) = pair(g, wide, &wide_values);
        let (mut ct, mut dt) = pair(g, Shape::new(2, 1, 1), &[start, start]);
        cpu.batch_topk(&mut c, keep, &mut ct, 0.9);
        g.batch_topk(&mut d, keep, &mut dt, 0.9);
        let (got, want) = (host(g, &d), host(&cpu, &c));
        let kept = |v: &[f32]| v.iter().filter(|x| **x != 0.0).count();
        assert_eq!(kept(&got), kept(&want), "wide batch_topk keep={keep}");
        assert_close(&format!("wide batch_topk keep={keep}"), &got, &want, 0.0);
        assert_close(
            &format!("wide batch_topk threshold keep={keep}"),
            &host(g, &dt),
            &host(&cpu, &ct),
            1e-6,
        );
    }
    // A member of more values than one workgroup may walk on llvmpipe (its loop guard stops a
    // loop after 65,535 turns: 256 invocations x 65,536 = 16.8 M values).
    let huge = Shape::new(1, 4_200, 4_000);
    let huge_values = random(huge.len(), 26);
    let (mut c, mut d) = pair(g, huge, &huge_values);
    let (mut ct, mut dt) = pair(g, Shape::new(1, 1, 1), &[-1.0]);
    cpu.batch_topk(&mut c, 5_000, &mut ct, 0.9);
    g.batch_topk(&mut d, 5_000, &mut dt, 0.9);
    assert_close(
        "batch_topk at 16.8 M values",
        &host(g, &d),
        &host(&cpu, &c),
        0.0,
    );
    assert_close("its threshold", &host(g, &dt), &host(&cpu, &ct), 1e-6);
    // The gate, with a threshold per row and one per member.
    let theta_rows = random(3 * 40, 22);
    for theta in [
        (Shape::new(3, 40, 1), theta_rows.clone()),
        (Shape::new(3, 1, 1), vec![0.3, -0.5, 1.0]),
    ] {
        let (mut c, mut d) = pair(g, shape, &values);
        let (ct, dt) = pair(g, theta.0, &theta.1);
        cpu.threshold_rows(&mut c, &ct, 1.5);
        g.threshold_rows(&mut d, &dt, 1.5);
        assert_close("threshold_rows", &host(g, &d), &host(&cpu, &c), 0.0);
    }
    // The straight-through gradient (sums of a few dozen terms).
    let pre = random(shape.len(), 23);
    let grad = random(shape.len(), 24);
    let theta: Vec<f32> = theta_rows.iter().map(|t| 0.3 * t.abs()).collect();
    let (cz, dz) = pair(g, shape, &pre);
    let (cg, dg) = pair(g, shape, &grad);
    let rows = Shape::new(3, 40, 1);
    let (ctheta, dtheta) = pair(g, rows, &theta);
    let (mut co, mut dout) = pair(g, rows, &vec![0.0; rows.len()]);
    let js = JumpReluScalars {
        bandwidth: 0.3,
        l0: 0.01,
        scale: 2.0,
    };
    cpu.jump_relu_threshold_grad(&cz, &cg, &ctheta, js, &mut co);
    g.jump_relu_threshold_grad(&dz, &dg, &dtheta, js, &mut dout);
    let want = host(&cpu, &co);
    assert!(
        want.iter().filter(|v| **v != 0.0).count() > 100,
        "windows hold values"
    );
    assert_close("jump_relu_threshold_grad", &host(g, &dout), &want, 1e-5);
}

/// The fused per-sample solvers (many iterations per dispatch) against the CPU's step-by-step
/// loops, on a stack of dictionaries.
#[test]
fn fused_solvers_match_the_step_by_step_ones() {
    let Some(g) = gpu() else { return };
    let cpu = CpuBackend::new(1);
    // A dimension of 5 runs the kernels compiled for 8, with zeros past the signal.
    for dim in [8, 5] {
        fused_solvers_at(&g, &cpu, dim);
    }
}

fn fused_solvers_at(g: &GpuBackend, cpu: &CpuBackend, dim: usize) {
    let (members, atoms, n) = (3, 16, 200);
    let dict_values: Vec<f32> = {
        let mut d = random(members * dim * atoms, 15);
        for col in d.chunks_mut(dim) {
            let norm = col.iter().map(|v| v * v).sum::<f32>().sqrt();
            col.iter_mut().for_each(|v| *v /= norm);
        }
        d
    };
    let dshape = Shape::new(members, dim, atoms);
    let x_values: Vec<f32> = random(dim * n, 16).iter().map(|v| v.abs()).collect();
    let xshape = Shape::new(1, dim, n);
    let run = |b: &dyn Backend| {
        let dict = b.upload(dshape, &dict_values);
        let x = b.upload(xshape, &x_values);
        let mut solver = solvers::AdamExp::new(b, dict, &x, &[0.01], 600, &[3e-3]);
        // In uneven pieces: the fused kernel resumes where it stopped.
        solver.run(b, &x, 7);
        solver.run(b, &x, 593);
        host(b, solver.codes())
    };
    let (want, got) = (run(cpu), run(g));
    assert_close(
        &format!("fused adam_exp codes, dim {dim}"),
        &got,
        &want,
        2e-3,
    );
    let hosts: Vec<_> = dict_values
        .chunks(dim * atoms)
        .map(|c| sparse_playground::core::Matrix::from_column_slice(dim, atoms, c))
        .collect();
    for nonneg in [true, false] {
        for (iters, tol) in [(20, 1e-5), (300, 2e-3)] {
            let fista = |b: &dyn Backend| {
                let dict = b.upload(dshape, &dict_values);
                let x = b.upload(xshape, &x_values);
                let (codes, _, _) =
                    solvers::fista_stack(b, dict, &hosts, &x, &[], 0.01, iters, nonneg, None)
                        .unwrap();
                host(b, &codes)
            };
            // Rounding differences grow slowly with the iterations (FISTA's momentum does not
            // contract them): measured on lavapipe after 300 iterations, 7e-6 (non-negative)
            // and 8e-4 (signed).
            assert_rel_l2(
                &format!("fused fista codes, dim {dim}, nonneg={nonneg}, {iters} iterations"),
                &fista(g),
                &fista(cpu),
                tol,
            );
        }
    }
}

/// FISTA on the GPU leaves the members it is told to skip (converged ones, whose codes were kept
/// at a check) as they are, and runs the others as without the skip: in the fused kernel (8 x
/// 16) and kernel by kernel past it (40 x 80), where the skipped member's products return at
/// once and, with nothing skipped, the iterations are the solver's own kernel-by-kernel ones.
#[test]
fn gpu_fista_leaves_skipped_members_alone() {
    use sparse_playground::compute::FistaJob;
    let Some(g) = gpu() else { return };
    let members = 3;
    for (dim, atoms, n) in [(8, 16, 40), (40, 80, 70)] {
        let shape = Shape::new(members, atoms, n);
        let dict = g.upload(
            Shape::new(members, dim, atoms),
            &random(members * dim * atoms, 21),
        );
        let x = g.upload(Shape::new(1, dim, n), &random(dim * n, 22));
        let start = random(members * atoms * n, 23);
        let steps = [0.05f32; 3];
        let momentum = [0.3f32; 15];
        let fresh = || {
            (
                g.upload(shape, &start),
                g.upload(shape, &start),
                g.upload(shape, &start),
            )
        };
        let run = |skip: &[bool]| {
            let (mut s, mut s_prev, mut y) = fresh();
            let mut job = FistaJob {
                dict: &dict,
                x: &x,
                s: &mut s,
                s_prev: &mut s_prev,
                y: &mut y,
                step: &steps,
                threshold: &[0.001],
                momentum: &momentum,
                nonneg: true,
                iterations: 5,
                skip,
            };
            assert!(
                g.fista_fused(&mut job),
                "{dim} x {atoms}: skips are the GPU's own"
            );
            host(&*g, &s)
        };
        let (all, skipped) = (run(&[false; 3]), run(&[false, true, false]));
        let per = atoms * n;
        let what = format!("{dim} x {atoms}");
        assert_eq!(
            &skipped[per..2 * per],
            &start[per..2 * per],
            "{what}: member 1 left alone"
        );
        assert_ne!(
            &all[per..2 * per],
            &start[per..2 * per],
            "{what}: member 1 runs unskipped"
        );
        assert_eq!(&skipped[..per], &all[..per], "{what}: member 0");
        assert_eq!(&skipped[2 * per..], &all[2 * per..], "{what}: member 2");
        if atoms > 64 {
            // The solver's own loop (solvers.rs), which runs where nothing is skipped.
            let (mut s, mut s_prev, mut y) = fresh();
            let mut recon = g.zeros(Shape::new(members, dim, n));
            for mom in momentum.chunks(members) {
                let residual = Epilogue::Residual {
                    x: &x,
                    scale: &steps,
                };
                g.gemm_epilogue(1.0, Op::n(&dict), Op::n(&y), &mut recon, residual);
                std::mem::swap(&mut s, &mut s_prev);
                g.copy(&y, &mut s);
                g.gemm(-1.0, Op::t(&dict), Op::n(&recon), 1.0, &mut s);
                g.fista_update(&mut s, &s_prev, &mut y, &[0.001], mom, true);
            }
            assert_eq!(host(&*g, &s), all, "{what}: the solver's loop");
        }
    }
}

/// Fused training of one-layer encoders and of MLPs with one hidden layer (every variant the
/// kernels take: bias or not, top-k or not, learned or frozen dictionary, per-member learning
/// rates, a batch that is not a whole number of chunks) against the CPU's steps and the GPU's
/// own kernel-by-kernel steps.
#[test]
fn fused_encoder_training_matches_the_step_by_step_path() {
    use sparse_playground::core::models::{DecoderInit, EncoderModel, EncoderSpec, Objective};
    if gpu().is_none() {
        return;
    }
    // A device of its own: the fused switch below would change what other tests running
    // beside this one compute on the shared device.
    let g = GpuBackend::request_blocking().expect("a second device on the same adapter");
    let cpu = CpuBackend::new(1);
    let (dim, atoms, n) = (8, 16, 200);
    let x_values: Vec<f32> = random(dim * n, 21).iter().map(|v| v.abs()).collect();
    let frozen_values = random(dim * atoms, 22);
    // True codes for the supervised objective: three of the atoms active per sample.
    let target_values: Vec<f32> = random(atoms * n, 24)
        .iter()
        .enumerate()
        .map(|(i, v)| {
            if (i * 7 + i / atoms) % atoms < 3 {
                v.abs() + 0.1
            } else {
                0.0
            }
        })
        .collect();
    // (hidden widths, biases, top-k, dictionary learned (else frozen), learning rates per
    // member, the supervised objective (no dictionary) instead of the reconstruction)
    for (hidden, bias, topk, learned, lrs, sup) in [
        (vec![], false, None, true, vec![1e-2], false),
        (vec![], true, None, true, vec![1e-2, 3e-3, 1e-3], false),
        (vec![], false, Some(3), true, vec![1e-2], false),
        (vec![], true, Some(4), false, vec![1e-2, 2e-3], false),
        (vec![32], true, None, true, vec![1e-2, 3e-3], false),
        (vec![12], false, None, false, vec![1e-2], false),
        (vec![20], true, Some(3), false, vec![3e-3, 1e-2], false),
        (vec![8], false, Some(2), true, vec![1e-2], false),
        (vec![], true, None, false, vec![1e-2, 3e-3], true),
        (vec![], false, Some(3), false, vec![1e-2], true),
        (vec![32], true, None, false, vec![3e-3, 1e-2], true),
        (vec![12], true, Some(4), false, vec![1e-2], true),
    ] {
        let case = format!(
            "hidden={hidden:?} bias={bias} topk={topk:?} learned={learned} lrs={lrs:?} \
             supervised={sup}"
        );
        // The supervised objective is scale-free and its gradient cancels exactly where a
        // latent is active on a single sample, so rounding meets Adam's eps there: it is
        // compared over fewer steps.
        let long = if sup { 37 } else { 237 };
        let run = |b: &dyn Backend, fused: bool, private: Option<bool>| {
            g.set_fused_training(fused);
            // The fused MLP kernel too where the adapter would train MLPs kernel by kernel.
            g.set_fused_mlp(Some(true));
            g.set_private_training(private);
            let x = b.upload(Shape::new(1, dim, n), &x_values);
            let frozen = b.upload(Shape::new(1, dim, atoms), &frozen_values);
            let targets = b.upload(Shape::new(1, atoms, n), &target_values);
            let t = sup.then_some(&targets);
            // Seeds under which no latent of the supervised cases is active on exactly one
            // sample: there the cosine's gradient cancels to zero in exact arithmetic, so its
            // rounding (f64 on the CPU, f32 here, in each path's order) meets Adam's eps and
            // decides whether that latent moves at all.
            let seed = if sup { 70 } else { 30 };
            let mut rngs: Vec<Rng> = (0..lrs.len() as u64).map(|i| Rng::new(seed + i)).collect();
            let spec = EncoderSpec {
                hidden: hidden.clone(),
                topk,
                bias,
            };
            let (decoder, objective) = match (sup, learned) {
                (true, _) => (DecoderInit::None, Objective::Supervised),
                (false, true) => (
                    DecoderInit::Learned,
                    Objective::Reconstruction {
                        l1_penalty: vec![0.05],
                    },
                ),
                (false, false) => (
                    DecoderInit::Frozen(&frozen),
                    Objective::Reconstruction {
                        l1_penalty: vec![0.05],
                    },
                ),
            };
            let mut model =
                EncoderModel::new(b, &mut rngs, &spec, dim, atoms, decoder, objective, &lrs);
            // In uneven pieces, the loss asked for at the end of each; the second takes more
            // than one dispatch (at most 200 steps each, fewer on lavapipe).
            model.train_steps(b, &x, t, 3, true);
            let before = g.counters();
            model.train_steps(b, &x, t, long, true);
            if fused {
                // (Only the GPU runs fused.) The fused kernel ran: a few dispatches for all
                // those steps, not several per step.
                let dispatches = g.counters().since(&before).dispatches;
                assert!(
                    dispatches < long as u64,
                    "{case}: {dispatches} dispatches for {long} steps"
                );
            }
            model.settle(b);
            let mut out: Vec<Vec<f32>> = model.params().iter().map(|p| host(b, p)).collect();
            out.push(host(b, model.loss()));
            out.push(host(b, &model.encode(b, &x)));
            // Kernel-by-kernel steps after fused ones continue from the same state.
            model.train_steps(b, &x, t, 2, false);
            g.set_fused_training(true);
            model.train_steps(b, &x, t, 5, false);
            model.settle(b);
            out.extend(model.params().iter().map(|p| host(b, p)));
            out
        };
        let want = run(&cpu, false, None);
        // Fused in both forms of the one-layer kernel (private copies and gradient sums in
        // each invocation, or the workgroup's; the others have one form), then kernel by kernel.
        for (fused, private) in [(true, Some(true)), (true, Some(false)), (false, None)] {
            if private == Some(true) && !hidden.is_empty() {
                continue;
            }
            let got = run(&g, fused, private);
            for (i, (a, w)) in got.iter().zip(&want).enumerate() {
                // Sums in another order for 247 Adam steps (measured on lavapipe: within
                // 1e-7 of the CPU's).
                assert_close(
                    &format!("{case}, fused={fused} private={private:?}, output {i}"),
                    a,
                    w,
                    2e-3,
                );
            }
        }
    }
    g.set_fused_training(true);
    g.set_private_training(None);
}

/// Fused full-batch training of sparse coding (a stack with per-member learning rates, a
/// batch that is not a whole number of chunks, the L1 penalty changed between calls as a
/// warm-up does), in its private and workgroup forms, against the CPU's steps and the GPU's
/// own kernel-by-kernel steps.
#[test]
fn fused_sparse_coding_training_matches_the_step_by_step_path() {
    use sparse_playground::core::sparse_coding::SparseCodingModel;
    if gpu().is_none() {
        return;
    }
    // A device of its own (the fused switch below).
    let g = GpuBackend::request_blocking().expect("a second device on the same adapter");
    let cpu = CpuBackend::new(1);
    for (dim, atoms, n, lrs) in [
        (8, 16, 200, vec![1e-2]),
        (6, 10, 77, vec![3e-2, 1e-2, 3e-3]),
    ] {
        let x_values: Vec<f32> = random(dim * n, 23).iter().map(|v| v.abs()).collect();
        let run = |b: &dyn Backend, fused: bool| {
            g.set_fused_training(fused);
            let x = b.upload(Shape::new(1, dim, n), &x_values);
            let mut rngs: Vec<Rng> = (0..lrs.len() as u64).map(|i| Rng::new(40 + i)).collect();
            let mut model = SparseCodingModel::new(b, &mut rngs, dim, atoms, n, &[0.02], &lrs);
            model.train_steps(b, &x, 3, true);
            model.set_schedule(lrs[0] * 0.5, 0.05);
            model.train_steps(b, &x, 230, true);
            model.settle(b);
            let mut out = vec![
                host(b, &model.dictionary),
                host(b, &model.log_codes),
                host(b, model.loss()),
            ];
            // Kernel-by-kernel steps after fused ones continue from the same state.
            model.train_step(b, &x, None, false);
            g.set_fused_training(true);
            model.train_steps(b, &x, 4, true);
            model.settle(b);
            out.push(host(b, &model.dictionary));
            out.push(host(b, &model.log_codes));
            out.push(host(b, model.loss()));
            out
        };
        let want = run(&cpu, false);
        // The fused kernel in both forms (private dictionaries and sums, or workgroup ones),
        // then kernel by kernel.
        for (fused, private) in [(true, Some(true)), (true, Some(false)), (false, None)] {
            g.set_private_training(private);
            let got = run(&g, fused);
            for (i, (a, w)) in got.iter().zip(&want).enumerate() {
                assert_close(
                    &format!(
                        "sparse coding {dim}x{atoms} n={n}, fused={fused} private={private:?}, output {i}"
                    ),
                    a,
                    w,
                    2e-3,
                );
            }
        }
    }
    g.set_fused_training(true);
    g.set_private_training(None);
}

fn every_method(setting: Setting) -> Vec<MethodConfig> {
    let mut methods = vec![
        MethodConfig::Sae { bias: true },
        MethodConfig::TopkSae { k: 3, bias: false },
        MethodConfig::Mlp {
            hidden: vec![32],
            bias: false,
        },
    ];
    if setting != Setting::KnownCodes {
        methods.push(MethodConfig::SparseCoding {
            inference: SolverConfig::Adam {
                steps: 300,
                lr: 3e-3,
            },
        });
        methods.push(MethodConfig::SparseCoding {
            inference: SolverConfig::Fista {
                steps: 200,
                nonneg: true,
                tol: None,
            },
        });
        methods.push(MethodConfig::SparseCoding {
            inference: SolverConfig::Omp { k: None },
        });
    }
    if setting == Setting::Unknown {
        methods.push(MethodConfig::SaeIto {
            bias: false,
            inference: SolverConfig::Adam {
                steps: 300,
                lr: 3e-3,
            },
        });
        methods.push(MethodConfig::Lista { iterations: 2 });
    }
    methods
}

/// Short whole runs of every method in every setting: the GPU's final metrics agree with the
/// CPU's within the drift of a few hundred f32 steps.
#[test]
fn short_runs_of_every_method_agree_with_the_cpu() {
    let Some(g) = gpu() else { return };
    for setting in [
        Setting::Unknown,
        Setting::KnownDictionary,
        Setting::KnownCodes,
    ] {
        let mut cfg = Preset::UnknownZD.config();
        cfg.setting = setting;
        cfg.methods = every_method(setting);
        cfg.data.num_samples = 256;
        cfg.train.steps = 300;
        cfg.train.log_every = 150;
        cfg.train.lr = 3e-3;
        cfg.runs = 2;
        let checked = cfg.validate().unwrap();
        let run = |b: Arc<dyn Backend>| run_to_end(b, &checked);
        let cpu = run(Arc::new(CpuBackend::new(1)));
        let gpu = run(g.clone());
        for (a, b) in gpu.methods.iter().zip(&cpu.methods) {
            for (ra, rb) in a.runs.iter().zip(&b.runs) {
                assert_eq!(ra.log.len(), 3, "{setting:?} {}", a.name);
                for (x, y) in ra.log.iter().zip(&rb.log) {
                    assert_eq!(x.step, y.step);
                    let close = |what: &str, u: f64, v: f64, tol: f64| {
                        assert!(
                            (u - v).abs() <= tol,
                            "{setting:?} {} step {} {what}: GPU {u} vs CPU {v}",
                            a.name,
                            x.step
                        );
                    };
                    close("code MCC", x.code_mcc, y.code_mcc, 0.02);
                    if let (Some(u), Some(v)) = (x.dict_mcc, y.dict_mcc) {
                        close("dict MCC", u, v, 0.02);
                    }
                    if let (Some(u), Some(v)) = (x.test_mse, y.test_mse) {
                        close("test MSE", u, v, 0.02 * v.abs() + 1e-6);
                    }
                    close("L0", x.l0, y.l0, 0.1 + 0.02 * y.l0);
                    // A top-k selection is discontinuous: sums in another order (the fused
                    // kernel's) flip a near-tie now and then, and a flipped sample moves the loss
                    // by about 1/n of itself (measured: 1.4e-3 after 300 steps at n = 256).
                    let loss_tol = if a.name.contains("TopK") { 1e-2 } else { 1e-3 };
                    if let (Some(u), Some(v)) = (x.train_loss, y.train_loss) {
                        close("train loss", u, v, loss_tol * v.abs() + 1e-6);
                    }
                }
            }
        }
    }
}

/// Natively the kernels are trusted shader modules, without the runtime checks wgpu would add
/// (bounds clamps, loop guards, division guards); a browser always runs them checked. The
/// checks change nothing for indices in range, so both give the same bits: every method of two
/// settings (fused training of each kind, fused and kernel-by-kernel solvers), on a device of
/// its own, its pipelines made again when the switch flips.
#[test]
fn trusted_shader_modules_give_the_bits_of_checked_ones() {
    if gpu().is_none() {
        return;
    }
    let g = Arc::new(GpuBackend::request_blocking().expect("a second device"));
    for setting in [Setting::Unknown, Setting::KnownDictionary] {
        let mut cfg = Preset::UnknownZD.config();
        cfg.setting = setting;
        cfg.methods = every_method(setting);
        cfg.data.num_samples = 128;
        cfg.train.steps = 60;
        cfg.train.log_every = 30;
        cfg.runs = 2;
        let checked = cfg.validate().unwrap();
        let run = |checked_shaders: bool| {
            g.set_checked_shaders(checked_shaders);
            final_results(&g, &checked)
        };
        let with_checks = run(true);
        let trusted = run(false);
        assert_eq!(trusted, with_checks, "{setting:?}");
    }
}

/// The fused solvers give the same bits with the dictionary copied into each invocation (the
/// default on software adapters) as with the one copy in workgroup memory: the paper's
/// inference and FISTA (fixed iterations, and to a tolerance with converged members left alone)
/// in both settings that infer codes, at the paper's size and at an odd one (13 x 20, samples
/// not a multiple of the workgroup).
#[test]
fn private_dictionaries_give_the_bits_of_the_shared_one() {
    if gpu().is_none() {
        return;
    }
    let g = Arc::new(GpuBackend::request_blocking().expect("a second device"));
    for (setting, atoms, dim) in [
        (Setting::Unknown, 16, 8),
        (Setting::KnownDictionary, 16, 8),
        (Setting::KnownDictionary, 20, 13),
    ] {
        let mut cfg = Preset::UnknownZD.config();
        cfg.setting = setting;
        cfg.data.num_atoms = atoms;
        cfg.data.data_dim = dim;
        cfg.data.num_samples = 100;
        cfg.methods = every_method(setting);
        cfg.methods.push(MethodConfig::SparseCoding {
            inference: SolverConfig::Fista {
                steps: 3000,
                nonneg: false,
                tol: Some(1e-5),
            },
        });
        cfg.train.steps = 40;
        cfg.train.log_every = 20;
        cfg.runs = 2;
        let checked = cfg.validate().unwrap();
        let run = |private: bool| {
            g.set_private_dictionaries(Some(private));
            final_results(&g, &checked)
        };
        let shared = run(false);
        let private = run(true);
        assert_eq!(private, shared, "{setting:?} {atoms} x {dim}");
    }
}

/// The device the tests run on passes the parity probe that `--backend gpu` and auto run before
/// they use a GPU (fused SAE training and the paper's inference against the CPU). Without it
/// a kernel that breaks only the probe's case sends every GPU run back to the CPU with a note
/// while the tests above stay green (a private copy of the weights in the training kernel once
/// did).
#[test]
fn the_test_device_passes_the_parity_probe() {
    let Some(g) = gpu() else { return };
    pollster::block_on(sparse_playground::core::select::probe(&*g)).expect("the parity probe");
}

/// The results of `checked` run to the end on `b`, which must not fail.
fn run_to_end(b: Arc<dyn Backend>, checked: &CheckedConfig) -> Results {
    let mut exp = Experiment::new(checked.clone(), b.clone());
    while !exp.is_done() {
        exp.step(100);
        b.wait();
    }
    assert!(
        exp.backend_failure().is_none(),
        "{:?}",
        exp.backend_failure()
    );
    exp.results()
}

/// The results file (times left out) of `checked` run to the end on `g`.
fn final_results(g: &Arc<GpuBackend>, checked: &CheckedConfig) -> serde_json::Value {
    let mut v = serde_json::to_value(run_to_end(g.clone(), checked)).unwrap();
    strip_times(&mut v);
    v
}

/// On the GPU too, stacking the seeds gives the numbers each seed gives alone (each member's
/// arithmetic is independent of the others').
#[test]
fn gpu_stacks_equal_runs_one_by_one() {
    let Some(g) = gpu() else { return };
    let mut cfg = Preset::UnknownZD.config();
    cfg.methods = every_method(Setting::Unknown);
    cfg.data.num_samples = 128;
    cfg.train.steps = 40;
    cfg.train.log_every = 20;
    cfg.runs = 3;
    let checked = cfg.validate().unwrap();
    let run = |grouping| {
        let b: Arc<dyn Backend> = g.clone();
        let mut exp = Experiment::build(checked.clone(), b.clone(), grouping, None);
        while !exp.is_done() {
            exp.step(50);
            b.wait();
        }
        exp.results()
    };
    let (stacked, alone) = (run(Grouping::PerMethod), run(Grouping::PerRun));
    for (a, b) in stacked.methods.iter().zip(&alone.methods) {
        for (ra, rb) in a.runs.iter().zip(&b.runs) {
            for (x, y) in ra.log.iter().zip(&rb.log) {
                assert_eq!(
                    (x.step, x.code_mcc, x.dict_mcc, x.test_mse),
                    (y.step, y.code_mcc, y.dict_mcc, y.test_mse),
                    "{} seed {}",
                    a.name,
                    ra.seed
                );
            }
        }
    }
}

/// Sweep units on the GPU give the CPU's numbers: a small phase grid (FISTA on a known
/// dictionary) and a small experiment grid (SAE training), unit by unit and stacked (the units
/// of one delta, or of one N with their seeds, lambdas or TopK's k, as one stack per method
/// with per-member data, rates and k: the CLI's way). Success rates may differ only where a test signal sits on the tolerance (one
/// signal in ten at most); code MCC agrees within 1e-3. A stack sends fewer dispatches than
/// its units one by one: half as many for the scaling grid's two units per stack, which do
/// the same work; in the phase grid a stack runs FISTA until its slowest cell converges, so it
/// saves the other cells' dispatches only.
#[test]
fn sweep_units_on_the_gpu_match_the_cpu() {
    use sparse_playground::core::run::default_clock;
    use sparse_playground::core::sweep::{
        stack_groups, Axis, Param, SweepPreset, UnitResult, UnitRun, UnitStack,
    };
    if gpu().is_none() {
        return;
    }
    // A device of its own, so that other tests' work does not enter its counters.
    let g = Arc::new(GpuBackend::request_blocking().expect("a second device"));
    // N = 64: FISTA's fused kernel (dictionaries up to 64 x 64) with a signal per member.
    let mut phase = SweepPreset::Phase.config();
    phase.base.data.num_atoms = 64;
    phase.axes = vec![
        Axis::new(Param::Delta, vec![0.3, 0.8]),
        Axis::new(Param::Rho, vec![0.1, 0.5]),
    ];
    let mut scaling = SweepPreset::QuickScaling.config();
    scaling.base.train.steps = 40;
    scaling.base.train.log_every = 40;
    scaling.base.methods = vec![MethodConfig::Sae { bias: false }];
    scaling.axes = vec![Axis::new(Param::N, vec![16.0, 24.0])];
    scaling.seeds = 2;
    // Cells along lambda: one stack per N, each member at its own lambda (SAE's and sparse
    // coding's fused kernels).
    let mut lambdas = scaling.clone();
    lambdas.base.methods.push(MethodConfig::SparseCoding {
        inference: SolverConfig::Fista {
            steps: 40,
            nonneg: true,
            tol: None,
        },
    });
    lambdas.axes.push(Axis::new(Param::Lambda, vec![0.01, 0.2]));
    lambdas.seeds = 1;
    // Cells along TopK's k: the fused TopK SAE and the paper's inference with a TopK inside,
    // each member with its own k.
    let mut topks = lambdas.clone();
    topks.base.methods = vec![
        MethodConfig::TopkSae { k: 3, bias: true },
        MethodConfig::SparseCoding {
            inference: SolverConfig::AdamTopk {
                steps: 30,
                lr: 0.01,
                k: 3,
                inside: true,
            },
        },
    ];
    topks.axes[1] = Axis::new(Param::TopkK, vec![2.0, 6.0]);
    let agree = |cpu: &UnitResult, on_gpu: &UnitResult, how: &str| {
        assert_eq!(cpu.methods.len(), on_gpu.methods.len());
        for (c, q) in cpu.methods.iter().zip(&on_gpu.methods) {
            let (rc, rq) = (c.record.as_ref().unwrap(), q.record.as_ref().unwrap());
            assert!(
                (rc.code_mcc - rq.code_mcc).abs() < 1e-3,
                "{how}, cell {} seed {} {}: code MCC CPU {} GPU {}",
                cpu.cell,
                cpu.seed,
                c.name,
                rc.code_mcc,
                rq.code_mcc
            );
            if let (Some(a), Some(b)) = (c.recovery, q.recovery) {
                assert!(
                    (a.success_rate - b.success_rate).abs() <= 0.1 + 1e-9,
                    "{how}, cell {} seed {}: success CPU {} GPU {}",
                    cpu.cell,
                    cpu.seed,
                    a.success_rate,
                    b.success_rate
                );
            }
        }
    };
    for (sweep, saving) in [(phase, 1), (scaling, 2), (lambdas, 2), (topks, 2)] {
        let units = sweep.units();
        let before = g.counters();
        let mut cpu = Vec::new();
        for &unit in &units {
            let run = |b: Arc<dyn Backend>| {
                let mut r = UnitRun::new(&sweep, unit, b, default_clock);
                r.run_to_end();
                assert!(r.backend_failure().is_none());
                r.result()
            };
            let c = run(Arc::new(CpuBackend::new(1)));
            agree(&c, &run(g.clone()), "one by one");
            cpu.push(c);
        }
        let alone = g.counters().since(&before);
        let groups = stack_groups(&sweep, &units, 64);
        assert_eq!(groups.len(), 2, "one stack per delta, or per N");
        let before = g.counters();
        for group in groups {
            let mut stack = UnitStack::new(&sweep, &group, g.clone(), default_clock).unwrap();
            stack.run_to_end();
            assert!(stack.backend_failure().is_none());
            for (unit, got) in group.iter().zip(stack.results()) {
                assert_eq!((unit.cell, unit.seed), (got.cell, got.seed));
                let want = cpu
                    .iter()
                    .find(|c| (c.cell, c.seed) == (got.cell, got.seed));
                agree(want.unwrap(), &got, "stacked");
            }
        }
        let stacked = g.counters().since(&before);
        assert!(
            saving * stacked.dispatches <= alone.dispatches
                && stacked.dispatches < alone.dispatches,
            "{} units: stacked {stacked:?}, one by one {alone:?}",
            units.len()
        );
    }
}

/// The paper's inference with the TopK inside the optimisation (kernel by kernel: TopK,
/// masked gradient, log-code Adam) on the GPU against the CPU, on a stack of dictionaries.
#[test]
fn topk_inside_inference_matches_the_cpu() {
    let Some(g) = gpu() else { return };
    let cpu = CpuBackend::new(1);
    let g: &GpuBackend = &g;
    let (members, dim, atoms, n) = (2, 8, 16, 64);
    let mut dict_values = random(members * dim * atoms, 21);
    for col in dict_values.chunks_mut(dim) {
        let norm = col.iter().map(|v| v * v).sum::<f32>().sqrt();
        col.iter_mut().for_each(|v| *v /= norm);
    }
    let x_values: Vec<f32> = random(dim * n, 22).iter().map(|v| v.abs()).collect();
    let run = |b: &dyn Backend, inside: bool| {
        let dict = b.upload(Shape::new(members, dim, atoms), &dict_values);
        let x = b.upload(Shape::new(1, dim, n), &x_values);
        let mut solver =
            solvers::AdamExp::new(b, dict, &x, &[0.01], 200, &[1e-2]).with_topk(b, &[3], inside);
        solver.run(b, &x, 120);
        solver.run(b, &x, 80);
        host(b, solver.codes())
    };
    for inside in [false, true] {
        let (want, got) = (run(&cpu, inside), run(g, inside));
        assert_close(&format!("topk codes, inside={inside}"), &got, &want, 2e-3);
    }
}

/// The fused inference kernel takes each step's Adam scalars from the host, as the kernel-by-
/// kernel path does: with betas, epsilon and a per-member learning rate that are not Adam's
/// defaults it agrees with the same steps run kernel by kernel on the CPU (it used to hard-code
/// 0.9, 0.999 and 1e-8 and compute its own bias corrections).
#[test]
fn fused_inference_takes_the_hosts_adam_scalars() {
    use sparse_playground::compute::AdamExpJob;
    let Some(g) = gpu() else { return };
    let cpu = CpuBackend::new(1);
    let g: &GpuBackend = &g;
    let (members, dim, atoms, n, steps) = (2, 6, 10, 40, 30);
    let dict_values: Vec<f32> = {
        let mut d = random(members * dim * atoms, 41);
        for col in d.chunks_mut(dim) {
            let norm = col.iter().map(|v| v * v).sum::<f32>().sqrt();
            col.iter_mut().for_each(|v| *v /= norm);
        }
        d
    };
    let x_values: Vec<f32> = random(dim * n, 42).iter().map(|v| v.abs()).collect();
    let (dshape, xshape, cshape) = (
        Shape::new(members, dim, atoms),
        Shape::new(1, dim, n),
        Shape::new(members, atoms, n),
    );
    // Step t of member i: beta1 0.5, beta2 0.9, eps 1e-3, its own learning rate.
    let schedule: Vec<AdamScalars> = (1..=steps)
        .flat_map(|t| {
            (0..members).map(move |i| {
                let lr = 0.05 * (i + 1) as f64;
                AdamScalars {
                    beta1: 0.5,
                    beta2: 0.9,
                    eps: 1e-3,
                    step_size: (lr / (1.0 - 0.5f64.powi(t))) as f32,
                    bias2_sqrt: (1.0 - 0.9f64.powi(t)).sqrt() as f32,
                }
            })
        })
        .collect();
    let (mse_scale, l1_scale) = (2.0 / dim as f32, [0.01f32]);
    let start = |b: &dyn Backend| {
        let u = b.upload(cshape, &vec![-2.0; cshape.len()]);
        let s = b.upload(cshape, &vec![(-2.0f32).exp(); cshape.len()]);
        (u, s, b.zeros(cshape), b.zeros(cshape))
    };
    // The reference: each step kernel by kernel on the CPU.
    let dict = cpu.upload(dshape, &dict_values);
    let x = cpu.upload(xshape, &x_values);
    let (mut u, mut s, mut m, mut v) = start(&cpu);
    let mut recon = cpu.zeros(Shape::new(members, dim, n));
    let mut grad = cpu.zeros(cshape);
    for step in schedule.chunks(members) {
        cpu.copy(&x, &mut recon);
        cpu.gemm(1.0, Op::n(&dict), Op::n(&s), -1.0, &mut recon);
        cpu.gemm(mse_scale, Op::t(&dict), Op::n(&recon), 0.0, &mut grad);
        cpu.adam_log_codes(&mut u, &mut s, &grad, &mut m, &mut v, &l1_scale, step);
    }
    let want = host(&cpu, &s);
    // The fused kernel, in one job.
    let gdict = g.upload(dshape, &dict_values);
    let gx = g.upload(xshape, &x_values);
    let (mut gu, mut gs, mut gm, mut gv) = start(g);
    let mut job = AdamExpJob {
        dict: &gdict,
        x: &gx,
        log_codes: &mut gu,
        codes: &mut gs,
        m: &mut gm,
        v: &mut gv,
        mse_scale,
        l1_scale: &l1_scale,
        scalars: &schedule,
        steps: steps as usize,
    };
    assert!(
        g.adam_exp_fused(&mut job),
        "these shapes have a fused kernel"
    );
    assert_close(
        "fused adam_exp with the host's scalars",
        &host(g, &gs),
        &want,
        2e-4,
    );
}

/// Per-member parameters past the arena's 64 KiB window (a stack of 9,000 members, 18,004
/// parameter words for FISTA's update) get a buffer of their own instead of an assertion.
#[test]
fn kernels_take_per_member_values_of_very_large_stacks() {
    let Some(g) = gpu() else { return };
    let cpu = CpuBackend::new(1);
    let g: &GpuBackend = &g;
    let members = 9000;
    let shape = Shape::new(members, 2, 1);
    let p0 = random(shape.len(), 51);
    let prev = random(shape.len(), 52);
    let threshold: Vec<f32> = (0..members).map(|i| (i % 7) as f32 * 0.1).collect();
    let momentum: Vec<f32> = (0..members).map(|i| (i % 5) as f32 * 0.2).collect();
    let (mut cs, mut ds) = pair(g, shape, &p0);
    let (cprev, dprev) = pair(g, shape, &prev);
    let (mut cy, mut dy) = pair(g, shape, &vec![0.0; shape.len()]);
    cpu.fista_update(&mut cs, &cprev, &mut cy, &threshold, &momentum, false);
    g.fista_update(&mut ds, &dprev, &mut dy, &threshold, &momentum, false);
    assert_close(
        "fista s, 9,000 members",
        &host(g, &ds),
        &host(&cpu, &cs),
        1e-6,
    );
    assert_close(
        "fista y, 9,000 members",
        &host(g, &dy),
        &host(&cpu, &cy),
        1e-6,
    );
}

/// `auto` compares speeds on the experiment itself: a timed slice on each backend gives a
/// positive rate of work (the same units the progress bar counts), and the GPU is chosen only
/// when it beats the CPU with all the runs the CPU would do at once.
#[test]
fn auto_compares_the_backends_on_the_experiments_own_shapes() {
    use sparse_playground::core::run::default_clock;
    use sparse_playground::core::select::{faster, work_rate};
    let Some(g) = gpu() else { return };
    let mut cfg = Preset::UnknownZD.config();
    cfg.train.steps = 400;
    cfg.runs = 2;
    let checked = cfg.validate().unwrap();
    let g: Arc<dyn Backend> = g;
    let on_gpu = pollster::block_on(work_rate(
        &checked,
        g,
        Grouping::PerMethodUpTo(8),
        None,
        default_clock,
    ))
    .unwrap();
    let on_cpu = pollster::block_on(work_rate(
        &checked,
        Arc::new(CpuBackend::new(1)),
        Grouping::PerRun,
        None,
        default_clock,
    ))
    .unwrap();
    // A worker's share alone (the page's time estimate per worker).
    let share = pollster::block_on(work_rate(
        &checked,
        Arc::new(CpuBackend::new(1)),
        Grouping::PerRun,
        Some(&[(0, 1)]),
        default_clock,
    ))
    .unwrap();
    for r in [on_gpu, on_cpu, share] {
        let r = r.expect("400 steps outlast the warm-up");
        assert!(r.is_finite() && r > 0.0, "{r}");
    }
    // The decision: the CPU's rate counts every run it runs at once.
    assert!(faster(Some(10.0), Some(6.0), 1, "x").0);
    let (gpu_wins, why) = faster(Some(10.0), Some(6.0), 2, "x");
    assert!(!gpu_wins, "two CPU runs at once do 12 steps/s");
    assert!(
        why.contains("computing on the CPU") && why.contains("12.000"),
        "{why}"
    );
    assert!(!faster(None, None, 1, "x").0, "too small to tell: the CPU");
}

/// What a run sends to the device: an SAE's, an MLP's or sparse coding's training is one
/// dispatch per many steps (the fused kernels), and each evaluation is one read-back (codes, dictionaries,
/// reconstructions and the last loss together); the numbers agree with the CPU's.
#[test]
fn fused_runs_dispatch_rarely_and_read_once_per_evaluation() {
    if gpu().is_none() {
        return;
    }
    // A device of its own, so that other tests' work does not enter its counters; MLPs fused
    // too where the adapter would train them kernel by kernel.
    let g = Arc::new(GpuBackend::request_blocking().expect("a second device"));
    g.set_fused_mlp(Some(true));
    let mlp = MethodConfig::Mlp {
        hidden: vec![32],
        bias: true,
    };
    for (preset, method) in [
        (Preset::UnknownZD, MethodConfig::Sae { bias: false }),
        (Preset::UnknownZD, mlp.clone()),
        (
            Preset::UnknownZD,
            MethodConfig::SparseCoding {
                inference: SolverConfig::Adam {
                    steps: 300,
                    lr: 3e-3,
                },
            },
        ),
        // The supervised objective of the known-codes setting.
        (Preset::KnownZ, MethodConfig::Sae { bias: true }),
        (Preset::KnownZ, mlp),
    ] {
        let mut cfg = preset.config();
        cfg.methods = vec![method.clone()];
        cfg.data.num_samples = 128;
        cfg.train.steps = 300;
        cfg.train.log_every = 150;
        cfg.runs = 2;
        let checked = cfg.validate().unwrap();
        let mut exp = Experiment::new(checked.clone(), g.clone());
        // The first evaluation (step 0, with its inference where there is one) and pipelines
        // out of the way.
        while exp.results().methods[0].runs[0].log.is_empty() {
            exp.step(1);
            g.wait();
        }
        let before = g.counters();
        while !exp.is_done() {
            exp.step(1000);
            g.wait();
        }
        let sent = g.counters().since(&before);
        // Two evaluations (steps 150 and 300), each one read-back of everything it scores.
        assert_eq!(sent.reads, 2, "{method:?}: {sent:?}");
        // 299 training steps: at most 200 per dispatch on a GPU, at least a few per dispatch
        // on a software one; plus a handful per evaluation (settle, encode, reconstruct).
        assert!(sent.dispatches <= 2 * 20 + 299 / 3, "{method:?}: {sent:?}");
        let cpu = {
            let mut e = Experiment::new(checked, Arc::new(CpuBackend::new(1)));
            while !e.is_done() {
                e.step(1000);
            }
            e.results()
        };
        let got = exp.results();
        // The supervised objective amplifies rounding where a latent is active on few samples
        // (see `fused_encoder_training_matches_the_step_by_step_path`): the tolerances of
        // `short_runs_of_every_method_agree_with_the_cpu` (measured here: 8e-3 in code MCC).
        let (mcc_tol, loss_tol) = if preset == Preset::KnownZ {
            (0.02, 1e-2)
        } else {
            (1e-3, 1e-3)
        };
        for (ra, rb) in got.methods[0].runs.iter().zip(&cpu.methods[0].runs) {
            for (x, y) in ra.log.iter().zip(&rb.log) {
                assert!((x.code_mcc - y.code_mcc).abs() < mcc_tol, "{x:?} vs {y:?}");
                let (u, v) = (x.train_loss.unwrap_or(0.0), y.train_loss.unwrap_or(0.0));
                assert!((u - v).abs() <= loss_tol * v.abs() + 1e-6, "{x:?} vs {y:?}");
            }
        }
    }
}

/// An experiment on activations computes on the GPU without ever waiting for a read when it
/// polls (the page's way: a browser cannot block): whenever its reads are not in, `advance`
/// returns and says so, and the run goes on where it stopped once they are. Driven that way
/// it gives the numbers of the same run waiting for each read (the CLI's way), and both agree
/// with the CPU. Every kind of read is met: evaluations, resampling's probe and state, the
/// analysis' start and each of its points.
#[test]
fn experiments_on_activations_poll_their_reads_on_the_gpu() {
    use sparse_playground::core::real::RealExperiment;
    use sparse_playground::core::run::default_clock;
    let Some(g) = gpu() else { return };
    let (acts, cfg) = small_real_experiment();
    let backend: Arc<dyn Backend> = g.clone();
    let run = |exp: RealExperiment, poll: bool| {
        let mut exp = if poll { exp.polling() } else { exp };
        let mut waits = 0;
        while !exp.is_done() {
            exp.advance(25).expect("advance");
            if exp.waiting() {
                assert!(poll, "a run that waits for its reads is never left waiting");
                waits += 1;
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        }
        let json = exp.results(None).to_json();
        let mut v: serde_json::Value = serde_json::from_str(&json).expect("results");
        strip_times(&mut v);
        (v, waits)
    };
    let make = |b: Arc<dyn Backend>| {
        RealExperiment::new(cfg.clone(), &acts, b, default_clock).expect("a valid experiment")
    };
    let (waited, no_waits) = run(make(Arc::clone(&backend)), false);
    let (polled, waits) = run(make(backend), true);
    assert_eq!(no_waits, 0);
    assert!(waits > 0, "the polled run never found a read missing");
    assert_eq!(polled, waited, "polled and waited-for runs differ");
    let (cpu, _) = run(make(Arc::new(CpuBackend::new(1))), false);
    for m in 0..3 {
        let method = &polled["methods"][m];
        assert!(method["error"].is_null(), "{method}");
        let resampled = method["resampled"].as_array().map_or(0, Vec::len);
        assert!(
            resampled > 0 || m == 2,
            "method {m} resampled nothing: {method}"
        );
        for key in ["explained_variance", "l0", "amortisation_gap"] {
            let (got, want) = (method[key].as_f64(), cpu["methods"][m][key].as_f64());
            let (got, want) = (got.expect(key), want.expect(key));
            assert!(
                (got - want).abs() <= 1e-3 * (1.0 + want.abs()),
                "method {m}, {key}: GPU {got}, CPU {want}"
            );
        }
    }
}

/// Synthetic activations (600 tokens of 12 dimensions) and an experiment on them with an SAE,
/// LISTA and sparse coding, resampling at step 20 of 40 (a high rate kills latents by then).
fn small_real_experiment() -> (
    sparse_playground::formats::activations::Activations,
    sparse_playground::core::real::RealConfig,
) {
    use sparse_playground::core::config::DataConfig;
    use sparse_playground::core::real::{synthetic_activations, RealConfig};
    let data = DataConfig {
        num_atoms: 24,
        data_dim: 12,
        sparsity_k: 3,
        num_samples: 600,
        ..DataConfig::default()
    };
    let (acts, _) = synthetic_activations(&data, 5);
    let mut cfg = RealConfig {
        latents: 48,
        methods: vec![
            MethodConfig::Sae { bias: true },
            MethodConfig::Lista { iterations: 1 },
            MethodConfig::SparseCoding {
                inference: SolverConfig::Fista {
                    steps: 30,
                    nonneg: true,
                    tol: None,
                },
            },
        ],
        seed: 3,
        ..RealConfig::default()
    };
    cfg.train.steps = 40;
    cfg.train.log_every = 20;
    cfg.train.l1_penalty = 20.0;
    cfg.train.lr = 1e-2;
    cfg.train.batch_size = Some(64);
    cfg.schedule.resample_every = 20;
    cfg.schedule.probe_tokens = 128;
    cfg.gap.tokens = 48;
    cfg.gap.iterations = vec![2];
    cfg.gap.max_iterations = 300;
    cfg.gap.tol = 1e-3;
    (acts, cfg)
}

/// `auto` on activations: a trial of the experiment times it on the GPU as on the CPU (the
/// trial's reads polled, its resampling waited for), a software adapter is refused (taken only
/// when asked for), a tensor past the binding limit is refused with the sizes, and the faster
/// estimate wins, counting the CPU's workers.
#[test]
fn auto_on_activations_times_a_trial_on_each_backend() {
    use sparse_playground::core::real::estimate_seconds;
    use sparse_playground::core::run::default_clock;
    use sparse_playground::core::select::{
        faster_on_activations, gpu_fits_activations, gpu_for_activations,
    };
    let Some(g) = gpu() else { return };
    let (acts, cfg) = small_real_experiment();
    for b in [g.clone() as Arc<dyn Backend>, Arc::new(CpuBackend::new(1))] {
        let e = estimate_seconds(&cfg, &acts, b, default_clock).expect("an estimate");
        assert_eq!(e.per_method.len(), 3);
        for s in e
            .per_method
            .iter()
            .chain([&e.seconds, &e.training, &e.analysis])
        {
            assert!(s.is_finite() && *s > 0.0, "{e:?}");
        }
    }
    let asked = pollster::block_on(gpu_for_activations(&cfg, acts.tokens, acts.dim, false));
    assert!(asked.is_ok(), "{:?}", asked.err());
    let auto = pollster::block_on(gpu_for_activations(&cfg, acts.tokens, acts.dim, true));
    if g.adapter().software {
        let Err(why) = auto else {
            panic!("auto took a software adapter")
        };
        assert!(why.contains("software"), "{why}");
    } else {
        assert!(auto.is_ok(), "{:?}", auto.err());
    }
    let mut wide = cfg.clone();
    wide.latents = 1 << 20;
    let why = gpu_fits_activations(&g, &wide, 1 << 20, 12).unwrap_err();
    assert!(why.contains("binds at most"), "{why}");
    let (gpu_wins, why) = faster_on_activations(30.0, 75.0, 2, "A100");
    assert!(gpu_wins);
    assert!(
        why.contains("A100") && why.contains("30 s") && why.contains("1 min 15 s"),
        "{why}"
    );
    assert!(why.contains("with 2 workers") && why.ends_with("computing on the GPU"));
    let (gpu_wins, why) = faster_on_activations(80.0, 75.0, 1, "A100");
    assert!(!gpu_wins && why.ends_with("computing on the CPU"), "{why}");
    assert!(!faster_on_activations(f64::NAN, 75.0, 1, "A100").0);
}

/// Wall times out of a results file (they differ between runs of the same numbers).
fn strip_times(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            map.retain(|k, _| !k.contains("wall") && k != "backend");
            map.values_mut().for_each(strip_times);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_times),
        _ => {}
    }
}
