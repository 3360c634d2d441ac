"""bench.report.stats against values worked out by hand.

Student-t quantiles come from closed forms, not from scipy: with 1 degree of freedom t_p = tan(pi (p - 1/2)),
with 2 degrees of freedom t_p = a sqrt(2 / (1 - a^2)) where a = 2p - 1.
"""
import math

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


def test_closed_form_quantiles_match_published_tables():
    assert T_975_DF1 == pytest.approx(12.706, abs=1e-3)
    assert T_975_DF2 == pytest.approx(4.303, abs=1e-3)
    assert T_950_DF2 == pytest.approx(2.920, abs=1e-3)


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
    row = paired_differences(results).to_dict("records")
    assert row == [{"arm": "t2t-transformer", "label": "T2T-TRANSFORMER", "fraction": 1.0, "seeds": 3,
                    "diff_mean": 1.5, "diff_std": 0.0, "ci_low": 1.5, "ci_high": 1.5, "excludes_zero": True}]


def test_paired_interval_including_zero():
    # differences 1, -1, 2: mean 2/3, std sqrt(7/3)
    results = runs([("vit", 0.5, 0, 70.0), ("vit", 0.5, 1, 72.0), ("vit", 0.5, 2, 74.0),
                    ("cnn", 0.5, 0, 71.0), ("cnn", 0.5, 1, 71.0), ("cnn", 0.5, 2, 76.0)])
    row = paired_differences(results).iloc[0]
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
    table = paired_differences(results)
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
        paired_differences(pd.concat([results, results.iloc[:1]]))
    with pytest.raises(ValueError, match="non-finite"):
        paired_differences(results.assign(test_top1=[70.0, math.nan]))


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
    assert difference_sentence("CNN", "ViT", paired_differences(results).iloc[0]) == (
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


def test_images_to_reach_interpolates_on_log_images():
    from bench.report.stats import images_to_reach

    images, top1 = [1000, 2000, 4000, 8000], [40.0, 50.0, 60.0, 70.0]  # +10 points per doubling
    assert images_to_reach(images, top1, 55.0) == pytest.approx(2000 * 2**0.5)  # halfway in log(images)
    assert images_to_reach(images, top1, 70.0) == pytest.approx(8000)
    assert math.isnan(images_to_reach(images, top1, 75.0))  # beyond the largest size
    assert math.isnan(images_to_reach(images, top1, 35.0))  # below the smallest


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
    assert table.iloc[-1]["beyond"] == 3 and table.iloc[-1]["seeds"] == 0  # at 8000 the ViT never gets there
