"""MAC and parameter counting: three counters agree, and match the reference's published counts."""
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import models
from bench.cost.flops import (  # FlopCountAnalysis is fvcore's, imported there without its import-time warning
    MODULE_GROUPS,
    FlopCountAnalysis,
    analytic_macs,
    fvcore_analysis,
    fvcore_macs,
    mac_counts,
    param_breakdown,
    torch_macs,
)
from bench.cost.published import build_published, published_rows
from bench.reference_t2t import RefT2TViT
from models import ConfigError, InputShapeError

# fvcore counts an einsum from numpy's einsum_path report, printed to 4 significant digits; the
# Performer's einsums are a few % of a T2T-ViT, so counts of the reference may be off by ~1e-5.
EINSUM_ROUNDING = 1e-4
COUNTERS = {"fvcore": fvcore_macs, "torch": torch_macs}
SMALL_T2T_CONFIGS = [
    dict(img_size=(64, 96), t2t_block="performer"),
    dict(img_size=(64, 96), t2t_block="transformer"),
    dict(img_size=32, t2t_stages=((3, 2, 1), (3, 2, 1))),
    dict(img_size=32, t2t_stages=((3, 2, 1), (3, 2, 1)), t2t_block="transformer"),
    dict(img_size=64, t2t_stages=((7, 4, 2), (3, 2, 1), (3, 1, 1))),
]


def shape_only(name, **overrides):
    """The named model with uninitialised CPU weights: counting reads shapes, so skip the slow init."""
    with torch.device("meta"):
        model = models.create_model(name, **overrides)
    return model.to_empty(device="cpu")


def meta_model(build, *args, **kwargs):
    """A model on the meta device: enough for analytic counts and parameter counts."""
    with torch.device("meta"):
        return build(*args, **kwargs)


def relative_difference(value, reference):
    return abs(value - reference) / reference


def assert_counters_agree(model, img_size=None, rel=0.01):
    """fvcore and torch totals and groups within `rel` of the analytic count; nothing outside the groups."""
    analytic = analytic_macs(model, img_size)
    for name, counter in COUNTERS.items():
        counted = counter(model, img_size)
        assert relative_difference(counted["total"], analytic["total"]) < rel, (name, counted, analytic)
        for group in MODULE_GROUPS:
            assert abs(counted[group] - analytic[group]) <= rel * analytic[group], (name, group, counted, analytic)
        assert counted["other"] == 0, (name, counted)
    return analytic


@pytest.mark.parametrize("name", models.list_models())
def test_three_counters_agree_on_every_named_model(name):
    assert_counters_agree(shape_only(name))


@pytest.mark.parametrize("name", models.list_models())
def test_fvcore_drops_no_op_that_costs_macs(name):
    analysis = fvcore_analysis(shape_only(name, depth=1))
    with torch.no_grad():
        assert analysis.total() > 0
    assert dict(analysis.unsupported_ops()) == {}


@pytest.mark.parametrize("row", published_rows(), ids=lambda r: r["model"])
def test_analytic_count_matches_published_reference(row):
    model = meta_model(build_published, row)
    reference = int(row["macs_reference"])
    difference = relative_difference(analytic_macs(model)["total"], reference)
    assert difference < 0.02
    assert difference < EINSUM_ROUNDING


@pytest.mark.parametrize("row", published_rows(), ids=lambda r: r["model"])
def test_param_breakdown_matches_published_counts(row):
    model = meta_model(build_published, row)
    counts = param_breakdown(model)
    assert counts["params"] == int(row["params_total"])
    assert counts["params_trainable"] == int(row["params_trainable"])
    assert counts["params_tokenizer"] + counts["params_backbone"] + counts["params_head"] == counts["params"]
    assert counts["params_tokenizer"] == models.count_params(model.tokenizer)  # the Performer tables too
    assert counts["params_head"] == sum(p.numel() for p in model.head.parameters())


@pytest.mark.parametrize("name", ["t2t_vit_14", "t2t_vit_t_14", "vb_vit_small_patch16_224"])
def test_breakdown_parts_sum_to_their_group_and_groups_to_total(name):
    breakdown = analytic_macs(meta_model(models.create_model, name))
    assert sum(breakdown[group] for group in MODULE_GROUPS) == breakdown["total"]
    for group in ("tokenizer", "attention"):
        parts = [macs for key, macs in breakdown.items() if key.startswith(f"{group}.")]
        assert len(parts) >= 1 and sum(parts) == breakdown[group]
    assert breakdown["attention.qk"] == breakdown["attention.av"] > 0
    assert min(breakdown[group] for group in MODULE_GROUPS) > 0


def tokenizer_share(name, **overrides):
    breakdown = analytic_macs(meta_model(models.create_model, name, **overrides))
    return breakdown["tokenizer"] / breakdown["total"]


@pytest.mark.parametrize("name", models.list_models("t2t_*"))
def test_tokenizer_share_is_larger_for_t2t_than_for_patch_vit_on_the_same_backbone(name):
    config = models.resolve_config(name)
    backbone = {key: config[key] for key in ("embed_dim", "depth", "num_heads", "mlp_ratio", "img_size")}
    stride = models.create_model(name, depth=1).tokenizer.stride  # the ViT with the same tokens
    assert tokenizer_share(name) > 2 * tokenizer_share("vb_vit_small_patch16_224", **backbone, patch_size=stride)


@pytest.mark.parametrize("overrides", SMALL_T2T_CONFIGS, ids=str)
def test_counters_agree_on_small_and_non_square_t2t(overrides):
    assert_counters_agree(shape_only("t2t_vit_7", depth=2, **overrides))


def test_counters_agree_on_non_square_patch_vit():
    assert_counters_agree(shape_only("vb_vit_tiny_patch16_224", img_size=(32, 64), patch_size=8, depth=2))


@pytest.mark.filterwarnings("ignore:__array_wrap__:DeprecationWarning")  # np.sqrt on traced sizes
@pytest.mark.parametrize("block", ["performer", "transformer"])
def test_reference_counted_by_plain_fvcore_equals_our_analytic_count(block):
    """The reference writes attention as explicit matmuls and einsums, which plain fvcore counts."""
    size = dict(embed_dim=256, depth=2, num_heads=4, mlp_ratio=2.0)
    reference = RefT2TViT(tokens_type=block, **size).eval()
    analysis = FlopCountAnalysis(reference, torch.zeros(1, 3, 224, 224))
    analysis.unsupported_ops_warnings(False)
    with torch.no_grad():
        reference_macs = analysis.total()
    ours = shape_only("t2t_vit_7", t2t_block=block, **size)
    assert reference_macs == pytest.approx(analytic_macs(ours)["total"], rel=EINSUM_ROUNDING)
    assert reference_macs == pytest.approx(fvcore_macs(ours)["total"], rel=EINSUM_ROUNDING)
    if block == "transformer":  # no einsum, so no rounding: equal to the MAC
        assert reference_macs == analytic_macs(ours)["total"] == fvcore_macs(ours)["total"]


def test_plain_counters_miss_fused_attention_and_ours_do_not():
    model = shape_only("vb_vit_small_patch16_224")
    deit_small = next(r for r in published_rows() if r["model"] == "deit_small_patch16_224")
    plain = FlopCountAnalysis(model, torch.zeros(1, 3, 224, 224))
    plain.unsupported_ops_warnings(False)
    with torch.no_grad():
        plain_fvcore = plain.total()
    breakdown = analytic_macs(model)
    assert plain_fvcore < 0.95 * int(deit_small["macs_reference"])  # the README's 4.25 G instead of 4.61 G
    assert plain_fvcore + breakdown["attention.qk"] + breakdown["attention.av"] == fvcore_macs(model)["total"]
    with torch.no_grad(), FlopCounterMode(display=False) as plain_torch:
        model.eval()(torch.zeros(1, 3, 224, 224))
    assert plain_torch.get_total_flops() // 2 < torch_macs(model)["total"]


def test_counting_at_another_size_equals_a_model_built_there_and_leaves_the_model_alone():
    model = models.create_model("t2t_vit_7", depth=2, drop_rate=0.1).train()
    pos_embed = model.pos_embed
    saved = pos_embed.detach().clone()
    at_other_size = assert_counters_agree(model, img_size=(64, 96))
    assert at_other_size == analytic_macs(shape_only("t2t_vit_7", depth=2, img_size=(64, 96)))
    assert at_other_size["total"] < analytic_macs(model)["total"]
    assert model.img_size == (224, 224) and model.tokenizer.grid_size == (14, 14) and model.training
    assert model.pos_embed is pos_embed and torch.equal(model.pos_embed, saved)


def test_count_macs_row():
    model = shape_only("t2t_vit_7", depth=2, img_size=64)
    row = mac_counts(model)
    breakdown = analytic_macs(model)
    assert row["macs"] == breakdown["total"]
    assert relative_difference(row["macs_fvcore"], row["macs"]) < 0.01
    assert relative_difference(row["macs_torch"], row["macs"]) < 0.01
    assert {f"macs_{part}" for part in breakdown if part != "total"} <= set(row)
    assert sum(row[f"macs_{group}"] for group in MODULE_GROUPS) == row["macs"]
    assert {"macs_tokenizer.blocks", "macs_tokenizer.project", "macs_attention.qk"} <= set(row)


@pytest.mark.parametrize("count", [analytic_macs, fvcore_macs, torch_macs, mac_counts])
def test_counting_at_a_size_the_model_cannot_take_raises(count):
    t2t = shape_only("t2t_vit_7", depth=1, img_size=32)
    with pytest.raises(InputShapeError, match="200x200 is not divisible by the T2T stride 16"):
        count(t2t, img_size=200)
    with pytest.raises(ConfigError, match="img_size=.large. must be a positive integer"):
        count(t2t, img_size="large")
    vit = shape_only("vb_vit_tiny_patch16_224", depth=1)
    with pytest.raises(InputShapeError, match="224x100 is not divisible by the patch stride 16"):
        count(vit, img_size=(224, 100))
