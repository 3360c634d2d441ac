"""Shared fixtures for the accuracy-harness tests: tiny folders, tiny models, the CLI in-process."""
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from bench.accuracy.synthetic import make_synthetic
from bench.accuracy.train import TrainConfig
from bench.cli import main
from bench.configs import SyntheticConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLES = Path(__file__).parent / "data" / "imagenet-samples"  # real ImageNet JPEGs, synset in the name
TINY_T2T = {
    "depth": 1,
    "embed_dim": 32,
    "num_heads": 2,
    "token_dim": 16,
    "mlp_ratio": 2.0,
    "t2t_stages": [[3, 2, 1], [3, 2, 1]],
}
TINY_VIT = {"depth": 1, "embed_dim": 32, "num_heads": 2, "mlp_ratio": 2.0, "patch_size": 4}
TINY_RESNET = {"layers": [1, 1, 1, 1], "channels": [8, 16, 32, 64], "stem_width": 8}


def sample_synsets():
    return sorted(path.name.split("_")[0] for path in SAMPLES.glob("*.JPEG"))


def write_image(path, seed=0, size=(24, 20), mode="RGB"):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).convert(mode).save(path)
    return path


def make_imagenet_root(root, synsets, train_per_class=4, val_per_class=2):
    """An ImageNet-layout folder; a class whose synset has a real sample JPEG gets it as its first image."""
    real = {path.name.split("_")[0]: path for path in SAMPLES.glob("*.JPEG")}
    for i, synset in enumerate(synsets):
        for split, count in (("train", train_per_class), ("val", val_per_class)):
            for j in range(count):
                target = Path(root) / split / synset / f"{synset}_{j}.JPEG"
                if j == 0 and synset in real:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(real[synset], target)
                else:
                    write_image(target, seed=i * 100 + j + (50 if split == "val" else 0))
    return Path(root)


def samples_dataset(root):
    """The real JPEGs as an ImageNet-layout val split: val/<synset>/<file>."""
    for path in SAMPLES.glob("*.JPEG"):
        target = Path(root) / "val" / path.name.split("_")[0] / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    return Path(root)


def tiny_synthetic(root, classes=3, train_per_class=8, val_per_class=3, seed=0):
    make_synthetic(SyntheticConfig(out=str(root), classes=classes, train_per_class=train_per_class,
                                   val_per_class=val_per_class, img_size=32, seed=seed))
    return Path(root)


def tiny_config(data, out, model="t2t_vit_7", model_args=None, **settings):
    """A run that takes a second or two on one CPU thread, with the paper's augmentation on (files mode:
    the per-image path; tests/test_tensor_data.py and test_cifar.py cover the memory path)."""
    defaults = dict(epochs=2, batch_size=8, img_size=32, lr=1e-3, warmup_epochs=1, workers=0, threads=1,
                    data_mode="files")
    if settings.get("budget_pflop") or settings.get("budget_minutes"):
        del defaults["epochs"]  # a budget sets the run's length: epochs beside it is refused
    args = TINY_T2T if model.startswith("t2t") else TINY_VIT if model.startswith("vb_vit") else TINY_RESNET
    return TrainConfig(
        model=model, data=str(data), out=str(out), model_args=dict(model_args or args), **{**defaults, **settings}
    )


def tiny_cli_args(model="t2t_vit_7"):
    """The same tiny run as command-line flags."""
    args = TINY_T2T if model.startswith("t2t") else TINY_VIT
    flags = ["--model", model, "--epochs", "2", "--batch-size", "8", "--img-size", "32", "--lr", "1e-3",
             "--warmup-epochs", "1", "--workers", "0", "--threads", "1", "--data-mode", "files"]
    for key, value in args.items():
        flags += ["--model-arg", f"{key}={value}".replace(" ", "").replace("(", "[").replace(")", "]")]
    return flags


def cli_error(capsys, *argv):
    """Run `vitbench argv` in-process, expect exit 2 with one error line; return that line."""
    code = main(list(argv))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, f"expected exit 2, got {code}: {err}"
    assert len(err) >= 1 and err[-1].startswith(f"vitbench {argv[0]}: error: "), err
    return err[-1]
