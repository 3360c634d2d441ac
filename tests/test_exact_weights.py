"""Every converter reproduces its source's logits, with the source's own settings carried by the model config.

Random weights of std 0.1 hide a wrong LayerNorm eps (1e-5 vs 1e-6 moves them by ~1e-7); real ViT-Ti weights moved
by 5e-4. So each layout is checked on weights where the eps matters, and on the real files where they are present.
"""
import json

import pytest
import safetensors
import timm
import torch
from timm.models.vision_transformer import VisionTransformer as TimmViT

import models
from bench.reference_t2t import RefT2TViT
from models import CheckpointError

from .conftest import SHARED

WEIGHTS = SHARED / "weights"
REAL_FILES = sorted(WEIGHTS.glob("*.safetensors")) if WEIGHTS.is_dir() else []
TINY_VIT = dict(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4, num_classes=7)


def quiet_tokens(model, stem):
    """Random weights whose tokens enter the first LayerNorm with variance ~1e-6, where its eps decides the output."""
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn_like(p) * (1e-3 if name.startswith(stem) or "pos_embed" in name or "cls" in name
                                           else 0.3))
    return model.eval()


def logits_gap(a, b, size):
    x = torch.randn(3, 3, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return (a(x) - b(x)).abs().max().item()


def test_timm_vit_weights_where_eps_matters_are_exact_and_a_wrong_eps_is_refused(tmp_path):
    source = quiet_tokens(TimmViT(**TINY_VIT), "patch_embed")
    torch.save(source.state_dict(), tmp_path / "timm.pth")
    ours = models.create_model("vb_vit_tiny_patch16_224", **TINY_VIT).eval()
    assert ours.config["norm_eps"] == 1e-6 and ours.norm.eps == 1e-6
    models.load_checkpoint(ours, tmp_path / "timm.pth")
    assert logits_gap(ours, source, (32, 32)) < 1e-5

    wrong = models.create_model("vb_vit_tiny_patch16_224", norm_eps=1e-5, **TINY_VIT).eval()
    with pytest.raises(CheckpointError, match=r"LayerNorm eps is 1e-06, the model's 1e-05: create the model with "
                                              r"norm_eps=1e-06"):
        models.load_checkpoint(wrong, tmp_path / "timm.pth")
    wrong.load_state_dict(ours.state_dict())  # what loading it anyway would give: visibly different logits
    assert logits_gap(wrong, source, (32, 32)) > 1e-3


def test_reference_t2t_weights_where_eps_matters_are_exact_and_a_wrong_eps_is_refused(tmp_path):
    config = dict(img_size=32, embed_dim=48, depth=2, num_heads=4, mlp_ratio=2.0, num_classes=5)
    source = quiet_tokens(RefT2TViT(tokens_type="transformer", qk_scale=48**-0.5, **config), "tokens_to_token")
    torch.save({"state_dict_ema": source.state_dict()}, tmp_path / "ref.pth.tar")
    ours = models.create_model("t2t_vit_t_14", **config).eval()
    models.load_checkpoint(ours, tmp_path / "ref.pth.tar")
    assert logits_gap(ours, source, (32, 32)) < 1e-5
    wrong = models.create_model("t2t_vit_t_14", norm_eps=1e-6, **config).eval()
    with pytest.raises(CheckpointError, match=r"eps is 1e-05, the model's 1e-06"):
        models.load_checkpoint(wrong, tmp_path / "ref.pth.tar")


def test_our_checkpoints_carry_their_eps_and_old_ones_mean_1e_5(tmp_path):
    model = models.create_model("vb_vit_tiny_patch16_224", **TINY_VIT)
    models.save_checkpoint(model, tmp_path / "new.pth")
    other = models.create_model("vb_vit_tiny_patch16_224", norm_eps=1e-5, **TINY_VIT)
    with pytest.raises(CheckpointError, match="create the model with norm_eps=1e-06"):
        models.load_checkpoint(other, tmp_path / "new.pth")
    payload = torch.load(tmp_path / "new.pth", weights_only=True)
    del payload["config"]["norm_eps"]  # saved before configs carried it: every model then used 1e-5
    torch.save(payload, tmp_path / "old.pth")
    assert models.load_checkpoint(other, tmp_path / "old.pth")["layout"] == "vitbench"


def test_timms_path_refuses_a_wrong_eps_too(tmp_path):
    torch.save(TimmViT(**TINY_VIT).state_dict(), tmp_path / "timm.pth")
    overlay = dict(file=str(tmp_path / "timm.pth"), num_classes=7)
    model = timm.create_model("vb_vit_tiny_patch16_224", pretrained=True, pretrained_cfg_overlay=overlay, **TINY_VIT)
    assert model.norm.eps == 1e-6
    with pytest.raises(CheckpointError, match="norm_eps=1e-06"):
        timm.create_model("vb_vit_tiny_patch16_224", pretrained=True, pretrained_cfg_overlay=overlay, norm_eps=1e-5,
                          **TINY_VIT)


@pytest.mark.skipif(not REAL_FILES, reason=f"no real ViT-Ti weights in {WEIGHTS} (optional, beside the repository)")
@pytest.mark.parametrize("path", REAL_FILES, ids=lambda p: p.name.split(".")[0])
def test_real_vit_tiny_weights_give_timms_logits(path):
    with safetensors.safe_open(path, "pt") as f:
        architecture = json.loads(f.metadata()["pretrained_cfg"])["architecture"]
    source = timm.create_model(architecture, pretrained=True, pretrained_cfg_overlay=dict(file=str(path))).eval()
    ours = models.create_model("vb_vit_tiny_patch16_224").eval()
    assert models.load_checkpoint(ours, path)["layout"] == "timm-vit"
    assert logits_gap(ours, source, (224, 224)) < 2e-5  # was 5e-4 with the eps of 1e-5
    via_timm = timm.create_model("vb_vit_tiny_patch16_224", pretrained=True,
                                 pretrained_cfg_overlay=dict(file=str(path))).eval()
    assert logits_gap(via_timm, source, (224, 224)) < 2e-5


@pytest.mark.skip(reason="no T2T-ViT release file can be had on these machines (../shared/weights/README.md); the "
                         "reference layout is proven on weights where eps matters above")
def test_real_t2t_release_weights():
    """Kept as the named gap in the sweep: with a release file, compare with bench.reference_t2t as above."""
