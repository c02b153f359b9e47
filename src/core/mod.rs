//! The science, in pure Rust: config, data, models, solvers, training, metrics, FLOPs.
//! Nothing here depends on wasm-bindgen, web APIs or GPU types.

pub mod adam;
pub mod config;
pub mod data;
pub mod flops;
pub(crate) mod lanes;
pub mod lista;
pub mod metrics;
pub mod microbench;
pub mod models;
pub mod real;
pub mod results;
pub mod rng;
pub mod run;
pub mod select;
pub mod share;
pub mod solvers;
pub mod sparse_coding;
pub mod sweep;
pub mod theory;

/// Dense f32 matrix, column-major. Batches hold one sample per column.
pub type Matrix = nalgebra::DMatrix<f32>;
