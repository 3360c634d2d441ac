"""No image size given means the model's own input size (timm's pretrained_cfg["input_size"] of the registered
name, `models.default_img_size`) for every command; one image-size check (`models.tokenizers.check_img_size` and its
`is_img_side`) for every path that takes a size."""
import json

import pytest
import timm
import torch

import models
from bench import factory
from bench.accuracy import study
from bench.accuracy.evaluate import model_for_checkpoint
from bench.cli import main
from bench.configs import EvalConfig, ProfileConfig, SweepSpec, TrainConfig
from bench.cost.flops import analytic_macs, any_model_macs, fvcore_macs
from models.errors import ConfigError
from models.tokenizers import MAX_IMG_SIDE, check_img_size
from tests.harness_helpers import tiny_synthetic

CIFAR = "vit_lite_tiny"  # registered at 32 px: 8 x 8 tokens of 4 x 4 patches (at 224 px it would be 56 x 56)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_synthetic(tmp_path_factory.mktemp("data"))


def cifar_macs(num_classes=1000):
    return any_model_macs(models.create_model(CIFAR, num_classes=num_classes))


def test_the_default_is_the_registered_pretrained_cfg_input_size():
    assert timm.models.get_pretrained_cfg(CIFAR).input_size == (3, 32, 32)
    assert models.create_model(CIFAR).tokenizer.grid_size == (8, 8)
    assert [models.default_img_size(name) for name in (CIFAR, "t2t_vit_lite_tiny", "resnet_cifar_tiny")] == [32] * 3
    assert models.default_img_size("t2t_vit_14") == 224 and models.default_img_size("resnet18") == 224
    assert models.default_img_size("no_such_model") is None  # its build says it is unknown


def test_train_without_a_size_trains_at_the_models_own(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model", CIFAR, "--data", str(data), "--out", str(out), "--epochs", "1", "--batch-size",
                 "8", "--workers", "0", "--threads", "1", "--warmup-epochs", "0"]) == 0
    assert json.loads((out / "config.json").read_text())["img_size"] == 32  # recorded: the run restarts the same
    summary = json.loads((out / "summary.json").read_text())
    assert summary["forward_macs"] == cifar_macs(num_classes=3)  # ~11 M, not the 5.5 G of 224 px
    assert TrainConfig(model="t2t_vit_14", data="d", out="o").img_size == 224  # the paper's models: as before
    assert TrainConfig(model=CIFAR, data="d", out="o", img_size=64).img_size == 64  # a size given is kept


def test_eval_of_a_foreign_checkpoint_without_a_size_uses_the_models_own(data, tmp_path):
    path = tmp_path / "weights.pth"
    torch.save(models.create_model(CIFAR, num_classes=3).state_dict(), path)
    loaded = model_for_checkpoint(path, ["motif0", "motif1", "motif2"], CIFAR)
    assert loaded.img_size == 32 and loaded.model.tokenizer.grid_size == (8, 8)
    assert EvalConfig(checkpoint="c", data="d").img_size is None  # a run's own checkpoint: its recorded size


def test_profile_and_macs_without_a_size_count_the_models_own(capsys):
    assert main(["profile", CIFAR, "--json", "--warmup", "0", "--repeats", "1", "--batch-size", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["img_size"] == 32 and result["macs"] == analytic_macs(models.create_model(CIFAR))["total"]
    assert main(["macs", CIFAR, "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["fvcore_with_sdpa_G"] == round(fvcore_macs(models.create_model(CIFAR))["total"] / 1e9, 4)


def test_sweep_without_a_size_measures_the_models_own(tmp_path, capsys):
    assert main(["sweep", "--families", "--models", CIFAR, "--measure", "macs", "--out", str(tmp_path / "sw"),
                 "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {row["img_size"] for row in rows} == {"32x32"} and {row["tokens"] for row in rows} == {65}


def test_study_without_a_size_trains_and_counts_each_model_at_its_own(data, tmp_path):
    (tmp_path / "spec.toml").write_text(
        'fractions = [1.0]\nseeds = [0]\n[train]\nepochs = 1\n'
        '[[arms]]\nname = "vit"\nlabel = "ViT"\nmodel = "vit_lite_tiny"\ndepths = [4]\n'
        '[[arms]]\nname = "t2t"\nlabel = "T2T"\nmodel = "t2t_vit_lite_tiny"\ndepths = [4]\n')
    spec = study.load_study_spec(config=tmp_path / "spec.toml")
    for variant in spec.variants:
        config = study.run_config(spec, data, tmp_path / "out", variant, 1.0, 0)
        assert config.img_size == study.variant_img_size(spec, variant) == 32
    vit = spec.variants[0]
    assert study.counted_costs(spec, 3)[vit][1] == cifar_macs(num_classes=3)


# One check, every path: each class of bad value is refused by the check itself, by our models, by the MAC
# counters and by every job's setting (a job's size is one square side: a pair is refused there too).
BAD_SIZES = {
    "zero": 0, "negative": -1, "too large": MAX_IMG_SIDE + 1, "a float": 32.0, "a bool": True, "a word": "large",
    "one side in a list": [32], "a pair with a bad side": (32, 0), "three sides": (32, 32, 3), "nothing": None,
}
JOB_SIZE = {TrainConfig: dict(model=CIFAR, data="d", out="o"), EvalConfig: dict(checkpoint="c", data="d"),
            ProfileConfig: {}}


@pytest.mark.parametrize("value", BAD_SIZES.values(), ids=BAD_SIZES.keys())
def test_one_image_size_check_refuses_every_class_of_bad_value_on_every_path(value):
    message = r"img_size=.* must be a positive integer \(at most 8192\) or an \(H, W\) pair of them"
    with pytest.raises(ConfigError, match=message):
        check_img_size(value)
    with pytest.raises(ConfigError, match=message):
        models.create_model(CIFAR, img_size=value)
    if value is not None:  # None: the counters' and the jobs' "no size given"
        with pytest.raises(ConfigError, match=message):
            analytic_macs(models.create_model(CIFAR), value)
        for cls, required in JOB_SIZE.items():
            with pytest.raises(ConfigError, match=rf"{cls.JOB}: img_size=.* is not allowed; it must be an integer "
                                                  rf">= 1 and <= {MAX_IMG_SIDE}"):
                cls(**required, img_size=value)
        with pytest.raises(ConfigError, match=r"sweep: img_size=\[.*\] is not allowed"):
            SweepSpec(img_size=[value])


def test_the_one_check_takes_sides_and_pairs_up_to_the_bound():
    assert check_img_size(32) == (32, 32) and check_img_size([60, 100]) == (60, 100)
    assert check_img_size(MAX_IMG_SIDE) == (MAX_IMG_SIDE, MAX_IMG_SIDE)
    assert factory.create(CIFAR, num_classes=3, img_size=(32, 48)).tokenizer.grid_size == (8, 12)
    assert TrainConfig(model=CIFAR, data="d", out="o", img_size=MAX_IMG_SIDE).img_size == MAX_IMG_SIDE
    with pytest.raises(ConfigError, match=r"train: img_size=\[32, 48\] is not allowed"):  # a run is square
        TrainConfig(model=CIFAR, data="d", out="o", img_size=[32, 48])
