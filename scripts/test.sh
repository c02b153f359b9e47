#!/usr/bin/env bash
# Every test: native unit, property and integration tests, then the engine compiled to wasm32.
# Installs what is missing first (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"

echo "== native tests (release build: the integration tests train real models)"
cargo test --release --all-targets

echo "== wasm32 tests (node): same data checksum as native, the step API runs"
wasm-pack test --node --mode no-install
