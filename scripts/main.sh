#!/usr/bin/env bash
# The main job: the default benchmark suite on this machine, then its report.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/venv.sh"
cd "$root"
.venv/bin/vitbench list "$@"
