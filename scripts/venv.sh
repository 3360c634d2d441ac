#!/usr/bin/env bash
# Create and fill .venv/ at the repository root on first use; reuse it afterwards.
# Reinstalls only when pyproject.toml or this script changes.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null 2>&1 || python=python3
stamp="$venv/.vitbench-installed"
want="$(cat "$root/pyproject.toml" "$root/scripts/venv.sh" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    # torch and torchvision must be resolved together: a lone CPU torch wheel pairs with a
    # torchvision whose operators fail to load, which breaks `import timm`.
    "$venv/bin/python" -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
    "$venv/bin/python" -m pip install --quiet -e "$root[all]"  # every extra: bench, report, tensorboard, wandb, test
    echo "$want" > "$stamp"
fi
