"""Names are data: every name that becomes a path under --out (a study arm and its runs, a report's input
tags) is checked or made plain in one place (bench.names), and no name reaches a path outside --out."""
import shutil

import pytest
import tomli_w

from bench.accuracy import study
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
    assert "cannot name a folder" in error
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
