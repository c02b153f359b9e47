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
mod real;

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    ensure_runtime_dir();
    cli::main()
}

/// The Vulkan loader prints an alarming "XDG_RUNTIME_DIR is invalid" on headless machines
/// (servers, containers, CI) whenever a GPU is looked for. Give it a private directory when the
/// environment has none; nothing is written there. Runs before any other thread starts.
#[cfg(not(target_arch = "wasm32"))]
fn ensure_runtime_dir() {
    let valid = std::env::var_os("XDG_RUNTIME_DIR")
        .map(std::path::PathBuf::from)
        .is_some_and(|p| p.is_dir());
    if valid {
        return;
    }
    let dir =
        std::env::temp_dir().join(format!("sparse-playground-runtime-{}", std::process::id()));
    #[cfg(unix)]
    let made = {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().mode(0o700).create(&dir).is_ok() || dir.is_dir()
    };
    #[cfg(not(unix))]
    let made = std::fs::create_dir_all(&dir).is_ok();
    if made {
        std::env::set_var("XDG_RUNTIME_DIR", &dir);
    }
}

#[cfg(target_arch = "wasm32")]
fn main() {}
