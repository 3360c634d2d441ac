"""Compute-scaling laws: each arm's test error against its training compute, the gap between two arms, and the
budget where the gap changes sign, with intervals from a bootstrap over seeds.

The law is a power law in compute, error(C) = a * C**-b (error = 100 - top-1, C in PFLOP), fitted by least squares
on log error against log C, every run one point. Runs far from convergence (train loss well above its floor) sit
on the straight part of a saturating law a * C**-b + e_inf, where e_inf is not identifiable from a few budgets; a
law with that third parameter is fitted only as a check, never to extrapolate.

Intervals resample seeds with replacement within each budget (a run's seed keeps its pair across arms, so a gap's
interval is a paired one) and refit; the 2.5% and 97.5% quantiles of what is refitted are the 95% interval.

The study's report: `python -m bench.report.scaling FOLDER`, FOLDER holding one study folder per budget
(`b0.0075/`, `b0.015/`, ...) and the pre-registration's CSVs (`write_scaling_report`). The gaps are measured
against the baseline arm each budget's study.json records (`budget_roles`), not against an arm's name.
"""
import argparse
import math
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import ticker
from scipy.optimize import OptimizeWarning, curve_fit
from scipy.stats import linregress, ttest_1samp
from scipy.stats import t as student_t

from bench.accuracy.plan import train_pflop
from bench.accuracy.study import RESULTS, STUDY_FILE, ArmRoles, arm_roles, recorded_spec, run_folder_name
from bench.accuracy.train import TEST_PREDICTIONS, read_predictions
from bench.cost.published import published_cifar10
from bench.errors import ResultsError
from bench.report.markup import md, md_lines, md_table
from bench.report.stats import (
    combine_mcnemar,
    detectable_shift,
    holm,
    mcnemar,
    mcnemar_detectable_difference,
    minimum_detectable_difference,
    order_interval,
    t_interval,
)
from bench.report.study import arm_colors
from bench.report.style import new_figure, save_figure
from models.atomic import atomic_write_text

LEVEL = 0.95
BOOTSTRAPS = 4000
PREDICTIONS_FILE, LAWS_FILE = "preregistered_predictions.csv", "preregistered_laws.csv"  # the pre-registration's
PREDICTION_COLUMNS = ["arm", "budget_pflop", "top1", "top1_low", "top1_high", "gap", "gap_low", "gap_high"]
BUDGET_FOLDER = re.compile(r"b(\d+(?:\.\d+)?)")  # a budget's study folder: b0.0075, b0.06
CIFAR10_TRAIN_IMAGES = 50_000  # the published runs train on all of CIFAR-10's training split


def fit_power_law(pflop, top1):
    """(a, b) of error = a * pflop**-b fitted to runs' top-1 (percent) by least squares in log-log."""
    x = np.log(np.asarray(pflop, dtype=float))
    error = 100 - np.asarray(top1, dtype=float)
    if np.unique(x).size < 2:
        raise ValueError(f"a power law needs runs at two budgets or more, got {np.unique(np.exp(x)).tolist()} PFLOP")
    if not np.all((error > 0) & np.isfinite(error)):
        raise ValueError("every top-1 must lie in [0, 100) percent to fit an error law")
    slope, intercept = np.polyfit(x, np.log(error), 1)
    return float(math.exp(intercept)), float(-slope)


def law_top1(law, pflop):
    a, b = law
    return 100 - a * np.asarray(pflop, dtype=float) ** -b


def crossover(law, other):
    """The budget (PFLOP) where two laws predict the same error; NaN if they never meet (equal exponents)."""
    (a1, b1), (a2, b2) = law, other
    if b1 == b2:
        return math.nan
    return math.exp(math.log(a1 / a2) / (b1 - b2))


def budget_seeds(results):
    """{budget: sorted seeds run there by every arm of `results`}: what a paired resample draws from."""
    by_budget = {}
    for budget, runs in results.groupby("budget_pflop"):
        arms = [set(group["seed"]) for _, group in runs.groupby("arm")]
        by_budget[float(budget)] = sorted(set.intersection(*arms))
    return by_budget


def resampled_laws(results, arms, boots=BOOTSTRAPS, seed=0):
    """{arm: [(a, b) per resample]}: seeds drawn with replacement within each budget, the same draw for every arm."""
    rng = np.random.default_rng(seed)
    by_budget = budget_seeds(results)
    points = {key: runs[["budget_pflop", "test_top1"]].to_numpy(dtype=float)  # a run's points, looked up per draw
              for key, runs in results.groupby(["arm", "budget_pflop", "seed"], sort=False)}
    laws = {arm: [] for arm in arms}
    for _ in range(boots):
        drawn = [(budget, s) for budget, seeds in by_budget.items() for s in rng.choice(seeds, size=len(seeds))]
        for arm in arms:
            runs = np.concatenate([points[(arm, budget, s)] for budget, s in drawn if (arm, budget, s) in points])
            laws[arm].append(fit_power_law(runs[:, 0], runs[:, 1]))
    return laws


def interval(values, level=LEVEL):
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    tail = (1 - level) / 2 * 100
    return tuple(float(q) for q in np.percentile(finite, [tail, 100 - tail])) if finite.size else (math.nan, math.nan)


def scaling_predictions(results, arms, baseline, budgets, boots=BOOTSTRAPS, seed=0):
    """Per arm its law with intervals and its predicted top-1 at `budgets`; per non-baseline arm the predicted
    gap to `baseline` there and the crossover budget, each with its bootstrap interval.

    `results` has one row per run: arm, seed, budget_pflop, test_top1. Returns (laws, predictions) DataFrames.
    """
    fitted = {arm: fit_power_law(*results.loc[results["arm"] == arm, ["budget_pflop", "test_top1"]].T.values)
              for arm in arms}
    boot = resampled_laws(results, arms, boots, seed)
    laws = []
    for arm in arms:
        a, b = fitted[arm]
        a_ci, b_ci = interval([law[0] for law in boot[arm]]), interval([law[1] for law in boot[arm]])
        row = {"arm": arm, "a": a, "a_low": a_ci[0], "a_high": a_ci[1], "b": b, "b_low": b_ci[0], "b_high": b_ci[1]}
        if arm != baseline:
            crossings = [crossover(law, base) for law, base in zip(boot[arm], boot[baseline])]
            row.update(crossover_pflop=crossover(fitted[arm], fitted[baseline]),
                       **dict(zip(("crossover_low", "crossover_high"), interval(crossings))),
                       crossover_undefined=int(sum(not math.isfinite(c) for c in crossings)))
        laws.append(row)
    rows = []
    for budget in budgets:
        for arm in arms:
            top1 = [float(law_top1(law, budget)) for law in boot[arm]]
            row = {"arm": arm, "budget_pflop": budget, "top1": float(law_top1(fitted[arm], budget)),
                   **dict(zip(("top1_low", "top1_high"), interval(top1)))}
            if arm != baseline:
                gaps = [float(law_top1(law, budget) - law_top1(base, budget))
                        for law, base in zip(boot[arm], boot[baseline])]
                row.update(gap=row["top1"] - float(law_top1(fitted[baseline], budget)),
                           **dict(zip(("gap_low", "gap_high"), interval(gaps))))
            rows.append(row)
    return pd.DataFrame(laws), pd.DataFrame(rows)


def fit_saturating_law(pflop, top1):
    """(a, b, e_inf) of error = a * pflop**-b + e_inf by least squares on the error itself (scipy's curve_fit),
    started from the power law; e_inf is held in [0, the smallest error). A check only: with a few budgets far from
    convergence e_inf is barely identified, so nothing is extrapolated with it. NaNs where the fit fails."""
    pflop, error = np.asarray(pflop, dtype=float), 100 - np.asarray(top1, dtype=float)
    if np.unique(pflop).size < 3:  # three unknowns: fewer budgets leave the law undetermined
        return math.nan, math.nan, math.nan
    a, b = fit_power_law(pflop, top1)
    try:
        with warnings.catch_warnings():  # the parameters' covariance is not used: its warning says nothing here
            warnings.simplefilter("ignore", OptimizeWarning)
            (a, b, e_inf), _ = curve_fit(lambda c, a, b, e: a * c**-b + e, pflop, error, p0=(a, b, 0.0),
                                         bounds=([0, 0, 0], [np.inf, 5, error.min()]), maxfev=20000)
    except RuntimeError:  # no convergence
        return math.nan, math.nan, math.nan
    return float(a), float(b), float(e_inf)


def seed_gaps(results, arm, baseline):
    """One row per budget and seed both arms ran: the gap arm - baseline in test top-1 (points)."""
    pivot = results[results["arm"].isin([arm, baseline])].pivot_table(
        index=["budget_pflop", "seed"], columns="arm", values="test_top1").dropna()
    if not {arm, baseline} <= set(pivot.columns):  # one of the two never ran a seed the other did
        return pd.DataFrame({"budget_pflop": [], "seed": [], "gap": []})
    return pd.DataFrame({"budget_pflop": pivot.index.get_level_values(0), "seed": pivot.index.get_level_values(1),
                         "gap": (pivot[arm] - pivot[baseline]).to_numpy()})


def fit_gap(gaps):
    """(g0, g1) of gap = g0 + g1 * ln C, least squares over the seed pairs."""
    g1, g0 = np.polyfit(np.log(gaps["budget_pflop"].to_numpy(dtype=float)), gaps["gap"].to_numpy(dtype=float), 1)
    return float(g0), float(g1)


def gap_crossover(g0, g1):
    """The budget where gap = g0 + g1 * ln C is zero (0 or inf where that lies beyond floats); NaN for a flat gap,
    which never changes sign."""
    if g1 == 0:
        return math.nan
    log_c = -g0 / g1
    return math.exp(log_c) if abs(log_c) < 700 else (math.inf if log_c > 0 else 0.0)


def gap_model(results, arm, baseline, boots=BOOTSTRAPS, seed=0, level=LEVEL):
    """The gap arm - baseline as a line in ln C over the seed pairs: its slope g1 with a t-interval (n - 2 degrees
    of freedom) and its p-value against no trend; the crossover C* = exp(-g0 / g1) with a bootstrap interval
    (seed pairs drawn with replacement within each budget) and whether that interval lies inside the budgets
    measured ("not within the measured range" otherwise, as pre-registered)."""
    gaps = seed_gaps(results, arm, baseline)
    if gaps["budget_pflop"].nunique() < 2 or len(gaps) < 3:
        at = ", ".join(f"{b:g}" for b in sorted(set(gaps["budget_pflop"])))
        raise ResultsError(f"the gap {arm} - {baseline} needs seed pairs at 2 budgets or more (3 pairs at least), "
                           f"got {len(gaps)} at {at} PFLOP; run more budgets or seeds")
    fit = linregress(np.log(gaps["budget_pflop"]), gaps["gap"])
    half = student_t.ppf(0.5 + level / 2, len(gaps) - 2) * fit.stderr
    rng = np.random.default_rng(seed)
    groups = [group for _, group in gaps.groupby("budget_pflop")]
    crossings = []
    for _ in range(boots):
        drawn = pd.concat([group.iloc[rng.integers(0, len(group), len(group))] for group in groups])
        crossings.append(gap_crossover(*fit_gap(drawn)))
    # order statistics, not interpolated percentiles: a crossing at 0 or inf (a nearly flat resample) is kept as
    # the extreme it is, a flat one (no crossing) as inf
    ordered = np.sort(np.nan_to_num(np.asarray(crossings), nan=math.inf))
    low, high = (float(ordered[i]) for i in order_interval(ordered, level))
    measured = (float(gaps["budget_pflop"].min()), float(gaps["budget_pflop"].max()))
    point = gap_crossover(float(fit.intercept), float(fit.slope))
    undefined = sum(math.isnan(c) for c in crossings)
    return {"arm": arm, "baseline": baseline, "pairs": len(gaps), "g0": float(fit.intercept), "g1": float(fit.slope),
            "g1_se": float(fit.stderr), "g1_low": float(fit.slope - half), "g1_high": float(fit.slope + half),
            "g1_p": float(fit.pvalue),
            "crossover_pflop": point, "crossover_low": low, "crossover_high": high, "crossover_undefined": undefined,
            "crossover_within": bool(measured[0] <= low and high <= measured[1])}


def read_budgets(folder):
    """({budget: runs}, [budgets whose folder has no results yet]) from the `b<budget>/` study folders under
    `folder`; `runs` has the study's results.csv rows (finished runs), their budget and their study folder."""
    found, pending = {}, []
    for path in sorted(Path(folder).iterdir()):
        match = BUDGET_FOLDER.fullmatch(path.name)
        if not (match and path.is_dir()):
            continue
        budget = float(match[1])
        if not (path / RESULTS).is_file():
            pending.append(budget)
            continue
        runs = pd.read_csv(path / RESULTS)
        missing = {"arm", "seed", "depth", "fraction", "test_top1"} - set(runs.columns)
        if missing:
            raise ResultsError(f"{path / RESULTS} lacks the columns {sorted(missing)}: rebuild it with `vitbench study "
                               f"--out {path} --report-only`")
        found[budget] = runs[np.isfinite(runs["test_top1"])].assign(budget_pflop=budget, study=str(path))
    return found, sorted(pending)


def budget_roles(runs):
    """The `ArmRoles` (`arm_roles`) of the recorded spec of each budget's study whose results `runs` holds (its
    study.json), the same at every budget: its baseline is the arm every gap is measured against. `ArmRoles()` (no
    baseline) where no budget holds its study.json or its spec has no baseline (neither `baseline` nor a ViT arm
    trained from scratch)."""
    roles = {folder: arm_roles(recorded_spec(folder)[0]) for folder in dict.fromkeys(runs["study"])
             if (Path(folder) / STUDY_FILE).is_file()}
    if len({role.baseline for role in roles.values()}) > 1:
        raise ResultsError("the budgets' studies compare with different baselines (" + ", ".join(
            f"{Path(folder).name}: {role.baseline}" for folder, role in roles.items()) + "); a gap needs one arm "
            "to be measured against at every budget: give their specs the same `baseline`")
    return next(iter(roles.values()), ArmRoles())


def per_image_pairs(runs, arm, baseline):
    """The `mcnemar` result of every seed both arms ran in one budget's `runs` (final weights, test images), and
    the seeds whose predictions are absent."""
    pairs, absent = [], []
    for seed in sorted(set(runs.loc[runs["arm"] == arm, "seed"]) & set(runs.loc[runs["arm"] == baseline, "seed"])):
        folders = [Path(row.study) / "runs" / run_folder_name(row.arm, row.depth, row.fraction, row.seed)
                   for name in (arm, baseline)
                   for row in runs[(runs["arm"] == name) & (runs["seed"] == seed)].itertuples()]
        if not all((folder / TEST_PREDICTIONS).is_file() for folder in folders):
            absent.append(int(seed))
            continue
        ours, theirs = (read_predictions(folder) for folder in folders)
        if not np.array_equal(ours["targets"], theirs["targets"]):
            raise ResultsError(f"{folders[0]} and {folders[1]} scored different test images (targets differ): a "
                               "per-image test needs the same images in the same order; score both runs again")
        pairs.append(mcnemar(ours["final"] == ours["targets"], theirs["final"] == theirs["targets"]))
    return pairs, absent


def budget_comparisons(runs, arm, baseline, budget):
    """Per budget, the comparisons the report states for `arm` against `baseline`: the seed-paired t-test of the
    gap and the exact McNemar test pooled over the seed pairs, each with the difference it could have detected."""
    gaps = seed_gaps(runs, arm, baseline)["gap"].to_numpy()
    if not gaps.size:  # no seed run by both here: nothing to compare
        return [], []
    ci = t_interval(gaps)
    rows = [{"arm": arm, "baseline": baseline, "budget_pflop": budget, "test": "seed-paired t", "n": len(gaps),
             "estimate": ci["mean"], "low": ci["low"], "high": ci["high"],
             "p": float(ttest_1samp(gaps, 0).pvalue) if len(gaps) >= 2 and ci["std"] > 0 else math.nan,
             "mdd": minimum_detectable_difference(len(gaps), ci["std"]) if len(gaps) >= 2 and ci["std"] > 0
             else math.nan}]
    pairs, absent = per_image_pairs(runs, arm, baseline)
    if pairs:
        pooled = combine_mcnemar(pairs)
        rows.append({"arm": arm, "baseline": baseline, "budget_pflop": budget, "test": "McNemar, pooled seed pairs",
                     "n": pooled["images"], "estimate": pooled["diff"], "low": pooled["low"], "high": pooled["high"],
                     "p": pooled["p"], "mdd": mcnemar_detectable_difference(pooled["a_only"] + pooled["b_only"],
                                                                            pooled["images"])})
    return rows, absent


def stated_verdicts(comparisons, alpha=1 - LEVEL):
    """Holm's correction over every comparison with a p-value, and each one's verdict in words."""
    direction = {False: ("behind", "ahead"), True: ("the gap shrinks with compute", "the gap grows with compute")}
    tested = comparisons["p"].notna()
    comparisons["p_holm"] = math.nan
    comparisons.loc[tested, "p_holm"] = holm(comparisons.loc[tested, "p"]) if tested.any() else []
    comparisons["verdict"] = [
        "no test (fewer than 2 seed pairs, or no spread)" if math.isnan(p) else
        f"{direction[slope][estimate > 0]} (Holm p {p:.3g})" if p < alpha else
        f"no {'trend' if slope else 'difference'} detectable (Holm p {p:.3g}; 80% power needs {mdd:.2g})"
        for p, estimate, mdd, slope in zip(comparisons["p_holm"], comparisons["estimate"], comparisons["mdd"],
                                           comparisons["test"].str.startswith("gap slope"))]
    return comparisons


def prediction_checks(runs, gap_rows, predicted, predicted_laws, baseline):
    """The outcome beside every pre-registered prediction at a measured budget: inside or outside its interval."""
    rows = []
    for pred in predicted.itertuples():
        at = runs[(runs["budget_pflop"] == pred.budget_pflop)]
        if at.empty:
            continue
        measured = at.loc[at["arm"] == pred.arm, "test_top1"].mean()
        rows.append({"what": f"{pred.arm} top-1", "budget_pflop": pred.budget_pflop, "predicted": pred.top1,
                     "low": pred.top1_low, "high": pred.top1_high, "measured": measured})
        if pred.arm != baseline and math.isfinite(pred.gap):
            measured = seed_gaps(at, pred.arm, baseline)["gap"].mean()
            rows.append({"what": f"{pred.arm} - {baseline} gap", "budget_pflop": pred.budget_pflop,
                         "predicted": pred.gap, "low": pred.gap_low, "high": pred.gap_high, "measured": measured})
    for law in predicted_laws[predicted_laws["arm"] != baseline].itertuples():
        gap = gap_rows.get(law.arm)
        if gap is not None:
            rows.append({"what": f"{law.arm} - {baseline} crossover (PFLOP)", "budget_pflop": math.nan,
                         "predicted": law.crossover_pflop, "low": law.crossover_low, "high": law.crossover_high,
                         "measured": gap["crossover_pflop"]})
    checks = pd.DataFrame(rows, columns=["what", "budget_pflop", "predicted", "low", "high", "measured"])
    checks["inside"] = (checks["low"] <= checks["measured"]) & (checks["measured"] <= checks["high"])
    return checks


def anchor_point():
    """(PFLOP, top-1, label) of the published ViT-Lite-7/4 on CIFAR-10: 200 epochs of 50,000 images."""
    row = published_cifar10()["vit_lite_7_4"]
    epochs, macs, params = float(row["epochs"]), float(row["macs_published"]), float(row["params_published"])
    return (train_pflop(epochs * CIFAR10_TRAIN_IMAGES, macs), float(row["top1_published"]),
            f"ViT-Lite-7/4, published ({params / 1e6:.1f}M params, {epochs:.0f} epochs)")


def scaling_figure(runs, fitted, boot, gaps, predicted, anchor, roles):
    """Test top-1 against training PFLOP (log axis), two panels of one figure. Left, the budgets run: each run a
    point, each arm's law with its bootstrap band, the gap model's crossover (where its interval lies within the
    budgets) and the pre-registered predictions as open markers with their intervals. Right, the same runs beside
    the published anchor, where it lies (no law is drawn out to it: it is another, 26x larger model). Each arm in
    its colour of the budgets' study reports (`arm_colors` by `roles`)."""
    colors = arm_colors(runs, roles)
    fig, (ax, wide) = new_figure(width=11, height=4.6, columns=2)
    budgets = np.array(sorted(runs["budget_pflop"].unique()))
    grid = np.geomspace(budgets[0], budgets[-1], 60)
    for arm, group in runs.groupby("arm", sort=False):
        color = colors[arm]
        for axes in (ax, wide):
            axes.scatter(group["budget_pflop"], group["test_top1"], s=14, color=color, zorder=3,
                         label=f"{arm}: runs" if axes is wide else None)
        if arm in fitted:
            band = np.percentile([law_top1(law, grid) for law in boot[arm]], [2.5, 97.5], axis=0)
            ax.plot(grid, law_top1(fitted[arm], grid), color=color, label=f"{arm}: law, 95% bootstrap band")
            ax.fill_between(grid, band[0], band[1], color=color, alpha=0.2, linewidth=0)
        ahead = predicted[predicted["arm"] == arm]
        if len(ahead):
            ax.errorbar(ahead["budget_pflop"] * 1.04, ahead["top1"], yerr=[ahead["top1"] - ahead["top1_low"],
                        ahead["top1_high"] - ahead["top1"]], fmt="o", mfc="none", color=color, capsize=2,
                        markersize=5, linewidth=0.8)
    for arm, gap in gaps.items():
        if gap["crossover_within"]:
            ax.axvline(gap["crossover_pflop"], color=colors[arm], linestyle="--", linewidth=1,
                       label=f"{arm} = {gap['baseline']} (gap law), 95% CI "
                             f"{gap['crossover_low']:.3g}-{gap['crossover_high']:.3g}")
            ax.axvspan(gap["crossover_low"], gap["crossover_high"], color=colors[arm], alpha=0.08)
        else:
            ax.plot([], [], color=colors[arm], linestyle="--", linewidth=1,
                    label=f"{arm} = {gap['baseline']}: not within the measured range")
    if len(predicted):
        ax.plot([], [], "o", mfc="none", color="gray", label="pre-registered prediction (95% CI)")
    pflop, top1, label = anchor
    wide.scatter([pflop], [top1], marker="*", s=90, color="black", zorder=3, label=label)
    ax.set(xscale="log", xlabel="training compute (PFLOP per run)", ylabel="test top-1 (%)",
           title="budgets run: error = a C^-b per arm")
    ax.xaxis.set_major_locator(ticker.FixedLocator(budgets))  # the budgets run, not powers of ten
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_locator(ticker.NullLocator())
    wide.set(xscale="log", xlabel="training compute (PFLOP per run)", ylabel="test top-1 (%)",
             title="the same runs and the published ViT-Lite-7/4")
    for axes in (ax, wide):
        axes.title.set_fontsize(9)
        axes.grid(alpha=0.3, which="both")
        axes.legend(fontsize=6, loc="lower right")
    return fig


def law_row(arm, runs, fitted, boot):
    """One arm's power law with its bootstrap intervals, and the saturating law's parameters beside it."""
    (a, b), points = fitted, runs[["budget_pflop", "test_top1"]].T.values
    return {"arm": arm, "runs": len(runs), "a": a, **dict(zip(("a_low", "a_high"), interval([law[0] for law in boot]))),
            "b": b, **dict(zip(("b_low", "b_high"), interval([law[1] for law in boot]))),
            **dict(zip(("sat_a", "sat_b", "sat_e_inf"), fit_saturating_law(*points)))}


def fit_laws(runs, boots=BOOTSTRAPS):
    """({arm: power law}, {arm: bootstrap laws}, laws.csv's table) of the arms of `runs` measured at 2 budgets or
    more, in their order in `runs` (an arm at one budget has no law)."""
    lawful = [arm for arm in dict.fromkeys(runs["arm"]) if runs.loc[runs["arm"] == arm, "budget_pflop"].nunique() > 1]
    fitted = {arm: fit_power_law(*runs.loc[runs["arm"] == arm, ["budget_pflop", "test_top1"]].T.values)
              for arm in lawful}
    boot = resampled_laws(runs[runs["arm"].isin(lawful)], lawful, boots)
    laws = pd.DataFrame([law_row(arm, runs[runs["arm"] == arm], fitted[arm], boot[arm]) for arm in lawful])
    return fitted, boot, laws


def preregistered_predictions(path):
    """The pre-registered predictions (PREDICTIONS_FILE), or none where the study made none."""
    return pd.read_csv(path) if Path(path).is_file() else pd.DataFrame(columns=PREDICTION_COLUMNS)


def write_scaling_report(folder, boots=BOOTSTRAPS):
    """laws.csv, gaps.csv, comparisons.csv, prediction_checks.csv, report.md and top1_vs_pflop.png in `folder`
    from its `b<budget>/` study folders (budgets not yet there are skipped and named) and its pre-registered
    predictions (preregistered_laws.csv, preregistered_predictions.csv, when present); every gap against the baseline
    arm the budgets' study.json record (`budget_roles`). Returns report.md's text."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ResultsError(f"{folder} is no folder: give the scaling study's folder (it holds b<budget>/ studies)")
    by_budget, pending = read_budgets(folder)
    if len(by_budget) < 2:
        raise ResultsError(f"{folder} holds {len(by_budget)} finished budget folder(s) (b<budget>/results.csv); a law "
                           "needs 2 or more: run the budgets, or point at the scaling study's folder")
    runs = pd.concat(by_budget.values(), ignore_index=True)
    arms = list(dict.fromkeys(runs["arm"]))
    roles = budget_roles(runs)
    baseline = roles.baseline
    if baseline is None:
        recorded = any((Path(study) / STUDY_FILE).is_file() for study in runs["study"].unique())
        raise ResultsError(f"the budgets' studies under {folder} have no baseline arm (their spec's `baseline`, or a "
                           "ViT arm trained from scratch): the gaps are measured against it" if recorded else
                           f"no budget folder under {folder} holds its {STUDY_FILE}, which records the baseline arm "
                           "the gaps are measured against (`vitbench study` writes it)")
    if baseline not in arms:
        raise ResultsError(f"no {baseline!r} runs under {folder}: the gaps are measured against it")
    fitted, boot, laws = fit_laws(runs, boots)
    gaps = {arm: gap_model(runs, arm, baseline, boots) for arm in fitted if arm != baseline}
    rows, absent = [], {}
    for budget, at in by_budget.items():
        for arm in (a for a in at["arm"].unique() if a != baseline):
            stated, missing = budget_comparisons(at, arm, baseline, budget)
            rows += stated
            if missing:
                absent[(arm, budget)] = missing
    rows += [{"arm": arm, "baseline": baseline, "budget_pflop": math.nan, "test": "gap slope g1 (t, pairs - 2 df)",
              "n": gap["pairs"], "estimate": gap["g1"], "low": gap["g1_low"], "high": gap["g1_high"], "p": gap["g1_p"],
              "mdd": detectable_shift(gap["pairs"] - 2) * gap["g1_se"]} for arm, gap in gaps.items()]
    comparisons = stated_verdicts(pd.DataFrame(rows))
    laws_file, predictions_file = folder / LAWS_FILE, folder / PREDICTIONS_FILE
    predicted = preregistered_predictions(predictions_file)
    predicted_laws = pd.read_csv(laws_file) if laws_file.is_file() else pd.DataFrame(columns=["arm"])
    checks = prediction_checks(runs, gaps, predicted, predicted_laws, baseline)
    gap_table = pd.DataFrame(gaps.values())
    for name, table in (("laws", laws), ("gaps", gap_table), ("comparisons", comparisons),
                        ("prediction_checks", checks)):
        atomic_write_text(folder / f"{name}.csv", table.to_csv(index=False))
    measured = predicted[predicted["budget_pflop"].isin(list(by_budget))]
    save_figure(scaling_figure(runs, fitted, boot, gaps, measured, anchor_point(), roles),
                folder / "top1_vs_pflop")
    text = report_text(folder, by_budget, pending, laws, gaps, comparisons, checks, absent, predictions_file)
    atomic_write_text(folder / "report.md", text)
    return text


def crossover_sentence(gap):
    """The gap model's crossover by its interval: a budget only when the whole interval lies within the runs'."""
    if gap["crossover_within"]:
        return (f"{gap['arm']} and {gap['baseline']} cross at {gap['crossover_pflop']:.3g} PFLOP (95% bootstrap CI "
                f"{gap['crossover_low']:.3g} to {gap['crossover_high']:.3g}).")
    return (f"{gap['arm']} vs {gap['baseline']}: crossover not within the measured range (point "
            f"{gap['crossover_pflop']:.3g} PFLOP, 95% bootstrap CI {gap['crossover_low']:.3g} to "
            f"{gap['crossover_high']:.3g}).")


def report_text(folder, by_budget, pending, laws, gaps, comparisons, checks, absent, predictions_file):
    budgets = ", ".join(f"{b:g}" for b in by_budget)
    lines = ["# Compute scaling: test top-1 against training PFLOP", "",
             f"Budgets read (PFLOP): {budgets}; each a study folder `b<budget>/` (command, device, versions and date "
             "in its study.json and report.md).",
             f"Budget folders without results yet (skipped): {', '.join(f'{b:g}' for b in pending) or 'none'}.", "",
             "## Laws (error = 100 - top-1 = a C^-b, C in PFLOP; 95% bootstrap over seeds within budgets)", "",
             "The saturating law a C^-b + e_inf is a check only: with a few budgets far from convergence e_inf is "
             "barely identified.", "", md_table(laws, floatfmt=".4g"), "",
             "## Gap model (gap = g0 + g1 ln C over seed pairs; slope: t-interval; crossover: bootstrap)", "",
             *md_lines(f"- {crossover_sentence(gap)} Slope g1 {gap['g1']:+.2f} points per e-fold of compute (95% CI "
                       f"{gap['g1_low']:+.2f} to {gap['g1_high']:+.2f}, {gap['pairs']} seed pairs)."
                       for gap in gaps.values()),
             "", md_table(pd.DataFrame(gaps.values()), floatfmt=".4g"), "",
             "## Comparisons (Holm's correction over every row with a p-value; beside each null, the difference the "
             "test detects with 80% power)", "",
             md_table(comparisons, floatfmt=".4g"), ""]
    if absent:
        lines += [md("Seed pairs without per-image predictions (no McNemar for them): " + "; ".join(
            f"{arm} at {budget:g}: seeds {seeds}" for (arm, budget), seeds in absent.items()) + "."), ""]
    lines += ["## The outcome beside the pre-registered predictions", ""]
    lines += ([md_table(checks, floatfmt=".4g"), "",
               f"{int(checks['inside'].sum())} of {len(checks)} measured values lie inside their predicted 95% "
               "interval."] if len(checks) else
              [f"No prediction to compare with (`{predictions_file.name}` is absent or has none at these budgets)."])
    lines += ["", "![top-1 vs PFLOP](top1_vs_pflop.png)", ""]
    return "\n".join(lines)


def main(argv=None):
    """`python -m bench.report.scaling FOLDER`: the scaling report of a folder of b<budget>/ studies."""
    parser = argparse.ArgumentParser(prog="python -m bench.report.scaling", description=main.__doc__)
    parser.add_argument("folder", type=Path, help="the scaling study's folder (holding b<budget>/ study folders)")
    args = parser.parse_args(argv)
    try:
        print(write_scaling_report(args.folder))
    except ResultsError as error:
        print(f"scaling: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
