"""timm's RandAugment posterize under Pillow 13 (bench.accuracy.data.install_randaugment_fix)."""
from PIL import Image
from timm.data import auto_augment

import models
from bench.accuracy.data import posterize_zero_bits_safe, train_transform
from bench.accuracy.train import TrainConfig

POSTERIZE = ("Posterize", "PosterizeIncreasing", "PosterizeOriginal")


def test_the_training_transform_brings_the_safe_posterize_itself(monkeypatch):
    for name in POSTERIZE:  # as a fresh process has it: no entry point has run
        monkeypatch.setitem(auto_augment.NAME_TO_OP, name, auto_augment.posterize)
    model = models.create_model("t2t_vit_7", img_size=32, depth=1, t2t_stages=((3, 2, 1), (3, 2, 1)))
    transform = train_transform(model, 32, TrainConfig(model="t2t_vit_7", data="-", out="-", img_size=32))
    rand = next(t for t in transform.transforms if type(t).__name__ == "RandAugment")
    posterize = next(op for op in rand.ops if op.name == "PosterizeIncreasing")  # rand-m9-mstd0.5-inc1
    assert posterize.aug_fn is posterize_zero_bits_safe
    posterize.prob, posterize.magnitude, posterize.magnitude_std = 1.0, 10, 0  # 0 bits kept
    assert posterize(Image.new("RGB", (8, 8), (200, 100, 50))).getpixel((0, 0)) == (0, 0, 0)
    train_transform(model, 32, TrainConfig(model="t2t_vit_7", data="-", out="-", img_size=32))  # again: idempotent
    assert all(auto_augment.NAME_TO_OP[name] is posterize_zero_bits_safe for name in POSTERIZE)
