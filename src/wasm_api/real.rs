//! Experiments on real activations in the browser: the file's bytes go in once, the engine
//! advances in slices of a time budget (training steps, then the analysis' solver iterations),
//! and the results come out as the CLI's JSON.

use super::clock_seconds;
use crate::compute::gpu::GpuBackend;
use crate::compute::{Backend, BackendKind};
use crate::core::config::DataConfig;
use crate::core::config::{human_bytes, limits};
use crate::core::real::{
    estimate_seconds, estimate_seconds_async, synthetic_activations, RealConfig, RealExperiment,
    Truth,
};
use crate::core::results::BackendInfo;
use crate::core::select;
use crate::formats::activations;
use crate::CpuBackend;
use std::sync::Arc;
use wasm_bindgen::prelude::*;

/// The default config of an experiment on real activations (JSON text).
#[wasm_bindgen(js_name = realDefaults)]
pub fn real_defaults() -> String {
    serde_json::to_string(&RealConfig::default()).expect("configs serialise")
}

/// Check token texts against activations of `rows` tokens: the number of contexts, or an error
/// naming what does not match.
#[wasm_bindgen(js_name = inspectTokens)]
pub fn inspect_tokens(text: &str, rows: usize) -> Result<usize, JsError> {
    activations::parse_tokens(text, rows)
        .map(|t| t.context_starts.len())
        .map_err(|e| JsError::new(&e.to_string()))
}

/// The page's memory budget: the file's values as f32, plus the experiment if one is given.
fn budget(acts: &activations::Activations, cfg: Option<&RealConfig>) -> Result<(), JsError> {
    let need = acts.f32_bytes() + cfg.map_or(0, |c| c.floats(acts.tokens, acts.dim) * 4);
    if need > limits::PAGE_MEMORY_BUDGET {
        return Err(JsError::new(&format!(
            "memory: this needs about {} in the page, over its budget of {}; use fewer tokens \
             (preprocess.max_tokens), latents or methods, or the command line",
            human_bytes(need),
            human_bytes(limits::PAGE_MEMORY_BUDGET)
        )));
    }
    Ok(())
}

/// Activations read once in the worker: estimates and runs are made from them without the
/// file's bytes crossing again.
#[wasm_bindgen]
#[derive(Debug)]
pub struct RealSource {
    /// Shared with the runs made from it, which read their minibatches from it.
    acts: Arc<activations::Activations>,
    /// What synthetic activations were made of (none for a file).
    truth: Option<Truth>,
}

/// The data model of synthetic activations: `atoms` unit atoms in `dim` dimensions, `k` active
/// per token (non-negative codes), `tokens` tokens.
fn synthetic_data(atoms: u32, dim: u32, k: u32, tokens: u32) -> Result<DataConfig, JsError> {
    let data = DataConfig {
        num_atoms: atoms as usize,
        data_dim: dim as usize,
        sparsity_k: k as usize,
        num_samples: tokens as usize,
        ..DataConfig::default()
    };
    data.check().map_err(|e| JsError::new(&e.to_string()))?;
    Ok(data)
}

/// Check the sizes of synthetic activations for the page (the same checks as the worker's
/// `RealSource.synthetic`) and say what they would be: `{tokens, dim}`.
#[wasm_bindgen(js_name = checkSynthetic)]
pub fn check_synthetic(atoms: u32, dim: u32, k: u32, tokens: u32) -> Result<JsValue, JsError> {
    let data = synthetic_data(atoms, dim, k, tokens)?;
    let bytes = (data.num_samples * data.data_dim) as u64 * 4;
    if bytes > limits::PAGE_MEMORY_BUDGET {
        return Err(JsError::new(&format!(
            "memory: {} of activations, over the page's budget of {}",
            human_bytes(bytes),
            human_bytes(limits::PAGE_MEMORY_BUDGET)
        )));
    }
    super::to_js(&serde_json::json!({ "tokens": data.num_samples, "dim": data.data_dim }))
}

#[wasm_bindgen]
impl RealSource {
    /// Read activations from a file's bytes (an error names what is wrong with it).
    #[wasm_bindgen(constructor)]
    pub fn new(bytes: &[u8], tensor: Option<String>) -> Result<RealSource, JsError> {
        let acts = activations::parse(bytes, tensor.as_deref())
            .map_err(|e| JsError::new(&e.to_string()))?;
        budget(&acts, None)?;
        Ok(RealSource {
            acts: Arc::new(acts),
            truth: None,
        })
    }

    /// Synthetic activations of the paper's data model drawn from `seed`, with their truth:
    /// experiments on them also report code and dictionary MCC.
    pub fn synthetic(
        atoms: u32,
        dim: u32,
        k: u32,
        tokens: u32,
        seed: f64,
    ) -> Result<RealSource, JsError> {
        if !(seed.is_finite() && seed >= 0.0 && seed.fract() == 0.0 && seed < 2f64.powi(53)) {
            return Err(JsError::new(&format!(
                "seed: expected a whole number from 0, got {seed}"
            )));
        }
        let seed = seed as u64;
        let data = synthetic_data(atoms, dim, k, tokens)?;
        let (acts, truth) = synthetic_activations(&data, seed);
        budget(&acts, None)?;
        Ok(RealSource {
            acts: Arc::new(acts),
            truth: Some(truth),
        })
    }

    /// What the activations are: `{tokens, dim, dtype, tensor}`.
    pub fn describe(&self) -> Result<JsValue, JsError> {
        super::to_js(&serde_json::json!({
            "tokens": self.acts.tokens,
            "dim": self.acts.dim,
            "dtype": self.acts.dtype,
            "tensor": self.acts.tensor,
        }))
    }

    /// The estimates of `config_json` that choosing `backend` needs, a promise of `{cpu, gpu,
    /// adapter, why}`: `cpu` the estimate on the CPU (as [`estimate`](Self::estimate)) under
    /// `cpu` and `auto`, and under `gpu` where the GPU cannot compute the experiment; `gpu` a
    /// trial's estimate on this worker's GPU (as `estimate`, timed on the GPU) under `gpu` and
    /// `auto` where it can, `adapter` its name; `why` where it cannot, why. A fresh GPU runs
    /// the trial twice and keeps the second (the first compiles its pipelines). An error is the
    /// config's.
    #[wasm_bindgen(js_name = estimateOn)]
    pub fn estimate_on(
        &self,
        config_json: &str,
        backend: &str,
    ) -> Result<js_sys::Promise, JsError> {
        let (want_cpu, want_gpu, auto) = match backend {
            "cpu" => (true, false, false),
            "gpu" => (false, true, false),
            "auto" => (true, true, true),
            other => {
                return Err(JsError::new(&format!(
                    "backend: expected cpu, gpu or auto, got {other:?}"
                )))
            }
        };
        // The CPU's estimate first: it also checks the config (an error is the config's). Under
        // `gpu` it is needed only where the GPU cannot compute the experiment, but it is made
        // here, where the source is at hand.
        let cpu_json = self.estimate_json(config_json)?;
        let cfg = RealConfig::from_json(config_json).map_err(|e| JsError::new(&e.to_string()))?;
        let acts = Arc::clone(&self.acts);
        let need = cpu_json["memory"].clone();
        Ok(wasm_bindgen_futures::future_to_promise(async move {
            let mut reply = serde_json::json!({ "cpu": want_cpu.then_some(&cpu_json) });
            if want_gpu {
                match real_gpu(&cfg, acts.tokens, acts.dim, auto).await {
                    Ok(gpu) => {
                        let trial = || {
                            estimate_seconds_async(
                                &cfg,
                                &acts,
                                Arc::clone(&gpu) as Arc<dyn Backend>,
                                clock_seconds,
                            )
                        };
                        let warm = if GPU_WARM.with(|w| w.get()) {
                            Ok(())
                        } else {
                            trial().await.map(|_| GPU_WARM.with(|w| w.set(true)))
                        };
                        let timed = match warm {
                            Ok(()) => trial().await,
                            Err(e) => Err(e),
                        };
                        match timed {
                            Ok(estimate) => {
                                let mut estimate =
                                    serde_json::to_value(estimate).expect("estimates serialise");
                                estimate["memory"] = need;
                                reply["gpu"] = estimate;
                                reply["adapter"] = gpu.adapter().name.clone().into();
                            }
                            // The config passed the CPU's trial: the GPU's failure is its own.
                            Err(e) => {
                                reply["why"] =
                                    format!("the GPU's trial of the run failed ({e})").into();
                                reply["cpu"] = cpu_json;
                            }
                        }
                    }
                    Err(why) => {
                        reply["why"] = why.into();
                        reply["cpu"] = cpu_json;
                    }
                }
            }
            super::to_js(&reply).map_err(JsValue::from)
        }))
    }

    /// Seconds the experiment of `config_json` should take in this worker, from a short trial
    /// of it (`core::real::estimate_seconds`): `{seconds, training, analysis, analysis_max,
    /// per_method, memory}`, `memory` being the bytes a worker computing it needs (the
    /// activations and every method's state: an upper bound for a part of it).
    /// The browser's compiler swaps in optimised code once functions are hot, so a trial in a
    /// fresh worker first warms up on one method. An error is the config's.
    pub fn estimate(&self, config_json: &str) -> Result<JsValue, JsError> {
        super::to_js(&self.estimate_json(config_json)?)
    }

    fn estimate_json(&self, config_json: &str) -> Result<serde_json::Value, JsError> {
        let cfg = RealConfig::from_json(config_json).map_err(|e| JsError::new(&e.to_string()))?;
        cfg.validate(self.acts.tokens, self.acts.dim)
            .map_err(|e| JsError::new(&e.to_string()))?;
        budget(&self.acts, Some(&cfg))?;
        let trial = |cfg: &RealConfig| {
            estimate_seconds(cfg, &self.acts, Arc::new(CpuBackend::new(1)), clock_seconds)
                .map_err(|e| JsError::new(&e))
        };
        if !WARM.with(|w| w.replace(true)) {
            let mut first = cfg.clone();
            first.methods.truncate(1);
            trial(&first)?;
        }
        let need = self.acts.f32_bytes() + cfg.floats(self.acts.tokens, self.acts.dim) * 4;
        let mut reply = serde_json::to_value(trial(&cfg)?).expect("estimates serialise");
        reply["memory"] = need.into();
        Ok(reply)
    }
}

/// A file's bytes gathered in chunks straight into the engine's memory, then read as
/// activations: the worker reads a Blob piece by piece, so the file never exists whole in
/// JavaScript's memory beside its copy here.
#[wasm_bindgen]
#[derive(Debug)]
pub struct RealSourceBuilder {
    bytes: Vec<u8>,
    size: usize,
}

#[wasm_bindgen]
impl RealSourceBuilder {
    /// Room for a file of `size` bytes, or an error if the page cannot hold it.
    #[wasm_bindgen(constructor)]
    pub fn new(size: f64) -> Result<RealSourceBuilder, JsError> {
        if !(size.is_finite() && size >= 0.0) || size > limits::PAGE_MEMORY_BUDGET as f64 {
            return Err(JsError::new(&format!(
                "the file is {}; the page reads files of at most {} (use the command line)",
                human_bytes(size.max(0.0) as u64),
                human_bytes(limits::PAGE_MEMORY_BUDGET)
            )));
        }
        let size = size as usize;
        let mut bytes = Vec::new();
        bytes.try_reserve_exact(size).map_err(|_| {
            JsError::new(&format!(
                "memory: the page could not set aside {} for the file",
                human_bytes(size as u64)
            ))
        })?;
        Ok(RealSourceBuilder { bytes, size })
    }

    /// The next piece of the file.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), JsError> {
        if self.bytes.len() + chunk.len() > self.size {
            return Err(JsError::new("the file grew while it was read"));
        }
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }

    /// The activations in the whole file (the bytes are freed as soon as they are read).
    pub fn finish(self, tensor: Option<String>) -> Result<RealSource, JsError> {
        if self.bytes.len() != self.size {
            return Err(JsError::new(&format!(
                "the file ended after {} of its {} bytes",
                self.bytes.len(),
                self.size
            )));
        }
        RealSource::new(&self.bytes, tensor)
    }
}

thread_local! {
    /// Whether this worker has run a trial already (its code is warm).
    static WARM: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// One experiment on real activations, advanced by the worker in slices.
#[wasm_bindgen]
#[derive(Debug)]
pub struct RealRunner {
    exp: RealExperiment,
    /// Where it computes, when it was chosen (`RealRunner.create`): recorded in its results.
    backend: Option<BackendInfo>,
}

thread_local! {
    /// This worker's GPU once asked for and probed (kept: a device compiles its pipelines once,
    /// and estimates and runs share it), or why there is none.
    static GPU: std::cell::RefCell<Option<Result<Arc<GpuBackend>, String>>> =
        const { std::cell::RefCell::new(None) };
    /// Whether a trial has run on that GPU (its pipelines are compiled).
    static GPU_WARM: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// This worker's GPU, asked for and checked by the parity probe of every GPU path the first
/// time (again if the device was lost since); else why there is none.
async fn probed_gpu() -> Result<Arc<GpuBackend>, String> {
    match GPU.with(|g| g.borrow().clone()) {
        Some(Ok(gpu)) if gpu.health().is_ok() => return Ok(gpu),
        Some(Err(why)) => return Err(why),
        _ => {}
    }
    let got = async {
        let gpu = GpuBackend::request().await.map_err(|e| e.to_string())?;
        select::probe(&gpu).await.map_err(|e| e.to_string())?;
        Ok(Arc::new(gpu))
    }
    .await;
    GPU.with(|g| *g.borrow_mut() = Some(got.clone()));
    GPU_WARM.with(|w| w.set(false));
    got
}

/// A GPU for an experiment on activations: this worker's probed GPU, if it binds the
/// experiment's largest tensor; under `auto` a real one only (software adapters, taken when
/// asked for explicitly, are slower than the CPU path). Else why not, to say in the page.
async fn real_gpu(
    cfg: &RealConfig,
    tokens: usize,
    dim: usize,
    auto: bool,
) -> Result<Arc<GpuBackend>, String> {
    let gpu = probed_gpu().await?;
    if auto {
        select::refuse_software(gpu.adapter())?;
    }
    select::gpu_fits_activations(&gpu, cfg, tokens, dim)?;
    Ok(gpu)
}

/// Under `auto`, for the page: whether the GPU's estimate (`gpu_seconds`) beats the CPU's
/// (`cpu_seconds`, its methods shared by `workers` workers) and the sentence that says so with
/// both figures, as `{gpu, notice}` (`core::select::faster_on_activations`).
#[wasm_bindgen(js_name = realAuto)]
pub fn real_auto(
    gpu_seconds: f64,
    cpu_seconds: f64,
    workers: u32,
    adapter: &str,
) -> Result<JsValue, JsError> {
    let (gpu, notice) =
        select::faster_on_activations(gpu_seconds, cpu_seconds, workers as usize, adapter);
    super::to_js(&serde_json::json!({ "gpu": gpu, "notice": notice }))
}

#[wasm_bindgen]
impl RealRunner {
    /// Check `config_json` against the activations of `source` and set the experiment up:
    /// all its methods, or only those of `only` (indices in the config's list, increasing)
    /// when workers share them.
    #[wasm_bindgen(constructor)]
    pub fn new(
        source: &RealSource,
        config_json: &str,
        only: Option<Vec<u32>>,
    ) -> Result<RealRunner, JsError> {
        let acts = &source.acts;
        let cfg = RealConfig::from_json(config_json).map_err(|e| JsError::new(&e.to_string()))?;
        cfg.validate(acts.tokens, acts.dim)
            .map_err(|e| JsError::new(&e.to_string()))?;
        budget(acts, Some(&cfg))?;
        let only: Vec<usize> = match only {
            Some(list) => list.into_iter().map(|i| i as usize).collect(),
            None => (0..cfg.methods.len()).collect(),
        };
        let mut exp = RealExperiment::new_part(
            cfg,
            Arc::clone(acts),
            Arc::new(CpuBackend::new(1)),
            clock_seconds,
            &only,
        )
        .map_err(|e| JsError::new(&e.to_string()))?;
        if let Some(truth) = &source.truth {
            exp = exp.with_truth(truth).map_err(|e| JsError::new(&e))?;
        }
        Ok(RealRunner { exp, backend: None })
    }

    /// As the constructor, on the backend `backend` asks for: `cpu`, or `gpu` (WebGPU, if an
    /// adapter exists, binds the run's tensors and passes the parity probe; else the CPU, with
    /// a notice saying why). `notice`, if given, is why it computes there (`auto`'s choice) and
    /// goes into the results. A promise of the runner; `backendInfo()` says where it computes.
    pub fn create(
        source: &RealSource,
        config_json: &str,
        only: Option<Vec<u32>>,
        backend: &str,
        notice: Option<String>,
    ) -> Result<js_sys::Promise, JsError> {
        let acts = Arc::clone(&source.acts);
        let truth = source.truth.clone();
        let cfg = RealConfig::from_json(config_json).map_err(|e| JsError::new(&e.to_string()))?;
        cfg.validate(acts.tokens, acts.dim)
            .map_err(|e| JsError::new(&e.to_string()))?;
        budget(&acts, Some(&cfg))?;
        let want_gpu = match backend {
            "cpu" => false,
            "gpu" => true,
            other => {
                return Err(JsError::new(&format!(
                    "backend: expected cpu or gpu, got {other:?}"
                )))
            }
        };
        let only: Vec<usize> = match only {
            Some(list) => list.into_iter().map(|i| i as usize).collect(),
            None => (0..cfg.methods.len()).collect(),
        };
        Ok(wasm_bindgen_futures::future_to_promise(async move {
            let cpu = || -> Arc<dyn Backend> { Arc::new(CpuBackend::new(1)) };
            let (chosen, notice) = if want_gpu {
                match real_gpu(&cfg, acts.tokens, acts.dim, false).await {
                    Ok(gpu) => (gpu as Arc<dyn Backend>, notice),
                    Err(why) => (
                        cpu(),
                        Some(format!(
                            "the GPU was asked for but {why}; computing on the CPU"
                        )),
                    ),
                }
            } else {
                (cpu(), notice)
            };
            let info = BackendInfo {
                kind: match chosen.kind() {
                    BackendKind::Cpu => "cpu".into(),
                    BackendKind::Gpu => "gpu".into(),
                },
                name: chosen.name(),
                notice,
            };
            let fail = |e: String| JsValue::from(JsError::new(&e));
            let mut exp = RealExperiment::new_part(cfg, acts, chosen, clock_seconds, &only)
                .map_err(|e| fail(e.to_string()))?
                .polling();
            if let Some(truth) = &truth {
                exp = exp.with_truth(truth).map_err(fail)?;
            }
            Ok(JsValue::from(RealRunner {
                exp,
                backend: Some(info),
            }))
        }))
    }

    /// `{kind, name, notice}`: where the run computes (only for runners from `create`).
    #[wasm_bindgen(js_name = backendInfo)]
    pub fn backend_info(&self) -> Result<JsValue, JsError> {
        super::to_js(&self.backend)
    }

    /// Work for about `ms` milliseconds; true once everything is done. Returns early while
    /// the run waits for reads from the GPU, which arrive only once the worker yields.
    #[wasm_bindgen(js_name = runFor)]
    pub fn run_for(&mut self, ms: f64) -> Result<bool, JsError> {
        let end = clock_seconds() + ms / 1000.0;
        while !self.exp.is_done() && clock_seconds() < end {
            self.exp
                .advance(4)
                .map_err(|e| JsError::new(&e.to_string()))?;
            if self.exp.waiting() {
                break;
            }
        }
        Ok(self.exp.is_done())
    }

    /// All the work done and to do (training and the gap's analysis, in FLOPs), as
    /// `[done, total]` (`core::real::RealExperiment::work`).
    pub fn progress(&self) -> Vec<f64> {
        let (done, total) = self.exp.work();
        vec![done, total]
    }

    pub fn status(&self) -> String {
        self.exp.status()
    }

    /// Feature `latent` of method `method` (JSON of `core::real::FeatureView`, its `top` most
    /// activating held-out tokens), once that method's training is over.
    #[wasm_bindgen(js_name = featureView)]
    pub fn feature_view(
        &self,
        method: usize,
        latent: usize,
        top: usize,
    ) -> Result<String, JsError> {
        let view = self
            .exp
            .feature_view(method, latent, top)
            .map_err(|e| JsError::new(&e))?;
        Ok(serde_json::to_string(&view).expect("views serialise"))
    }

    /// The unit decoder atom of feature `latent` of method `method`, to match in the methods
    /// other workers compute.
    pub fn atom(&self, method: usize, latent: usize) -> Result<Vec<f32>, JsError> {
        self.exp.atom(method, latent).map_err(|e| JsError::new(&e))
    }

    /// The best match of `atom` in each method computed here but `except` (JSON of a list of
    /// `core::real::Neighbour`).
    pub fn matches(&self, atom: &[f32], except: usize) -> String {
        serde_json::to_string(&self.exp.matches(atom, except)).expect("neighbours serialise")
    }

    /// Method `method`'s latents, most often active first (flat: latent, frequency, ...), or
    /// nothing before its training is over.
    #[wasm_bindgen(js_name = featuresByFrequency)]
    pub fn features_by_frequency(&self, method: usize) -> Vec<f64> {
        self.exp
            .features_by_frequency(method)
            .map(|v| v.into_iter().flat_map(|(j, f)| [j as f64, f]).collect())
            .unwrap_or_default()
    }

    #[wasm_bindgen(js_name = resultsJson)]
    pub fn results_json(&self) -> String {
        self.exp.results(self.backend.clone()).to_json()
    }
}
