//! Choosing the backend of an experiment: the CPU, a GPU, or automatically the GPU when an
//! adapter exists, is a real GPU (software rasterisers are slower than the CPU path) and
//! passes a short parity probe against the CPU. Every fallback says why, and the reason is
//! recorded in the results.

use super::config::{CheckedConfig, DataConfig};
use super::data::Dataset;
use super::models::{DecoderInit, EncoderModel, EncoderSpec, Objective};
use super::rng::Rng;
use super::run::Grouping;
use super::solvers::AdamExp;
use crate::compute::gpu::{AdapterSummary, GpuBackend};
use crate::compute::{Backend, BackendError, CpuBackend, Shape, Tensor};
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

/// Read a tensor back, waiting natively and yielding in a browser.
async fn fetch(b: &dyn Backend, t: &Tensor) -> Result<Vec<f32>, BackendError> {
    let read = b.read(t);
    b.flush();
    b.wait();
    read.await
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
            Objective::Reconstruction { l1_penalty: 0.01 },
            &[1e-2],
        );
        for _ in 0..5 {
            model.train_step(b, &x, None, true);
        }
        let dict = model
            .normalized_dictionary(b)
            .expect("a learned dictionary");
        let mut solver = AdamExp::new(b, dict, &x, 0.01, 40, &[3e-3]);
        solver.run(b, &x, 40);
        let mut values = fetch(b, &model.layers[0].weight).await?;
        values.extend(fetch(b, solver.codes()).await?);
        values.extend(fetch(b, model.loss()).await?);
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

/// Choose the backend for `config` (see the module documentation); `cpu_threads` for the CPU.
pub async fn choose(choice: BackendChoice, cpu_threads: usize, config: &CheckedConfig) -> Chosen {
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
    if choice == BackendChoice::Auto && adapter.software {
        return cpu(
            cpu_threads,
            Some(format!(
                "the only GPU adapter is a software one ({}), slower than the CPU path; \
                 computing on the CPU (choose the GPU explicitly to use it)",
                adapter.name
            )),
        );
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
    Chosen {
        backend: Arc::new(gpu),
        grouping: Grouping::PerMethodUpTo(members),
        notice: None,
        adapter: Some(adapter),
    }
}
