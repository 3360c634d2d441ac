#!/usr/bin/env bash
# A shortened `--preset cifar10-gpu` for a machine with one NVIDIA GPU, in under 8 minutes: every arm
# (ViT-Lite-7/4, its two T2T counterparts, ResNet-18 with a CIFAR stem) on all of CIFAR-10 for
# ${EPOCHS:-5} epochs, seed 0, bf16, memory data mode. It prints the expected wall time of the whole
# preset (200 epochs x 3 seeds) from the throughput it measured. Needs the repository's Python packages
# (fvcore included: carry its wheel where the machine has no internet) and CIFAR-10 at ${CIFAR10:-data/cifar10}.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python}"
out="${OUT:-results/gpu-cifar10-$(date +%Y%m%d-%H%M%S)}"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
"$python" -m bench.cli study --preset cifar10-gpu --data "${CIFAR10:-data/cifar10}" --out "$out/study" \
    --epochs "${EPOCHS:-5}" --seeds 0 --device cuda
"$python" - "$out/study" <<'PY'
import json, sys
from pathlib import Path
from bench.accuracy.study import load_study_spec
spec = load_study_spec("cifar10-gpu")
runs = sorted(Path(sys.argv[1], "runs").glob("*/metrics.jsonl"))
epoch_s = sum(min(json.loads(line)["epoch_time_s"] for line in run.read_text().splitlines()) for run in runs)
total = epoch_s * spec.train["epochs"] * len(spec.seeds) * len(spec.fractions)
print(f"one epoch of every arm: {epoch_s:.0f} s; the whole cifar10-gpu preset: about {total / 3600:.1f} h on this GPU")
PY
echo "GPU CIFAR-10 check done: $out"
