"""One typed config per job: every field of every job refuses bad values (NaN, inf, 0, negative, huge, the wrong
type, empty) with one line naming the field and what it allows, through the Python API and through the CLI, and
writes nothing; a saved run's config.toml starts a new run; --help needs no torch."""
import json
import subprocess
import sys
import tomllib

import pytest

from bench.cli import main
from bench.configs import (
    STUDY_TRAIN_SETTINGS,
    EvalConfig,
    ProfileConfig,
    StudyConfig,
    SweepSpec,
    SyntheticConfig,
    TimingSetup,
    TrainConfig,
)
from bench.settings import parse_override, specs
from models.errors import ConfigError
from tests.conftest import REPO
from tests.harness_helpers import tiny_config, tiny_synthetic

JOBS = (TrainConfig, EvalConfig, TimingSetup, ProfileConfig, SweepSpec, StudyConfig, SyntheticConfig)


def required(cls, tmp_path):
    """Valid values for the fields a job cannot do without."""
    return {TrainConfig: dict(model="vit_lite_tiny", data=str(tmp_path / "data"), out=str(tmp_path / "out")),
            EvalConfig: dict(checkpoint=str(tmp_path / "x.pth"), data=str(tmp_path / "data")),
            StudyConfig: dict(out=str(tmp_path / "out")), SyntheticConfig: dict(out=str(tmp_path / "out"))
            }.get(cls, {})


def bad_values(spec):
    """KEY=VALUE texts (read as TOML, as the CLI reads them) that the field must refuse, from its declared kind and
    range: the test's own list, so a field declared too loosely fails here."""
    kind, item, meta = spec.kind, spec.item, spec.meta
    numbers = ["nan", "inf", "-inf", "1e300", str(10**400), "true", '"abc"', "[1]"]
    if kind in (int, float):
        values = numbers + (["1.5", str(10**30)] if kind is int else [])
        low = meta["low"] if meta["low"] is not None else meta["above"]
        if low is not None and low >= 0:
            values.append("-1")
        if low is not None and (meta["above"] is not None or low > 0):
            values.append("0")
        return values
    if kind is bool:
        return ["2", '"abc"', "nan", "[1]"]
    if kind is str:
        return ["0", "[1]", "nan", "true"] + ([] if meta["empty"] else ['""']) + (
            ['"no-such-choice"'] if meta["choices"] else [])
    if kind is dict:
        return ["3", '"abc"', "[1]"]
    element = {int: "1e300", float: "nan", str: "0"}[item]
    values = ["3", "nan", f"[{element}]", '"abc"' if kind is list else "[1]"]
    if kind is list and not meta["empty"]:
        values.append("[]")
    if kind is tuple:
        values.append(f"[{', '.join(['0.5'] * (spec.length + 1))}]")
    if item in (int, float):
        values.append("[1e300]")
    return values


CASES = [(cls, spec, text) for cls in JOBS for spec in specs(cls) for text in bad_values(spec)]


def test_every_numeric_field_has_a_finite_range():
    """Without an upper bound, a huge value would be accepted and allocate or loop for hours. A field with a `check`
    of its own (the image size's: tests/test_img_size.py) is bounded there."""
    loose = [f"{cls.__name__}.{spec.name}" for cls in JOBS for spec in specs(cls)
             if (spec.item or spec.kind) in (int, float) and not spec.meta["choices"] and not spec.meta["check"]
             and (spec.meta["high"] is None and spec.meta["below"] is None
                  or spec.meta["low"] is None and spec.meta["above"] is None)]
    assert not loose


@pytest.mark.parametrize("cls, spec, text", CASES, ids=[f"{c.__name__}.{s.name}={t}" for c, s, t in CASES])
def test_python_api_refuses_bad_values(cls, spec, text, tmp_path):
    value = parse_override(f"{spec.name}={text}")[1]
    with pytest.raises(ConfigError) as error:
        cls(**{**required(cls, tmp_path), spec.name: value})
    message = str(error.value)
    assert "\n" not in message and f"{spec.name}" in message and "must" in message, message
    assert not any(tmp_path.iterdir())


def cli_call(cls, spec, text, tmp_path):
    """The job's command line with the bad value given as KEY=VALUE (or as a flag where the job has no overrides)."""
    out = str(tmp_path / "out")
    base = {TrainConfig: ["train", "--model", "vit_lite_tiny", "--data", str(tmp_path / "data"), "--out", out],
            EvalConfig: ["eval", "--checkpoint", str(tmp_path / "x.pth"), "--data", str(tmp_path / "data")],
            TimingSetup: ["profile", "vit_lite_tiny"], ProfileConfig: ["profile", "vit_lite_tiny"],
            SweepSpec: ["sweep", "--out", out], StudyConfig: ["study", "--out", out, "--data", str(tmp_path)],
            SyntheticConfig: ["synthetic", "--out", out]}[cls]
    if cls is SyntheticConfig:
        return base + [f"{spec.flag}={text.strip(chr(34))}"]  # --classes=-inf: not read as a flag
    return base + [f"{spec.name}={text}"]


def is_a_word(spec, text):
    """A KEY=VALUE word a string field takes as written, as its flag does (`out=0` is the folder '0'): bad for the
    typed Python API only."""
    return spec.kind is str and not spec.meta["choices"] and text in ("0", "nan", "true")


CLI_CASES = [(cls, spec, text) for cls, spec, text in CASES[::2]  # every field, half its values: the API has all
             if cls is not TimingSetup and not is_a_word(spec, text)
             and not (cls is SyntheticConfig and (spec.name == "out" or text.startswith("[")))]
CLI_CASES += [(TrainConfig, spec, text) for spec in specs(TrainConfig) if spec.name in STUDY_TRAIN_SETTINGS
              for text in bad_values(spec)[:3]]


@pytest.mark.parametrize("cls, spec, text", CLI_CASES, ids=[f"{c.JOB}.{s.name}={t}" for c, s, t in CLI_CASES])
def test_cli_refuses_bad_values(cls, spec, text, tmp_path, capsys):
    argv = cli_call(cls, spec, text, tmp_path)
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, (argv, err)
    assert len(err) == 1 and err[0].startswith(f"vitbench {argv[0]}: error: ") and spec.name in err[0], err
    assert "Traceback" not in err[0]
    assert not any(tmp_path.iterdir()), sorted(tmp_path.iterdir())


def test_study_train_settings_are_checked_through_the_cli(tmp_path, capsys):
    assert main(["study", "--out", str(tmp_path / "s"), "--data", str(tmp_path), "--batch-size", "0"]) == 2
    err = capsys.readouterr().err
    assert "batch_size=0" in err and ">= 1" in err and not (tmp_path / "s").exists()


def test_unknown_keys_name_the_closest_setting(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "r"), "bach_size=4"]) == 2
    assert "unknown setting 'bach_size'" in capsys.readouterr().err
    (tmp_path / "c.toml").write_text("lr = 0.1\nwarmpu_epochs = 2\n")
    with pytest.raises(ConfigError, match="unknown setting 'warmpu_epochs' .*did you mean warmup_epochs"):
        TrainConfig.gather(tmp_path / "c.toml")


def test_overrides_are_read_as_the_fields_kind(tmp_path):
    """KEY=VALUE as the flag: a string field takes the word as written; numbers stay numbers, bad values stay bad."""
    for job, flags in ((TrainConfig, ["--out", "2024", "--labels", "nan", "--model", "1"]),
                       (StudyConfig, ["--out", "2024"])):
        words = [f"{flag[2:]}={value}" for flag, value in zip(flags[::2], flags[1::2])]
        assert job.gather(None, {}, words) == {flag[2:]: value for flag, value in zip(flags[::2], flags[1::2])}
    assert TrainConfig.gather(None, {}, ["seed=1", "auto_augment=", "classes=[\"1\", \"2\"]"]) == {
        "seed": 1, "auto_augment": "", "classes": ["1", "2"]}
    with pytest.raises(ConfigError, match="seed='one' is not allowed"):
        TrainConfig.gather(None, {}, ["seed=one"])
    with pytest.raises(ConfigError, match="device='0' is not allowed"):
        TrainConfig(**required(TrainConfig, tmp_path), **TrainConfig.gather(None, {}, ["device=0"]))
    with pytest.raises(ConfigError, match="amp='true' is not allowed"):
        TrainConfig.gather(None, {}, ["amp=true"])
    with pytest.raises(ConfigError, match="out=2024 is not allowed"):  # the typed Python API takes no number
        TrainConfig(**{**required(TrainConfig, tmp_path), "out": 2024})


def test_sources_apply_in_order(tmp_path):
    (tmp_path / "c.toml").write_text('lr = 0.1\nseed = 3\nclasses = ["a", "b"]\n[model_args]\ndepth = 2\n')
    given = TrainConfig.gather(tmp_path / "c.toml", {"seed": 4}, ["lr=0.2", "model_args.embed_dim=32"])
    assert given == {"lr": 0.2, "seed": 4, "classes": ["a", "b"], "model_args": {"depth": 2, "embed_dim": 32}}


def test_toml_round_trip_of_every_job():
    for cls, values in ((TrainConfig, dict(model="m", data="d", out="o", lr=0.1, scale=(0.5, 1.0),
                                           classes=["a", "b"], model_args={"depth": 2, "qkv_bias": False})),
                        (SweepSpec, dict(depth=[2, 4], families=[], models=["t2t_vit_7"], batch_size=4)),
                        (StudyConfig, dict(out="o", seeds=[0, 1], fractions=[0.5, 1.0]))):
        config = cls(**values)
        assert cls(**tomllib.loads(config.to_toml())) == config



def test_a_holdout_count_stays_a_count_and_a_fraction_a_fraction():
    for given in (5000, 5000.0):  # TOML and the CLI may give a count either way; it is recorded as a count
        config = TrainConfig(model="m", data="d", out="o", holdout=given)
        assert type(config.holdout) is int and "holdout = 5000\n" in config.to_toml()
    assert TrainConfig(model="m", data="d", out="o", holdout=0.1).holdout == 0.1

def test_a_saved_config_starts_a_new_run(tmp_path, capsys):
    data = tiny_synthetic(tmp_path / "data")
    first = tiny_config(data, tmp_path / "a", model="vb_vit_tiny_patch16_224", epochs=1)
    config_file = tmp_path / "first.toml"
    config_file.write_text(first.to_toml(skip=("out",)))
    assert main(["train", "--config", str(config_file), "--out", str(tmp_path / "a")]) == 0
    saved = tmp_path / "a" / "config.toml"
    assert "out" not in tomllib.loads(saved.read_text())
    assert main(["train", "--config", str(saved), "--out", str(tmp_path / "b"), "seed=1"]) == 0
    second = json.loads((tmp_path / "b" / "config.json").read_text())
    recorded = json.loads((tmp_path / "a" / "config.json").read_text())
    assert second == {**recorded, "seed": 1, "out": str(tmp_path / "b")}


def test_help_imports_no_torch():
    """By module list, not time: --help of every command builds its parser without torch, timm or pandas."""
    heavy = ("torch", "timm", "pandas", "fvcore", "matplotlib", "numpy")
    code = (f"import sys\nfrom bench.cli import build_parser\nbuild_parser()\n"
            f"print([m for m in {heavy} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    for command in ("train", "eval", "study", "sweep", "profile", "synthetic"):
        run = subprocess.run([sys.executable, "-m", "bench.cli", command, "--help"], cwd=REPO, capture_output=True,
                             text=True)
        assert run.returncode == 0 and "usage" in run.stdout


def test_a_flag_has_no_default_of_its_own():
    """Defaults live on the config: a flag left off is absent, so a file's value is never overridden by it."""
    from bench.cli import build_parser

    args = build_parser().parse_args(["train", "--out", "x"])
    assert {k for k in vars(args) if k in TrainConfig.field_names()} == {"out"}


def test_the_docs_study_specs_load(tmp_path):
    """Every TOML example in the README and docs/ is a study spec the suite reads as it is printed."""
    import re

    from bench.accuracy.study import load_study_spec

    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    blocks = [block for page in pages for block in re.findall(r"```toml\n(.*?)```", page.read_text(), re.S)]
    assert len(blocks) >= 2
    for i, block in enumerate(blocks):
        (tmp_path / f"{i}.toml").write_text(block)
        spec = load_study_spec(config=tmp_path / f"{i}.toml")
        assert spec.variants and spec.seeds == tomllib.loads(block)["seeds"]


def test_every_preset_loads():
    from bench.accuracy.study import load_study_spec, preset_names

    assert {"cpu-tiny", "cifar10-cpu", "cifar10-multiplier", "imagenette", "imagewoof"} <= set(preset_names())
    for name in preset_names():
        assert load_study_spec(name).variants


def test_studies_and_sweeps_save_a_config_that_starts_them_again(tmp_path, monkeypatch):
    from bench.accuracy import study
    from bench.cost.sweep import SweepRun

    spec = SweepSpec(families=["vit"], depth=[1], num_heads=[2], embed_dim=[32], patch_size=[8], img_size=[32],
                     measure=["params"], batch_size=2)
    SweepRun(tmp_path / "sweep", spec)
    assert SweepSpec.from_sources(tmp_path / "sweep" / "spec.toml") == spec
    data = tiny_synthetic(tmp_path / "data")
    monkeypatch.setattr(study, "train_run", lambda config, warn: {})  # the record, not the runs
    monkeypatch.setattr(study, "finished", lambda run: True)
    first = study.load_study_spec("cpu-tiny", seeds=[4], arms=["vit"], train={"epochs": 1})
    study.run_study(first, data, tmp_path / "study")
    again = study.load_study_spec(config=tmp_path / "study" / "spec.toml")
    assert again == first and again.seeds == [4] and {v.arm for v in again.variants} == {"vit"}
