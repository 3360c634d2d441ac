#!/usr/bin/env bash
# The CIFAR-10 compute-scaling study (results/study-cifar10-scaling/PREREGISTRATION.md): `--preset cifar10-scaling`
# (recipes frozen from `--preset cifar10-recipes`) at 0.0075, 0.015, 0.03 and 0.06 PFLOP per run, one study folder
# per budget (OUT/b<budget>/), each resumed where it stopped. Two chains run side by side, one core each, with
# about equal compute: 0.06 alone, and 0.0075 -> 0.015 -> 0.03. Then the scaling law over the finished budgets.
# Usage: CIFAR10=../shared/data/cifar10 OUT=results/study-cifar10-scaling LOGS=/tmp ./scripts/cifar_scaling.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
data="$(cd "${CIFAR10:-$root/../shared/data/cifar10}" && pwd)"
out="${OUT:-$root/results/study-cifar10-scaling}"
logs="${LOGS:-$out}"
python="${PYTHON:-$root/.venv/bin/python}"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"

budget() {  # one budget's study, started or resumed
    local folder="$out/b$1" resume=()
    [ -f "$folder/study.json" ] && resume=(--resume)
    "$python" -m bench.cli study --preset cifar10-scaling --data "$data" --out "$folder" --budget-pflop "$1" \
        --jobs 1 "${resume[@]}"
}

budget 0.06 > "$logs/scaling-chain-a.log" 2>&1 &
chain_a=$!
{ budget 0.0075 && budget 0.015 && budget 0.03; } > "$logs/scaling-chain-b.log" 2>&1
wait "$chain_a"
"$python" -m bench.report.scaling "$out"
