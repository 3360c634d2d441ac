"""Checkpoint conversion proven by equivalence, and every bad file refused with a clear error."""
import argparse
import pickle

import pytest
import torch
from timm.layers import resample_abs_pos_embed
from timm.models.vision_transformer import VisionTransformer as TimmViT

import models
from bench.reference_t2t import RefT2TViT
from models import CheckpointError


def randomize(model):
    """Random values everywhere, norms included, so equivalence is not trivially true."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.1)
    return model.eval()


@pytest.mark.parametrize("img_size", [32, (32, 48)])
def test_timm_vit_weights_give_the_same_logits(tmp_path, img_size):
    timm_model = randomize(TimmViT(img_size=img_size, patch_size=8, embed_dim=64, depth=2, num_heads=4, num_classes=7))
    torch.save(timm_model.state_dict(), tmp_path / "timm.pth")
    ours = models.create_model("vb_vit_tiny_patch16_224", img_size=img_size, patch_size=8, embed_dim=64, depth=2,
                               num_heads=4, num_classes=7).eval()
    report = models.load_checkpoint(ours, tmp_path / "timm.pth")
    assert report["layout"] == "timm-vit" and not report["new_head"]
    x = torch.randn(3, 3, *ours.img_size)
    with torch.no_grad():
        assert (ours(x) - timm_model(x)).abs().max() < 1e-4


@pytest.mark.parametrize("block", ["performer", "transformer"])
@pytest.mark.parametrize("use_ema", [False, True])
def test_reference_t2t_checkpoint_reproduces_reference_outputs(tmp_path, block, use_ema):
    config = dict(img_size=32, embed_dim=48, depth=2, num_heads=4, mlp_ratio=2.0, num_classes=5)
    ref = randomize(RefT2TViT(tokens_type=block, qk_scale=48**-0.5, **config))
    ema = randomize(RefT2TViT(tokens_type=block, qk_scale=48**-0.5, **config))
    torch.save(
        {"epoch": 3, "state_dict": ref.state_dict(), "state_dict_ema": ema.state_dict()}, tmp_path / "ref.pth.tar"
    )
    ours = models.create_model("t2t_vit_7", t2t_block=block, **config).eval()
    report = models.load_checkpoint(ours, tmp_path / "ref.pth.tar", use_ema=use_ema)
    assert report["layout"] == "reference-t2t"
    assert ours.blocks[0].attn.scale == 48**-0.5  # the released weights' quirk
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert (ours(x) - (ema if use_ema else ref)(x)).abs().max() < 1e-4


def test_round_trip_of_our_checkpoint_is_exact(tmp_path):
    model = models.create_model("t2t_vit_t_14", img_size=(32, 64), depth=2, num_classes=4).eval()
    models.save_checkpoint(model, tmp_path / "ours.pth", epoch=1)
    clone = models.create_model("t2t_vit_t_14", img_size=(32, 64), depth=2, num_classes=4).eval()
    assert models.load_checkpoint(clone, tmp_path / "ours.pth")["layout"] == "vitbench"
    for (k, a), b in zip(model.state_dict().items(), clone.state_dict().values()):
        assert torch.equal(a, b), k
    x = torch.randn(2, 3, 32, 64)
    assert torch.equal(model(x), clone(x))


def test_other_image_size_interpolates_positions_and_other_classes_get_a_new_head(tmp_path):
    timm_model = randomize(TimmViT(img_size=32, patch_size=8, embed_dim=64, depth=1, num_heads=4, num_classes=1000))
    torch.save({"state_dict": timm_model.state_dict()}, tmp_path / "timm.pth.tar")
    ours = models.create_model(
        "vb_vit_tiny_patch16_224", img_size=64, patch_size=8, embed_dim=64, depth=1, num_heads=4, num_classes=10
    )
    fresh_head = ours.head.weight.clone()
    report = models.load_checkpoint(ours, tmp_path / "timm.pth.tar")
    assert report["resized_pos_embed"] and report["new_head"]
    expected = resample_abs_pos_embed(timm_model.pos_embed.detach(), [8, 8], [4, 4], num_prefix_tokens=1)
    torch.testing.assert_close(ours.pos_embed.detach(), expected)
    assert torch.equal(ours.head.weight, fresh_head)
    assert torch.equal(ours.blocks[0].attn.qkv.weight, timm_model.blocks[0].attn.qkv.weight)
    assert ours(torch.randn(1, 3, 64, 64)).shape == (1, 10)


def test_non_square_positions_resize_from_our_own_config(tmp_path):
    model = models.create_model("vb_vit_tiny_patch16_224", img_size=(32, 64), patch_size=16, depth=1)
    models.save_checkpoint(model, tmp_path / "a.pth")
    bigger = models.create_model("vb_vit_tiny_patch16_224", img_size=(64, 64), patch_size=16, depth=1)
    assert models.load_checkpoint(bigger, tmp_path / "a.pth")["resized_pos_embed"]
    expected = resample_abs_pos_embed(model.pos_embed.detach(), [4, 4], [2, 4], num_prefix_tokens=1)
    torch.testing.assert_close(bigger.pos_embed.detach(), expected)


def test_architecture_mismatch_lists_missing_and_unexpected_keys(tmp_path):
    vit = models.create_model("vb_vit_tiny_patch16_224", img_size=32, depth=1)
    models.save_checkpoint(vit, tmp_path / "vit.pth")
    t2t = models.create_model("t2t_vit_7", img_size=32, depth=1)
    with pytest.raises(
        CheckpointError,
        match=r"missing keys: .*tokenizer\.blocks\.0.*unexpected keys: .*tokenizer\.proj.*"
        r"saved from vb_vit_tiny_patch16_224",
    ) as e:
        models.load_checkpoint(t2t, tmp_path / "vit.pth")
    assert "\n" not in str(e.value)
    deeper = models.create_model("vb_vit_tiny_patch16_224", img_size=32, depth=2)
    with pytest.raises(CheckpointError, match=r"missing keys: blocks\.1\."):
        models.load_checkpoint(deeper, tmp_path / "vit.pth")
    wider = models.create_model("vb_vit_tiny_patch16_224", img_size=32, depth=1, embed_dim=96)
    with pytest.raises(CheckpointError, match=r"shape mismatch: blocks\.0"):
        models.load_checkpoint(wider, tmp_path / "vit.pth")


class Payload:
    def __reduce__(self):
        return (print, ("this ran on load",))


def test_bad_files_are_refused(tmp_path):
    model = models.create_model("vb_vit_tiny_patch16_224", img_size=32, depth=1)
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        models.load_checkpoint(model, tmp_path / "nope.pth")
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        models.load_checkpoint(model, tmp_path / "empty.pth")
    models.save_checkpoint(model, tmp_path / "good.pth")
    data = (tmp_path / "good.pth").read_bytes()
    (tmp_path / "truncated.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        models.load_checkpoint(model, tmp_path / "truncated.pth")
    (tmp_path / "notes.txt").write_text("hello, not a checkpoint\n")
    with pytest.raises(CheckpointError, match="not a"):
        models.load_checkpoint(model, tmp_path / "notes.txt")
    torch.save({"state_dict": model.state_dict(), "hook": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match=r"needs `[\w.]+` to be rebuilt, which runs code on load "
                                              r"\(weights_only=True refuses it\)"):
        models.load_checkpoint(model, tmp_path / "evil.pth")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="holds a list"):
        models.load_checkpoint(model, tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="no state_dict_ema"):
        models.load_checkpoint(model, tmp_path / "good.pth", use_ema=True)
    with open(tmp_path / "pickled.pkl", "wb") as f:
        pickle.dump({"a": 1}, f)
    with pytest.raises(CheckpointError):
        models.load_checkpoint(model, tmp_path / "pickled.pkl")


def test_a_timm_train_py_checkpoint_with_its_argparse_namespace_loads_and_says_who_wrote_it(tmp_path):
    """timm's train.py (which saved the reference T2T-ViT release too) keeps its arguments as a Namespace."""
    model = models.create_model("vb_vit_tiny_patch16_224", img_size=32, depth=1)
    args = argparse.Namespace(model="vit_tiny_patch16_224", lr=5e-4, smoothing=0.1, aa="rand-m9-mstd0.5-inc1",
                              input_size=None, drop_path=0.1, epochs=300)
    torch.save({"epoch": 299, "arch": "vit_tiny_patch16_224", "state_dict": model.state_dict(), "args": args,
                "version": 2, "metric": 72.2}, tmp_path / "model_best.pth.tar")
    fresh = models.create_model("vb_vit_tiny_patch16_224", img_size=32, depth=1)
    report = models.load_checkpoint(fresh, tmp_path / "model_best.pth.tar")
    assert report["saved_by"] == "timm train.py (vit_tiny_patch16_224, epoch 299)"
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values()))
