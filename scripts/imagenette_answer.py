"""The Imagenette study's answer (issue 30) from its results.csv: each arm's test top-1 on all 3,925 val images and
on the 134 clean ones; what pretraining buys over its architectural twin (the same ViT-Ti/16 from scratch) and over
the best 64-px scratch arm; how many scratch images the twin, or the 64-px ViT, needs to match a pretrained arm (the
data multiplier, a bound where the scratch arm's curve never gets there); and the 64-px front ends against the ViT.
Seed-paired differences with 95% t-intervals (`bench.report.stats`). Prints Markdown; writes answer.csv beside
results.csv.

    python scripts/imagenette_answer.py results/study-imagenette
"""
import sys
from pathlib import Path

import pandas as pd

from bench.report.stats import arm_summary, data_multiplier, paired_differences

TWIN = "vit-ti-scratch"  # ViT-Ti/16 at 112 px from random init: the pretrained arms' architectural twin
PRETRAINED = ("vit-ti-deit-in1k", "vit-ti-in21k")
VIT_64 = "vit"  # the 64-px scratch arms are compared with it (and the T2T-ViT also with the MAC-matched ViT)
COMPARISONS = [(arm, TWIN) for arm in PRETRAINED] + [("t2t-performer", VIT_64), ("t2t-performer", "vit-mac-matched"),
                                                     ("cnn", VIT_64), ("vit-mac-matched", VIT_64)]
SCORES = {"test_top1": "all 3,925 val images", "test_subset_top1": "the 134 clean val images"}


def cell(mean, low, high, signed=False):
    sign = "+" if signed else ""
    return "–" if pd.isna(mean) else (f"{mean:{sign}.1f}" if pd.isna(low) else
                                      f"{mean:{sign}.1f} [{low:{sign}.1f}, {high:{sign}.1f}]")


def arm_table(results):
    rows = []
    for value, what in SCORES.items():
        summary = arm_summary(results, value, ("arm", "label", "fraction"))
        rows += [{**row, "score": what} for row in summary.to_dict("records")]
    table = pd.DataFrame(rows)
    return table.pivot_table(index=["arm", "label", "fraction", "seeds"], columns="score",
                             values=["mean", "ci_low", "ci_high"], sort=False)


def differences(results):
    rows = []
    for arm, baseline in COMPARISONS:
        pair = results[results["arm"].isin([arm, baseline])]
        if set(pair["arm"]) != {arm, baseline}:
            continue
        for value, what in SCORES.items():
            diff = paired_differences(pair, baseline, value)
            rows += [{**row, "baseline": baseline, "score": what} for row in diff.to_dict("records")]
    return pd.DataFrame(rows)


def multipliers(results):
    """Each pretrained arm's data multiplier against its twin and against the 64-px ViT (the scratch arm that learns
    most from more images here): how many scratch images either needs to match it."""
    found = [data_multiplier(results, arm, scratch) for arm in PRETRAINED for scratch in (TWIN, VIT_64)
             if {arm, scratch} <= set(results["arm"])]
    return pd.concat(found, ignore_index=True) if found else pd.DataFrame()


def main(folder):
    results = pd.read_csv(Path(folder) / "results.csv")
    results = results[results["test_top1"].notna()]
    print("## Test top-1 (%), mean [95% t-interval] over seeds\n")
    table = arm_table(results)
    for key, row in table.iterrows():
        arm, label, fraction, seeds = key
        cells = [cell(row[("mean", what)], row[("ci_low", what)], row[("ci_high", what)]) for what in SCORES.values()]
        print(f"| {label} | {fraction:g} | {seeds} | {' | '.join(cells)} |")
    diffs = differences(results)
    print("\n## Seed-paired differences (points)\n")
    for row in diffs.itertuples():
        print(f"| {row.arm} - {row.baseline} | {row.fraction:g} | {row.score} | {row.seeds} | "
              f"{cell(row.diff_mean, row.ci_low, row.ci_high, signed=True)} |")
    mult = multipliers(results)
    print("\n## Scratch images a scratch arm needs per pretrained image (data multiplier)\n")
    for row in mult.itertuples():
        print(f"| {row.arm} | {row.baseline} | {row.train_images:,} | {row.seeds} | {row.bound} {row.multiplier:.3g} "
              f"[{row.ci_low:.3g}, {row.ci_high:.3g}] | beyond {row.beyond}, below {row.below} | "
              f"diff {row.diff:+.1f} |")
    pd.concat([diffs.assign(kind="difference"), mult.assign(kind="multiplier")], ignore_index=True).to_csv(
        Path(folder) / "answer.csv", index=False)


if __name__ == "__main__":
    main(sys.argv[1])
