"""One precedence rule for every source of a setting (defaults < a config file < flags < KEY=VALUE), for every job:
a later source wins, a table (model_args) merges key by key, and a setting that cannot apply is refused."""
import itertools

import pytest
import tomli_w

from bench.cli import build_parser, profile_config
from bench.configs import EvalConfig, ProfileConfig, StudyConfig, SweepSpec, SyntheticConfig, TimingSetup, TrainConfig
from bench.settings import given_flags, specs
from models.errors import ConfigError
from tests.harness_helpers import cli_error

JOBS = (TrainConfig, EvalConfig, TimingSetup, ProfileConfig, SweepSpec, StudyConfig, SyntheticConfig)
TABLE_JOBS = [cls for cls in JOBS if any(spec.kind is dict for spec in specs(cls))]
SOURCES = ("file", "flags", "overrides")


def gather(cls, tmp_path, given):
    """`cls.gather` with `given` = {source: {key: value}}; overrides written as KEY=VALUE texts, tables dotted."""
    file = None
    if "file" in given:
        file = tmp_path / "c.toml"
        file.write_text(tomli_w.dumps(given["file"]))
    overrides = []
    for key, value in given.get("overrides", {}).items():
        if isinstance(value, dict):
            overrides += [f"{key}.{sub}={v}" for sub, v in value.items()]
        else:
            overrides.append(f"{key}={value}")
    return cls.gather(file, given.get("flags"), overrides)


@pytest.mark.parametrize("cls", JOBS)
@pytest.mark.parametrize("earlier, later", list(itertools.combinations(SOURCES, 2)))
def test_a_later_source_wins_for_every_job(cls, earlier, later, tmp_path):
    spec = next(s for s in specs(cls) if s.kind is int and s.meta["cli"] and s.meta["low"] is not None)
    low = spec.meta["low"]
    assert gather(cls, tmp_path, {earlier: {spec.name: low + 1}, later: {spec.name: low + 2}})[spec.name] == low + 2
    assert gather(cls, tmp_path, {earlier: {spec.name: low + 1}})[spec.name] == low + 1


@pytest.mark.parametrize("cls", TABLE_JOBS)
@pytest.mark.parametrize("earlier, later", list(itertools.combinations(SOURCES, 2)))
def test_a_table_merges_key_by_key_whatever_its_sources(cls, earlier, later, tmp_path):
    merged = gather(cls, tmp_path, {earlier: {"model_args": {"depth": 4, "embed_dim": 64}},
                                    later: {"model_args": {"embed_dim": 32}}})
    assert merged["model_args"] == {"depth": 4, "embed_dim": 32}


@pytest.mark.parametrize("command", ["train", "eval"])
def test_model_arg_flag_and_dotted_override_on_a_config_are_the_same(command, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(tomli_w.dumps({"model_args": {"depth": 4, "embed_dim": 64}}))
    cls = {"train": TrainConfig, "eval": EvalConfig}[command]
    by_flag = build_parser().parse_args([command, "--config", str(config), "--model-arg", "embed_dim=32"])
    by_key = build_parser().parse_args([command, "--config", str(config), "model_args.embed_dim=32"])
    results = [cls.gather(args.config, given_flags(args, cls), args.settings)["model_args"] for args in (by_flag,
                                                                                                         by_key)]
    assert results == [{"depth": 4, "embed_dim": 32}] * 2


def test_a_run_s_length_is_one_setting_in_three_forms(tmp_path):
    replaced = gather(TrainConfig, tmp_path, {"file": {"budget_pflop": 0.5}, "flags": {"epochs": 3}})
    assert replaced["epochs"] == 3 and "budget_pflop" not in replaced  # the later source's length replaces it
    assert gather(TrainConfig, tmp_path, {"file": {"epochs": 3}, "overrides": {"budget_minutes": 2}}) == {
        "budget_minutes": 2.0}
    saved = gather(TrainConfig, tmp_path, {"file": {"epochs": 310, "budget_pflop": 0.5}})  # a saved config.toml
    assert saved == {"budget_pflop": 0.5}
    for source in SOURCES:
        with pytest.raises(ConfigError, match="set both epochs and budget_pflop, but only one can apply"):
            gather(TrainConfig, tmp_path, {source: {"epochs": 3, "budget_pflop": 0.5}})
    with pytest.raises(ConfigError, match="epochs=3 cannot apply beside a budget"):
        TrainConfig(model="m", data="d", out="o", epochs=3, budget_pflop=0.5)


def test_settings_that_cannot_apply_are_refused_by_the_cli(tmp_path, capsys):
    error = cli_error(capsys, "train", "--model", "vit_lite_tiny", "--data", str(tmp_path / "d"), "--out",
                      str(tmp_path / "o"), "--epochs", "3", "--budget-pflop", "0.5")
    assert "set both epochs and budget_pflop" in error
    (tmp_path / "s.toml").write_text("fractions = [1.0]\n")
    assert "--preset and --config both name the study's spec" in cli_error(
        capsys, "study", "--preset", "cpu-tiny", "--config", str(tmp_path / "s.toml"), "--out", str(tmp_path / "o"))
    assert list(tmp_path.iterdir()) == [tmp_path / "s.toml"]


def test_profile_names_are_flags_and_a_file_s_names_hold_without_them(tmp_path):
    (tmp_path / "p.toml").write_text('models = ["vit_lite_tiny"]\nrepeats = 1\n')
    for argv, models in ((["profile", "--config", str(tmp_path / "p.toml")], ["vit_lite_tiny"]),
                         (["profile", "t2t_vit_7", "--config", str(tmp_path / "p.toml")], ["t2t_vit_7"])):
        assert profile_config(build_parser().parse_args(argv)).models == models
