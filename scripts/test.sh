#!/usr/bin/env bash
# Every test: native unit, property and integration tests, the engine and its wasm-bindgen
# boundary in headless Chromium, then the built site end to end (playwright-core + Chromium).
# Installs what is missing first (scripts/setup.sh). Ends with one "N passed, N failed" line.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
# wgpu wants a private runtime directory on headless machines (else it only warns).
if [ -z "${XDG_RUNTIME_DIR:-}" ] || [ ! -d "${XDG_RUNTIME_DIR}" ]; then
  export XDG_RUNTIME_DIR="$(mktemp -d)"
  chmod 700 "$XDG_RUNTIME_DIR"
fi
# Browser tests include WebGPU on SwiftShader: slow, so a longer per-test timeout.
export WASM_BINDGEN_TEST_TIMEOUT="${WASM_BINDGEN_TEST_TIMEOUT:-300}"
log=$(mktemp)
trap 'rm -f "$log" "$log.build"' EXIT

echo "== native tests (release build: the integration tests train real models)"
cargo test --release --all-targets 2>&1 | tee -a "$log"

echo "== wasm32 tests in headless Chromium: same data checksum as native, the boundary works, WebGPU parity"
wasm-pack test --headless --chrome --chromedriver "$(command -v chromedriver)" --mode no-install 2>&1 | tee -a "$log"

echo "== fuzz every parser of untrusted input for a bounded time (scripts/fuzz.sh; longer: see README)"
bash scripts/fuzz.sh "${FUZZ_SECONDS:-15}" 2>&1 | tee -a "$log"

echo "== the page's pure helpers in node (status-line numbers, quick presets against paper size)"
node tests/e2e/format.mjs 2>&1 | tee -a "$log"
node tests/e2e/paper-size.mjs 2>&1 | tee -a "$log"

echo "== the site: release wasm build and webpack into dist/, then the end-to-end test in Chromium"
if ! npm run build > "$log.build" 2>&1; then
  tail -n 60 "$log.build"
  echo "the site build (npm run build) failed"
  exit 1
fi
grep -E '^\s*asset ' "$log.build" || true
if grep -q 'WARNING in' "$log.build"; then
  grep -A6 'WARNING in' "$log.build"
  echo "the site build has warnings"
  exit 1
fi
node tests/e2e/playground.mjs 2>&1 | tee -a "$log"
node tests/e2e/instrument.mjs 2>&1 | tee -a "$log"
node tests/e2e/sweeps.mjs 2>&1 | tee -a "$log"
node tests/e2e/real.mjs 2>&1 | tee -a "$log"

# The runners print one line per test binary; sum them into a single closing line.
awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed\n", p, f }' "$log"
