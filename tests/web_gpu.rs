//! The GPU backend on WebGPU in headless Chromium (SwiftShader's Vulkan in CI; the flags are
//! in webdriver.json): kernels against the CPU reference with stated tolerances, the fused
//! solver, and whole experiments through the page's handle, with the automatic choice.
//!
//! Without an adapter these tests skip with a message, unless the build had
//! `SPARSE_PLAYGROUND_REQUIRE_GPU=1` (`.ci/run` sets it): then a missing adapter fails them.
#![cfg(target_arch = "wasm32")]

use js_sys::Reflect;
use sparse_playground::compute::gpu::GpuBackend;
use sparse_playground::compute::{AdamScalars, Backend, CpuBackend, Op, Shape, Tensor};
use sparse_playground::core::config::{MethodConfig, Preset, SolverConfig};
use sparse_playground::core::rng::Rng;
use sparse_playground::core::solvers::AdamExp;
use sparse_playground::wasm_api::Playground;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

async fn gpu() -> Option<GpuBackend> {
    match GpuBackend::request().await {
        Ok(g) => Some(g),
        Err(e) => {
            assert!(
                option_env!("SPARSE_PLAYGROUND_REQUIRE_GPU") != Some("1"),
                "SPARSE_PLAYGROUND_REQUIRE_GPU=1 but no WebGPU adapter: {e}"
            );
            web_sys_log(&format!("skipping WebGPU tests: {e}"));
            None
        }
    }
}

fn web_sys_log(message: &str) {
    js_sys::eval(&format!("console.log({message:?})")).ok();
}

fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..len).map(|_| rng.normal() as f32).collect()
}

async fn host(b: &dyn Backend, t: &Tensor) -> Vec<f32> {
    let read = b.read(t);
    b.flush();
    read.await.expect("read back")
}

fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= tol * (1.0 + b.abs()),
            "{what}[{i}]: WebGPU {a} vs CPU {b} (tolerance {tol})"
        );
    }
}

#[wasm_bindgen_test]
async fn kernels_match_the_cpu_on_webgpu() {
    let Some(g) = gpu().await else { return };
    let cpu = CpuBackend::new(1);
    // A product with a broadcast operand and a transpose.
    let a_shape = Shape::new(1, 24, 8);
    let b_shape = Shape::new(3, 24, 100);
    let c_shape = Shape::new(3, 8, 100);
    let (av, bv) = (random(a_shape.len(), 1), random(b_shape.len(), 2));
    let mut outs = Vec::new();
    for b in [&g as &dyn Backend, &cpu] {
        let a = b.upload(a_shape, &av);
        let x = b.upload(b_shape, &bv);
        let mut c = b.zeros(c_shape);
        b.gemm(0.5, Op::t(&a), Op::n(&x), 0.0, &mut c);
        b.relu(&mut c);
        b.topk_columns(&mut c, &[3]);
        outs.push(host(b, &c).await);
    }
    assert_eq!(g.health(), Ok(()), "the device reported no error");
    assert_close("gemm + relu + topk", &outs[0], &outs[1], 1e-5);
    // The tiled products (every side at least 32, edges inside a tile), as the browser's WGSL
    // compiler builds them: A transposed, then B transposed.
    for (ta, tb) in [(true, false), (false, true)] {
        let (m, n, k) = (70, 65, 40);
        let a_shape = if ta {
            Shape::new(2, k, m)
        } else {
            Shape::new(2, m, k)
        };
        let b_shape = if tb {
            Shape::new(2, n, k)
        } else {
            Shape::new(2, k, n)
        };
        let (av, bv) = (random(a_shape.len(), 3), random(b_shape.len(), 4));
        let mut outs = Vec::new();
        for b in [&g as &dyn Backend, &cpu] {
            let a = b.upload(a_shape, &av);
            let x = b.upload(b_shape, &bv);
            let mut c = b.zeros(Shape::new(2, m, n));
            let op = |t, tr| if tr { Op::t(t) } else { Op::n(t) };
            b.gemm(1.0, op(&a, ta), op(&x, tb), 0.0, &mut c);
            outs.push(host(b, &c).await);
        }
        assert_close(
            &format!("tiled gemm ta={ta} tb={tb}"),
            &outs[0],
            &outs[1],
            1e-4,
        );
    }
    // The fused log-code step against the CPU.
    let shape = Shape::new(2, 16, 64);
    let (u0, g0) = (random(shape.len(), 3), random(shape.len(), 4));
    let s = AdamScalars {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        step_size: 0.01,
        bias2_sqrt: 0.04,
    };
    let mut outs = Vec::new();
    for b in [&g as &dyn Backend, &cpu] {
        let mut u = b.upload(shape, &u0);
        let mut codes = b.zeros(shape);
        b.exp(&u, &mut codes);
        let grad = b.upload(shape, &g0);
        let (mut m, mut v) = (b.zeros(shape), b.zeros(shape));
        b.adam_log_codes(&mut u, &mut codes, &grad, &mut m, &mut v, &[0.05], &[s]);
        outs.push(host(b, &codes).await);
    }
    assert_close("adam_log_codes", &outs[0], &outs[1], 1e-5);
    // The fused per-sample inference (hundreds of steps per dispatch).
    let dshape = Shape::new(2, 8, 16);
    let mut dv = random(dshape.len(), 5);
    for col in dv.chunks_mut(8) {
        let n = col.iter().map(|v| v * v).sum::<f32>().sqrt();
        col.iter_mut().for_each(|v| *v /= n);
    }
    let xv: Vec<f32> = random(8 * 64, 6).iter().map(|v| v.abs()).collect();
    let mut outs = Vec::new();
    for b in [&g as &dyn Backend, &cpu] {
        let x = b.upload(Shape::new(1, 8, 64), &xv);
        let mut solver = AdamExp::new(b, b.upload(dshape, &dv), &x, &[0.01], 300, &[3e-3]);
        solver.run(b, &x, 300);
        outs.push(host(b, solver.codes()).await);
    }
    assert_close("fused adam_exp", &outs[0], &outs[1], 2e-3);
}

fn small() -> JsValue {
    let mut cfg = Preset::UnknownZD.config();
    cfg.methods = vec![
        MethodConfig::Sae { bias: false },
        MethodConfig::SparseCoding {
            inference: SolverConfig::Adam {
                steps: 100,
                lr: 3e-3,
            },
        },
    ];
    cfg.data.num_samples = 128;
    cfg.train.steps = 40;
    cfg.train.log_every = 20;
    cfg.runs = 2;
    serde_wasm_bindgen::to_value(&cfg).unwrap()
}

fn options(backend: &str) -> JsValue {
    let o = js_sys::Object::new();
    Reflect::set(&o, &"backend".into(), &backend.into()).unwrap();
    o.into()
}

fn info(pg: &Playground, key: &str) -> JsValue {
    Reflect::get(&pg.backend_info().unwrap(), &key.into()).unwrap()
}

/// Yield to the browser's event loop (where WebGPU's reads complete).
async fn tick() {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let global = js_sys::global();
        let set_timeout = Reflect::get(&global, &"setTimeout".into()).unwrap();
        let f: js_sys::Function = set_timeout.into();
        f.call2(&global, &resolve, &JsValue::from(0)).unwrap();
    });
    wasm_bindgen_futures::JsFuture::from(promise).await.unwrap();
}

/// The fused training kernels compile under the browser's WGSL compiler and give the CPU's
/// numbers: an SAE with bias, a TopK SAE and MLPs with one hidden layer (with bias, and with
/// top-k), 45 steps in two calls (the second past one dispatch on a software adapter).
#[wasm_bindgen_test]
async fn fused_encoder_training_matches_the_cpu_on_webgpu() {
    use sparse_playground::core::models::{DecoderInit, EncoderModel, EncoderSpec, Objective};
    let Some(g) = gpu().await else { return };
    let cpu = CpuBackend::new(1);
    let (dim, atoms, n) = (8, 16, 100);
    let x_values: Vec<f32> = random(dim * n, 41).iter().map(|v| v.abs()).collect();
    // True codes for the supervised objective (the known-codes setting): three active each.
    let target_values: Vec<f32> = random(atoms * n, 42)
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
    // (hidden widths, biases, top-k, the supervised objective instead of the reconstruction)
    for (hidden, bias, topk, sup) in [
        (vec![], true, None, false),
        (vec![], false, Some(3), false),
        (vec![24], true, None, false),
        (vec![32], false, Some(3), false),
        (vec![], true, None, true),
        (vec![24], true, Some(3), true),
    ] {
        let mut outputs = Vec::new();
        for b in [&g as &dyn Backend, &cpu] {
            let x = b.upload(Shape::new(1, dim, n), &x_values);
            let targets = b.upload(Shape::new(1, atoms, n), &target_values);
            let t = sup.then_some(&targets);
            let spec = EncoderSpec {
                hidden: hidden.clone(),
                topk,
                bias,
            };
            let (decoder, objective) = if sup {
                (DecoderInit::None, Objective::Supervised)
            } else {
                (
                    DecoderInit::Learned,
                    Objective::Reconstruction {
                        l1_penalty: vec![0.05],
                    },
                )
            };
            let mut model = EncoderModel::new(
                b,
                &mut [Rng::new(50), Rng::new(51)],
                &spec,
                dim,
                atoms,
                decoder,
                objective,
                &[1e-2],
            );
            model.train_steps(b, &x, t, 5, false);
            // The supervised objective's gradient cancels where a latent is active on few
            // samples, so rounding (f64 sums on the CPU) can meet Adam's eps there and grow
            // over many steps (see tests/gpu.rs): a few steps here, each moving every
            // parameter by about the learning rate, so a wrong gradient still shows.
            model.train_steps(b, &x, t, if sup { 3 } else { 40 }, true);
            model.settle(b);
            let mut values = Vec::new();
            for p in model.params() {
                values.extend(host(b, p).await);
            }
            values.extend(host(b, model.loss()).await);
            outputs.push(values);
        }
        assert_close(
            &format!("fused training, hidden={hidden:?} bias={bias} topk={topk:?} sup={sup}"),
            &outputs[0],
            &outputs[1],
            2e-3,
        );
    }
}

#[wasm_bindgen_test]
async fn an_experiment_runs_on_webgpu_and_agrees_with_the_cpu() {
    if gpu().await.is_none() {
        return;
    }
    let mut pg = Playground::create(small(), options("gpu")).await.unwrap();
    assert_eq!(
        info(&pg, "kind").as_string().as_deref(),
        Some("gpu"),
        "{:?}",
        info(&pg, "notice").as_string()
    );
    let mut slices = 0;
    while !pg.run_for(30.0) {
        tick().await;
        slices += 1;
        assert!(slices < 20_000, "the run never finished");
    }
    let gpu = sparse_playground::Results::from_json(&pg.results_json()).unwrap();
    assert_eq!(gpu.backend.as_ref().map(|b| b.kind.as_str()), Some("gpu"));
    let mut cpu_pg = Playground::new(small()).unwrap();
    while !cpu_pg.run_for(50.0) {}
    let cpu = sparse_playground::Results::from_json(&cpu_pg.results_json()).unwrap();
    for (a, b) in gpu.methods.iter().zip(&cpu.methods) {
        for (ra, rb) in a.runs.iter().zip(&b.runs) {
            let (x, y) = (ra.log.last().unwrap(), rb.log.last().unwrap());
            assert_eq!(x.step, y.step);
            assert!(
                (x.code_mcc - y.code_mcc).abs() < 0.02,
                "{}: {} vs {}",
                a.name,
                x.code_mcc,
                y.code_mcc
            );
        }
    }
}

#[wasm_bindgen_test]
async fn auto_prefers_the_cpu_to_a_software_adapter_and_says_so() {
    let pg = Playground::create(small(), options("auto")).await.unwrap();
    let kind = info(&pg, "kind").as_string().unwrap();
    let notice = info(&pg, "notice").as_string();
    match gpu().await {
        Some(g) if g.adapter().software => {
            assert_eq!(kind, "cpu");
            assert!(notice.unwrap_or_default().contains("software"));
        }
        Some(_) => assert_eq!(kind, "gpu"),
        None => {
            assert_eq!(kind, "cpu");
            assert!(notice.is_some(), "a fallback always says why");
        }
    }
    assert!(Playground::create(small(), options("tpu")).await.is_err());
}
