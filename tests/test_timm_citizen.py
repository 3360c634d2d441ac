"""Our models as full timm models: pretrained cfgs, local pretrained loading, features, checkpointing, layer decay."""
import argparse
from urllib.error import URLError

import pytest
import timm
import torch
from timm.layers import resample_abs_pos_embed
from timm.optim import create_optimizer_v2

import models
from bench.reference_t2t import RefT2TViT
from models import CheckpointError, ConfigError
from models.registry import RELEASES, T2T_RELEASE

TINY_T2T = dict(img_size=32, embed_dim=48, depth=2, num_heads=4, mlp_ratio=2.0)
TINY_VIT = dict(img_size=32, depth=2)  # vit_tiny_patch16_224's width at a 2 x 2 grid


def randomize(model):
    """Random values everywhere, norms included, so equal outputs are not trivially equal."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.1)
    return model.eval()


def test_every_name_has_a_default_pretrained_cfg():
    for name in models.list_models():
        cfg = timm.get_pretrained_cfg(name)
        assert cfg is not None and cfg.classifier == "head" and cfg.interpolation == "bicubic", name
        assert cfg.url == RELEASES.get(name, (None, None))[1] and cfg.file is None and cfg.notes, name
        cifar = models.MODEL_CONFIGS[name].get("img_size") == 32
        assert cfg.input_size == ((3, 32, 32) if cifar else (3, 224, 224)), name
        assert cfg.num_classes == (10 if cifar else 1000) and cfg.crop_pct == 0.9, name
        # what the harness has trained and evaluated every arm with, CIFAR's included
        assert (cfg.mean, cfg.std) == (timm.data.IMAGENET_DEFAULT_MEAN, timm.data.IMAGENET_DEFAULT_STD), name
        assert cfg.tag == RELEASES.get(name, (None,))[0], name
    assert sum(models.MODEL_CONFIGS[name].get("img_size") == 32 for name in models.list_models()) == 9
    assert timm.get_pretrained_cfg("t2t_vit_t_14").url == (
        "https://github.com/yitu-opensource/T2T-ViT/releases/download/main/81.7_T2T_ViTt_14.pth.tar")


def test_released_names_are_listed_as_pretrained_with_their_tag():
    listed = timm.list_pretrained("t2t_vit*")
    assert listed == [f"{name}.in1k" for name in T2T_RELEASE] and "t2t_vit_lite_tiny" not in str(listed)
    deit_sizes = ("base", "small", "tiny")
    assert timm.list_pretrained("vb_vit*") == [f"vb_vit_{size}_patch16_224.fb_in1k" for size in deit_sizes]


def offline(url, *args, **kwargs):
    raise URLError("offline in tests")


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty TORCH_HOME whose downloads fail: what `pretrained=True` reads must already be in its cache."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    return cache


def test_pretrained_reads_the_reference_release_from_timms_hub_cache(hub_cache):
    ema = randomize(RefT2TViT(tokens_type="performer", qk_scale=48**-0.5, num_classes=1000, **TINY_T2T))
    torch.save({"epoch": 309, "args": argparse.Namespace(lr=1e-3), "state_dict": ema.state_dict(),
                "state_dict_ema": ema.state_dict()}, hub_cache / "71.7_T2T_ViT_7.pth.tar")  # as the release saved it
    ours = timm.create_model("t2t_vit_7", pretrained=True, **TINY_T2T).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert (ours(x) - ema(x)).abs().max() < 1e-5


def test_pretrained_reads_the_deit_release_from_timms_hub_cache(hub_cache):
    deit = randomize(timm.create_model("deit_tiny_patch16_224", **TINY_VIT))
    torch.save({"model": deit.state_dict()}, hub_cache / "deit_tiny_patch16_224-a1311bcf.pth")  # Facebook's layout
    ours = timm.create_model("vb_vit_tiny_patch16_224", pretrained=True, **TINY_VIT).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert (ours(x) - deit(x)).abs().max() < 1e-5


def test_missing_weights_are_one_line_naming_where_they_were_looked_for(hub_cache, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative `file` is looked for here
    with pytest.raises(CheckpointError, match=rf"could not download https://github.com/yitu-opensource/T2T-ViT/"
                       rf"releases/download/main/71.7_T2T_ViT_7.pth.tar \(cached at {hub_cache}/71.7_T2T_ViT_7"
                       r"\.pth\.tar\): offline in tests; place the file there") as error:
        timm.create_model("t2t_vit_7", pretrained=True, **TINY_T2T)
    assert "\n" not in str(error.value)
    with pytest.raises(CheckpointError, match=rf"pretrained weights not found: looked for {tmp_path}/no\.pth "
                                              r"\(pretrained_cfg file='no\.pth'\)"):
        timm.create_model("t2t_vit_7", pretrained=True, pretrained_cfg_overlay=dict(file="no.pth"), **TINY_T2T)
    with pytest.raises(ConfigError, match=r"t2t_vit_lite_tiny has no released weights; pass pretrained_cfg_overlay"):
        timm.create_model("t2t_vit_lite_tiny", pretrained=True)


@pytest.mark.parametrize("block", ["performer", "transformer"])
def test_reference_t2t_release_layout_loads_through_timm(tmp_path, block):
    ref = randomize(RefT2TViT(tokens_type=block, qk_scale=48**-0.5, num_classes=5, **TINY_T2T))
    ema = randomize(RefT2TViT(tokens_type=block, qk_scale=48**-0.5, num_classes=5, **TINY_T2T))
    path = tmp_path / "71.7_T2T_ViT_7.pth.tar"  # as the release saved it: timm's train.py, args and EMA included
    torch.save({"epoch": 309, "arch": "T2t_vit_7", "args": argparse.Namespace(lr=1e-3),
                "state_dict": ref.state_dict(), "state_dict_ema": ema.state_dict()}, path)
    ours = timm.create_model("t2t_vit_7", pretrained=True, pretrained_cfg_overlay=dict(file=str(path), num_classes=5),
                             t2t_block=block, num_classes=5, **TINY_T2T).eval()
    assert ours.blocks[0].attn.scale == 48**-0.5  # the released weights' quirk, set by the filter
    converted = models.create_model("t2t_vit_7", t2t_block=block, num_classes=5, **TINY_T2T).eval()
    models.load_checkpoint(converted, path, use_ema=True)  # timm reads state_dict_ema when a file has one
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(ours(x), converted(x))
        assert (ours(x) - ema(x)).abs().max() < 1e-4


def timm_vit_file(tmp_path, num_classes=1000):
    theirs = randomize(timm.create_model("vit_tiny_patch16_224", num_classes=num_classes, **TINY_VIT))
    torch.save(theirs.state_dict(), tmp_path / "vit_tiny.pth")
    return theirs, str(tmp_path / "vit_tiny.pth")


def test_timm_vit_state_dict_loads_into_our_vit_like_the_converter(tmp_path):
    theirs, path = timm_vit_file(tmp_path)
    ours = timm.create_model("vb_vit_tiny_patch16_224", pretrained=True, pretrained_cfg_overlay=dict(file=path),
                             **TINY_VIT).eval()
    converted = models.create_model("vb_vit_tiny_patch16_224", **TINY_VIT).eval()
    models.load_checkpoint(converted, path)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(ours(x), converted(x))
        assert (ours(x) - theirs(x)).abs().max() < 1e-4


def test_other_classes_reset_the_head_and_another_size_resizes_positions(tmp_path):
    theirs, path = timm_vit_file(tmp_path)
    ours = timm.create_model("vb_vit_tiny_patch16_224", pretrained=True, pretrained_cfg_overlay=dict(file=path),
                             img_size=64, depth=2, num_classes=10)
    assert ours.head.weight.shape == (10, 192) and not torch.equal(ours.head.weight[:, :10], theirs.head.weight[:10])
    assert torch.equal(ours.blocks[1].mlp.fc2.weight, theirs.blocks[1].mlp.fc2.weight)
    expected = resample_abs_pos_embed(theirs.pos_embed.detach(), [4, 4], [2, 2], num_prefix_tokens=1)
    torch.testing.assert_close(ours.pos_embed.detach(), expected)
    assert ours.pretrained_cfg["input_size"] == (3, 64, 64) and ours.pretrained_cfg["num_classes"] == 10


def test_a_checkpoint_that_does_not_fit_is_refused_in_one_line(tmp_path):
    _, path = timm_vit_file(tmp_path, num_classes=7)
    with pytest.raises(CheckpointError, match="timm-vit layout.*does not fit t2t_vit_7") as error:
        timm.create_model("t2t_vit_7", pretrained=True, pretrained_cfg_overlay=dict(file=path), **TINY_T2T)
    assert "\n" not in str(error.value)
    with pytest.raises(CheckpointError, match=r"head has 7 classes: pass pretrained_cfg_overlay=.*num_classes=7"):
        timm.create_model("vb_vit_tiny_patch16_224", pretrained=True, pretrained_cfg_overlay=dict(file=path),
                          **TINY_VIT)
    ours = timm.create_model("vb_vit_tiny_patch16_224", pretrained=True, num_classes=7,
                             pretrained_cfg_overlay=dict(file=path, num_classes=7), **TINY_VIT)
    assert torch.equal(ours.head.weight, torch.load(path)["head.weight"])


@pytest.mark.parametrize("name, size, grid", [("t2t_vit_t_14", 64, 4), ("t2t_vit_lite_tiny", 32, 8)])
def test_features_only_gives_every_block(name, size, grid):
    settings = dict(img_size=size, depth=3, embed_dim=32, num_heads=2)
    features = timm.create_model(name, features_only=True, **settings)
    maps = features(torch.randn(2, 3, size, size))
    assert [m.shape for m in maps] == [(2, 32, grid, grid)] * 3
    assert features.feature_info.channels() == [32] * 3
    assert features.feature_info.reduction() == [size // grid] * 3
    assert features.feature_info.module_name() == ["blocks.0", "blocks.1", "blocks.2"]
    last = timm.create_model(name, features_only=True, out_indices=(1,), **settings)
    assert len(last.model.blocks) == 2  # pruned after the last block asked for
    assert [m.shape for m in last(torch.randn(1, 3, size, size))] == [(1, 32, grid, grid)]


def test_forward_intermediates_matches_forward_features():
    model = models.create_model("t2t_vit_7", depth=3, **{k: v for k, v in TINY_T2T.items() if k != "depth"}).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        final, tokens = model.forward_intermediates(x, indices=[0, -1], output_fmt="NLC")
        maps = model.forward_intermediates(x, indices=2, norm=True, intermediates_only=True)
        torch.testing.assert_close(final, model.forward_features(x))
    assert [t.shape for t in tokens] == [(2, 4, 48)] * 2 and [m.shape for m in maps] == [(2, 48, 2, 2)] * 2
    torch.testing.assert_close(maps[-1].flatten(2).transpose(1, 2), final[:, 1:])
    with pytest.raises(ConfigError, match="indices"):
        model.forward_intermediates(x, indices=[3])


def test_gradient_checkpointing_recomputes_blocks_and_gives_the_same_gradients():
    settings = dict(t2t_drop=0.0, **TINY_T2T)
    plain = models.create_model("t2t_vit_t_14", **settings)
    checkpointed = models.create_model("t2t_vit_t_14", **settings)
    checkpointed.load_state_dict(plain.state_dict())
    checkpointed.set_grad_checkpointing(True)
    calls = []
    checkpointed.blocks[0].register_forward_pre_hook(lambda *_: calls.append(1))  # recomputing may stop early
    x = torch.randn(2, 3, 32, 32)
    for model in (plain, checkpointed):
        model(x).logsumexp(dim=1).mean().backward()
    assert len(calls) == 2  # the block ran again in the backward pass
    for (key, a), b in zip(plain.named_parameters(), checkpointed.parameters()):
        if a.grad is not None:
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-6, msg=key)


def test_layer_decay_gives_each_block_its_own_lr_scale():
    model = models.create_model("t2t_vit_7", depth=3, **{k: v for k, v in TINY_T2T.items() if k != "depth"})
    optimizer = create_optimizer_v2(model, opt="adamw", lr=1e-3, weight_decay=0.05, layer_decay=0.65)
    scale = {id(p): group["lr_scale"] for group in optimizer.param_groups for p in group["params"]}
    named = dict(model.named_parameters())
    stem = scale[id(named["tokenizer.project.weight"])]
    blocks = [scale[id(named[f"blocks.{i}.attn.qkv.weight"])] for i in range(3)]
    assert stem == scale[id(named["cls_token"])] and stem < blocks[0] < blocks[1] < blocks[2] < 1.0
    assert blocks == pytest.approx([0.65**3, 0.65**2, 0.65]) and stem == pytest.approx(0.65**4)
    assert scale[id(named["norm.weight"])] == blocks[2] and scale[id(named["head.weight"])] == 1.0  # as timm's ViT


def test_our_factory_is_timms_and_keeps_its_attributes():
    model = models.create_model("t2t_vit_lite_tiny", depth=1, t2t_drop=None)
    assert model.model_name == "t2t_vit_lite_tiny" and model.config["t2t_drop"] is None
    assert model.pretrained_cfg["input_size"] == (3, 32, 32) and model.default_cfg is model.pretrained_cfg
    with torch.device("meta"):
        assert models.create_model("t2t_vit_14").pos_embed.is_meta
    with pytest.raises(ConfigError, match="unknown option"):
        models.create_model("t2t_vit_7", features_only=True)


def test_dynamic_img_size_resamples_positions_per_batch_as_set_img_size_does():
    fixed = models.create_model("vb_vit_tiny_patch16_224", img_size=32, depth=1).eval()
    dynamic = models.create_model("vb_vit_tiny_patch16_224", img_size=32, depth=1, dynamic_img_size=True).eval()
    dynamic.load_state_dict(fixed.state_dict())
    assert fixed.pretrained_cfg["fixed_input_size"] and not dynamic.pretrained_cfg["fixed_input_size"]
    x = torch.randn(2, 3, 64, 48)
    with pytest.raises(models.InputShapeError, match=r"built for 32x32; .* or with dynamic_img_size=True"):
        fixed(x)
    fixed.set_img_size((64, 48))
    with torch.no_grad():
        assert torch.equal(dynamic(x), fixed(x))
        assert dynamic.forward_intermediates(x, intermediates_only=True)[0].shape == (2, 192, 4, 3)


@pytest.mark.parametrize("name", ["t2t_vit_7", "t2t_vit_t_14", "vb_vit_tiny_patch16_224"])
def test_forward_traces_with_torch_fx_and_timms_leaf_functions(name):
    from timm.models import get_notrace_functions

    model = models.create_model(name, img_size=32, depth=1).eval()
    tracer = torch.fx.Tracer(autowrap_functions=tuple(get_notrace_functions()))
    traced = torch.fx.GraphModule(model, tracer.trace(model))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(traced(x), model(x))
    assert not [n for n, p in model.named_parameters() if not p.requires_grad]  # fixed tables are buffers
