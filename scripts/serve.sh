#!/usr/bin/env bash
# Serve the playground on http://127.0.0.1:${PORT:-8080}/ : install what is missing, build the
# engine to WebAssembly and the static site into dist/, then serve dist/ (a static site: any
# static server or GitHub Pages sub-path works the same).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
npm run build
PORT="${PORT:-8080}"
echo "Sparse Playground: http://127.0.0.1:${PORT}/  (Ctrl-C to stop)"
exec python3 -m http.server "$PORT" --bind 127.0.0.1 --directory dist
