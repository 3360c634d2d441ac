"""The size table `vitbench list` prints without importing torch or building a model: every named model's
shape and parameter counts, made from the models themselves by `python -m bench.cost.sizes` and checked
against them by tests/test_sizes.py, so it cannot go stale unnoticed."""
import json
from pathlib import Path

import timm
import torch

import models
from bench.cost.flops import count_params
from bench.cost.sweep import config_columns
from models.atomic import atomic_write_text

SIZE_TABLE = Path(__file__).with_name("model_sizes.json")


def model_rows():
    """One row per named model and CIFAR CNN baseline, built on "meta" (shapes, no storage or init)."""
    rows = []
    with torch.device("meta"):
        for name in models.list_models():
            model = models.create_model(name)
            rows.append({**config_columns(model), "family": models.family_of(model.config),
                         "params": count_params(model), "params_trainable": count_params(model, trainable_only=True)})
        for name in sorted(models.CNN_BASELINES):
            model = timm.create_model(name)
            height, width = model.pretrained_cfg["input_size"][1:]
            rows.append({"model": name, "tokenizer": None, "depth": None, "num_heads": None, "embed_dim": None,
                         "mlp_ratio": None, "patch_size": None, "img_size": f"{height}x{width}", "tokens": None,
                         "family": models.family_of_model(name), "params": count_params(model),
                         "params_trainable": count_params(model, trainable_only=True)})
    return rows


if __name__ == "__main__":
    atomic_write_text(SIZE_TABLE, json.dumps(model_rows(), indent=1) + "\n")
    print(f"wrote {SIZE_TABLE}")
