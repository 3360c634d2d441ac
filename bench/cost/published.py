"""The reference facts in published.csv (a copy of shared/reference/published.csv) and our models for them."""
import csv
from pathlib import Path

import models

PUBLISHED_CSV = Path(__file__).with_name("published.csv")


def published_rows():
    with open(PUBLISHED_CSV) as f:
        return list(csv.DictReader(f))


def published_model_name(row):
    """Our registered name for a published row (`t2t_vit_14@384` -> `t2t_vit_14`, timm names mapped)."""
    name = row["model"].partition("@")[0]
    return models.PUBLISHED_EQUIVALENTS.get(name, name)


def build_published(row):
    """Our model for one published row, with the settings that row was counted with.

    The ViT rows were counted as timm builds them: learned positions, qkv bias except for
    `vit_s16_t2t_paper`; the T2T rows with the fixed sinusoid table.
    """
    name = published_model_name(row)
    overrides = {"img_size": int(row["img_size"])}
    if row["t2t_block"] == "patch16":
        overrides.update(pos_embed="learn", qkv_bias=name != "vit_s16_t2t_paper")
    return models.create_model(name, **overrides)


PUBLISHED_CIFAR10_CSV = Path(__file__).with_name("published_cifar10.csv")


def published_cifar10():
    """{our model name: published CIFAR-10 row} (from ../shared/data/cifar10/README.md)."""
    with open(PUBLISHED_CIFAR10_CSV) as f:
        return {row["model"]: row for row in csv.DictReader(f)}
