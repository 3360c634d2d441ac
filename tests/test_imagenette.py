"""Imagenette as distributed, its clean-subset score, and ImageNet-pretrained ViT-Ti weights in through the user's
path (`--init FILE.safetensors`, timm's pretrained_cfg_overlay) with the normalisation the file states.

Every test builds its own small replica in tmp_path; the check on the real files in ../shared is skipped without
them."""
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import safetensors.torch
import timm
import torch
from PIL import Image
from timm.data import resolve_data_config
from timm.models.vision_transformer import VisionTransformer as TimmViT

from bench.accuracy import train
from bench.accuracy.data import load_rgb, scan_dataset
from bench.accuracy.evaluate import run_eval
from bench.accuracy.train_data import scan_samples
from bench.configs import EvalConfig, TrainConfig
from bench.errors import DatasetError
from models.errors import CheckpointError, ConfigError
from tests.harness_helpers import REPO_ROOT, tiny_config, write_image

WNIDS = ("n01440764", "n02102040", "n03000684")  # tench, English springer, chain saw
CLEAN = "ILSVRC2012_val_*"
SHARED = REPO_ROOT.parent / "shared"
TINY = {"embed_dim": 32, "num_heads": 2, "mlp_ratio": 2.0, "patch_size": 8, "depth": 1}  # a ViT-Ti in miniature
IN21K = dict(mean=[0.5] * 3, std=[0.5] * 3)


def quiet(message):
    pass


def make_imagenette(root, train_per_class=6, val_per_class=3, clean_val=(2, 1, 0)):
    """Imagenette's layout: <split>/<wnid>/<wnid>_<n>.JPEG (ImageNet train images) plus ILSVRC2012_val_*.JPEG (its
    val images; `clean_val[i]` of them in class i's val/), and noisy_imagenette.csv with its official columns. The
    first train image of the first class is greyscale, as 242 real ones are; at 5% noise it is labelled class 1."""
    rows, number = [], 0
    for c, wnid in enumerate(WNIDS):
        for split, count, clean in (("train", train_per_class, 1), ("val", val_per_class, clean_val[c])):
            names = [f"{wnid}_{1000 + j}.JPEG" for j in range(count)]
            for _ in range(clean):
                number += 1
                names.append(f"ILSVRC2012_val_{number:08d}.JPEG")
            for j, name in enumerate(names):
                grey = split == "train" and c == 0 and j == 0
                write_image(root / split / wnid / name, seed=100 * c + 10 * j + (split == "val"), size=(40, 40),
                            mode="L" if grey else "RGB")
                noisy = WNIDS[1] if grey else wnid
                rows.append({"path": f"{split}/{wnid}/{name}", "noisy_labels_0": wnid, "noisy_labels_1": wnid,
                             "noisy_labels_5": noisy, "noisy_labels_25": noisy, "noisy_labels_50": noisy,
                             "is_valid": split == "val"})
    pd.DataFrame(rows).to_csv(root / "noisy_imagenette.csv", index=False)
    return root


@pytest.fixture
def imagenette(tmp_path):
    return make_imagenette(tmp_path / "imagenette")


# --- 1. the layout and the label file, as distributed ---------------------------------------------------------------
def test_imagenette_reads_as_distributed_with_its_noisy_label_columns(imagenette):
    csv = pd.read_csv(imagenette / "noisy_imagenette.csv")
    scanned = scan_dataset(imagenette)
    assert scanned["train"].classes == list(WNIDS) == scanned["val"].classes
    assert len(scanned["train"].samples) + len(scanned["val"].samples) == len(csv)  # every file has its row
    assert sorted(csv.loc[csv.is_valid, "path"]) == sorted(  # is_valid marks exactly the val/ files
        str(Path(p).relative_to(imagenette).as_posix()) for p, _ in scanned["val"].samples)

    def labels(column):
        config = TrainConfig(model="vb_vit_tiny_patch16_224", data=str(imagenette), out="unused", labels=column)
        samples = scan_samples(config, quiet)
        return {Path(path).name: samples.classes[target] for path, target in samples.train}, samples

    clean, samples = labels("noisy_labels_0")
    assert clean == {Path(p).name: Path(p).parent.name for p, _ in scanned["train"].samples}
    noisy, samples = labels("noisy_labels_5")
    changed = {name for name in clean if clean[name] != noisy[name]}
    assert changed == {f"{WNIDS[0]}_1000.JPEG"} and noisy[f"{WNIDS[0]}_1000.JPEG"] == WNIDS[1]
    assert samples.splits["train"].layout == "class folders, labels from noisy_imagenette.csv:noisy_labels_5"
    assert len(samples.val) == len(scanned["val"].samples)  # the test split keeps its folder labels


def test_imagenettes_greyscale_jpegs_arrive_as_rgb(imagenette):
    grey = imagenette / "train" / WNIDS[0] / f"{WNIDS[0]}_1000.JPEG"
    with Image.open(grey) as raw:
        assert raw.mode == "L"
    image = load_rgb(grey)
    assert image.mode == "RGB" and np.asarray(image).shape == (40, 40, 3)


def test_a_label_file_missing_a_training_image_is_refused(imagenette):
    csv = pd.read_csv(imagenette / "noisy_imagenette.csv")
    csv[csv.path != f"train/{WNIDS[2]}/{WNIDS[2]}_1001.JPEG"].to_csv(imagenette / "noisy_imagenette.csv", index=False)
    config = TrainConfig(model="vb_vit_tiny_patch16_224", data=str(imagenette), out="unused", labels="noisy_labels_0")
    with pytest.raises(DatasetError, match="1 training images have no row in .*noisy_imagenette.csv"):
        scan_samples(config, quiet)


# --- 2. the clean-subset score ---------------------------------------------------------------------------------------
def always_class(path, target, classes=len(WNIDS)):
    """A copy of the run checkpoint `path` whose head answers class `target` for every image."""
    payload = torch.load(path, weights_only=False)
    payload["state_dict"]["head.weight"] = torch.zeros_like(payload["state_dict"]["head.weight"])
    payload["state_dict"]["head.bias"] = torch.eye(classes)[target] * 100
    out = Path(path).with_name(f"always_{target}.pth")
    torch.save(payload, out)
    return out


def test_the_clean_subset_is_scored_on_its_images_alone(imagenette, tmp_path):
    """Val holds 3 images of each class plus 2 + 1 + 0 clean ones: a model that always answers class c scores
    (2, 1, 0)[c] / 3 on the clean ones and (5, 4, 3)[c] / 12 on all; a trained run's subset score is its own
    predictions' on those images."""
    out = tmp_path / "run"
    summary = train.start(tiny_config(imagenette, out, model="vb_vit_tiny_patch16_224", model_args=TINY, epochs=1,
                                      holdout=3, test_subset=CLEAN), progress=False, warn=quiet)
    assert summary["test_subset_images"] == 3 and summary["test_subset"]["pattern"] == CLEAN
    predictions = np.load(out / train.TEST_PREDICTIONS)
    names = [Path(path).name for path, _ in scan_dataset(imagenette)["val"].samples]  # the loader's order
    clean = np.array([name.startswith("ILSVRC2012_val_") for name in names])
    expected = (predictions["final"][clean] == predictions["targets"][clean]).mean() * 100
    assert summary["test_subset_top1"] == pytest.approx(expected)
    for target, (hits, all_hits) in enumerate(((2, 5), (1, 4), (0, 3))):
        result = run_eval(EvalConfig(checkpoint=str(always_class(out / "last.pth", target)), data=str(imagenette),
                                     workers=0, test_subset=CLEAN), warn=quiet)
        assert result["top1"] == pytest.approx(all_hits / 12 * 100) and result["images"] == 12
        assert result["test_subset_images"] == 3 and result["test_subset_top1"] == pytest.approx(hits / 3 * 100)


def test_the_clean_subset_is_scored_in_memory_mode_and_without_a_holdout(imagenette, tmp_path):
    summary = train.start(tiny_config(imagenette, tmp_path / "run", model="vb_vit_tiny_patch16_224", model_args=TINY,
                                      epochs=1, data_mode="memory", auto_augment="", test_subset=CLEAN),
                          progress=False, warn=quiet)
    assert summary["test_subset_images"] == 3 and 0 <= summary["test_subset_top1"] <= 100


@pytest.mark.parametrize("pattern, error", [("val/ILSVRC*", "not a file-name glob"), ("  ", "not a file-name glob")])
def test_a_test_subset_that_is_no_file_name_glob_is_refused(pattern, error):
    with pytest.raises(ConfigError, match=error):
        EvalConfig(checkpoint="x.pth", data="d", test_subset=pattern)


def test_a_test_subset_matching_no_image_is_refused_with_the_fix(imagenette, tmp_path):
    with pytest.raises(DatasetError, match=r"test_subset='ILSVRC2012_test_\*' matches none of the 12 test images"):
        train.start(tiny_config(imagenette, tmp_path / "run", model="vb_vit_tiny_patch16_224", model_args=TINY,
                                epochs=1, holdout=3, test_subset="ILSVRC2012_test_*"), progress=False, warn=quiet)


# --- 3. pretrained ViT-Ti weights with the normalisation they state -------------------------------------------------
def timm_file(tmp_path, cfg=IN21K, name="vit.safetensors"):
    """A ViT-Ti in miniature in timm's key layout (16 px, 2 x 2 tokens, 1000 classes) as .safetensors, with a
    pretrained_cfg in its metadata as the real files carry (None: no metadata)."""
    source = TimmViT(img_size=16, patch_size=8, embed_dim=32, depth=1, num_heads=2, mlp_ratio=2.0, num_classes=1000)
    metadata = {"pretrained_cfg": json.dumps({"architecture": "vit_tiny_patch16_224", **cfg})} if cfg else None
    safetensors.torch.save_file(source.state_dict(), tmp_path / name, metadata=metadata)
    return tmp_path / name, source


def test_a_safetensors_vit_loads_at_another_size_with_a_new_head_and_its_own_normalisation(imagenette, tmp_path):
    path, source = timm_file(tmp_path)
    out = tmp_path / "tuned"
    summary = train.start(tiny_config(imagenette, out, model="vb_vit_tiny_patch16_224", model_args=TINY,
                                      init=str(path), img_size=32, epochs=1, holdout=3, lr=0.0, warmup_lr=0.0),
                          progress=False, warn=quiet)
    assert summary["init"]["resized_pos_embed"] and summary["init"]["new_head"] and summary["classes"] == 3
    assert summary["normalisation"] == {**IN21K, "source": f"pretrained_cfg in {path}"}
    assert json.loads((out / "config.json").read_text())["init"] == os.path.relpath(path, out)  # from the run folder
    tuned = torch.load(out / "last.pth", weights_only=False)["state_dict"]  # lr 0: the weights as loaded
    assert torch.equal(tuned["blocks.0.attn.qkv.weight"], source.state_dict()["blocks.0.attn.qkv.weight"])
    # the checkpoint carries its normalisation: eval scores it as the run did (the loss moves with mean/std)
    result = run_eval(EvalConfig(checkpoint=str(out / "last.pth"), data=str(imagenette), workers=0), warn=quiet)
    assert result["normalisation"]["mean"] == IN21K["mean"]
    assert result["loss"] == pytest.approx(summary["test_loss"], rel=1e-4)


def test_timms_create_model_takes_the_normalisation_from_the_file(tmp_path):
    path, source = timm_file(tmp_path)
    overlay = dict(file=str(path))
    model = timm.create_model("vb_vit_tiny_patch16_224", pretrained=True, pretrained_cfg_overlay=overlay,
                              num_classes=10, img_size=32, **TINY)
    config = resolve_data_config({}, model=model)
    assert config["mean"] == (0.5, 0.5, 0.5) and config["std"] == (0.5, 0.5, 0.5)
    assert model.pos_embed.shape == (1, 1 + 4 * 4, 32) and model.head.out_features == 10
    assert torch.equal(model.blocks[0].mlp.fc1.weight, source.blocks[0].mlp.fc1.weight)
    with pytest.raises(CheckpointError, match="overlay normalises with mean .*0.481.*but .* states mean .*0.5"):
        clip = dict(mean=(0.48145466, 0.4578275, 0.40821073), std=(0.26862954, 0.26130258, 0.27577711))
        timm.create_model("vb_vit_tiny_patch16_224", pretrained=True, pretrained_cfg_overlay={**overlay, **clip},
                          num_classes=10, img_size=32, **TINY)


def test_a_tag_that_contradicts_the_files_normalisation_is_refused(imagenette, tmp_path):
    path, _ = timm_file(tmp_path)
    config = tiny_config(imagenette, tmp_path / "tuned", model="vb_vit_tiny_patch16_224", model_args=TINY,
                         init=str(path), init_cfg="deit_tiny_patch16_224.fb_in1k", img_size=32, epochs=1)
    with pytest.raises(ConfigError, match="init_cfg=deit_tiny_patch16_224.fb_in1k normalises with mean "
                                          r"\(0.485.*but .*vit.safetensors states mean \(0.5, 0.5, 0.5\)"):
        train.start(config, progress=False, warn=quiet)
    assert not (tmp_path / "tuned").exists()  # nothing left behind


def test_a_file_stating_no_normalisation_takes_the_named_tag_or_says_it_used_the_default(imagenette, tmp_path):
    path, _ = timm_file(tmp_path, cfg=None)
    settings = dict(model="vb_vit_tiny_patch16_224", model_args=TINY, init=str(path), img_size=32, epochs=1)
    tagged = train.start(tiny_config(imagenette, tmp_path / "tagged", init_cfg="vit_tiny_patch16_224.augreg_in21k",
                                     **settings), progress=False, warn=quiet)
    assert tagged["normalisation"] == {**IN21K, "source": "timm tag vit_tiny_patch16_224.augreg_in21k"}
    warnings = []
    unstated = train.start(tiny_config(imagenette, tmp_path / "unstated", **settings), progress=False,
                           warn=warnings.append)
    assert unstated["normalisation"]["source"] == "model default (the init file states none)"
    assert unstated["normalisation"]["mean"] == [0.485, 0.456, 0.406]
    assert any("does not state its normalisation" in w for w in warnings)
    with pytest.raises(ConfigError, match="init_cfg='vit_tiny_patch16_224' is no timm pretrained tag"):
        train.start(tiny_config(imagenette, tmp_path / "bad", init_cfg="vit_tiny_patch16_224", **settings),
                    progress=False, warn=quiet)


def test_a_scratch_run_records_its_normalisation(imagenette, tmp_path):
    summary = train.start(tiny_config(imagenette, tmp_path / "run", model="vb_vit_tiny_patch16_224", model_args=TINY,
                                      epochs=1), progress=False, warn=quiet)
    assert summary["normalisation"]["source"] == "model default" and summary["test_subset_top1"] is None


REAL = {name: SHARED / "weights" / f"{name}.rebuilt.safetensors"
        for name in ("deit_tiny_patch16_224.in1k", "vit_tiny_patch16_224.in21k_ft_in1k")}
REAL_VAL = SHARED / "data" / "imagenette" / "val"


@pytest.mark.skipif(not REAL_VAL.is_dir() or not all(p.is_file() for p in REAL.values()),
                    reason=f"no Imagenette or ViT-Ti files in {SHARED} (optional, beside the repository)")
@pytest.mark.parametrize("name", sorted(REAL))
def test_real_weights_score_real_clean_imagenette_images(name, tmp_path):
    """Three clean (ILSVRC2012_val_*) val images per class through `vitbench eval`, the 1000-class head read on
    Imagenette's 10 synsets, normalised as the file states: a working model gets most of 30 right."""
    for folder in sorted(REAL_VAL.iterdir()):
        for image in sorted(folder.glob(CLEAN))[:3]:
            (tmp_path / "val" / folder.name).mkdir(parents=True, exist_ok=True)
            (tmp_path / "val" / folder.name / image.name).symlink_to(image)
    result = run_eval(EvalConfig(checkpoint=str(REAL[name]), model="vb_vit_tiny_patch16_224", data=str(tmp_path),
                                 workers=0, batch_size=30, test_subset=CLEAN), warn=quiet)
    expected = [0.5] * 3 if "in21k" in name else [0.485, 0.456, 0.406]
    assert result["normalisation"]["mean"] == pytest.approx(expected) and result["subset_of_imagenet_head"]
    assert result["images"] == 30 and result["top1"] >= 70  # chance is 10%
