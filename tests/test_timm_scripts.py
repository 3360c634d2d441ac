"""timm's own scripts run our models through `python -m models.timm_script` (docs/timm.md): validate.py scores a
vitbench run's checkpoint, benchmark.py writes the very columns `vitbench profile --results-file` writes, and
train.py trains one of our names into a checkpoint `vitbench eval` reads.

timm's scripts are in its repository, not in its wheel or sdist: they come from $VITBENCH_TIMM_SCRIPTS (a timm
checkout), the cache (~/.cache/vitbench/timm-scripts/VERSION) or, unless VITBENCH_OFFLINE=1, the repository at the
installed version's tag; without any of these the tests are skipped with the reason.
"""
import csv
import importlib.util
import json
import os
import subprocess
import sys

import pytest
import timm
import torch

import models
from bench.cli import main as cli

from .conftest import REPO

spec = importlib.util.spec_from_file_location("timm_model_tests", REPO / "scripts" / "timm_model_tests.py")
suite = importlib.util.module_from_spec(spec)
spec.loader.exec_module(suite)

SAMPLE = REPO / "tests" / "data" / "cifar10-sample"  # real CIFAR-10 images: train/ and val/, 10 classes


@pytest.fixture(scope="module")
def timm_scripts():
    version = suite.timm_version()
    cached = suite.SCRIPTS_CACHE / version
    if not os.environ.get("VITBENCH_TIMM_SCRIPTS") and os.environ.get("VITBENCH_OFFLINE") == "1" and not all(
            (cached / name).is_file() for name in suite.SCRIPTS):
        pytest.skip(f"timm's scripts are not cached at {cached} and VITBENCH_OFFLINE=1 forbids downloading them")
    try:
        folder, source = suite.fetch_scripts(version)
    except OSError as error:
        pytest.skip(f"timm {version}'s scripts could not be had (its sdist lacks them; offline? or set "
                    f"VITBENCH_TIMM_SCRIPTS to a timm checkout): {error}")
    print(f"timm's scripts from {source}")
    return folder


def run_timm(script, *args, cwd):
    """`python -m models.timm_script SCRIPT ARGS` as a user runs it: the output, or the failure shown."""
    command = [sys.executable, "-m", "models.timm_script", str(script), *map(str, args)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{script.name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_the_entry_refuses_a_missing_script_in_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "models.timm_script", str(tmp_path / "validate.py")], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "usage: python -m models.timm_script" in done.stderr
    assert "Traceback" not in done.stderr and "validate.py" in done.stderr


def checkpoint_top1(name, checkpoint):
    """Top-1 (%) of `checkpoint` on the sample's val/ with timm's eval transform of the model's pretrained_cfg,
    computed here without timm's script: what validate.py must report."""
    model = models.create_model(name).eval()
    models.load_checkpoint(model, checkpoint)
    config = timm.data.resolve_data_config({}, model=model)
    dataset = timm.data.create_dataset("", root=str(SAMPLE), split="validation",
                                       transform=timm.data.create_transform(**config))
    images, labels = zip(*(dataset[i] for i in range(len(dataset))), strict=True)
    with torch.no_grad():
        predicted = model(torch.stack(images)).argmax(-1)
    return 100 * (predicted == torch.tensor(labels)).float().mean().item()


@pytest.mark.slow
def test_timm_validate_py_scores_a_vitbench_run(timm_scripts, tmp_path):
    run = tmp_path / "run"
    assert cli(["train", "--model", "vit_lite_tiny", "--data", str(SAMPLE), "--out", str(run), "--epochs", "1",
                "--img-size", "32", "--warmup-epochs", "0", "--threads", "1"]) == 0
    results = tmp_path / "validate.csv"
    output = run_timm(timm_scripts / "validate.py", SAMPLE, "--model", "vit_lite_tiny", "--checkpoint",
                      run / "best.pth", "--device", "cpu", "--workers", "0", "--batch-size", "25",
                      "--results-file", results, cwd=tmp_path)
    assert "Loaded state_dict from checkpoint" in output  # timm read the run's weights, not its own random init
    (row,) = read_csv(results)
    assert row["model"] == "vit_lite_tiny" and {"top1", "top5", "param_count", "img_size"} <= set(row)
    top1 = float(row["top1"])
    assert top1 == pytest.approx(checkpoint_top1("vit_lite_tiny", run / "best.pth"), abs=1e-3)
    assert 0 <= top1 <= 100 and float(row["top5"]) >= top1 and row["img_size"] == "32"


@pytest.mark.slow
def test_timm_benchmark_py_writes_the_columns_profile_writes(timm_scripts, tmp_path):
    timm_file, ours_file = tmp_path / "timm.csv", tmp_path / "ours.csv"
    run_timm(timm_scripts / "benchmark.py", "--model", "vit_lite_*", "--device", "cpu", "--bench", "both",
             "--batch-size", "2", "--num-warm-iter", "1", "--num-bench-iter", "5", "--results-file", timm_file,
             cwd=tmp_path)
    assert cli(["profile", "vit_lite_*", "--train", "--batch-size", "2", "--warmup", "0", "--repeats", "1",
                "--results-file", str(ours_file)]) == 0
    theirs, ours = read_csv(timm_file), read_csv(ours_file)
    columns = list(theirs[0])
    assert list(ours[0])[:len(columns)] == columns and "infer_macts" in columns  # the same columns, in its order
    assert len(ours) == len(theirs) == len(models.list_models("vit_lite_*"))
    for rows in (theirs, ours):  # each sorted as timm sorts a bulk run: fastest inference first
        rates = [float(row["infer_samples_per_sec"]) for row in rows]
        assert rates == sorted(rates, reverse=True)
    theirs = {row["model"]: row for row in theirs}
    for row in ours:
        same = theirs[row["model"]]
        for column in ("infer_batch_size", "infer_img_size", "train_batch_size", "train_img_size", "param_count"):
            assert row[column] == same[column], (row["model"], column)
        # fvcore's counts, ours with fused attention counted, which timm's plain fvcore drops
        for column in ("infer_gmacs", "infer_macts"):
            assert float(row[column]) >= float(same[column]) > 0, (row["model"], column)


@pytest.mark.slow
def test_timm_train_py_trains_our_model_and_vitbench_evaluates_its_checkpoint(timm_scripts, tmp_path):
    output = run_timm(timm_scripts / "train.py", "--data-dir", SAMPLE, "--model", "vit_lite_tiny", "-b", "30",
                      "--epochs", "1", "--warmup-epochs", "0", "--device", "cpu", "--workers", "0", "--output",
                      tmp_path / "timm", cwd=tmp_path)
    assert "Train: 0" in output and "Acc@1" in output  # an epoch of our model under timm's loop, then its eval
    (best,) = (tmp_path / "timm").glob("*-vit_lite_tiny-32/model_best.pth.tar")
    assert cli(["eval", "--model", "vit_lite_tiny", "--checkpoint", str(best), "--data", str(SAMPLE), "--out",
                str(tmp_path / "eval.json")]) == 0  # timm's checkpoint (its args, EMA slot and all) read back as ours
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["images"] == 100 and 0 <= report["top1"] <= 100
