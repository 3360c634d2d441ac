"""The from-scratch study's presentation: mean and spread over seeds, its tables, curves and report.md."""
import json
from pathlib import Path

import pandas as pd

from bench.accuracy.study import RESULTS, STUDY_FILE, TABLE, collect, run_folder_name
from bench.report.style import FAMILY_COLORS, chance_line, family_order, new_figure, save_figure
from models.atomic import atomic_write_text


def aggregate(results):
    """Mean and spread over seeds per architecture and fraction (std is NaN with one seed)."""
    keys = ["arm", "label", "model", "depth", "fraction"]
    if "plateau" not in results:  # studies from before training health was recorded
        results = results.assign(plateau=False)
    table = results.groupby(keys, sort=False).agg(
        seeds=("seed", "count"), classes=("classes", "first"), train_images=("train_images", "mean"),
        params=("params", "first"), macs=("macs", "first"),
        top1_mean=("top1", "mean"), top1_std=("top1", "std"), top1_min=("top1", "min"), top1_max=("top1", "max"),
        top5_mean=("top5", "mean"), train_images_per_s=("train_images_per_s", "mean"),
        plateau_runs=("plateau", "sum"),
    ).reset_index()
    return table.sort_values(["fraction", "arm", "depth"], key=lambda c: c.map(family_order) if c.name == "arm" else c,
                             ignore_index=True)


def mean_std(mean, std):
    return f"{mean:.1f}" if pd.isna(std) else f"{mean:.1f} ± {std:.1f}"


def markdown_table(table):
    shown = pd.DataFrame({
        "model": table["label"], "depth": table["depth"], "params (k)": (table["params"] / 1e3).round(1),
        "MMACs": (table["macs"] / 1e6).round(2), "train fraction": table["fraction"],
        "train images": table["train_images"].round().astype(int), "top-1 % (mean ± std)": [
            mean_std(m, s) for m, s in zip(table["top1_mean"], table["top1_std"])],
        "top-1 range": [f"{lo:.1f}–{hi:.1f}" for lo, hi in zip(table["top1_min"], table["top1_max"])],
        "seeds": table["seeds"], "top-5 %": table["top5_mean"].round(1),
        "train img/s": table["train_images_per_s"].round().astype(int),
        "runs on the initial plateau": table["plateau_runs"].astype(int),
    })
    return shown.to_markdown(index=False, disable_numparse=True)


def pivot_table(table):
    """Fractions down, architectures across: the direct answer to the study's question."""
    table = table.assign(column=[f"{label} d{depth}" for label, depth in zip(table["label"], table["depth"])],
                         cell=[mean_std(m, s) for m, s in zip(table["top1_mean"], table["top1_std"])])
    pivot = table.pivot(index="fraction", columns="column", values="cell")
    return pivot[list(dict.fromkeys(table["column"]))].reset_index().to_markdown(index=False, disable_numparse=True)


def top1_vs_fraction(table):
    fig, ax = new_figure()
    chance_line(ax, table["classes"].max())
    markers = "osD^v"
    for (arm, label, depth), group in table.groupby(["arm", "label", "depth"], sort=False):
        depths = sorted(table.loc[table["arm"] == arm, "depth"].unique())
        ax.errorbar(group["fraction"], group["top1_mean"], yerr=group["top1_std"].fillna(0), capsize=3,
                    color=FAMILY_COLORS.get(arm), marker=markers[depths.index(depth) % len(markers)],
                    linestyle="-" if depths.index(depth) == 0 else "--", label=f"{label} d{depth}")
    fractions = sorted(table["fraction"].unique())
    ax.set(xscale="log", xlabel="fraction of the training set", ylabel="val top-1 (%)",
           title="top-1 vs training data (mean ± std over seeds)")
    ax.minorticks_off()
    ax.set_xticks(fractions, [f"{f:g}" for f in fractions])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def top1_vs_cost(table, column, xlabel):
    """Top-1 against a cost column at the largest training fraction, a line per arm through its depths."""
    full = table[table["fraction"] == table["fraction"].max()]
    fig, ax = new_figure()
    chance_line(ax, table["classes"].max())
    for (arm, label), group in full.groupby(["arm", "label"], sort=False):
        group = group.sort_values("depth")
        ax.errorbar(group[column], group["top1_mean"], yerr=group["top1_std"].fillna(0), capsize=3, marker="o",
                    color=FAMILY_COLORS.get(arm), label=label)
        for x, y, depth in zip(group[column], group["top1_mean"], group["depth"]):
            ax.annotate(f"d{depth}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set(xscale="log", xlabel=xlabel, ylabel="val top-1 (%)",
           title=f"top-1 vs {xlabel} (training fraction {full['fraction'].max():g})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def histories(results, out):
    """Per epoch of every run in `results`: top-1 and the wall time since the run started (train + eval)."""
    frames = []
    for row in results.itertuples():
        metrics = Path(out) / "runs" / run_folder_name(row.arm, row.depth, row.fraction, row.seed) / "metrics.jsonl"
        if metrics.is_file():
            history = pd.read_json(metrics, lines=True)
            frames.append(pd.DataFrame({
                "arm": row.arm, "label": row.label, "depth": row.depth, "fraction": row.fraction, "seed": row.seed,
                "epoch": history["epoch"], "top1": history["top1"], "elapsed_s": history["epoch_time_s"].cumsum(),
            }))
    return pd.concat(frames, ignore_index=True) if frames else None


def top1_vs_time(history):
    """Time to accuracy on this machine: val top-1 after each epoch against wall time, per arm at the
    largest fraction (mean over seeds)."""
    full = history[history["fraction"] == history["fraction"].max()]
    fig, ax = new_figure()
    for (arm, label, depth), group in full.groupby(["arm", "label", "depth"], sort=False):
        curve = group.groupby("epoch")[["elapsed_s", "top1"]].mean()
        ax.plot(curve["elapsed_s"] / 60, curve["top1"], marker="o", color=FAMILY_COLORS.get(arm),
                label=f"{label} d{depth}")
    ax.set(xlabel="wall time since the run started (min; training and evaluation)", ylabel="val top-1 (%)",
           title=f"top-1 vs wall-clock time (training fraction {full['fraction'].max():g}, mean over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def study_figures(table, history=None):
    """{name: figure}: top-1 vs fraction; top-1 vs MACs and vs train images/s at the largest fraction;
    with the runs' per-epoch history, top-1 vs wall-clock time."""
    figures = {
        "top1_vs_fraction": top1_vs_fraction(table),
        "top1_vs_macs": top1_vs_cost(table, "macs", "MACs per image"),
        "top1_vs_throughput": top1_vs_cost(table, "train_images_per_s", "training images/s"),
    }
    if history is not None:
        figures["top1_vs_time"] = top1_vs_time(history)
    return figures


def health_lines(results, out):
    """Markdown lines for every run that stayed on the initial loss plateau, with its likely causes."""
    lines = []
    for row in results[results.get("plateau", False) == True].itertuples():  # noqa: E712 (pandas mask)
        name = run_folder_name(row.arm, row.depth, row.fraction, row.seed)
        health = json.loads((Path(out) / "runs" / name / "summary.json").read_text()).get("health", {})
        lines.append(f"- `{name}`: final train loss {health.get('final_loss_vs_chance', float('nan')):.2f} x chance; "
                     f"likely: {'; '.join(health.get('likely_causes', []))}")
    return lines or ["No run stayed on the initial loss plateau (final train loss below 95% of chance's, "
                     "or top-1 at least 1.5 x chance)."]


def write_study_report(spec, out):
    """results.csv, table.csv/.md, the curves and report.md from the finished runs; returns the table."""
    out = Path(out)
    results = collect(spec, out)
    table = aggregate(results)
    atomic_write_text(out / RESULTS, results.to_csv(index=False))
    atomic_write_text(out / f"{TABLE}.csv", table.to_csv(index=False))
    atomic_write_text(out / f"{TABLE}.md", markdown_table(table) + "\n")
    figures = []
    for name, fig in study_figures(table, histories(results, out)).items():
        save_figure(fig, out / name)
        figures.append(f"{name}.png")
    study = json.loads((out / STUDY_FILE).read_text())
    prov = study["provenance"]
    lines = [
        "# Study report",
        "",
        f"{len(results)} of {len(spec.runs())} runs finished. Data: `{study['spec']['data']}`.",
        "",
        f"- command: `{prov['command']}`",
        f"- date: {prov['date']}",
        f"- device: {prov['device']}",
        f"- code: {prov['git_commit']}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in prov["versions"].items() if v),
        "",
        "## Top-1 by training fraction (mean ± std over seeds)",
        "",
        pivot_table(table),
        "",
        "## All architectures",
        "",
        markdown_table(table),
        "",
        "## Training health",
        "",
        *health_lines(results, out),
        "",
        "## Curves",
        "",
        *[f"![{name}]({name})" for name in figures],
        "",
    ]
    atomic_write_text(out / "report.md", "\n".join(lines))
    return table
