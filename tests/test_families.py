"""Model families: a tokenizer family brings its own costs, and one table names and colours every family."""
import math

import pytest
import torch
import torch.nn.functional as F
from matplotlib.colors import is_color_like
from torch import nn

import models
from bench.cost.flops import MODULE_GROUPS, analytic_macs, fvcore_macs, torch_macs
from bench.cost.memory import activation_estimate_bytes
from bench.report import style
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
