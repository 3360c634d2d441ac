#!/usr/bin/env bash
# The main job: the default benchmark suite on this machine, the default cost sweep, then the
# report. Everything lands in results/main-<date>/ (report in its report/ folder).
# Extra arguments go to pytest, e.g. ./scripts/main.sh --bench-size=smoke for a quick look.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/venv.sh"
cd "$root"
run="results/main-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$run"
.venv/bin/python -m pytest bench --benchmark-only --benchmark-json="$run/benchmarks.json" "$@"
.venv/bin/vitbench sweep --config bench/sweeps/default.toml --out "$run/sweep"
.venv/bin/vitbench report "$run/benchmarks.json" "$run/sweep" --out "$run/report"
echo "main job done: $run/report/index.md"
