"""`--launcher slurm` on a real Slurm: a single-machine cluster (scripts/slurm_cluster.sh: slurmctld, two slurmd as
nodes n1 and n2, slurmdbd, mariadb, munge on 127.0.0.1), started once for this module and stopped by pid after it.
Skipped with the reason where the packages, root or the daemons are missing (.ci/run installs the packages where it
may)."""
import contextlib
import getpass
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import tomli_w
import torch

from bench.accuracy import study, train
from bench.configs import SlurmConfig
from bench.errors import ResultsError
from bench.launch import slurm
from bench.outputs import read_back
from tests.conftest import REPO
from tests.harness_helpers import TINY_T2T, TINY_VIT, tiny_cli_args, tiny_synthetic

SCRIPT = REPO / "scripts" / "slurm_cluster.sh"
RUN = {"batch_size": 4, "img_size": 32, "lr": 1e-3, "warmup_epochs": 0, "workers": 0, "threads": 1, "mixup": 0.0,
       "cutmix": 0.0, "auto_augment": "", "crop_pct": 1.0, "holdout": 3, "data_mode": "files"}
ARM = {"name": "t2t", "label": "T2T-ViT", "model": "t2t_vit_7",
       "overrides": {k: v for k, v in TINY_T2T.items() if k != "depth"}, "depths": [1]}
SAME = ["arm", "seed", "val_top1", "test_top1", "test_top5", "updates", "train_pflop"]
SETTINGS = SlurmConfig(cpus=1, time_minutes=60)
REQUEUED = dict(epochs=300, checkpoint_every=1)  # 600 updates, a checkpoint after each: long enough that the
# signal lands mid-run on a fast machine too (CI once finished 60 updates before the requeue reached the job)
# A 2-node DDP run against one process with the same global batch: every draw off (augmentation, drop path, label
# smoothing), so the two see the same images in the same global batches. The ViT twin: the tiny T2T tokenizer's
# gradients at init are mostly rounding (summing a batch in two halves in one process changes some by half), which
# AdamW's normalised step turns into weight differences of the lr's size; the ViT's agree to 1e-7, but for its
# attention's key bias (without_key_bias).
VIT = "vb_vit_tiny_patch16_224"
SAMPLE = REPO / "tests" / "data" / "cifar10-sample"
EXACT = {"drop_path": 0.0, "mixup": 0.0, "cutmix": 0.0, "auto_augment": "", "reprob": 0.0, "scale": [1.0, 1.0],
         "ratio": [1.0, 1.0], "hflip": 0.0, "color_jitter": 0.0, "smoothing": 0.0, "amp": "off", "device": "cpu",
         "classes": ["airplane", "automobile", "bird"], "train_per_class": 8}  # 24 images: 3 global batches of 8
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
    started = subprocess.run([SCRIPT, "start", folder, "2"], capture_output=True, text=True, timeout=180)
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


def spec(tmp_path, seeds, arms=(ARM,), **train_settings):
    path = tmp_path / "spec.toml"
    path.write_text(tomli_w.dumps({"fractions": [1.0], "seeds": seeds, "train": {**RUN, **train_settings},
                                   "arms": list(arms)}))
    return study.load_study_spec(config=path)


def squeue(*fields, jobs=()):
    """[(field, ...)] of the queue's jobs, or of `jobs` alone."""
    listing = subprocess.run(["squeue", "-h", "-o", "|".join(fields), *(["-j", ",".join(jobs)] if jobs else [])],
                             capture_output=True, text=True).stdout
    return [line.split("|") for line in listing.split()]


@pytest.fixture(autouse=True)
def empty_queue(cluster):
    """Each test leaves the cluster's queue empty, so that a job a failed test left behind cannot meet the next test
    (the module's cluster is its own: every job in it is a test's)."""
    yield
    subprocess.run(["scancel", "--user", getpass.getuser()], check=True)
    wait_until(lambda: not squeue("%i") or None, 120, "an empty queue after the test")


def submitted(out, *names):
    """The job ids the study in `out` recorded for its runs `names`, once it has submitted them all."""
    def recorded():
        with contextlib.suppress(ResultsError, KeyError):  # not yet written, or not yet with these runs
            jobs = read_back(out / study.STUDY_FILE, "")[study.SLURM_JOBS]
            return all(name in jobs for name in names) and [jobs[name]["job_id"] for name in names]
    return wait_until(recorded, 60, f"{', '.join(names)} submitted")


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
    # a daemon: where a test fails, the study it left polling a stopped cluster cannot keep pytest from exiting
    thread = threading.Thread(target=lambda: result.update(value=target(*args, **kwargs)), daemon=True)
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
    # a minute each, however fast the machine (200 epochs once took 12 s, over before scancel reached them): a run
    # that a test interrupts lasts a time, not an amount of work; this test compares no twin, so the plan may vary
    runs, out = spec(tmp_path, [0, 1], budget_minutes=1.0), tmp_path / "study"
    thread, result = in_background(slurm.run_study_on_slurm, runs, data, out, settings=SETTINGS, warn=print)
    cancelled, killed = submitted(out, "t2t-d1-f1-s0", "t2t-d1-f1-s1")
    wait_until(lambda: squeue("%T", jobs=[cancelled, killed]) == [["RUNNING"]] * 2, 60, "both runs running")
    wait_until(lambda: all((out / "runs" / f"t2t-d1-f1-s{seed}" / train.LAST).is_file() for seed in (0, 1)), 60,
               "a first checkpoint of each run")
    [[killed]] = squeue("%A", jobs=[killed])  # the array task's own job number, which its processes carry
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
    [job] = submitted(out, "t2t-d1-f1-s0")
    if how == "SIGUSR1":  # Slurm's warning before a time limit: the run saves, submitit requeues it
        subprocess.run(["scancel", "--signal=USR1", job], check=True)  # its steps, as --signal=USR1@90
    else:  # the job is killed and started again: it resumes from the latest mid-epoch checkpoint
        subprocess.run(["scontrol", "requeue", job], check=True)
    # the job starts again by itself, after the cluster's credential lifetime (scripts/slurm_cluster.sh says why a
    # test must not start it sooner)
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


def flags(settings):
    """EXACT as `vitbench train` flags."""
    found = []
    for key, value in settings.items():
        found += [f"--{key.replace('_', '-')}", *map(str, value if isinstance(value, list) else [value])]
    return [flag if flag != "--auto-augment" else "--auto-augment=" for flag in found if flag != ""]


def train_cli(*launcher, out, batch_size):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [*launcher, sys.executable, "-m", "bench.cli", "train", *tiny_cli_args(VIT), "--data", str(SAMPLE),
               "--out", str(out), "--batch-size", str(batch_size), *flags(EXACT)]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """The 2-node runs' reference: one process, the same global batch (8)."""
    return train_cli(out=tmp_path_factory.mktemp("one") / "run", batch_size=8)


def without_key_bias(name, tensor):
    """An attention's qkv bias without its key third: a constant added to every key of a query leaves the softmax
    unchanged, so that bias's gradient is zero but for rounding, which AdamW's normalised step turns into moves of
    the lr's size (measured: 3e-5 here, every other weight within 1e-8)."""
    if name.endswith("attn.qkv.bias"):
        query, _, value = tensor.chunk(3)
        return torch.cat([query, value])
    return tensor


def assert_same_run(ours, reference):
    """Final weights and per-epoch metrics within float tolerance; one writer (rank 0) with world size 2."""
    summary = (ours / train.SUMMARY).read_text()
    assert '"world_size": 2' in summary and '"global_batch": 8' in summary, summary[:500]
    mine, theirs = (train.read_checkpoint(folder / train.LAST)["state_dict"] for folder in (ours, reference))
    assert mine.keys() == theirs.keys()
    for key, value in theirs.items():
        torch.testing.assert_close(without_key_bias(key, mine[key]), without_key_bias(key, value), rtol=1e-4,
                                   atol=1e-6, msg=key)
    a, b = (pd.read_csv(folder / "metrics.csv") for folder in (ours, reference))
    assert a["epoch"].tolist() == b["epoch"].tolist() == [1, 2]
    for column in ("train_loss", "val_loss", "grad_norm"):
        assert a[column].tolist() == pytest.approx(b[column].tolist(), rel=1e-4), column
    for column in ("top1", "train_images", "val_images", "updates"):
        assert a[column].tolist() == b[column].tolist(), column


def job_nodes(name):
    """The node lists of the jobs named `name` (sacct)."""
    listing = subprocess.run(["sacct", "-n", "-X", "-S", "2000-01-01", "--name", name, "-o", "nodelist%40"],
                             capture_output=True, text=True).stdout
    return listing.split()


def test_a_2_node_ddp_run_through_srun_equals_one_process(cluster, one_process, tmp_path):
    """`srun` on 2 nodes, one task each: torchrun's variables from Slurm's (MASTER_ADDR the first node, n1), gloo."""
    out = train_cli("srun", "--nodes=2", "--ntasks-per-node=1", "--cpus-per-task=1", "--time=20",
                    "--job-name=vitbench-ddp-srun", out=tmp_path / "run", batch_size=4)
    assert_same_run(out, one_process)
    wait_until(lambda: job_nodes("vitbench-ddp-srun") == ["n[1-2]"], 60, "its record in the accounting, on both nodes")


def test_a_2_node_study_run_through_submitit_equals_one_process(cluster, tmp_path):
    """A study's run with `--slurm-nodes 2` is one DDP run of one job (submitit's TorchDistributedEnvironment)."""
    arm = {"name": "vit", "label": "ViT", "model": VIT, "overrides": {k: v for k, v in TINY_VIT.items()
                                                                       if k != "depth"}, "depths": [1]}
    settings = {**RUN, **EXACT, "holdout": None, "train_per_class": None, "epochs": 2}  # 90 images: a study cuts
    # by fraction
    runs = {}
    for batch_size in (4, 8):
        path = tmp_path / f"spec{batch_size}.toml"
        table = {k: v for k, v in {**settings, "batch_size": batch_size}.items() if v is not None}
        path.write_text(tomli_w.dumps({"fractions": [1.0], "seeds": [0], "train": table, "arms": [arm]}))
        runs[batch_size] = study.load_study_spec(config=path)
    study.run_study(runs[8], SAMPLE, tmp_path / "local", warn=lambda line: None)
    out = tmp_path / "ddp-study"
    assert slurm.run_study_on_slurm(runs[4], SAMPLE, out, settings=SlurmConfig(nodes=2, cpus=1, time_minutes=20),
                                    warn=print) == []
    assert_same_run(out / "runs" / "vit-d1-f1-s0", tmp_path / "local" / "runs" / "vit-d1-f1-s0")
    wait_until(lambda: job_nodes("vitbench-ddp-study") == ["n[1-2]"], 60, "its record in the accounting, on both nodes")


def test_one_arm_on_2_nodes_and_another_on_1_in_one_study(cluster, data, tmp_path):
    """An arm's [arms.slurm] nodes = 2 beside an arm on the study's one node: two job arrays, each run's job on the
    nodes its arm asked for (sacct), a DDP run of 2 for the one and a single process for the other."""
    runs = spec(tmp_path, [0], [ARM, {**ARM, "name": "t2t-2n", "slurm": {"nodes": 2}}], epochs=1)
    out, lines = tmp_path / "study", []
    assert slurm.run_study_on_slurm(runs, data, out, settings=SETTINGS, warn=lines.append) == []
    assert sum("1 of 2 runs submitted as job array" in line for line in lines) == 2, lines
    jobs = read_back(out / study.STUDY_FILE, "")[study.SLURM_JOBS]
    assert {name: job["nodes"] for name, job in jobs.items()} == {"t2t-d1-f1-s0": 1, "t2t-2n-d1-f1-s0": 2}

    def nodes(job):
        return subprocess.run(["sacct", "-n", "-X", "-j", job, "-o", "nodelist%40"], capture_output=True,
                              text=True).stdout.split()

    wait_until(lambda: nodes(jobs["t2t-2n-d1-f1-s0"]["job_id"]) == ["n[1-2]"], 60, "the 2-node job's record")
    assert nodes(jobs["t2t-d1-f1-s0"]["job_id"]) in (["n1"], ["n2"])
    sizes = {name: study.read_summary(out / "runs" / name, out)["world_size"] for name in jobs}
    assert sizes == {"t2t-d1-f1-s0": 1, "t2t-2n-d1-f1-s0": 2}


def test_a_requeued_2_node_run_resumes_and_ends_bit_identical_to_its_uninterrupted_twin(cluster, data, tmp_path):
    """Two arms alike but for their names, each a DDP run on 2 nodes: one job is requeued (`scontrol requeue`) mid-run
    and resumes from its checkpoint on both nodes; the two end with the same weights, bit for bit (gloo sums two
    ranks in one order)."""
    twin = {**ARM, "slurm": {"nodes": 2}}
    runs = spec(tmp_path, [0], [twin, {**twin, "name": "requeued"}], **REQUEUED)
    out = tmp_path / "study"
    thread, result = in_background(slurm.run_study_on_slurm, runs, data, out, settings=SETTINGS, warn=print)
    last = out / "runs" / "requeued-d1-f1-s0" / train.LAST
    wait_until(lambda: last.is_file() and train.read_checkpoint(last)["num_updates"] >= 8, 120, "8 updates")
    [job] = submitted(out, "requeued-d1-f1-s0")
    subprocess.run(["scontrol", "requeue", job], check=True)
    assert wait_until(lambda: not thread.is_alive() or None, 300, "the runs' end") is True
    assert result["value"] == []
    states = subprocess.run(["sacct", "-n", "-X", "-D", "-j", job, "-o", "state,nodelist%40"], capture_output=True,
                            text=True).stdout.split()
    assert "REQUEUED" in states and "n[1-2]" in states, states
    assert "resuming " in "".join(path.read_text() for path in (out / "slurm").glob(f"{job}_*_log.err"))
    ours, theirs = (train.read_checkpoint(out / "runs" / f"{arm}-d1-f1-s0" / train.LAST) for arm in ("requeued", "t2t"))
    assert ours["num_updates"] == theirs["num_updates"] > 8
    assert all((ours["state_dict"][k] == v).all() for k, v in theirs["state_dict"].items())
    rows = study.collect(runs, out).set_index("arm")[[column for column in SAME if column != "arm"]]
    pd.testing.assert_series_equal(rows.loc["requeued"], rows.loc["t2t"], check_names=False)
    assert (study.read_summary(last.parent, out)["world_size"]) == 2
