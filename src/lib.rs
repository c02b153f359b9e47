//! Sparse Playground: when does a sparse autoencoder recover the true features, and what does
//! better inference buy? A compressed-sensing engine comparing sparse encoders against ground
//! truth, shared by the native CLI and the browser playground.

pub mod compute;
pub mod core;
pub mod formats;
#[cfg(target_arch = "wasm32")]
pub mod wasm_api;

pub use crate::compute::{Backend, Compute, CpuBackend};
pub use crate::core::config::{CheckedConfig, ConfigError, ExperimentConfig, Preset};
pub use crate::core::data::Dataset;
pub use crate::core::results::Results;
pub use crate::core::run::{Experiment, Progress, StackRun};
