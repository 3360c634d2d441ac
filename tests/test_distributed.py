"""DistributedDataParallel on CPU: two gloo processes started by torchrun train one run together."""
import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import torch

from bench.accuracy.evaluate import run_eval
from bench.configs import EvalConfig
from tests.harness_helpers import REPO_ROOT, tiny_cli_args, tiny_synthetic


@pytest.mark.slow
def test_torchrun_two_processes_shard_data_reduce_metrics_and_write_once(tmp_path):
    data = tiny_synthetic(
        tmp_path / "data", classes=3, train_per_class=8, val_per_class=3
    )  # 9 val images: 5 + 4 per rank
    out = tmp_path / "ddp"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "bench.cli",
        "train",
        *tiny_cli_args(),
        "--data",
        str(data),
        "--out",
        str(out),
        "--batch-size",
        "4",
        "--device",
        "cpu",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["global_batch"] == 8 and summary["ranks_in_sync"]
    metrics = pd.read_csv(out / "metrics.csv")
    assert metrics["epoch"].tolist() == [1, 2]  # rank 0 alone wrote each epoch once
    assert (metrics["train_images"] == 24).all()  # 3 steps x 4 images x 2 ranks, summed over ranks
    assert (metrics["val_images"] == 9).all()  # uneven shards (5 + 4), nothing padded or counted twice
    assert sorted(p.name for p in out.iterdir()) == [
        "best.pth",
        "config.json",
        "config.toml",
        "last.pth",
        "metrics.csv",
        "metrics.jsonl",
        "summary.json",
    ]
    assert done.stdout.count("(final weights)") == 1  # only rank 0 reports

    single = run_eval(EvalConfig(checkpoint=str(out / "last.pth"), data=str(data)))  # one process, the same weights
    assert torch.equal(torch.tensor(single["confusion"]), torch.tensor(summary["confusion"]))
    assert single["top1"] == summary["top1"]
