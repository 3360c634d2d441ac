"""Markdown tables of a GPU check's sweeps (scripts/gpu_check.sh): throughput, peak memory and MACs per model
and axis value. Usage: python scripts/gpu_tables.py results/gpu-h200-20261204"""
import sys
from pathlib import Path

import pandas as pd

AXES = {"sweep_depth": "depth", "sweep_heads": "num_heads", "sweep_patch": "patch_size"}
NAMES = {"throughput_inference": "inference img/s", "throughput_train": "train img/s",
         "peak_memory_inference": "inference GiB", "peak_memory_train": "train GiB", "macs": "GMACs"}


def table(rows: pd.DataFrame, axis: str) -> pd.DataFrame:
    rows = rows[(rows.status == "ok") & rows.measurement.isin(list(NAMES))].copy()
    rows[axis] = rows[axis].where(rows.config_family != "timm", "-")  # timm's baselines are measured as they are
    wide = rows.pivot_table(index=["config_family", "model", axis], columns="measurement", values="value",
                            aggfunc="first")
    wide = wide.assign(**{c: wide[c] / 2**30 for c in wide if "memory" in c}, macs=wide.macs / 1e9)
    wide = wide[list(NAMES)].rename(columns=NAMES).round(2)
    wide[["inference img/s", "train img/s"]] = wide[["inference img/s", "train img/s"]].round(0).astype(int)
    return wide.reset_index().rename(columns={"config_family": "family"})


if __name__ == "__main__":
    for sweep, axis in AXES.items():
        found = table(pd.read_csv(Path(sys.argv[1], sweep, "sweep.csv")), axis)
        print(f"\n{sweep}\n\n" + found.to_markdown(index=False))
