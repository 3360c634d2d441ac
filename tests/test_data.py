"""Dataset folders, decoding of real-world files, transforms, subsets and the synthetic generator."""
import json
import os
from pathlib import Path

import pytest
import torch
from PIL import Image

import models
from bench.accuracy.data import (
    BadFileLog,
    BadImage,
    ImageFolderDataset,
    collate_skipping_bad,
    eval_transform,
    load_rgb,
    scan_dataset,
    select_per_class,
    train_transform,
)
from bench.accuracy.subset import NAMED_SUBSETS, build_subset, sha256
from bench.accuracy.synthetic import MOTIFS
from bench.accuracy.train import TrainConfig
from bench.accuracy.train_data import scan_samples
from bench.configs import SyntheticConfig
from bench.errors import DatasetError
from bench.settings import specs
from tests.harness_helpers import SAMPLES, cli_error, make_imagenet_root, sample_synsets, tiny_synthetic, write_image

IMAGENETTE = NAMED_SUBSETS["imagenette"]
OTHERS = ["n02087394", "n02089973"]  # ridgeback, foxhound: real samples, imagewoof classes


# --- scanning ------------------------------------------------------------------------------------
def test_scan_reads_classes_and_samples(tmp_path):
    root = make_imagenet_root(tmp_path / "in", ["n1", "n2"], train_per_class=3, val_per_class=1)
    (root / "train" / "n1" / "notes.txt").write_text("not an image")
    scanned = scan_dataset(root)
    assert scanned["train"].classes == ["n1", "n2"]
    assert scanned["train"].counts() == {"n1": 3, "n2": 3}
    assert [t for _, t in scanned["val"].samples] == [0, 1]
    assert [Path(p).name for p in scanned["train"].ignored] == ["notes.txt"]


@pytest.mark.parametrize("layout, expected", [
    ("missing", "not found"),
    ("no-val", "val not found"),
    ("empty", "is empty"),
    ("flat", "holds 2 images but no class folders"),
    ("empty-class", "has no images"),
    ("mismatch", "classes differ between train/ and val/"),
])
def test_scan_layout_errors(tmp_path, layout, expected):
    root = tmp_path / "data"
    if layout != "missing":
        make_imagenet_root(root, ["a", "b"], 2, 1)
    if layout == "no-val":
        for path in sorted((root / "val").rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        (root / "val").rmdir()
    elif layout == "empty":
        for path in (root / "val").rglob("*.JPEG"):
            path.unlink()
        for folder in (root / "val").iterdir():
            folder.rmdir()
    elif layout == "flat":
        for folder in list((root / "val").iterdir()):
            for path in folder.iterdir():
                path.rename(root / "val" / f"{folder.name}_{path.name}")
            folder.rmdir()
    elif layout == "empty-class":
        (root / "train" / "c").mkdir()
        (root / "val" / "c").mkdir()
    elif layout == "mismatch":
        write_image(root / "val" / "z" / "z.JPEG")
    with pytest.raises(DatasetError, match=expected) as info:
        scan_dataset(root)
    assert "\n" not in str(info.value)


# --- decoding ------------------------------------------------------------------------------------
def test_real_jpegs_decode_to_rgb_including_grayscale():
    modes = {}
    for path in SAMPLES.glob("*.JPEG"):
        with Image.open(path) as image:
            modes[image.mode] = modes.get(image.mode, 0) + 1
        assert load_rgb(path).mode == "RGB"
    assert modes.get("L", 0) >= 2 and modes.get("RGB", 0) >= 2  # the copies include grayscale files


def test_cmyk_and_palette_images_become_rgb(tmp_path):
    cmyk = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 12), (0, 255, 255, 0)).save(cmyk)  # pure red in CMYK
    image = load_rgb(cmyk)
    assert image.mode == "RGB" and image.getpixel((3, 3))[0] > 200 and image.getpixel((3, 3))[1] < 60
    palette = write_image(tmp_path / "p.png", mode="P")
    assert load_rgb(palette).mode == "RGB"


def broken_files(folder):
    real = next(SAMPLES.glob("*.JPEG")).read_bytes()
    folder.mkdir(parents=True, exist_ok=True)
    files = {"zero.JPEG": b"", "text.JPEG": b"this is not an image\n", "truncated.JPEG": real[: len(real) // 3]}
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return [folder / name for name in files]


def test_bad_files_are_reported_by_path_and_skipped(tmp_path):
    good = write_image(tmp_path / "good.png")
    bad = broken_files(tmp_path / "bad")
    dataset = ImageFolderDataset(
        [(str(p), 0) for p in [good, *bad]], ["x"], eval_transform(models.create_model("t2t_vit_7", img_size=32), 32)
    )
    images, targets, skipped = collate_skipping_bad([dataset[i] for i in range(len(dataset))])
    assert images.shape == (1, 3, 32, 32) and targets.tolist() == [0]
    assert sorted(Path(b.path).name for b in skipped) == ["text.JPEG", "truncated.JPEG", "zero.JPEG"]
    warnings = []
    log = BadFileLog(strict=False, warn=warnings.append)
    log.record(skipped)
    log.record(skipped)  # the same file seen again in a later epoch is counted once
    assert len(log) == 3 and len(warnings) == 3 and all(str(tmp_path) in w for w in warnings)
    with pytest.raises(DatasetError, match=r"cannot decode .*zero\.JPEG.*drop --strict"):
        BadFileLog(strict=True).record([BadImage(str(bad[0]), "empty")])


def test_all_bad_batch_collates_to_none():
    images, targets, bad = collate_skipping_bad([BadImage("a", "x"), BadImage("b", "y")])
    assert images is None and targets is None and len(bad) == 2


# --- transforms ------------------------------------------------------------------------------------
def test_timm_transforms_follow_the_config():
    model = models.create_model("t2t_vit_7", img_size=32, depth=1, t2t_stages=((3, 2, 1), (3, 2, 1)))
    config = TrainConfig(model="t2t_vit_7", data="-", out="-", img_size=32)
    train = train_transform(model, 32, config)
    names = " ".join(type(t).__name__ for t in train.transforms)
    assert "RandomResizedCrop" in names and "RandAugment" in names and "RandomErasing" in names
    image = load_rgb(next(SAMPLES.glob("*.JPEG")))
    assert train(image).shape == (3, 32, 32)
    evaluation = eval_transform(model, 32, crop_pct=1.0)
    assert evaluation(image).shape == (3, 32, 32)
    torch.testing.assert_close(evaluation(image), evaluation(image))  # eval is deterministic


def test_randaugment_survives_magnitude_ten_posterize():
    from bench.accuracy.data import posterize_zero_bits_safe

    image = Image.new("RGB", (8, 8), (200, 100, 50))
    assert posterize_zero_bits_safe(image, 0).getpixel((0, 0)) == (0, 0, 0)  # Pillow < 13's answer
    assert posterize_zero_bits_safe(image, 8) is image


# --- cuts ------------------------------------------------------------------------------------------
def test_select_per_class_is_deterministic_and_balanced():
    samples = [(f"f{i}", i % 3) for i in range(30)]
    first = select_per_class(samples, ["a", "b", "c"], per_class=4, seed=1)
    assert first == select_per_class(samples, ["a", "b", "c"], per_class=4, seed=1)
    assert first != select_per_class(samples, ["a", "b", "c"], per_class=4, seed=2)
    assert sorted(t for _, t in first) == [0] * 4 + [1] * 4 + [2] * 4
    half = select_per_class(samples, ["a", "b", "c"], fraction=0.5, seed=0)
    assert len(half) == 15


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"per_class": 0}, "per_class=0 is out of range"),
        ({"per_class": 8}, "class b has only 7 images, fewer than the 8 asked per class; use K <= 7"),
        ({"fraction": 0.0}, r"fraction=0.0 is out of range"),
        ({"fraction": 1.5}, r"fraction=1.5 is out of range"),
    ],
)
def test_cut_out_of_range(kwargs, expected):
    samples = [(f"f{i}", i % 3) for i in range(30) if not (i % 3 == 1 and i > 20)]  # class b has 7
    with pytest.raises(DatasetError, match=expected):
        select_per_class(samples, ["a", "b", "c"], **kwargs)


# --- subsets -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def imagenet_root(tmp_path_factory):
    return make_imagenet_root(
        tmp_path_factory.mktemp("imagenet"), IMAGENETTE + OTHERS, train_per_class=4, val_per_class=2
    )


def test_imagenette_subset_links_files_and_writes_manifest(imagenet_root, tmp_path):
    manifest = build_subset(imagenet_root, "imagenette", tmp_path / "nette", per_class=2, seed=3)
    out = tmp_path / "nette"
    scanned = scan_dataset(out)
    assert scanned["train"].classes == sorted(IMAGENETTE)
    assert scanned["train"].counts() == dict.fromkeys(sorted(IMAGENETTE), 2)
    assert sum(scanned["val"].counts().values()) == 20  # val is kept whole
    link = Path(scanned["train"].samples[0][0])
    assert link.is_symlink() and Path(os.readlink(link)).is_relative_to(imagenet_root.resolve())
    saved = json.loads((out / "manifest.json").read_text())
    assert saved == manifest and len(saved["files"]) == 40
    assert saved["classes"][0] == {"wnid": "n01440764", "label": "tench, Tinca tinca"}
    relative, digest = next(iter(saved["files"].items()))
    assert sha256(out / relative) == digest
    again = build_subset(imagenet_root, "imagenette", tmp_path / "again", per_class=2, seed=3)
    assert again["files"] == manifest["files"]  # the same seed picks the same files


def test_random_subset_with_fraction_and_copies(imagenet_root, tmp_path):
    manifest = build_subset(imagenet_root, "random-3", tmp_path / "r3", fraction=0.5, seed=0, copy=True)
    assert len(manifest["classes"]) == 3 and set(manifest["counts"]["train"].values()) == {2}
    assert not any(p.is_symlink() for p in (tmp_path / "r3").rglob("*.JPEG"))
    other = build_subset(imagenet_root, "random-3", tmp_path / "r3b", fraction=0.5, seed=5)
    assert manifest["classes"] != other["classes"] or manifest["files"] != other["files"]


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["imagenet-1k"], "unknown subset 'imagenet-1k'; choose one of imagenette, imagewoof, imagenet100, random-N"),
        (["imagewoof"], "the root lacks 8 of imagewoof's 10 classes"),
        (["random-13"], "random-13 asks for 13 classes but the root has 12"),
        (["imagenette", "--per-class", "0"], "per_class=0 is out of range"),
        (["imagenette", "--per-class", "5"], "has only 4 images, fewer than the 5 asked per class"),
        (["imagenette", "--fraction", "1.2"], "fraction=1.2 is out of range"),
    ],
)
def test_subset_cli_errors(imagenet_root, tmp_path, capsys, argv, expected):
    line = cli_error(capsys, "subset", *argv, "--root", str(imagenet_root), "--out", str(tmp_path / "out"))
    assert expected in line
    assert not (tmp_path / "out").exists()


def test_subset_refuses_to_overwrite(imagenet_root, tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("keep me")
    line = cli_error(
        capsys, "subset", "imagenette", "--root", str(imagenet_root), "--out", str(tmp_path / "taken"), "--overwrite"
    )
    assert "not a vitbench dataset folder" in line and (tmp_path / "taken" / "mine.txt").exists()
    build_subset(imagenet_root, "imagenette", tmp_path / "nette", per_class=1)
    assert "already holds a dataset built by vitbench" in cli_error(
        capsys, "subset", "imagenette", "--root", str(imagenet_root), "--out", str(tmp_path / "nette")
    )
    build_subset(imagenet_root, "imagenette", tmp_path / "nette", per_class=3, overwrite=True)
    assert scan_dataset(tmp_path / "nette")["train"].counts()["n01440764"] == 3


def test_subset_root_missing(tmp_path, capsys):
    assert "not found" in cli_error(
        capsys, "subset", "imagenette", "--root", str(tmp_path / "nope"), "--out", str(tmp_path / "o")
    )


def test_real_samples_are_imagenet_synsets():
    from bench.accuracy.evaluate import imagenet_synsets

    assert {"n03000684", "n03445777"} <= set(sample_synsets()) <= set(imagenet_synsets())


# --- synthetic data ------------------------------------------------------------------------------------
def test_motifs_are_mirror_symmetric():
    for name, motif in MOTIFS.items():
        assert (motif == motif[:, ::-1]).all(), f"{name} changes under a horizontal flip"
    assert len({m.tobytes() for m in MOTIFS.values()}) == len(MOTIFS)


def test_synthetic_dataset_is_deterministic(tmp_path):
    first = tiny_synthetic(tmp_path / "a", classes=3, train_per_class=4, val_per_class=2, seed=7)
    second = tiny_synthetic(tmp_path / "b", classes=3, train_per_class=4, val_per_class=2, seed=7)
    manifest_a = json.loads((first / "manifest.json").read_text())
    manifest_b = json.loads((second / "manifest.json").read_text())
    assert manifest_a["files"] == manifest_b["files"] and manifest_a["synthetic"] is True
    assert scan_dataset(first)["train"].counts() == {"block": 4, "checker": 4, "cross": 4}
    assert Image.open(next((first / "train" / "block").iterdir())).size == (32, 32)
    classes = next(spec for spec in specs(SyntheticConfig) if spec.name == "classes")
    assert classes.meta["high"] == len(MOTIFS)  # the config's range is the generator's


# --- ImageNet subsets as they unpack -------------------------------------------------------------------------
WNIDS = ["n01443537", "n01629819", "n01641577"]


def tiny_imagenet(root, per_class=4, val_per_class=2):
    """A replica of Tiny-ImageNet's layout: train/<wnid>/images/*.JPEG with <wnid>_boxes.txt, val/images/ with
    val_annotations.txt, an unlabelled test/images/, wnids.txt."""
    (root / "wnids.txt").parent.mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    lines = []
    for c, wnid in enumerate(WNIDS):
        for i in range(per_class):
            write_image(root / "train" / wnid / "images" / f"{wnid}_{i}.JPEG", seed=10 * c + i, size=(64, 64))
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text(f"{wnid}_0.JPEG\t0\t0\t63\t63\n")
        for i in range(val_per_class):
            name = f"val_{c * val_per_class + i}.JPEG"
            write_image(root / "val" / "images" / name, seed=100 + 10 * c + i, size=(64, 64))
            lines.append(f"{name}\t{wnid}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    write_image(root / "test" / "images" / "test_0.JPEG", size=(64, 64))
    return root


def imagenette(root, per_class=3):
    """A replica of Imagenette's layout with its noisy_imagenette.csv (path, noisy_labels_N..., is_valid)."""
    rows = ["path,noisy_labels_0,noisy_labels_1,noisy_labels_5,noisy_labels_25,noisy_labels_50,is_valid"]
    for split in ("train", "val"):
        for c, wnid in enumerate(WNIDS):
            for i in range(per_class):
                relative = f"{split}/{wnid}/{wnid}_{i}.JPEG"
                write_image(root / relative, seed=10 * c + i, size=(40, 40))
                flipped = WNIDS[(c + 1) % len(WNIDS)] if i == 0 else wnid  # one image per class relabelled at 50%
                rows.append(f"{relative},{wnid},{wnid},{wnid},{wnid},{flipped},{split == 'val'}")
    (root / "noisy_imagenette.csv").write_text("\n".join(rows) + "\n")
    return root


def test_tiny_imagenet_is_read_as_it_unpacks(tmp_path):
    root = tiny_imagenet(tmp_path / "tiny-imagenet-200")
    config = TrainConfig(model="resnet18", data=str(root), out=str(tmp_path / "o"), strict=True)
    samples = scan_samples(config, print)  # strict: the boxes files are known, not stray
    assert samples.classes == WNIDS and len(samples.train) == 12 and not samples.ignored
    labels = {Path(path).name: samples.classes[t] for path, t in samples.val}
    assert labels == {f"val_{c * 2 + i}.JPEG": WNIDS[c] for c in range(3) for i in range(2)}
    assert samples.splits["val"].layout == "images/ + val_annotations.txt"
    (root / "val" / "val_annotations.txt").write_text("val_0.JPEG\n")
    with pytest.raises(DatasetError, match="line 1 is not 'file<TAB>class"):
        scan_samples(config, print)


def test_imagenette_noisy_labels_relabel_the_training_images_only(tmp_path):
    root = imagenette(tmp_path / "imagenette2-160")
    clean = scan_samples(TrainConfig(model="resnet18", data=str(root), out="o"), print)
    noisy = scan_samples(TrainConfig(model="resnet18", data=str(root), out="o", labels="noisy_labels_50"), print)
    changed = [(Path(p).name, a, b) for (p, a), (_, b) in zip(clean.train, noisy.train) if a != b]
    assert len(changed) == 3 and all(name.endswith("_0.JPEG") and b == (a + 1) % 3 for name, a, b in changed)
    assert noisy.val == clean.val and "noisy_imagenette.csv:noisy_labels_50" in noisy.splits["train"].layout
    with pytest.raises(DatasetError, match="no column 'noisy_labels_7'; choose one of noisy_labels_0"):
        scan_samples(TrainConfig(model="resnet18", data=str(root), out="o", labels="noisy_labels_7"), print)
    write_image(root / "train" / WNIDS[0] / "extra.JPEG", size=(40, 40))
    with pytest.raises(DatasetError, match="1 training images have no row in"):
        scan_samples(TrainConfig(model="resnet18", data=str(root), out="o", labels="noisy_labels_5"), print)


def test_memory_mode_takes_labels_from_the_scan_and_keeps_one_cache_per_class_set(tmp_path):
    from bench.accuracy.decoded_cache import decoded_split
    from bench.accuracy.train_data import scan_samples

    root = imagenette(tmp_path / "imagenette2-160")
    cache = tmp_path / "cache"
    clean = scan_samples(TrainConfig(model="resnet18", data=str(root), out="o"), print)
    noisy = scan_samples(TrainConfig(model="resnet18", data=str(root), out="o", labels="noisy_labels_50"), print)
    decoded_clean = decoded_split(clean.splits["train"], 32, cache_dir=cache, workers=1, warn=lambda m: None)
    decoded_noisy = decoded_split(noisy.splits["train"], 32, cache_dir=cache, workers=1, warn=lambda m: None)
    assert decoded_noisy.targets.tolist() == [t for _, t in noisy.splits["train"].samples]  # not the cached ones
    assert decoded_noisy.targets.tolist() != decoded_clean.targets.tolist()
    two = scan_samples(TrainConfig(model="resnet18", data=str(root), out="o", classes=WNIDS[:2]), print)
    decoded_split(two.splits["train"], 32, cache_dir=cache, workers=1, warn=lambda m: None)
    assert len(list(cache.glob("*train*.pt"))) == 2  # the two-class cache did not replace the whole split's
