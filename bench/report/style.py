"""How every plot looks: each model family's colour, label and place from `models.FAMILY_TABLE`, figures
made without pyplot, saved atomically and byte-stable.

Figures are `matplotlib.figure.Figure` objects, not pyplot's: no backend is chosen and no global
state is kept (saving sets the SVG id salt only within `rc_context`), whether the report runs from the
CLI, a test or a notebook.
"""
from pathlib import Path

from matplotlib import rc_context
from matplotlib.figure import Figure

import models
from bench.cost.sweep import TIMM_FAMILY
from models.atomic import atomic_write

# The sweep's timm rows are the one family that is no model of ours; it is shown after ours.
FAMILY_STYLES = {**models.FAMILY_TABLE, TIMM_FAMILY: models.Family("timm", "tab:purple")}
FAMILY_COLORS = {name: family.colour for name, family in FAMILY_STYLES.items()}


def family_order(family):
    """Sort key: the order of `models.FAMILY_TABLE`, then timm, unknown families last."""
    return list(FAMILY_STYLES).index(family) if family in FAMILY_STYLES else len(FAMILY_STYLES)


def family_label(family):
    """How a family is named in a legend: its table label, or the name itself for one the table lacks."""
    return FAMILY_STYLES[family].label if family in FAMILY_STYLES else family


def new_figure(width=6.4, height=4.4, columns=1):
    """(figure, axes) with `columns` side-by-side axes (a single Axes when columns == 1)."""
    fig = Figure(figsize=(width, height))
    axes = fig.subplots(1, columns)
    return fig, axes


def save_figure(fig, path, formats=("png",), dpi=130):
    """Write `fig` as `path` with each suffix in `formats` added, atomically; returns the paths. (Added, not
    replacing: a name such as `cost_sweep-1.5` holds a dot.)"""
    path = Path(path)
    written = []
    for suffix in formats:
        target = path.with_name(f"{path.name}.{suffix}")
        atomic_write(target, lambda f, s=suffix: write_figure(fig, f, s, dpi))
        written.append(target)
    return written


def write_figure(fig, file, suffix, dpi):
    # a fixed salt for SVG element ids and no date: the same figure gives the same bytes, so a rebuilt report
    # changes only the files whose content changed
    with rc_context({"svg.hashsalt": "vitbench"}):
        fig.savefig(file, format=suffix, dpi=dpi, bbox_inches="tight", metadata={"Date": None} if suffix == "svg"
                    else None)


def chance_line(ax, classes):
    ax.axhline(100 / classes, color="gray", linestyle=":", linewidth=1, label="chance")
