"""bench.report.scaling: the laws recover known parameters, the gap model its slope and crossover, and the
report reads a folder of per-budget studies end to end (a tiny synthetic tree made here, not real runs)."""
import json
import math

import numpy as np
import pandas as pd
import pytest

from bench.report import scaling

BUDGETS = (0.0075, 0.015, 0.03, 0.06)


def test_power_law_recovers_its_parameters_from_noisy_points():
    rng = np.random.default_rng(0)
    pflop = np.repeat(BUDGETS, 3)
    error = 15 * pflop**-0.3 * np.exp(rng.normal(0, 0.005, pflop.size))  # 0.5% multiplicative noise
    a, b = scaling.fit_power_law(pflop, 100 - error)
    assert a == pytest.approx(15, rel=0.03) and b == pytest.approx(0.3, abs=0.01)


def test_saturating_law_recovers_its_parameters_from_exact_points():
    pflop = np.geomspace(0.005, 5, 8)
    top1 = 100 - (5 * pflop**-0.5 + 10)
    assert scaling.fit_saturating_law(pflop, top1) == pytest.approx((5, 0.5, 10), rel=1e-3)
    assert all(math.isnan(v) for v in scaling.fit_saturating_law([0.01, 0.02], [50.0, 55.0]))  # 3 unknowns


def gap_runs(gap, noise=0.0, seeds=(0, 1), budgets=BUDGETS, seed=0):
    """ViT and T2T runs whose gap at C is gap(C) plus seed noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for budget in budgets:
        for s in seeds:
            vit = 100 - 17.5 * budget**-0.235 + rng.normal(0, noise)
            rows += [{"arm": "vit", "seed": s, "budget_pflop": budget, "test_top1": vit},
                     {"arm": "t2t-performer", "seed": s, "budget_pflop": budget,
                      "test_top1": vit + gap(budget) + rng.normal(0, noise)}]
    return pd.DataFrame(rows)


def test_gap_model_recovers_slope_and_crossover():
    runs = gap_runs(lambda c: 3.0 * math.log(c / 0.02), noise=0.2)  # crosses zero at 0.02 PFLOP
    gap = scaling.gap_model(runs, "t2t-performer", "vit", boots=300)
    assert gap["g1_low"] < 3.0 < gap["g1_high"] and gap["g1_p"] < 0.001 and gap["pairs"] == 8
    assert gap["crossover_pflop"] == pytest.approx(0.02, rel=0.1) and gap["crossover_within"]
    assert gap["crossover_low"] < 0.02 < gap["crossover_high"]
    flat = scaling.gap_model(gap_runs(lambda c: 2.0, noise=0.3), "t2t-performer", "vit", boots=300)
    assert not flat["crossover_within"] and flat["g1_low"] < 0 < flat["g1_high"]  # ahead throughout: no crossing
    assert "not within the measured range" in scaling.crossover_sentence(flat)
    with pytest.raises(ValueError, match="needs seed pairs at 2 budgets"):
        scaling.gap_model(gap_runs(lambda c: 1.0, budgets=(0.01,)), "t2t-performer", "vit")


IMAGES = 400
MODELS = {"vit": "vit_lite_tiny", "t2t-performer": "t2t_vit_lite_tiny", "cnn": "resnet_cifar_tiny"}


def write_record(study, arms, models=MODELS, baseline=None):
    """The study.json of a budget's study folder, as `vitbench study` writes it: its arms' models (and `baseline`,
    where the spec names one) are what the report reads the baseline from."""
    variants = [{"arm": arm, "label": arm, "model": models[arm], "depth": 4, "overrides": {"depth": 4}} for arm in arms]
    spec = {"data": "data", "fractions": [1.0], "seeds": [0], "train": {}, "variants": variants,
            **({"baseline": baseline} if baseline else {})}
    (study / "study.json").write_text(json.dumps({"spec": spec, "provenance": {}}))


def write_budget(folder, budget, top1, rng, predictions=True, models=MODELS):
    """A finished study folder b<budget>/ with results.csv, study.json and each run's test_predictions.npz; top1 is
    {(arm, seed): percent}, and the saved predictions get exactly that many images right."""
    study = folder / f"b{budget:g}"
    targets = rng.integers(0, 10, IMAGES)
    rows = []
    for (arm, seed), percent in top1.items():
        right = rng.permutation(IMAGES) < round(percent * IMAGES / 100)
        final = np.where(right, targets, (targets + 1) % 10)
        run = study / "runs" / f"{arm}-d4-f1-s{seed}"
        run.mkdir(parents=True)
        if predictions:
            np.savez(run / "test_predictions.npz", targets=targets, final=final, best=final)
        rows.append({"arm": arm, "depth": 4, "fraction": 1.0, "seed": seed, "test_top1": 100 * right.mean(),
                     "train_pflop": budget})
    pd.DataFrame(rows).to_csv(study / "results.csv", index=False)
    write_record(study, dict.fromkeys(arm for arm, _ in top1), models)


def synthetic_study(folder):
    """Three budgets with results (the T2T crossing the ViT near 0.02), a fourth still running, and predictions."""
    rng = np.random.default_rng(1)
    for budget in (0.01, 0.02, 0.04):
        vit = 100 - 17.5 * budget**-0.235
        write_budget(folder, budget, {("vit", s): vit + d for s, d in enumerate((0.5, -0.5))}
                     | {("t2t-performer", s): vit + 8 * math.log(budget / 0.02) + d for s, d in enumerate((0.3, -0.2))}
                     | {("cnn", s): vit + 5 + d for s, d in enumerate((0.4, -0.4))}, rng, predictions=budget != 0.04)
    (folder / "b0.08").mkdir()  # running: no results.csv yet
    pd.DataFrame([{"arm": "vit"}, {"arm": "t2t-performer", "crossover_pflop": 0.03, "crossover_low": 0.024,
                                   "crossover_high": 0.05}]).to_csv(folder / "preregistered_laws.csv", index=False)
    pd.DataFrame([{"arm": "vit", "budget_pflop": 0.01, "top1": 50.0, "top1_low": 0.0, "top1_high": 100.0},
                  {"arm": "t2t-performer", "budget_pflop": 0.01, "top1": 50.0, "top1_low": 0.0, "top1_high": 100.0,
                   "gap": 20.0, "gap_low": 15.0, "gap_high": 25.0},
                  {"arm": "vit", "budget_pflop": 0.12, "top1": 70.0, "top1_low": 69.0, "top1_high": 71.0}]).to_csv(
        folder / "preregistered_predictions.csv", index=False)


def test_scaling_report_end_to_end(tmp_path):
    synthetic_study(tmp_path)
    text = scaling.write_scaling_report(tmp_path, boots=200)
    for name in ("laws.csv", "gaps.csv", "comparisons.csv", "prediction_checks.csv", "report.md",
                 "top1_vs_pflop.png"):
        assert (tmp_path / name).is_file(), name
    assert "Budgets read (PFLOP): 0.01, 0.02, 0.04" in text and "(skipped): 0.08." in text
    laws = pd.read_csv(tmp_path / "laws.csv").set_index("arm")
    assert list(laws.index) == ["vit", "t2t-performer", "cnn"] and (laws["runs"] == 6).all()
    assert laws.loc["vit", "b"] == pytest.approx(0.235, abs=0.05)  # the ViT's law, from 400-image noisy scores
    gaps = pd.read_csv(tmp_path / "gaps.csv").set_index("arm")
    assert gaps.loc["t2t-performer", "crossover_pflop"] == pytest.approx(0.02, rel=0.25)
    comparisons = pd.read_csv(tmp_path / "comparisons.csv")
    tested = comparisons.dropna(subset=["p"])
    assert (tested["p_holm"] >= tested["p"] - 1e-12).all() and (tested["p_holm"] <= 1).all()
    # McNemar only where both runs saved predictions: 2 arms x 2 budgets; seed-paired t everywhere; 2 slopes
    assert (comparisons["test"] == "McNemar, pooled seed pairs").sum() == 4
    assert (comparisons["test"] == "seed-paired t").sum() == 6
    assert comparisons["test"].str.startswith("gap slope").sum() == 2
    nulls = tested[tested["p_holm"] >= 0.05]
    assert nulls["verdict"].str.contains("80% power needs").all() and nulls["mdd"].gt(0).all()
    assert "cnn at 0.04: seeds [0, 1]" in text  # the budget without predictions is named
    checks = pd.read_csv(tmp_path / "prediction_checks.csv").set_index("what")
    assert checks.loc["vit top-1", "inside"] and not checks.loc["t2t-performer - vit gap", "inside"]
    assert checks.loc["t2t-performer - vit crossover (PFLOP)", "predicted"] == 0.03 and 0.12 not in set(
        checks["budget_pflop"])  # a budget not run is not compared


def test_an_arm_missing_at_a_budget_is_compared_where_it_ran(tmp_path):
    synthetic_study(tmp_path)
    results = pd.read_csv(tmp_path / "b0.04" / "results.csv")
    results[results["arm"] != "cnn"].to_csv(tmp_path / "b0.04" / "results.csv", index=False)
    scaling.write_scaling_report(tmp_path, boots=50)
    laws = pd.read_csv(tmp_path / "laws.csv").set_index("arm")
    assert laws.loc["cnn", "runs"] == 4 and laws.loc["vit", "runs"] == 6
    comparisons = pd.read_csv(tmp_path / "comparisons.csv")
    assert set(comparisons.loc[comparisons["arm"] == "cnn", "budget_pflop"].dropna()) == {0.01, 0.02}


def test_scaling_report_refuses_what_it_cannot_read(tmp_path):
    from bench.errors import ResultsError

    with pytest.raises(ResultsError, match="is no folder"):
        scaling.write_scaling_report(tmp_path / "absent")
    rng = np.random.default_rng(0)
    write_budget(tmp_path, 0.01, {("vit", 0): 50.0, ("t2t-performer", 0): 45.0}, rng)
    with pytest.raises(ResultsError, match="needs 2 or more"):
        scaling.write_scaling_report(tmp_path)
    write_budget(tmp_path, 0.02, {("vit", 0): 55.0, ("t2t-performer", 0): 52.0}, rng)
    with pytest.raises(ResultsError, match=r"needs seed pairs .* got 2 at 0.01, 0.02 PFLOP"):
        scaling.write_scaling_report(tmp_path, boots=50)
    write_budget(tmp_path, 0.04, {("vit", 0): 58.0, ("t2t-performer", 0): 57.0}, rng)
    other = tmp_path / "b0.02" / "runs" / "vit-d4-f1-s0" / "test_predictions.npz"
    stored = dict(np.load(other))
    np.savez(other, **{**stored, "targets": (stored["targets"] + 1) % 10})  # scored on other images
    with pytest.raises(ResultsError, match="scored different test images"):
        scaling.write_scaling_report(tmp_path, boots=50)


def test_the_gaps_are_measured_against_the_baseline_the_budgets_record(tmp_path):
    from bench.errors import ResultsError

    rng, models = np.random.default_rng(0), {"vit-s": "vit_lite_tiny", "t2t": "t2t_vit_lite_tiny"}
    for budget, (vit, t2t) in zip((0.01, 0.02, 0.04), ((50.0, 45.0), (55.0, 53.0), (58.0, 58.5))):
        write_budget(tmp_path, budget, {("vit-s", s): vit + s for s in (0, 1)} | {("t2t", s): t2t + s for s in (0, 1)},
                     rng, models=models)
    scaling.write_scaling_report(tmp_path, boots=50)  # a ViT named "vit-s": the default baseline all the same
    assert pd.read_csv(tmp_path / "gaps.csv")[["arm", "baseline"]].values.tolist() == [["t2t", "vit-s"]]
    for budget in ("b0.01", "b0.02", "b0.04"):
        write_record(tmp_path / budget, ["vit-s", "t2t"], models, baseline="t2t")  # as the specs name it
    scaling.write_scaling_report(tmp_path, boots=50)
    assert pd.read_csv(tmp_path / "gaps.csv")[["arm", "baseline"]].values.tolist() == [["vit-s", "t2t"]]
    write_record(tmp_path / "b0.02", ["vit-s", "t2t"], models)
    with pytest.raises(ResultsError, match=r"different baselines \(b0.01: t2t, b0.02: vit-s, b0.04: t2t\)"):
        scaling.write_scaling_report(tmp_path, boots=50)
    for budget in ("b0.01", "b0.02", "b0.04"):
        write_record(tmp_path / budget, ["vit-s", "t2t"], {"vit-s": "resnet_cifar_tiny", "t2t": "t2t_vit_lite_tiny"})
    with pytest.raises(ResultsError, match="have no baseline arm"):  # no ViT, none named: nothing to measure against
        scaling.write_scaling_report(tmp_path, boots=50)
    for budget in ("b0.01", "b0.02", "b0.04"):
        (tmp_path / budget / "study.json").unlink()
    with pytest.raises(ResultsError, match="holds its study.json"):
        scaling.write_scaling_report(tmp_path, boots=50)


def test_main_prints_one_line_and_exits_2_on_bad_input(tmp_path, capsys):
    assert scaling.main([str(tmp_path / "absent")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("scaling: error: ") and err.count("\n") == 1
