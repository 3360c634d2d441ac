"""`--launcher slurm` on a real Slurm: a single-machine cluster (scripts/slurm_cluster.sh: slurmctld, slurmd,
slurmdbd, mariadb, munge on 127.0.0.1), started once for this module and stopped by pid after it. Skipped with the
reason where the packages, root or the daemons are missing (.ci/run installs the packages where it may)."""
import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import tomli_w

from bench.accuracy import study, train
from bench.configs import SlurmConfig
from bench.launch import slurm
from tests.conftest import REPO
from tests.harness_helpers import TINY_T2T, tiny_synthetic

SCRIPT = REPO / "scripts" / "slurm_cluster.sh"
RUN = {"batch_size": 4, "img_size": 32, "lr": 1e-3, "warmup_epochs": 0, "workers": 0, "threads": 1, "mixup": 0.0,
       "cutmix": 0.0, "auto_augment": "", "crop_pct": 1.0, "holdout": 3, "data_mode": "files"}
ARM = {"name": "t2t", "label": "T2T-ViT", "model": "t2t_vit_7",
       "overrides": {k: v for k, v in TINY_T2T.items() if k != "depth"}, "depths": [1]}
SAME = ["arm", "seed", "val_top1", "test_top1", "test_top5", "updates", "train_pflop"]
SETTINGS = SlurmConfig(cpus=1, time_minutes=60)
REQUEUED = dict(epochs=300, checkpoint_every=1)  # 600 updates, a checkpoint after each: long enough that the
# signal lands mid-run on a fast machine too (CI once finished 60 updates before the requeue reached the job)
# minutes on a busy 2-core machine (every job starts Python and torch; Slurm and submitit poll): CI runs them
pytestmark = pytest.mark.slow


def missing():
    """Why this machine cannot run the cluster, or None."""
    if os.geteuid() != 0:
        return "the local Slurm cluster needs root (munged runs as munge, slurmd as root)"
    absent = [name for name in ("slurmctld", "slurmd", "slurmdbd", "munged", "mariadbd", "sbatch")
              if not shutil.which(name) and not os.path.exists(f"/usr/sbin/{name}")]
    return f"Slurm is not installed ({', '.join(absent)} missing: scripts/slurm_cluster.sh install)" if absent else None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if reason := missing():
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("slurm")
    started = subprocess.run([SCRIPT, "start", folder], capture_output=True, text=True, timeout=120)
    if started.returncode:
        subprocess.run([SCRIPT, "stop", folder], timeout=60)
        pytest.skip(f"the local Slurm cluster did not start: {started.stderr.strip()[-300:]}")
    before = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(folder / "slurm.conf")
    yield folder
    subprocess.run([SCRIPT, "stop", folder], timeout=60)
    os.environ.pop("SLURM_CONF") if before is None else os.environ.update(SLURM_CONF=before)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_synthetic(tmp_path_factory.mktemp("data"), classes=3, train_per_class=4, val_per_class=2)


def spec(tmp_path, seeds, **train_settings):
    path = tmp_path / "spec.toml"
    path.write_text(tomli_w.dumps({"fractions": [1.0], "seeds": seeds, "train": {**RUN, **train_settings},
                                   "arms": [ARM]}))
    return study.load_study_spec(config=path)


def squeue(*fields):
    """[(job id, state, ...)] of the queue's jobs."""
    listing = subprocess.run(["squeue", "-h", "-o", "|".join(fields)], capture_output=True, text=True).stdout
    return [line.split("|") for line in listing.split()]


def job_processes(number):
    """The pids of the processes of Slurm job `number` on this machine (those with its SLURM_JOB_ID)."""
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and f"SLURM_JOB_ID={number}".encode() in (entry / "environ").read_bytes().split(
                    b"\0"):
                found.append(int(entry.name))
    return found


def in_background(target, *args, **kwargs):
    result = {}
    thread = threading.Thread(target=lambda: result.update(value=target(*args, **kwargs)))
    thread.start()
    return thread, result


def wait_until(condition, seconds, what):
    deadline = time.monotonic() + seconds
    while not (found := condition()):
        assert time.monotonic() < deadline, f"{what} did not happen within {seconds} s"
        time.sleep(0.2)
    return found


def test_four_runs_on_slurm_equal_the_local_launcher(cluster, data, tmp_path):
    runs = spec(tmp_path, [0, 1, 2, 3], epochs=1)
    study.run_study(runs, data, tmp_path / "local", warn=lambda line: None)
    lines = []
    assert slurm.run_study_on_slurm(runs, data, tmp_path / "slurm", settings=SETTINGS, warn=lines.append) == []
    assert any("4 of 4 runs submitted as job array" in line for line in lines)
    pd.testing.assert_frame_equal(study.collect(runs, tmp_path / "slurm")[SAME],
                                  study.collect(runs, tmp_path / "local")[SAME])


def test_cancelled_and_killed_runs_are_reported_and_resume_finishes_them(cluster, data, tmp_path):
    runs, out = spec(tmp_path, [0, 1], epochs=200), tmp_path / "study"  # both still running when stopped
    thread, result = in_background(slurm.run_study_on_slurm, runs, data, out, settings=SETTINGS, warn=print)
    running = wait_until(lambda: (jobs := [(job, number) for job, number, state in squeue("%i", "%A", "%T")
                                           if state == "RUNNING"]) and len(jobs) == 2 and jobs, 60, "both runs running")
    wait_until(lambda: all((out / "runs" / f"t2t-d1-f1-s{seed}" / train.LAST).is_file() for seed in (0, 1)), 60,
               "a first checkpoint of each run")
    (cancelled, _), (_, killed) = sorted(running)
    subprocess.run(["scancel", cancelled], check=True)
    for pid in job_processes(killed):  # SIGKILL, as the OOM killer would: no chance to clean up
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    thread.join(120)
    failed = result["value"]
    assert len(failed) == 2 and any("CANCELLED" in line for line in failed), failed
    assert all(" log " in line and str(out / "slurm") in line for line in failed)
    assert slurm.run_study_on_slurm(runs, data, out, resume=True, settings=SETTINGS, warn=print) == []
    assert len(study.collect(runs, out)) == 2


@pytest.fixture(scope="module")
def uninterrupted(data, tmp_path_factory):
    """The run of the requeue tests, trained here without a stop."""
    root = tmp_path_factory.mktemp("uninterrupted")
    study.run_study(spec(root, [0], **REQUEUED), data, root / "local", warn=lambda line: None)
    return root / "local"


@pytest.mark.parametrize("how", ["scontrol requeue", "SIGUSR1"])
def test_a_requeued_run_resumes_mid_epoch_and_ends_bit_identical(cluster, data, uninterrupted, tmp_path, how):
    runs, out = spec(tmp_path, [0], **REQUEUED), tmp_path / "study"
    thread, result = in_background(slurm.run_study_on_slurm, runs, data, out, settings=SETTINGS, warn=print)
    last = out / "runs" / "t2t-d1-f1-s0" / train.LAST
    wait_until(lambda: last.is_file() and train.read_checkpoint(last)["num_updates"] >= 8, 60, "8 updates")
    job = wait_until(lambda: [job for job, _, state in squeue("%i", "%A", "%T") if state == "RUNNING"], 10,
                     "running")[0]
    if how == "SIGUSR1":  # Slurm's warning before a time limit: the run saves, submitit requeues it
        subprocess.run(["scancel", "--signal=USR1", job], check=True)  # its steps, as --signal=USR1@90
    else:  # the job is killed and started again: it resumes from the latest mid-epoch checkpoint
        subprocess.run(["scontrol", "requeue", job], check=True)
    # a requeued job waits for its begin time (about 2 min in 22.05): a test starts it at once
    wait_until(lambda: [j for j, _, state in squeue("%i", "%A", "%T") if state == "PENDING"], 60, "requeued")
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True)
    assert wait_until(lambda: not thread.is_alive() or None, 180, "the requeued run's end") is True
    thread.join(180)
    assert result["value"] == []
    states = subprocess.run(["sacct", "-n", "-X", "-D", "-j", job, "-o", "state"], capture_output=True,
                            text=True).stdout.split()
    assert "REQUEUED" in states, states
    logs = "".join(path.read_text() for path in (out / "slurm").glob("*_log.err"))
    assert "resuming " in logs  # the requeued job continued the run from its checkpoint
    ours, theirs = (train.read_checkpoint(folder / "runs" / "t2t-d1-f1-s0" / train.LAST) for folder in (out,
                                                                                                    uninterrupted))
    assert all((ours["state_dict"][k] == v).all() for k, v in theirs["state_dict"].items())
    pd.testing.assert_frame_equal(study.collect(runs, out)[SAME], study.collect(runs, uninterrupted)[SAME])
