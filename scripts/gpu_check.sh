#!/usr/bin/env bash
# The CUDA paths in one prepared run for a lent GPU (about 8 minutes on an H200), each step under its own time
# limit and log, a failed step reported and the rest still run:
#   1. training with --amp auto on synthetic 224-px images (ViT-Ti/16 and T2T-ViT-14): the precision it chose
#      and the run's MFU against the GPU's datasheet peak (summary.json);
#   2. profile: T2T-ViT-14 and ViT-S/16 in fp32 and bf16 autocast, training steps, MFU;
#   3. sweeps of throughput and peak GPU memory (inference and training, bf16, batch 64, 224 px) across depths,
#      heads and patch sizes, T2T-ViT (Performer and transformer T2T) beside ViT, timm's DeiT-S and ResNet-50
#      as baselines;
#   4. the pytest-benchmark pairs (interleaved, median of per-round ratios) on the GPU, fp32, and bf16 against the
#      reference implementations (SDPA in the T2T transformer blocks, the Performer's products kept float32).
# Results go to ${OUT:-results/gpu-<date>}; SMOKE=1 runs every step tiny (on CPU with DEVICE=cpu) to check it.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python}"
out="${OUT:-results/gpu-$(date +%Y%m%d-%H%M%S)}"
device="${DEVICE:-cuda}"
mkdir -p "$out"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
vitbench=("$python" -m bench.cli)
if [ "${SMOKE:-0}" = 1 ]; then
    img=32 per_class=4 batch=8 budget=0.0000002 repeats=1 depths="2 4" heads="2 4" patches="8 16" size=smoke
    dtype=float32 precisions=(float32)  # a CPU without native bf16 emulates it, 10-17x slower
    t2t_args=(--model-arg depth=1 --model-arg embed_dim=32 --model-arg num_heads=2)
else
    img=224 per_class=300 batch=256 budget=1.0 repeats=10 depths="4 7 14 24" heads="3 6 12" patches="8 16 32"
    size=full t2t_args=() dtype=bfloat16 precisions=(float32 bfloat16)
fi
failed=()
step() {  # step NAME SECONDS COMMAND...: its output in $out/NAME.log
    local name=$1 seconds=$2
    shift 2
    echo "== $name ($(date -u +%H:%M:%S))"
    timeout "$seconds" "$@" > "$out/$name.log" 2>&1 || { echo "step $name failed: exit $?"; failed+=("$name"); }
    tail -n 3 "$out/$name.log"
}
{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1
    "$python" -c "import torch, timm, sys; print(sys.version.split()[0], 'torch', torch.__version__, 'timm',
                  timm.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no cuda')"
    # only this checkout's own commit: a copy without .git inside another repository would name that one's
    if [ "$(git -C "$root" rev-parse --show-toplevel 2>/dev/null)" = "$root" ]; then
        git -C "$root" log -1 --format='commit %H %cd'
    else
        echo "commit: unknown ($root is not a git checkout)"
    fi
} > "$out/environment.txt" 2>&1
cat "$out/environment.txt"

data=$(mktemp -d)/synthetic
step synthetic 90 "${vitbench[@]}" synthetic --out "$data" --classes 10 --train-per-class "$per_class" --val-per-class 20 \
    --img-size 64  # drawn small (quick), read at $img
for model in vb_vit_tiny_patch16_224 t2t_vit_14; do
    extra=()
    [ "$model" = t2t_vit_14 ] && extra=("${t2t_args[@]}")
    [ "$model" = vb_vit_tiny_patch16_224 ] && [ "$size" = smoke ] && extra=(--model-arg depth=1)
    step "train_$model" 90 "${vitbench[@]}" train --model "$model" --data "$data" --out "$out/train_$model" \
        --device "$device" --amp auto --img-size "$img" --batch-size "$batch" --budget-pflop "$budget" \
        --holdout 0.1 --validations 1 --warmup-epochs 1 --workers 4 --data-mode memory "${extra[@]}"
done
for precision in "${precisions[@]}"; do
    step "profile_$precision" 90 "${vitbench[@]}" profile t2t_vit_14 vb_vit_small_patch16_224 --device "$device" \
        --batch-size "$batch" --img-size "$img" --train --dtype "$precision" --repeats "$repeats" --json
done
sweep() {  # sweep NAME FAMILIES AXIS-FLAGS...
    local name=$1 families=$2
    shift 2
    # shellcheck disable=SC2086
    step "sweep_$name" 90 "${vitbench[@]}" sweep --families $families "$@" --img-size "$img" \
        --measure params macs throughput memory --modes inference train --device "$device" --batch-size 64 \
        --dtype "$dtype" --repeats "$repeats" --out "$out/sweep_$name"
}
# shellcheck disable=SC2086
sweep depth "vit t2t-performer t2t-transformer" --depth $depths --heads 6 --embed-dim 384 \
    --timm deit_small_patch16_224 resnet50
# shellcheck disable=SC2086
sweep heads "vit t2t-performer t2t-transformer" --heads $heads --depth 12 --embed-dim 384
# shellcheck disable=SC2086
sweep patch vit --patch-size $patches --depth 12 --heads 6 --embed-dim 384
# measured on the H200: 112 s for the 40 fp32 pairs, 61 s for the 20 bf16 reference pairs
step pairs 150 "$python" -m pytest bench/bench_pairs.py --benchmark-only --bench-device "$device" \
    --bench-size "$size" --benchmark-json "$out/pairs.json" -q -p no:cacheprovider
step pairs_bf16 90 "$python" -m pytest bench/bench_pairs.py --benchmark-only --bench-device "$device" \
    --bench-size "$size" --bench-dtype "$dtype" -k reference --benchmark-json "$out/pairs_bf16.json" -q \
    -p no:cacheprovider
echo "GPU check done: $out; failed steps: ${failed[*]:-none}"
[ ${#failed[@]} = 0 ]
