#!/usr/bin/env bash
# The test suite: ruff, every unit test (slow ones included), then every benchmark file once with timing
# disabled (small sizes). It installs nothing system-wide (.ci/run installs what a fresh CI machine needs).
# For quick local work, `.venv/bin/python -m pytest tests` skips the slow tests.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/venv.sh"
cd "$root"
.venv/bin/ruff check .
# The local Slurm cluster's tests run in an interpreter of their own: after the rest of the suite in the same process,
# three of them failed twice in a row on a clean clone (2026-12-04: a cancelled job kept running past the test),
# while the same file alone passed 8 of 8 on that clone. The tests have since been made independent of each other
# (job ids from the study's record, the queue emptied after each test, studies in daemon threads); the separate
# interpreter stays until a clean clone has run them in the shared process as well.
.venv/bin/python -m pytest tests -q -m "slow or not slow" --ignore=tests/test_slurm_cluster.py "$@"
.venv/bin/python -m pytest tests/test_slurm_cluster.py -q -m "slow or not slow" "$@" || [ $? -eq 5 ]  # 5: "$@" selected none
if compgen -G "bench/bench_*.py" >/dev/null; then
    .venv/bin/python -m pytest bench -q --benchmark-disable --bench-size=smoke
fi
