"""Children never outlive their parent, whatever the signal; SIGTERM unwinds like Ctrl-C; partial files of a
killed writer are reclaimed. Real processes and real signals."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tomli_w

from bench.accuracy.data import scan_split
from bench.accuracy.decoded_cache import decoded_split
from models.atomic import atomic_write, atomic_write_text, is_alive, remove_stale_temporaries
from tests.conftest import CIFAR10_SAMPLE, REPO
from tests.harness_helpers import TINY_T2T, tiny_synthetic

POOL_SCRIPT = """
import time
from bench.processes import worker_pool
with worker_pool(2) as pool:
    print("ready", flush=True)
    pool.map(time.sleep, [120, 120])
"""

# Tasks that do not let the SystemExit of the pool's SIGTERM end them: each would leave the terminating parent
# waiting for its worker forever (the parent holds the task queue's lock; the worker's next `get` waits for it).
STUBBORN_TASKS = {
    "replaces it with an error": "raise FileNotFoundError('a cleanup found its file gone')",
    "swallows it and returns": "return",
    "swallows it and keeps working": "time.sleep(120)",
}
STUBBORN_SCRIPT = """
import time
from bench.processes import worker_pool

def task(seconds):
    try:
        time.sleep(seconds)
    except SystemExit:
        {reaction}

if __name__ == "__main__":
    with worker_pool(2) as pool:
        print("ready", flush=True)
        for _ in pool.imap_unordered(task, [120, 120, 120]):  # the third waits in the queue
            pass
"""


def children(pid):
    """Pids whose parent is `pid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def running(pid):
    """Alive and not a zombie (a zombie has finished; only its exit status waits to be collected)."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_until(condition, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def environment():
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


pytestmark = [pytest.mark.slow, pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc (Linux)")]


def assert_pool_ends(args, signum, exit_within, gone_within):
    """Run a pool script (`args` after the interpreter; it prints "ready" as its workers start their tasks), send its
    parent `signum` with the workers inside their tasks: the parent must end on it in `exit_within` seconds, every
    child of it `gone_within` seconds later (the spawn context's resource tracker, a child too, leaves a moment after
    its parent). Generous bounds: a loaded machine may schedule the parent late."""
    parent = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=environment(), preexec_fn=default_sigint)
    try:
        assert parent.stdout.readline().strip() == "ready"
        assert wait_until(lambda: len(children(parent.pid)) >= 2, 30), "the pool's workers never started"
        time.sleep(2)  # the workers have run their initializer and are inside their task
        workers = children(parent.pid)
        os.kill(parent.pid, signum)
        # exit status 0 is a parent that never saw the signal and finished its tasks (SIGINT ignored, as a background
        # job inherits it), its workers with it
        assert parent.wait(timeout=exit_within) != 0, f"signal {signum} never reached the parent"
        assert wait_until(lambda: not any(running(pid) for pid in workers), gone_within), \
            f"{[pid for pid in workers if running(pid)]} outlived their parent after signal {signum}"
    finally:
        parent.kill()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_pool_workers_die_with_their_parent_whatever_the_signal(signum):
    assert_pool_ends(["-c", POOL_SCRIPT], signum, exit_within=120, gone_within=60)


@pytest.mark.parametrize("reaction", STUBBORN_TASKS, ids=list(STUBBORN_TASKS))
def test_a_terminated_pool_ends_whatever_its_tasks_do_with_the_termination(tmp_path, reaction):
    script = tmp_path / "stubborn.py"  # a file: spawned workers import the task from the main module
    script.write_text(STUBBORN_SCRIPT.format(reaction=STUBBORN_TASKS[reaction]))
    # the workers are gone UNWIND_SECONDS (5) after the pool's terminate
    assert_pool_ends([str(script)], signal.SIGTERM, exit_within=60, gone_within=30)


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_study_with_jobs_stops_every_run_at_once_and_leaves_no_lock_or_partial_file(tmp_path, signum, code):
    data = tiny_synthetic(tmp_path / "data", classes=3, train_per_class=16, val_per_class=2)
    spec = {"fractions": [1.0], "seeds": [0, 1, 2], "train": {
        "epochs": 500, "batch_size": 4, "img_size": 32, "lr": 1e-3, "warmup_epochs": 0, "workers": 0,
        "threads": 1, "mixup": 0.0, "cutmix": 0.0, "auto_augment": "", "crop_pct": 1.0, "holdout": 3},
        "arms": [{"name": "t2t-performer", "label": "T2T", "model": "t2t_vit_7",
                  "overrides": {k: v for k, v in TINY_T2T.items() if k != "depth"}, "depths": [1]}]}
    (tmp_path / "spec.toml").write_text(tomli_w.dumps(spec))
    out = tmp_path / "study"
    log = tmp_path / "study.log"  # a file, not a pipe: an unread pipe fills with epoch lines and blocks the study
    with log.open("w") as sink:
        parent = subprocess.Popen([sys.executable, "-m", "bench.cli", "study", "--config", str(tmp_path / "spec.toml"),
                                   "--data", str(data), "--out", str(out), "--jobs", "2"],
                                  stdout=sink, stderr=subprocess.STDOUT, text=True, env=environment(),
                                  preexec_fn=default_sigint)
    try:
        started = lambda: len(list(out.glob("runs/*/last.pth"))) >= 2  # both runs finished an epoch
        assert wait_until(started, 120), log.read_text()[-3000:] if parent.poll() is not None else "no run started"
        workers = children(parent.pid)
        os.kill(parent.pid, signum)
        assert parent.wait(timeout=120) == code  # within seconds on a quiet machine; generous for a loaded one
        assert wait_until(lambda: not any(running(pid) for pid in workers), 60)
        assert len(list(out.glob("runs/*/summary.json"))) == 0  # the queued third run never started either
        assert not list(out.rglob("*.tmp")) and not list(out.rglob(".vitbench.lock"))
    finally:
        parent.kill()


def default_sigint():
    """A job started in the background (`cmd &` in a script, as CI may start pytest) inherits SIGINT ignored, and
    Python keeps it so; every process a test sends SIGINT must see Ctrl-C as a terminal's foreground job does."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


ATOMIC_STEPS = ["fchmod", "write", "fsync", "replace", "after replace"]


@pytest.mark.parametrize("step", ATOMIC_STEPS)
def test_an_interrupted_atomic_write_leaves_the_old_file_or_the_new_and_stays_an_interrupt(tmp_path, monkeypatch, step):
    """At every step of the write, Ctrl-C (or a terminated pool's SystemExit) leaves a whole file and no temporary
    one, and reaches the caller as itself: a cleanup error in its place would hide it (see the pool test above)."""
    target = tmp_path / "summary.json"
    target.write_text("old")

    def interrupted(real):
        def call(*args):
            if step == "after replace":
                real(*args)
            raise KeyboardInterrupt(step)
        return call

    def write(f):
        if step == "write":
            raise KeyboardInterrupt(step)
        f.write("new")

    if step != "write":
        name = "replace" if step == "after replace" else step
        monkeypatch.setattr(os, name, interrupted(getattr(os, name)))
    with pytest.raises(KeyboardInterrupt, match=step):
        atomic_write(target, write, mode="w")
    monkeypatch.undo()
    assert target.read_text() == ("new" if step == "after replace" else "old")
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def dead_pid():
    pid = 4_000_000
    while is_alive(pid):
        pid -= 1
    return pid


def test_partial_files_of_dead_writers_are_reclaimed_and_live_ones_kept(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    stale = cache / f".cifar10-sample-train-32px-x.pt.{dead_pid()}.k3j2.tmp"
    live = cache / f".cifar10-sample-train-32px-y.pt.{os.getpid()}.a8f1.tmp"
    stale.write_bytes(b"half a cache")
    live.write_bytes(b"being written")
    warnings = []
    decoded_split(scan_split(CIFAR10_SAMPLE, "val"), 32, cache_dir=cache, workers=1, warn=warnings.append)
    assert not stale.exists() and live.exists() and any("partial cache file" in w for w in warnings)
    atomic_write_text(tmp_path / "x.json", "{}")  # a finished write leaves no temporary file
    assert remove_stale_temporaries(tmp_path) == [] and [p.name for p in tmp_path.iterdir() if p.is_file()] == [
        "x.json"]


def decode_in_a_worker(root):
    from bench.accuracy.decoded_cache import decode_images

    paths = sorted(str(p) for p in Path(root).rglob("*.png"))[:6]
    images, bad = decode_images(paths, 16, workers=2)
    return tuple(images.shape), len(bad)


def test_a_pool_worker_decodes_without_a_pool_of_its_own(tmp_path):
    """A study's runs are pool workers (daemonic: no children); a split they decode first is decoded in-process."""
    from bench.processes import worker_pool

    data = tiny_synthetic(tmp_path / "data")
    with worker_pool(1) as pool:
        assert pool.apply(decode_in_a_worker, (str(data),)) == ((6, 3, 16, 16), 0)


def test_a_parallel_study_decodes_each_class_subset_its_runs_read_before_they_start(tmp_path, monkeypatch):
    from bench.accuracy import study
    from bench.accuracy.train import TrainConfig

    data = tiny_synthetic(tmp_path / "data", classes=4)
    decoded = []
    monkeypatch.setattr(study, "decoded_split", lambda split, size: decoded.append((tuple(split.classes), size)))
    names = sorted(p.name for p in (data / "train").iterdir())
    subsets = [names[:2], names[:2], None]
    configs = [TrainConfig(model="vit_lite_tiny", data=str(data), out=str(tmp_path / f"r{i}"), img_size=32, seed=i,
                           classes=classes, data_mode="memory") for i, classes in enumerate(subsets)]
    study.decode_once(configs)
    assert decoded == [(tuple(names[:2]), 32)] * 2 + [(tuple(names), 32)] * 2  # train and val, once per subset
