#!/usr/bin/env bash
# The main job: the default benchmark suite on this machine, the default cost sweep, then the
# report. Everything lands in results/main-<date>/ (report in its report/ folder).
# Extra arguments go to pytest, e.g. ./scripts/main.sh --bench-size=smoke for a quick look.
# Each step prints its progress (pytest's per-benchmark lines, the sweep's per-configuration lines) and
# its elapsed time; an interrupted step leaves no lock behind (Ctrl-C and SIGTERM unwind), and running
# the script again starts a fresh results/main-<date>/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/venv.sh"
cd "$root"
run="results/main-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$run"
start=$SECONDS
step() {  # step N/3 TITLE: a header, and the time since the job started
    echo "== [$1/3] $2 (at $(( (SECONDS - start) / 60 )) min $(( (SECONDS - start) % 60 )) s) ==" >&2
}
step 1 "pytest-benchmark suite -> $run/benchmarks.json"
.venv/bin/python -m pytest bench --benchmark-only --benchmark-json="$run/benchmarks.json" "$@"
step 2 "cost sweep (bench/sweeps/default.toml) -> $run/sweep"
.venv/bin/vitbench sweep --config bench/sweeps/default.toml --out "$run/sweep"
step 3 "report -> $run/report"
.venv/bin/vitbench report "$run/benchmarks.json" "$run/sweep" --out "$run/report"
echo "main job done in $(( (SECONDS - start) / 60 )) min: $run/report/index.md"
