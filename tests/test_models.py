"""Architecture: parameter parity with the reference table, tokenizer geometry, timm API."""
import json

import pytest
import timm
import torch
from timm.data import resolve_data_config
from torch import nn

import models
from bench.cost.published import PUBLISHED_CSV, build_published, published_rows
from models import ConfigError, InputShapeError, UnknownModelError
from models.tokenizers import PatchTokenizer, T2TTokenizer

from .conftest import SHARED


def count(model):
    """The paper's figures: every parameter with the fixed tables, and those that train."""
    return models.count_params(model), models.count_params(model, trainable_only=True)


@pytest.mark.parametrize("row", published_rows(), ids=lambda r: r["model"])
def test_parameter_counts_match_reference_exactly(row):
    model = build_published(row)
    assert count(model) == (int(row["params_total"]), int(row["params_trainable"]))
    assert model.embed_dim == int(row["embed_dim"])
    assert len(model.blocks) == int(row["depth"])
    assert model.blocks[0].attn.num_heads == int(row["num_heads"])
    if row["t2t_block"] != "patch16":
        assert model.tokenizer.block_kind == row["t2t_block"]


def test_vendored_reference_table_is_the_shared_one():
    rows = published_rows()
    assert len(rows) == 16 and {"params_total", "params_trainable", "macs_reference"} <= set(rows[0])
    shared = SHARED / "reference" / "published.csv"
    assert not shared.exists() or PUBLISHED_CSV.read_bytes() == shared.read_bytes()


def test_paper_vit_s16_with_fixed_table_has_the_papers_48_6m_trainable():
    total, trainable = count(models.create_model("vit_s16_t2t_paper"))
    assert total - trainable == 197 * 768
    assert round(trainable / 1e6, 1) == 48.6


def test_patch_tokenizer_is_unfold_plus_linear_on_non_square_images():
    tok = PatchTokenizer(img_size=(60, 100), patch_size=20, in_chans=1, embed_dim=8)  # the article's example
    x = torch.randn(2, 1, 60, 100)
    tokens = tok(x)
    assert tokens.shape == (2, 15, 8)
    patches = nn.Unfold(20, stride=20)(x).transpose(1, 2)  # (2, 15, 400)
    assert patches.shape == (2, 15, 400)
    torch.testing.assert_close(tokens, tok.proj(patches), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bad", [(60, 101), (59, 100)])
def test_patch_tokenizer_refuses_sizes_not_divisible_by_patch(bad):
    tok = PatchTokenizer(img_size=(60, 100), patch_size=20, embed_dim=8)
    with pytest.raises(InputShapeError, match=rf"{bad[0]}x{bad[1]} is not divisible by the patch stride 20"):
        tok(torch.randn(1, 3, *bad))
    with pytest.raises(ConfigError, match="not divisible"):
        models.create_model("vb_vit_tiny_patch16_224", img_size=bad, patch_size=20)


def test_wrong_channels_and_rank_are_named():
    model = models.create_model("vb_vit_tiny_patch16_224", img_size=32, depth=1)
    with pytest.raises(InputShapeError, match="expected 3 input channels, got 1"):
        model(torch.randn(2, 1, 32, 32))
    with pytest.raises(InputShapeError, match=r"4-D image batch.*unsqueeze"):
        model(torch.randn(3, 32, 32))
    with pytest.raises(InputShapeError, match=r"input is 64x64 but the model was built for 32x32"):
        model(torch.randn(1, 3, 64, 64))


@pytest.mark.parametrize("block", ["performer", "transformer"])
def test_t2t_handles_non_square_images(block):
    model = models.create_model("t2t_vit_7", img_size=(64, 96), t2t_block=block, depth=2).eval()
    assert model.tokenizer.grid_size == (4, 6)
    assert model.forward_features(torch.randn(2, 3, 64, 96)).shape == (2, 1 + 24, 256)


@pytest.mark.parametrize(
    "img_size, stages, grid",
    [
        (32, ((3, 2, 1), (3, 2, 1)), (8, 8)),
        (32, ((7, 4, 2), (3, 2, 1)), (4, 4)),
        (64, ((7, 4, 2), (3, 2, 1), (3, 1, 1)), (8, 8)),
    ],
)
def test_t2t_configurable_stages_for_small_images(img_size, stages, grid):
    tok = T2TTokenizer(img_size, embed_dim=16, token_dim=8, stages=stages)
    assert tok.grid_size == grid
    assert len(tok.blocks) == len(stages) - 1
    assert tok(torch.randn(2, 3, img_size, img_size)).shape == (2, grid[0] * grid[1], 16)


def test_t2t_reference_geometry_at_224():
    tok = T2TTokenizer(224, embed_dim=384, block="transformer")
    assert tok.grid_size == (14, 14) and tok.stride == 16
    assert tok.blocks[0].attn.qkv.in_features == 147 and tok.blocks[1].attn.qkv.in_features == 576
    assert tok.blocks[0].attn.scale == 147**-0.5
    assert tok.project.in_features == 576


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(num_heads=5), "num_heads=5 does not divide embed_dim=256"),
        (dict(t2t_block="linformer"), "unknown t2t_block='linformer'"),
        (dict(t2t_stages=((3, 2, 0),)), r"does not map H to H/stride"),
        (dict(patch_size=16), r"\['patch_size'\] apply to the other model family"),
        (dict(depht=3), r"unknown option\(s\) \['depht'\]"),
        (dict(img_size=200), "200x200 is not divisible by the T2T stride 16"),
        (dict(pos_embed="rope"), "unknown pos_embed='rope'"),
    ],
)
def test_bad_configs_raise_config_error(overrides, message):
    with pytest.raises(ConfigError, match=message):
        models.create_model("t2t_vit_7", **overrides)


def test_unknown_model_suggests_close_names():
    with pytest.raises(UnknownModelError, match="did you mean t2t_vit_14"):
        models.create_model("t2t_vit14")
    with pytest.raises(UnknownModelError, match="vitbench list"):
        models.create_model("resnet50")


def test_registry_lists_and_registers_with_timm_without_shadowing():
    assert models.list_models("t2t_vit_t_[0-9]*") == ["t2t_vit_t_14", "t2t_vit_t_19", "t2t_vit_t_24"]
    assert set(models.list_models()) <= set(timm.list_models())
    ours = timm.create_model("t2t_vit_7", num_classes=5, img_size=32, depth=1)
    assert isinstance(ours, models.VisionTransformer) and ours.num_classes == 5
    theirs = timm.create_model("vit_base_patch16_224", depth=1)
    assert type(theirs).__module__ == "timm.models.vision_transformer"
    with pytest.raises(ConfigError, match="no released weights"):
        timm.create_model("vit_lite_tiny", pretrained=True)


def test_every_name_overrides_depth_heads_patch_and_size():
    for name in models.list_models():
        tokenizer = models.MODEL_CONFIGS[name]["tokenizer"]
        extra = {"patch_size": 8} if tokenizer == "patch" else {"t2t_block": "transformer"}
        model = models.create_model(name, depth=1, num_heads=2, embed_dim=32, img_size=(32, 64), num_classes=3, **extra)
        assert model(torch.randn(1, 3, 32, 64)).shape == (1, 3), name


def test_timm_model_api():
    model = models.create_model("t2t_vit_7", img_size=32, depth=2, num_classes=10).eval()
    x = torch.randn(2, 3, 32, 32)
    features = model.forward_features(x)
    assert features.shape == (2, 1 + 4, 256)
    assert model.forward_head(features, pre_logits=True).shape == (2, 256)
    torch.testing.assert_close(model.forward_head(features), model(x))
    model.reset_classifier(1)
    assert model(x).shape == (2, 1) and model.get_classifier().out_features == 1
    model.reset_classifier(0)
    assert model(x).shape == (2, 256)
    assert model.no_weight_decay() == {"cls_token"}
    assert models.create_model("vb_vit_tiny_patch16_224").no_weight_decay() == {"cls_token", "pos_embed"}
    data = resolve_data_config(model=model)
    assert data["input_size"] == (3, 32, 32) and data["crop_pct"] == 0.9 and data["interpolation"] == "bicubic"
    assert data["mean"] == (0.485, 0.456, 0.406) and data["std"] == (0.229, 0.224, 0.225)


def test_init_follows_reference():
    model = models.create_model("vb_vit_tiny_patch16_224", img_size=32)
    assert model.pos_embed.requires_grad and model.pos_embed.std() > 0.01  # learned, trunc-normal init
    fixed = models.create_model("t2t_vit_7", img_size=32, depth=1)
    assert not fixed.pos_embed.requires_grad and not fixed.tokenizer.blocks[0].w.requires_grad
    assert fixed.pos_embed[0, 0, 0] == 0 and fixed.pos_embed[0, 0, 1] == 1  # sin(0), cos(0)
    weights = torch.cat([b.mlp.fc1.weight.flatten() for b in model.blocks])
    assert abs(weights.std().item() - 0.02) < 0.002 and weights.abs().max() <= 2.0
    assert all((b.mlp.fc1.bias == 0).all() for b in model.blocks)
    assert fixed.blocks[0].attn.qkv.bias is None
    assert fixed.blocks[0].attn.scale == (256 // 4) ** -0.5


def test_dropout_and_stochastic_depth_options_train():
    model = models.create_model(
        "t2t_vit_7", img_size=32, depth=3, drop_rate=0.1, attn_drop_rate=0.1, drop_path_rate=0.2
    )
    assert [round(b.drop_path.drop_prob, 3) for b in model.blocks[1:]] == [0.1, 0.2]
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    assert model.cls_token.grad is not None and model.pos_embed.grad is None


def test_set_img_size_interpolates_positions_like_timm():
    from timm.layers import resample_abs_pos_embed

    model = models.create_model("vb_vit_tiny_patch16_224", img_size=32, depth=1)
    table = model.pos_embed.detach().clone()
    model.set_img_size((64, 48))
    expected = resample_abs_pos_embed(table, [4, 3], [2, 2], num_prefix_tokens=1)
    torch.testing.assert_close(model.pos_embed.detach(), expected)
    assert model.pos_embed.requires_grad and model.pretrained_cfg["input_size"] == (3, 64, 48)
    assert model.default_cfg is model.pretrained_cfg
    assert model(torch.randn(1, 3, 64, 48)).shape == (1, 1000)


def test_list_cli(capsys):
    from bench.cli import main

    assert main(["list", "t2t_vit_t_[0-9]*", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    published = {row["model"]: int(row["params_total"]) for row in published_rows()}
    assert [r["model"] for r in rows] == ["t2t_vit_t_14", "t2t_vit_t_19", "t2t_vit_t_24"]
    assert all(r["params"] == published[r["model"]] and r["tokens"] == 197 for r in rows)
    assert main(["list", "*cifar*", "--json"]) == 0
    cnns = json.loads(capsys.readouterr().out)
    assert {r["model"]: r["family"] for r in cnns} == {"resnet18_cifar": "cnn", "resnet_cifar_tiny": "cnn"}
    assert main(["list", "alexnet*"]) == 2
    assert "no model matches 'alexnet*'" in capsys.readouterr().err
