#!/usr/bin/env bash
# Every test: native unit, property and integration tests, then the engine compiled to wasm32.
# Installs what is missing first (scripts/setup.sh). Ends with one "N passed, N failed" line.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
log=$(mktemp)
trap 'rm -f "$log"' EXIT

echo "== native tests (release build: the integration tests train real models)"
cargo test --release --all-targets 2>&1 | tee -a "$log"

echo "== wasm32 tests in headless Chromium: same data checksum as native, the boundary works"
wasm-pack test --headless --chrome --chromedriver "$(command -v chromedriver)" --mode no-install 2>&1 | tee -a "$log"

# The runners print one line per test binary; sum them into a single closing line.
awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed\n", p, f }' "$log"
