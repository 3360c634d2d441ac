"""Weights out: `vitbench export` round trips, each layout loaded by its own code with identical logits."""
import json
from functools import partial

import pytest
import safetensors
import safetensors.torch
import timm
import torch
from timm.models.vision_transformer import VisionTransformer as TimmViT
from torch import nn

import models
from bench.cli import main
from bench.configs import ExportConfig
from bench.reference_t2t import RefT2TViT
from models.export import LAYOUTS

T2T = dict(img_size=32, embed_dim=48, depth=2, num_heads=4, mlp_ratio=2.0, num_classes=5)


def randomize(model):
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.1)
    return model.eval()


def saved_run(tmp_path, name, **overrides):
    """A run folder as `vitbench train` leaves it: best.pth and last.pth, written by save_checkpoint."""
    model = randomize(models.create_model(name, **overrides))
    run = tmp_path / "run"
    run.mkdir()
    models.save_checkpoint(model, run / "best.pth", build={"model": name})
    models.save_checkpoint(randomize(models.create_model(name, **overrides)).requires_grad_(False), run / "last.pth")
    return model, run


def export(source, out, layout, *extra):
    return main(["export", str(source), "--out", str(out), "--layout", layout, *extra])


def logits_gap(a, b, size=32):
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return (a(x) - b(x)).abs().max().item()


def test_the_config_knows_every_layout():
    assert ExportConfig.__dataclass_fields__["layout"].metadata["choices"] == LAYOUTS


def test_a_vit_exports_to_plain_timm_with_identical_logits(tmp_path, capsys):
    ours, run = saved_run(tmp_path, "vb_vit_tiny_patch16_224", img_size=32, depth=2, num_classes=7)
    assert export(run, tmp_path / "vit.safetensors", "timm") == 0
    assert "best.pth" in capsys.readouterr().out  # a run folder gives its chosen model
    with safetensors.safe_open(tmp_path / "vit.safetensors", "pt") as f:
        meta = f.metadata()
    args = json.loads(meta["timm_model_args"])
    assert meta["layout"] == "timm" and meta["model"] == "vb_vit_tiny_patch16_224"
    assert json.loads(meta["norm_eps"]) == 1e-6
    theirs = timm.create_model("vit_tiny_patch16_224", pretrained=True, **args,
                               pretrained_cfg_overlay=dict(file=str(tmp_path / "vit.safetensors"), num_classes=7))
    assert logits_gap(theirs.eval(), ours) == 0  # the same computation, to the bit


def test_a_cifar_vit_with_torchs_eps_exports_to_timms_class(tmp_path):
    ours, run = saved_run(tmp_path, "vit_lite_tiny")
    assert export(run / "best.pth", tmp_path / "lite.safetensors", "timm") == 0
    with safetensors.safe_open(tmp_path / "lite.safetensors", "pt") as f:
        meta = f.metadata()
    theirs = TimmViT(**json.loads(meta["timm_model_args"]),
                     norm_layer=partial(nn.LayerNorm, eps=json.loads(meta["norm_eps"])))
    theirs.load_state_dict(safetensors.torch.load_file(tmp_path / "lite.safetensors"))  # strict: every key
    assert logits_gap(theirs.eval(), ours) == 0


@pytest.mark.parametrize("block", ["performer", "transformer"])
def test_a_t2t_vit_exports_to_the_reference_layout_with_identical_logits(tmp_path, block):
    ours, run = saved_run(tmp_path, "t2t_vit_7", t2t_block=block, **T2T)
    assert export(run, tmp_path / "t2t.safetensors", "reference") == 0
    reference = RefT2TViT(tokens_type=block, **T2T)
    reference.load_state_dict(safetensors.torch.load_file(tmp_path / "t2t.safetensors"))  # strict: every key
    assert logits_gap(reference.eval(), ours) < 1e-5  # the reference computes the same in another order


def test_our_layout_loads_back_exactly(tmp_path):
    ours, run = saved_run(tmp_path, "t2t_vit_t_14", **T2T)
    assert export(run, tmp_path / "ours.safetensors", "ours") == 0
    clone = models.create_model("t2t_vit_t_14", **T2T).eval()
    assert models.load_checkpoint(clone, tmp_path / "ours.safetensors")["layout"] == "vitbench"
    assert logits_gap(clone, ours) == 0


def test_what_a_layout_cannot_hold_is_refused_in_one_line(tmp_path, capsys):
    _, run = saved_run(tmp_path, "t2t_vit_7", **T2T)
    out = tmp_path / "x.safetensors"
    assert export(run, out, "timm") == 2
    assert "timm has no T2T-ViT; export a T2T-ViT with --layout reference" in capsys.readouterr().err
    assert export(run, out, "ours") == 0 and export(run, out, "ours") == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert export(run, out, "ours", "--overwrite") == 0
    assert export(run, tmp_path / "x.pth", "ours") == 2
    assert "must end in .safetensors" in capsys.readouterr().err
    assert export(tmp_path, out, "ours", "--overwrite") == 2
    assert "is a folder without best.pth or last.pth" in capsys.readouterr().err
    torch.save(models.create_model("vit_lite_tiny").state_dict(), tmp_path / "plain.pth")
    assert export(tmp_path / "plain.pth", out, "timm", "--overwrite") == 2
    assert "has no vitbench model config" in capsys.readouterr().err
