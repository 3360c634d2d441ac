#!/usr/bin/env bash
# The CUDA paths in one short run, for a machine with an NVIDIA GPU and torch installed:
# profile (fp32 / bf16 / fp16 autocast, channels_last, compile), a sweep with OOM-safe
# largest-batch search with timm baselines beside ours, and the pytest-benchmark pairs (fp32, and bf16
# against the reference implementations). Results go to ${OUT:-results/gpu-<date>}.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python}"
out="${OUT:-results/gpu-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$out"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
"$python" -m bench.cli profile t2t_vit_14 --device cuda --batch-size 64 --train --json > "$out/profile_fp32.json"
"$python" -m bench.cli profile t2t_vit_14 --device cuda --batch-size 64 --train --dtype bfloat16 --channels-last --json > "$out/profile_bf16.json"
"$python" -m bench.cli profile vb_vit_small_patch16_224 --device cuda --batch-size 64 --train --dtype float16 --compile --json > "$out/profile_fp16_compile.json"
"$python" -m bench.cli sweep --families vit t2t-performer t2t-transformer --depth 12 --heads 6 --embed-dim 384 \
    --img-size 224 --timm deit_small_patch16_224 resnet50 \
    --measure params throughput tokenizer_time memory max_batch --modes inference train --device cuda \
    --batch-size 64 --dtype bfloat16 --out "$out/sweep"
"$python" -m pytest bench/bench_pairs.py --benchmark-only --bench-device cuda --bench-size full \
    --benchmark-json "$out/pairs.json" -q -p no:cacheprovider
# bf16 autocast: SDPA's flash kernels in the T2T transformer blocks, the Performer's products kept float32
"$python" -m pytest bench/bench_pairs.py --benchmark-only --bench-device cuda --bench-size full --bench-dtype bfloat16 \
    -k "reference" --benchmark-json "$out/pairs_bf16.json" -q -p no:cacheprovider
echo "GPU check done: $out"
