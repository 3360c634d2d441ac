"""Every file vitbench writes follows the umask: 0644 under 022, 0664 under a group folder's 002 (mkstemp alone
would leave 0600, so a cluster group could not read the results)."""
import os
import stat

import pytest

from bench.accuracy import train
from models.atomic import atomic_write_text, umask_mode
from tests.harness_helpers import tiny_config, tiny_synthetic


@pytest.fixture
def set_umask():
    before = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(before)


def modes(folder):
    return {p.relative_to(folder).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o002, 0o664)])
def test_atomic_write_gives_the_umask_mode(tmp_path, set_umask, mask, mode):
    set_umask(mask)
    assert umask_mode() == mode and umask_mode("dir") == mode | 0o111
    path = atomic_write_text(tmp_path / "a.txt", "x")
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert os.umask(mask) == mask  # reading the umask left it as it was


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o002, 0o664)])
def test_every_file_of_a_run_follows_the_umask(tmp_path, set_umask, mask, mode):
    data = tiny_synthetic(tmp_path / "data")
    set_umask(mask)
    out = tmp_path / "run"
    train.start(tiny_config(data, out, epochs=1), progress=False)
    written = modes(out)
    assert {"config.json", "last.pth", "best.pth", "summary.json", "metrics.csv"} <= set(written)
    assert set(written.values()) == {mode}, written
