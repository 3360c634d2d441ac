#!/usr/bin/env bash
# The test suite: ruff, every unit test (slow ones included), then every benchmark file once with timing
# disabled (small sizes). It installs nothing system-wide (.ci/run installs what a fresh CI machine needs).
# For quick local work, `.venv/bin/python -m pytest tests` skips the slow tests.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/venv.sh"
cd "$root"
.venv/bin/ruff check .
.venv/bin/python -m pytest tests -q -m "slow or not slow" "$@"
if compgen -G "bench/bench_*.py" >/dev/null; then
    .venv/bin/python -m pytest bench -q --benchmark-disable --bench-size=smoke
fi
