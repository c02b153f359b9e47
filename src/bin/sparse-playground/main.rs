//! Entry point of the native command-line tool (see cli.rs). The CLI is native only; on wasm32
//! this binary is an empty shell so that `cargo test --target wasm32-unknown-unknown` (which
//! builds every target) still compiles.

#[cfg(not(target_arch = "wasm32"))]
mod bench;
#[cfg(not(target_arch = "wasm32"))]
mod cli;
#[cfg(not(target_arch = "wasm32"))]
mod npy;

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(target_arch = "wasm32")]
fn main() {}
