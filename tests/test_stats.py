"""bench.report.stats against values worked out by hand.

Student-t quantiles come from closed forms, not from scipy: with 1 degree of freedom t_p = tan(pi (p - 1/2)),
with 2 degrees of freedom t_p = a sqrt(2 / (1 - a^2)) where a = 2p - 1.
"""
import math

import numpy as np
import pandas as pd
import pytest

from bench.report.stats import (
    arm_summary,
    binomial_se,
    difference_sentence,
    paired_differences,
    t_interval,
    threshold_crossing,
)

T_975_DF1 = math.tan(math.pi * 0.475)  # 12.7062...
T_975_DF2 = 0.95 * math.sqrt(2 / (1 - 0.95**2))  # 4.30265...
T_950_DF2 = 0.90 * math.sqrt(2 / (1 - 0.90**2))  # 2.91998...


def runs(rows):
    """A results frame from (arm, fraction, seed, test_top1) tuples; the label is the arm's upper-cased name."""
    return pd.DataFrame([{"arm": arm, "label": arm.upper(), "fraction": fraction, "seed": seed, "test_top1": top1}
                         for arm, fraction, seed, top1 in rows])


def test_t_interval_of_one_two_three():
    ci = t_interval([1.0, 2.0, 3.0])
    assert ci["n"] == 3
    assert ci["mean"] == pytest.approx(2.0)
    assert ci["std"] == pytest.approx(1.0)
    assert ci["half_width"] == pytest.approx(T_975_DF2 / math.sqrt(3), rel=1e-12)
    assert ci["half_width"] == pytest.approx(2.4841, abs=1e-4)
    assert ci["low"] == pytest.approx(2.0 - 2.4841, abs=1e-4)
    assert ci["high"] == pytest.approx(2.0 + 2.4841, abs=1e-4)


def test_t_interval_two_values_and_other_level():
    ci = t_interval(pd.Series([0.0, 2.0]))  # mean 1, std sqrt(2): half width t * sqrt(2) / sqrt(2) = t
    assert ci["half_width"] == pytest.approx(T_975_DF1, rel=1e-12)
    assert (ci["low"], ci["high"]) == pytest.approx((1 - T_975_DF1, 1 + T_975_DF1), rel=1e-12)
    assert t_interval([1.0, 2.0, 3.0], level=0.90)["half_width"] == pytest.approx(T_950_DF2 / math.sqrt(3), rel=1e-12)


def test_t_interval_of_one_value_has_no_interval():
    ci = t_interval([71.5])
    assert ci["n"] == 1 and ci["mean"] == 71.5
    assert all(math.isnan(ci[k]) for k in ("std", "low", "high", "half_width"))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_t_interval_refuses_non_finite(bad):
    with pytest.raises(ValueError, match="non-finite"):
        t_interval([1.0, bad, 3.0])


def test_t_interval_refuses_nothing_and_bad_level():
    with pytest.raises(ValueError, match="at least one"):
        t_interval([])
    with pytest.raises(ValueError, match="level"):
        t_interval([1.0, 2.0], level=95)


def test_arm_summary_per_arm_and_fraction_in_first_seen_order():
    results = runs([("t2t-performer", 0.5, 0, 60.0), ("vit", 0.5, 0, 1.0), ("vit", 0.5, 1, 2.0), ("vit", 0.5, 2, 3.0),
                    ("vit", 1.0, 0, 80.0), ("t2t-performer", 0.5, 1, 62.0)])
    table = arm_summary(results)
    assert list(table.columns) == ["arm", "label", "fraction", "seeds", "mean", "std", "ci_low", "ci_high"]
    assert list(zip(table["arm"], table["fraction"])) == [("t2t-performer", 0.5), ("vit", 0.5), ("vit", 1.0)]
    assert list(table["seeds"]) == [2, 3, 1]
    assert list(table["label"]) == ["T2T-PERFORMER", "VIT", "VIT"]
    t2t, vit, single = table.to_dict("records")
    assert (t2t["mean"], t2t["std"]) == pytest.approx((61.0, math.sqrt(2)))
    assert (t2t["ci_low"], t2t["ci_high"]) == pytest.approx((61 - T_975_DF1, 61 + T_975_DF1))
    assert (vit["mean"], vit["std"]) == pytest.approx((2.0, 1.0))
    assert (vit["ci_low"], vit["ci_high"]) == pytest.approx((2 - 2.4841, 2 + 2.4841), abs=1e-4)
    assert single["mean"] == 80.0 and math.isnan(single["std"]) and math.isnan(single["ci_low"])


def test_arm_summary_other_value_column():
    results = runs([("vit", 1.0, 0, 50.0), ("vit", 1.0, 1, 52.0)]).assign(test_top5=[90.0, 94.0])
    assert arm_summary(results, value="test_top5")["mean"].item() == pytest.approx(92.0)


def test_arm_summary_refuses_a_run_counted_twice():
    results = runs([("vit", 1.0, 0, 50.0), ("vit", 1.0, 1, 52.0), ("vit", 1.0, 1, 52.0)])
    with pytest.raises(ValueError, match="more than once"):
        arm_summary(results)


def test_arm_summary_refuses_nan():
    with pytest.raises(ValueError, match="non-finite test_top1"):
        arm_summary(runs([("vit", 1.0, 0, 50.0), ("vit", 1.0, 1, math.nan)]))


def test_paired_constant_difference_has_zero_width_and_excludes_zero():
    # rows shuffled so that pairing must go by seed, not by position; seed 3 has no baseline and is left out
    results = runs([("vit", 1.0, 0, 70.0), ("vit", 1.0, 1, 72.0), ("vit", 1.0, 2, 74.0),
                    ("t2t-transformer", 1.0, 2, 75.5), ("t2t-transformer", 1.0, 0, 71.5),
                    ("t2t-transformer", 1.0, 3, 10.0), ("t2t-transformer", 1.0, 1, 73.5)])
    row = paired_differences(results, "vit").to_dict("records")
    assert row == [{"arm": "t2t-transformer", "label": "T2T-TRANSFORMER", "fraction": 1.0, "seeds": 3,
                    "diff_mean": 1.5, "diff_std": 0.0, "ci_low": 1.5, "ci_high": 1.5, "excludes_zero": True}]


def test_paired_interval_including_zero():
    # differences 1, -1, 2: mean 2/3, std sqrt(7/3)
    results = runs([("vit", 0.5, 0, 70.0), ("vit", 0.5, 1, 72.0), ("vit", 0.5, 2, 74.0),
                    ("cnn", 0.5, 0, 71.0), ("cnn", 0.5, 1, 71.0), ("cnn", 0.5, 2, 76.0)])
    row = paired_differences(results, "vit").iloc[0]
    half = T_975_DF2 * math.sqrt(7 / 3) / math.sqrt(3)
    assert row["seeds"] == 3
    assert (row["diff_mean"], row["diff_std"]) == pytest.approx((2 / 3, math.sqrt(7 / 3)))
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((2 / 3 - half, 2 / 3 + half))
    assert row["ci_low"] < 0 < row["ci_high"]
    assert not row["excludes_zero"]


def test_paired_per_fraction_with_too_few_pairs():
    results = runs([("vit", 0.1, 0, 30.0), ("vit", 1.0, 0, 70.0), ("vit", 1.0, 1, 72.0),
                    ("cnn", 0.1, 0, 28.0), ("cnn", 1.0, 0, 66.0), ("cnn", 1.0, 1, 68.0),
                    ("vit-mac-matched", 0.5, 0, 50.0)])
    table = paired_differences(results, "vit")
    assert list(zip(table["arm"], table["fraction"], table["seeds"])) == [
        ("cnn", 0.1, 1), ("cnn", 1.0, 2), ("vit-mac-matched", 0.5, 0)]
    assert table["excludes_zero"].dtype == bool
    one, two, none = table.to_dict("records")
    assert one["diff_mean"] == -2.0 and math.isnan(one["ci_low"]) and not one["excludes_zero"]
    assert (two["diff_mean"], two["ci_low"], two["ci_high"], two["excludes_zero"]) == (-4.0, -4.0, -4.0, True)
    assert math.isnan(none["diff_mean"]) and not none["excludes_zero"]


def test_paired_other_baseline_and_refusals():
    results = runs([("vit", 1.0, 0, 70.0), ("cnn", 1.0, 0, 66.0)])
    assert list(paired_differences(results, baseline="cnn")["diff_mean"]) == [4.0]
    with pytest.raises(ValueError, match="baseline"):
        paired_differences(results, baseline="t2t-performer")
    with pytest.raises(ValueError, match="more than once"):
        paired_differences(pd.concat([results, results.iloc[:1]]), "vit")
    with pytest.raises(ValueError, match="non-finite"):
        paired_differences(results.assign(test_top1=[70.0, math.nan]), "vit")


def test_binomial_se():
    assert binomial_se(50, 10000) == pytest.approx(0.5, rel=1e-12)
    assert binomial_se(90, 100) == pytest.approx(3.0, rel=1e-12)  # 100 * sqrt(0.09 / 100)
    assert binomial_se(100, 10000) == 0
    assert list(binomial_se(pd.Series([50.0, 90.0]), 100)) == pytest.approx([5.0, 3.0])
    with pytest.raises(ValueError, match="top-1"):
        binomial_se(101, 100)
    with pytest.raises(ValueError, match="images"):
        binomial_se(50, 0)


def row(diff_mean, ci_low, ci_high, seeds=3):
    return {"seeds": seeds, "diff_mean": diff_mean, "ci_low": ci_low, "ci_high": ci_high,
            "excludes_zero": seeds >= 2 and (ci_low > 0 or ci_high < 0)}


def test_sentence_states_a_difference_only_when_the_interval_excludes_zero():
    assert difference_sentence("T2T-ViT", "ViT", row(2.1, 0.4, 3.8)) == (
        "T2T-ViT is ahead of ViT by 2.1 points (95% CI 0.4 to 3.8, 3 seeds paired).")
    assert difference_sentence("T2T-ViT", "ViT", row(-2.1, -3.8, -0.4)) == (
        "T2T-ViT is behind ViT by 2.1 points (95% CI 0.4 to 3.8, 3 seeds paired).")
    assert difference_sentence("T2T-ViT", "ViT", row(0.6, -1.2, 2.4)) == (
        "No difference between T2T-ViT and ViT is detectable at this budget "
        "(T2T-ViT minus ViT: +0.6 points, 95% CI -1.2 to +2.4, 3 seeds paired).")
    assert difference_sentence("CNN", "ViT", row(-0.6, -2.4, 1.2, seeds=2), unit="pp") == (
        "No difference between CNN and ViT is detectable at this budget "
        "(CNN minus ViT: -0.6 pp, 95% CI -2.4 to +1.2, 2 seeds paired).")


def test_sentence_with_fewer_than_two_pairs_claims_nothing():
    one = difference_sentence("CNN", "ViT", row(-2.0, math.nan, math.nan, seeds=1))
    assert one == ("No interval can be given for CNN against ViT with fewer than 2 paired seeds "
                   "(CNN minus ViT: -2.0 points, 1 seed paired), so no difference is claimed.")
    none = difference_sentence("CNN", "ViT", row(math.nan, math.nan, math.nan, seeds=0))
    assert none == ("No interval can be given for CNN against ViT with fewer than 2 paired seeds "
                    "(no seeds paired), so no difference is claimed.")


def test_sentence_from_a_paired_differences_row():
    results = runs([("vit", 1.0, 0, 70.0), ("vit", 1.0, 1, 72.0), ("vit", 1.0, 2, 74.0),
                    ("cnn", 1.0, 0, 67.0), ("cnn", 1.0, 1, 69.0), ("cnn", 1.0, 2, 71.0)])
    assert difference_sentence("CNN", "ViT", paired_differences(results, "vit").iloc[0]) == (
        "CNN is behind ViT by 3.0 points (95% CI 3.0 to 3.0, 3 seeds paired).")


def test_threshold_crossing_interpolates_inside_the_crossing_epoch():
    history = pd.DataFrame({"epoch": [1, 2, 3], "val_top1": [10.0, 30.0, 50.0], "train_pflop": [1.0, 2.0, 3.0]})
    assert threshold_crossing(history, 40.0, "train_pflop") == pytest.approx(2.5)  # halfway from 30 to 50
    assert threshold_crossing(history, 35.0, "train_pflop") == pytest.approx(2.25)
    assert threshold_crossing(history, 30.0, "train_pflop") == pytest.approx(2.0)  # reaching counts
    assert threshold_crossing(history, 5.0, "train_pflop") == 1.0  # first epoch already crosses: its own x
    assert math.isnan(threshold_crossing(history, 60.0, "train_pflop"))


def test_threshold_crossing_takes_the_first_crossing_on_another_axis():
    history = pd.DataFrame({"val_top1": [10.0, 45.0, 35.0, 50.0], "elapsed_s": [60.0, 130.0, 200.0, 270.0]})
    assert threshold_crossing(history, 40.0, "elapsed_s") == pytest.approx(60 + 70 * 30 / 35)
    assert math.isnan(threshold_crossing(history.iloc[:0], 40.0, "elapsed_s"))


def test_threshold_crossing_refuses_bad_histories():
    with pytest.raises(ValueError, match="non-finite"):
        threshold_crossing(pd.DataFrame({"val_top1": [10.0, math.nan], "elapsed_s": [1.0, 2.0]}), 5.0, "elapsed_s")
    with pytest.raises(ValueError, match="decreases"):
        threshold_crossing(pd.DataFrame({"val_top1": [10.0, 20.0], "elapsed_s": [2.0, 1.0]}), 15.0, "elapsed_s")


def test_directed_multiplier_searches_from_n_towards_the_target():
    from bench.report.stats import directed_multiplier

    images, top1 = [1000, 2000, 4000, 8000], [40.0, 50.0, 60.0, 70.0]  # +10 points per doubling
    assert directed_multiplier(images, top1, 55.0, 1000) == (pytest.approx(math.log(2 * 2**0.5)), "")
    assert directed_multiplier(images, top1, 70.0, 8000) == (0.0, "")
    assert directed_multiplier(images, top1, 75.0, 4000) == (pytest.approx(math.log(2)), "beyond")  # > 8000 / 4000
    assert directed_multiplier(images, top1, 35.0, 4000) == (pytest.approx(math.log(1 / 4)), "below")  # < 1000 / 4000
    dipping = [40.0, 54.0, 52.0, 53.0]  # a noisy curve above 53.5 at 2000 only: from 8000 the target lies above
    assert directed_multiplier(images, dipping, 53.5, 8000) == (0.0, "beyond")
    # below the curve at 8000: down to the nearest crossing, between 1000 and 2000
    assert directed_multiplier(images, dipping, 51.0, 8000)[0] == pytest.approx(math.log(2 ** (11 / 14) / 8))
    with pytest.raises(ValueError, match="not one of the curve's sizes"):
        directed_multiplier(images, top1, 50.0, 3000)


def test_data_multiplier_against_a_known_curve():
    from bench.report.stats import data_multiplier

    rows = []
    for seed, (shift, gain) in enumerate(((0.0, 10.0), (1.0, 10.0), (-1.0, 10.0))):
        for n in (1000, 2000, 4000, 8000):
            vit = 10 * math.log2(n) - 60 + shift  # the ViT gains 10 points per doubling of the data
            rows.append({"arm": "vit", "label": "ViT", "fraction": n / 8000, "seed": seed, "train_images": n,
                         "test_top1": vit})
            rows.append({"arm": "t2t-performer", "label": "T2T", "fraction": n / 8000, "seed": seed,
                         "train_images": n, "test_top1": vit + gain})  # = the ViT at twice the data
    table = data_multiplier(pd.DataFrame(rows), "t2t-performer", "vit")
    assert table["train_images"].tolist() == [1000, 2000, 4000, 8000]
    reached = table[table["train_images"] < 8000]
    assert reached["multiplier"].tolist() == pytest.approx([2.0, 2.0, 2.0]) and (reached["seeds"] == 3).all()
    assert reached["ci_low"].tolist() == pytest.approx([2.0] * 3) and reached["ci_high"].tolist() == pytest.approx(
        [2.0] * 3)  # the same multiplier in every seed: every resample gives it
    assert reached["excludes_one"].all() and reached["diff"].tolist() == pytest.approx([10.0] * 3)
    last = table.iloc[-1]  # at 8000 the ViT never gets there: a bound, kept, not dropped
    assert last["beyond"] == 3 and last["seeds"] == 3 and last["bound"] == "more than"
    assert last["multiplier"] == pytest.approx(1.0) and last["ci_high"] == math.inf and last["excludes_one"]


def multiplier_runs(vit, t2t, sizes=(1000, 2000, 4000, 8000)):
    """Results with one ViT curve and one T2T curve per seed (lists of top-1 per size)."""
    return pd.DataFrame([{"arm": arm, "label": arm, "fraction": n / sizes[-1], "seed": seed, "train_images": n,
                          "test_top1": top1}
                         for arm, curves in (("vit", vit), ("t2t-performer", t2t))
                         for seed, curve in enumerate(curves) for n, top1 in zip(sizes, curve)])


def test_a_censored_seed_is_kept_as_a_bound():
    """Seed 1's T2T score at 4000 is beyond the ViT's curve: its draws make the interval open above, where the old
    t-interval dropped the seed and reported seed 0 alone."""
    from bench.report.stats import data_multiplier

    vit = [[40.0, 50.0, 60.0, 70.0]] * 2
    t2t = [[0.0, 0.0, 65.0, 0.0], [0.0, 0.0, 75.0, 0.0]]
    row = data_multiplier(multiplier_runs(vit, t2t), "t2t-performer", "vit").set_index("train_images").loc[4000]
    assert row["seeds"] == 2 and row["beyond"] == 1 and row["bound"] == ""
    assert row["multiplier"] == pytest.approx(2.0)  # the mean target, 70, is the ViT at 8000
    assert row["ci_low"] == pytest.approx(2**0.5) and row["ci_high"] == math.inf and row["excludes_one"]


@pytest.mark.parametrize("trial", range(40))
def test_the_multiplier_interval_includes_1_exactly_when_the_direct_difference_includes_0(trial):
    """Random noisy curves (dips, crossings, censoring): the bootstrap multiplier and the direct difference agree."""
    from bench.report.stats import data_multiplier

    rng = np.random.default_rng(trial)
    seeds, sizes = int(rng.integers(2, 5)), (1000, 2000, 4000, 8000, 16000)
    base = 40 + rng.uniform(0, 8) * np.log2(np.array(sizes) / 1000)
    vit = [base + rng.normal(0, 2, len(sizes)) for _ in range(seeds)]
    t2t = [curve + rng.normal(rng.normal(0, 2), 2, len(sizes)) for curve in vit]
    table = data_multiplier(multiplier_runs(vit, t2t, sizes), "t2t-performer", "vit", boots=400, seed=trial)
    for row in table.itertuples():
        direct_excludes = row.diff_low > 0 or row.diff_high < 0
        assert row.excludes_one == direct_excludes
        if not direct_excludes:
            assert row.ci_low <= 1 <= row.ci_high
        else:
            assert (row.ci_low >= 1) == (row.diff_low > 0) and (row.ci_high <= 1) == (row.diff_high < 0)
        if row.bound:  # a bound at the edge of the sizes: the side it lies on is the difference's sign
            assert row.bound == ("less than" if row.diff < 0 else "more than")
        else:
            assert np.sign(math.log(row.multiplier)) == np.sign(row.diff)


def test_holm_against_a_hand_worked_case():
    from bench.report.stats import holm

    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04 -> made non-decreasing: 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1, and monotone
    assert holm([0.02]) == pytest.approx([0.02])
    for bad in ([0.5, float("nan")], [1.2], [-0.1]):
        with pytest.raises(ValueError, match="p-values in"):
            holm(bad)


# TTestPower().solve_power(nobs=n, alpha=0.05, power=0.8, alternative="two-sided"), statsmodels 0.15.0: the effect
# in standard deviations of the differences, computed by another implementation than ours
STATSMODELS_EFFECT = {2: 11.549889754978167, 3: 3.264043552819638, 6: 1.4345451395119289, 10: 0.9960019107624178}


@pytest.mark.parametrize("n", sorted(STATSMODELS_EFFECT))
def test_minimum_detectable_difference_against_statsmodels(n):
    from bench.report.stats import minimum_detectable_difference, paired_t_power

    assert minimum_detectable_difference(n, 1.0) == pytest.approx(STATSMODELS_EFFECT[n], rel=1e-6)
    assert minimum_detectable_difference(n, 2.5) == pytest.approx(2.5 * STATSMODELS_EFFECT[n], rel=1e-6)
    assert paired_t_power(STATSMODELS_EFFECT[n], n, 1.0) == pytest.approx(0.8, abs=1e-6)


def test_minimum_detectable_difference_approaches_the_normal_one_and_refuses_bad_input():
    from bench.report.stats import minimum_detectable_difference

    normal = (1.959964 + 0.841621) / math.sqrt(2000)  # z_0.975 + z_0.8, over sqrt(n): the large-n limit
    assert minimum_detectable_difference(2000, 1.0) == pytest.approx(normal, rel=2e-3)
    for n, std in ((1, 1.0), (3, 0.0), (3, float("nan"))):
        with pytest.raises(ValueError, match="detectable difference needs"):
            minimum_detectable_difference(n, std)


def test_mcnemar_against_a_hand_worked_case():
    """1 image right in a only, 9 in b only, 90 agreeing: p = 2 P(X <= 1), X ~ Binomial(10, 1/2) = 2 * 11 / 1024."""
    from bench.report.stats import mcnemar

    a = np.array([True] * 50 + [True] + [False] * 9 + [False] * 40)
    b = np.array([True] * 50 + [False] + [True] * 9 + [False] * 40)
    result = mcnemar(a, b)
    assert (result["images"], result["a_only"], result["b_only"]) == (100, 1, 9)
    assert result["p"] == pytest.approx(22 / 1024) and result["diff"] == pytest.approx(-8.0)
    assert mcnemar(a, a)["p"] == 1.0  # nothing discordant: no evidence either way
    with pytest.raises(ValueError, match="boolean arrays"):
        mcnemar(a, b[:-1])


def test_mcnemar_bootstrap_interval_matches_the_paired_standard_error():
    from bench.report.stats import mcnemar

    rng = np.random.default_rng(0)
    a = rng.random(10_000) < 0.6
    b = np.where(rng.random(10_000) < 0.2, ~a, a)  # b disagrees with a on ~20% of the images
    result = mcnemar(a, b)
    n, d = a.size, (result["a_only"] + result["b_only"]) / a.size
    se = 100 * math.sqrt((d - (result["diff"] / 100) ** 2) / n)  # the paired difference's standard error
    assert result["low"] < result["diff"] < result["high"]
    assert (result["high"] - result["low"]) / 2 == pytest.approx(1.96 * se, rel=0.1)


def test_combine_mcnemar_sums_the_discordant_images():
    """(1, 9) and (3, 7) give (4, 16): p = 2 P(X <= 4), X ~ Binomial(20, 1/2), = 2 (1 + 20 + 190 + 1140 + 4845)
    / 2^20."""
    from bench.report.stats import combine_mcnemar, mcnemar_detectable_difference

    pairs = [{"images": 100, "a_only": 1, "b_only": 9}, {"images": 100, "a_only": 3, "b_only": 7}]
    combined = combine_mcnemar(pairs)
    assert (combined["a_only"], combined["b_only"], combined["images"]) == (4, 16, 200)
    assert combined["p"] == pytest.approx(2 * 6196 / 2**20) and combined["diff"] == pytest.approx(-6.0)
    with pytest.raises(ValueError, match="at least one pair"):
        combine_mcnemar([])
    # 1,000 discordant of 10,000: 2.8016 * sqrt(1000) / 10000 = 0.886 points
    assert mcnemar_detectable_difference(1000, 10_000) == pytest.approx(100 * 2.801585 * 1000**0.5 / 10_000, rel=1e-5)
