"""The study protocol: a held-out validation split, the test split read once per run, budgets in
epochs / PFLOP / minutes with the cosine ending at the budget, the warm-up cap, the MAC-matched ViT."""
import json
import math
import os
import sys

import numpy as np
import pytest
import tomli_w
import torch

from bench import cli, factory
from bench.accuracy import data as data_module
from bench.accuracy import plan as plan_module
from bench.accuracy import study, train, train_data
from bench.accuracy.data import carve_holdout, scan_dataset
from bench.accuracy.optimisation import Optimisation
from bench.accuracy.plan import Plan, plan_run, train_pflop
from bench.accuracy.train import plateau_causes
from bench.cost.flops import any_model_macs
from bench.errors import DatasetError, ResultsError
from models.errors import ConfigError
from tests.harness_helpers import tiny_config, tiny_synthetic


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_synthetic(tmp_path_factory.mktemp("protocol") / "d", classes=3, train_per_class=8, val_per_class=3)


def quiet(message):
    pass


# --- the holdout --------------------------------------------------------------------------------------------
def test_holdout_is_class_balanced_seeded_disjoint_and_recorded(data):
    split = scan_dataset(data)["train"]
    rest, held, record = carve_holdout(split.samples, split.classes, 6, seed=0, root=data)
    assert [t for _, t in held].count(0) == [t for _, t in held].count(1) == [t for _, t in held].count(2) == 2
    assert not set(rest) & set(held) and sorted(rest + held) == sorted(split.samples)
    assert record == {"images": 6, "per_class": 2, "seed": 0, "sha256": record["sha256"]}
    assert len(record["sha256"]) == 64
    again = carve_holdout(split.samples, split.classes, 6, seed=0, root=data)
    other = carve_holdout(split.samples, split.classes, 6, seed=1, root=data)
    assert again[1] == held and again[2]["sha256"] == record["sha256"]
    assert other[1] != held and other[2]["sha256"] != record["sha256"]
    by_fraction = carve_holdout(split.samples, split.classes, 0.25, seed=0, root=data)
    assert by_fraction[2]["images"] == 6 and by_fraction[1] == held  # 25% of 8 per class: the same cut


@pytest.mark.parametrize("holdout, expected", [(7, "splits evenly over 3 classes; use e.g. 0.1 or 6"),
                                               (24, "holds out 8 images of each class, but class"),
                                               (0.99, "leaves class"), (2.5, "neither a fraction")])
def test_a_holdout_that_cannot_be_carved_is_one_line(data, holdout, expected):
    split = scan_dataset(data)["train"]
    with pytest.raises(DatasetError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        carve_holdout(split.samples, split.classes, holdout, seed=0, root=data)


@pytest.mark.parametrize("field", ["holdout", "budget_pflop", "budget_minutes"])
@pytest.mark.parametrize("value", [0, -1.0, math.nan, math.inf])
def test_holdout_and_budgets_must_be_positive_finite(field, value):
    with pytest.raises(ConfigError, match=f"{field}=.* it must be a finite number > 0"):
        tiny_config("d", "o", **{field: value})


def test_train_cut_applies_after_the_holdout(data):
    samples = train_data.scan_samples(tiny_config(data, "o", holdout=6, train_fraction=0.5), quiet)
    assert len(samples.holdout) == 6 and len(samples.train) == 9  # half of the 6 left per class
    assert not {path for path, _ in samples.train} & {path for path, _ in samples.holdout}


def counting_reads(monkeypatch):
    reads = {}
    real = data_module.load_rgb

    def load_rgb(path):
        reads[path] = reads.get(path, 0) + 1
        return real(path)

    monkeypatch.setattr(data_module, "load_rgb", load_rgb)
    return reads


def test_with_a_holdout_the_test_split_is_read_once_and_chosen_on_nothing(data, tmp_path, monkeypatch):
    reads = counting_reads(monkeypatch)
    out = tmp_path / "run"
    summary = train.start(tiny_config(data, out, holdout=6, epochs=3, model="vb_vit_tiny_patch16_224"),
                          progress=False, warn=quiet)
    split = scan_dataset(data)
    test_paths = [path for path, _ in split["val"].samples]
    held = train_data.scan_samples(train.read_config(out), quiet).holdout
    assert [reads.get(path, 0) for path in test_paths] == [1] * len(test_paths)  # final and best: one reading
    assert {reads.get(path, 0) for path, _ in held} == {3}  # once per epoch, never in a training batch
    assert summary["selection"] == "holdout" and summary["val_images"] == 6 and summary["test_images"] == 9
    assert summary["holdout"]["images"] == 6 and summary["test_best"]["chosen_on"] == "holdout"
    assert summary["best"]["epoch"] == summary["test_best"]["epoch"]
    assert {"test_top1", "test_top5", "test_loss"} <= set(summary)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(row["val_images"] == 6 for row in rows)
    saved = json.loads((out / "config.json").read_text())
    assert saved["holdout"] == 6 and saved["holdout_seed"] == 0


def test_memory_mode_decodes_the_test_split_only_at_the_end(data, tmp_path, monkeypatch):
    events = []
    real_decode, real_test = train_data.decoded_split, train_data.MemoryData.test_loader
    monkeypatch.setattr(train_data, "decoded_split",
                        lambda split, *a, **k: events.append(split.root.name) or real_decode(split, *a, **k))
    monkeypatch.setattr(train_data.MemoryData, "test_loader", lambda self: events.append("test") or real_test(self))
    monkeypatch.setattr(train.Trainer, "train_one_epoch",
                        lambda self, real=train.Trainer.train_one_epoch: events.append("epoch") or real(self))
    monkeypatch.setenv("VITBENCH_CACHE", str(tmp_path / "cache"))
    summary = train.start(tiny_config(data, tmp_path / "run", holdout=6, data_mode="memory"), progress=False,
                          warn=quiet)
    assert events == ["train", "epoch", "epoch", "test", "val"]
    assert summary["test_images"] == 9 and summary["data_mode"] == "memory"


def test_without_a_holdout_the_run_says_it_chose_on_test(data, tmp_path):
    notices = []
    summary = train.start(tiny_config(data, tmp_path / "run", epochs=1), progress=False, warn=notices.append)
    assert summary["selection"] == "test" and summary["holdout"] is None
    assert summary["test_top1"] == summary["top1"] and any("no --holdout" in n for n in notices)


# --- budgets and the schedule ------------------------------------------------------------------------------
def test_equal_pflop_budgets_give_each_model_the_same_compute_within_five_percent():
    config = tiny_config("d", "o", budget_pflop=0.03)
    for macs in (11_067_328, 16_304_832, 20_100_800, 17_939_712):  # the cifar10-cpu arms
        plan = plan_run(config, updates_per_epoch=351, global_batch=128, forward_macs=macs, warn=quiet)
        assert plan.pflop == pytest.approx(0.03, rel=0.05) and plan.budget == "pflop"
        assert plan.images == pytest.approx(0.03e15 / (6 * macs), rel=0.05)


def test_minutes_budget_converts_a_step_time_into_updates():
    plan = plan_run(tiny_config("d", "o", budget_minutes=2.0), 10, 8, 1000, seconds_per_update=0.5, warn=quiet)
    assert plan.total_updates == 240 and plan.budget == "minutes" and plan.seconds_per_update == 0.5


def test_a_budget_below_one_update_is_refused():
    with pytest.raises(ConfigError, match="less than one update"):
        plan_run(tiny_config("d", "o", budget_pflop=1e-12), 10, 8, 1_000_000, warn=quiet)


def test_the_cosine_ends_at_the_budget_and_peaks_after_the_warm_up():
    config = tiny_config("d", "o", lr=1e-3, min_lr=1e-5, warmup_epochs=1)
    plan = Plan("pflop", 1.0, total_updates=40, warmup_updates=5, updates_per_epoch=10, global_batch=8,
                forward_macs=1)
    model = torch.nn.Linear(4, 2)
    opt = Optimisation(config, model, train.distributed.setup("cpu"), plan, 2, quiet)
    rates = []
    for update in range(1, plan.total_updates + 1):
        opt.num_updates = update
        opt.scheduler.step_update(update)
        rates.append(opt.current_lr())
    assert rates[3] == pytest.approx(1e-6 + 4 / 5 * (1e-3 - 1e-6))  # linear warm-up from warmup_lr
    assert max(rates) == rates[plan.warmup_updates - 1] > 0.95e-3  # the peak right after warm-up
    assert rates[-1] == pytest.approx(1e-5)  # the floor exactly at the last update of the budget
    assert all(a >= b for a, b in zip(rates[plan.warmup_updates:], rates[plan.warmup_updates + 1:]))


def test_a_pflop_run_stops_at_its_budget_mid_epoch_and_records_its_compute(data, tmp_path):
    config = tiny_config(data, tmp_path / "run", model="vb_vit_tiny_patch16_224", holdout=6, warmup_epochs=0)
    macs = any_model_macs(factory.create(config.model, config.model_args, 3, config.img_size, 0.0), 32)
    config.budget_pflop = train_pflop(8 * 5, macs)  # 5 updates of 8 images: two epochs of 2 and one of 1
    summary = train.start(config, progress=False, warn=quiet)
    assert summary["updates"] == 5 and summary["epochs"] == 3 and summary["images_seen"] == 40
    assert summary["plan"]["total_updates"] == 5 and summary["train_pflop"] == pytest.approx(config.budget_pflop)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [row["train_images"] for row in rows] == [16, 16, 8]
    assert rows[-1]["train_pflop"] == pytest.approx(config.budget_pflop)


def test_a_minutes_run_plans_once_and_resumes_on_that_plan(data, tmp_path):
    out = tmp_path / "run"
    summary = train.start(tiny_config(data, out, holdout=6, budget_minutes=0.02), progress=False, warn=quiet)
    plan = summary["plan"]
    assert plan["budget"] == "minutes" and plan["seconds_per_update"] > 0
    assert plan["total_updates"] == math.floor(0.02 * 60 / plan["seconds_per_update"]) == summary["updates"]
    assert train.resume(out, progress=False, warn=quiet)["plan"] == plan  # not measured again


# --- warm-up ---------------------------------------------------------------------------------------------
def test_a_warm_up_longer_than_its_share_is_shortened_with_a_notice_and_named_on_a_plateau():
    notices = []
    config = tiny_config("d", "o", epochs=2, warmup_epochs=5)
    plan = plan_run(config, 10, 8, 1000, warn=notices.append)
    assert plan.warmup_updates == math.floor(plan_module.WARMUP_MAX_SHARE * 20) and plan.warmup_shortened_from == 50
    assert len(notices) == 1 and "shortened to 4 updates" in notices[0]
    assert any("warm-up asked for covered 250% of the run" in cause for cause in plateau_causes(config, 1e-4, plan))
    fine = plan_run(tiny_config("d", "o", epochs=20, warmup_epochs=1), 10, 8, 1000, warn=notices.append)
    assert fine.warmup_updates == 10 and fine.warmup_shortened_from is None and len(notices) == 1


# --- the study's arms ------------------------------------------------------------------------------------
def test_the_mac_matched_vit_is_within_five_percent_of_the_arm_it_matches():
    spec = study.resolve_mac_matched(study.load_study_spec("cifar10-cpu"), num_classes=10)
    costs = {v.arm: macs for v, (_, macs, _) in study.counted_costs(study.load_study_spec("cifar10-cpu"), 10).items()}
    matched = next(v for v in spec.variants if v.arm == "vit-mac-matched")
    assert matched.overrides["embed_dim"] != 64 and matched.model == "vit_lite_tiny"
    assert costs["vit-mac-matched"] == pytest.approx(costs["t2t-performer"], rel=study.MAC_MATCH_TOLERANCE)
    assert all(v.overrides.get("t2t_drop") == 0.0 for v in spec.variants if v.arm.startswith("t2t"))


def test_a_study_holds_out_by_default_and_a_given_length_replaces_the_spec_budget():
    spec = study.load_study_spec("cpu-tiny")
    assert spec.train["holdout"] == study.STUDY_HOLDOUT
    cifar = study.load_study_spec("cifar10-cpu", train={"epochs": 3})
    assert cifar.train["epochs"] == 3 and "budget_pflop" not in cifar.train and cifar.train["holdout"] == 5000
    with pytest.raises(ConfigError, match="lacks"):
        study.resolve_mac_matched(study.load_study_spec("cifar10-cpu", arms=["vit", "vit-mac-matched"]), 10)


# --- a pretrained arm: pretrain on some classes, fine-tune on others -------------------------------------------
def test_classes_restrict_train_and_test_and_unknown_ones_are_one_line(tmp_path):
    data = tiny_synthetic(tmp_path / "d", classes=4, train_per_class=6, val_per_class=2)
    names = sorted(p.name for p in (data / "train").iterdir())
    samples = train_data.scan_samples(tiny_config(data, "o", classes=names[2:]), quiet)
    assert samples.classes == names[2:] and len(samples.train) == 12 and len(samples.val) == 4
    assert {target for _, target in samples.train} == {0, 1}
    with pytest.raises(DatasetError, match="classes zebra are not in"):
        train_data.scan_samples(tiny_config(data, "o", classes=[names[0], "zebra"]), quiet)
    with pytest.raises(ConfigError, match="must name at least 2 different class folders"):
        tiny_config(data, "o", classes=[names[0]])


def test_a_pretrained_arm_fine_tunes_another_run_with_a_fresh_head_beside_scratch(tmp_path):
    data = tiny_synthetic(tmp_path / "d", classes=4, train_per_class=8, val_per_class=2)
    names = sorted(p.name for p in (data / "train").iterdir())
    pretrain = tmp_path / "pretrain"
    train.start(tiny_config(data, pretrain, model="vb_vit_tiny_patch16_224", classes=names[:2], holdout=2),
                progress=False, warn=quiet)
    spec = {"fractions": [0.5], "seeds": [0], "train": {
        "epochs": 1, "batch_size": 4, "img_size": 32, "lr": 1e-3, "warmup_epochs": 0, "workers": 0, "threads": 1,
        "mixup": 0.0, "cutmix": 0.0, "auto_augment": "", "holdout": 2, "classes": names[2:], "data_mode": "files"},
        "arms": [{"name": "vit", "label": "ViT from scratch", "model": "vb_vit_tiny_patch16_224", "depths": [1],
                  "overrides": {"embed_dim": 32, "num_heads": 2, "mlp_ratio": 2.0, "patch_size": 4}},
                 {"name": "vit-pretrained", "label": "ViT pretrained on two other classes", "depths": [1],
                  "model": "vb_vit_tiny_patch16_224", "init": str(pretrain / "last.pth"),
                  "overrides": {"embed_dim": 32, "num_heads": 2, "mlp_ratio": 2.0, "patch_size": 4},
                  "train": {"lr": 3e-4, "epochs": 2}}]}
    (tmp_path / "spec.toml").write_text(tomli_w.dumps(spec))
    loaded = study.load_study_spec(config=tmp_path / "spec.toml")
    out = tmp_path / "study"
    study.run_study(loaded, data, out, warn=quiet)
    tuned = json.loads((out / "runs" / "vit-pretrained-d1-f0.5-s0" / "summary.json").read_text())
    scratch = json.loads((out / "runs" / "vit-d1-f0.5-s0" / "summary.json").read_text())
    assert tuned["init"]["trained_on"] == names[:2] and tuned["init"]["new_head"] and scratch["init"] is None
    assert tuned["epochs"] == 2 and scratch["epochs"] == 1 and tuned["lr"] == 3e-4  # the arm's own recipe
    assert tuned["classes"] == scratch["classes"] == 2
    recorded, _ = study.recorded_spec(out)
    assert [(v.init, v.train) for v in recorded.variants] == [(v.init, v.train) for v in loaded.variants]
    results = study.collect(recorded, out)
    pretrained = os.path.relpath(pretrain / "last.pth", out)  # results.csv names it from the study folder
    assert results.set_index("arm")["init"].to_dict() == {"vit": "", "vit-pretrained": pretrained}


def checkpoint_of_kind(kind, tmp_path, data):
    """(checkpoint path, model, model overrides) for each kind of pretrained file a pretrained arm starts from."""
    from timm.models.vision_transformer import VisionTransformer as TimmViT

    from bench.reference_t2t import RefT2TViT

    vit = {"embed_dim": 32, "num_heads": 2, "mlp_ratio": 2.0, "patch_size": 8, "depth": 1}
    if kind == "vitbench run":
        out = tmp_path / "pretrain"
        train.start(tiny_config(data, out, model="vb_vit_tiny_patch16_224", model_args=vit, img_size=16),
                    progress=False, warn=quiet)
        return out / "last.pth", "vb_vit_tiny_patch16_224", vit
    if kind == "reference T2T-ViT":
        t2t = {"embed_dim": 48, "depth": 1, "num_heads": 4, "mlp_ratio": 2.0}
        reference = RefT2TViT(tokens_type="performer", img_size=16, num_classes=1000, **t2t)
        torch.save({"epoch": 309, "state_dict": reference.state_dict()}, tmp_path / "T2T_ViT_7.pth.tar")
        return tmp_path / "T2T_ViT_7.pth.tar", "t2t_vit_7", t2t
    timm_vit = TimmViT(img_size=16, patch_size=8, embed_dim=32, depth=1, num_heads=2, mlp_ratio=2.0, num_classes=1000)
    if kind == "timm state dict":
        torch.save(timm_vit.state_dict(), tmp_path / "pytorch_model.bin")
        return tmp_path / "pytorch_model.bin", "vb_vit_tiny_patch16_224", vit
    import safetensors.torch

    safetensors.torch.save_file(timm_vit.state_dict(), tmp_path / "model.safetensors")
    return tmp_path / "model.safetensors", "vb_vit_tiny_patch16_224", vit


def reads_of(path, monkeypatch):
    """A list that grows by one each time torch.load or safetensors opens `path`."""
    import safetensors
    import safetensors.torch

    reads = []

    def counted(reader):
        def read(file, *args, **kwargs):
            reads.extend([file] if str(file) == str(path) else [])
            return reader(file, *args, **kwargs)
        return read

    monkeypatch.setattr(torch, "load", counted(torch.load))
    for module in (safetensors, safetensors.torch):  # safetensors.torch.load_file opens through its own name
        monkeypatch.setattr(module, "safe_open", counted(safetensors.safe_open))
    return reads


@pytest.mark.parametrize("kind", ["vitbench run", "reference T2T-ViT", "timm state dict", "safetensors"])
def test_each_kind_of_checkpoint_fine_tunes_at_another_size_with_a_new_head(data, tmp_path, kind, monkeypatch):
    from bench.accuracy.evaluate import imagenet_synsets, model_for_checkpoint

    path, model, overrides = checkpoint_of_kind(kind, tmp_path, data)
    reads = reads_of(path, monkeypatch)
    summary = train.start(tiny_config(data, tmp_path / "tuned", model=model, model_args=overrides, init=str(path),
                                      img_size=32, epochs=1, holdout=3), progress=False, warn=quiet)
    assert len(reads) == 1  # --init reads its file once: weights, classes and normalisation from that one read
    reads.clear()  # eval too: a run's file on its own classes, any other's 1000-class head on three synsets
    classes = scan_dataset(data)["train"].classes if kind == "vitbench run" else imagenet_synsets()[:3]
    model_for_checkpoint(path, classes, model, 16, overrides, warn=quiet)
    assert len(reads) == 1
    loaded = summary["init"]
    assert loaded["checkpoint"] == os.path.relpath(path, tmp_path / "tuned")  # from the run folder
    assert loaded["resized_pos_embed"]  # 16 px pretrained, 32 px here
    # a 1000-class head is replaced; the vitbench run was trained on these very classes, so its head is kept
    assert loaded["new_head"] == (kind != "vitbench run") and summary["classes"] == 3 and summary["updates"] > 0
    assert loaded["layout"] == {"vitbench run": "vitbench", "reference T2T-ViT": "reference-t2t"}.get(kind, "timm-vit")


@pytest.mark.parametrize("suffix, found", [(".npz", "a NumPy archive"), (".onnx", "an ONNX graph")])
def test_weight_files_of_other_frameworks_are_one_line_naming_what_they_are(tmp_path, suffix, found):
    from models.checkpoint import read_checkpoint
    from models.errors import CheckpointError

    (tmp_path / f"weights{suffix}").write_bytes(b"PK\x03\x04 not torch")
    with pytest.raises(CheckpointError, match=f"is {found}.*not a PyTorch checkpoint"):
        read_checkpoint(tmp_path / f"weights{suffix}")


# --- progress people can read in a log file ----------------------------------------------------------------
def test_progress_without_a_terminal_is_plain_lines_with_eta(data, tmp_path, monkeypatch):
    from bench.accuracy import progress

    monkeypatch.setattr(progress, "STEP_LINES_EVERY", 1)  # pytest's stderr is no terminal: plain lines
    lines = []
    train.start(tiny_config(data, tmp_path / "run", holdout=6, epochs=2), progress=True, warn=lines.append)
    steps = [line for line in lines if " step " in line]
    epochs = [line for line in lines if line.startswith("epoch ") and ": train loss" in line]
    assert len(steps) == 4 and all("lr " in line and "img/s" in line and "ETA" in line for line in steps)
    assert len(epochs) == 2 and all("ETA" in line and "lr " in line for line in epochs)
    assert not any("\r" in line for line in lines)


def test_a_study_tags_its_runs_epoch_lines_and_says_how_far_it_is(data, tmp_path):
    spec = {"fractions": [1.0], "seeds": [0, 1], "train": {
        "epochs": 1, "batch_size": 4, "img_size": 32, "lr": 1e-3, "warmup_epochs": 0, "workers": 0, "threads": 1,
        "mixup": 0.0, "cutmix": 0.0, "auto_augment": "", "holdout": 3, "data_mode": "files"},
        "arms": [{"name": "vit", "label": "ViT", "model": "vb_vit_tiny_patch16_224", "depths": [1],
                  "overrides": {"embed_dim": 32, "num_heads": 2, "mlp_ratio": 2.0, "patch_size": 4}}]}
    (tmp_path / "spec.toml").write_text(tomli_w.dumps(spec))
    lines = []
    study.run_study(study.load_study_spec(config=tmp_path / "spec.toml"), data, tmp_path / "study", warn=lines.append)
    assert any(line.startswith("[vit-d1-f1-s0] epoch 1/1:") and "ETA" in line for line in lines)
    assert not any("step" in line for line in lines)  # a study shows epochs, not steps
    tallies = [line for line in lines if line.startswith("[study]")]
    assert tallies[0].startswith("[study] 1/2 runs done, 1 running, 0 waiting; ETA")
    assert tallies[1].startswith("[study] 2/2 runs done, 0 running, 0 waiting; ETA 0 s")


def test_tensorboard_logging_writes_step_and_epoch_scalars_when_asked(data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    summary = train.start(tiny_config(data, out, holdout=6, epochs=2, log="tensorboard"), progress=False, warn=quiet)
    events = EventAccumulator(str(out / "tensorboard")).Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "train/grad_norm", "train/images_per_s", "epoch/top1", "epoch/train_loss",
            "test/top1"} <= tags
    assert len(events.Scalars("train/loss")) == summary["updates"] and len(events.Scalars("epoch/top1")) == 2
    assert events.Scalars("test/top1")[0].value == pytest.approx(summary["test_top1"])
    plain = train.start(tiny_config(data, tmp_path / "plain", epochs=1), progress=False, warn=quiet)
    assert plain and not (tmp_path / "plain" / "tensorboard").exists()  # only when asked
    with pytest.raises(ConfigError, match="log='mlflow' is not allowed; it must be one of tensorboard, wandb"):
        tiny_config(data, out, log="mlflow")


def test_wandb_logging_offline_writes_a_run_folder_with_the_same_scalars(data, tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="W&B is the optional `wandb` extra (pip install 'vitbench[wandb]'); "
                                        "scripts/venv.sh installs it")
    monkeypatch.setenv("WANDB_MODE", "offline")  # no account, no network: the run stays in OUT/wandb/
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "run"
    assert train.start(tiny_config(data, out, holdout=6, epochs=2, log="wandb"), progress=False, warn=quiet)
    (run,) = (out / "wandb").glob("offline-run-*")
    run_id = (out / "wandb" / "vitbench-run-id").read_text().strip()
    (log,) = run.glob(f"run-{run_id}.wandb")  # W&B's own record of the run, which `wandb sync` uploads
    records = log.read_bytes()
    for tag in ("train/loss", "train/lr", "train/grad_norm", "train/images_per_s", "epoch/top1", "test/top1"):
        assert tag.encode() in records, tag  # the scalars TensorBoard gets, under the same names
    assert b"t2t_vit_7" in records and b"holdout" in records  # the run's config (TrainConfig) went with it
    assert json.loads((out / "config.json").read_text())["log"] == "wandb"
    assert not (out / "tensorboard").exists() and train.RUN_FOLDER.foreign(out) == []  # ours: --overwrite clears it
    train.resume(out, {}, progress=False, warn=quiet)  # a resumed run continues the same W&B run: the same id
    assert sorted(p.name.rsplit("-", 1)[1] for p in (out / "wandb").glob("offline-run-*")) == [run_id, run_id]
    monkeypatch.setitem(sys.modules, "wandb", None)  # as without the extra
    missing = r"--log wandb needs W&B, which is not installed: pip install 'vitbench\[wandb\]'"
    with pytest.raises(ConfigError, match=missing):
        train.start(tiny_config(data, tmp_path / "none", epochs=1, log="wandb"), progress=False, warn=quiet)


def test_validations_spread_a_few_evaluations_over_many_short_epochs(data, tmp_path, monkeypatch):
    reads = counting_reads(monkeypatch)
    out = tmp_path / "run"
    summary = train.start(tiny_config(data, out, holdout=6, epochs=5, validations=2), progress=False, warn=quiet)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows if row["val_images"]] == [3, 5]  # every ceil(5 / 2) = 3rd and the last
    assert all(row["top1"] is None for row in rows if not row["val_images"])  # JSON null: no score that epoch
    held = train_data.scan_samples(tiny_config(data, out, holdout=6), quiet).holdout
    assert {reads[path] for path, _ in held} == {2} and summary["best"]["epoch"] in (3, 5)
    with pytest.raises(ConfigError, match="validations=0 is not allowed; it must be an integer >= 1"):
        tiny_config(data, out, validations=0)


# --- a warm-up share, a sweep that never reads the test split, per-image test predictions -----------------------
@pytest.mark.parametrize("updates", [40, 400, 4000])
def test_a_warm_up_share_is_the_same_share_at_every_length(updates):
    config = tiny_config("d", "o", warmup_share=0.05, warmup_epochs=100, epochs=updates // 10)  # share wins
    plan = plan_run(config, 10, 8, 1000, warn=quiet)
    assert plan.warmup_updates == round(0.05 * updates) and plan.warmup_shortened_from is None


def test_a_warm_up_share_above_the_cap_and_a_sweep_without_holdout_are_refused():
    with pytest.raises(ConfigError, match="warmup_share"):
        tiny_config("d", "o", warmup_share=0.5)
    with pytest.raises(ConfigError, match="test=false needs a holdout"):
        tiny_config("d", "o", test=False)


def test_a_run_with_test_off_never_reads_the_test_split(data, tmp_path, monkeypatch):
    read = []
    monkeypatch.setattr(train.Trainer, "score_test", lambda self: read.append(1))
    summary = train.start(tiny_config(data, tmp_path / "run", holdout=6, test=False), progress=False, warn=quiet)
    assert read == [] and summary["test_top1"] is None and summary["test_best"]["top1"] is None
    assert summary["top1"] is not None and not (tmp_path / "run" / train.TEST_PREDICTIONS).exists()
    assert "test split not scored" in cli.summary_line("run", summary)  # the CLI's last line formats no None


def test_per_image_test_predictions_agree_with_the_run_s_test_scores(data, tmp_path):
    summary = train.start(tiny_config(data, tmp_path / "run", holdout=6), progress=False, warn=quiet)
    stored = train.read_predictions(tmp_path / "run")
    assert len(stored["targets"]) == summary["test_images"] == 9
    assert (stored["final"] == stored["targets"]).mean() * 100 == pytest.approx(summary["test_top1"])
    assert (stored["best"] == stored["targets"]).mean() * 100 == pytest.approx(summary["test_best"]["top1"])
    assert sorted(stored["targets"].tolist()) == [0, 0, 0, 1, 1, 1, 2, 2, 2]


@pytest.mark.parametrize("damage", [b"", b"not an npz", "short"])
def test_damaged_predictions_are_refused_in_one_line(tmp_path, damage):
    path = tmp_path / train.TEST_PREDICTIONS
    if damage == "short":
        np.savez(path, targets=np.zeros(3), final=np.zeros(2), best=np.zeros(3))
    else:
        path.write_bytes(damage)
    with pytest.raises(ResultsError, match="test_predictions.npz"):
        train.read_predictions(tmp_path)
