"""Files vitbench reads are untrusted: a size read from a file is bounded and checked against the file's tensors
before anything is allocated, and an unreadable file is named for what it is (random bytes, a folder, a pickle that
runs code), in one line."""
import collections
import errno
import os

import pytest
import torch

import models
from bench.accuracy import train
from models.checkpoint import read_checkpoint, save_checkpoint
from models.errors import CheckpointError
from tests.harness_helpers import TINY_VIT, cli_error, tiny_cli_args, tiny_config, tiny_synthetic


def tiny_vit(img_size):
    return models.create_model("vb_vit_tiny_patch16_224", num_classes=3, img_size=img_size, **TINY_VIT)


@pytest.fixture
def saved(tmp_path):
    """A checkpoint of a 32 px tiny ViT (an 8x8 grid at patch 4): its payload and a writer of tampered copies."""
    path = save_checkpoint(tiny_vit(32), tmp_path / "vit.pth")
    payload = torch.load(path, weights_only=True)

    def tampered(**config):
        copy = tmp_path / "tampered.pth"
        torch.save({**payload, "config": {**payload["config"], **config}}, copy)
        return copy
    return path, tampered


@pytest.mark.parametrize("config, message", [
    ({"img_size": 10**9}, "bad setting (img_size=1000000000 must be a positive integer (at most 8192)"),  # a huge table
    ({"img_size": 0}, "img_size=0 must be a positive integer (at most 8192)"),
    ({"img_size": [32, "x"]}, "img_size=[32, 'x'] must be a positive integer (at most 8192)"),
    ({"img_size": 32.5}, "img_size=32.5 must be a positive integer (at most 8192)"),
    ({"img_size": True}, "img_size=True must be a positive integer (at most 8192)"),
    ({"embed_dim": 2**40}, "bad setting (embed_dim=1099511627776 is out of range; it must be an integer in [1, 65536]"),
    ({"mlp_ratio": float("inf")}, "bad setting (mlp_ratio=inf is out of range"),
    ({"img_size": 48}, "makes a 12x12 token grid but its position table holds 64 tokens"),  # a bad reshape before
    ({"img_size": [32, 64]}, "makes a 8x16 token grid but its position table holds 64 tokens"),
    ({"patch_size": 8}, "makes a 4x4 token grid but its position table holds 64 tokens"),
    ({"no_such_setting": 1}, "the checkpoint's stored config builds no model"),
])
def test_a_stored_config_that_disagrees_with_its_tensors_is_one_error(saved, config, message):
    _, tampered = saved
    with pytest.raises(CheckpointError, match="^[^\n]+$") as info:
        models.load_checkpoint(tiny_vit(64), tampered(**config))  # another size: its positions are resampled
    assert message in str(info.value)


def test_the_stored_config_still_resamples_positions_when_it_is_true(saved):
    path, _ = saved
    report = models.load_checkpoint(tiny_vit(64), path)
    assert report["resized_pos_embed"]


def test_an_init_checkpoint_with_a_lying_config_stops_train_in_one_line(saved, tmp_path, capsys):
    _, tampered = saved
    data = tiny_synthetic(tmp_path / "data", classes=3, train_per_class=4, val_per_class=1)
    flags = tiny_cli_args("vb_vit_tiny_patch16_224")
    flags[flags.index("--img-size") + 1] = "64"
    error = cli_error(capsys, "train", *flags, "--data", str(data), "--out", str(tmp_path / "run"), "--init",
                      str(tampered(img_size=10**9)))
    assert "img_size=1000000000 must be a positive integer" in error and not (tmp_path / "run").exists()


def test_unreadable_files_are_named_for_what_they_are(tmp_path):
    cases = {
        "random.pth": os.urandom(2000),
        "pickle-magic-then-noise.pth": b"\x80\x02" + bytes(range(256)) * 4,
        "text.pth": b"weights, honestly\n" * 20,
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(CheckpointError) as info:
            read_checkpoint(tmp_path / name)
        assert "is not a readable checkpoint" in str(info.value) and "runs code" not in str(info.value), name
    torch.save({"state_dict": {}, "hook": collections.OrderedDict(f=os.getcwd)}, tmp_path / "hostile.pth")
    with pytest.raises(CheckpointError, match="needs `posix.getcwd` to be rebuilt, which runs code"):
        read_checkpoint(tmp_path / "hostile.pth")
    (tmp_path / "run").mkdir()
    with pytest.raises(CheckpointError, match="is a folder, not a checkpoint file; pass the file, e.g. .*best.pth"):
        read_checkpoint(tmp_path / "run")
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        read_checkpoint(tmp_path / "missing.pth")


@pytest.mark.parametrize("code, fix", [(errno.EIO, "the disk failed to read or write it; check the disk"),
                                       (errno.EACCES, "check its permissions"), (errno.ENOENT, "check the path"),
                                       (errno.EISDIR, "it is a folder; pass a file"),
                                       (errno.ENOSPC, "free space or choose another --out")])
def test_a_file_that_fails_is_named_with_its_cause_never_guessed_a_write(monkeypatch, capsys, code, fix):
    class Failing:  # the size table `vitbench list` reads
        def read_text(self):
            raise OSError(code, os.strerror(code), "/data/model_sizes.json")

    monkeypatch.setattr("bench.cli.SIZE_TABLE", Failing())
    line = cli_error(capsys, "list")
    assert line == f"vitbench list: error: /data/model_sizes.json: {os.strerror(code)}; {fix}"


@pytest.fixture(scope="module")
def run_checkpoint(tmp_path_factory):
    """A one-epoch run's best.pth (with its record, `build`) and its data."""
    root = tmp_path_factory.mktemp("run")
    data = tiny_synthetic(root / "data", classes=3, train_per_class=4, val_per_class=1)
    train.start(tiny_config(data, root / "run", model="vb_vit_tiny_patch16_224", epochs=1, batch_size=4),
                progress=False)
    return root / "run" / "best.pth", data


@pytest.mark.parametrize("change, message", [
    ({"img_size": 10**9}, "record has img_size=1000000000, out of range"),
    ({"overrides": {"depth": 10**9}}, "record has depth=1000000000, out of range"),
    ({"overrides": {"embed_dim": 2**20}}, "record has embed_dim=1048576, out of range"),
    ({"overrides": {"embed_dim": 64}}, "disagrees with its tensors"),
    ({"overrides": {"depth": 3}}, "disagrees with its tensors"),
    ({"overrides": "x"}, "record names no model and overrides"),
    ({"model": "no_such_model"}, "record builds no model"),
])
def test_eval_checks_a_run_s_record_against_its_tensors_before_building(run_checkpoint, tmp_path, capsys, change,
                                                                        message):
    path, data = run_checkpoint
    payload = torch.load(path, weights_only=True)
    build = {**payload["build"], **change}
    if isinstance(change.get("overrides"), dict):
        build["overrides"] = {**payload["build"]["overrides"], **change["overrides"]}
    torch.save({**payload, "build": build}, tmp_path / "tampered.pth")
    line = cli_error(capsys, "eval", "--checkpoint", str(tmp_path / "tampered.pth"), "--data", str(data),
                     "--workers", "0")
    assert message in line
