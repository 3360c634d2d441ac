"""Statistics for comparing arms across seeds: intervals, seed-paired differences and the sentences that state them.

The rule the report follows: a difference between two arms is stated only when its 95% interval excludes zero;
otherwise the report says that no difference is detectable at the study's budget. Every function refuses what
would make a statistic quietly wrong (a run counted twice, a missing value) instead of dropping it.
"""
import math

import numpy as np
import pandas as pd
from scipy.stats import t as student_t

RUN = ["arm", "fraction", "seed"]  # what names one training run in a study


def t_interval(values, level=0.95):
    """Student-t interval of the mean of `values` (seeds are few, so a normal interval would be too narrow).

    Returns dict(n, mean, std, low, high, half_width); with one value there is no spread to estimate, so std, low,
    high and half_width are NaN. Non-finite values raise ValueError: silently dropping a failed run would bias the mean.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("t_interval needs at least one value")
    bad = int((~np.isfinite(x)).sum())
    if bad:
        raise ValueError(f"t_interval got {bad} non-finite value(s) (NaN or inf) among {x.size}; fix or drop those "
                         "runs explicitly")
    n, mean = int(x.size), float(x.mean())
    if n == 1:
        return {"n": 1, "mean": mean, "std": math.nan, "low": math.nan, "high": math.nan, "half_width": math.nan}
    std = float(x.std(ddof=1))
    half_width = float(student_t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "low": mean - half_width, "high": mean + half_width,
            "half_width": half_width}


def _refuse_bad_runs(results, value, run):
    """Raise ValueError, naming the runs, if any run appears twice or has a non-finite `value`."""
    repeated = results.duplicated(run, keep=False)
    if repeated.any():
        raise ValueError(f"runs appear more than once for {run} (a statistic never counts one run twice): "
                         f"{results.loc[repeated, run].drop_duplicates().to_dict('records')}")
    missing = ~np.isfinite(results[value].to_numpy(dtype=float))
    if missing.any():
        raise ValueError(f"non-finite {value} (NaN or inf) for runs {results.loc[missing, run].to_dict('records')}")


def arm_summary(results, value="test_top1", keys=("arm", "label", "fraction")):
    """Seeds, mean, std and 95% t-interval of `value` per `keys` group, in first-seen order.

    A run is a `keys` group plus its seed; a repeated run or a non-finite value raises ValueError.
    """
    keys = list(keys)
    _refuse_bad_runs(results, value, [*keys, "seed"])
    rows = []
    for group_key, group in results.groupby(keys, sort=False, dropna=False):
        ci = t_interval(group[value])
        rows.append({**dict(zip(keys, group_key)), "seeds": ci["n"], "mean": ci["mean"], "std": ci["std"],
                     "ci_low": ci["low"], "ci_high": ci["high"]})
    return pd.DataFrame(rows, columns=[*keys, "seeds", "mean", "std", "ci_low", "ci_high"])


def paired_differences(results, baseline="vit", value="test_top1"):
    """Arm minus `baseline` per (arm, fraction), paired by seed, with its 95% t-interval.

    Pairing by seed removes what the two arms share under one seed (data order, split) from the spread, so the
    interval is narrower than one from two independent means. Only seeds run by both arms at that fraction count
    (`seeds` is their number); with fewer than 2 pairs there is no interval and `excludes_zero` is False.
    """
    _refuse_bad_runs(results, value, RUN)
    if not (results["arm"] == baseline).any():
        raise ValueError(f"baseline arm {baseline!r} has no runs")
    base = results.loc[results["arm"] == baseline, ["fraction", "seed", value]]
    paired = results[results["arm"] != baseline].merge(base, on=["fraction", "seed"], how="left",
                                                       suffixes=("", "_baseline"))
    rows = []
    for (arm, fraction), group in paired.groupby(["arm", "fraction"], sort=False):
        diffs = (group[value] - group[f"{value}_baseline"]).dropna()  # NaN only where the baseline lacks the seed
        ci = t_interval(diffs) if len(diffs) else {"mean": math.nan, "std": math.nan, "low": math.nan,
                                                   "high": math.nan}
        rows.append({"arm": arm, "label": group["label"].iloc[0], "fraction": fraction, "seeds": len(diffs),
                     "diff_mean": ci["mean"], "diff_std": ci["std"], "ci_low": ci["low"], "ci_high": ci["high"],
                     "excludes_zero": len(diffs) >= 2 and (ci["low"] > 0 or ci["high"] < 0)})
    columns = ["arm", "label", "fraction", "seeds", "diff_mean", "diff_std", "ci_low", "ci_high", "excludes_zero"]
    return pd.DataFrame(rows, columns=columns).astype({"excludes_zero": bool})


def binomial_se(top1_percent, images):
    """Standard error, in percentage points, of one top-1 accuracy measured on `images` test images.

    It is the test set's own sampling noise, the floor under any seed-to-seed spread: 100 * sqrt(p (1 - p) / n).
    Works elementwise on arrays and Series.
    """
    p = top1_percent / 100
    if np.any((p < 0) | (p > 1)):
        raise ValueError(f"top-1 must lie in [0, 100] percent, got {top1_percent}")
    if np.any(np.asarray(images) <= 0):
        raise ValueError(f"the number of test images must be positive, got {images}")
    return 100 * np.sqrt(p * (1 - p) / images)


def _seeds_paired(n):
    return f"{n} seed{'' if n == 1 else 's'} paired"


def difference_sentence(arm_label, baseline_label, row, unit="points"):
    """One sentence on a `paired_differences` row that states a difference only when its 95% interval excludes zero.

    "Behind" gives the gap as a positive number, so its interval is the baseline-minus-arm one; the no-difference
    sentence keeps the signed arm-minus-baseline difference so the reader sees which way the point estimate leans.
    """
    n = int(row["seeds"])
    if n < 2:
        measured = (f"{arm_label} minus {baseline_label}: {row['diff_mean']:+.1f} {unit}, {_seeds_paired(n)}"
                    if n == 1 else "no seeds paired")
        return (f"No interval can be given for {arm_label} against {baseline_label} with fewer than 2 paired seeds "
                f"({measured}), so no difference is claimed.")
    if row["excludes_zero"]:
        mean, low, high = row["diff_mean"], row["ci_low"], row["ci_high"]
        direction = "ahead of" if mean > 0 else "behind"
        if mean < 0:
            mean, low, high = -mean, -high, -low
        return (f"{arm_label} is {direction} {baseline_label} by {mean:.1f} {unit} "
                f"(95% CI {low:.1f} to {high:.1f}, {_seeds_paired(n)}).")
    return (f"No difference between {arm_label} and {baseline_label} is detectable at this budget "
            f"({arm_label} minus {baseline_label}: {row['diff_mean']:+.1f} {unit}, "
            f"95% CI {row['ci_low']:+.1f} to {row['ci_high']:+.1f}, {_seeds_paired(n)}).")


def threshold_crossing(history, threshold, x):
    """The first `x` (e.g. train_pflop, elapsed_s) at which one run's val_top1 reaches `threshold`; NaN if never.

    Between the last epoch below and the first at or above, x is linearly interpolated, since the crossing happened
    somewhere inside that epoch; nothing is assumed before the first recorded epoch, so if it already crosses, its
    own x is returned. `history` is one run's per-epoch rows in epoch order.
    """
    top1 = history["val_top1"].to_numpy(dtype=float)
    xs = history[x].to_numpy(dtype=float)
    if not (np.isfinite(top1).all() and np.isfinite(xs).all()):
        raise ValueError(f"history has non-finite val_top1 or {x}")
    if np.any(np.diff(xs) < 0):
        raise ValueError(f"{x} decreases between epochs: history must be one run in epoch order")
    crossed = np.flatnonzero(top1 >= threshold)
    if crossed.size == 0:
        return math.nan
    i = int(crossed[0])
    if i == 0:
        return float(xs[0])
    return float(xs[i - 1] + (threshold - top1[i - 1]) * (xs[i] - xs[i - 1]) / (top1[i] - top1[i - 1]))


def images_to_reach(images, top1, target):
    """Training images at which a curve of top-1 against `images` first reaches `target`, interpolated linearly in
    log(images) between the two sizes it crosses between; NaN below the smallest size or beyond the largest."""
    x, y = np.log(np.asarray(images, dtype=float)), np.asarray(top1, dtype=float)
    order = np.argsort(x)
    x, y = x[order], y[order]
    if target <= y[0]:
        return math.nan  # reached at the smallest size already: how much less would do is not measured
    for i in range(len(x) - 1):
        if y[i] < target <= y[i + 1]:
            return float(np.exp(x[i] + (target - y[i]) * (x[i + 1] - x[i]) / (y[i + 1] - y[i])))
    return math.nan  # never reached: more than the largest size would be needed


def data_multiplier(results, arm, baseline="vit", value="test_top1"):
    """Per training-set size N of `arm`: how many training images `baseline` needs to match `arm`'s top-1 at N,
    divided by N. Paired by seed (each seed's baseline curve against the same seed's arm), then mean and 95%
    t-interval over the seeds where the baseline's curve reaches it; `beyond` counts seeds where it never does
    within the sizes measured (the multiplier is then larger than the largest size / N), `below` seeds where the
    baseline's smallest size already matches it."""
    _refuse_bad_runs(results, value, RUN)
    rows = []
    ours = results[results["arm"] == arm]
    theirs = results[results["arm"] == baseline]
    for n_images, at_size in ours.groupby("train_images", sort=True):
        ratios, beyond, below = [], 0, 0
        for seed, target in zip(at_size["seed"], at_size[value]):
            curve = theirs[theirs["seed"] == seed]
            if len(curve) < 2:
                continue
            needed = images_to_reach(curve["train_images"], curve[value], target)
            if math.isnan(needed):
                beyond += target > curve[value].max()
                below += target <= curve.sort_values("train_images")[value].iloc[0]
            else:
                ratios.append(needed / n_images)
        ci = t_interval(ratios) if ratios else {"n": 0, "mean": math.nan, "low": math.nan, "high": math.nan}
        rows.append({"arm": arm, "baseline": baseline, "train_images": int(n_images), "seeds": ci["n"],
                     "multiplier": ci["mean"], "ci_low": ci["low"], "ci_high": ci["high"], "beyond": int(beyond),
                     "below": int(below)})
    return pd.DataFrame(rows, columns=["arm", "baseline", "train_images", "seeds", "multiplier", "ci_low", "ci_high",
                                       "beyond", "below"])
