//! The command-line tool: run presets or config files (seeds in parallel), score codes and
//! dictionaries produced elsewhere, write datasets, and benchmark against PyTorch.

use crate::{bench, npy};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use sparse_playground::compute::BackendKind;
use sparse_playground::compute::{settle, Backend};
use sparse_playground::core::config::{human_bytes, BudgetScope, ExperimentConfig, Preset};
use sparse_playground::core::metrics;
use sparse_playground::core::results::BackendInfo;
use sparse_playground::core::results::{Results, Stat};
use sparse_playground::core::run::default_clock;
use sparse_playground::core::run::Grouping;
use sparse_playground::core::select::{self, BackendChoice};
use sparse_playground::core::sweep::{
    stack_cap, stack_groups, SweepConfig, SweepPreset, SweepResults, Unit, UnitResult, UnitRun,
    UnitStack,
};
use sparse_playground::core::theory;
use sparse_playground::{CpuBackend, Dataset, Experiment};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser, Debug)]
#[command(
    name = "sparse-playground",
    version,
    about = "Sparse encoders against ground truth: SAEs, MLP encoders, sparse coding and per-sample inference on synthetic compressed-sensing data."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run an experiment (a paper preset or a JSON config) and print a summary.
    Run(Box<RunArgs>),
    /// Print a preset's full JSON config (a starting point for --config).
    Config {
        #[arg(long, default_value = "unknown-zd")]
        preset: String,
    },
    /// Write a config's dataset as .npy files (codes and signals: samples x dims; dictionary: atoms x dims).
    Generate {
        #[command(flatten)]
        source: ConfigSource,
        /// Folder for the files (created if missing).
        #[arg(long)]
        out_dir: PathBuf,
    },
    /// Score codes and/or a dictionary produced elsewhere against ground truth (.npy files).
    Eval(EvalArgs),
    /// Time our engine against PyTorch and scikit-learn on the same machine, side by side.
    Bench(bench::BenchArgs),
    /// Run a sweep (a grid of experiments, or the recovery experiment over delta and rho), or
    /// a shard of it, in parallel on all cores.
    Sweep(SweepArgs),
    /// Join results files made in parts (shards of a sweep, or runs of one experiment).
    Merge {
        /// The parts.
        #[arg(required = true)]
        parts: Vec<PathBuf>,
        /// The joined results file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the Donoho-Tanner weak thresholds of l1 recovery as CSV: delta,rho_signed,rho_nonneg.
    Theory {
        /// Values of delta, evenly spaced over (0, 1].
        #[arg(long, default_value_t = 100)]
        points: usize,
    },
    /// Print the default JSON config of an experiment on real activations (a starting point
    /// for `run --activations FILE --config`).
    RealConfig,
    /// Print a sweep preset's full JSON config (a starting point for `sweep --config`).
    SweepConfig {
        #[arg(long, default_value = "quick-scaling")]
        preset: String,
    },
}

#[derive(Args, Debug)]
struct SweepArgs {
    /// One of the sweep presets (see `sweep-config --preset`): phase, phase-full,
    /// quick-scaling, scaling, quick-l1, l1, quick-topk, topk, quick-width, width, quick-bias,
    /// bias.
    #[arg(long, conflicts_with = "config")]
    preset: Option<String>,
    /// A JSON sweep config.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Run only shard i of n (every n-th unit from the i-th, 0-based), for a batch scheduler:
    /// `--shard 3/16`. `merge` joins the shards' files.
    #[arg(long, value_parser = parse_shard)]
    shard: Option<(usize, usize)>,
    /// The results file.
    #[arg(long)]
    out: PathBuf,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Memory the units running at once may use (default: half of this machine's memory).
    #[arg(long, value_parser = parse_bytes)]
    memory_budget: Option<u64>,
    /// Where to compute: cpu (units in parallel on every core), gpu (on the device, the units
    /// that differ only in their data, seed, lambda, learning rate and TopK's k as one stack per method, as many per stack as
    /// the device binds and --memory-budget allows) or auto (the GPU when a real one is there,
    /// passes a parity probe and is faster on a stack of the sweep's largest unit, else the
    /// CPU).
    #[arg(long, default_value = "cpu")]
    backend: String,
}

/// `i/n` with i < n.
fn parse_shard(text: &str) -> Result<(usize, usize), String> {
    let (i, n) = text
        .split_once('/')
        .ok_or_else(|| format!("`{text}`: a shard is i/n, e.g. 0/4"))?;
    let (i, n): (usize, usize) = (
        i.trim()
            .parse()
            .map_err(|_| format!("`{text}`: i must be a whole number"))?,
        n.trim()
            .parse()
            .map_err(|_| format!("`{text}`: n must be a whole number"))?,
    );
    if n == 0 || i >= n {
        return Err(format!("`{text}`: need 0 <= i < n"));
    }
    Ok((i, n))
}

#[derive(Args, Debug, Clone)]
pub(crate) struct ConfigSource {
    /// One of known-z, known-d, unknown-zd (the paper's three experiments).
    #[arg(long, conflicts_with = "config")]
    pub(crate) preset: Option<String>,
    /// A JSON config file (see `sparse-playground config`; with --activations, a config of
    /// real activations: see `real-config`).
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
    /// Override the number of training steps.
    #[arg(long)]
    pub(crate) steps: Option<u64>,
    /// Override the number of runs (seeds).
    #[arg(long)]
    pub(crate) runs: Option<u32>,
    /// Override the seed.
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Override the evaluation interval (steps).
    #[arg(long)]
    pub(crate) log_every: Option<u64>,
}

#[derive(Args, Debug)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) source: ConfigSource,
    #[command(flatten)]
    pub(crate) real: crate::real::RealArgs,
    /// Write the results JSON here.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub(crate) threads: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    pub(crate) quiet: bool,
    /// Where to compute: cpu, gpu (Vulkan, Metal or DX12 through wgpu) or auto (the GPU when a
    /// real one is there, passes a parity probe and is faster than the CPU on a short timed
    /// trial of the experiment; else the CPU).
    #[arg(long, default_value = "auto")]
    pub(crate) backend: String,
    /// Memory the whole experiment may use, e.g. 8GiB or 500MB (default: half of this
    /// machine's memory). Checked against an estimate before anything is allocated.
    #[arg(long, value_parser = parse_bytes)]
    pub(crate) memory_budget: Option<u64>,
}

/// A progress bar over `total` units drawn by `template` (indicatif's), hidden with `--quiet`.
pub(crate) fn progress_bar(quiet: bool, total: u64, template: &str) -> ProgressBar {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total.max(1))
    };
    bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
    bar
}

/// A size such as `8GiB`, `500MB`, `1.5G` or a plain number of bytes.
fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size like 8GiB, 500MB or 1000000"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" => 1e12,
        "tib" => 1024f64.powi(4),
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}`; use B, KB, KiB, MB, MiB, GB, GiB, TB or TiB"
            ))
        }
    };
    let bytes = value * scale;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(format!("`{text}` is not a usable size"));
    }
    Ok(bytes as u64)
}

/// Half of the machine's physical memory (Linux `/proc/meminfo`), or 8 GiB where that cannot
/// be read: the default memory budget of a run.
pub(crate) fn default_memory_budget() -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
                .map(|kib| kib * 1024)
        });
    total.map_or(8 << 30, |t| t / 2)
}

#[derive(Args, Debug)]
struct EvalArgs {
    /// True codes, samples x latents.
    #[arg(long, requires = "codes")]
    true_codes: Option<PathBuf>,
    /// Inferred codes, samples x latents (any number of latents).
    #[arg(long, requires = "true_codes")]
    codes: Option<PathBuf>,
    /// True dictionary, atoms x dims.
    #[arg(long, requires = "dict")]
    true_dict: Option<PathBuf>,
    /// Learned dictionary, atoms x dims (any number of atoms).
    #[arg(long, requires = "true_dict")]
    dict: Option<PathBuf>,
    /// |s| above this counts as active for L0 and dead latents.
    #[arg(long, default_value_t = 1e-3)]
    l0_threshold: f64,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(*args),
        Command::Config { preset } => Preset::from_name(&preset)
            .map(|p| println!("{}", p.config().to_json_pretty()))
            .map_err(|e| e.to_string()),
        Command::Generate { source, out_dir } => generate(&source, &out_dir),
        Command::Eval(args) => eval(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Sweep(args) => sweep(&args),
        Command::Merge { parts, out } => merge(&parts, &out),
        Command::Theory { points } => {
            println!("delta,rho_signed,rho_nonneg");
            for (d, s, n) in theory::curves(points) {
                println!("{d},{s},{n}");
            }
            Ok(())
        }
        Command::RealConfig => {
            println!("{}", crate::real::default_config_json());
            Ok(())
        }
        Command::SweepConfig { preset } => SweepPreset::from_name(&preset)
            .map(|p| println!("{}", p.config().to_json_pretty()))
            .map_err(|e| e.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(source: &ConfigSource) -> Result<ExperimentConfig, String> {
    let mut config = match (&source.preset, &source.config) {
        (Some(name), None) => Preset::from_name(name).map_err(|e| e.to_string())?.config(),
        (None, Some(path)) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            ExperimentConfig::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        _ => return Err("give --preset NAME or --config FILE.json".to_string()),
    };
    if let Some(steps) = source.steps {
        config.train.steps = steps;
        // A shorter run keeps the evaluations of its schedule that still fall inside it.
        config.train.eval_steps.retain(|&e| e < steps);
    }
    if let Some(runs) = source.runs {
        config.runs = runs;
    }
    if let Some(seed) = source.seed {
        config.seed = seed;
    }
    if let Some(every) = source.log_every {
        // An explicit interval replaces a preset's evaluation schedule.
        config.train.log_every = every;
        config.train.eval_steps.clear();
    }
    Ok(config)
}

fn run(args: RunArgs) -> Result<(), String> {
    if args.real.activations.is_some() || args.real.synthetic.is_some() {
        return crate::real::run(&args);
    }
    let config = load_config(&args.source)?;
    let checked = config
        .validate()
        .map_err(|e| format!("invalid config: {e}"))?;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let budget = args.memory_budget.unwrap_or_else(default_memory_budget);
    checked
        .check_memory(budget, threads, BudgetScope::CommandLine)
        .map_err(|e| format!("invalid config: {e}"))?;
    // Open the output before the run, so an unwritable path is reported in a second, not
    // after hours of work.
    let out_file = args
        .out
        .as_ref()
        .map(|out| std::fs::File::create(out).map_err(|e| format!("--out {}: {e}", out.display())))
        .transpose()?;
    let num_runs = checked.methods.len() * checked.runs as usize;
    // Seeds and methods run in parallel; leftover cores go to each run's matrix products.
    let per_run_threads = (threads / num_runs).max(1);
    let choice = BackendChoice::parse(&args.backend)?;
    let parallel = threads.min(num_runs).max(1);
    let chosen = pollster::block_on(select::choose(
        choice,
        per_run_threads,
        parallel,
        &checked,
        default_clock,
    ));
    if let Some(notice) = &chosen.notice {
        eprintln!("note: {notice}");
    }
    eprintln!("{}", *checked);
    let mut experiment = Experiment::build(
        checked.clone(),
        chosen.backend.clone(),
        chosen.grouping,
        None,
    )
    .with_clock(default_clock);
    experiment.set_notice(chosen.notice.clone());
    eprintln!(
        "data checksum {:016x}; {} runs on {}",
        experiment.data().checksum(),
        num_runs,
        match chosen.backend.kind() {
            BackendKind::Cpu => format!("{threads} CPU thread(s)"),
            BackendKind::Gpu => chosen.backend.name(),
        }
    );
    // Work in steps: training steps plus the evaluations' inference steps.
    let (_, total) = experiment.work();
    let bar = progress_bar(
        args.quiet,
        total,
        "{bar:40.cyan/blue} {percent:>3}% {pos}/{len} steps (training + inference)  {per_sec}  eta {eta}  {msg}",
    );
    let started = default_clock();
    drive(&mut experiment, threads.min(num_runs).max(1), &bar)?;
    let mut results = experiment.results();
    if let Some(failure) = experiment.backend_failure() {
        // The device failed mid-run: keep every finished run and redo the others on the CPU.
        let notice = format!("the GPU failed ({failure}); unfinished runs were redone on the CPU");
        eprintln!("note: {notice}");
        let unfinished = experiment.unfinished_runs();
        let mut finished = results.clone();
        for m in &mut finished.methods {
            m.runs.retain(|r| {
                !unfinished.iter().any(|&(mi, ri)| {
                    checked.methods[mi] == m.method && checked.seed + u64::from(ri) == r.seed
                })
            });
        }
        let mut redo = Experiment::build(
            checked.clone(),
            Arc::new(CpuBackend::new(per_run_threads)),
            Grouping::PerRun,
            Some(&unfinished),
        )
        .with_clock(default_clock);
        drive(&mut redo, threads.min(num_runs).max(1), &bar)?;
        let mut redone = redo.results();
        redone.backend = None;
        results = Results::merge(vec![finished, redone])?;
        if let Some(b) = results.backend.as_mut() {
            b.notice = Some(notice);
        }
    }
    bar.finish_and_clear();
    print_summary(&results, default_clock() - started);
    for run in experiment.runs() {
        if let Some(reason) = run.member.failure() {
            eprintln!("warning: {} (seed {}) {reason}", run.name, run.member.seed);
        }
    }
    if let (Some(out), Some(file)) = (&args.out, out_file) {
        use std::io::Write;
        let mut writer = std::io::BufWriter::new(file);
        writer
            .write_all(results.to_json().as_bytes())
            .and_then(|()| writer.flush())
            .map_err(|e| format!("{}: {e}", out.display()))?;
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}

/// Advance every stack to its end: CPU stacks in parallel on `threads` threads, GPU stacks
/// one after another on this thread (they share one device queue). Stops early when the
/// backend fails.
fn drive(experiment: &mut Experiment, threads: usize, bar: &ProgressBar) -> Result<(), String> {
    let clock = experiment.clock();
    let chunk = experiment.config().train.log_every.clamp(1, 200);
    let backend = experiment.backend().clone();
    if backend.kind() == BackendKind::Gpu {
        while !experiment.is_done() {
            let before = experiment.work().0;
            let logged = experiment
                .step(chunk.max(50))
                .iter()
                .any(|p| p.new_records > 0);
            let done = experiment.work().0;
            settle(backend.as_ref(), logged || done != before);
            bar.inc(done - before);
        }
        return Ok(());
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| e.to_string())?;
    pool.install(|| {
        experiment.stacks_mut().par_iter_mut().for_each(|stack| {
            while !stack.is_done() && stack.backend_failure().is_none() {
                let before = stack.work_done();
                let p = stack.advance(chunk, clock);
                bar.inc(stack.work_done() - before);
                if p.done {
                    bar.set_message(format!("{} done", stack.name));
                }
            }
        });
    });
    Ok(())
}

fn sweep(args: &SweepArgs) -> Result<(), String> {
    let sweep = match (&args.preset, &args.config) {
        (Some(name), None) => SweepPreset::from_name(name)
            .map_err(|e| e.to_string())?
            .config(),
        (None, Some(path)) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            SweepConfig::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        _ => return Err("give --preset NAME or --config FILE.json".to_string()),
    };
    sweep
        .validate()
        .map_err(|e| format!("invalid sweep: {e}"))?;
    let units = match args.shard {
        Some((i, n)) => sweep.shard(i, n),
        None => sweep.units(),
    };
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1)
        .min(units.len().max(1));
    let per_unit = sweep.unit_memory_bytes();
    let budget = args.memory_budget.unwrap_or_else(default_memory_budget);
    if per_unit.saturating_mul(threads as u64) > budget {
        return Err(format!(
            "invalid sweep: memory: {threads} units at once need about {} ({} each), over the \
             memory budget of {}; use fewer --threads or raise --memory-budget",
            human_bytes(per_unit.saturating_mul(threads as u64)),
            human_bytes(per_unit),
            human_bytes(budget)
        ));
    }
    let out_file = std::fs::File::create(&args.out)
        .map_err(|e| format!("--out {}: {e}", args.out.display()))?;
    eprintln!(
        "sweep: {} cell(s) x {} seed(s) = {} units{}; {} here on {threads} thread(s)",
        sweep.cell_count(),
        sweep.seeds,
        sweep.units().len(),
        args.shard
            .map_or(String::new(), |(i, n)| format!(", shard {i}/{n}")),
        units.len()
    );
    let choice = BackendChoice::parse(&args.backend)?;
    let mut gpu = sweep_gpu(choice, &sweep, threads);
    // Stacked units hold their data and tensors at once: as many as the budget allows.
    let budget_members = usize::try_from(budget / per_unit.max(1)).unwrap_or(usize::MAX);
    gpu.max_members = gpu.max_members.min(budget_members).max(1);
    if let Some(notice) = &gpu.notice {
        eprintln!("note: {notice}");
    }
    if let Some(g) = &gpu.backend {
        let stacks = stack_groups(&sweep, &units, gpu.max_members).len();
        eprintln!(
            "units on {}, in {stacks} stack(s) of up to {} units",
            g.name(),
            gpu.max_members
        );
    }
    let bar = progress_bar(
        args.quiet,
        units.len() as u64,
        "{bar:40.cyan/blue} {pos}/{len} units  eta {eta}  {msg}",
    );
    let (results, info) = run_units(&sweep, &units, gpu, threads, &bar)?;
    bar.finish_and_clear();
    if let Some(notice) = &info.notice {
        eprintln!("note: {notice}");
    }
    let invalid = results.iter().filter(|u| u.invalid.is_some()).count();
    if invalid > 0 {
        eprintln!("{invalid} unit(s) are not valid experiments (reported in the file, not run)");
    }
    let mut results = SweepResults::new(sweep, results);
    results.backend = Some(info);
    use std::io::Write;
    let mut writer = std::io::BufWriter::new(out_file);
    writer
        .write_all(results.to_json().as_bytes())
        .and_then(|()| writer.flush())
        .map_err(|e| format!("{}: {e}", args.out.display()))?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

/// The GPU a sweep's units run on, if any, and why not the one asked for.
pub(crate) struct SweepGpu {
    pub backend: Option<Arc<dyn Backend>>,
    pub notice: Option<String>,
    /// The adapter is a software rasteriser (lavapipe, SwiftShader).
    pub software: bool,
    /// Most units computed as one stack (what the device binds of the largest unit).
    pub max_members: usize,
}

/// Choose the device for a sweep: as for one experiment (a real adapter that passes the parity
/// probe), judged on the unit with the largest tensor.
/// `threads`: the units the CPU would run at once instead.
pub(crate) fn sweep_gpu(choice: BackendChoice, sweep: &SweepConfig, threads: usize) -> SweepGpu {
    if choice == BackendChoice::Cpu {
        return SweepGpu {
            backend: None,
            notice: None,
            software: false,
            max_members: 1,
        };
    }
    let Some(probe) = sweep.probe_config() else {
        return SweepGpu {
            backend: None,
            notice: Some("no cell of this sweep is a valid experiment".to_string()),
            software: false,
            max_members: 1,
        };
    };
    let chosen = pollster::block_on(select::choose(choice, 1, threads, &probe, default_clock));
    let max_members = stack_cap(chosen.grouping);
    SweepGpu {
        backend: (chosen.backend.kind() == BackendKind::Gpu).then_some(chosen.backend),
        notice: chosen.notice,
        software: chosen.adapter.is_some_and(|a| a.software),
        max_members,
    }
}

/// Compute `units` of `sweep`: on the GPU in stacks (units that differ only in their data
/// and seed advance together, one stack per method, [`UnitStack`]; the device has one queue,
/// so the stacks go one after another), else in parallel on `threads` CPU threads, one unit
/// each. Units whose GPU fails are redone on the CPU and the rest follow them there: no unit
/// is lost. Returns the results and where they were computed.
pub(crate) fn run_units(
    sweep: &SweepConfig,
    units: &[Unit],
    gpu: SweepGpu,
    threads: usize,
    bar: &ProgressBar,
) -> Result<(Vec<UnitResult>, BackendInfo), String> {
    let cpu_info = |notice: Option<String>| BackendInfo {
        kind: "cpu".to_string(),
        name: format!("{threads} CPU thread(s), one unit each"),
        notice,
    };
    let mut results = Vec::with_capacity(units.len());
    let mut rest: Vec<Unit> = units.to_vec();
    let mut notice = gpu.notice;
    if let Some(device) = gpu.backend {
        let groups = stack_groups(sweep, units, gpu.max_members);
        let mut stacks = 0;
        rest.clear();
        for (g, group) in groups.iter().enumerate() {
            let failure = match UnitStack::new(sweep, group, device.clone(), default_clock) {
                Ok(mut stack) => {
                    stack.run_to_end();
                    match stack.backend_failure() {
                        Some(f) => Some(f.to_string()),
                        None => {
                            results.extend(stack.results());
                            None
                        }
                    }
                }
                // An invalid unit: reported, not run.
                Err(_) => {
                    let run = UnitRun::new(sweep, group[0], device.clone(), default_clock);
                    results.push(run.result());
                    None
                }
            };
            if let Some(failure) = failure {
                rest = groups[g..].concat();
                notice = Some(format!(
                    "the GPU failed ({failure}); these {} unit(s) and the {} after them ran \
                     on the CPU",
                    group.len(),
                    rest.len() - group.len()
                ));
                break;
            }
            stacks += 1;
            bar.inc(group.len() as u64);
        }
        if rest.is_empty() {
            return Ok((
                results,
                BackendInfo {
                    kind: "gpu".to_string(),
                    name: format!("{} ({stacks} stack(s) of units)", device.name()),
                    notice,
                },
            ));
        }
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| e.to_string())?;
    let on_cpu: Vec<_> = pool.install(|| {
        rest.par_iter()
            .map(|&unit| {
                let mut run =
                    UnitRun::new(sweep, unit, Arc::new(CpuBackend::new(1)), default_clock);
                run.run_to_end();
                bar.inc(1);
                run.result()
            })
            .collect()
    });
    let mixed = !results.is_empty();
    results.extend(on_cpu);
    let mut info = cpu_info(notice);
    if mixed {
        info.name = format!("the GPU, then {}", info.name);
    }
    Ok((results, info))
}

fn merge(parts: &[PathBuf], out: &Path) -> Result<(), String> {
    let texts = parts
        .iter()
        .map(|p| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display())))
        .collect::<Result<Vec<_>, _>>()?;
    let is_sweep = texts[0].contains("\"sweep\"") && SweepResults::from_json(&texts[0]).is_ok();
    let json = if is_sweep {
        let parsed = texts
            .iter()
            .zip(parts)
            .map(|(t, p)| SweepResults::from_json(t).map_err(|e| format!("{}: {e}", p.display())))
            .collect::<Result<Vec<_>, _>>()?;
        let merged = SweepResults::merge(parsed)?;
        eprintln!(
            "merged {} file(s): {} of {} units",
            parts.len(),
            merged.units.len(),
            merged.sweep.units().len()
        );
        merged.to_json()
    } else {
        let parsed = texts
            .iter()
            .zip(parts)
            .map(|(t, p)| Results::from_json(t).map_err(|e| format!("{}: {e}", p.display())))
            .collect::<Result<Vec<_>, _>>()?;
        Results::merge(parsed)?.to_json()
    };
    std::fs::write(out, json).map_err(|e| format!("{}: {e}", out.display()))?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

fn fmt_stat(s: Option<Stat>, digits: usize) -> String {
    match s {
        Some(s) => format!("{:.*} ± {:.*}", digits, s.mean, digits, s.std),
        None => "-".to_string(),
    }
}

fn fmt_sci(s: Option<Stat>) -> String {
    s.map_or("-".to_string(), |s| format!("{:.2e}", s.mean))
}

fn print_summary(results: &Results, wall: f64) {
    println!(
        "{:<22} {:>15} {:>15} {:>10} {:>6} {:>5} {:>10} {:>10} {:>8}",
        "method",
        "code MCC",
        "dict MCC",
        "test MSE",
        "L0",
        "dead",
        "train FLOP",
        "infer FLOP",
        "wall s"
    );
    for m in &results.methods {
        let s = &m.summary;
        let name = if s.failed_runs > 0 {
            format!("{} ({} stopped)", m.name, s.failed_runs)
        } else {
            m.name.clone()
        };
        println!(
            "{:<22} {:>15} {:>15} {:>10} {:>6} {:>5} {:>10} {:>10} {:>8}",
            name,
            fmt_stat(s.code_mcc, 3),
            fmt_stat(s.dict_mcc, 3),
            s.test_mse
                .map_or("-".to_string(), |v| format!("{:.2e}", v.mean)),
            s.l0.map_or("-".to_string(), |v| format!("{:.2}", v.mean)),
            s.dead_latents
                .map_or("-".to_string(), |v| format!("{:.1}", v.mean)),
            fmt_sci(s.train_flops),
            fmt_sci(s.infer_flops),
            s.wall_s
                .map_or("-".to_string(), |v| format!("{:.1}", v.mean)),
        );
    }
    println!("(mean ± std over seeds of each run's final evaluation; total {wall:.1} s)");
}

fn generate(source: &ConfigSource, out_dir: &Path) -> Result<(), String> {
    let config = load_config(source)?;
    let checked = config
        .validate()
        .map_err(|e| format!("invalid config: {e}"))?;
    let data = Dataset::generate(&checked.data, checked.seed);
    std::fs::create_dir_all(out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    for (name, m) in [
        ("dictionary.npy", &data.dictionary),
        ("train_codes.npy", &data.train_codes),
        ("train_signals.npy", &data.train_signals),
        ("test_codes.npy", &data.test_codes),
        ("test_signals.npy", &data.test_signals),
    ] {
        npy::save_columns(&out_dir.join(name), m)?;
    }
    println!(
        "wrote {} (data checksum {:016x})",
        out_dir.display(),
        data.checksum()
    );
    Ok(())
}

fn eval(args: &EvalArgs) -> Result<(), String> {
    let mut report = serde_json::Map::new();
    if let (Some(t), Some(c)) = (&args.true_codes, &args.codes) {
        let truth = npy::load_as_columns(t)?;
        let codes = npy::load_as_columns(c)?;
        if truth.ncols() != codes.ncols() {
            return Err(format!(
                "true codes have {} samples but codes have {}: both must be samples x latents",
                truth.ncols(),
                codes.ncols()
            ));
        }
        let m = metrics::code_mcc(&truth, &codes).map_err(|e| e.to_string())?;
        let sp = metrics::sparsity(&codes, args.l0_threshold).map_err(|e| e.to_string())?;
        report.insert("code_mcc".into(), m.mcc.into());
        report.insert("l0".into(), sp.l0.into());
        report.insert("dead_latents".into(), sp.dead_latents.into());
        report.insert("true_latents".into(), truth.nrows().into());
        report.insert("inferred_latents".into(), codes.nrows().into());
        report.insert("samples".into(), truth.ncols().into());
    }
    if let (Some(t), Some(d)) = (&args.true_dict, &args.dict) {
        let truth = npy::load_as_columns(t)?;
        let dict = npy::load_as_columns(d)?;
        if truth.nrows() != dict.nrows() {
            return Err(format!(
                "true atoms have {} dims but learned atoms have {}: both must be atoms x dims",
                truth.nrows(),
                dict.nrows()
            ));
        }
        report.insert(
            "dict_mcc".into(),
            metrics::dict_mcc(&truth, &dict)
                .map_err(|e| e.to_string())?
                .mcc
                .into(),
        );
    }
    if report.is_empty() {
        return Err("give --true-codes with --codes, and/or --true-dict with --dict".to_string());
    }
    if args.json {
        println!("{}", serde_json::Value::Object(report));
    } else {
        for (k, v) in &report {
            println!("{k:<17} {v}");
        }
    }
    Ok(())
}
