//! Choosing the backend of an experiment: the CPU, a GPU, or automatically the faster of the
//! two on the experiment's own shapes. Under `auto` the GPU must exist, be a real GPU (software
//! rasterisers are slower than the CPU path), pass a short parity probe against the CPU, and
//! then beat the CPU (all the runs it would do in parallel) on a short timed slice of the
//! experiment itself. Every choice says why, with both speeds, and the reason is recorded in
//! the results.

use super::config::{CheckedConfig, DataConfig};
use super::data::Dataset;
use super::models::{DecoderInit, EncoderModel, EncoderSpec, Objective};
use super::real::{split_sizes, RealConfig};
use super::rng::Rng;
use super::run::{Clock, Experiment, Grouping};
use super::solvers::AdamExp;
use crate::compute::gpu::{AdapterSummary, GpuBackend};
use crate::compute::{read_when_done, Backend, BackendError, CpuBackend, Shape};
use std::sync::Arc;

/// What the user asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// A GPU when one is there, real and correct; else the CPU.
    #[default]
    Auto,
    Cpu,
    Gpu,
}

impl BackendChoice {
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "gpu" | "webgpu" => Ok(Self::Gpu),
            other => Err(format!("unknown backend `{other}`: cpu, gpu or auto")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Cpu => "cpu",
            Self::Gpu => "gpu",
        }
    }
}

/// The backend an experiment runs on, how its runs are stacked, and why it is not the one
/// asked for (if it is not).
#[derive(Debug)]
pub struct Chosen {
    pub backend: Arc<dyn Backend>,
    pub grouping: Grouping,
    pub notice: Option<String>,
    pub adapter: Option<AdapterSummary>,
}

fn cpu(threads: usize, notice: Option<String>) -> Chosen {
    Chosen {
        backend: Arc::new(CpuBackend::new(threads)),
        grouping: Grouping::PerRun,
        notice,
        adapter: None,
    }
}

/// A few steps of SAE training and of the paper's inference on a stack of two, on `gpu` and on
/// the CPU: the GPU must agree within 1e-3 (relative) and report no error.
pub async fn probe(gpu: &dyn Backend) -> Result<(), BackendError> {
    let cpu = CpuBackend::new(1);
    let data_cfg = DataConfig {
        num_samples: 128,
        ..DataConfig::default()
    };
    let data = Dataset::generate(&data_cfg, 7);
    let (dim, atoms) = (data_cfg.data_dim, data_cfg.num_atoms);
    let mut outputs = Vec::new();
    for b in [gpu, &cpu as &dyn Backend] {
        let up = |m: &super::Matrix| b.upload(Shape::new(1, m.nrows(), m.ncols()), m.as_slice());
        let x = up(&data.train_signals);
        let spec = EncoderSpec {
            hidden: vec![],
            topk: None,
            bias: true,
        };
        let mut model = EncoderModel::new(
            b,
            &mut [Rng::new(1), Rng::new(2)],
            &spec,
            dim,
            atoms,
            DecoderInit::Learned,
            Objective::Reconstruction {
                l1_penalty: vec![0.01],
            },
            &[1e-2],
        );
        // Five steps the way runs take them (fused where the backend has a kernel for it).
        model.train_steps(b, &x, None, 5, true);
        model.settle(b);
        let dict = model
            .normalized_dictionary(b)
            .expect("a learned dictionary");
        let mut solver = AdamExp::new(b, dict, &x, &[0.01], 40, &[3e-3]);
        solver.run(b, &x, 40);
        let mut values = read_when_done(b, &model.layers[0].weight).await?;
        values.extend(read_when_done(b, solver.codes()).await?);
        values.extend(read_when_done(b, model.loss()).await?);
        b.health()?;
        outputs.push(values);
    }
    let (g, c) = (&outputs[0], &outputs[1]);
    for (i, (a, b)) in g.iter().zip(c).enumerate() {
        if !a.is_finite() || (a - b).abs() > 1e-3 * (1.0 + b.abs()) {
            return Err(BackendError(format!(
                "the GPU failed its parity probe (value {i}: {a} on the GPU, {b} on the CPU)"
            )));
        }
    }
    Ok(())
}

/// Seconds each backend's timed slice runs for (after a warm-up slice) under `auto`.
const SPEED_PROBE_SECONDS: f64 = 0.25;

/// Wait until everything `b` was given is done (a read completes after the work before it).
async fn sync(b: &dyn Backend) -> Result<(), BackendError> {
    let t = b.zeros(Shape::new(1, 1, 1));
    read_when_done(b, &t).await.map(|_| ())
}

/// Work (training and inference steps, as the progress bar counts them) per second of `config`
/// (or of its runs `only`) on `backend`: one warm-up slice (pipelines compiled, buffers made), then slices of doubling
/// size for about [`SPEED_PROBE_SECONDS`], each timed to the end of the device's work. `None`
/// when the experiment ends within the warm-up (too small to tell).
pub async fn work_rate(
    config: &CheckedConfig,
    backend: Arc<dyn Backend>,
    grouping: Grouping,
    only: Option<&[(usize, u32)]>,
    clock: Clock,
) -> Result<Option<f64>, BackendError> {
    let mut exp =
        Experiment::build(config.clone(), Arc::clone(&backend), grouping, only).with_clock(clock);
    exp.step(1);
    sync(&*backend).await?;
    let (start_work, _) = exp.work();
    let start = clock();
    let mut chunk = 1u64;
    while !exp.is_done() && clock() - start < SPEED_PROBE_SECONDS {
        exp.step(chunk);
        sync(&*backend).await?;
        if let Some(e) = exp.backend_failure() {
            return Err(BackendError(e.to_string()));
        }
        chunk = chunk.saturating_mul(2);
    }
    let (work, _) = exp.work();
    let elapsed = clock() - start;
    Ok((work > start_work && elapsed > 0.0).then(|| (work - start_work) as f64 / elapsed))
}

/// Seconds `config` (or its runs `only`) should take from the start on `backend`, one stack
/// after another as a worker runs them: each stack timed on its own for its share of about
/// [`SPEED_PROBE_SECONDS`] (after a warm-up slice, in slices of doubling size), its whole work
/// divided by its own rate, and the stacks summed. Stacks differ in cost per step by orders of
/// magnitude (an MLP with 256 hidden units against an SAE, inference steps against training
/// steps), so one rate for the mixture would weigh each by its steps instead of its time.
/// A stack that ends within its probe counts the time it took. `None` when nothing was timed.
pub async fn estimate_seconds(
    config: &CheckedConfig,
    backend: Arc<dyn Backend>,
    grouping: Grouping,
    only: Option<&[(usize, u32)]>,
    clock: Clock,
) -> Result<Option<f64>, BackendError> {
    let mut exp =
        Experiment::build(config.clone(), Arc::clone(&backend), grouping, only).with_clock(clock);
    let stacks = exp.stack_count();
    if stacks == 0 {
        return Ok(None);
    }
    let budget = SPEED_PROBE_SECONDS / stacks as f64;
    let mut seconds = 0.0;
    for i in 0..stacks {
        let warm = clock();
        exp.step_stack(i, 1);
        sync(&*backend).await?;
        let (start_work, total, done) = exp.stack_work(i);
        if done {
            seconds += clock() - warm;
            continue;
        }
        let start = clock();
        let mut chunk = 1u64;
        loop {
            exp.step_stack(i, chunk);
            sync(&*backend).await?;
            if let Some(e) = exp.backend_failure() {
                return Err(BackendError(e.to_string()));
            }
            let (work, _, done) = exp.stack_work(i);
            let elapsed = clock() - start;
            if done {
                seconds += clock() - warm;
                break;
            }
            if elapsed >= budget && work > start_work {
                seconds += total as f64 * elapsed / (work - start_work) as f64;
                break;
            }
            chunk = chunk.saturating_mul(2);
        }
    }
    Ok((seconds > 0.0).then_some(seconds))
}

/// Under `auto`: whether the GPU, measured at `gpu_rate`, beats the CPU measured at `cpu_rate`
/// per run with `cpu_parallel` runs at once (work per second, `None` when unmeasured), and the
/// sentence that says so.
pub fn faster(
    gpu_rate: Option<f64>,
    cpu_rate: Option<f64>,
    cpu_parallel: usize,
    gpu: &str,
) -> (bool, String) {
    let rate = |r: f64| {
        if r >= 100.0 {
            format!("{:.0}", r)
        } else {
            format!("{r:.3}")
        }
    };
    match (gpu_rate, cpu_rate) {
        (Some(g), Some(c)) => {
            let cpu_total = c * cpu_parallel.max(1) as f64;
            let use_gpu = g > cpu_total;
            (
                use_gpu,
                format!(
                    "auto: on this experiment, the GPU ({gpu}) ran {} steps/s and the CPU {}                      steps/s ({} run(s) at once); computing on the {}",
                    rate(g),
                    rate(cpu_total),
                    cpu_parallel.max(1),
                    if use_gpu { "GPU" } else { "CPU" }
                ),
            )
        }
        _ => (
            false,
            "auto: this experiment ends within a moment on the CPU, too small for the GPU to              pay; computing on the CPU"
                .to_string(),
        ),
    }
}

/// Choose the backend for `config` (see the module documentation); `cpu_threads` for each run
/// on the CPU, `cpu_parallel` runs at once there (threads or workers), `clock` to time `auto`'s
/// comparison.
pub async fn choose(
    choice: BackendChoice,
    cpu_threads: usize,
    cpu_parallel: usize,
    config: &CheckedConfig,
    clock: Clock,
) -> Chosen {
    if choice == BackendChoice::Cpu {
        return cpu(cpu_threads, None);
    }
    let gpu = match GpuBackend::request().await {
        Ok(g) => g,
        Err(e) => {
            let why = match choice {
                BackendChoice::Gpu => {
                    format!("the GPU was asked for but {e}; computing on the CPU")
                }
                _ => format!("{e}; computing on the CPU"),
            };
            return cpu(cpu_threads, Some(why));
        }
    };
    let adapter = gpu.adapter().clone();
    if choice == BackendChoice::Auto {
        if let Err(why) = refuse_software(&adapter) {
            return cpu(cpu_threads, Some(format!("{why}; computing on the CPU")));
        }
    }
    let per_member = 4 * config.largest_tensor_floats();
    let max = gpu.max_tensor_bytes();
    if per_member > max {
        return cpu(
            cpu_threads,
            Some(format!(
                "a tensor of this experiment needs {} but {} binds at most {}; computing on the CPU",
                super::config::human_bytes(per_member),
                adapter.name,
                super::config::human_bytes(max)
            )),
        );
    }
    if let Err(e) = probe(&gpu).await {
        return cpu(cpu_threads, Some(format!("{e}; computing on the CPU")));
    }
    let members = usize::try_from(max / per_member.max(1))
        .unwrap_or(usize::MAX)
        .clamp(1, 1024);
    let grouping = Grouping::PerMethodUpTo(members);
    let gpu: Arc<dyn Backend> = Arc::new(gpu);
    let mut notice = None;
    if choice == BackendChoice::Auto {
        let gpu_rate = match work_rate(config, Arc::clone(&gpu), grouping, None, clock).await {
            Ok(r) => r,
            Err(e) => return cpu(cpu_threads, Some(format!("{e}; computing on the CPU"))),
        };
        let cpu_backend: Arc<dyn Backend> = Arc::new(CpuBackend::new(cpu_threads));
        let cpu_rate = work_rate(config, cpu_backend, Grouping::PerRun, None, clock)
            .await
            .ok()
            .flatten();
        let runs = config.methods.len() * config.runs as usize;
        let (use_gpu, why) = faster(gpu_rate, cpu_rate, cpu_parallel.min(runs), &adapter.name);
        if !use_gpu {
            return cpu(cpu_threads, Some(why));
        }
        notice = Some(why);
    }
    Chosen {
        backend: gpu,
        grouping,
        notice,
        adapter: Some(adapter),
    }
}

/// Whether `gpu` can compute an experiment on activations of `tokens` x `dim` under `cfg`:
/// its largest tensor (a split of the tokens, or the resampling probe's, by the wider of the
/// dimension and the latents) must fit one binding; else why not.
pub fn gpu_fits_activations(
    gpu: &GpuBackend,
    cfg: &RealConfig,
    tokens: usize,
    dim: usize,
) -> Result<(), String> {
    let (train, test) = split_sizes(tokens, &cfg.preprocess);
    let columns = train.max(test).max(cfg.schedule.probe_tokens);
    let largest = 4 * (columns as u64) * (dim.max(cfg.latents) as u64);
    if largest > gpu.max_tensor_bytes() {
        return Err(format!(
            "a tensor of this run needs about {} but {} binds at most {}",
            super::config::human_bytes(largest),
            gpu.adapter().name,
            super::config::human_bytes(gpu.max_tensor_bytes())
        ));
    }
    Ok(())
}

/// A GPU for an experiment on activations: the adapter, checked by the parity probe of every
/// GPU path and against the experiment's largest tensor; under `auto` a real one only (a
/// software rasteriser is slower than the CPU path). Else why not, to say.
pub async fn gpu_for_activations(
    cfg: &RealConfig,
    tokens: usize,
    dim: usize,
    auto: bool,
) -> Result<GpuBackend, String> {
    let gpu = GpuBackend::request().await.map_err(|e| e.to_string())?;
    if auto {
        refuse_software(gpu.adapter())?;
    }
    gpu_fits_activations(&gpu, cfg, tokens, dim)?;
    probe(&gpu).await.map_err(|e| e.to_string())?;
    Ok(gpu)
}

/// Under `auto`, a software adapter is not taken: why, to say.
pub fn refuse_software(adapter: &AdapterSummary) -> Result<(), String> {
    if adapter.software {
        return Err(format!(
            "the only GPU adapter is a software one ({}), slower than the CPU path (choose the \
             GPU explicitly to use it)",
            adapter.name
        ));
    }
    Ok(())
}

/// Under `auto`, for an experiment on activations: whether the GPU (`gpu`, estimated at
/// `gpu_seconds` from a trial of the experiment on it) beats the CPU (estimated at
/// `cpu_seconds` with `cpu_workers` workers sharing its methods), and the sentence that says
/// so with both figures.
pub fn faster_on_activations(
    gpu_seconds: f64,
    cpu_seconds: f64,
    cpu_workers: usize,
    gpu: &str,
) -> (bool, String) {
    let use_gpu = gpu_seconds.is_finite() && gpu_seconds < cpu_seconds;
    let workers = match cpu_workers {
        0 | 1 => String::new(),
        n => format!(" with {n} workers"),
    };
    (
        use_gpu,
        format!(
            "auto: timed on a trial of this experiment, the GPU ({gpu}) should take {} and the \
             CPU{workers} {}; computing on the {}",
            seconds_text(gpu_seconds),
            seconds_text(cpu_seconds),
            if use_gpu { "GPU" } else { "CPU" }
        ),
    )
}

/// Seconds as people read them: "0.4 s", "12 s", "3 min 5 s", "1 h 2 min".
pub fn seconds_text(s: f64) -> String {
    if !s.is_finite() {
        return "an unknown time".to_string();
    }
    if s < 10.0 {
        return format!("{s:.1} s");
    }
    let whole = s.round() as u64;
    match whole {
        0..60 => format!("{whole} s"),
        60..3600 => format!("{} min {} s", whole / 60, whole % 60),
        _ => format!("{} h {} min", whole / 3600, (whole % 3600) / 60),
    }
}
