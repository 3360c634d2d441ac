#!/usr/bin/env bash
# A shortened `--preset cifar10-gpu` for a machine with one NVIDIA GPU, in under 8 minutes, on the study's
# protocol: every arm (ViT-Lite-7/4, the ViT widened to the Performer T2T's MACs, the two T2T counterparts,
# ResNet-18 with a CIFAR stem) on CIFAR-10 less its 5,000-image holdout, seed 0, bf16, memory data mode,
# each for the same ${PFLOP:-0.35} PFLOP of training compute (about 5 of ViT-Lite's epochs). The schedule
# is planned for that short budget: the cosine ends at it and the preset's 10 warm-up epochs are cut to
# 20% of the run. Test top-1 is scored once per run, at the end. It prints the expected wall time of the
# whole preset (13.8 PFLOP per run, 3 seeds) from the compute rate each arm reached. Needs the repository's
# Python packages (fvcore included: carry its wheel where the machine has no internet) and CIFAR-10 at
# ${CIFAR10:-data/cifar10}.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python}"
out="${OUT:-results/gpu-cifar10-$(date +%Y%m%d-%H%M%S)}"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
"$python" -m bench.cli study --preset cifar10-gpu --data "${CIFAR10:-data/cifar10}" --out "$out/study" \
    --budget-pflop "${PFLOP:-0.35}" --seeds 0 --device cuda
"$python" - "$out/study" <<'PY'
import json, sys
from pathlib import Path
from bench.accuracy.study import load_study_spec
spec = load_study_spec("cifar10-gpu")
hours = 0.0
for path in sorted(Path(sys.argv[1], "runs").glob("*/summary.json")):
    run = json.loads(path.read_text())
    rate = run["train_pflop"] / run["train_time_s"]  # PFLOP per second of training on this GPU
    hours += spec.train["budget_pflop"] / rate * len(spec.seeds) * len(spec.fractions) / 3600
    print(f"{path.parent.name}: {rate * 1e3:.2f} TFLOP/s of training, test top-1 {run['test_top1']:.1f}%")
print(f"the whole cifar10-gpu preset: about {hours:.1f} h of training on this GPU (validation not included)")
PY
echo "GPU CIFAR-10 check done: $out"
