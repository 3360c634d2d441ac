#!/usr/bin/env bash
# The test suite: unit tests, then every benchmark file once with timing disabled (small sizes).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/venv.sh"
cd "$root"
.venv/bin/python -m pytest tests -q "$@"
if compgen -G "bench/bench_*.py" >/dev/null; then
    .venv/bin/python -m pytest bench -q --benchmark-disable --bench-size=smoke
fi
