"""The data-efficiency study: spec loading, a tiny end-to-end study, resume, aggregation."""
import json
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
import tomli_w
from PIL import Image

from bench.accuracy import study
from bench.cli import main
from bench.errors import ResultsError
from bench.report.study import aggregate, markdown_table, pivot_table
from models.errors import ConfigError
from tests.conftest import REPO
from tests.harness_helpers import TINY_RESNET, TINY_T2T, cli_error, tiny_synthetic

VIT = study.ArmRoles("vit")  # a study whose baseline is its arm "vit", without a MAC-matched arm

TINY_SPEC = {
    "fractions": [0.5, 1.0],
    "seeds": [0, 1],
    "train": {
        "epochs": 1,
        "batch_size": 4,
        "img_size": 32,
        "lr": 1e-3,
        "warmup_epochs": 0,
        "workers": 0,
        "threads": 1,
        "mixup": 0.0,
        "cutmix": 0.0,
        "auto_augment": "",
        "crop_pct": 1.0,
        "holdout": 3,  # one validation image per class
    },
    "arms": [
        {
            "name": "t2t-performer",
            "label": "T2T-ViT",
            "model": "t2t_vit_7",
            "overrides": {k: v for k, v in TINY_T2T.items() if k != "depth"},
            "depths": [1],
        },
        {
            "name": "cnn",
            "label": "ResNet",
            "model": "resnet18",
            "overrides": {k: v for k, v in TINY_RESNET.items() if k != "layers"},
            "variants": [{"depth": 10, "overrides": {"layers": [1, 1, 1, 1]}}],
        },
    ],
}


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    data = tiny_synthetic(root / "data", classes=3, train_per_class=4, val_per_class=2)
    (root / "spec.toml").write_text(tomli_w.dumps(TINY_SPEC))
    assert main(["study", "--config", str(root / "spec.toml"), "--data", str(data), "--out", str(root / "out")]) == 0
    return root, data


def test_study_writes_results_table_curves_and_report(finished_study):
    root, _ = finished_study
    out = root / "out"
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 8 and set(results["arm"]) == {"t2t-performer", "cnn"}
    cnn_images = sorted(results.loc[results["arm"] == "cnn", "train_images"].unique())
    assert cnn_images == [6, 9]  # half and all of 3 classes x (4 images - 1 held out)
    assert (results["macs"] > 0).all() and (results["params"] > 0).all()
    table = pd.read_csv(out / "table.csv")
    assert len(table) == 4 and (table["seeds"] == 2).all()
    for _, row in table.iterrows():
        runs = results[(results["arm"] == row["arm"]) & (results["fraction"] == row["fraction"])]
        assert row["test_top1_mean"] == pytest.approx(runs["test_top1"].mean())
        assert row["test_top1_std"] == pytest.approx(runs["test_top1"].std(), nan_ok=True)
    for name in ("top1_vs_fraction.png", "top1_vs_macs.png", "top1_vs_throughput.png", "top1_vs_pflop.png"):
        with Image.open(out / name) as image:
            assert image.size[0] > 300
    report = (out / "report.md").read_text()
    assert "T2T-ViT d1" in report and "ResNet d10" in report and "8 of 8 runs finished" in report
    provenance = json.loads((out / "study.json").read_text())["provenance"]
    assert {"date", "device", "versions", "command", "git_commit"} <= set(provenance)


def test_params_and_macs_come_from_each_run_and_older_runs_are_counted_the_same(finished_study, tmp_path):
    root, _ = finished_study
    spec = study.load_study_spec(config=root / "spec.toml")
    recorded = study.collect(spec, root / "out")
    old = tmp_path / "old"
    shutil.copytree(root / "out", old)
    for summary_path in (old / "runs").glob("*/summary.json"):  # runs from before summaries held their costs
        summary = json.loads(summary_path.read_text())
        del summary["params"], summary["forward_macs"]
        summary_path.write_text(json.dumps(summary))
    counted = study.collect(spec, old)
    columns = ["arm", "depth", "embed_dim", "fraction", "seed", "params", "macs"]
    pd.testing.assert_frame_equal(recorded[columns], counted[columns])
    assert recorded["macs"].nunique() == 2  # one architecture per arm, whatever the fraction and seed


def test_study_resumes_only_unfinished_runs(finished_study, capsys):
    root, data = finished_study
    out = root / "out"
    spec = study.load_study_spec(config=root / "spec.toml")
    kept = out / "runs" / "cnn-d10-f1-s1" / "summary.json"
    before = kept.stat().st_mtime_ns
    redo = out / "runs" / "t2t-performer-d1-f0.5-s0"
    (redo / "summary.json").unlink()
    study.run_study(spec, data, out, resume=True, warn=print)
    printed = capsys.readouterr().out
    assert "[1/8] t2t-performer-d1-f0.5-s0" in printed and printed.count("test top-1") == 1
    assert kept.stat().st_mtime_ns == before and (redo / "summary.json").is_file()

    with pytest.raises(ResultsError, match="already holds a study; pass --resume to finish it or --overwrite"):
        study.run_study(spec, data, out)
    other = study.load_study_spec(config=root / "spec.toml", seeds=[5])
    with pytest.raises(ConfigError, match="holds a study with other settings"):
        study.run_study(other, data, out, resume=True)
    with pytest.raises(ResultsError, match="holds no study to resume"):
        study.run_study(spec, data, root / "fresh", resume=True)


def test_report_only_rebuilds_from_finished_runs(finished_study, capsys):
    root, _ = finished_study
    (root / "out" / "table.md").unlink()
    assert main(["study", "--config", str(root / "spec.toml"), "--out", str(root / "out"), "--report-only"]) == 0
    assert (root / "out" / "table.md").is_file() and "T2T-ViT d1" in capsys.readouterr().out


def test_a_study_folder_s_own_record_drives_report_only_and_resume(finished_study, capsys, tmp_path):
    root, data = finished_study
    out = root / "out"
    before = pd.read_csv(out / "results.csv")
    assert main(["study", "--out", str(out), "--report-only"]) == 0  # no --config: the record, not cpu-tiny
    after = pd.read_csv(out / "results.csv")
    assert after[["arm", "model", "macs", "params"]].equals(before[["arm", "model", "macs", "params"]])
    assert "other seeds than given by --seeds;" in cli_error(capsys, "study", "--out", str(out), "--report-only",
                                                        "--seeds", "5")
    other = cli_error(capsys, "study", "--out", str(out), "--report-only", "--preset", "cifar10-cpu")
    assert "other fractions, seeds, train, variants than given by --preset" in other
    # --data re-points the study at its images (tests/test_portable_paths.py): a folder of none is refused
    assert "a dataset folder needs train/" in cli_error(capsys, "study", "--out", str(out), "--resume", "--data",
                                                        str(tmp_path))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "study.json").write_text('{"spec": {"fractions": [1.0]')
    assert "study.json is unreadable" in cli_error(capsys, "study", "--out", str(broken), "--report-only")


def test_repeated_seeds_and_fractions_name_one_run_once():
    spec = study.load_study_spec("cifar10-cpu", seeds=[0, 0, 1], fractions=[1, 1.0])
    assert spec.seeds == [0, 1] and spec.fractions == [1.0] and len(spec.runs()) == 2 * len(spec.variants)


def test_presets_expand_to_every_arm_and_depth():
    spec = study.load_study_spec("cpu-tiny")
    assert [(v.arm, v.depth) for v in spec.variants] == [
        ("vit", 2),
        ("vit", 4),
        ("t2t-performer", 2),
        ("t2t-performer", 4),
        ("t2t-transformer", 2),
        ("t2t-transformer", 4),
        ("cnn", 10),
        ("cnn", 18),
    ]
    assert len(spec.runs()) == 8 * 3 * 3 and spec.runs()[0][2] == 0 and spec.runs()[-1][2] == 2
    vit, t2t = spec.variants[0], spec.variants[2]
    assert vit.overrides["embed_dim"] == t2t.overrides["embed_dim"] and vit.overrides["depth"] == 2
    imagenet = study.load_study_spec("imagenet-subset", arms=["cnn"])
    assert [v.model for v in imagenet.variants] == ["resnet18", "resnet50"]


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"preset": "cifar"}, "unknown study preset 'cifar'"),
        ({"arms": ["vit", "mlp"]}, "unknown study arm(s) ['mlp']"),
        ({"fractions": [0.5, 2.0]}, "study spec: fractions=[0.5, 2.0] is not allowed; it must be a non-empty list"),
        ({"train": {"epoch": 3}}, "include unknown or per-run keys"),
        ({"train": {"seed": 3}}, "include unknown or per-run keys"),
    ],
)
def test_bad_specs_fail_with_one_line(kwargs, expected):
    with pytest.raises(ConfigError) as info:
        study.load_study_spec(**kwargs)
    assert expected in str(info.value)


ONE_RUN = ('fractions = [1.0]\nseeds = [0]\n[train]\nepochs = 1\nworkers = 0\nthreads = 1\nwarmup_epochs = 0\n{train}\n'
           '[[arms]]\nname = "vit"\nlabel = "ViT"\nmodel = "vit_lite_tiny"\ndepths = [1]\n[arms.train]\n{arm}\n')
FINE = "batch_size = 8"


@pytest.mark.parametrize("train, arm, expected", [
    ("batch_size = 0", "", "the study spec's [train] table: train: batch_size=0 is not allowed"),
    (f"{FINE}\nimg_size = [32]", "", "train: img_size=[32] is not allowed"),
    (FINE, "reprob = 2", "study arm 'vit''s [arms.train] table: train: reprob=2 is not allowed"),
    (FINE, "checkpoint_every = 5\ncheckpoint_minutes = 1.0",
     "study arm 'vit' (depth 1, fraction 1, seed 0): train: checkpoint_every and checkpoint_minutes both set"),
], ids=["train value", "train size", "arm value", "arm cross-field rule"])
def test_a_bad_spec_is_refused_before_anything_is_written_and_the_fixed_one_then_runs(train, arm, expected, tmp_path,
                                                                                     capsys):
    data, out, spec = tiny_synthetic(tmp_path / "data"), tmp_path / "study", tmp_path / "spec.toml"
    spec.write_text(ONE_RUN.format(train=train, arm=arm))
    line = cli_error(capsys, "study", "--config", str(spec), "--data", str(data), "--out", str(out))
    assert expected in line and not out.exists()  # no study.json, no spec.toml: nothing to refuse a re-run
    spec.write_text(ONE_RUN.format(train=FINE, arm=""))
    assert main(["study", "--config", str(spec), "--data", str(data), "--out", str(out)]) == 0
    assert (out / "study.json").is_file() and (out / "runs" / "vit-d1-f1-s0" / "summary.json").is_file()


def test_bad_arms_and_files(tmp_path):
    with pytest.raises(ConfigError, match="needs exactly one of depths"):
        study.expand_arm({"name": "x", "label": "X", "model": "t2t_vit_7"})
    with pytest.raises(ConfigError, match="study arm 'x': arm: label must be set"):
        study.expand_arm({"name": "x", "model": "t2t_vit_7", "depths": [1]})
    (tmp_path / "spec.toml").write_text("{not toml")
    with pytest.raises(ConfigError, match="spec.toml is not a TOML file"):
        study.load_study_spec(config=tmp_path / "spec.toml")


def test_study_cli_errors(tmp_path, capsys):
    assert "--data is required" in cli_error(capsys, "study", "--out", str(tmp_path / "s"))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.md").write_text("x")
    assert "not a vitbench study folder" in cli_error(
        capsys, "study", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "mine")
    )
    assert "has no finished runs" in cli_error(capsys, "study", "--out", str(tmp_path / "empty"), "--report-only")


def test_aggregate_reports_mean_spread_and_single_seed_nan():
    rows = [
        {
            "arm": "vit",
            "label": "ViT",
            "model": "m",
            "depth": 2,
            "fraction": 1.0,
            "seed": s,
            "train_images": 10,
            "classes": 10,
            "params": 5,
            "macs": 7,
            "top1": t,  # a study from before the holdout: its test score was called top1
            "top5": 90.0,
            "train_images_per_s": 100.0,
        }
        for s, t in ((0, 40.0), (1, 50.0))
    ]
    rows.append({**rows[0], "arm": "cnn", "label": "CNN", "top1": 70.0})
    table = aggregate(pd.DataFrame(rows), VIT)
    assert table["arm"].tolist() == ["vit", "cnn"]
    vit = table.iloc[0]
    assert vit["test_top1_mean"] == 45.0 and vit["test_top1_std"] == pytest.approx(7.0711, abs=1e-4)
    assert vit["seeds"] == 2 and vit["test_top1_ci_high"] - 45.0 == pytest.approx(12.706205 * 5.0)  # t(.975, 1)
    assert pd.isna(table.iloc[1]["test_top1_std"])
    assert "45.0 ± 7.1" in markdown_table(table) and "70.0" in pivot_table(table)


def test_paired_differences_and_sentences_follow_the_interval_rule():
    from bench.report.study import comparison_sentences

    rows = [{"arm": arm, "label": label, "model": "m", "depth": 4, "fraction": 1.0, "seed": seed,
             "test_top1": base + gain + noise}
            for seed, (base, noise) in enumerate(((50.0, 0.1), (53.0, -0.2), (48.0, 0.1)))
            for arm, label, gain in (("vit", "ViT", 0.0), ("t2t-performer", "T2T", 2.0), ("cnn", "CNN", 0.5))]
    for row in rows:  # the CNN's gain flips sign with the seed: no difference is detectable
        if row["arm"] == "cnn":
            row["test_top1"] += (-1.5, 2.0, -1.0)[row["seed"]]
    table = aggregate(pd.DataFrame(rows).assign(train_images=10, classes=10, params=5, macs=7,
                                                train_images_per_s=1.0), VIT)
    t2t = table[table["arm"] == "t2t-performer"].iloc[0]
    assert t2t["vs_baseline"] == pytest.approx(2.0) and t2t["paired_seeds"] == 3  # the seeds' noise cancels when paired
    assert t2t["test_top1_ci_high"] - t2t["test_top1_ci_low"] > 5  # while the unpaired interval is wide
    sentences = comparison_sentences(pd.DataFrame(rows), VIT)
    assert "T2T is ahead of ViT by 2.0 points" in sentences[0]
    assert "No difference between CNN and ViT is detectable at this budget" in sentences[1]


ROLES_SPEC = """fractions = [1.0]
seeds = [0]
{baseline}
[train]
epochs = 1
batch_size = 8
workers = 0
threads = 1

[[arms]]
name = "mine"
label = "ViT, MAC-matched"
model = "vit_lite_tiny"
depths = [1]
match_macs = "t2t"

[[arms]]
name = "vit-s"
label = "ViT-S"
model = "vit_lite_tiny"
depths = [1]

[[arms]]
name = "t2t"
label = "T2T"
model = "t2t_vit_lite_tiny"
depths = [1]
"""


def test_arm_roles_come_from_the_spec_not_the_arms_names(tmp_path):
    (tmp_path / "spec.toml").write_text(ROLES_SPEC.format(baseline=""))
    spec = study.load_study_spec(config=tmp_path / "spec.toml")
    assert study.arm_roles(spec) == study.ArmRoles("vit-s", ("mine",))  # the first ViT at its own width
    assert "baseline" not in study.spec_record(spec, "data")  # a derived baseline is not recorded: old records read
    assert study.recorded_roles(study.spec_record(spec, "data")) == study.arm_roles(spec)  # the same
    (tmp_path / "spec.toml").write_text(ROLES_SPEC.format(baseline='baseline = "t2t"'))
    named = study.load_study_spec(config=tmp_path / "spec.toml")
    assert study.arm_roles(named) == study.ArmRoles("t2t", ("mine",))  # as written
    assert study.recorded_roles(study.spec_record(named, "data")).baseline == "t2t"  # kept in the record
    pretrained = study.Variant("pre", "Pre", "vit_lite_tiny", 1, {"depth": 1}, init="last.pth")
    cnn = study.Variant("cnn", "CNN", "resnet_cifar_tiny", 10, {})
    assert study.arm_roles(study.Spec([pretrained, cnn, *spec.variants], [1.0], [0], {})).baseline == "vit-s"
    assert study.arm_roles(study.Spec([pretrained, cnn], [1.0], [0], {})) == study.ArmRoles()  # none: no comparisons


def test_a_baseline_naming_no_arm_is_refused_before_anything_is_written(tmp_path, capsys):
    data, out, spec = tiny_synthetic(tmp_path / "data"), tmp_path / "study", tmp_path / "spec.toml"
    spec.write_text(ROLES_SPEC.format(baseline='baseline = "vit"'))
    line = cli_error(capsys, "study", "--config", str(spec), "--data", str(data), "--out", str(out))
    assert line.endswith("the study spec's baseline 'vit' names no arm of the spec; choose one of 'mine', 'vit-s', "
                         "'t2t', or drop baseline (the default: the first ViT arm trained from scratch)")
    assert not out.exists()
    spec.write_text(ROLES_SPEC.format(baseline='baseline = "t2t"'))
    with pytest.raises(ConfigError, match="baseline 't2t' names no arm of the spec; choose one of 'vit-s',"):
        study.load_study_spec(config=spec, arms=["vit-s"])  # --arms keeps no such arm


def roles_results():
    """A study whose ViT is "vit-s" and whose MAC-matched ViT is "mm": names no report knows by heart."""
    arms = (("resnet", "ResNet", "resnet_cifar_tiny", 0.5), ("t2t-performer", "T2T", "t2t_vit_lite_tiny", 4.0),
            ("mm", "ViT MAC-matched", "vit_lite_tiny", 1.0), ("vit-s", "ViT-S", "vit_lite_tiny", 0.0))
    return pd.DataFrame([{"arm": arm, "label": label, "model": model, "depth": 4, "fraction": 1.0, "seed": seed,
                          "test_top1": 50.0 + gain + noise, "train_images": 10, "classes": 10, "params": 5, "macs": 7,
                          "train_images_per_s": 1.0}
                         for seed, noise in enumerate((0.0, 3.0, -2.0)) for arm, label, model, gain in arms])


def test_arms_are_ordered_by_their_models_family_whatever_their_names():
    """Names that are other families' names, in an order against the families': the roles, then the models decide
    (the MAC-matched ViT before a ViT of no role)."""
    arms = (("t2t", "a CNN", "resnet_cifar_tiny", 1.0), ("cnn", "a T2T-ViT", "t2t_vit_lite_tiny", 2.0),
            ("zz", "a second ViT", "vit_lite_tiny", 3.0), ("base", "the ViT", "vit_lite_tiny", 0.0),
            ("mm", "the ViT widened", "vit_lite_tiny", 0.5))
    results = pd.DataFrame([{"arm": arm, "label": label, "model": model, "depth": 4, "fraction": 1.0, "seed": seed,
                             "test_top1": 50.0 + gain + seed, "train_images": 10, "classes": 10, "params": 5,
                             "macs": 7, "train_images_per_s": 1.0}
                            for seed in range(3) for arm, label, model, gain in arms])
    assert aggregate(results, study.ArmRoles("base", ("mm",)))["arm"].tolist() == ["base", "mm", "zz", "cnn", "t2t"]


def test_a_baseline_and_mac_matched_arm_of_any_name_are_compared_ordered_and_coloured_by_their_role():
    from bench.report.study import arm_colors, comparison_sentences, forest_rows, top1_vs_cost

    results, roles = roles_results(), study.ArmRoles("vit-s", ("mm",))
    table = aggregate(results, roles)
    assert table["arm"].tolist() == ["vit-s", "mm", "t2t-performer", "resnet"]  # ViT, MAC-matched, the families
    assert table.set_index("arm")["vs_baseline"].to_dict() == pytest.approx(
        {"vit-s": np.nan, "mm": 1.0, "t2t-performer": 4.0, "resnet": 0.5}, nan_ok=True)
    sentences = comparison_sentences(results, roles)
    assert [s.split(" by ")[0] for s in sentences] == [
        "- ResNet is ahead of ViT-S", "- T2T is ahead of ViT-S", "- ViT MAC-matched is ahead of ViT-S",
        "- T2T is ahead of ViT MAC-matched"]  # the T2T arm also against the MAC-matched ViT, the CNN not
    assert set(forest_rows(results, roles)["arm"]) == {"mm", "t2t-performer", "resnet"}
    colors = arm_colors(results, roles)  # by role and model family; no arm's name is a family's
    assert colors == {"vit-s": "tab:blue", "mm": "tab:cyan", "t2t-performer": "tab:orange", "resnet": "tab:red"}
    twin = arm_colors(results, study.ArmRoles("vit-s"))  # "mm" without its role: a second ViT, in a colour of its own
    assert twin["vit-s"] == "tab:blue" and len(set(twin.values())) == 4
    assert arm_colors(results, study.ArmRoles("mm"))["mm"] == "tab:blue"  # the baseline takes its family's colour
    assert forest_rows(results, roles).set_index("arm")["color"].to_dict() == {
        arm: color for arm, color in colors.items() if arm != "vit-s"}
    bars = top1_vs_cost(table, "macs", "MACs", colors).axes[0].containers  # an arm's line with its error bars each
    colours = {bar.get_label(): bar.lines[0].get_color() for bar in bars}
    assert colours["ViT MAC-matched"] == "tab:cyan"
    named = study.ArmRoles("resnet", ("mm",))  # an explicit baseline: every arm against it
    assert aggregate(results, named)["arm"].tolist()[0] == "resnet"
    assert [s.split(" by ")[0] for s in comparison_sentences(results, named)] == [
        "- T2T is ahead of ResNet", "- ViT MAC-matched is ahead of ResNet", "- ViT-S is behind ResNet",
        "- T2T is ahead of ViT MAC-matched"]
    none = study.ArmRoles()  # no baseline: no comparisons
    assert comparison_sentences(results, none) == [] and "vs_baseline" not in aggregate(results, none)


def test_report_only_compares_with_the_baseline_the_record_names(finished_study, tmp_path, capsys):
    root, _ = finished_study
    out = tmp_path / "out"
    shutil.copytree(root / "out", out)
    assert "nothing to compare" in (out / "report.md").read_text()  # a T2T and a CNN arm: no ViT, no baseline
    record = json.loads((out / "study.json").read_text())
    record["spec"]["baseline"] = "cnn"  # as `baseline = "cnn"` in the spec records it
    (out / "study.json").write_text(json.dumps(record))
    assert main(["study", "--out", str(out), "--report-only"]) == 0
    compared = (out / "report.md").read_text().split("## Comparisons")[1].split("\n## ")[0].strip().splitlines()[2:]
    assert len(compared) == 2 and all("T2T-ViT" in line and "ResNet" in line for line in compared)  # per fraction
    assert pd.read_csv(out / "table.csv").set_index("arm")["vs_baseline"].notna().sum() == 2  # both fractions
    label = pd.read_csv(out / "results.csv").set_index("arm").loc["cnn", "label"].iloc[0]
    header = [cell.strip() for cell in (out / "table.md").read_text().splitlines()[0].split("|")]
    assert f"vs {label}, paired [95% CI]" in header  # the column names the baseline the spec chose
    record["spec"]["baseline"] = "vit"
    (out / "study.json").write_text(json.dumps(record))
    assert "baseline 'vit' names no arm" in cli_error(capsys, "study", "--out", str(out), "--report-only")


def test_report_turns_the_study_and_its_runs_into_tables_and_plots(finished_study):
    from bench.report.build import build_report

    root, _ = finished_study
    out = root / "out"
    run = sorted((out / "runs").iterdir())[0]
    index = build_report([out, run], root / "report", argv=["vitbench", "report"])
    text = index.read_text()
    report = index.parent
    study_table = pd.read_csv(report / "study_out.csv")
    assert len(study_table) == 4 and set(study_table.arm) == {"t2t-performer", "cnn"}
    runs = pd.read_csv(report / "accuracy_runs.csv")
    assert list(runs.run) == [run.name] and runs.family[0] in ("cnn", "t2t-performer")
    for name in ("top1_vs_fraction_out", "top1_vs_macs_out", "training_curves", "training_curves_out"):
        assert (report / f"{name}.png").is_file() and (report / f"{name}.svg").is_file() and f"({name}.png)" in text
    assert "From-scratch study (out)" in text and str(out) in text


def test_the_data_multiplier_is_stated_by_its_interval_and_drawn():
    from bench.report.study import arm_colors, multiplier_lines, multipliers, top1_vs_images

    rows = []
    for seed, noise in enumerate((0.0, 0.5, -0.5)):
        for n in (1000, 2000, 4000, 8000):
            vit = 10 * np.log2(n) - 60 + noise
            rows += [{"arm": "vit", "label": "ViT", "model": "vit_lite_tiny", "fraction": n / 8000, "seed": seed,
                      "train_images": n, "test_top1": vit},
                     {"arm": "t2t-performer", "label": "T2T", "model": "t2t_vit_lite_tiny", "fraction": n / 8000,
                      "seed": seed, "train_images": n,
                      "test_top1": vit + 10 * np.log2(1.5) + (0.3 if seed == 1 else 0.0)}]
    results = pd.DataFrame(rows).assign(updates=100)  # every size the same updates, as under a PFLOP budget
    table = multipliers(results, VIT)
    assert multipliers(results.assign(updates=results["train_images"] // 10), VIT) is None  # epoch-matched: no claim
    assert multipliers(results.drop(columns="updates"), VIT) is None  # a study from before updates were recorded
    lines = multiplier_lines(results, table, VIT)
    assert len(lines) == 1 and lines[0].startswith("- ViT needs more than 1.00x")  # at 8000: beyond the ViT's curve
    assert "beyond the sizes measured in 3 of 3 seeds" in lines[0] and "no upper bound" in lines[0]
    at_4000 = table[table["train_images"] == 4000].iloc[0]
    assert at_4000["multiplier"] == pytest.approx(1.5, rel=0.05) and at_4000["ci_low"] > 1
    assert multiplier_lines(results, table[table["train_images"] < 8000], VIT)[0].startswith(
        "- ViT needs 1.5")
    colors = arm_colors(results, VIT)
    assert len(top1_vs_images(results, table, colors).axes[0].texts) == 0  # no arrow where no seed reached it
    marked = top1_vs_images(results, table[table["train_images"] < 8000], colors).axes[0]
    labels = [text.get_text() for text in marked.texts if text.get_text()]
    arrows = [text for text in marked.texts if not text.get_text()]
    assert len(arrows) == 1 and len(labels) == 1 and float(labels[0].rstrip("x")) == pytest.approx(1.5, rel=0.05)
    assert [tick.get_text() for tick in marked.get_xticklabels()] == ["1,000", "2,000", "4,000", "8,000"]


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM, reason="needs Debian's chromium: CI's .ci/run installs it where it may "
                                         "(root and apt), else install it with `apt-get install chromium`")
def test_the_html_report_loads_in_a_real_browser_with_every_figure_and_no_script_error(finished_study, tmp_path):
    from bench.report.build import build_report

    root, _ = finished_study
    out = root / "out"
    index = build_report([out, sorted((out / "runs").iterdir())[0]], tmp_path / "report", argv=["vitbench", "report"])
    page = index.parent / "index.html"
    text = page.read_text()
    assert 'class="dataframe sortable"' in text and "data:image/png;base64," in text
    assert not re.search(r'(src|href)="(https?:|//)', text)  # nothing fetched: readable offline
    assert "what the intervals allow us to say" in text  # the study's sentences are on the page
    browser = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000"]
    dom = subprocess.run([*browser, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=180).stdout
    body = re.search(r"<body([^>]*)>", dom)
    assert body, dom[:500]
    attributes = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body[1]))
    assert attributes.get("script-errors") == "0" and int(attributes["images"]) >= 4, attributes
    assert attributes["images-ok"] == attributes["images"], attributes  # every figure decoded
    artifacts = REPO / ".artifacts"  # kept after the run: what the page looked like
    artifacts.mkdir(exist_ok=True)
    shot = artifacts / "report-page.png"
    subprocess.run([*browser, f"--screenshot={shot}", "--window-size=1280,3000", page.as_uri()], capture_output=True,
                   timeout=180)
    assert shot.is_file() and shot.stat().st_size > 10_000


def test_a_recipe_sweep_chooses_on_the_holdout_and_never_scores_the_test_split(tmp_path, capsys):
    data = tiny_synthetic(tmp_path / "data", classes=3, train_per_class=4, val_per_class=2)
    arm = TINY_SPEC["arms"][0]
    sweep = {**TINY_SPEC, "fractions": [1.0], "seeds": [0], "train": {**TINY_SPEC["train"], "test": False},
             "arms": [{**arm, "name": f"t2t-lr{lr:g}", "train": {"lr": lr, "warmup_share": 0.1}}
                      for lr in (1e-4, 1e-3)]}
    (tmp_path / "sweep.toml").write_text(tomli_w.dumps(sweep))
    assert main(["study", "--config", str(tmp_path / "sweep.toml"), "--data", str(data), "--out",
                 str(tmp_path / "out")]) == 0
    table = pd.read_csv(tmp_path / "out" / "table.csv")
    runs = pd.read_csv(tmp_path / "out" / "results.csv")
    assert runs["test_top1"].isna().all() and sorted(table["lr"]) == [1e-4, 1e-3]
    assert table.loc[table["chosen"], "holdout_top1"].item() == runs["val_top1"].max()
    report = (tmp_path / "out" / "report.md").read_text()
    assert report.startswith("# Recipe sweep") and "never read" in report and "Chosen" in report
    assert not list((tmp_path / "out" / "runs").glob("*/test_predictions.npz"))


def test_a_recipe_is_chosen_per_starting_point_when_a_pretrained_arm_and_its_twin_share_a_model():
    from bench.report.study import recipe_table
    rows = [("ft-lo", "w.safetensors", 1e-4, 89.0), ("ft-hi", "w.safetensors", 3e-4, 89.0),  # a tie: the lower lr
            ("twin-lo", "", 1e-4, 25.0), ("twin-hi", "", 3e-4, 26.0)]
    results = pd.DataFrame([{"arm": arm, "model": "vb_vit_tiny_patch16_224", "depth": 12, "init": init, "lr": lr,
                             "warmup_share": 0.1, "seed": 0, "val_top1": top1} for arm, init, lr, top1 in rows])
    table = recipe_table(results)
    assert len(table) == 4 and "init" in table and "depth" not in table  # depth is the same for every arm
    assert sorted(table.loc[table["chosen"], "arms"]) == ["ft-lo", "twin-hi"]
    assert list(recipe_table(results[results["init"] == ""]).columns[:2]) == ["model", "lr"]  # one start: no column


def test_the_imagenette_answer_pairs_each_pretrained_arm_with_its_twin_and_bounds_what_the_twin_never_reaches(
        tmp_path, capsys):
    """scripts/imagenette_answer.py on a made-up results.csv of the preset's arms, 3 seeds at 2 fractions: the
    pretrained arm minus its scratch twin, seed-paired, on all val and on the clean subset; the data multiplier a
    lower bound, since the twin's curve never reaches the pretrained score."""
    import importlib.util
    loaded = importlib.util.spec_from_file_location("imagenette_answer", REPO / "scripts" / "imagenette_answer.py")
    answer = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(answer)
    scores = {"vit-ti-scratch": (25.0, 30.0), "vit-ti-deit-in1k": (89.0, 92.0), "vit": (43.0, 59.0),
              "t2t-performer": (45.0, 53.0), "vit-mac-matched": (43.0, 52.0), "cnn": (43.0, 44.0)}
    rows = [{"arm": arm, "label": arm.upper(), "seed": seed, "fraction": fraction, "train_images": images,
             "updates": 100, "test_top1": at[i] + noise, "test_subset_top1": at[i] + 3 * noise}
            for seed, noise in enumerate((0.0, 1.0, -0.5)) for arm, at in scores.items()
            for i, (fraction, images) in enumerate(((0.1, 852), (1.0, 8522)))]
    pd.DataFrame(rows).to_csv(tmp_path / "results.csv", index=False)
    answer.main(tmp_path)
    found = pd.read_csv(tmp_path / "answer.csv")
    gained = found[(found["arm"] == "vit-ti-deit-in1k") & (found["kind"] == "difference")].set_index(
        ["fraction", "score"])
    assert gained.loc[(0.1, "all 3,925 val images"), "diff_mean"] == pytest.approx(64.0)
    assert gained.loc[(1.0, "the 134 clean val images"), "diff_mean"] == pytest.approx(62.0)
    assert (gained["ci_low"] > 0).all() and (gained["seeds"] == 3).all()
    assert set(found.loc[found["kind"] == "difference", "baseline"]) == {"vit-ti-scratch", "vit", "vit-mac-matched"}
    multiplier = found[found["kind"] == "multiplier"].set_index(["baseline", "train_images"])
    assert multiplier.loc[("vit-ti-scratch", 852), "bound"] == "more than"  # beyond the twin's largest size
    assert multiplier.loc[("vit-ti-scratch", 852), "beyond"] == 3
    assert multiplier.loc[("vit", 852), "bound"] == "more than"  # and beyond the 64-px ViT's
    assert "more than" in capsys.readouterr().out
