"""The scaling study's pre-registration: per-arm power laws fitted to the committed CIFAR-10 runs (the multiplier
study at 100% data, 0.016 PFLOP, 2 seeds; the protocol study, 0.03 PFLOP, 3 seeds) and what they predict at the
new budgets, with bootstrap intervals over seeds. Writes results/study-cifar10-scaling/preregistered_*.csv.

    .venv/bin/python scripts/preregister_scaling.py
"""
from pathlib import Path

import pandas as pd

from bench.report.scaling import LAWS_FILE, PREDICTIONS_FILE, scaling_predictions

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "study-cifar10-scaling"
COMMITTED = {"study-cifar10-multiplier": 0.016, "study-cifar10-cpu-protocol": 0.03}  # folder: its PFLOP per run
ARMS, BASELINE = ["vit", "t2t-performer"], "vit"
BUDGETS = [0.0075, 0.015, 0.03, 0.06, 0.12]  # the study's four, and 0.12 beyond them


def committed_runs():
    frames = []
    for folder, budget in COMMITTED.items():
        runs = pd.read_csv(ROOT / "results" / folder / "results.csv")
        frames.append(runs[(runs["fraction"] == 1.0) & runs["arm"].isin(ARMS)].assign(budget_pflop=budget))
    return pd.concat(frames, ignore_index=True)


def main():
    runs = committed_runs()
    laws, predictions = scaling_predictions(runs, ARMS, BASELINE, BUDGETS)
    OUT.mkdir(parents=True, exist_ok=True)
    runs[["arm", "seed", "budget_pflop", "test_top1"]].to_csv(OUT / "preregistered_points.csv", index=False)
    laws.to_csv(OUT / LAWS_FILE, index=False, float_format="%.6g")
    predictions.to_csv(OUT / PREDICTIONS_FILE, index=False, float_format="%.4g")
    print(laws.to_markdown(index=False, floatfmt=".4g"))
    print(predictions.to_markdown(index=False, floatfmt=".4g"))


if __name__ == "__main__":
    main()
