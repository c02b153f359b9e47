#!/usr/bin/env bash
# Fuzz every parser of untrusted input (share links, config JSON, results JSON, .npy, activation
# files (.npy and .safetensors) and token texts, sweep
# links, sweep configs and results) with libFuzzer through cargo-fuzz, each for a bounded
# time: `bash scripts/fuzz.sh [SECONDS]`
# (default 15 per target; scripts/test.sh runs this). Longer runs: `bash scripts/fuzz.sh 3600`.
# One target: `TARGETS=npy bash scripts/fuzz.sh 600`. Each target starts from the valid inputs in
# fuzz/seeds/<target>/ plus what earlier runs found (fuzz/corpus/, not committed). A crash
# fails the script; the input that caused it is in fuzz/artifacts/<target>/ and replays with
# `cd fuzz && cargo fuzz run -s none <target> artifacts/<target>/<file>`.
# Stable Rust: no sanitizer (`-s none`), but debug assertions and overflow checks are on, so an
# arithmetic overflow is a crash like any panic.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
SECONDS_PER_TARGET="${1:-15}"
TARGETS="${TARGETS:-share_link config_json results_json npy activations sweep_link sweep_json}"
# cargo-fuzz is pinned and installed by the set-up script.
cargo fuzz --version >/dev/null 2>&1 || bash scripts/setup.sh

cd fuzz
echo "== fuzz: building the targets"
cargo fuzz build -s none 2>&1 | grep -E '^(error|warning)|Finished' || true
status=0
passed=0
failed=0
for target in $TARGETS; do
  mkdir -p "corpus/$target"
  log=$(mktemp)
  if cargo fuzz run -s none "$target" "corpus/$target" "seeds/$target" -- \
      -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    runs=$(grep -Eo 'Done [0-9]+ runs' "$log" | grep -Eo '[0-9]+' || echo '?')
    echo "fuzz $target: ok, $runs executions in ${SECONDS_PER_TARGET} s, no crash"
    passed=$((passed + 1))
  else
    status=1
    tail -n 40 "$log"
    echo "fuzz $target: FAILED (see fuzz/artifacts/$target/)"
    failed=$((failed + 1))
  fi
  rm -f "$log"
done
echo "test result: $([ $status = 0 ] && echo ok || echo FAILED). $passed passed; $failed failed; (fuzz targets)"
exit $status
