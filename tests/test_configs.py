"""Every config-like input (job configs, a study spec and its arms, Slurm, synthetic data) is a Settings class, and
the sweep below is one table per mechanism: every field once, on the class that defines it (inherited fields once,
plus one test that each job inherits them), each class of bad value once, each declared bound exact, each cross-field
rule once; the command line sampled per job. Then: a saved run's config.toml starts a new run; --help needs no torch."""
import json
import math
import subprocess
import sys
import tomllib

import pytest

from bench.accuracy.tensor_augment import Augment
from bench.cli import main
from bench.configs import (
    STUDY_TRAIN_SETTINGS,
    ArmSpec,
    EvalConfig,
    ExportConfig,
    ProfileConfig,
    SlurmConfig,
    StudyConfig,
    StudySpecFile,
    SweepSpec,
    SyntheticConfig,
    TimingSetup,
    TrainConfig,
    VariantSpec,
)
from bench.settings import specs
from models.errors import ConfigError, UnknownOptionError
from tests.conftest import REPO
from tests.harness_helpers import tiny_config, tiny_synthetic

CONFIGS = (TrainConfig, EvalConfig, TimingSetup, ProfileConfig, SweepSpec, StudyConfig, SlurmConfig, SyntheticConfig,
           ExportConfig, StudySpecFile, ArmSpec, VariantSpec, Augment)
ARM = dict(name="vit", label="ViT", model="vit_lite_tiny", depths=[1])
REQUIRED = {  # valid values of the fields a config cannot do without
    TrainConfig: dict(model="vit_lite_tiny", data="data", out="out"), EvalConfig: dict(checkpoint="x.pth", data="data"),
    StudyConfig: dict(out="out"), SyntheticConfig: dict(out="out"), ExportConfig: dict(checkpoint="x.pth", out="o"),
    StudySpecFile: dict(fractions=[1.0], seeds=[0], arms=[ARM]), ArmSpec: ARM, VariantSpec: dict(depth=1)}


def own_fields(cls):
    """The fields `cls` declares itself (not those it inherits): each is tested once, here."""
    return [spec for spec in specs(cls) if spec.name in vars(cls).get("__annotations__", {})]


FIELDS = [(cls, spec) for cls in CONFIGS for spec in own_fields(cls)]


def bounds(spec):
    """(just beyond, at) each declared bound of a number or of a list's items: the first refused, the second
    allowed. An inclusive bound (low/high) is allowed and its next float or integer outward refused; an exclusive one
    (above/below) refused and its next one inward allowed."""
    kind, meta, pairs = spec.item or spec.kind, spec.meta, []
    step = (lambda x, d: x + d) if kind is int else (lambda x, d: math.nextafter(x, d * math.inf))
    for name, outward in (("low", -1), ("high", 1), ("above", -1), ("below", 1)):
        edge = meta[name]
        if edge is not None:
            edge = kind(edge)
            pairs.append((step(edge, outward), edge) if name in ("low", "high") else (edge, step(edge, -outward)))
    return pairs


def as_field(spec, value):
    return [value] * (spec.length or 1) if spec.kind in (list, tuple) else value


def bad_values(spec):
    """{class of bad value: value} the field must refuse, one of each class its kind has: the test's own list (a
    field declared too loosely fails here), then the value just beyond each declared bound."""
    kind, item, meta = spec.kind, spec.item, spec.meta
    wrong = {"a boolean": True, "a string": "abc", "a list": [1], "a table": {"a": 1}, "an integer": 3}
    if kind in (int, float):
        values = {k: wrong[k] for k in ("a boolean", "a string", "a list")}
        values |= {"not whole": 1.5, "huge": 10**30} if kind is int else {"not finite": math.nan, "huge": 10**400}
    elif kind is bool:
        values = {k: wrong[k] for k in ("an integer", "a string", "a list")}
    elif kind is str:
        values = {k: wrong[k] for k in ("an integer", "a boolean", "a list")}
        values |= ({} if meta["empty"] else {"empty": ""}) | ({"not a choice": "no-such-choice"} if meta["choices"]
                                                              else {})
    elif kind is dict:
        values = {k: wrong[k] for k in ("an integer", "a string", "a list")} | {"a key not a name": {"": 1}}
    else:
        values = {"not a list": 3, "a string": "abc", "an item of another kind": as_field(spec, {
            int: 1.5, float: math.nan, str: 0, dict: 1}[item])}
        values |= {} if meta["empty"] or kind is tuple else {"empty": []}
        values |= {"another length": [0.5] * (spec.length + 1)} if kind is tuple else {}
        values |= {"an item not a choice": ["no-such-choice"]} if meta["choices"] else {}
    if meta["check"]:  # a check of its own (the image size's, swept in tests/test_img_size.py): its two ends
        values |= {"zero": as_field(spec, 0), "beyond the check": as_field(spec, 10**6)}
    return values | {f"beyond {edge!r}": as_field(spec, out) for out, edge in bounds(spec)}


CASES = [(cls, spec, name, value) for cls, spec in FIELDS for name, value in bad_values(spec).items()]


def test_every_field_refuses_each_class_of_bad_value():
    """One line naming the config and the field, and what it allows, for every (field, class of bad value)."""
    missed = []
    for cls, spec, name, value in CASES:
        try:
            cls(**{**REQUIRED.get(cls, {}), spec.name: value})
            missed.append(f"{cls.__name__}.{spec.name} took {name} ({value!r})")
        except ConfigError as error:
            message = str(error)
            if "\n" in message or not message.startswith(f"{cls.JOB}: {spec.name}=") or "must be" not in message:
                missed.append(f"{cls.__name__}.{spec.name}, {name}: {message!r}")
    assert not missed and len(CASES) > 4 * len(FIELDS), "\n".join(missed)


def test_every_declared_bound_is_exact():
    """Each bound allows its edge (inclusive) or the next value inward (exclusive): a range checked one step too
    tight fails here, one too loose in the test above."""
    refused = []
    for cls, spec in FIELDS:
        for _, allowed in bounds(spec):
            try:
                cls(**{**REQUIRED.get(cls, {}), spec.name: as_field(spec, allowed)})
            except ConfigError as error:
                refused.append(f"{cls.__name__}.{spec.name}={allowed!r}: {error}")
    assert not refused, "\n".join(refused)


def test_every_numeric_field_has_a_finite_range():
    """Without an upper bound, a huge value would be accepted and allocate or loop for hours. A field with a `check`
    of its own (the image size's: tests/test_img_size.py) is bounded there."""
    loose = [f"{cls.__name__}.{spec.name}" for cls, spec in FIELDS
             if (spec.item or spec.kind) in (int, float) and not spec.meta["choices"] and not spec.meta["check"]
             and (spec.meta["high"] is None and spec.meta["below"] is None
                  or spec.meta["low"] is None and spec.meta["above"] is None)]
    assert not loose


def test_every_job_checks_the_fields_it_inherits():
    """A field inherited (the timing setup of profile and sweep) is the defining class's own spec, and a bad value of
    each is refused in the inheriting job's name."""
    inherited = [(cls, spec) for cls in CONFIGS for spec in specs(cls) if spec not in own_fields(cls)]
    assert {cls for cls, _ in inherited} == {ProfileConfig, SweepSpec}
    for cls, spec in inherited:
        base = next(base for base in cls.__mro__[1:] if spec in own_fields(base))
        name, value = next(iter(bad_values(spec).items()))
        with pytest.raises(ConfigError, match=f"^{cls.JOB}: {spec.name}="):
            cls(**{**REQUIRED.get(cls, {}), spec.name: value})
        assert base in CONFIGS, (cls, spec.name, name)


CROSS_FIELD = [  # (config, values, the error's words): each cross-field rule once
    (TrainConfig, dict(budget_pflop=1.0, budget_minutes=1.0), "give one budget"),
    (TrainConfig, dict(epochs=3, budget_pflop=1.0), "epochs=3 cannot apply beside a budget"),
    (TrainConfig, dict(checkpoint_every=5, checkpoint_minutes=1.0), "checkpoint_every and checkpoint_minutes both"),
    (TrainConfig, dict(holdout=10.5), "holdout=10.5 is neither a fraction"),
    (TrainConfig, dict(test=False), "test=false needs a holdout"),
    (TrainConfig, dict(classes=["a", "a"]), "at least 2 different class folders"),
    (TrainConfig, dict(train_fraction=0.5, train_per_class=2), "keep one cut"),
    (TrainConfig, dict(scale=(0.9, 0.5)), "scale=[0.9, 0.5] must run from low to high"),
    (TrainConfig, dict(init_cfg="vit_tiny_patch16_224.augreg_in21k"), "no --init is given"),
    (TrainConfig, dict(test_subset="a*", test=False, holdout=0.1), "test_subset scores part of the test split"),
    (EvalConfig, dict(test_subset="a/b*"), "test_subset='a/b*' is not a file-name glob"),
    (EvalConfig, dict(device="gpu"), "device='gpu' is not allowed; it must be cpu, cuda or cuda:N"),
    (TrainConfig, dict(model_args={"depth": 0}), "train: model_args: depth=0 is out of range"),
    (EvalConfig, dict(model="vit_lite_tiny", model_args={"qkv_bias": 2}), "eval: model_args: qkv_bias=2 must be"),
    (SweepSpec, dict(families=[]), "the sweep has nothing to measure"),
    (ArmSpec, dict(variants=[{"depth": 1}]), "needs exactly one of depths (transformers) or variants"),
    (ArmSpec, dict(depths=None, variants=[{"depth": 1}], match_macs="t2t"), "give it depths, not variants"),
]


@pytest.mark.parametrize("cls, values, words", CROSS_FIELD, ids=[words[:40] for _, _, words in CROSS_FIELD])
def test_each_cross_field_rule(cls, values, words):
    with pytest.raises(ConfigError) as error:
        cls(**{**REQUIRED.get(cls, {}), **values})
    assert words in str(error.value) and str(error.value).startswith(f"{cls.JOB}: ") and "\n" not in str(error.value)


def test_an_unknown_model_setting_keeps_its_kind():
    """timm's API raises a TypeError for an unknown keyword; our model_args check keeps UnknownOptionError's kind."""
    with pytest.raises(UnknownOptionError, match="train: model_args: unknown option"):
        TrainConfig(**REQUIRED[TrainConfig], model_args={"dpeth": 2})


COMMANDS = {  # each job's command line with the bad setting in place: KEY=VALUE (synthetic has flags only)
    TrainConfig: ["train", "--model", "vit_lite_tiny", "--data", "{tmp}/data", "--out", "{tmp}/out", "{setting}"],
    EvalConfig: ["eval", "--checkpoint", "{tmp}/x.pth", "--data", "{tmp}/data", "{setting}"],
    ProfileConfig: ["profile", "vit_lite_tiny", "{setting}"], SweepSpec: ["sweep", "--out", "{tmp}/out", "{setting}"],
    StudyConfig: ["study", "--out", "{tmp}/out", "--data", "{tmp}", "{setting}"],
    SyntheticConfig: ["synthetic", "--out", "{tmp}/o", "{setting}"],
    ExportConfig: ["export", "{tmp}/x.pth", "{setting}", "--out", "{tmp}/x.safetensors"]}


def cli_samples(cls):
    """One field of each kind the job has (int, float, bool, a string, a choice, a list, a tuple, a table) and its
    first bad value: the command line's path is shared code, so a sample per job shows each job takes it."""
    seen, samples = set(), []
    for spec in specs(cls):
        kind = (spec.kind, bool(spec.meta["choices"]))
        if kind not in seen and spec.meta["cli"] and spec.name not in ("out", "data", "checkpoint"):
            seen.add(kind)
            values = bad_values(spec)  # a string field takes any word as written (out=0 is the folder '0')
            samples.append((spec, values.get("not a choice", values.get("empty", next(iter(values.values()))))))
    return samples


CLI_CASES = [(cls, spec, value) for cls in COMMANDS for spec, value in cli_samples(cls)]
CLI_CASES += [(StudyConfig, spec, next(iter(bad_values(spec).values()))) for spec in specs(TrainConfig)
              if spec.name in STUDY_TRAIN_SETTINGS]  # the training settings a study's command line sets for every run


def cli_word(value):
    return json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else "nan"


@pytest.mark.parametrize("cls, spec, value", CLI_CASES, ids=[f"{c.JOB}.{s.name}" for c, s, _ in CLI_CASES])
def test_cli_refuses_a_bad_value_of_each_kind_per_job(cls, spec, value, tmp_path, capsys):
    text = cli_word(value)
    setting = f"{spec.flag}={text.strip(chr(34))}" if cls is SyntheticConfig else f"{spec.name}={text}"
    argv = [word.format(tmp=tmp_path, setting=setting) for word in COMMANDS[cls]]
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, (argv, err)
    assert len(err) == 1 and err[0].startswith(f"vitbench {argv[0]}: error: ") and f"{spec.name}=" in err[0], err
    assert not any(tmp_path.iterdir()), sorted(tmp_path.iterdir())


@pytest.mark.parametrize("spec, arm, words", [
    ("titel = 'x'\n", "", "study spec: unknown setting 'titel' in {spec} line 3; did you mean title?"),
    ("", "dephts = [2]\n", "study arm 'vit': arm: unknown setting 'dephts' in the arm; did you mean depths?"),
    ("", "[arms.overrides]\nnum_heads = 3\n", "study arm 'vit' (depth 1): num_heads=3 does not divide"),
    ("", "[arms.overrides]\nembed_dim = 0\n", "train: model_args: embed_dim=0 is out of range"),
], ids=["spec key", "arm key", "arm model", "arm model setting"])
def test_a_study_spec_is_checked_whole_through_the_cli(spec, arm, words, tmp_path, capsys):
    path = tmp_path / "spec.toml"
    path.write_text(f"fractions = [1.0]\nseeds = [0]\n{spec}[[arms]]\nname = 'vit'\nlabel = 'ViT'\n"
                    f"model = 'vit_lite_tiny'\ndepths = [1]\n{arm}")
    assert main(["study", "--config", str(path), "--data", str(tmp_path / "data"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words.format(spec=path) in err[0] and not (tmp_path / "out").exists(), err


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
        TrainConfig(**REQUIRED[TrainConfig], **TrainConfig.gather(None, {}, ["device=0"]))
    with pytest.raises(ConfigError, match="amp='true' is not allowed"):
        TrainConfig.gather(None, {}, ["amp=true"])
    with pytest.raises(ConfigError, match="out=2024 is not allowed"):  # the typed Python API takes no number
        TrainConfig(**{**REQUIRED[TrainConfig], "out": 2024})


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
    assert second == {**recorded, "seed": 1}  # paths relative to each run folder: out is ".", data "../data"


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


@pytest.mark.parametrize("table, words", [
    ("nodes = 0", "nodes=0 is not allowed"), ("gpus = 'two'", "gpus"), ("mem_gb = -1.0", "mem_gb"),
    ("nodse = 2", "did you mean nodes?")], ids=["range", "type", "above", "unknown key"])
def test_an_arms_slurm_table_is_checked_as_the_studys(table, words, tmp_path, capsys):
    """An arm's own Slurm resources ([arms.slurm]) go through SlurmConfig, whose every field the sweep above covers:
    refused when the spec is read, through the API and the CLI (whichever the launcher), in one line naming the arm
    and the setting; nothing written."""
    from bench.accuracy.study import load_study_spec

    path = tmp_path / "spec" / "spec.toml"
    path.parent.mkdir()
    path.write_text("fractions = [1.0]\nseeds = [0]\n[[arms]]\nname = 'vit'\nlabel = 'ViT'\nmodel = 'vit_lite_tiny'\n"
                    f"depths = [1]\n[arms.slurm]\n{table}\n")
    with pytest.raises(ConfigError) as error:
        load_study_spec(config=path)
    message = str(error.value)
    assert "\n" not in message and "study arm 'vit'" in message and words in message, message
    assert main(["study", "--config", str(path), "--data", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0] == f"vitbench study: error: {message}", err
    assert sorted(tmp_path.iterdir()) == [path.parent]
