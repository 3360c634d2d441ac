"""Names are data: every name that becomes a path under --out (a study arm and its runs, a report's input
tags) is checked or made plain in one place (bench.names), and no name reaches a path outside --out."""
import json
import os
import shutil

import pytest
import tomli_w

from bench.accuracy import study
from bench.cli import main as study_main
from bench.names import SAFE, path_name, path_tag
from bench.report.build import build_report, unique_tags
from models.errors import ConfigError
from tests.conftest import REPO
from tests.harness_helpers import TINY_VIT, cli_error

HOSTILE = ["../../../escaped", "a/b", "..", ".", "", ".hidden", "a\\b", "c:x", "a b", "x" * 101, "-rf", "a\nb",
           "<script>alert(1)</script>", "/abs", "é"]


def spec_with(*arms, **arm_fields):
    return {"fractions": [1.0], "seeds": [0], "train": {"epochs": 1, "img_size": 32},
            "arms": [{"name": name, "label": "L", "model": "vb_vit_tiny_patch16_224", "overrides": TINY_VIT,
                      "depths": [1], **arm_fields} for name in arms]}


@pytest.mark.parametrize("name", HOSTILE)
def test_path_name_refuses_every_name_that_is_not_one_plain_component(name):
    with pytest.raises(ConfigError, match="cannot name a folder"):
        path_name(name, "study arm")
    tag = path_tag(name)
    assert SAFE.fullmatch(tag) and "/" not in tag and tag not in (".", "..")


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_study_arm_is_refused_by_the_cli_before_anything_is_written(tmp_path, capsys, name):
    (tmp_path / "spec.toml").write_text(tomli_w.dumps(spec_with(name)))
    error = cli_error(capsys, "study", "--config", str(tmp_path / "spec.toml"), "--data", str(tmp_path / "data"),
                      "--out", str(tmp_path / "deep" / "er" / "out"))
    assert "cannot name a folder" in error or name == "" and "name='' is not allowed" in error  # the spec's check
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["spec.toml"]
    assert not (tmp_path.parent / "escaped").exists()


@pytest.mark.parametrize("depth", ["../x", "1/2"])
def test_a_depth_that_is_not_a_number_cannot_make_a_path_either(depth):
    with pytest.raises(ConfigError, match="cannot name a folder"):
        study.run_names(study.Spec([study.Variant("vit", "L", "m", depth, {})], [1.0], [0], {}))


@pytest.mark.parametrize("name", ["../escaped", "a/b"])
def test_run_study_itself_refuses_a_hostile_spec_built_in_code(tmp_path, name):
    spec = study.Spec([study.Variant(name, "L", "vb_vit_tiny_patch16_224", 1, dict(TINY_VIT))], [1.0], [0], {})
    with pytest.raises(ConfigError, match="cannot name a folder"):
        study.run_study(spec, tmp_path / "data", tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("arms, variants", [(["vit", "vit"], None), (["vit"], [{"depth": 1}, {"depth": 1}])])
def test_every_run_of_a_study_has_its_own_folder_before_anything_trains(tmp_path, capsys, arms, variants):
    spec = spec_with(*arms)
    if variants:
        for arm in spec["arms"]:
            del arm["depths"]
            arm["variants"] = variants
    (tmp_path / "spec.toml").write_text(tomli_w.dumps(spec))
    error = cli_error(capsys, "study", "--config", str(tmp_path / "spec.toml"), "--data", str(tmp_path / "data"),
                      "--out", str(tmp_path / "out"))
    assert "names run 'vit-d1-f1-s0' twice" in error and not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match="twice"):  # fractions equal to the 6 digits of a folder name
        study.run_names(study.Spec([study.Variant("vit", "L", "m", 1, {})], [0.1, 0.1000001], [0], {}))


def test_the_presets_name_their_runs_plainly_and_once():
    for preset in study.preset_names():
        names = study.run_names(study.load_study_spec(preset))
        assert all(SAFE.fullmatch(name) for name in names) and len(set(names)) == len(names)


@pytest.mark.parametrize("name", ["../../escaped", "imagenette/../../x", "random-3/.."])
def test_subset_and_preset_names_are_chosen_from_lists_never_joined_to_a_path(tmp_path, capsys, name):
    assert "unknown subset" in cli_error(capsys, "subset", name, "--root", str(tmp_path / "r"), "--out",
                                         str(tmp_path / "o"))
    assert "unknown study preset" in cli_error(capsys, "study", "--preset", name, "--data", str(tmp_path / "d"),
                                               "--out", str(tmp_path / "o"))
    assert list(tmp_path.iterdir()) == []


def test_report_file_names_from_hostile_input_names_stay_plain_and_inside_out(tmp_path):
    names = ["..x", "<img src=x onerror=alert(1)>", "a b", "-x", ".hidden"]
    inputs = []
    for name in names:
        folder = tmp_path / "in" / name
        shutil.copytree(REPO / "results" / "sweep-image-size", folder)
        inputs.append(folder)
    tags = unique_tags(inputs)
    assert len(set(tags)) == len(tags) and all(SAFE.fullmatch(tag) for tag in tags)
    assert unique_tags([tmp_path / "x", tmp_path / "y" / "x", tmp_path / "x-2"]) == ["x", "x-2", "x-2-2"]
    out = tmp_path / "report"
    build_report(inputs[:2], out)  # two are enough end to end: one with a dot, one with markup and a space
    assert all(SAFE.fullmatch(path.name) for path in out.iterdir() if not path.name.startswith(".vitbench"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "report"]


@pytest.fixture
def committed_study(tmp_path):
    """A copy of a committed study (results/ is part of the repository): 20 finished runs, their records intact, no
    MAC-matched arm (whose width --resume would count on the data, not in this repository)."""
    return shutil.copytree(REPO / "results" / "study-cifar10-multiplier", tmp_path / "study")


@pytest.mark.parametrize("key, value", [("model", "vit_lite_small"), ("model_args", {"depth": 9}), ("lr", 0.5),
                                        ("data", "/elsewhere/cifar10"), ("holdout", 0.5), ("seed", 7),
                                        ("train_fraction", 0.5), ("init", "/some/ckpt.pth")])
@pytest.mark.parametrize("command", ["--report-only", "--resume"])
def test_a_study_refuses_a_run_folder_whose_record_is_another_run(committed_study, capsys, key, value, command):
    run = sorted((committed_study / "runs").iterdir())[4]
    record = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**record, key: value}))
    before = {path: path.stat().st_mtime_ns for path in committed_study.rglob("*")}
    error = cli_error(capsys, "study", "--out", str(committed_study), command)
    assert f"{run} holds another run than the study's {run.name} (its config.json differs in {key})" in error
    assert {path: path.stat().st_mtime_ns for path in committed_study.rglob("*")} == before  # nothing written


def test_what_does_not_change_a_run_may_differ_from_its_record(committed_study):
    run = sorted((committed_study / "runs").iterdir())[0]
    record = json.loads((run / "config.json").read_text())
    relative = os.path.relpath(record["data"]) if os.path.isabs(record["data"]) else record["data"]
    (run / "config.json").write_text(json.dumps({**record, "out": "/moved", "threads": 7, "workers": 5,
                                                 "strict": True, "data": relative}))
    study.check_run_records(*study.recorded_spec(committed_study), committed_study)


HOSTILE_LABELS = ["<script>alert(1)</script> ViT",
                  "<img src=x onerror=alert(1)> [a](javascript:alert(1)) | \\input{x} `"]


def test_hostile_labels_and_folder_names_are_text_in_every_format_written(tmp_path, capsys):
    """Through both writers of Markdown (a study's report.md and table.md; the report's index.md and tables), the
    HTML page and the LaTeX tables: a label or folder name is escaped, never markup."""
    folder = shutil.copytree(REPO / "results" / "study-cifar10-multiplier", tmp_path / "<b onmouseover=alert(1)>s")
    record = json.loads((folder / "study.json").read_text())
    for variant, label in zip(record["spec"]["variants"], HOSTILE_LABELS):
        variant["label"] = label
    (folder / "study.json").write_text(json.dumps(record))
    assert study_main(["study", "--out", str(folder), "--report-only"]) == 0
    build_report([folder], tmp_path / "report")
    written = [folder / "report.md", folder / "table.md", *(tmp_path / "report").glob("*.md")]
    for path in written:
        text = path.read_text()
        assert "<script" not in text and "<img" not in text and "<b " not in text, path
        assert "](javascript" not in text, path
    assert "&lt;script&gt;alert(1)&lt;/script&gt; ViT" in (folder / "report.md").read_text()
    for path in [*(tmp_path / "report").glob("*.md"), folder / "table.md"]:  # a cell's | is no cell boundary
        for block in path.read_text().split("\n\n"):
            rows = [line for line in block.splitlines() if line.startswith("|")]
            assert len({line.replace("\\|", "").count("|") for line in rows}) <= 1, (path, block)
    page = (tmp_path / "report" / "index.html").read_text()
    assert "<script>alert" not in page and "<img src=x" not in page and "&lt;script&gt;alert(1)" in page
    tex = "".join(path.read_text() for path in (tmp_path / "report").glob("study_*.tex"))
    assert "\\textbackslash input\\{x\\}" in tex and "\\input{" not in tex
