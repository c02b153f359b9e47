//! `sparse-playground bench`: our engine against PyTorch and scikit-learn, side by side, in one
//! run on one machine with the same thread count. The peer is bench/reference.py, installed into
//! bench/.venv (pinned by bench/requirements.txt) on first use.

use clap::Args;
use serde_json::Value;
use sparse_playground::compute::gpu::{GpuBackend, GpuCounters};
use sparse_playground::compute::{Backend, Compute, CpuBackend, Op, Operand, Shape, SmallKernel};
use sparse_playground::core::config::{DataConfig, MethodConfig, Preset, Setting, SolverConfig};
use sparse_playground::core::flops;
use sparse_playground::core::microbench;
use sparse_playground::core::rng::Rng;
use sparse_playground::core::run::default_clock;
use sparse_playground::core::solvers;
use sparse_playground::core::sparse_coding::SparseCodingModel;
use sparse_playground::core::Matrix;
use sparse_playground::{Dataset, Experiment};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// paper (N=16, M=8, K=3, n=1024), large (N=1024, M=256, K=16, n=4096) or all.
    #[arg(long, default_value = "all")]
    pub size: String,
    /// Threads for both sides (default: 1 at the paper size, all cores at the large size).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Minimum seconds timed per item.
    #[arg(long, default_value_t = 1.0)]
    pub min_secs: f64,
    /// Training steps of the end-to-end unknown-Z&D preset (paper size; 0 skips it).
    #[arg(long, default_value_t = 20_000)]
    pub preset_steps: u64,
    /// Only our side (no Python peer).
    #[arg(long)]
    pub no_peer: bool,
    /// Skip the browser column (the engine as WebAssembly in headless Chromium).
    #[arg(long)]
    pub no_browser: bool,
    /// Also write every measurement as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Add the GPU column (wgpu: Vulkan, Metal or DX12): stacks of paper-size problems and the
    /// large sizes, beside the CPU on the same machine.
    #[arg(long)]
    pub gpu: bool,
    /// With --gpu: time PyTorch's CUDA peer of the GPU column (bench/gpu_reference.py: the same
    /// SAE step, stacked, eager and as a CUDA graph, and at the large sizes) and print both side
    /// by side. Runs `python3` (or bench/.venv's python where there is one), which must import a
    /// CUDA build of torch: for a machine with an NVIDIA GPU.
    #[arg(long)]
    pub gpu_peer: bool,
    /// Skip the page column (the default preset in the built site, worker pool, against the
    /// CLI on the same cores).
    #[arg(long)]
    pub no_page: bool,
    /// Add the sweep column: the phase-diagram preset (20 x 20 cells, FISTA at N = 256, 10
    /// trials each) in cells per second on every CPU core, on the GPU with --gpu, and in the
    /// built site in headless Chromium unless --no-page. `--size none` skips the CPU sizes and
    /// the browser microbenchmarks (the page, GPU and sweep columns run as asked).
    #[arg(long)]
    pub sweeps: bool,
    /// With --gpu and --sweeps: the GPU only in the sweep column (its stacked and one-by-one
    /// rows), not the GPU column of stacks and large sizes.
    #[arg(long)]
    pub gpu_sweeps_only: bool,
    /// With --gpu: only these items of the GPU column's stack table (comma-separated, e.g.
    /// `mlp256_train,mlp256_train_kbk`; `products` for its table of products), without its
    /// checks, private-dictionary and large-size rows: one kernel's before and after in
    /// seconds instead of minutes.
    #[arg(long, value_delimiter = ',')]
    pub gpu_items: Option<Vec<String>>,
    /// Add the real-activation column: tokens per second of an SAE training step on batches
    /// of 4,096 tokens at the shipped sample's width with 16x expansion (576 x 9,216) and at
    /// the paper's LLM dictionary (768 x 16,896), on every CPU core beside PyTorch.
    #[arg(long)]
    pub real: bool,
}

struct Size {
    name: &'static str,
    data: DataConfig,
    default_threads: usize,
}

fn sizes(which: &str, cores: usize) -> Result<Vec<Size>, String> {
    let paper = Size {
        name: "paper",
        data: DataConfig::default(),
        default_threads: 1,
    };
    let large = Size {
        name: "large",
        data: DataConfig {
            num_atoms: 1024,
            data_dim: 256,
            sparsity_k: 16,
            num_samples: 4096,
            ..DataConfig::default()
        },
        default_threads: cores,
    };
    match which {
        "paper" => Ok(vec![paper]),
        "large" => Ok(vec![large]),
        "all" => Ok(vec![paper, large]),
        "none" => Ok(vec![]),
        other => Err(format!("unknown size `{other}`: paper, large, all or none")),
    }
}

/// One timed item: steps per second and FLOPs per step (for GFLOP/s).
#[derive(Clone, Debug, serde::Serialize)]
struct Timing {
    steps_per_sec: f64,
    flops_per_step: f64,
}

/// Run `step` until `min_secs` have passed (after a warm-up), return calls per second.
fn time_it(min_secs: f64, step: impl FnMut()) -> f64 {
    microbench::time_calls(default_clock, min_secs, step)
}

fn ours(size: &Size, threads: usize, min_secs: f64) -> BTreeMap<String, Timing> {
    items(&CpuBackend::new(threads), &size.data, min_secs, "ours")
}

/// Every timed item at the size of `d` on backend `b`.
fn items(b: &dyn Backend, d: &DataConfig, min_secs: f64, label: &str) -> BTreeMap<String, Timing> {
    let data = Dataset::generate(d, 0);
    let (dim, n_atoms, n, k) = (d.data_dim, d.num_atoms, d.num_samples, d.sparsity_k);
    let mut out = BTreeMap::new();
    let mut put = |name: &str, sps: f64, fl: f64| {
        eprintln!("  {label:<5} {name:<18} {sps:>12.2} steps/s");
        out.insert(
            name.to_string(),
            Timing {
                steps_per_sec: sps,
                flops_per_step: fl,
            },
        );
    };
    let x = microbench::tensor(b, &data.train_signals);
    // The items the browser column also times come from the library, so both run the same code.
    let sae = microbench::sae_train(b, d, default_clock, min_secs);
    put("sae_train", sae.steps_per_sec, sae.flops_per_step);
    for (name, hidden, topk) in [
        ("topk_sae_train", vec![], Some(k)),
        ("mlp32_train", vec![32], None),
        ("mlp256_train", vec![256], None),
    ] {
        let mut model = microbench::encoder(b, 1, 1, d, &hidden, topk);
        let sps = time_it(min_secs, || {
            model.train_step(b, &x, None, false);
            b.flush();
        });
        let w = flops::widths(dim, &hidden, n_atoms);
        put(
            name,
            sps,
            flops::encoder_train_step(&w, n, false, topk.is_some(), true),
        );
    }
    let mut sc = SparseCodingModel::new(b, &mut [Rng::new(1)], dim, n_atoms, n, &[0.01], &[1e-3]);
    let sps = time_it(min_secs, || {
        sc.train_step(b, &x, None, false);
        b.flush();
    });
    put(
        "sc_train",
        sps,
        flops::sparse_coding_train_step(dim, n_atoms, n),
    );

    let ito = microbench::ito_step(b, d, default_clock, min_secs);
    put("ito_step", ito.steps_per_sec, ito.flops_per_step);

    let x_test = microbench::tensor(b, &data.test_signals);
    let model = microbench::encoder(b, 1, 1, d, &[], None);
    let mut x_hat = b.zeros(Shape::new(1, dim, n));
    let sps = time_it(min_secs, || {
        let codes = model.encode(b, &x_test);
        let dict = model.normalized_dictionary(b).expect("learned decoder");
        b.gemm(1.0, Op::n(&dict), Op::n(&codes), 0.0, &mut x_hat);
        b.flush();
    });
    put(
        "sae_infer",
        sps,
        flops::encoder_forward(&[dim, n_atoms], n, false, false) + 2.0 * (dim * n_atoms * n) as f64,
    );
    let mut omp_flops = 0.0;
    let sps = time_it(min_secs, || {
        omp_flops = solvers::omp(&data.dictionary, &data.test_signals, k).flops;
    });
    put("omp_encode", sps, omp_flops);
    let fista_iters = 500;
    let sps = time_it(min_secs, || {
        solvers::fista(
            b,
            &data.dictionary,
            &data.test_signals,
            0.01,
            fista_iters,
            true,
            None,
        );
    });
    put(
        "fista_encode",
        sps,
        fista_iters as f64 * flops::fista_iteration(dim, n_atoms, n),
    );
    out
}

/// Measured single-precision matrix-product peak of this machine at `threads` (our gemm on a
/// large square product, the best of a few repetitions).
fn sgemm_peak(threads: usize) -> f64 {
    let backend = CpuBackend::new(threads);
    let size = 2048;
    let a = Matrix::from_fn(size, size, |i, j| ((i * 7 + j * 3) % 17) as f32 * 0.01);
    let mut c = Matrix::zeros(size, size);
    let mut best = 0.0f64;
    for _ in 0..5 {
        let t = Instant::now();
        Compute::gemm(
            &backend,
            1.0,
            Operand::from(&a),
            Operand::from(&a),
            0.0,
            c.as_mut_slice(),
            size,
            size,
        );
        best = best.max(2.0 * (size as f64).powi(3) / t.elapsed().as_secs_f64());
    }
    best / 1e9
}

/// The products one training step runs at this size, on `threads` threads, timed through the
/// `gemm` crate alone and through the backend's dispatch with this machine's small-shape kernel
/// (which sends a product to whichever it was measured to win on). Prints a table and returns
/// it as JSON.
fn products(d: &DataConfig, threads: usize, min_secs: f64) -> Value {
    let (n_at, dim, n) = (d.num_atoms, d.data_dim, d.num_samples);
    // (label, m, n, k, op(A) transposed, op(B) transposed)
    let shapes = [
        ("encode W X", n_at, n, dim, false, false),
        ("decode D S", dim, n, n_at, false, false),
        ("dS = D^T R", n_at, n, dim, true, false),
        ("dD = R S^T", dim, n_at, n, false, true),
        ("dW = G X^T", n_at, dim, n, false, true),
        ("mlp256 W1 X", 256, n, dim, false, false),
        ("mlp256 W2 H", n_at, n, 256, false, false),
        ("mlp256 W2^T G", 256, n, n_at, true, false),
        ("mlp256 G H^T", n_at, 256, n, false, true),
        ("mlp256 G1 X^T", 256, dim, n, false, true),
    ];
    let small = SmallKernel::detect();
    let builds = [
        CpuBackend::with_small_kernel(threads, SmallKernel::Off),
        CpuBackend::with_small_kernel(threads, small),
    ];
    println!(
        "{:<14} {:>16} {:>14} {:>16}",
        "product",
        "m x n x k",
        "gemm GFLOP/s",
        format!("{small:?} GFLOP/s")
    );
    println!(
        "{:<14} {:>16} {:>14} {:>16}",
        "", "", "(crate alone)", "(dispatched)"
    );
    let mut rows = Vec::new();
    for (label, m, n, k, ta, tb) in shapes {
        let a = Matrix::from_fn(m, k, |i, j| ((i * 7 + j * 3) % 17) as f32 * 0.01);
        let b = Matrix::from_fn(k, n, |i, j| ((i * 5 + j * 11) % 13) as f32 * 0.01);
        let a_stored = if ta { a.transpose() } else { a };
        let b_stored = if tb { b.transpose() } else { b };
        fn op(x: &Matrix, t: bool) -> Operand<'_> {
            let o = Operand::from(x);
            if t {
                o.t()
            } else {
                o
            }
        }
        let mut c = vec![0f32; m * n];
        let rates: Vec<f64> = builds
            .iter()
            .map(|backend| {
                let calls = time_it(min_secs / 4.0, || {
                    Compute::gemm(
                        backend,
                        1.0,
                        op(&a_stored, ta),
                        op(&b_stored, tb),
                        0.0,
                        &mut c,
                        m,
                        n,
                    );
                });
                calls * 2.0 * (m * n * k) as f64 / 1e9
            })
            .collect();
        println!(
            "{label:<14} {:>16} {:>14.1} {:>16.1}",
            format!("{m}x{n}x{k}"),
            rates[0],
            rates[1]
        );
        rows.push(serde_json::json!({
            "product": label, "m": m, "n": n, "k": k,
            "gemm_crate_gflops": rates[0], "dispatched_gflops": rates[1],
        }));
    }
    serde_json::json!({ "small_kernel": format!("{small:?}"), "rows": rows })
}

fn preset_ours(steps: u64) -> f64 {
    let mut cfg = Preset::UnknownZD.config();
    cfg.train.steps = steps;
    // As the peer (bench/reference.py) evaluates: every 1000 steps.
    cfg.train.log_every = 1000;
    cfg.runs = 1;
    debug_assert_eq!(cfg.setting, Setting::Unknown);
    debug_assert!(matches!(
        cfg.methods[1],
        MethodConfig::SaeIto {
            inference: SolverConfig::Adam { .. },
            ..
        }
    ));
    let checked = cfg.validate().expect("preset is valid");
    let start = Instant::now();
    let mut exp = Experiment::new(checked, Arc::new(CpuBackend::new(1)));
    while !exp.is_done() {
        exp.step(1000);
    }
    let wall = start.elapsed().as_secs_f64();
    for m in exp.results().methods {
        let s = m.summary;
        eprintln!(
            "  ours  preset {:<16} code MCC {:.3} dict MCC {:.3}",
            m.name,
            s.code_mcc.map_or(f64::NAN, |v| v.mean),
            s.dict_mcc.map_or(f64::NAN, |v| v.mean)
        );
    }
    wall
}

fn ensure_venv(root: &Path) -> Result<PathBuf, String> {
    let venv = root.join("bench/.venv");
    let python = venv.join("bin/python");
    let stamp = venv.join(".requirements-installed");
    let reqs = root.join("bench/requirements.txt");
    let wanted = std::fs::read_to_string(&reqs).map_err(|e| format!("{}: {e}", reqs.display()))?;
    if python.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(python);
    }
    eprintln!(
        "setting up the PyTorch peer in {} (first run: a few minutes)",
        venv.display()
    );
    let ok = |mut c: Command, what: &str| -> Result<(), String> {
        let status = c.status().map_err(|e| format!("{what}: {e}"))?;
        status
            .success()
            .then_some(())
            .ok_or_else(|| format!("{what} failed ({status})"))
    };
    if !python.exists() {
        let mut c = Command::new("python3");
        c.args(["-m", "venv"]).arg(&venv);
        ok(
            c,
            "python3 -m venv (on Debian: apt-get install python3-venv)",
        )?;
    }
    let mut c = Command::new(&python);
    c.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "-r",
    ])
    .arg(&reqs);
    ok(c, "pip install -r bench/requirements.txt")?;
    std::fs::write(&stamp, wanted).map_err(|e| e.to_string())?;
    Ok(python)
}

fn peer(
    python: &Path,
    root: &Path,
    size: &str,
    threads: usize,
    min_secs: f64,
    preset_steps: u64,
) -> Result<Value, String> {
    let only = if size != "paper" || preset_steps == 0 {
        "sae_train,topk_sae_train,mlp32_train,mlp256_train,sc_train,ito_step,sae_infer,sklearn_omp,sklearn_lasso,sklearn_lasso_lars"
    } else {
        ""
    };
    peer_items(python, root, size, threads, min_secs, preset_steps, only)
}

/// The real-activation column: an SAE step (full batch of 4,096 tokens, learned dictionary,
/// no biases) at two real sizes, ours on every core beside PyTorch's, in tokens per second.
fn real_column(
    python: Option<&Path>,
    root: &Path,
    cores: usize,
    min_secs: f64,
) -> Result<Vec<Value>, String> {
    println!(
        "\n== real activations: SAE training step, batches of 4,096 tokens, {cores} thread(s)"
    );
    println!(
        "{:<28} {:>14} {:>14} {:>8} {:>9}",
        "size", "ours tokens/s", "peer tokens/s", "ratio", "GFLOP/s"
    );
    let mut rows = Vec::new();
    for (name, label, n_atoms, dim) in [
        ("sample16x", "sample 576 x 9,216 (16x)", 9216, 576),
        ("llm", "LLM 768 x 16,896", 16_896, 768),
    ] {
        let d = DataConfig {
            num_atoms: n_atoms,
            data_dim: dim,
            sparsity_k: 32,
            num_samples: 4096,
            ..DataConfig::default()
        };
        let mine = microbench::sae_train(&CpuBackend::new(cores), &d, default_clock, min_secs);
        let theirs = match python {
            Some(py) => {
                let v = peer_items(py, root, name, cores, min_secs, 0, "sae_train")?;
                v.get("results")
                    .and_then(|r| r.get("sae_train"))
                    .and_then(|r| r.get("steps_per_sec"))
                    .and_then(Value::as_f64)
            }
            None => None,
        };
        let tokens = |sps: f64| sps * 4096.0;
        println!(
            "{:<28} {:>14.0} {:>14} {:>8} {:>9.1}",
            label,
            tokens(mine.steps_per_sec),
            theirs.map_or("-".into(), |p| format!("{:.0}", tokens(p))),
            theirs.map_or("-".into(), |p| format!("{:.2}x", mine.steps_per_sec / p)),
            mine.steps_per_sec * mine.flops_per_step / 1e9
        );
        rows.push(serde_json::json!({
            "size": label, "ours_tokens_per_sec": tokens(mine.steps_per_sec),
            "peer_tokens_per_sec": theirs.map(tokens), "threads": cores,
        }));
    }
    Ok(rows)
}

/// The peer at one size, for the items listed (comma-separated; empty: all of them).
fn peer_items(
    python: &Path,
    root: &Path,
    size: &str,
    threads: usize,
    min_secs: f64,
    preset_steps: u64,
    only: &str,
) -> Result<Value, String> {
    let mut c = Command::new(python);
    c.arg(root.join("bench/reference.py"))
        .args(["--size", size, "--threads", &threads.to_string()])
        .args(["--min-secs", &min_secs.to_string()])
        .args(["--preset-steps", &preset_steps.to_string()]);
    if !only.is_empty() {
        c.args(["--only", only]);
    }
    let out = c
        .output()
        .map_err(|e| format!("running bench/reference.py: {e}"))?;
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        return Err(format!("bench/reference.py failed ({})", out.status));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("bench/reference.py printed no JSON: {e}"))
}

/// The browser column: build pkg/ (wasm-pack, release), then time the same items in headless
/// Chromium with bench/browser.mjs, next to native single-thread timings of the same code.
fn browser_column(root: &Path, min_secs: f64) -> Result<Value, String> {
    eprintln!("  building the engine for the browser (npm run build:wasm)");
    let status = Command::new("npm")
        .args(["run", "--silent", "build:wasm"])
        .current_dir(root)
        .status()
        .map_err(|e| format!("running npm (install Node.js, or pass --no-browser): {e}"))?;
    if !status.success() {
        return Err(format!("npm run build:wasm failed ({status})"));
    }
    let out = Command::new("node")
        .arg("bench/browser.mjs")
        .arg(min_secs.to_string())
        .current_dir(root)
        .output()
        .map_err(|e| format!("running node bench/browser.mjs: {e}"))?;
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        return Err(format!(
            "bench/browser.mjs failed ({}); pass --no-browser to skip the browser column",
            out.status
        ));
    }
    let wasm: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("bench/browser.mjs printed no JSON: {e}"))?;
    let backend = CpuBackend::new(1);
    let data = DataConfig::default();
    println!(
        "\n== browser column: paper size (real_sae_train: {} x {}, batches of {}), WebAssembly in headless Chromium vs native, 1 thread each",
        microbench::REAL_SAE.data_dim,
        microbench::REAL_SAE.num_atoms,
        microbench::REAL_SAE.num_samples
    );
    println!(
        "{:<16} {:>14} {:>14} {:>14}",
        "item", "native step/s", "wasm step/s", "native/wasm"
    );
    let mut rows = Vec::new();
    for item in microbench::ITEMS {
        let native = microbench::time_item(item, &backend, &data, default_clock, min_secs)
            .expect("a known item")
            .steps_per_sec;
        let w = wasm
            .get("results")
            .and_then(|r| r.get(item))
            .and_then(|r| r.get("steps_per_sec"))
            .and_then(Value::as_f64);
        println!(
            "{:<16} {:>14.2} {:>14} {:>14}",
            item,
            native,
            w.map_or("-".into(), |v| format!("{v:.2}")),
            w.map_or("-".into(), |v| format!("{:.2}x", native / v)),
        );
        rows.push(serde_json::json!({
            "item": item, "native_steps_per_sec": native, "wasm_steps_per_sec": w,
            "native_over_wasm": w.map(|v| native / v),
        }));
    }
    if let Some(agent) = wasm.get("browser").and_then(Value::as_str) {
        println!("browser: {agent}");
    }
    Ok(serde_json::json!({ "browser": wasm.get("browser"), "items": rows }))
}

pub fn run(args: &BenchArgs) -> Result<(), String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let python = if args.no_peer {
        None
    } else {
        Some(ensure_venv(&root)?)
    };
    let mut report = serde_json::Map::new();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string());
    println!("machine: {cpu}, {cores} core(s)");
    report.insert("machine".into(), format!("{cpu}, {cores} cores").into());
    for size in sizes(&args.size, cores)? {
        let threads = args.threads.unwrap_or(size.default_threads).max(1);
        let d = &size.data;
        println!(
            "\n== {} size: N={} M={} K={} n={}, {} thread(s) on both sides",
            size.name, d.num_atoms, d.data_dim, d.sparsity_k, d.num_samples, threads
        );
        let peak = sgemm_peak(threads);
        let mine = ours(&size, threads, args.min_secs);
        let preset_steps = if size.name == "paper" {
            args.preset_steps
        } else {
            0
        };
        let theirs = match &python {
            Some(py) => Some(peer(
                py,
                &root,
                size.name,
                threads,
                args.min_secs,
                preset_steps,
            )?),
            None => None,
        };
        let peer_sps = |name: &str| -> Option<f64> {
            theirs
                .as_ref()?
                .get("results")?
                .get(name)?
                .get("steps_per_sec")?
                .as_f64()
        };
        println!(
            "{:<16} {:>14} {:>14} {:>8} {:>9} {:>7}",
            "item", "ours step/s", "peer step/s", "ratio", "GFLOP/s", "% peak"
        );
        let pairs = [
            ("sae_train", "sae_train"),
            ("topk_sae_train", "topk_sae_train"),
            ("mlp32_train", "mlp32_train"),
            ("mlp256_train", "mlp256_train"),
            ("sc_train", "sc_train"),
            ("ito_step", "ito_step"),
            ("sae_infer", "sae_infer"),
            ("omp_encode", "sklearn_omp"),
            ("fista_encode", "sklearn_lasso"),
            ("fista_encode", "sklearn_lasso_lars"),
        ];
        let mut rows = Vec::new();
        for (ours_name, peer_name) in pairs {
            let t = &mine[ours_name];
            let gflops = t.steps_per_sec * t.flops_per_step / 1e9;
            let p = peer_sps(peer_name);
            let label = if ours_name == peer_name {
                ours_name.to_string()
            } else {
                format!("{ours_name}/{}", peer_name.trim_start_matches("sklearn_"))
            };
            println!(
                "{:<16} {:>14.2} {:>14} {:>8} {:>9.2} {:>6.1}%",
                label,
                t.steps_per_sec,
                p.map_or("-".into(), |v| format!("{v:.2}")),
                p.map_or("-".into(), |v| format!("{:.2}x", t.steps_per_sec / v)),
                gflops,
                100.0 * gflops / peak
            );
            rows.push(serde_json::json!({
                "item": label, "ours_steps_per_sec": t.steps_per_sec, "peer_steps_per_sec": p,
                "ratio": p.map(|v| t.steps_per_sec / v), "gflops": gflops,
            }));
        }
        println!("sgemm peak measured here: {peak:.1} GFLOP/s ({threads} thread(s), 2048^3)");
        let mut entry =
            serde_json::json!({ "threads": threads, "sgemm_peak_gflops": peak, "items": rows });
        if preset_steps > 0 {
            let wall = preset_ours(preset_steps);
            let peer_wall = theirs.as_ref().and_then(|v| {
                v.get("results")?
                    .get("preset_unknown_zd")?
                    .get("wall_secs")?
                    .as_f64()
            });
            println!(
                "preset unknown-zd, 1 seed, {preset_steps} steps: ours {wall:.1} s, peer {}, ratio {}",
                peer_wall.map_or("-".into(), |v| format!("{v:.1} s")),
                peer_wall.map_or("-".into(), |v| format!("{:.2}x", v / wall))
            );
            entry["preset_unknown_zd"] = serde_json::json!({ "steps": preset_steps, "ours_secs": wall, "peer_secs": peer_wall });
        }
        println!("\nproducts of one training step, {threads} thread(s):");
        entry["products"] = products(d, threads, args.min_secs);
        if let Some(t) = &theirs {
            entry["peer"] = t.clone();
        }
        report.insert(size.name.to_string(), entry);
    }
    if !args.no_browser && (args.size == "paper" || args.size == "all") {
        let column = browser_column(&root, args.min_secs)?;
        report.insert("browser".to_string(), column);
    }
    if !args.no_browser && !args.no_page && args.size != "large" {
        report.insert("page".to_string(), page_column(&root, cores)?);
    }
    if args.gpu && !(args.sweeps && args.gpu_sweeps_only) {
        let column = gpu_column(args.min_secs, cores, args.gpu_items.as_deref())?;
        if args.gpu_peer {
            report.insert("gpu_peer".into(), gpu_peer(&column, args.min_secs)?);
        }
        report.insert("gpu".to_string(), column);
    }
    if args.real {
        let rows = real_column(python.as_deref(), &root, cores, args.min_secs)?;
        report.insert("real".into(), Value::Array(rows));
        if !args.no_page {
            let m = page_bench(&root, &["--real-memory"])?;
            let get = |k: &str| m.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
            println!(
                "page, real activations: a {:.0} MB file (float32) loaded, timed and trained \
                 on: peak {:.0} MiB over the browser's own ({:.1}x the file)",
                get("file_mb"),
                get("peak_mib"),
                get("peak_mib") * 1.048_576 / get("file_mb")
            );
            report.insert("real_page_memory".into(), m);
        }
    }
    if args.sweeps {
        report.insert(
            "sweeps".to_string(),
            sweep_column(&root, cores, args.gpu, !args.no_page)?,
        );
    }
    if let Some(out) = &args.out {
        std::fs::write(
            out,
            serde_json::to_string_pretty(&Value::Object(report)).expect("json"),
        )
        .map_err(|e| format!("{}: {e}", out.display()))?;
    }
    Ok(())
}

/// `node bench/page.mjs ARGS` on the built site (built once per bench run), its JSON answer.
fn page_bench(root: &Path, args: &[&str]) -> Result<Value, String> {
    static BUILT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            eprintln!("  building the site (npm run build)");
            let status = Command::new("npm")
                .args(["run", "--silent", "build"])
                .current_dir(root)
                .stdout(std::process::Stdio::null())
                .status()
                .map_err(|e| format!("running npm: {e}"))?;
            if status.success() {
                Ok(())
            } else {
                Err(format!("npm run build failed ({status})"))
            }
        })
        .clone()?;
    let out = Command::new("node")
        .arg("bench/page.mjs")
        .args(args)
        .current_dir(root)
        .output()
        .map_err(|e| format!("running node bench/page.mjs: {e}"))?;
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        return Err(format!("bench/page.mjs {args:?} failed ({})", out.status));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("bench/page.mjs printed no JSON: {e}"))
}

/// The default preset of the page (quick unknown Z&D) in the built site in headless Chromium,
/// computed by the page's pool of CPU workers, against the CLI on the same cores.
fn page_column(root: &Path, cores: usize) -> Result<Value, String> {
    let page = page_bench(root, &[])?;
    let page_secs = page
        .get("secs")
        .and_then(Value::as_f64)
        .ok_or("bench/page.mjs reported no time")?;
    let checked = Preset::QuickUnknownZD
        .config()
        .validate()
        .map_err(|e| e.to_string())?;
    let runs = checked.methods.len() * checked.runs as usize;
    let backend = Arc::new(CpuBackend::new(1));
    let start = Instant::now();
    let mut exp = Experiment::build(
        checked,
        backend,
        sparse_playground::core::run::Grouping::PerRun,
        None,
    );
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(cores.min(runs))
        .build()
        .map_err(|e| e.to_string())?;
    let clock = exp.clock();
    pool.install(|| {
        use rayon::prelude::*;
        exp.stacks_mut().par_iter_mut().for_each(|s| {
            while !s.is_done() {
                s.advance(200, clock);
            }
        });
    });
    let native_secs = start.elapsed().as_secs_f64();
    println!("\n== page column: the default preset (quick unknown Z&D), {cores} core(s)");
    println!(
        "page (headless Chromium, {} CPU worker(s)): {page_secs:.1} s; CLI on the same cores: {native_secs:.1} s; page/CLI {:.2}x",
        page.get("workers").and_then(Value::as_u64).unwrap_or(0),
        page_secs / native_secs
    );
    Ok(serde_json::json!({ "page_secs": page_secs, "native_secs": native_secs, "page": page }))
}

/// One timed GPU item: a stack of `stack` problems at `data`'s size: problem-steps per second,
/// GFLOP/s, and what one call sent to the device (dispatches, passes, submissions, reads) with
/// the steps that call ran.
fn gpu_stack_item(
    g: &GpuBackend,
    data: &DataConfig,
    stack: usize,
    item: &str,
    min_secs: f64,
) -> (f64, f64, GpuCounters, usize) {
    let gpu: &dyn Backend = g;
    let ds = Dataset::generate(data, 0);
    let (dim, n_atoms, n) = (data.data_dim, data.num_atoms, data.num_samples);
    let x = microbench::tensor(gpu, &ds.train_signals);
    let calls;
    let steps_per_call;
    let flops_per_problem_step;
    let plumbing;
    match item {
        "sae_train"
        | "sae_train_kbk"
        | "mlp32_train"
        | "mlp32_train_kbk"
        | "mlp256_train"
        | "mlp256_train_kbk"
        | "sae_sup_train"
        | "sae_sup_train_kbk"
        | "mlp32_sup_train"
        | "mlp32_sup_train_kbk" => {
            // The engine's own path (fused where the kernel fits), or every step kernel by
            // kernel (the reference); the reconstruction, or the supervised objective of the
            // known-codes setting against the true codes.
            // The fused kernel is forced for MLPs where the adapter would train them kernel
            // by kernel (software adapters), so that both columns mean what they say.
            g.set_fused_training(!item.ends_with("_kbk"));
            g.set_fused_mlp(Some(!item.ends_with("_kbk")));
            let base = item.trim_end_matches("_kbk");
            let hidden: &[usize] = match base {
                "mlp32_train" | "mlp32_sup_train" => &[32],
                "mlp256_train" => &[256],
                _ => &[],
            };
            let supervised = base.contains("_sup_");
            let targets = microbench::tensor(gpu, &ds.train_codes);
            let t = supervised.then_some(&targets);
            let mut model = if supervised {
                microbench::supervised_encoder(gpu, 1, stack, data, hidden)
            } else {
                microbench::encoder(gpu, 1, stack, data, hidden, None)
            };
            steps_per_call = if n * n_atoms * stack > 1 << 22 {
                1
            } else if g.adapter().software {
                10
            } else {
                200
            };
            // Pipelines compiled before the clock starts (seconds on a software adapter).
            model.train_steps(gpu, &x, t, 1, false);
            gpu.wait();
            let mut call = || {
                model.train_steps(gpu, &x, t, steps_per_call, false);
                gpu.wait();
            };
            calls = time_it(min_secs, &mut call);
            let before = g.counters();
            call();
            plumbing = g.counters().since(&before);
            g.set_fused_training(true);
            g.set_fused_mlp(None);
            let widths = flops::widths(dim, hidden, n_atoms);
            flops_per_problem_step = if supervised {
                flops::supervised_train_step(&widths, n, true, false)
            } else {
                flops::encoder_train_step(&widths, n, false, false, true)
            };
        }
        "sc_train" | "sc_train_kbk" => {
            g.set_fused_training(item == "sc_train");
            let mut rngs: Vec<Rng> = (0..stack as u64).map(|i| Rng::new(1 + i)).collect();
            let mut model =
                SparseCodingModel::new(gpu, &mut rngs, dim, n_atoms, n, &[0.01], &[1e-3]);
            steps_per_call = if g.adapter().software { 10 } else { 200 };
            model.train_steps(gpu, &x, 1, false);
            gpu.wait();
            let mut call = || {
                model.train_steps(gpu, &x, steps_per_call, false);
                gpu.wait();
            };
            calls = time_it(min_secs, &mut call);
            let before = g.counters();
            call();
            plumbing = g.counters().since(&before);
            g.set_fused_training(true);
            flops_per_problem_step = flops::sparse_coding_train_step(dim, n_atoms, n);
        }
        _ => {
            let dict = microbench::tensor(gpu, &ds.dictionary);
            let mut stacked = gpu.zeros(Shape::new(stack, dim, n_atoms));
            gpu.copy(&dict, &mut stacked);
            let mut solver = solvers::AdamExp::new(gpu, stacked, &x, &[0.01], u64::MAX, &[3e-3]);
            steps_per_call = if n * n_atoms * stack > 1 << 22 {
                50
            } else {
                500
            };
            let mut call = || {
                solver.run(gpu, &x, steps_per_call as u64);
                gpu.wait();
            };
            calls = time_it(min_secs, &mut call);
            let before = g.counters();
            call();
            plumbing = g.counters().since(&before);
            flops_per_problem_step = flops::adam_inference_step(dim, n_atoms, n);
        }
    }
    let problem_steps_per_sec = calls * steps_per_call as f64 * stack as f64;
    (
        problem_steps_per_sec,
        problem_steps_per_sec * flops_per_problem_step / 1e9,
        plumbing,
        steps_per_call,
    )
}

/// Per step: dispatches, compute passes, submissions and reads (with their bytes).
fn per_step(c: &GpuCounters, steps: usize) -> String {
    let s = steps.max(1) as f64;
    format!(
        "{:.1} disp, {:.2} passes, {:.2} submits, {:.2} reads ({:.0} B)",
        c.dispatches as f64 / s,
        c.passes as f64 / s,
        c.submissions as f64 / s,
        c.reads as f64 / s,
        c.read_bytes as f64 / s
    )
}

/// The GPU column: stacks of paper-size problems (1, 5, 64, 1024) for an SAE's, an MLP's
/// (h = 32 and 256) and sparse coding's training step (fused where the kernel fits, forced
/// for MLPs where the adapter would not choose it, and kernel by kernel) and a step of the paper's
/// inference, microseconds per problem-step against the CPU's on all cores; then one SAE training step at N=4096 M=512 n=8192 and at the paper's LLM dictionary
/// (N=16896 M=768 n=4096), in GFLOP/s.
/// With `only`, just those items of the stack table.
fn gpu_column(min_secs: f64, cores: usize, only: Option<&[String]>) -> Result<Value, String> {
    let gpu = GpuBackend::request_blocking().map_err(|e| format!("--gpu: {e}"))?;
    println!("\n== GPU column: {:?}", gpu.adapter());
    let cpu = CpuBackend::new(1);
    let paper = DataConfig::default();
    let asked = |item: &str| only.is_none_or(|o| o.iter().any(|i| i == item));
    let gemm_rows = if asked("products") {
        gpu_gemm_rows(&gpu, min_secs, cores)
    } else {
        Value::Array(Vec::new())
    };
    let (checks_rows, private_rows) = if only.is_some() {
        (Value::Array(Vec::new()), Value::Array(Vec::new()))
    } else {
        (
            gpu_checks_rows(&gpu, &paper, min_secs),
            gpu_private_rows(&gpu, &paper, min_secs),
        )
    };
    println!(
        "{:<12} {:>6} {:>16} {:>12} {:>16}  per step on the device",
        "item", "stack", "GPU us/problem", "GPU GFLOP/s", "CPU us/problem"
    );
    let mut rows = Vec::new();
    // A software adapter takes seconds per step of a stack of 1,024: it stops at 64.
    let stacks: &[usize] = if gpu.adapter().software {
        &[1, 5, 64]
    } else {
        &[1, 5, 64, 1024]
    };
    let items = [
        "sae_train",
        "sae_train_kbk",
        "mlp32_train",
        "mlp32_train_kbk",
        "mlp256_train",
        "mlp256_train_kbk",
        "sc_train",
        "sc_train_kbk",
        "sae_sup_train",
        "sae_sup_train_kbk",
        "mlp32_sup_train",
        "mlp32_sup_train_kbk",
        "ito_step",
    ];
    if let Some(unknown) = only.and_then(|o| {
        o.iter()
            .find(|i| *i != "products" && !items.contains(&i.as_str()))
    }) {
        return Err(format!(
            "--gpu-items: no item {unknown:?} (items: products, {})",
            items.join(", ")
        ));
    }
    for item in items.into_iter().filter(|i| asked(i)) {
        // The CPU reference: one problem on one core, times the cores (problems in parallel).
        let cpu_rate = match item.trim_end_matches("_kbk") {
            "mlp32_train" => {
                microbench::encoder_train(&cpu, &paper, &[32], default_clock, min_secs)
            }
            "sae_sup_train" => {
                microbench::supervised_train(&cpu, &paper, &[], default_clock, min_secs)
            }
            "mlp32_sup_train" => {
                microbench::supervised_train(&cpu, &paper, &[32], default_clock, min_secs)
            }
            "sc_train" => {
                let ds = Dataset::generate(&paper, 0);
                let x = microbench::tensor(&cpu, &ds.train_signals);
                let (dim, atoms, n) = (paper.data_dim, paper.num_atoms, paper.num_samples);
                let mut sc = SparseCodingModel::new(
                    &cpu,
                    &mut [Rng::new(1)],
                    dim,
                    atoms,
                    n,
                    &[0.01],
                    &[1e-3],
                );
                microbench::Rate {
                    steps_per_sec: time_it(min_secs, || sc.train_step(&cpu, &x, None, false)),
                    flops_per_step: flops::sparse_coding_train_step(dim, atoms, n),
                }
            }
            cpu_item => microbench::time_item(cpu_item, &cpu, &paper, default_clock, min_secs)
                .expect("a known item"),
        }
        .steps_per_sec
            * cores as f64;
        // A stack of 64 wide MLPs takes minutes per call on a software adapter.
        let item_stacks = if gpu.adapter().software && item.starts_with("mlp256") {
            &stacks[..2]
        } else {
            stacks
        };
        for &stack in item_stacks {
            let (rate, gflops, plumbing, steps) =
                gpu_stack_item(&gpu, &paper, stack, item, min_secs);
            println!(
                "{:<12} {:>6} {:>16.2} {:>12.1} {:>16.2}  {}",
                item,
                stack,
                1e6 / rate,
                gflops,
                1e6 / cpu_rate,
                per_step(&plumbing, steps)
            );
            rows.push(serde_json::json!({
                "item": item, "stack": stack, "gpu_us_per_problem_step": 1e6 / rate,
                "gpu_gflops": gflops, "cpu_us_per_problem_step_all_cores": 1e6 / cpu_rate,
                "device_per_call": plumbing, "steps_per_call": steps,
            }));
        }
    }
    let large: &[(&str, usize, usize, usize)] = if only.is_some() {
        &[]
    } else {
        &[
            ("N=1024 M=256 n=4096", 1024, 256, 4096),
            ("N=4096 M=512 n=8192", 4096, 512, 8192),
            ("N=16896 M=768 n=4096", 16_896, 768, 4096),
        ]
    };
    for &(label, n_atoms, dim, n) in large {
        let data = DataConfig {
            num_atoms: n_atoms,
            data_dim: dim,
            sparsity_k: 32,
            num_samples: n,
            ..DataConfig::default()
        };
        let per_member = 4 * (n_atoms * n) as u64;
        if per_member > gpu.max_tensor_bytes() {
            println!(
                "sae_train {label}: skipped, a tensor of {per_member} bytes is past this adapter's {} byte bindings",
                gpu.max_tensor_bytes()
            );
            continue;
        }
        let (rate, gflops, plumbing, steps) = gpu_stack_item(&gpu, &data, 1, "sae_train", min_secs);
        println!("  {label}: {}", per_step(&plumbing, steps));
        if let Err(e) = gpu.health() {
            println!("sae_train {label}: the GPU failed: {e}");
            break;
        }
        println!(
            "sae_train {label}: {:.2} ms per step, {gflops:.1} GFLOP/s",
            1e3 / rate
        );
        rows.push(serde_json::json!({ "item": "sae_train", "size": label, "gpu_ms_per_step": 1e3 / rate, "gpu_gflops": gflops, "device_per_call": plumbing, "steps_per_call": steps }));
    }
    Ok(serde_json::json!({
        "adapter": gpu.adapter(), "rows": rows, "gemm": gemm_rows, "checks": checks_rows, "private_dictionary": private_rows,
    }))
}

/// The PyTorch CUDA peer of the GPU column (`bench/gpu_reference.py`, found beside the working
/// directory or the sources: on a lent machine the binary runs in a copy of the repository),
/// with our figures from `column` beside its own: per problem-step for the stacks, per step at
/// the large sizes.
fn gpu_peer(column: &Value, min_secs: f64) -> Result<Value, String> {
    let root = [
        std::env::current_dir().unwrap_or_default(),
        PathBuf::from(env!("CARGO_MANIFEST_DIR")),
    ]
    .into_iter()
    .find(|r| r.join("bench/gpu_reference.py").exists())
    .ok_or("--gpu-peer: bench/gpu_reference.py is neither here nor beside the sources")?;
    let venv = root.join("bench/.venv/bin/python");
    let python = if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    };
    let rows = column
        .get("rows")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let ours = |key: &str, value: &Value, field: &str| {
        rows.iter()
            .find(|r| r["item"] == "sae_train" && &r[key] == value)
            .and_then(|r| r[field].as_f64())
    };
    let stacks: Vec<String> = rows
        .iter()
        .filter(|r| r["item"] == "sae_train")
        .filter_map(|r| r["stack"].as_u64())
        .map(|s| s.to_string())
        .collect();
    let out = Command::new(&python)
        .arg(root.join("bench/gpu_reference.py"))
        .args(["--stacks", &stacks.join(",")])
        .args(["--min-secs", &min_secs.to_string()])
        .output()
        .map_err(|e| format!("--gpu-peer: running {}: {e}", python.display()))?;
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        return Err(format!(
            "--gpu-peer: bench/gpu_reference.py failed ({})",
            out.status
        ));
    }
    let peer: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("--gpu-peer: bench/gpu_reference.py printed no JSON: {e}"))?;
    println!(
        "\n== GPU peer: PyTorch {} on {}, fp32 (TF32 off), the same SAE step",
        peer["torch"].as_str().unwrap_or("?"),
        peer["device"].as_str().unwrap_or("?")
    );
    println!(
        "{:<10} {:>6} {:>16} {:>16} {:>16} {:>12} {:>12}",
        "item", "stack", "ours us/problem", "torch eager", "torch graph", "vs eager", "vs graph"
    );
    let results = peer["results"].as_array().cloned().unwrap_or_default();
    let theirs = |key: &str, value: &Value, mode: &str, field: &str| {
        results
            .iter()
            .find(|r| &r[key] == value && r["mode"] == mode)
            .and_then(|r| r[field].as_f64())
    };
    let cell = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    let speedup = |theirs: Option<f64>, mine: Option<f64>| match (theirs, mine) {
        (Some(t), Some(m)) if m > 0.0 => format!("{:.2}x", t / m),
        _ => "-".to_string(),
    };
    for stack in &stacks {
        let key = Value::from(stack.parse::<u64>().unwrap_or(0));
        let mine = ours("stack", &key, "gpu_us_per_problem_step");
        let eager = theirs("stack", &key, "eager", "us_per_problem_step");
        let graph = theirs("stack", &key, "graph", "us_per_problem_step");
        println!(
            "{:<10} {stack:>6} {:>16} {:>16} {:>16} {:>12} {:>12}",
            "sae_train",
            cell(mine),
            cell(eager),
            cell(graph),
            speedup(eager, mine),
            speedup(graph, mine)
        );
    }
    for size in results.iter().filter_map(|r| r["size"].as_str()) {
        let key = Value::from(size);
        let mine = ours("size", &key, "gpu_ms_per_step");
        let eager = theirs("size", &key, "eager", "ms_per_step");
        println!(
            "sae_train {size}: ours {} ms per step, PyTorch eager {} ms: ours at {} of PyTorch's speed",
            cell(mine),
            cell(eager),
            speedup(eager, mine)
        );
    }
    Ok(peer)
}

/// Trusted shader modules (the native default) against modules with every runtime check wgpu
/// adds (what a browser runs), side by side on one device: a fused kernel of each kind, a step
/// kernel by kernel, and the product.
fn gpu_checks_rows(gpu: &GpuBackend, paper: &DataConfig, min_secs: f64) -> Value {
    println!(
        "{:<16} {:>6} {:>20} {:>20} {:>10}",
        "shader checks", "stack", "checked us/problem", "trusted us/problem", "speed-up"
    );
    let mut rows = Vec::new();
    for (item, stack) in [
        ("sae_train", 64),
        ("sae_train_kbk", 5),
        ("mlp32_train", 5),
        ("sc_train", 5),
        ("ito_step", 64),
    ] {
        let mut us = [0.0; 2];
        for (slot, checked) in [(0, true), (1, false)] {
            gpu.set_checked_shaders(checked);
            us[slot] = 1e6 / gpu_stack_item(gpu, paper, stack, item, min_secs).0;
        }
        println!(
            "{item:<16} {stack:>6} {:>20.2} {:>20.2} {:>9.2}x",
            us[0],
            us[1],
            us[0] / us[1]
        );
        rows.push(serde_json::json!({
            "item": item, "stack": stack, "checked_us_per_problem_step": us[0],
            "trusted_us_per_problem_step": us[1],
        }));
    }
    gpu.set_checked_shaders(false);
    gpu.set_fused_training(true);
    Value::Array(rows)
}

/// The fused solvers with a private copy of the dictionary in each invocation (the default on
/// software adapters) against the shared copy in workgroup memory, side by side on one device:
/// a step of the paper's inference at the paper's size.
fn gpu_private_rows(gpu: &GpuBackend, paper: &DataConfig, min_secs: f64) -> Value {
    println!(
        "{:<18} {:>6} {:>20} {:>20} {:>10}",
        "private dictionary", "stack", "shared us/problem", "private us/problem", "speed-up"
    );
    let mut rows = Vec::new();
    for stack in [1, 64] {
        let mut us = [0.0; 2];
        for (slot, private) in [(0, false), (1, true)] {
            gpu.set_private_dictionaries(Some(private));
            us[slot] = 1e6 / gpu_stack_item(gpu, paper, stack, "ito_step", min_secs).0;
        }
        println!(
            "{:<18} {stack:>6} {:>20.2} {:>20.2} {:>9.2}x",
            "ito_step",
            us[0],
            us[1],
            us[0] / us[1]
        );
        rows.push(serde_json::json!({
            "item": "ito_step", "stack": stack, "shared_us_per_problem_step": us[0],
            "private_us_per_problem_step": us[1],
        }));
    }
    gpu.set_private_dictionaries(None);
    Value::Array(rows)
}

/// The GPU's matrix product alone, GFLOP/s for every transpose case at a square size and for
/// the products of one SAE step at the large size (N=1024, M=256, n=4096: codes W X, the
/// dictionary's gradient R S^T with its long k, and D^T R), beside the CPU backend's product
/// on all cores. What separates the two on a software adapter is mostly the kernel's code.
fn gpu_gemm_rows(gpu: &GpuBackend, min_secs: f64, cores: usize) -> Value {
    let cpu = CpuBackend::new(cores);
    // A floor (one 8x8x8 product: what a submission and its wait cost, read in the time
    // column), the large sizes (tiles), then the thin products of the paper's MLP with 256
    // hidden units (N=16, M=8, n=1024), which no tile fits.
    let shapes: [(&str, usize, usize, usize, bool, bool); 13] = [
        ("submit floor", 8, 8, 8, false, false),
        ("square nn", 1024, 1024, 1024, false, false),
        ("square tn", 1024, 1024, 1024, true, false),
        ("square nt", 1024, 1024, 1024, false, true),
        ("square tt", 1024, 1024, 1024, true, true),
        ("W X (N x n, k=M)", 1024, 4096, 256, false, false),
        ("R S^T (M x N, k=n)", 256, 1024, 4096, false, true),
        ("D^T R (N x n, k=M)", 1024, 4096, 256, true, false),
        ("mlp256 W1 X", 256, 1024, 8, false, false),
        ("mlp256 W2 H", 16, 1024, 256, false, false),
        ("mlp256 W2^T G", 256, 1024, 16, true, false),
        ("mlp256 G H^T", 16, 256, 1024, false, true),
        ("mlp256 G1 X^T", 256, 8, 1024, false, true),
    ];
    println!(
        "{:<22} {:>16} {:>12} {:>12}",
        "gemm", "m x n x k", "GPU GFLOP/s", "CPU GFLOP/s"
    );
    let mut rows = Vec::new();
    for (label, m, n, k, ta, tb) in shapes {
        let rate = |b: &dyn Backend| {
            let mut rng = Rng::new(7);
            let mut values =
                |len: usize| -> Vec<f32> { (0..len).map(|_| rng.normal() as f32).collect() };
            let a_shape = if ta {
                Shape::new(1, k, m)
            } else {
                Shape::new(1, m, k)
            };
            let b_shape = if tb {
                Shape::new(1, n, k)
            } else {
                Shape::new(1, k, n)
            };
            let a = b.upload(a_shape, &values(a_shape.len()));
            let bm = b.upload(b_shape, &values(b_shape.len()));
            let mut c = b.zeros(Shape::new(1, m, n));
            let op = |t, tr| if tr { Op::t(t) } else { Op::n(t) };
            // Compiled and warmed before the clock starts.
            b.gemm(1.0, op(&a, ta), op(&bm, tb), 0.0, &mut c);
            b.wait();
            let calls = time_it(min_secs, || {
                b.gemm(1.0, op(&a, ta), op(&bm, tb), 0.0, &mut c);
                b.wait();
            });
            calls * 2.0 * (m * n * k) as f64 / 1e9
        };
        let (g, c) = (rate(gpu), rate(&cpu));
        println!(
            "{label:<22} {:>16} {g:>12.1} {c:>12.1} {:>10.1} us",
            format!("{m}x{n}x{k}"),
            2.0 * (m * n * k) as f64 / g / 1e3
        );
        rows.push(
            serde_json::json!({ "product": label, "m": m, "n": n, "k": k,
            "a_transposed": ta, "b_transposed": tb, "gpu_gflops": g, "cpu_gflops_all_cores": c }),
        );
    }
    Value::Array(rows)
}

/// The sweep column: the phase-diagram preset in cells per second natively on every core, on
/// the GPU (every cell on a real GPU; every tenth delta's row on a software one, with the CPU
/// timed on the same cells), its cells in stacks (one per delta) and one by one, and in the
/// built site on the page's worker pool.
fn sweep_column(root: &Path, cores: usize, gpu: bool, page: bool) -> Result<Value, String> {
    use crate::cli::{run_units, sweep_gpu, SweepGpu};
    use sparse_playground::core::select::BackendChoice;
    use sparse_playground::core::sweep::{SweepPreset, Unit};
    let sweep = SweepPreset::Phase.config();
    let units = sweep.units();
    let bar = indicatif::ProgressBar::hidden();
    let cpu_time = |units: &[Unit]| -> Result<f64, String> {
        let start = Instant::now();
        let none = SweepGpu {
            backend: None,
            notice: None,
            software: false,
            max_members: 1,
        };
        run_units(&sweep, units, none, cores.min(units.len()).max(1), &bar)?;
        Ok(start.elapsed().as_secs_f64())
    };
    println!(
        "\n== sweep column: the phase preset ({} cells, FISTA at N = 256, 10 trials each)",
        units.len()
    );
    let cpu_secs = cpu_time(&units)?;
    let cpu_rate = units.len() as f64 / cpu_secs;
    println!("native CPU, {cores} core(s): {cpu_secs:.2} s, {cpu_rate:.1} cells/s");
    let mut out = serde_json::json!({
        "preset": "phase", "cells": units.len(), "cores": cores,
        "cpu_secs": cpu_secs, "cpu_cells_per_sec": cpu_rate,
    });
    if gpu {
        let device = sweep_gpu(BackendChoice::Gpu, &sweep, 1);
        match device.backend.clone() {
            None => {
                let why = device.notice.clone().unwrap_or_default();
                println!("GPU: none ({why})");
                out["gpu"] = serde_json::json!({ "skipped": why });
            }
            Some(backend) => {
                let name = backend.name();
                // Whole rows of the grid (one delta, every rho), so the stacks are whole.
                let row = sweep.axes.get(1).map_or(1, |a| a.values.len()).max(1);
                let subset: Vec<Unit> = if device.software {
                    units
                        .iter()
                        .copied()
                        .filter(|u| (u.cell / row) % 10 == 0)
                        .collect()
                } else {
                    units.clone()
                };
                let max_members = device.max_members;
                let timed = |members: usize| -> Result<(f64, Option<String>, String), String> {
                    let device = SweepGpu {
                        backend: Some(backend.clone()),
                        notice: None,
                        software: device.software,
                        max_members: members,
                    };
                    let start = Instant::now();
                    let (_, info) = run_units(&sweep, &subset, device, 1, &bar)?;
                    Ok((start.elapsed().as_secs_f64(), info.notice, info.name))
                };
                let (stacked_secs, notice, how) = timed(max_members)?;
                let (alone_secs, _, _) = timed(1)?;
                let cpu_same = cpu_time(&subset)?;
                let rate = |secs: f64| subset.len() as f64 / secs;
                let (g, a, c) = (rate(stacked_secs), rate(alone_secs), rate(cpu_same));
                println!(
                    "GPU ({how}), {} cells: stacked {stacked_secs:.2} s, {g:.2} cells/s; one by one {alone_secs:.2} s, {a:.2} cells/s (stacked/alone {:.2}x); CPU on the same cells {c:.1} cells/s; GPU/CPU {:.3}x{}",
                    subset.len(),
                    g / a,
                    g / c,
                    notice.as_deref().map_or(String::new(), |n| format!(" (note: {n})"))
                );
                out["gpu"] = serde_json::json!({
                    "adapter": name, "cells": subset.len(), "max_members": max_members,
                    "gpu_secs": stacked_secs, "gpu_cells_per_sec": g,
                    "gpu_alone_secs": alone_secs, "gpu_alone_cells_per_sec": a,
                    "cpu_cells_per_sec_same_cells": c, "ratio": g / c, "stacked_over_alone": g / a,
                    "notice": notice,
                });
            }
        }
    }
    if page {
        let v = page_bench(root, &["--sweep", "phase"])?;
        let secs = v
            .get("secs")
            .and_then(Value::as_f64)
            .ok_or("bench/page.mjs reported no time")?;
        println!(
            "page (headless Chromium, CPU worker pool): {secs:.1} s, {:.1} cells/s; page/CLI time {:.2}x",
            units.len() as f64 / secs,
            secs / cpu_secs
        );
        out["page"] = v;
    }
    Ok(out)
}
