"""Model families: a tokenizer family brings its own costs, and one table names and colours every family, which
sweeps, studies and reports read."""
import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from matplotlib.colors import is_color_like
from torch import nn

import models
from bench.accuracy.study import ArmRoles
from bench.cost.flops import MODULE_GROUPS, analytic_macs, fvcore_macs, torch_macs
from bench.cost.memory import activation_estimate_bytes
from bench.cost.sweep import config_columns
from bench.report import style, tables
from bench.report.study import comparison_sentences, multipliers
from models import ConfigError, Tokenizer, VisionTransformer
from models.layers import dense_macs


class PoolTokenizer(Tokenizer):
    """A family bench/ has never heard of: stride x stride average pooling, then two Linears per token."""

    kind = "pool"

    def __init__(self, img_size=32, in_chans=3, embed_dim=16, stride=4):
        super().__init__(img_size, in_chans, embed_dim, stride)
        self.proj = nn.Linear(in_chans, embed_dim)
        self.mix = nn.Linear(embed_dim, embed_dim)

    def forward(self, x):
        self.check_input(x)
        return self.mix(self.proj(F.avg_pool2d(x, self.stride).flatten(2).transpose(1, 2)))

    def macs(self, height, width):
        tokens = math.prod(self.token_grid(height, width))
        return {"tokenizer.proj": dense_macs(self.proj, tokens), "tokenizer.mix": dense_macs(self.mix, tokens)}

    def activation_elements(self):
        pooled, projected = self.num_tokens * self.in_chans, self.num_tokens * self.embed_dim
        return [pooled + projected], [pooled + 2 * projected]


class SilentTokenizer(Tokenizer):
    """A front end that says nothing of its costs."""


def backbone(tokenizer):
    return VisionTransformer(tokenizer, num_classes=10, depth=2, num_heads=2, mlp_ratio=2.0)


def test_a_new_tokenizer_family_is_counted_from_its_own_formulas():
    model = backbone(PoolTokenizer())
    breakdown = analytic_macs(model)
    tokens = 8 * 8
    assert breakdown["tokenizer.proj"] == tokens * 3 * 16 and breakdown["tokenizer.mix"] == tokens * 16 * 16
    assert breakdown["tokenizer"] == breakdown["tokenizer.proj"] + breakdown["tokenizer.mix"]
    assert breakdown["total"] == sum(breakdown[group] for group in MODULE_GROUPS)
    assert analytic_macs(model, (16, 24))["tokenizer.proj"] == 4 * 6 * 3 * 16
    for counter in (fvcore_macs, torch_macs):  # the traced counters see the same Linears
        counted = counter(model)
        assert counted["tokenizer"] == breakdown["tokenizer"] and counted["total"] == breakdown["total"]


def test_a_new_tokenizer_family_is_in_the_memory_estimate():
    pool, patch = (backbone(tokenizer) for tokenizer in (PoolTokenizer(), models.PatchTokenizer(32, 4, 3, 16)))
    # the same backbone over the same 8 x 8 tokens: the training estimates differ by the tokenizers' saved values
    saved = [sum(model.tokenizer.activation_elements()[0]) for model in (pool, patch)]
    difference = activation_estimate_bytes(pool, 2, "train") - activation_estimate_bytes(patch, 2, "train")
    assert difference == 2 * 4 * (saved[0] - saved[1]) != 0
    pool.tokenizer.activation_elements = lambda: ([0], [10**9])  # live values beyond any backbone layer's
    assert activation_estimate_bytes(pool, 2, "inference") == 2 * 4 * 10**9


def test_a_tokenizer_without_formulas_is_a_one_line_error():
    model = backbone(SilentTokenizer(32, 3, 16, stride=4))
    with pytest.raises(ConfigError, match="^cannot count a SilentTokenizer analytically; use fvcore_macs or"):
        analytic_macs(model)
    with pytest.raises(ConfigError, match="^cannot estimate the activations of a SilentTokenizer analytically"):
        activation_estimate_bytes(model, 1, "train")


def test_every_family_in_the_table_has_the_colour_label_and_place_style_uses():
    table = models.FAMILY_TABLE
    assert models.FAMILIES == {name: family.label for name, family in table.items()}
    colours = [style.FAMILY_COLORS[name] for name in style.FAMILY_STYLES]
    assert len(set(colours)) == len(colours) and all(is_color_like(colour) for colour in colours)
    for name, family in table.items():
        assert style.FAMILY_COLORS[name] == family.colour and style.family_label(name) == family.label != ""
    assert sorted([*table, "unknown"], key=style.family_order) == [*table, "unknown"]
    assert style.family_label("unknown") == "unknown"


def test_family_of_reads_the_table():
    for name, family in models.FAMILY_TABLE.items():
        settings = {key: value for key, value in (("tokenizer", family.tokenizer), ("t2t_block", family.t2t_block))
                    if value is not None}
        assert models.family_of(settings) == name
    assert {models.family_of(models.MODEL_CONFIGS[name]) for name in models.MODEL_CONFIGS} <= set(models.FAMILY_TABLE)
    # configs saved before `tokenizer` existed, and models that are not ours
    assert models.family_of({"family": "vit"}) == "vit" and models.family_of({"family": "t2t"}) == "t2t-performer"
    assert models.family_of({"tokenizer": "t2t"}) == "t2t-performer" and models.family_of({}) == "cnn"


def test_the_toy_tokenizer_runs_in_the_backbone():
    assert backbone(PoolTokenizer())(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


POOL = models.Family("Pool tokens", "tab:brown", tokenizer="pool")


@pytest.fixture
def pool_family(monkeypatch):
    """The toy family as a new family would be added: a FAMILY_TABLE row (the report's styles, made from the table
    at import, get it too) and a named model of it."""
    monkeypatch.setitem(models.FAMILY_TABLE, "pool", POOL)
    monkeypatch.setitem(style.FAMILY_STYLES, "pool", POOL)
    monkeypatch.setitem(models.MODEL_CONFIGS, "pool_toy", {"tokenizer": "pool", "mlp_ratio": 2.0})


def test_a_new_family_is_its_own_in_a_sweeps_rows_and_report(pool_family):
    model = backbone(PoolTokenizer())
    model.model_name, model.config = "pool_toy", models.MODEL_CONFIGS["pool_toy"]
    row = config_columns(model)
    assert row["tokenizer"] == "pool"  # was "patch": every front end that was not T2T read as the ViT's
    measured = pd.DataFrame([{**row, "status": "ok", "measurement": "params", "value": 1.0, "batch_size": 1,
                              "dtype": "float32"}])
    family = tables.sweep_wide(measured)["family"].tolist()
    assert family == ["pool"] and style.family_label(family[0]) == "Pool tokens"
    vit = config_columns(models.create_model("vit_lite_tiny", depth=1))
    assert [tables.tokenizer_family(r["tokenizer"]) for r in (vit, row)] == ["vit", "pool"]


def test_a_new_family_is_a_front_end_the_study_report_compares_with_the_mac_matched_vit(pool_family):
    arms = {"vit": "vit_lite_tiny", "vit-mac-matched": "vit_lite_tiny", "pool": "pool_toy",
            "t2t-performer": "t2t_vit_lite_tiny", "cnn": "resnet_cifar_tiny"}
    results = pd.DataFrame([
        {"arm": arm, "label": f"{arm} label", "model": model, "depth": 4, "fraction": fraction, "seed": seed,
         "test_top1": 50.0 + i + seed + fraction, "train_images": int(fraction * 1000), "updates": 100}
        for i, (arm, model) in enumerate(arms.items()) for seed in (0, 1) for fraction in (0.5, 1.0)])
    roles = ArmRoles("vit", ("vit-mac-matched",))
    ahead = " is ahead of vit-mac-matched label by"  # each arm is 1 point above the one before it, on every seed
    compared = {line.split(": ")[1].split(ahead)[0] for line in comparison_sentences(results, roles) if ahead in line}
    assert compared == {"pool label", "t2t-performer label"}  # the front ends, not the CNN nor the ViT
    assert set(multipliers(results, roles)["arm"]) == {"pool", "t2t-performer"}
