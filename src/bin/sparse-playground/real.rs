//! `run --activations FILE`: an experiment on real activations (see `core::real`), with the
//! methods, sizes and training named on the command line or in a JSON config.

use crate::cli::{default_memory_budget, progress_bar, RunArgs};
use clap::Args;
use sparse_playground::compute::{Backend, BackendKind};
use sparse_playground::core::config::human_bytes;
use sparse_playground::core::config::DataConfig;
use sparse_playground::core::real::{
    estimate_seconds, synthetic_activations, RealConfig, RealEstimate, RealExperiment, RealResults,
};
use sparse_playground::core::results::BackendInfo;
use sparse_playground::core::run::default_clock;
use sparse_playground::core::select;
use sparse_playground::core::share;
use sparse_playground::formats::activations;
use sparse_playground::CpuBackend;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Largest activation file read (the bytes are held once, then the values as f32).
const MAX_FILE_BYTES: u64 = 16 << 30;

#[derive(Args, Debug, Default)]
#[command(group(clap::ArgGroup::new("real_input").args(["activations", "synthetic"])))]
pub(crate) struct RealArgs {
    /// Train on real activations instead of synthetic data: a .npy (float16/32/64) or
    /// .safetensors file of tokens x dimensions (e.g. www/sample/smollm2-135m-l15.npy).
    #[arg(long, conflicts_with = "preset")]
    pub(crate) activations: Option<PathBuf>,
    /// The real-activation experiment on synthetic activations with a known truth, so that
    /// its frontier also shows code MCC: ATOMS,DIM,K,TOKENS of the paper's data model (x = D s,
    /// K of ATOMS unit atoms active per token), e.g. 64,32,4,4096; drawn from --seed.
    #[arg(long, conflicts_with_all = ["preset", "activations"], value_name = "ATOMS,DIM,K,TOKENS")]
    pub(crate) synthetic: Option<String>,
    /// The tensor to read from a .safetensors file holding several.
    #[arg(long, requires = "real_input")]
    tensor: Option<String>,
    /// Token texts beside the activations (checked against them; see README).
    #[arg(long, requires = "real_input")]
    tokens: Option<PathBuf>,
    /// Methods as in share links, comma-separated: sae, sae:b, topk:k32:b, mlp:h1024:b,
    /// sc:fista:s500, ito:b:fista:s5000 (default: sae:b, topk:k32:b, ito:b:fista).
    #[arg(long, requires = "real_input")]
    methods: Option<String>,
    /// Latents of every dictionary (default: --expansion times the dimension).
    #[arg(long, requires = "real_input", conflicts_with = "expansion")]
    latents: Option<usize>,
    /// Latents per dimension (default 4).
    #[arg(long, requires = "real_input")]
    expansion: Option<f64>,
    /// Training L1 penalty lambda (also the gap's objective unless the config says otherwise).
    #[arg(long, requires = "real_input")]
    l1: Option<f64>,
    /// Learning rate.
    #[arg(long, requires = "real_input")]
    lr: Option<f64>,
    /// Tokens per minibatch.
    #[arg(long, requires = "real_input")]
    batch: Option<usize>,
    /// Held-out tokens analysed for the amortisation gap.
    #[arg(long, requires = "real_input")]
    gap_tokens: Option<usize>,
}

pub(crate) fn default_config_json() -> String {
    serde_json::to_string_pretty(&RealConfig::default()).expect("configs serialise")
}

fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    let size = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(format!(
            "{}: the file is {}; at most {} are read",
            path.display(),
            human_bytes(size),
            human_bytes(MAX_FILE_BYTES)
        ));
    }
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The config: a JSON file's, or the default, with the command line's overrides.
fn config(args: &RunArgs, path: &Path, dim: usize) -> Result<RealConfig, String> {
    let (src, real) = (&args.source, &args.real);
    let mut c = match &src.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            RealConfig::from_json(&text).map_err(|e| format!("{}: {e}", p.display()))?
        }
        None => RealConfig::default(),
    };
    if c.source.is_empty() {
        c.source = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into(),
        );
    }
    if let Some(list) = &real.methods {
        c.methods = list
            .split(',')
            .map(|t| share::parse_method(t.trim()).map_err(|e| format!("--methods: {e}")))
            .collect::<Result<_, _>>()?;
    }
    if let Some(n) = real.latents {
        c.latents = n;
    }
    if c.latents == 0 || real.expansion.is_some() {
        let e = real.expansion.unwrap_or(4.0);
        if !(e.is_finite() && e > 0.0) {
            return Err(format!("--expansion must be a positive number, got {e}"));
        }
        c.latents = ((dim as f64 * e).round() as usize).max(1);
    }
    if let Some(l1) = real.l1 {
        c.train.l1_penalty = l1;
    }
    if let Some(lr) = real.lr {
        c.train.lr = lr;
    }
    if let Some(b) = real.batch {
        c.train.batch_size = Some(b);
    }
    if let Some(g) = real.gap_tokens {
        c.gap.tokens = g;
    }
    if let Some(s) = src.steps {
        c.train.steps = s;
    }
    if let Some(s) = src.seed {
        c.seed = s;
    }
    if let Some(e) = src.log_every {
        c.train.log_every = e;
    }
    if src.runs.is_some_and(|r| r != 1) {
        return Err("--runs: real-activation runs train one seed per method (use --seed)".into());
    }
    Ok(c)
}

/// The data model of `--synthetic ATOMS,DIM,K,TOKENS`.
fn synthetic_data(spec: &str) -> Result<DataConfig, String> {
    let parts: Vec<usize> = spec
        .split(',')
        .map(|p| p.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| {
            format!("--synthetic {spec}: expected ATOMS,DIM,K,TOKENS (four whole numbers)")
        })?;
    let [atoms, dim, k, tokens] = parts[..] else {
        return Err(format!(
            "--synthetic {spec}: expected ATOMS,DIM,K,TOKENS (four whole numbers)"
        ));
    };
    let data = DataConfig {
        num_atoms: atoms,
        data_dim: dim,
        sparsity_k: k,
        num_samples: tokens,
        ..DataConfig::default()
    };
    data.check()
        .map_err(|e| format!("--synthetic {spec}: {e}"))?;
    Ok(data)
}

pub(crate) fn run(args: &RunArgs) -> Result<(), String> {
    let seed = args.source.seed.unwrap_or(0);
    let (path, acts, truth) = match (&args.real.activations, &args.real.synthetic) {
        (Some(path), _) => {
            let bytes = read_file(path)?;
            let acts = activations::parse(&bytes, args.real.tensor.as_deref())
                .map_err(|e| format!("{}: {e}", path.display()))?;
            (path.clone(), acts, None)
        }
        (None, Some(spec)) => {
            let data = synthetic_data(spec)?;
            let (acts, truth) = synthetic_activations(&data, seed);
            let name = format!(
                "synthetic: {} atoms, {} dims, K = {}, {} tokens, seed {seed}",
                data.num_atoms, data.data_dim, data.sparsity_k, data.num_samples
            );
            (PathBuf::from(name), acts, Some(truth))
        }
        (None, None) => unreachable!("checked by the caller"),
    };
    let path = path.as_path();
    if let Some(tpath) = &args.real.tokens {
        let text =
            std::fs::read_to_string(tpath).map_err(|e| format!("{}: {e}", tpath.display()))?;
        activations::parse_tokens(&text, acts.tokens)
            .map_err(|e| format!("{}: {e}", tpath.display()))?;
    }
    let cfg = config(args, path, acts.dim)?;
    cfg.validate(acts.tokens, acts.dim)
        .map_err(|e| format!("invalid config: {e}"))?;
    let budget = args.memory_budget.unwrap_or_else(default_memory_budget);
    let need = cfg.floats(acts.tokens, acts.dim) * 4 + acts.f32_bytes();
    if need > budget {
        return Err(format!(
            "invalid config: the experiment needs about {} of memory, over the budget of {} \
             (--memory-budget); use fewer latents, tokens or methods",
            human_bytes(need),
            human_bytes(budget)
        ));
    }
    let out_file = args
        .out
        .as_ref()
        .map(|out| std::fs::File::create(out).map_err(|e| format!("--out {}: {e}", out.display())))
        .transpose()?;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let (backend, notice, estimate) = choose_backend(&args.backend, &cfg, &acts, threads)?;
    if let Some(n) = &notice {
        eprintln!("note: {n}");
    }
    eprintln!(
        "{}: {} tokens x {} ({}{}), {} latents, {} method(s), {} steps",
        cfg.source,
        acts.tokens,
        acts.dim,
        acts.dtype,
        acts.tensor
            .as_ref()
            .map_or(String::new(), |t| format!(", tensor {t}")),
        cfg.latents,
        cfg.methods.len(),
        cfg.train.steps
    );
    if !args.quiet {
        // A short trial first, so a long run says so before it takes the machine (auto's
        // choice has timed one already).
        let estimate = match estimate {
            Some(e) => Ok(e),
            None => estimate_seconds(&cfg, &acts, backend.clone(), default_clock),
        };
        match estimate {
            Ok(e) => eprintln!(
                "estimated: about {:.0} s (training {:.0} s, the gap's analysis {:.0} s, up to \
                 {:.0} s if its solvers run to their caps)",
                e.seconds, e.training, e.analysis, e.analysis_max
            ),
            Err(e) => eprintln!("no estimate: {e}"),
        }
    }
    let started = default_clock();
    let mut exp = RealExperiment::new_shared(cfg, Arc::new(acts), backend.clone(), default_clock)
        .map_err(|e| format!("invalid config: {e}"))?;
    if let Some(truth) = &truth {
        exp = exp.with_truth(truth)?;
    }
    // The bar counts all the work (training and the gap's analysis, by their FLOPs), in
    // thousandths; the message says what is under way.
    let bar = progress_bar(
        args.quiet,
        1000,
        "{bar:40.cyan/blue} {percent:>3}%  eta {eta}  {msg}",
    );
    exp.run_to_end(|e| {
        let (done, total) = e.work();
        bar.set_position((1000.0 * done / total.max(1.0)).round() as u64);
        bar.set_message(e.status());
    })
    .map_err(|e| format!("the backend failed: {e}"))?;
    bar.finish_and_clear();
    let results = exp.results(Some(BackendInfo {
        kind: match backend.kind() {
            BackendKind::Cpu => "cpu".into(),
            BackendKind::Gpu => "gpu".into(),
        },
        name: backend.name(),
        notice,
    }));
    print_summary(&results, default_clock() - started);
    if let (Some(out), Some(file)) = (&args.out, out_file) {
        use std::io::Write;
        let mut w = std::io::BufWriter::new(file);
        w.write_all(results.to_json().as_bytes())
            .and_then(|()| w.flush())
            .map_err(|e| format!("{}: {e}", out.display()))?;
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}

fn print_summary(r: &RealResults, wall: f64) {
    println!(
        "{} ({} train / {} held-out tokens, {} analysed, lambda {})",
        r.source.name,
        r.source.train_tokens,
        r.source.test_tokens,
        r.methods
            .iter()
            .find_map(|m| m.report.as_ref().map(|g| g.tokens))
            .unwrap_or(0),
        r.config.gap_l1()
    );
    println!(
        "{:<28} {:>8} {:>7} {:>6} {:>10} {:>10} {:>8} {:>8} {:>10} {:>10}",
        "method",
        "EV",
        "L0",
        "dead",
        "objective",
        "optimum",
        "gap",
        "cosine",
        "FLOP/tok",
        "opt iters"
    );
    for m in &r.methods {
        match (&m.report, &m.error) {
            (Some(g), _) => println!(
                "{:<28} {:>8.4} {:>7.1} {:>6} {:>10.4e} {:>10.4e} {:>8.4} {:>8.3} {:>10.3e} {:>10}",
                m.name,
                g.own.score.explained_variance,
                g.own.score.l0,
                g.own.score.dead_latents,
                g.own.score.objective,
                g.optimum.score.objective,
                g.amortisation_gap,
                g.code_cosine,
                g.own.flops_per_token,
                format!(
                    "{}{}",
                    g.optimum_solver.iterations,
                    if g.optimum_solver.converged { "" } else { "*" }
                ),
            ),
            (None, Some(e)) => println!("{:<28} stopped: {e}", m.name),
            (None, None) => println!("{:<28} not finished", m.name),
        }
    }
    println!(
        "(gap = objective / optimum - 1 under the method's own dictionary; * = the optimum hit \
         its iteration cap; total {wall:.1} s)"
    );
    for m in &r.methods {
        if let Some(s) = m.report.as_ref().and_then(|g| g.own_solver) {
            println!(
                "{}: its own FISTA {} after {} iterations",
                m.name,
                if s.converged {
                    "converged"
                } else {
                    "stopped at its cap"
                },
                s.iterations
            );
        }
    }
    for m in &r.methods {
        if let Some(g) = &m.report {
            let pts: Vec<String> = g
                .frontier
                .iter()
                .map(|p| {
                    format!(
                        "{:?}{} {:.2e} FLOP -> {:.4e}",
                        p.kind,
                        if p.iterations > 0 {
                            format!("({})", p.iterations)
                        } else {
                            String::new()
                        },
                        p.flops_per_token,
                        p.score.objective
                    )
                })
                .collect();
            println!("frontier {}: {}", m.name, pts.join("; "));
        }
    }
}

/// Where an experiment on activations computes, why there (if that needs saying), and its
/// estimate there if choosing took one.
type Choice = (Arc<dyn Backend>, Option<String>, Option<RealEstimate>);

/// The backend of `--backend` for an experiment on activations. `gpu`: the GPU if it binds the
/// experiment's tensors and passes the parity probe, else the CPU. `auto`: a real GPU that
/// does so and whose trial of the experiment is faster than the CPU's.
fn choose_backend(
    name: &str,
    cfg: &RealConfig,
    acts: &activations::Activations,
    threads: usize,
) -> Result<Choice, String> {
    let cpu: Arc<dyn Backend> = Arc::new(CpuBackend::new(threads));
    let auto = match name {
        "cpu" => return Ok((cpu, None, None)),
        "gpu" => false,
        "auto" => true,
        other => {
            return Err(format!(
                "--backend: expected cpu, gpu or auto, got `{other}`"
            ))
        }
    };
    let gpu = match pollster::block_on(select::gpu_for_activations(
        cfg,
        acts.tokens,
        acts.dim,
        auto,
    )) {
        Ok(gpu) => gpu,
        Err(why) if auto => {
            return Ok((
                cpu,
                Some(format!("auto: {why}; computing on the CPU")),
                None,
            ))
        }
        Err(why) => {
            return Ok((
                cpu,
                Some(format!(
                    "the GPU was asked for but {why}; computing on the CPU"
                )),
                None,
            ))
        }
    };
    let adapter = gpu.adapter().name.clone();
    let gpu: Arc<dyn Backend> = Arc::new(gpu);
    if !auto {
        return Ok((gpu, None, None));
    }
    let cpu_estimate = estimate_seconds(cfg, acts, Arc::clone(&cpu), default_clock)
        .map_err(|e| format!("invalid config: {e}"))?;
    // The first trial on a fresh device compiles its pipelines: the second is timed.
    let trial = || estimate_seconds(cfg, acts, Arc::clone(&gpu), default_clock);
    let gpu_estimate = trial().and_then(|_| trial());
    let gpu_estimate = match gpu_estimate {
        Ok(e) => e,
        Err(e) => {
            return Ok((
                cpu,
                Some(format!(
                    "auto: the GPU's trial failed ({e}); computing on the CPU"
                )),
                Some(cpu_estimate),
            ))
        }
    };
    let (use_gpu, why) =
        select::faster_on_activations(gpu_estimate.seconds, cpu_estimate.seconds, 1, &adapter);
    Ok(if use_gpu {
        (gpu, Some(why), Some(gpu_estimate))
    } else {
        (cpu, Some(why), Some(cpu_estimate))
    })
}
