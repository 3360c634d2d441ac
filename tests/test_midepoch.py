"""Mid-epoch checkpoints: a run stopped inside an epoch (SIGUSR1, or killed after a `checkpoint_every` save) and
resumed ends bit-identical to one never stopped, in files mode (loader workers) and memory mode."""
import os
import signal

import pandas as pd
import pytest
import torch

from bench.accuracy import train
from bench.accuracy.optimisation import Optimisation
from bench.accuracy.preempt import Preempted
from tests.harness_helpers import tiny_config, tiny_synthetic

WALL = ("train_images_per_s", "train_time_s", "epoch_time_s", "elapsed_s", "peak_mem_mb")  # timings differ
MODES = [dict(data_mode="files", workers=2), dict(data_mode="memory", workers=0)]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_synthetic(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="module")
def uninterrupted(data, tmp_path_factory):
    """mode name -> run folder of the run never stopped (3 epochs of 3 updates)."""
    root = tmp_path_factory.mktemp("whole")
    for mode in MODES:
        train.start(tiny_config(data, root / mode["data_mode"], epochs=3, **mode), progress=False)
    return root


def stop_at(monkeypatch, update, how):
    """Make the run stop right after update `update`: SIGUSR1 to itself, or an interrupt (a killed job)."""
    original = Optimisation.update

    def update_then_stop(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        if self.num_updates == update:
            if how == "signal":
                os.kill(os.getpid(), signal.SIGUSR1)
            else:
                raise KeyboardInterrupt
        return result

    monkeypatch.setattr(Optimisation, "update", update_then_stop)


def assert_same_run(out, reference):
    ours, theirs = train.read_checkpoint(out / "last.pth"), train.read_checkpoint(reference / "last.pth")
    for key, value in theirs["state_dict"].items():
        assert torch.equal(ours["state_dict"][key], value), key
    for key in ("optimizer", "num_updates"):
        assert str(ours[key]) == str(theirs[key]), key
    metrics = [pd.read_csv(folder / "metrics.csv").drop(columns=list(WALL)) for folder in (out, reference)]
    pd.testing.assert_frame_equal(*metrics, check_exact=True)
    summaries = [pd.read_json(folder / "summary.json", typ="series") for folder in (out, reference)]
    for key in ("top1", "test_top1", "val_loss", "test_loss", "updates", "images_seen", "confusion", "best"):
        assert summaries[0][key] == summaries[1][key], key


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m["data_mode"])
def test_sigusr1_saves_mid_epoch_and_the_resumed_run_is_bit_identical(data, uninterrupted, tmp_path, monkeypatch,
                                                                      mode):
    out = tmp_path / "run"
    stop_at(monkeypatch, 4, "signal")  # epoch 2, its first of 3 updates
    with pytest.raises(Preempted, match="saved a checkpoint at update 4 \\(epoch 2\\)"):
        train.start(tiny_config(data, out, epochs=3, **mode), progress=False)
    saved = train.read_checkpoint(out / "last.pth")
    assert saved["num_updates"] == 4 and saved["epoch"] == 1 and saved["partial"]["batches"] == 1
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL  # the run's handler is gone with the run
    monkeypatch.undo()
    train.resume(out, progress=False)
    assert_same_run(out, uninterrupted / mode["data_mode"])


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m["data_mode"])
def test_killed_after_a_periodic_checkpoint_resumes_bit_identical(data, uninterrupted, tmp_path, monkeypatch, mode):
    out = tmp_path / "run"
    stop_at(monkeypatch, 6, "kill")  # the checkpoint of update 5 (epoch 2, second update) is the latest
    with pytest.raises(KeyboardInterrupt):
        train.start(tiny_config(data, out, epochs=3, checkpoint_every=5, **mode), progress=False)
    saved = train.read_checkpoint(out / "last.pth")
    assert saved["num_updates"] == 5 and saved["partial"]["batches"] == 2
    monkeypatch.undo()
    train.resume(out, progress=False)
    assert_same_run(out, uninterrupted / mode["data_mode"])


def test_checkpoint_every_and_minutes_are_one_choice(data, tmp_path):
    with pytest.raises(Exception, match="checkpoint_every and checkpoint_minutes both set"):
        tiny_config(data, tmp_path, checkpoint_every=2, checkpoint_minutes=1.0)
