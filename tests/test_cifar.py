"""Real images through the memory data path: the 400 CIFAR-10 JPEGs shipped in tests/data are
learned well above chance, an interrupted run resumes to the uninterrupted weights, and the CIFAR
models have the published parameter count."""
import json

import pytest
import torch

import models
from bench.accuracy import train
from bench.cost.flops import analytic_macs, count_params

from .conftest import CIFAR10_SAMPLE


@pytest.fixture(scope="module")
def cifar_sample():
    """30 train and 10 test images per class (read only: the decoded cache goes to a temporary folder)."""
    return CIFAR10_SAMPLE


def config(data, out, **settings):
    quick = dict(model="resnet_cifar_tiny", epochs=10, batch_size=32, img_size=32, lr=2e-3, warmup_epochs=0, mixup=0,
                 cutmix=0, auto_augment="", reprob=0, drop_path=0, smoothing=0, workers=0, threads=1,
                 data_mode="memory")
    return train.TrainConfig(data=str(data), out=str(out), **{**quick, **settings})


def test_a_small_model_learns_real_images_well_above_chance(cifar_sample, tmp_path):
    summary = train.start(config(cifar_sample, tmp_path / "run"), progress=False)
    assert summary["data_mode"] == "memory" and summary["train_images"] == 300 and summary["val_images"] == 100
    # 100 test images: at chance (10%) the score's standard error is 3 points, so 20% is 3.3 of them above it
    assert summary["top1"] >= 20.0, f"top-1 {summary['top1']:.1f}% on 10 classes (chance 10%)"
    assert not summary["health"]["plateau"]
    history = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(row["grad_norm"] > 0 and row["loss_vs_chance"] > 0 for row in history)


def test_an_interrupted_memory_mode_run_resumes_to_the_same_weights(cifar_sample, tmp_path, monkeypatch):
    settings = dict(model="vit_lite_tiny", model_args={"depth": 1}, epochs=2, auto_augment="rand-m9-n2",
                    reprob=0.25, mixup=0.8, cutmix=1.0)
    train.start(config(cifar_sample, tmp_path / "full", **settings), progress=False)

    write_metrics = train.Trainer.write_metrics

    def stop_after_first_epoch(trainer):
        write_metrics(trainer)
        raise KeyboardInterrupt

    monkeypatch.setattr(train.Trainer, "write_metrics", stop_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        train.start(config(cifar_sample, tmp_path / "cut", **settings), progress=False)
    monkeypatch.undo()
    train.resume(tmp_path / "cut", progress=False)
    full = torch.load(tmp_path / "full" / "last.pth", weights_only=True)["state_dict"]
    resumed = torch.load(tmp_path / "cut" / "last.pth", weights_only=True)["state_dict"]
    assert all(torch.equal(full[key], resumed[key]) for key in full)


def test_cifar_models_match_the_published_counts():
    vit = models.create_model("vit_lite_7_4")
    assert count_params(vit) == 3_716_874  # Compact Transformers' ViT-Lite-7/4: 3.72M
    macs = analytic_macs(vit)
    without_attention_products = macs["total"] - macs["attention.qk"] - macs["attention.av"]
    assert abs(without_attention_products - 239e6) / 239e6 < 0.01  # the published 0.239 GMACs leave QK^T, AV out
    for name in ("t2t_vit_lite_7_4", "t2t_vit_t_lite_7_4"):
        t2t = models.create_model(name)
        assert t2t.tokenizer.grid_size == vit.tokenizer.grid_size == (8, 8)
        backbone = {k: v.shape for k, v in t2t.state_dict().items() if not k.startswith("tokenizer")}
        assert backbone == {k: v.shape for k, v in vit.state_dict().items() if not k.startswith("tokenizer")}
