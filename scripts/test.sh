#!/usr/bin/env bash
# The test suite: ruff, every unit test (slow ones included), then every benchmark file once with timing
# disabled (small sizes). For quick local work, `.venv/bin/python -m pytest tests` skips the slow tests.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/venv.sh"
cd "$root"
# The HTML report's browser test needs Debian's chromium: installed here where we may (root, apt), else skipped.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium for the HTML report's browser test" >&2
    timeout 900 sh -c 'apt-get install -y -q chromium || (apt-get update -q && apt-get install -y -q chromium)' \
        >/dev/null 2>&1 || echo "could not install chromium; the browser test will be skipped" >&2
fi
.venv/bin/ruff check .
.venv/bin/python -m pytest tests -q -m "slow or not slow" "$@"
if compgen -G "bench/bench_*.py" >/dev/null; then
    .venv/bin/python -m pytest bench -q --benchmark-disable --bench-size=smoke
fi
