"""Plots from the tables of `bench.report.tables`: training curves, accuracy vs MACs, where the MACs go,
and cost against each sweep axis. Each function returns a `matplotlib.figure.Figure`."""
from bench.report.style import FAMILY_COLORS, new_figure

AXES = {"depth": "depth (blocks)", "num_heads": "attention heads", "patch_size": "patch size / T2T stride (px)",
        "img_side": "image side (px)"}
SWEEP_PLOTS = {  # measurement -> (axis label, scale)
    "throughput_inference": ("inference throughput (images/s)", 1),
    "throughput_train": ("training throughput (images/s)", 1),
    "peak_memory_inference": ("inference peak memory (MB)", 1e-6),
    "peak_memory_train": ("training peak memory (MB)", 1e-6),
    "macs": ("MACs per image (G)", 1e-9),
}


def training_curves(runs, families):
    """Train loss, val loss and val top-1 per epoch, a line per run, coloured by its family."""
    fig, axes = new_figure(13, 3.8, columns=3)
    for (path, _, _, metrics), family in zip(runs, families):
        style = dict(color=FAMILY_COLORS.get(family), label=path.name, alpha=0.8)
        for ax, column in zip(axes, ("train_loss", "val_loss", "top1")):
            ax.plot(metrics["epoch"], metrics[column], **style)
    for ax, ylabel in zip(axes, ("training loss (cross-entropy)", "validation loss (cross-entropy)", "val top-1 (%)")):
        ax.set(xlabel="epoch", ylabel=ylabel)
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=6)
    fig.suptitle("Training curves")
    return fig


def accuracy_vs_macs(paper):
    """Published top-1 against MACs we count (the paper's Figure 1 in spirit), Pareto front marked."""
    fig, ax = new_figure(7, 4.5)
    points = paper.dropna(subset=["top1_published"]).sort_values("macs_ours_G")
    for family, group in points.groupby("family"):
        ax.scatter(group.macs_ours_G, group.top1_published, color=FAMILY_COLORS.get(family), label=family)
        for _, row in group.iterrows():
            ax.annotate(
                row.model, (row.macs_ours_G, row.top1_published), fontsize=7, xytext=(3, 3), textcoords="offset points"
            )
    front = points[points.top1_published >= points.top1_published.cummax()]
    ax.step(front.macs_ours_G, front.top1_published, where="post", color="gray", linestyle="--", label="Pareto front")
    ax.set(
        xlabel="MACs per image (G, counted by vitbench)",
        ylabel="ImageNet top-1 (%, published)",
        title="Accuracy vs compute: published top-1, our MAC counts",
    )
    ax.legend()
    return fig


def mac_breakdown(frame):
    """Stacked horizontal bars: each model's MACs split into the columns of `frame` (after `model`)."""
    fig, ax = new_figure(8, 0.35 * len(frame) + 1.5)
    left = 0
    for part in frame.columns.drop("model"):
        ax.barh(frame["model"], frame[part], left=left, label=part)
        left = left + frame[part]
    ax.set(xlabel="MACs per image at 224 px (G)", ylabel="", title="Where the MACs go")
    ax.legend()
    return fig


def sweep_axis(wide, axis, measurement, ylabel, scale=1):
    """`measurement` against one sweep axis: a line per family and patch size, median over other axes."""
    fig, ax = new_figure(6, 4)
    keys = ["family"] + (["patch_size"] if axis != "patch_size" else [])
    for (family, *patch), group in wide.groupby(keys, dropna=False):  # a timm CNN has no patch size
        series = group.groupby(axis)[measurement].median().dropna() * scale
        multi_patch = bool(patch) and wide.loc[wide.family == family, "patch_size"].nunique() > 1
        style = "--" if multi_patch and patch[0] != wide.loc[wide.family == family, "patch_size"].min() else "-"
        if len(series):
            ax.plot(
                series.index,
                series.values,
                marker="o",
                linestyle=style,
                color=FAMILY_COLORS.get(family),
                label=f"{family} patch {patch[0]}" if multi_patch else family,
            )
    ax.set(xlabel=AXES[axis], ylabel=ylabel, title=f"{ylabel} vs {AXES[axis]}")
    ax.legend()
    return fig
