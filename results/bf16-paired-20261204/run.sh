#!/bin/sh
# fp32 vs bf16 autocast, paired (same seed: same weights, holdout, batches and augmentation), one after another at
# one thread. CODE: a worktree of the commit named in README.md (PYTHONPATH wins over the editable install).
OUT=${OUT:-$(dirname "$0")}
for seed in 0 1; do
  for amp in off bf16; do
    [ -f "$OUT/$amp-seed$seed/summary.json" ] && continue  # finished (the CLI's last line may fail: README)
    PYTHONPATH=${CODE:-.} vitbench train --model vit_lite_tiny --model-arg embed_dim=192 --model-arg num_heads=3 \
      --model-arg patch_size=8 \
      --data /work/shared/data/cifar10 --out "$OUT/$amp-seed$seed" --amp $amp --seed $seed \
      --budget-pflop 0.00122 --batch-size 64 --img-size 32 --lr 0.001 --weight-decay 0.05 --warmup-share 0.1 \
      --min-lr 1e-5 --drop-path 0 --smoothing 0.1 --mixup 0 --cutmix 0 --auto-augment '' --reprob 0 --hflip 0.5 \
      --data-mode memory --workers 0 --threads 1 --holdout 2000 --no-test --validations 1
  done
done
