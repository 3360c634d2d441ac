"""Statistics for comparing arms across seeds: intervals, seed-paired differences and the sentences that state them.

The rule the report follows: a difference between two arms is stated only when its 95% interval excludes zero;
otherwise the report says that no difference is detectable at the study's budget. Every function refuses what
would make a statistic quietly wrong (a run counted twice, a missing value) instead of dropping it.

Beside them: the data multiplier with a bootstrap interval on the log scale; per-image paired tests of two runs on
the same test images (exact McNemar, combined over seed pairs); Holm's correction over the comparisons a report
states; and the minimum difference a null result could have detected (80% power).
"""
import math

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.stats import binomtest, nct, norm
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


def paired_differences(results, baseline, value="test_top1"):
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


def directed_multiplier(images, top1, target, n_images):
    """log(images a curve of top-1 against `images` needs to match `target`) - log(n_images), searched from
    `n_images` (a measured size) towards the side the target lies on, interpolated on log(images); and how it is
    censored: "" (measured), "below" (the curve is above the target down to its smallest size: the value returned
    is an upper bound) or "beyond" (below it up to its largest size: a lower bound).

    Searching from n_images, not from the curve's start, makes the multiplier's sign the direct difference's:
    it is below 1 exactly when the curve at n_images is above `target`, even where a noisy curve dips."""
    x, y = np.log(np.asarray(images, dtype=float)), np.asarray(top1, dtype=float)
    order = np.argsort(x)
    x, y = x[order], y[order]
    at = np.flatnonzero(np.isclose(x, math.log(n_images)))
    if at.size != 1:
        raise ValueError(f"{n_images} training images is not one of the curve's sizes {np.exp(x).round().tolist()}")
    i, here = int(at[0]), math.log(n_images)
    if target == y[i]:
        return 0.0, ""
    steps = range(i, 0, -1) if target < y[i] else range(i + 1, len(x))
    for j in steps:
        lo, hi = (j - 1, j)
        if (target < y[i] and y[lo] <= target) or (target > y[i] and y[hi] >= target):
            return float(x[lo] + (target - y[lo]) * (x[hi] - x[lo]) / (y[hi] - y[lo]) - here), ""
    return (float(x[0] - here), "below") if target < y[i] else (float(x[-1] - here), "beyond")


def order_interval(values, level):
    """(low, high): the ranks, among `values` sorted, of the order statistics that bound their `level` percentile
    interval. No interpolation between two draws, so a statistic and any sign-preserving transform of it give
    intervals that agree on their sign."""
    tail, n = (1 - level) / 2, len(values)
    return int(math.floor(tail * n)), int(math.ceil((1 - tail) * n)) - 1


def data_multiplier(results, arm, baseline, value="test_top1", boots=4000, level=0.95, seed=0):
    """Per training-set size N of `arm`: how many training images `baseline` needs to match `arm`'s top-1 at N,
    divided by N, with a 95% bootstrap interval over seeds on the log scale; and the direct difference (arm minus
    baseline at N, points) with the same draws.

    Each draw takes the paired seeds with replacement, averages the arm's top-1 at N and the baseline's curve size
    by size over them, and reads the multiplier off the averaged curve (`directed_multiplier`). Its sign is the
    direct difference's in every draw, and both intervals are the same order statistics of the draws, so the
    multiplier's interval includes 1 exactly when the direct difference's includes 0.

    Censored draws (the averaged baseline curve never reaches the target: "beyond", or is above it at its smallest
    size already: "below") are kept as bounds, not dropped: ordered as +inf / -inf, so an interval end that falls on
    one is open (ci_high = inf, ci_low = 0) or, when it is the other end, the bound itself (ci_low = largest/N
    for a "beyond" draw: more than that). `bound` says the same of the point estimate (the multiplier of the mean
    curves): "less than", "more than" or "". `below` and `beyond` count the seeds whose own curve is censored at N.

    With k seeds there are C(2k-1, k) distinct resamples (3 with two seeds: the interval is then the seeds' range,
    not a 95% interval); a claim needs the direct difference's t-interval as well (`multiplier_lines`).
    """
    _refuse_bad_runs(results, value, RUN)
    rng = np.random.default_rng(seed)
    rows = []
    ours = results[results["arm"] == arm]
    theirs = results[results["arm"] == baseline].pivot(index="seed", columns="train_images", values=value)
    for n_images, at_size in ours.groupby("train_images", sort=True):
        target = at_size.set_index("seed")[value]
        curves = theirs.loc[theirs.index.isin(target.index)].dropna(axis=1)  # sizes every paired seed has
        row = {"arm": arm, "baseline": baseline, "train_images": int(n_images), "seeds": len(curves),
               "multiplier": math.nan, "ci_low": math.nan, "ci_high": math.nan, "bound": "", "excludes_one": False,
               "beyond": 0, "below": 0, "diff": math.nan, "diff_low": math.nan, "diff_high": math.nan}
        if len(curves) and n_images in curves.columns and curves.shape[1] >= 2:
            sizes, grid, goal = curves.columns.to_numpy(), curves.to_numpy(), target[curves.index].to_numpy()
            own = [directed_multiplier(sizes, g, t, n_images)[1] for g, t in zip(grid, goal)]
            log_m, censor = directed_multiplier(sizes, grid.mean(0), goal.mean(), n_images)
            at = list(sizes).index(n_images)
            row.update(multiplier=math.exp(log_m), bound={"below": "less than", "beyond": "more than"}.get(censor, ""),
                       beyond=own.count("beyond"), below=own.count("below"),
                       diff=float(goal.mean() - grid[:, at].mean()))
            if len(curves) >= 2:
                row.update(_bootstrap_multiplier(sizes, grid, goal, n_images, rng.integers(
                    0, len(curves), size=(boots, len(curves))), level))
        rows.append(row)
    return pd.DataFrame(rows, columns=["arm", "baseline", "train_images", "seeds", "multiplier", "ci_low", "ci_high",
                                       "bound", "excludes_one", "beyond", "below", "diff", "diff_low", "diff_high"])


def _bootstrap_multiplier(sizes, grid, goal, n_images, draws, level):
    """The multiplier's and the direct difference's intervals over seed resamples `draws` (boots x seeds)."""
    at = list(sizes).index(n_images)
    counts = np.stack([np.bincount(d, minlength=len(goal)) for d in draws]) / draws.shape[1]  # weights per seed
    unique, inverse = np.unique(counts, axis=0, return_inverse=True)  # a draw's statistics depend on its counts
    curves, targets = unique @ grid, unique @ goal
    per_unique = [directed_multiplier(sizes, curve, t, n_images) for curve, t in zip(curves, targets)]
    high_end = np.array([math.inf if c == "beyond" else v for v, c in per_unique])[inverse.ravel()]
    low_end = np.array([-math.inf if c == "below" else v for v, c in per_unique])[inverse.ravel()]
    diffs = (targets - curves[:, at])[inverse.ravel()]
    lo, hi = order_interval(diffs, level)
    signs = np.sort(np.sign(diffs))  # the multiplier's sign in every draw (log m > 0 exactly when diff > 0)
    return {"ci_low": math.exp(np.sort(low_end)[lo]), "ci_high": math.exp(np.sort(high_end)[hi]),
            "excludes_one": bool(signs[lo] > 0 or signs[hi] < 0),
            "diff_low": float(np.sort(diffs)[lo]), "diff_high": float(np.sort(diffs)[hi])}


def holm(pvalues):
    """Holm-Bonferroni adjusted p-values, in the order given: the i-th smallest of m is multiplied by m - i + 1,
    then made non-decreasing in that order (step-down) and capped at 1. Rejecting where the adjusted p-value is
    below alpha holds the family-wise error at alpha over the m comparisons, under any dependence between them."""
    p = np.asarray(pvalues, dtype=float)
    if p.ndim != 1 or not np.all(np.isfinite(p) & (p >= 0) & (p <= 1)):
        raise ValueError(f"holm needs a list of p-values in [0, 1], got {pvalues!r}")
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((p.size - np.arange(p.size)) * p[order]))
    out = np.empty_like(p)
    out[order] = adjusted
    return out


def t_test_power(shift, df, alpha=0.05):
    """Power of a two-sided t-test at `alpha` with `df` degrees of freedom when the true effect is `shift` standard
    errors: the noncentral t's mass beyond both critical values."""
    critical = student_t.ppf(1 - alpha / 2, df)
    # the lower tail as the mirrored upper one: scipy's nct.cdf far in the lower tail returns NaN, its sf does not
    return float(nct.sf(critical, df, shift) + nct.sf(critical, df, -shift))


def detectable_shift(df, power=0.8, alpha=0.05):
    """The true effect, in standard errors, that a two-sided t-test with `df` degrees of freedom detects with
    probability `power` (solved on scipy's noncentral t)."""
    if not (df >= 1 and 0 < power < 1 and 0 < alpha < 1):
        raise ValueError(f"a detectable difference needs df >= 1 (n >= 2 pairs), power and alpha in (0, 1); got "
                         f"df={df}, power={power}, alpha={alpha}")
    high = 1.0
    while t_test_power(high, df, alpha) < power:  # power grows with the effect: bracket, then solve
        high *= 2
    return float(brentq(lambda shift: t_test_power(shift, df, alpha) - power, 0.0, high, xtol=1e-12))


def paired_t_power(difference, n, std, alpha=0.05):
    """Power of a two-sided paired t-test on `n` pairs whose differences have standard deviation `std`, when the
    true mean difference is `difference`."""
    return t_test_power(difference * math.sqrt(n) / std, n - 1, alpha)


def minimum_detectable_difference(n, std, power=0.8, alpha=0.05):
    """The smallest true mean difference a two-sided paired t-test at `alpha` on `n` pairs (differences' standard
    deviation `std`, in the unit of the result) detects with probability `power`; printed beside a null result so
    the reader sees what the study could have found."""
    if n < 2 or not (math.isfinite(std) and std > 0):
        raise ValueError(f"a detectable difference needs n >= 2 pairs and std > 0; got n={n}, std={std}")
    return detectable_shift(n - 1, power, alpha) * std / math.sqrt(n)


def mcnemar(correct_a, correct_b, boots=4000, level=0.95, seed=0):
    """Two runs scored on the same images (`correct_*`: one bool per image): exact two-sided McNemar test and a
    paired bootstrap interval of the accuracy difference a - b (points) over images.

    Only discordant images (right in one run, wrong in the other) carry information; under no difference each is
    equally likely either way, so the p-value is the binomial test of a_only among a_only + b_only. Resampling
    images is resampling the kinds of image (a only, b only, agreeing), drawn as multinomial counts. The models are
    fixed: this is the test set's noise, not the seeds'. Returns one pair as `combine_mcnemar` returns several."""
    a, b = np.asarray(correct_a), np.asarray(correct_b)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0 or a.dtype != bool or b.dtype != bool:
        raise ValueError("mcnemar needs two equally long 1-d boolean arrays, one entry per image, both runs scored on "
                         f"the same images in the same order; got {a.dtype}{a.shape} and {b.dtype}{b.shape}")
    a_only, b_only = int((a & ~b).sum()), int((~a & b).sum())
    return combine_mcnemar([{"images": int(a.size), "a_only": a_only, "b_only": b_only}], boots, level, seed)


def discordant_p(a_only, b_only):
    """Exact two-sided McNemar p-value from the discordant counts (1 when there are none)."""
    total = a_only + b_only
    return float(binomtest(a_only, total, 0.5).pvalue) if total else 1.0


def combine_mcnemar(pairs, boots=4000, level=0.95, seed=0):
    """One exact test over several seed pairs of a budget (`pairs`: `mcnemar` results): the discordant counts are
    summed and tested as one binomial; the accuracy difference over all pairs' images with a bootstrap interval.

    Under no difference every discordant image of every pair is a fair coin, so the sum is Binomial(total, 1/2)
    exactly: no approximation, and each pair weighs by how many images it disagrees on. Fisher's or Stouffer's
    combination would treat the pairs' p-values as independent tests, which they are not (the same 10,000 images
    in every pair), and would weigh a pair that barely disagrees like one that disagrees a lot. As `mcnemar`, it
    treats the trained models as fixed: the spread over seeds is the seed-paired t-test's job."""
    pairs = list(pairs)
    if not pairs:
        raise ValueError("combine_mcnemar needs at least one pair of runs")
    a_only, b_only = sum(p["a_only"] for p in pairs), sum(p["b_only"] for p in pairs)
    images = sum(p["images"] for p in pairs)
    rng = np.random.default_rng(seed)
    diffs = np.zeros(boots)
    for p in pairs:  # images resampled within each pair (a stratum), as `mcnemar` does for one
        counts = rng.multinomial(p["images"], np.array([p["a_only"], p["b_only"], p["images"] - p["a_only"] -
                                                        p["b_only"]]) / p["images"], size=boots)
        diffs += counts[:, 0] - counts[:, 1]
    diffs = np.sort(100 * diffs / images)
    lo, hi = order_interval(diffs, level)
    return {"pairs": len(pairs), "images": images, "a_only": a_only, "b_only": b_only,
            "p": discordant_p(a_only, b_only), "diff": 100 * (a_only - b_only) / images, "low": float(diffs[lo]),
            "high": float(diffs[hi])}


def mcnemar_detectable_difference(discordant, images, power=0.8, alpha=0.05):
    """The accuracy difference (points) a two-sided McNemar test on `images` images with `discordant` of them
    discordant detects with probability `power`, by the normal approximation (the binomial on hundreds of discordant
    images is close to normal): (z_(1-alpha/2) + z_power) * sqrt(discordant) / images."""
    if images <= 0 or not 0 <= discordant <= images:
        raise ValueError(f"need 0 <= discordant <= images and images > 0, got {discordant} of {images}")
    return float(100 * (norm.ppf(1 - alpha / 2) + norm.ppf(power)) * math.sqrt(discordant) / images)
