//! The results file: config, per-run logs and per-method summaries. The CLI writes it, the
//! browser reads and writes the same schema.

use super::config::{ExperimentConfig, MethodConfig, CONFIG_VERSION};
use serde::{Deserialize, Serialize};

/// One evaluation on the test set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    /// Optimiser steps done.
    pub step: u64,
    /// Code MCC on the test set (index-matched mean correlation in the known-codes setting).
    pub code_mcc: f64,
    /// Dictionary MCC (none without a dictionary).
    pub dict_mcc: Option<f64>,
    /// Mean squared reconstruction error on the test set.
    pub test_mse: Option<f64>,
    /// Normalised MSE (fraction of variance unexplained).
    #[serde(default)]
    pub nmse: Option<f64>,
    /// Mean active latents per test sample.
    pub l0: f64,
    #[serde(default)]
    pub dead_latents: usize,
    /// Loss of the last training step.
    #[serde(default)]
    pub train_loss: Option<f64>,
    /// FLOPs spent training so far.
    pub train_flops: f64,
    /// FLOPs to infer codes for the whole test set at this point.
    pub infer_flops: f64,
    /// How the per-sample solver ended, where it stops on a convergence test (FISTA with a
    /// tolerance): its iterations and whether it converged before its cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub solver: Option<crate::core::solvers::SolverStats>,
    /// Seconds spent on this run so far (training and evaluation).
    pub wall_s: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunLog {
    pub seed: u64,
    pub log: Vec<LogRecord>,
    /// Why the run stopped early (e.g. training diverged); its log ends at the last good
    /// evaluation and it is left out of the method's summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Mean and (population) standard deviation over runs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    pub mean: f64,
    pub std: f64,
}

impl Stat {
    pub fn of(values: &[f64]) -> Option<Stat> {
        if values.is_empty() {
            return None;
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        Some(Stat {
            mean,
            std: var.sqrt(),
        })
    }
}

/// Summary of each run's last record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub step: Option<Stat>,
    pub code_mcc: Option<Stat>,
    pub dict_mcc: Option<Stat>,
    pub test_mse: Option<Stat>,
    pub nmse: Option<Stat>,
    pub l0: Option<Stat>,
    pub dead_latents: Option<Stat>,
    pub train_flops: Option<Stat>,
    pub infer_flops: Option<Stat>,
    pub wall_s: Option<Stat>,
    /// Runs that stopped early (not summarised).
    #[serde(default)]
    pub failed_runs: usize,
}

impl Summary {
    pub fn of(runs: &[RunLog]) -> Self {
        // A run that stopped early has no final result: its last good record would read as one.
        let last: Vec<&LogRecord> = runs
            .iter()
            .filter(|r| r.error.is_none())
            .filter_map(|r| r.log.last())
            .collect();
        let stat = |f: &dyn Fn(&LogRecord) -> Option<f64>| {
            let values: Vec<f64> = last.iter().filter_map(|r| f(r)).collect();
            // A metric missing from some runs is not summarised from the others.
            if values.len() == last.len() {
                Stat::of(&values)
            } else {
                None
            }
        };
        Summary {
            step: stat(&|r| Some(r.step as f64)),
            code_mcc: stat(&|r| Some(r.code_mcc)),
            dict_mcc: stat(&|r| r.dict_mcc),
            test_mse: stat(&|r| r.test_mse),
            nmse: stat(&|r| r.nmse),
            l0: stat(&|r| Some(r.l0)),
            dead_latents: stat(&|r| Some(r.dead_latents as f64)),
            train_flops: stat(&|r| Some(r.train_flops)),
            infer_flops: stat(&|r| Some(r.infer_flops)),
            wall_s: stat(&|r| Some(r.wall_s)),
            failed_runs: runs.iter().filter(|r| r.error.is_some()).count(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MethodResults {
    pub name: String,
    pub method: MethodConfig,
    pub runs: Vec<RunLog>,
    #[serde(rename = "final")]
    pub summary: Summary,
}

impl MethodResults {
    pub fn new(name: String, method: MethodConfig, runs: Vec<RunLog>) -> Self {
        let summary = Summary::of(&runs);
        Self {
            name,
            method,
            runs,
            summary,
        }
    }
}

/// A whole results file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub version: u32,
    pub engine: String,
    pub config: ExperimentConfig,
    /// Checksum of the generated data (hex), so a reader can tell it reproduced the same data.
    pub data_checksum: String,
    /// Where it was computed (absent in files from before backends were recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<BackendInfo>,
    pub methods: Vec<MethodResults>,
}

/// The backend a results file was computed on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackendInfo {
    /// `cpu` or `gpu`.
    pub kind: String,
    /// The backend's name: threads for the CPU, the adapter and API for a GPU.
    pub name: String,
    /// Why it is not the backend that was asked for (no adapter, a failed probe, a lost device).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
}

impl Results {
    pub fn new(config: ExperimentConfig, checksum: u64, methods: Vec<MethodResults>) -> Self {
        Self {
            version: CONFIG_VERSION,
            backend: None,
            engine: format!("sparse-playground {}", env!("CARGO_PKG_VERSION")),
            config,
            data_checksum: format!("{checksum:016x}"),
            methods,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("results always serialise")
    }

    /// Join results of the same experiment computed in parts (a worker pool's shares, shards
    /// of a batch job, runs redone on another backend): the runs of each method come together,
    /// ordered by seed; a run present twice keeps its first copy. The parts must share config
    /// and data.
    pub fn merge(parts: Vec<Results>) -> Result<Results, String> {
        let mut parts = parts.into_iter();
        let mut out = parts.next().ok_or("nothing to merge")?;
        for part in parts {
            if part.config != out.config {
                return Err(
                    "the results describe different experiments (their configs differ)".into(),
                );
            }
            if part.data_checksum != out.data_checksum {
                return Err(format!(
                    "the results were computed on different data (checksums {} and {})",
                    out.data_checksum, part.data_checksum
                ));
            }
            for m in part.methods {
                match out.methods.iter_mut().find(|o| o.name == m.name) {
                    Some(o) => {
                        for run in m.runs {
                            if !o.runs.iter().any(|r| r.seed == run.seed) {
                                o.runs.push(run);
                            }
                        }
                    }
                    None => out.methods.push(m),
                }
            }
            if out.backend.is_none() {
                out.backend = part.backend;
            }
        }
        let names = super::run::method_names(&out.config.methods);
        out.methods.sort_by_key(|m| {
            names
                .iter()
                .position(|n| *n == m.name)
                .unwrap_or(usize::MAX)
        });
        for m in &mut out.methods {
            m.runs.sort_by_key(|r| r.seed);
            *m = MethodResults::new(
                m.name.clone(),
                m.method.clone(),
                std::mem::take(&mut m.runs),
            );
        }
        Ok(out)
    }

    /// Parse a results file. Its config goes through the same shape check as a config file
    /// (objects where the schema has structs); the caller still validates it.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not a results file: {e}"))?;
        let Some(config) = value.as_object().and_then(|o| o.get("config")) else {
            return Err(
                "not a results file: expected a JSON object with a `config` and `methods`"
                    .to_string(),
            );
        };
        ExperimentConfig::from_value(config.clone())
            .map_err(|e| format!("not a results file: its config: {e}"))?;
        serde_json::from_value(value).map_err(|e| format!("not a results file: {e}"))
    }
}
