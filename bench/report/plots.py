"""Plots from the tables of `bench.report.tables`: training curves, accuracy vs MACs, where the MACs go,
and cost against each sweep axis. Each function returns a `matplotlib.figure.Figure`."""
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bench.report.style import FAMILY_COLORS, family_label, new_figure

LABEL_OFFSETS = [(4, 4), (4, -11), (-4, 4), (-4, -11), (4, 13), (4, -20), (-4, 13), (-4, -20), (10, -4), (-10, -4),
                 (4, 22), (4, -29), (-4, 22), (-4, -29)]  # points: where a point's label may go, nearest first

AXES = {"depth": "depth (blocks)", "num_heads": "attention heads", "patch_size": "patch size / T2T stride (px)",
        "img_side": "image side (px)"}
SWEEP_PLOTS = {  # measurement -> (axis label, scale)
    "throughput_inference": ("inference throughput (images/s)", 1),
    "throughput_train": ("training throughput (images/s)", 1),
    "peak_memory_inference": ("inference peak memory (MB)", 1e-6),
    "peak_memory_train": ("training peak memory (MB)", 1e-6),
    "macs": ("MACs per image (G)", 1e-9),
}


LINESTYLES = ["-", "--", ":", "-."]


def unique_labels(labels, names):
    """`labels` with the run's own `names` added to any label that repeats: one legend entry per line."""
    labels = list(labels)
    return [label if labels.count(label) == 1 else f"{label} [{name}]" for label, name in zip(labels, names)]


def training_curves(runs, families, labels=None):
    """Train loss, val loss and val top-1 per epoch, a line per run, coloured by its family (a family's second run
    dashed, its third dotted...) and named by `labels` (default: its model and seed), each name once; the legend
    sits below the panels, where it hides no curve."""
    fig = Figure(figsize=(13, 4.6), layout="constrained")  # the layout leaves the legend its own room
    axes = fig.subplots(1, 3)
    if labels is None:
        labels = [f"{config.get('model', path.name)} (seed {config['seed']})" if "seed" in config else path.name
                  for path, config, _, _ in runs]
    labels = unique_labels(labels, [path.name for path, *_ in runs])
    for i, ((*_, metrics), family, label) in enumerate(zip(runs, families, labels)):
        style = dict(color=FAMILY_COLORS.get(family), label=label, alpha=0.8, marker="o", markersize=2,
                     linestyle=LINESTYLES[families[:i].count(family) % len(LINESTYLES)])
        validated = metrics.dropna(subset=["top1"])  # epochs between validations have no score
        for ax, frame, column in zip(axes, (metrics, validated, validated), ("train_loss", "val_loss", "top1")):
            ax.plot(frame["epoch"], frame[column], **style)
    for ax, ylabel in zip(axes, ("training loss (cross-entropy)", "validation loss (cross-entropy)", "val top-1 (%)")):
        ax.set(xlabel="epoch", ylabel=ylabel)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(3, len(labels)), fontsize=8, frameon=False)
    fig.suptitle("Training curves")
    return fig


def place_labels(ax, points, texts, fontsize=7):
    """Annotate each (x, y) with its text at the first offset (nearest first) where the label's box overlaps no
    label placed before it and no marker, measured with the figure's own renderer."""
    renderer = FigureCanvasAgg(ax.figure).get_renderer()
    taken = [ax.transData.transform(point) for point in points]
    placed = []
    for point, text in zip(points, texts):
        for dx, dy in LABEL_OFFSETS:
            label = ax.annotate(text, point, xytext=(dx, dy), textcoords="offset points", fontsize=fontsize,
                                ha="left" if dx >= 0 else "right")
            box = label.get_window_extent(renderer).expanded(1.05, 1.1)
            if not any(box.overlaps(other) for other in placed) and not any(box.contains(*xy) for xy in taken):
                break
            if (dx, dy) != LABEL_OFFSETS[-1]:
                label.remove()
        placed.append(box)
    return placed


def accuracy_vs_macs(paper):
    """Published top-1 against MACs we count (the paper's Figure 1 in spirit), Pareto front marked."""
    fig, ax = new_figure(7, 4.5)
    points = paper.dropna(subset=["top1_published"]).sort_values("macs_ours_G")
    for family, group in points.groupby("family"):
        ax.scatter(group.macs_ours_G, group.top1_published, color=FAMILY_COLORS.get(family), label=family_label(family))
    front = points[points.top1_published >= points.top1_published.cummax()]
    ax.step(front.macs_ours_G, front.top1_published, where="post", color="gray", linestyle="--", label="Pareto front")
    ax.set(
        xlabel="MACs per image (G, counted by vitbench)",
        ylabel="ImageNet top-1 (%, published)",
        title="Accuracy vs compute: published top-1, our MAC counts",
    )
    ax.legend(loc="lower right")
    place_labels(ax, list(zip(points.macs_ours_G, points.top1_published)), list(points.model))
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


def draw_sweep(ax, wide, axis, measurement, scale=1):
    """`measurement` against one sweep axis on `ax`: a line per family and patch size, median over other axes, with
    the timings' interquartile range as a band; throughput and memory from zero."""
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
                label=f"{family_label(family)} patch {patch[0]}" if multi_patch else family_label(family),
            )
        if f"{measurement}_q1" in group and group[f"{measurement}_q1"].notna().any():
            spread = group.groupby(axis)[[f"{measurement}_q1", f"{measurement}_q3"]].median().dropna() * scale
            ax.fill_between(spread.index, spread.iloc[:, 0], spread.iloc[:, 1], color=FAMILY_COLORS.get(family),
                            alpha=0.2, linewidth=0)
    if measurement.startswith(("throughput", "peak_memory")):
        ax.set_ylim(bottom=0)  # a ratio of heights is a ratio of speeds (or bytes) only from zero


def sweep_axis(wide, axis, measurement, ylabel, scale=1, note=""):
    """`measurement` against one sweep axis (`draw_sweep`), `note` (batch, device, threads, dtype) in the corner."""
    fig, ax = new_figure(6, 4)
    draw_sweep(ax, wide, axis, measurement, scale)
    if note:
        ax.text(0.99, 0.01, note, transform=ax.transAxes, ha="right", va="bottom", fontsize=7, color="dimgray")
    ax.set(xlabel=AXES[axis], ylabel=ylabel, title=f"{ylabel} vs {AXES[axis]}")
    ax.legend()
    return fig


def sweep_facets(wide, axes, measurements, note=""):
    """Small multiples: a row per measurement ({column: (label, scale)}), a column per sweep axis, each panel
    `draw_sweep`; a row shares its y axis (one measurement, one scale), a column its x axis. One legend for all,
    each line once; `note` under it."""
    fig = Figure(figsize=(3.6 * len(axes) + 1.2, 2.5 * len(measurements) + 1.2), layout="constrained")
    grid = fig.subplots(len(measurements), len(axes), sharex="col", sharey="row", squeeze=False)
    for row, (measurement, (label, scale)) in enumerate(measurements.items()):
        for column, axis in enumerate(axes):
            ax = grid[row, column]
            draw_sweep(ax, wide, axis, measurement, scale)
            ax.grid(alpha=0.3)
            if column == 0:
                ax.set_ylabel(label, fontsize=8)
            if row == len(measurements) - 1:
                ax.set_xlabel(AXES[axis])
    entries = {}
    for ax in grid.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    fig.legend(list(entries.values()), list(entries), loc="outside lower center", ncol=min(4, len(entries)),
               fontsize=8, frameon=False)
    fig.suptitle("Cost against each axis swept (median over the other axes; band: the timings' interquartile range)"
                 + (f"\n{note}" if note else ""), fontsize=9)
    return fig
