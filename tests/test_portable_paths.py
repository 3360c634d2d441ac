"""Records name no machine path: every path-valued setting (declared `setting(..., path=True)`) is written relative to
the record's own folder and read back against it, so a run re-runs and resumes from any directory and after its
tree moves; older records (absolute or cwd-relative paths) still read."""
import json
import os
import shutil
import tomllib
from pathlib import Path

from bench.accuracy import train
from bench.cli import main
from bench.configs import TrainConfig
from bench.settings import located_path, path_fields
from tests.harness_helpers import tiny_config, tiny_synthetic


def strings(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
    elif isinstance(value, str):
        yield value


def machine_paths(tree):
    """(file, value) of every string that starts with '/' in every JSON and TOML file under `tree`."""
    found = []
    for path in sorted(Path(tree).rglob("*")):
        if path.suffix == ".json":
            value = json.loads(path.read_text())
        elif path.suffix == ".toml":
            value = tomllib.loads(path.read_text())
        else:
            continue
        found += [(str(path), text) for text in strings(value) if text.startswith("/")]
    return found


def run_paths(run):
    """A run's recorded paths, resolved against its folder: {field: absolute path}."""
    saved = json.loads((Path(run) / train.CONFIG_FILE).read_text())
    return {key: os.path.realpath(Path(run) / saved[key]) for key in path_fields(TrainConfig) if saved.get(key)}


def test_every_path_setting_is_recorded_relative_and_resumes_from_anywhere(tmp_path, monkeypatch, capsys):
    tree = tmp_path / "tree"
    tiny_synthetic(tree / "data")
    (tree / "a").mkdir()
    (tree / "b").mkdir()
    monkeypatch.chdir(tree / "a")  # directory A: every path typed relative to it
    train.start(tiny_config("../data", "../runs/base", epochs=1), progress=False)
    config = tiny_config("../data", "../runs/ft", epochs=1, init="../runs/base/last.pth")
    given = {key for key in path_fields(TrainConfig) if getattr(config, key)}
    assert given == set(path_fields(TrainConfig)), "give the new path setting a value here"
    train.start(config, progress=False)
    expected = {"data": tree / "data", "out": tree / "runs/ft", "init": tree / "runs/base/last.pth"}
    assert run_paths(tree / "runs/ft") == {key: os.path.realpath(expected[key]) for key in given}
    summary = json.loads((tree / "runs/ft" / train.SUMMARY).read_text())
    assert summary["init"]["checkpoint"] == "../base/last.pth" and summary["data"] == "../../data"
    assert machine_paths(tree) == []

    monkeypatch.chdir(tree / "b")  # directory B: resume, and re-run from the saved config.toml
    assert main(["train", "--resume", "--out", "../runs/ft"]) == 0
    assert main(["train", "--config", "../runs/ft/config.toml", "--out", "../runs/again"]) == 0
    again = os.path.realpath(tree / "runs/again")
    assert run_paths(tree / "runs/again") == {**run_paths(tree / "runs/ft"), "out": again}
    assert machine_paths(tree) == []

    moved = tmp_path / "elsewhere" / "moved"  # the whole tree moved: its records still hold
    moved.parent.mkdir()
    shutil.move(tree, moved)
    monkeypatch.chdir(tmp_path)
    for run in ("ft", "again"):
        assert main(["train", "--resume", "--out", f"elsewhere/moved/runs/{run}"]) == 0
        assert run_paths(moved / "runs" / run)["data"] == os.path.realpath(moved / "data")
    assert machine_paths(moved) == []
    capsys.readouterr()


def test_old_records_still_read(tmp_path, monkeypatch):
    """A record's relative path means relative to its folder, unless only the old (cwd-relative) meaning exists."""
    (tmp_path / "run").mkdir()
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    assert located_path("/abs/data", "run") == "/abs/data"
    assert located_path("data", "run") == str(tmp_path / "data")  # an old record, typed from tmp_path
    (tmp_path / "run" / "data").mkdir()
    assert located_path("data", "run") == str(tmp_path / "run" / "data")  # the record's own meaning first
    assert located_path("missing", "run") == str(tmp_path / "run" / "missing")
