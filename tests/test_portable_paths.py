"""Records name no machine path: every path-valued setting (declared `setting(..., path=True)`) is written relative to
the record's own folder and read back against it, so a run re-runs and resumes from any directory and after its
tree moves; older records (absolute or cwd-relative paths) still read."""
import json
import os
import shutil
import tomllib
from pathlib import Path

import tomli_w

from bench.accuracy import study, train
from bench.cli import main
from bench.configs import TrainConfig
from bench.settings import located_path, path_fields
from tests.harness_helpers import tiny_config, tiny_synthetic


def write_toml(path, table):
    Path(path).write_text(tomli_w.dumps(table))
    return path


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
    (tree / "evals").mkdir()
    assert main(["eval", "--checkpoint", "../runs/ft/best.pth", "--data", "../data", "--out", "../evals/ft.json",
                 "--workers", "0", "--threads", "1"]) == 0
    scored = json.loads((tree / "evals" / "ft.json").read_text())  # from the file's folder
    assert (scored["checkpoint"], scored["data"]) == ("../runs/ft/best.pth", "../data")
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


def test_a_study_started_with_relative_paths_resumes_from_anywhere_and_records_no_machine_path(tmp_path, monkeypatch,
                                                                                              capsys):
    tree = tmp_path / "tree"
    data = tiny_synthetic(tree / "data", classes=2, train_per_class=4, val_per_class=2)
    (tree / "a").mkdir()
    (tree / "b").mkdir()
    monkeypatch.chdir(tree / "a")
    train.start(tiny_config("../data", "../pretrain", model="vb_vit_tiny_patch16_224", epochs=1), progress=False)
    overrides = {"embed_dim": 32, "num_heads": 2, "mlp_ratio": 2.0, "patch_size": 4}
    spec = {"fractions": [1.0], "seeds": [0], "train": {
        "epochs": 1, "batch_size": 4, "img_size": 32, "lr": 1e-3, "warmup_epochs": 0, "workers": 0, "threads": 1,
        "mixup": 0.0, "cutmix": 0.0, "auto_augment": "", "data_mode": "files"},
        "arms": [{"name": "vit", "label": "ViT", "model": "vb_vit_tiny_patch16_224", "depths": [1],
                  "overrides": overrides, "init": "../pretrain/last.pth"}]}
    loaded = study.load_study_spec(config=write_toml(tree / "a" / "spec.toml", spec))
    study.run_study(loaded, "../data", "../study")
    recorded = json.loads((tree / "study" / study.STUDY_FILE).read_text())["spec"]
    assert recorded["data"] == "../data" and recorded["variants"][0]["init"] == "../pretrain/last.pth"
    run = tree / "study" / "runs" / "vit-d1-f1-s0"
    assert run_paths(run)["data"] == os.path.realpath(data)
    assert run_paths(run)["init"] == os.path.realpath(tree / "pretrain" / "last.pth")
    assert machine_paths(tree) == []

    monkeypatch.chdir(tree / "b")  # resumed, reported and checked from another directory
    assert main(["study", "--resume", "--out", "../study"]) == 0
    assert main(["study", "--config", "../study/spec.toml", "--data", "../data", "--out", "../again"]) == 0
    assert json.loads((tree / "again" / study.STUDY_FILE).read_text())["spec"]["variants"][0]["init"] == (
        "../pretrain/last.pth")  # OUT/spec.toml's init, relative to OUT, re-runs the study from anywhere
    moved = tmp_path / "elsewhere" / "moved"
    moved.parent.mkdir()
    shutil.move(tree, moved)
    monkeypatch.chdir(tmp_path)  # and after the whole tree moved
    assert main(["study", "--resume", "--out", "elsewhere/moved/study"]) == 0
    spec_after, data_after = study.recorded_spec(moved / "study")
    assert data_after == os.path.realpath(moved / "data")
    assert spec_after.variants[0].init == os.path.realpath(moved / "pretrain" / "last.pth")
    assert machine_paths(moved) == []
    capsys.readouterr()


def snapshot(tree):
    return {path: path.read_bytes() for path in sorted(Path(tree).rglob("*")) if path.is_file()}


def other_images(data, tmp_path):
    """Copies of `data` that differ in one way each: what a resumed run must refuse as another dataset."""
    def renamed(root):  # one training image under another name
        first = sorted((root / "train").rglob("*.png"))[0]
        first.rename(first.with_name("renamed.png"))

    def relabelled(root):  # one test image in another class's folder
        folders = sorted(p for p in (root / "val").iterdir())
        first = sorted(folders[0].iterdir())[0]
        first.rename(folders[1] / first.name)

    def one_more(root):  # an extra training image
        first = sorted((root / "train").rglob("*.png"))[0]
        shutil.copy(first, first.with_name("extra.png"))

    for change in (renamed, relabelled, one_more):
        root = tmp_path / change.__name__
        shutil.copytree(data, root)
        change(root)
        yield change.__name__, root


def test_a_run_copied_away_from_its_data_resumes_with_data_and_only_on_the_same_images(tmp_path, capsys):
    data = tiny_synthetic(tmp_path / "data")
    train.start(tiny_config(data, tmp_path / "run", model="vb_vit_tiny_patch16_224", holdout=3), progress=False)
    copy = tmp_path / "elsewhere" / "run"
    shutil.copytree(tmp_path / "run", copy)
    before = snapshot(copy)
    assert main(["train", "--resume", "--out", str(copy)]) == 2  # its data, relative to the run, is not there
    assert "resume with --data DIR where its images now lie" in capsys.readouterr().err
    for name, other in other_images(data, tmp_path):
        assert main(["train", "--resume", "--out", str(copy), "--data", str(other)]) == 2, name
        error = capsys.readouterr().err
        assert "was trained on other images than" in error and len(error.strip().splitlines()) == 1, name
        assert snapshot(copy) == before, name  # nothing written
    assert main(["train", "--resume", "--out", str(copy), "--data", str(data)]) == 0
    assert run_paths(copy)["data"] == os.path.realpath(data)  # now recorded where the images lie
    assert main(["train", "--resume", "--out", str(copy)]) == 0
    capsys.readouterr()


def test_a_study_copied_away_from_its_data_resumes_with_data_and_only_on_the_same_images(tmp_path, capsys):
    data = tiny_synthetic(tmp_path / "data", classes=2, train_per_class=4, val_per_class=2)
    spec = {"fractions": [1.0], "seeds": [0], "train": {
        "epochs": 1, "batch_size": 4, "img_size": 32, "lr": 1e-3, "warmup_epochs": 0, "workers": 0, "threads": 1,
        "mixup": 0.0, "cutmix": 0.0, "auto_augment": "", "data_mode": "files"},
        "arms": [{"name": "vit", "label": "ViT", "model": "vb_vit_tiny_patch16_224", "depths": [1],
                  "overrides": {"embed_dim": 32, "num_heads": 2, "mlp_ratio": 2.0, "patch_size": 4}}]}
    study.run_study(study.load_study_spec(config=write_toml(tmp_path / "spec.toml", spec)), data, tmp_path / "study")
    copy = tmp_path / "elsewhere" / "study"
    shutil.copytree(tmp_path / "study", copy)
    before = snapshot(copy)
    assert main(["study", "--resume", "--out", str(copy)]) == 2
    assert "resume with --data DIR where its images now lie" in capsys.readouterr().err
    for name, other in other_images(data, tmp_path):
        assert main(["study", "--resume", "--out", str(copy), "--data", str(other)]) == 2, name
        assert "holds other images than the study" in capsys.readouterr().err, name
        assert snapshot(copy) == before, name
    assert main(["study", "--resume", "--out", str(copy), "--data", str(data)]) == 0
    assert study.recorded_spec(copy)[1] == os.path.realpath(data)
    run = copy / "runs" / "vit-d1-f1-s0"  # every run of it, finished or not, now recorded where its images lie
    assert run_paths(run)["data"] == os.path.realpath(data)
    assert os.path.realpath(run / json.loads((run / train.SUMMARY).read_text())["data"]) == os.path.realpath(data)
    assert main(["study", "--out", str(copy), "--report-only"]) == 0  # no data needed to report
    capsys.readouterr()


def test_old_records_are_rewritten_portable_once_and_read_back_the_same(tmp_path, monkeypatch, capsys):
    """bench.records turns records written with machine paths (absolute, or relative to where the job ran) into
    today's: each path value relative to its file's folder, nothing else in the file changed."""
    from bench import records

    tree = tmp_path / "repo"
    data = tiny_synthetic(tree / "data", classes=2, train_per_class=4, val_per_class=2)
    monkeypatch.chdir(tree)  # the old run was typed from the repository root
    run = tree / "results" / "run"
    train.start(tiny_config("data", "results/run", model="vb_vit_tiny_patch16_224", epochs=1), progress=False)
    old = {"config.json": json.dumps({"model": "m", "data": str(data), "out": "/elsewhere/results/run", "init": ""},
                                     indent=1) + "\n",
           "config.toml": f'data = "{data}"\ninit = "results/run/last.pth"\nseed = 0\n',
           "summary.json": json.dumps({"data": "data", "init": {"checkpoint": f"{tree}/results/run/last.pth"}})}
    for name, text in old.items():
        (run / name).write_text(text)
    (tree / "results" / "gone").mkdir()
    (tree / "results" / "gone" / "summary.json").write_text('{"data": "/nowhere/scratch"}')
    assert records.main(["results"]) == 0
    assert "left /nowhere/scratch in results/gone/summary.json" in capsys.readouterr().err
    assert (run / "config.json").read_text() == old["config.json"].replace(str(data), "../../data").replace(
        "/elsewhere/results/run", ".")  # a run's out is its own folder, wherever it ran
    assert (run / "config.toml").read_text() == 'data = "../../data"\ninit = "last.pth"\nseed = 0\n'
    assert json.loads((run / "summary.json").read_text()) == {"data": "../../data",
                                                             "init": {"checkpoint": "last.pth"}}
    assert machine_paths(run) == [] and run_paths(run)["data"] == os.path.realpath(data)
    after = snapshot(tree)
    assert records.main(["results"]) == 0 and snapshot(tree) == after  # once: the second pass changes nothing
    assert records.main(["missing"]) == 2 and "is not a folder" in capsys.readouterr().err


SCRATCH = ("/tmp/vb/", "/tmp/tmp.6C8ieePVaZ/")  # data generated in a scratch folder of the machine that ran it


def test_committed_records_name_no_machine_path():
    """Every path a committed record holds is relative to it, except data that lived in another machine's scratch
    folder (recreated by the command in the results' README); caches and free text are not paths of a record."""
    from bench import records

    results = Path(__file__).parent.parent / "results"
    found = [(str(path), match["path"]) for name in records.RECORDS for path in results.rglob(name)
             for pattern in (records.JSON_PATH, records.TOML_PATH) for match in pattern.finditer(path.read_text())
             if os.path.isabs(match["path"]) and not match["path"].startswith(SCRATCH)]
    assert found == []
