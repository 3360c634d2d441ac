"""A run's classes are class folders: `classes` chooses folders before any noisy label is read, and a chosen class
must train on something: one whose every training image is unreadable is an error naming it, in both data modes."""
import itertools
from pathlib import Path

import pytest

from bench.accuracy.train import TrainConfig
from bench.accuracy.train_data import scan_samples
from tests.harness_helpers import cli_error, tiny_cli_args, tiny_synthetic
from tests.test_data import WNIDS, imagenette


@pytest.mark.parametrize("chosen", [list(pair) for pair in itertools.combinations(WNIDS, 2)])
@pytest.mark.parametrize("labels", [None, "noisy_labels_5", "noisy_labels_50"])
def test_classes_choose_folders_and_labels_only_relabel_their_images(tmp_path, chosen, labels):
    root = imagenette(tmp_path / "imagenette2-160")  # at 50%, each class's _0 image is labelled the next class
    warnings = []
    samples = scan_samples(TrainConfig(model="resnet18", data=str(root), out="o", classes=chosen, labels=labels),
                           warnings.append)
    folders = {Path(path).parent.name for path, _ in samples.train}
    assert samples.classes == sorted(chosen) and folders <= set(chosen)
    noisy = {f"{wnid}_0.JPEG": WNIDS[(c + 1) % 3] for c, wnid in enumerate(WNIDS)} if labels == "noisy_labels_50" \
        else {}
    for path, target in samples.train:  # each image's label is its noisy label, a chosen class
        assert samples.classes[target] == noisy.get(Path(path).name, Path(path).parent.name)
    left_out = [name for name, label in noisy.items() if name.split("_")[0] in chosen and label not in chosen]
    expected = 3 * len(chosen) - len(left_out)  # every chosen folder's images, but those labelled a class left out
    assert len(samples.train) == expected
    assert bool(left_out) == any("labelled noisy_labels_50 as a class left out" in w for w in warnings)
    assert {Path(path).parent.name for path, _ in samples.val} == set(chosen)  # test: by folder, never relabelled


@pytest.mark.parametrize("data_mode", ["files", "memory"])
def test_a_class_whose_every_training_image_is_unreadable_is_an_error_naming_it(tmp_path, capsys, data_mode):
    data = tiny_synthetic(tmp_path / "data", classes=3, train_per_class=8, val_per_class=2)
    broken = sorted(path.name for path in (data / "train").iterdir())[1]
    for image in (data / "train" / broken).iterdir():
        image.write_bytes(b"not an image")
    flags = tiny_cli_args("vb_vit_tiny_patch16_224")
    flags[flags.index("--data-mode") + 1] = data_mode
    error = cli_error(capsys, "train", *flags, "--epochs", "1", "--data", str(data), "--out", str(tmp_path / "run"))
    assert f"every training image of class {broken!r} is unreadable" in error
    assert not (tmp_path / "run").exists()  # a start that failed before its first checkpoint leaves nothing
