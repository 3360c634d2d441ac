"""Compute-scaling laws: each arm's test error against its training compute, the gap between two arms, and the
budget where the gap changes sign, with intervals from a bootstrap over seeds.

The law is a power law in compute, error(C) = a * C**-b (error = 100 - top-1, C in PFLOP), fitted by least squares
on log error against log C, every run one point. Runs far from convergence (train loss well above its floor) sit
on the straight part of a saturating law a * C**-b + e_inf, where e_inf is not identifiable from a few budgets; a
law with that third parameter is fitted only as a check, never to extrapolate.

Intervals resample seeds with replacement within each budget (a run's seed keeps its pair across arms, so a gap's
interval is a paired one) and refit; the 2.5% and 97.5% quantiles of what is refitted are the 95% interval.
"""
import math

import numpy as np
import pandas as pd

LEVEL = 0.95
BOOTSTRAPS = 4000


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
    laws = {arm: [] for arm in arms}
    for _ in range(boots):
        drawn = pd.concat([results[(results["budget_pflop"] == budget) & (results["seed"] == s)]
                           for budget, seeds in by_budget.items() for s in rng.choice(seeds, size=len(seeds))])
        for arm in arms:
            runs = drawn[drawn["arm"] == arm]
            laws[arm].append(fit_power_law(runs["budget_pflop"], runs["test_top1"]))
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
