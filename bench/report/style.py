"""How every plot looks: one colour per model family, figures made without pyplot, saved atomically.

Figures are `matplotlib.figure.Figure` objects, not pyplot's: no backend is chosen and no global
state is touched, whether the report runs from the CLI, a test or a notebook.
"""
from pathlib import Path

from matplotlib.figure import Figure

import models
from bench.cost.sweep import TIMM_FAMILY
from models.atomic import atomic_write

FAMILY_COLORS = {**dict(zip(models.FAMILIES, ("tab:blue", "tab:orange", "tab:green", "tab:red"))),
                 TIMM_FAMILY: "tab:purple"}


def family_order(family):
    """Sort key: the order of `models.FAMILIES`, unknown families last."""
    return list(models.FAMILIES).index(family) if family in models.FAMILIES else len(models.FAMILIES)


def new_figure(width=6.4, height=4.4, columns=1):
    """(figure, axes) with `columns` side-by-side axes (a single Axes when columns == 1)."""
    fig = Figure(figsize=(width, height))
    axes = fig.subplots(1, columns)
    return fig, axes


def save_figure(fig, path, formats=("png",), dpi=130):
    """Write `fig` as `path` with each suffix in `formats`, atomically; returns the paths."""
    path = Path(path)
    written = []
    for suffix in formats:
        target = path.with_suffix(f".{suffix}")
        atomic_write(target, lambda f, s=suffix: fig.savefig(f, format=s, dpi=dpi, bbox_inches="tight"))
        written.append(target)
    return written


def chance_line(ax, classes):
    ax.axhline(100 / classes, color="gray", linestyle=":", linewidth=1, label="chance")
