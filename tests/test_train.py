"""Training and evaluation end to end on CPU: run folders, checkpoints, resume, bad inputs, baselines."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

import models
from bench import factory
from bench.accuracy import train
from bench.accuracy.evaluate import model_for_checkpoint, run_eval
from bench.accuracy.optimisation import Optimisation, TrainingDivergedError
from bench.configs import EvalConfig
from models.errors import ConfigError
from tests.harness_helpers import (
    REPO_ROOT,
    TINY_T2T,
    cli_error,
    samples_dataset,
    tiny_cli_args,
    tiny_config,
    tiny_synthetic,
)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_synthetic(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="module")
def finished_run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "t2t"
    return out, train.start(tiny_config(data, out), progress=False)


def test_run_folder_holds_config_metrics_checkpoints_summary(finished_run):
    out, summary = finished_run
    assert sorted(p.name for p in out.iterdir()) == [
        "best.pth",
        "config.json",
        "config.toml",
        "last.pth",
        "metrics.csv",
        "metrics.jsonl",
        "summary.json",
    ]
    metrics = pd.read_csv(out / "metrics.csv")
    assert metrics["epoch"].tolist() == [1, 2]
    for column in ("train_loss", "val_loss", "top1", "top5", "train_images_per_s", "epoch_time_s", "peak_mem_mb", "lr"):
        assert metrics[column].notna().all(), column
    assert (metrics["train_images"] == 24).all() and (metrics["val_images"] == 9).all()  # 3 steps of 8; 3 classes x 3
    assert [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert summary == json.loads((out / "summary.json").read_text())
    assert summary["top1"] == metrics["top1"].iloc[-1] and summary["best"]["top1"] == metrics["top1"].max()
    assert sum(map(sum, summary["confusion"])) == 9 and summary["ranks_in_sync"]
    assert summary["lr"] == 1e-3 and summary["world_size"] == 1


def test_checkpoint_reloads_into_the_model_it_was_trained_as(finished_run, data):
    out, summary = finished_run
    payload = torch.load(out / "last.pth", weights_only=True)
    assert payload["epoch"] == 2 and payload["build"]["classes"] == ["block", "checker", "cross"]
    model = factory.create("t2t_vit_7", TINY_T2T, 3, 32, 0.0)
    models.load_checkpoint(model, out / "last.pth")
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, payload["state_dict"][key], rtol=0, atol=0)
    assert summary["params"] == models.count_params(model)  # fixed tables included, as the paper counts


def test_eval_cli_reports_per_class_accuracy_and_confusion(finished_run, data, tmp_path, capsys):
    from bench.cli import main

    out, summary = finished_run
    assert (
        main(
            [
                "eval",
                "--checkpoint",
                str(out / "best.pth"),
                "--data",
                str(data),
                "--workers",
                "0",
                "--out",
                str(tmp_path / "eval.json"),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "top-1" in printed and "confusion matrix" in printed and "block" in printed
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["images"] == 9 and len(result["per_class_top1"]) == 3
    assert result["top1"] == pytest.approx(summary["best"]["top1"])  # best.pth is the best epoch's model
    confusion = torch.tensor(result["confusion"])
    assert confusion.sum() == 9 and (confusion.sum(dim=1) == 3).all()
    assert result["top1"] == pytest.approx(confusion.diag().sum().item() / 9 * 100)


def test_fresh_run_never_overwrites_results(finished_run, data, tmp_path, capsys):
    out, _ = finished_run
    before = (out / "summary.json").read_text()
    line = cli_error(capsys, "train", *tiny_cli_args(), "--data", str(data), "--out", str(out))
    assert "already holds results; pass --resume to continue that run or --overwrite to start over" in line
    assert (out / "summary.json").read_text() == before
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "thesis.tex").write_text("precious")
    line = cli_error(
        capsys, "train", *tiny_cli_args(), "--data", str(data), "--out", str(tmp_path / "other"), "--overwrite"
    )
    assert "not a vitbench run folder" in line and (tmp_path / "other" / "thesis.tex").exists()
    line = cli_error(capsys, "train", "--out", str(tmp_path / "none"), "--resume")
    assert "holds no run to resume; start it without --resume" in line
    line = cli_error(capsys, "train", "--out", str(out), "--resume", "--lr", "0.5")
    assert "cannot resume with other settings: lr=0.5 (run has 0.001)" in line


def test_resuming_a_finished_run_changes_nothing(finished_run):
    out, summary = finished_run
    weights = torch.load(out / "last.pth", weights_only=True)["state_dict"]
    again = train.resume(out, progress=False)
    assert again["top1"] == summary["top1"] and again["epochs"] == 2
    for key, value in torch.load(out / "last.pth", weights_only=True)["state_dict"].items():
        assert torch.equal(value, weights[key])


def test_overwrite_replaces_a_run(data, tmp_path):
    out = tmp_path / "run"
    train.start(tiny_config(data, out, epochs=1), progress=False)
    train.start(tiny_config(data, out, epochs=1, seed=5), overwrite=True, progress=False)
    assert json.loads((out / "config.json").read_text())["seed"] == 5


def test_nan_loss_stops_the_run_naming_the_step(data, tmp_path, monkeypatch):
    update = Optimisation.update

    def diverging(self, images, targets, where):  # the first update leaves an infinite weight behind
        result = update(self, images, targets, where)
        next(self.model.parameters()).data.fill_(float("inf"))
        return result

    monkeypatch.setattr(Optimisation, "update", diverging)
    with pytest.raises(TrainingDivergedError, match=r"loss became nan at epoch 1, step 2 \(update 2\)"):
        train.start(tiny_config(data, tmp_path / "run", warmup_epochs=0, mixup=0, cutmix=0), progress=False)


@pytest.mark.parametrize(
    "change, error, expected",
    [
        ({"model": "t2t_vit_77"}, "UnknownModelError", "unknown model 't2t_vit_77'; did you mean t2t_vit_7"),
        ({"batch_size": 64}, "DatasetError", "24 training images cannot fill one batch of 64"),
        ({"data": "/nonexistent/imagenette"}, "DatasetError", "dataset folder /nonexistent/imagenette not found"),
        ({"classes": ["zebra", "lion"]}, "DatasetError", "classes lion, zebra are not in"),
        ({"model_args": {"depth": 1, "t2t_stage": 3}}, "UnknownOptionError", "unknown option(s) ['t2t_stage']"),
    ],
)
def test_bad_settings_fail_with_one_line(data, tmp_path, change, error, expected):
    settings = {"data": data, **change}
    with pytest.raises(models.VitbenchError) as info:  # model_args: refused by the config, before the run
        train.start(tiny_config(settings.pop("data"), tmp_path / "run", **settings), progress=False)
    assert type(info.value).__name__ == error and expected in str(info.value) and "\n" not in str(info.value)


def test_bad_image_files_are_skipped_and_counted_or_fatal_with_strict(tmp_path, capsys):
    data = tiny_synthetic(tmp_path / "data")
    (data / "train" / "block" / "zero.png").write_bytes(b"")
    (data / "val" / "cross" / "junk.png").write_bytes(b"GIF89a not really")
    (data / "train" / "checker" / "README.txt").write_text("notes")
    summary = train.start(tiny_config(data, tmp_path / "run", epochs=1), progress=False)
    assert sorted(Path(p).name for p in summary["skipped_files"]) == ["junk.png", "zero.png"]
    assert summary["ignored_non_image_files"] == 1
    assert "skipping unreadable image" in capsys.readouterr().err
    line = cli_error(
        capsys, "train", *tiny_cli_args(), "--data", str(data), "--out", str(tmp_path / "strict"), "--strict"
    )
    assert "README.txt is not an image file" in line
    (data / "train" / "checker" / "README.txt").unlink()
    line = cli_error(
        capsys,
        "train",
        *tiny_cli_args(),
        "--data",
        str(data),
        "--out",
        str(tmp_path / "strict2"),
        "--strict",
        "--overwrite",
    )
    assert "cannot decode" in line and ("zero.png" in line or "junk.png" in line)


def test_cnn_baseline_and_vit_with_ema_train_through_the_same_loop(data, tmp_path):
    cnn = train.start(
        tiny_config(data, tmp_path / "cnn", model="resnet18", epochs=1, crop_pct=1.0, interpolation="bilinear"),
        progress=False,
    )
    assert cnn["params"] < 120_000 and cnn["top1"] >= 0
    loaded = model_for_checkpoint(tmp_path / "cnn" / "last.pth", ["block", "checker", "cross"])
    assert loaded.transform == {
        "interpolation": "bilinear",
        "crop_pct": 1.0,
    }  # the run's eval transform, not timm's default
    # eval rebuilds the timm ResNet from the run
    result = run_eval(EvalConfig(checkpoint=str(tmp_path / "cnn" / "last.pth"), data=str(data)))
    assert result["confusion"] == cnn["confusion"]
    vit = train.start(
        tiny_config(data, tmp_path / "vit", model="vb_vit_tiny_patch16_224", ema_decay=0.9, epochs=1), progress=False
    )
    metrics = pd.read_csv(tmp_path / "vit" / "metrics.csv")
    assert {"ema_top1", "ema_top5"} <= set(metrics.columns)
    ema = run_eval(EvalConfig(checkpoint=str(tmp_path / "vit" / "last.pth"), data=str(data), ema=True))
    assert ema["top1"] == pytest.approx(metrics["ema_top1"].iloc[-1])
    assert vit["model"] == "vb_vit_tiny_patch16_224"


def test_fine_tune_starts_from_the_checkpoint_with_a_new_head(finished_run, tmp_path):
    out, _ = finished_run
    two_classes = tiny_synthetic(tmp_path / "two", classes=2)
    frozen = dict(lr=0.0, min_lr=0.0, warmup_lr=0.0, warmup_epochs=0, epochs=1)  # lr 0: weights stay as loaded
    train.start(tiny_config(two_classes, tmp_path / "ft", init=str(out / "best.pth"), **frozen), progress=False)
    source = torch.load(out / "best.pth", weights_only=True)["state_dict"]
    tuned = torch.load(tmp_path / "ft" / "last.pth", weights_only=True)["state_dict"]
    assert tuned["head.weight"].shape == (2, 32)
    for key in source:
        if not key.startswith("head."):
            assert torch.equal(tuned[key], source[key]), key


def test_pretrained_imagenet_checkpoint_is_scored_on_subset_classes(tmp_path):
    """A 1000-class head on synset folders: only the subset's logits compete."""
    data = samples_dataset(tmp_path / "samples")
    overrides = {**TINY_T2T, "t2t_stages": ((3, 2, 1), (3, 2, 1))}
    model = models.create_model("t2t_vit_7", img_size=32, num_classes=1000, **overrides).eval()
    models.save_checkpoint(model, tmp_path / "pretrained.pth")
    result = run_eval(EvalConfig(checkpoint=str(tmp_path / "pretrained.pth"), data=str(data), model="t2t_vit_7",
                                 img_size=32, model_args=TINY_T2T))
    assert result["subset_of_imagenet_head"] and result["images"] == 6

    from bench.accuracy.data import ImageFolderDataset, eval_transform, scan_split
    from bench.accuracy.evaluate import imagenet_synsets

    found = scan_split(data, "val")
    columns = [imagenet_synsets().index(name) for name in found.classes]
    dataset = ImageFolderDataset(found.samples, found.classes, eval_transform(model, 32))
    with torch.no_grad():
        predictions = [model(image[None])[0, columns].argmax().item() for image, _ in dataset]
    expected = sum(p == t for p, (_, t) in zip(predictions, found.samples)) / 6 * 100
    assert result["top1"] == pytest.approx(expected)
    with pytest.raises(ConfigError, match="pass --model NAME"):
        run_eval(EvalConfig(checkpoint=str(tmp_path / "pretrained.pth"), data=str(data)))


def test_eval_refuses_a_run_checkpoint_on_other_classes(finished_run, tmp_path):
    out, _ = finished_run
    other = tiny_synthetic(tmp_path / "other", classes=2)
    with pytest.raises(models.CheckpointError, match=r"other classes than the data's \(only in checkpoint: \w+; "
                       "only in data: none"):
        run_eval(EvalConfig(checkpoint=str(out / "best.pth"), data=str(other)))


# --- kill and resume ----------------------------------------------------------------------------------
def vitbench(*args):
    return [sys.executable, "-m", "bench.cli", *args]


def comparable(metrics_path):
    """The metrics that must match between runs: everything but timings and memory."""
    frame = pd.read_csv(metrics_path)
    return frame.drop(columns=[c for c in frame.columns if c.endswith(("_s", "_per_s", "_mb"))])


@pytest.mark.slow
def test_killed_run_resumes_to_the_uninterrupted_result(data, tmp_path):
    flags = [*tiny_cli_args(), "--data", str(data), "--epochs", "6", "--batch-size", "4"]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    uninterrupted = subprocess.Popen(
        vitbench("train", *flags, "--out", str(tmp_path / "full")),
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    killed = subprocess.Popen(
        vitbench("train", *flags, "--out", str(tmp_path / "killed")),
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    metrics = tmp_path / "killed" / "metrics.jsonl"
    deadline = time.time() + 120
    while (
        not (metrics.exists() and metrics.read_text().count("\n") >= 1)
        and time.time() < deadline
        and killed.poll() is None
    ):
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed" / "summary.json").exists(), "the run finished before it was killed"
    done = torch.load(tmp_path / "killed" / "last.pth", weights_only=True)["epoch"]
    assert 1 <= done < 6
    resumed = subprocess.run(
        vitbench("train", "--out", str(tmp_path / "killed"), "--resume"),
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming {tmp_path / 'killed'} after epoch {done} of 6" in resumed.stderr
    assert uninterrupted.wait(timeout=300) == 0, uninterrupted.stderr.read()[-2000:]

    pd.testing.assert_frame_equal(
        comparable(tmp_path / "killed" / "metrics.csv"), comparable(tmp_path / "full" / "metrics.csv")
    )
    full = torch.load(tmp_path / "full" / "last.pth", weights_only=True)
    again = torch.load(tmp_path / "killed" / "last.pth", weights_only=True)
    assert full["epoch"] == again["epoch"] == 6
    for key, value in full["state_dict"].items():
        assert torch.equal(value, again["state_dict"][key]), key


def test_learning_rate_follows_the_paper_scaled_by_global_batch():
    small = train.TrainConfig(model="t2t_vit_7", data="-", out="-", batch_size=128)
    assert small.resolved_lr(world_size=4) == 1e-3 and small.resolved_weight_decay() == 0.03  # 512 images: paper's 1e-3
    large = train.TrainConfig(model="t2t_vit_14", data="-", out="-", batch_size=64)
    assert large.resolved_lr(world_size=1) == 5e-4 * 64 / 512 and large.resolved_weight_decay() == 0.05
    assert train.TrainConfig(model="resnet50", data="-", out="-", batch_size=256, base_lr=2e-3).resolved_lr(2) == 2e-3
    assert train.TrainConfig(model="resnet50", data="-", out="-", lr=0.1).resolved_lr(8) == 0.1
    with pytest.raises(ConfigError, match="amp='fp32' is not allowed; it must be one of auto, bf16"):
        train.TrainConfig(model="resnet50", data="-", out="-", amp="fp32")


def test_fine_tuning_a_reference_t2t_checkpoint_keeps_its_attention_scale_for_eval(data, tmp_path):
    from bench.reference_t2t import RefT2TViT

    shape = dict(embed_dim=48, depth=1, num_heads=4, mlp_ratio=2.0)
    reference = RefT2TViT(tokens_type="performer", img_size=32, num_classes=1000, qk_scale=48**-0.5, **shape)
    torch.save({"state_dict": reference.state_dict()}, tmp_path / "T2T_ViT_ref.pth.tar")
    frozen = dict(lr=0.0, min_lr=0.0, warmup_lr=0.0, warmup_epochs=0, epochs=1)
    summary = train.start(
        tiny_config(data, tmp_path / "ft", model_args=shape, init=str(tmp_path / "T2T_ViT_ref.pth.tar"), **frozen),
        progress=False,
    )
    loaded = model_for_checkpoint(tmp_path / "ft" / "last.pth", ["block", "checker", "cross"])
    assert loaded.model.blocks[0].attn.scale == 48**-0.5
    result = run_eval(EvalConfig(checkpoint=str(tmp_path / "ft" / "last.pth"), data=str(data)))
    assert result["confusion"] == summary["confusion"]


def test_eval_cli_errors_are_one_line(finished_run, data, tmp_path, capsys):
    out, _ = finished_run
    flat = tmp_path / "flat"
    (flat / "val").mkdir(parents=True)
    (flat / "val" / "ILSVRC2012_val_00000001.JPEG").write_bytes(b"")
    line = cli_error(capsys, "eval", "--checkpoint", str(out / "best.pth"), "--data", str(flat))
    assert "holds 1 images but no class folders" in line
    (tmp_path / "empty.pth").write_bytes(b"")
    assert "is empty (0 bytes)" in cli_error(
        capsys, "eval", "--checkpoint", str(tmp_path / "empty.pth"), "--data", str(data)
    )
