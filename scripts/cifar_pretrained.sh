#!/usr/bin/env bash
# Does pretraining help where from-scratch training struggles? A pretrained arm proven end to end on CIFAR-10,
# with a checkpoint the suite makes itself (these machines reach no published weights):
#   1. pretrain vit_lite_tiny on five classes (airplane, automobile, bird, cat, deer), all their images less a
#      2,500-image holdout, for ${PRETRAIN_PFLOP:-0.03} PFLOP;
#   2. a study on the other five classes (dog, frog, horse, ship, truck) with 10% of their training images (after
#      a 2,500-image holdout): the same model from scratch against it fine-tuned from step 1's weights (a fresh
#      head), each for ${PFLOP:-0.01} PFLOP, seeds 0-2. The pretraining compute is stated, not added to the arm.
# Usage: CIFAR10=../shared/data/cifar10 OUT=results/pretrained-cifar10 ./scripts/cifar_pretrained.sh [--jobs 2]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
data="${CIFAR10:-$root/../shared/data/cifar10}"
out="${OUT:-$root/results/pretrained-cifar10}"
python="${PYTHON:-$root/.venv/bin/python}"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
recipe=(--batch-size 128 --img-size 32 --lr 1e-3 --weight-decay 0.05 --warmup-epochs 0.5 --drop-path 0
        --smoothing 0.1 --mixup 0 --cutmix 0 --auto-augment "" --reprob 0 --data-mode memory --workers 0 --threads 1)
mkdir -p "$out"
if [ ! -f "$out/pretrain/summary.json" ]; then
    resume=(); [ -f "$out/pretrain/last.pth" ] && resume=(--resume)
    "$python" -m bench.cli train --model vit_lite_tiny --data "$data" --out "$out/pretrain" "${resume[@]}" \
        --classes airplane automobile bird cat deer --holdout 2500 --budget-pflop "${PRETRAIN_PFLOP:-0.03}" \
        "${recipe[@]}"
fi
cat > "$out/spec.toml" <<TOML
fractions = [0.1]
seeds = [0, 1, 2]

[train]
budget_pflop = ${PFLOP:-0.01}
holdout = 2500
classes = ["dog", "frog", "horse", "ship", "truck"]
batch_size = 128
img_size = 32
lr = 1e-3
weight_decay = 0.05
warmup_epochs = 0.5
drop_path = 0.0
smoothing = 0.1
mixup = 0.0
cutmix = 0.0
auto_augment = ""
reprob = 0.0
data_mode = "memory"
workers = 0
threads = 1
validations = 10

[[arms]]
name = "vit"
label = "ViT-Lite tiny from scratch"
model = "vit_lite_tiny"
depths = [4]

[[arms]]
name = "vit-pretrained"
label = "ViT-Lite tiny pretrained on the other five classes, then fine-tuned"
model = "vit_lite_tiny"
depths = [4]
init = "$out/pretrain/last.pth"
train = {lr = 5e-4}
TOML
resume=(); [ -f "$out/study/study.json" ] && resume=(--resume)
"$python" -m bench.cli study --config "$out/spec.toml" --data "$data" --out "$out/study" "${resume[@]}" "$@"
