"""The from-scratch study's presentation: per arm the seeds' mean, spread and 95% t-interval of test
top-1, the seed-paired difference to the baseline arm (the ViT), the sentences those intervals allow, time-to-accuracy,
the curves (test top-1 against data, MACs, speed; validation top-1 against training PFLOP and wall time
with seed bands) and report.md.

Test top-1 is the score of each run's final weights on the test split, read once at the end of the run;
validation curves are the holdout's. Studies from before the holdout (their `selection` is "test")
read as they were recorded.

Which arm is the baseline and which are MAC-matched is the spec's (`bench.accuracy.study.ArmRoles`, `arm_roles`
from a Spec, `recorded_roles` from study.json's record), never the arms' names: every function that compares,
orders or colours arms takes those `roles`.
"""
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.figure import Figure

import models
from bench.accuracy.study import RESULTS, STUDY_FILE, TABLE, arm_roles, collect, read_summary, run_folder_name
from bench.outputs import read_back
from bench.report.markup import md, md_lines, md_table
from bench.report.stats import (
    arm_summary,
    binomial_se,
    data_multiplier,
    difference_sentence,
    paired_differences,
    threshold_crossing,
)
from bench.report.style import FAMILY_COLORS, chance_line, family_order, new_figure, save_figure
from models.atomic import atomic_write_text

KEYS = ["arm", "label", "model", "depth", "fraction"]
THRESHOLDS = (50, 60)  # validation top-1 (%) for time-to-accuracy
MAC_MATCHED_COLOR = "tab:cyan"  # a MAC-matched ViT arm's, whatever its name (`arm_colors`)
SPARE_COLORS = ("tab:brown", "tab:pink", "tab:olive", "tab:gray", "gold", "black")  # no family's, nor cyan
PER_ARCHITECTURE = {  # table column: (results column, how the seeds' values combine); absent columns are skipped
    "classes": ("classes", "first"), "params": ("params", "first"), "macs": ("macs", "first"),
    "embed_dim": ("embed_dim", "first"), "train_images": ("train_images", "mean"), "epochs": ("epochs", "mean"),
    "train_pflop": ("train_pflop", "mean"), "val_top1_mean": ("val_top1", "mean"),
    "test_best_top1_mean": ("test_best_top1", "mean"), "test_top5_mean": ("test_top5", "mean"),
    "train_images_per_s": ("train_images_per_s", "mean"), "train_time_s": ("train_time_s", "mean"),
    "train_flop_s": ("train_flop_s", "mean"), "mfu": ("mfu", "mean"),
}


def upgraded(results):
    """`results` in today's columns: a study from before the holdout called its test score `top1`."""
    results = results.rename(columns={"top1": "test_top1", "top5": "test_top5"})
    if "plateau" not in results:  # studies from before training health was recorded
        results = results.assign(plateau=False)
    return results


def aggregate(results, roles):
    """One row per architecture and fraction: costs, and test top-1 over seeds (mean, std, 95% t-interval),
    with the seed-paired difference to the baseline arm of `roles` (the `vs_baseline` columns). Test top-5 only where
    the task has more than 5 classes."""
    results = upgraded(results)
    stats = arm_summary(results, "test_top1", KEYS).rename(
        columns={"mean": "test_top1_mean", "std": "test_top1_std", "ci_low": "test_top1_ci_low",
                 "ci_high": "test_top1_ci_high"})
    columns = {name: (column, how) for name, (column, how) in PER_ARCHITECTURE.items() if column in results}
    table = results.groupby(KEYS, sort=False).agg(**columns, plateau_runs=("plateau", "sum")).reset_index()
    table = stats.merge(table, on=KEYS)
    if "test_top5_mean" in table and "classes" in table:  # top-5 of five classes or fewer is 100% by definition
        table["test_top5_mean"] = table["test_top5_mean"].where(table["classes"] > 5)
        if table["test_top5_mean"].isna().all():
            table = table.drop(columns="test_top5_mean")
    if has_baseline(results, roles):
        diffs = paired_differences(results, roles.baseline, "test_top1")[["arm", "fraction", "seeds", "diff_mean",
                                                                         "ci_low", "ci_high"]]
        table = table.merge(diffs.rename(columns={"seeds": "paired_seeds", "diff_mean": "vs_baseline",
                                                  "ci_low": "vs_baseline_ci_low", "ci_high": "vs_baseline_ci_high"}),
                            on=["arm", "fraction"], how="left")
    order = arm_order(results, roles)
    return table.sort_values(["fraction", "arm", "depth"], ignore_index=True,
                             key=lambda c: c.map(order) if c.name == "arm" else c)


def has_baseline(results, roles):
    """Whether `results` hold runs of the baseline arm of `roles` (a study without one compares nothing)."""
    return roles.baseline is not None and bool((results["arm"] == roles.baseline).any())


def baseline_label(results, roles):
    """The label of the baseline arm of `roles`, as the report's headings name it."""
    labels = results.loc[results["arm"] == roles.baseline, "label"]
    return labels.iloc[0] if len(labels) else "the baseline"


def arm_order(results, roles):
    """{arm: sort key} for the arms of `results`: the baseline, the MAC-matched arms, then the others by their model's
    family in `models.FAMILY_TABLE` order (the sort is stable: arms of one family keep the spec's order). An arm's
    name says nothing of its model."""
    return {arm: -2 if arm == roles.baseline else -1 if arm in roles.mac_matched else family_order(family)
            for arm, family in arm_families(results).items()}


def arm_families(results):
    """{arm: its model's family} (`models.family_of_model`); empty for a table from before `model` was recorded."""
    if "model" not in results:
        return {}
    return results.drop_duplicates("arm").set_index("arm")["model"].map(models.family_of_model).to_dict()


def arm_colors(results, roles):
    """{arm: colour} for every arm of `results`, one colour each in every figure: a MAC-matched ViT's by its role;
    the first arm of each model family (the baseline before the others, then the spec's order) its family's
    colour; a family's further arms (a pretrained ViT beside its scratch twin) the next of SPARE_COLORS. Results
    without a `model` column (tables from before it was recorded) colour every arm from SPARE_COLORS."""
    arms = list(dict.fromkeys(results["arm"]))
    families, colors, spare = arm_families(results), {}, itertools.cycle(SPARE_COLORS)
    for arm in sorted(arms, key=lambda arm: arm != roles.baseline):  # a stable sort: the others keep their order
        family_color = FAMILY_COLORS.get(families.get(arm))
        colors[arm] = (MAC_MATCHED_COLOR if arm in roles.mac_matched else
                       family_color if family_color and family_color not in colors.values() else next(spare))
    return colors


def front_end_arms(results, baseline):
    """The arms the study's question is about, read from their models' families (`models.FAMILY_TABLE`): another
    front end of ours than the `baseline` arm's (a T2T-ViT beside the ViT), not a CNN nor the ViT re-tuned."""
    family = arm_families(results)
    return [arm for arm, name in family.items()
            if models.FAMILY_TABLE[name].tokenizer is not None and name != family.get(baseline)]


def interval(low, high):
    return "–" if pd.isna(low) else f"[{low:.1f}, {high:.1f}]"


def mean_std(mean, std):
    return f"{mean:.1f}" if pd.isna(std) else f"{mean:.1f} ± {std:.1f}"


def signed_interval(mean, low, high):
    if pd.isna(mean):
        return "–"
    return f"{mean:+.1f}" if pd.isna(low) else f"{mean:+.1f} [{low:+.1f}, {high:+.1f}]"


def optional(table, column, digits):
    return table[column].round(digits) if column in table else "–"


def scaled(table, column, factor, digits):
    """`column` x `factor`, rounded; "–" where it was not measured (runs from before it was)."""
    if column not in table:
        return "–"
    return [("–" if pd.isna(value) else f"{value * factor:.{digits}f}") for value in table[column]]


def markdown_table(table, baseline="the baseline"):
    """Every arm's row; `baseline` names the arm the paired differences are to (its `baseline_label`)."""
    shown = pd.DataFrame({
        "model": table["label"], "depth": table["depth"],
        "width": table["embed_dim"].map(lambda w: "–" if pd.isna(w) else int(w)) if "embed_dim" in table else "–",
        "params (k)": (table["params"] / 1e3).round(1), "MMACs": (table["macs"] / 1e6).round(2),
        "train fraction": table["fraction"], "train images": table["train_images"].round().astype(int),
        "epochs": optional(table, "epochs", 2), "PFLOP": optional(table, "train_pflop", 4),
        "test top-1 % (mean ± std)": [mean_std(m, s) for m, s in zip(table["test_top1_mean"], table["test_top1_std"])],
        "95% CI": [interval(lo, hi) for lo, hi in zip(table["test_top1_ci_low"], table["test_top1_ci_high"])],
        f"vs {baseline}, paired [95% CI]": [signed_interval(m, lo, hi) for m, lo, hi in zip(
            table["vs_baseline"], table["vs_baseline_ci_low"], table["vs_baseline_ci_high"])]
        if "vs_baseline" in table else "–",
        "seeds": table["seeds"], "val top-1 %": optional(table, "val_top1_mean", 1),
        "test top-1 of best.pth %": optional(table, "test_best_top1_mean", 1),
        "train img/s": table["train_images_per_s"].round().astype(int),
        "train GFLOP/s": scaled(table, "train_flop_s", 1e-9, 1), "MFU %": scaled(table, "mfu", 100, 1),
        "runs on the initial plateau": table["plateau_runs"].astype(int),
    })
    return md_table(shown, disable_numparse=True)


def pivot_table(table):
    """Fractions down, architectures across, test top-1 mean ± std [95% CI]: the direct answer to the question."""
    table = table.assign(column=[f"{label} d{depth}" for label, depth in zip(table["label"], table["depth"])],
                         cell=[f"{mean_std(m, s)} {interval(lo, hi)}" if not pd.isna(lo) else mean_std(m, s)
                               for m, s, lo, hi in zip(table["test_top1_mean"], table["test_top1_std"],
                                                       table["test_top1_ci_low"], table["test_top1_ci_high"])])
    pivot = table.pivot(index="fraction", columns="column", values="cell")
    return md_table(pivot[list(dict.fromkeys(table["column"]))].reset_index(), disable_numparse=True)


def comparison_sentences(results, roles):
    """Every arm against the baseline (the ViT), and each T2T arm against each MAC-matched ViT, by the interval
    rule."""
    results = upgraded(results)
    labels = results.drop_duplicates("arm").set_index("arm")["label"]
    multiple = results["fraction"].nunique() > 1
    lines = []
    for baseline in dict.fromkeys([roles.baseline, *roles.mac_matched]):
        if baseline is None or not (results["arm"] == baseline).any():
            continue
        compared = results if baseline == roles.baseline else results[results["arm"].isin(
            [*front_end_arms(results, baseline), baseline])]
        for row in paired_differences(compared, baseline, "test_top1").to_dict("records"):
            where = f"At fraction {row['fraction']:g}: " if multiple else ""
            lines.append(f"- {where}{difference_sentence(labels[row['arm']], labels[baseline], row)}")
    return lines


def test_noise_line(results):
    """The test set's own sampling noise, stated once: the floor under every seed spread in the table."""
    results = upgraded(results)
    images = int(results["test_images"].max()) if "test_images" in results else None
    if not images:
        return "The number of test images was not recorded for this study."
    mean = float(results["test_top1"].mean())
    return (f"Each run is scored on {images:,} test images, so one run's test top-1 has a binomial standard error "
            f"of {binomial_se(mean, images):.2f} points at this study's mean accuracy ({mean:.1f}%), "
            f"at most {binomial_se(50.0, images):.2f} (at 50%).")


def histories(results, out):
    """Per epoch of every run in `results`: validation top-1, wall time and training PFLOP since the start."""
    frames = []
    for row in results.itertuples():
        metrics = Path(out) / "runs" / run_folder_name(row.arm, row.depth, row.fraction, row.seed) / "metrics.jsonl"
        if metrics.is_file():
            history = pd.DataFrame(read_back(metrics, f"remove the run's summary.json and run `vitbench study --out "
                                                      f"{out} --resume`: both are written again", kind="jsonl"))
            frames.append(pd.DataFrame({
                "arm": row.arm, "label": row.label, "depth": row.depth, "fraction": row.fraction, "seed": row.seed,
                "epoch": history["epoch"], "val_top1": history["top1"],
                "elapsed_s": history["elapsed_s"] if "elapsed_s" in history else history["epoch_time_s"].cumsum(),
                "train_pflop": history["train_pflop"] if "train_pflop" in history else np.nan,
            }))
    # epochs between two validations (--validations) have no score: the curves join the validated ones
    return pd.concat(frames, ignore_index=True).dropna(subset=["val_top1"]) if frames else None


def time_to_accuracy(history):
    """Per arm (largest fraction): mean minutes and PFLOP to reach each threshold of validation top-1, over the
    seeds that reached it (how many did is in the cell)."""
    full = history[history["fraction"] == history["fraction"].max()]
    rows = []
    for (_, label, depth), group in full.groupby(["arm", "label", "depth"], sort=False):
        row = {"model": label, "depth": depth}
        runs = [run.sort_values("epoch") for _, run in group.groupby("seed")]
        for threshold in THRESHOLDS:
            for column, name, scale in (("elapsed_s", "min", 60), ("train_pflop", "PFLOP", 1)):
                if run_values := [threshold_crossing(run, threshold, column) / scale for run in runs
                                  if run[column].notna().all()]:
                    reached = [v for v in run_values if not np.isnan(v)]
                    cell = "not reached" if not reached else f"{np.mean(reached):.3g}"
                    if reached and len(reached) < len(run_values):
                        cell += f" ({len(reached)} of {len(run_values)} seeds)"
                    row[f"{name} to {threshold}%"] = cell
        rows.append(row)
    return pd.DataFrame(rows)


def top1_vs_fraction(table, colors):
    fig, ax = new_figure()
    chance_line(ax, table["classes"].max())
    markers = "osD^v"
    for (arm, label, depth), group in table.groupby(["arm", "label", "depth"], sort=False):
        depths = sorted(table.loc[table["arm"] == arm, "depth"].unique())
        ax.errorbar(group["fraction"], group["test_top1_mean"], yerr=half_widths(group), capsize=3,
                    color=colors[arm], marker=markers[depths.index(depth) % len(markers)],
                    linestyle="-" if depths.index(depth) == 0 else "--", label=f"{label} d{depth}")
    fractions = sorted(table["fraction"].unique())
    ax.set(xscale="log", xlabel="fraction of the training set", ylabel="test top-1 (%)",
           title="test top-1 vs training data (mean, 95% t-interval over seeds)")
    ax.minorticks_off()
    ax.set_xticks(fractions, [f"{f:g}" for f in fractions])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def half_widths(group):
    """Error-bar lengths: the 95% t-interval's half width, 0 where one seed gives none."""
    return ((group["test_top1_ci_high"] - group["test_top1_ci_low"]) / 2).fillna(0)


def pareto_front(x, y):
    """The points no other beats on both: higher `x` (speed) and higher `y` (accuracy), as (xs, ys) from the
    fastest to the most accurate."""
    order = sorted(zip(x, y), key=lambda point: (-point[0], -point[1]))
    front, best = [], -np.inf
    for point in order:
        if point[1] > best:
            front.append(point)
            best = point[1]
    return [p[0] for p in front], [p[1] for p in front]


def top1_vs_cost(table, column, xlabel, colors, front=False):
    """Test top-1 against a cost column at the largest training fraction, a line per arm through its depths; with
    `front` (a speed, higher is better), the Pareto front over every arm's mean: what no other arm beats on both."""
    full = table[table["fraction"] == table["fraction"].max()]
    fig, ax = new_figure()
    chance_line(ax, table["classes"].max())
    if front:
        xs, ys = pareto_front(full[column], full["test_top1_mean"])
        ax.step(xs, ys, where="post", color="gray", linestyle="--", linewidth=1, zorder=1, label="Pareto front")
    for (arm, label), group in full.groupby(["arm", "label"], sort=False):
        group = group.sort_values("depth")
        ax.errorbar(group[column], group["test_top1_mean"], yerr=half_widths(group), capsize=3, marker="o",
                    color=colors[arm], label=label)
        for x, y, depth in zip(group[column], group["test_top1_mean"], group["depth"]):
            ax.annotate(f"d{depth}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set(xscale="log", xlabel=xlabel, ylabel="test top-1 (%)",
           title=f"test top-1 vs {xlabel} (training fraction {full['fraction'].max():g})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def val_curves(history, table, column, xlabel, colors, scale=1.0):
    """Validation top-1 after each epoch against `column`, per arm at the largest fraction: the mean over seeds
    with a min-max band, and the final test top-1 (mean, 95% t-interval) marked at the end of each curve."""
    full = history[history["fraction"] == history["fraction"].max()]
    final = table[table["fraction"] == table["fraction"].max()]
    fig, ax = new_figure()
    for (arm, label, depth), group in full.groupby(["arm", "label", "depth"], sort=False):
        curve = group.groupby("epoch").agg(x=(column, "mean"), mean=("val_top1", "mean"), low=("val_top1", "min"),
                                           high=("val_top1", "max"))
        color = colors[arm]
        ax.plot(curve["x"] / scale, curve["mean"], marker="o", markersize=3, color=color, label=f"{label} d{depth}")
        ax.fill_between(curve["x"] / scale, curve["low"], curve["high"], color=color, alpha=0.2, linewidth=0)
        test = final[(final["arm"] == arm) & (final["depth"] == depth)]
        if len(test):
            ax.errorbar([curve["x"].iloc[-1] / scale], test["test_top1_mean"], yerr=half_widths(test), color=color,
                        marker="*", markersize=9, capsize=3, linestyle="none")
    ax.set(xlabel=xlabel, ylabel="top-1 (%)", title="validation top-1 per epoch (band: seeds' range); "
           "star: final test top-1 (95% CI)")
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def forest_rows(results, roles):
    """Every arm's seed-paired difference to the baseline of `roles` (the ViT; test top-1, points) with its 95%
    t-interval and its colour (`arm_colors`), a row per arm and training set; None for a study without a baseline
    arm."""
    results = upgraded(results)
    if not has_baseline(results, roles):
        return None
    rows = paired_differences(results, roles.baseline, "test_top1")
    rows["color"] = rows["arm"].map(arm_colors(results, roles))
    if "train_images" in results and results["fraction"].nunique() > 1:
        images = results.groupby("fraction")["train_images"].max()
        rows["label"] = [f"{label}, {images[f]:,.0f} images" for label, f in zip(rows["label"], rows["fraction"])]
    return rows


def figure_text(text):
    """A name as text in a figure: a "$" is a dollar, never the start of mathematics."""
    return str(text).replace("$", r"\$")


def forest_plot(studies):
    """`studies`: (title, `forest_rows`) each. A panel per study, each on its own scale (a small study's intervals
    would squash a large one's), zero marked in every one: each arm's difference to the study's baseline (a dot)
    with its 95% interval (a bar), in the arm's colour; filled where the interval excludes zero (a difference
    is stated), open where it does not; a cross where fewer than 2 seeds are paired (no interval)."""
    heights = [len(rows) + 2.2 for _, rows in studies]
    fig = Figure(figsize=(9, 0.28 * sum(heights) + 0.6), layout="constrained")
    axes = fig.subplots(len(studies), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    for ax, (title, rows) in zip(axes, studies):
        for y, row in enumerate(rows.itertuples()):
            if row.seeds < 2:
                ax.plot([row.diff_mean], [y], marker="x", color=row.color, linestyle="none")
                continue
            ax.errorbar([row.diff_mean], [y], xerr=[[row.diff_mean - row.ci_low], [row.ci_high - row.diff_mean]],
                        marker="o", color=row.color, mfc=row.color if row.excludes_zero else "white", capsize=3,
                        linestyle="none")
        ax.axvline(0, color="gray", linewidth=1)
        ax.set_yticks(range(len(rows)), [figure_text(f"{label} ({n} seeds)") for label, n in
                                         zip(rows["label"], rows["seeds"])], fontsize=8)
        ax.set_ylim(len(rows) - 0.4, -0.6)
        ax.set_title(figure_text(title), fontsize=9, loc="left")
        ax.grid(alpha=0.3, axis="x")
        ax.tick_params(axis="x", labelsize=8)
    axes[-1].set_xlabel("test top-1 minus the baseline's (points): seed-paired mean, 95% t-interval; filled: the "
                        "interval excludes 0; each panel on its own scale", fontsize=8)
    return fig


def run_labels(results, names):
    """A legend label per run folder name: its arm's label, depth and seed (two arms may share one model: a
    scratch and a pretrained ViT); the folder's name where the results do not list it."""
    known = {run_folder_name(row.arm, row.depth, row.fraction, row.seed): f"{row.label} d{row.depth} (seed {row.seed})"
             for row in upgraded(results).itertuples()}
    return [known.get(name, name) for name in names]


def equal_updates(results):
    """Whether each arm made the same number of optimiser updates at every training-set size: only then does
    the size change the data alone (a PFLOP budget does this; an epoch-matched study, or one from before
    updates were recorded, does not)."""
    return "updates" in results and results["updates"].notna().all() and (
        results.groupby("arm")["updates"].nunique() == 1).all()


def multipliers(results, roles):
    """The data multiplier of every T2T arm against the baseline (the ViT), when the study measured several
    training-set sizes, each with the same updates."""
    results = upgraded(results)
    if results["train_images"].nunique() < 2 or not has_baseline(results, roles) or not equal_updates(results):
        return None
    arms = front_end_arms(results, roles.baseline)
    return pd.concat([data_multiplier(results, arm, roles.baseline) for arm in arms],
                     ignore_index=True) if arms else None


def multiplier_lines(results, table, roles):
    """One sentence per T2T arm at its largest training set (1 = the same data). A multiplier is stated only when its
    bootstrap interval excludes 1 and so does the seed-paired t-interval of the direct difference there, the
    comparison the report states: a bootstrap over few seeds knows only the seeds it has (two seeds: three distinct
    resamples), so alone it would claim what the t-interval does not allow."""
    results = upgraded(results)
    labels = results.drop_duplicates("arm").set_index("arm")["label"]
    direct = paired_differences(results, roles.baseline)
    lines = []
    for arm, rows in table.groupby("arm", sort=False):
        row = rows.iloc[-1]
        n, vit, name = f"{row['train_images']:,}", labels[roles.baseline], labels[arm]
        estimate = f"{row['bound'] + ' ' if row['bound'] else ''}{row['multiplier']:.2f}x"
        censored = "; ".join(f"the ViT's curve is {side} the sizes measured in {row[key]} of {row['seeds']} seeds"
                             for key, side in (("beyond", "beyond"), ("below", "already above at the smallest of"))
                             if row[key])
        if row["seeds"] < 2:
            lines.append(f"- {name} at {n} images: fewer than 2 paired seeds, so no multiplier is claimed "
                         f"({estimate}{'; ' + censored if censored else ''}).")
            continue
        fraction = results.loc[(results["arm"] == arm) & (results["train_images"] == row["train_images"]),
                               "fraction"].iloc[0]
        d = direct[(direct["arm"] == arm) & (direct["fraction"] == fraction)].iloc[0]
        detail = (f"bootstrap 95% interval {multiplier_interval(row)} over {row['seeds']} seeds"
                  f"{'; ' + censored if censored else ''}; direct difference {d['diff_mean']:+.1f} points, "
                  f"t-interval {d['ci_low']:+.1f} to {d['ci_high']:+.1f}")
        if row["excludes_one"] and d["excludes_zero"]:
            lines.append(f"- {vit} needs {estimate} the training images to match {name} at {n} images ({detail}).")
        else:
            reason = ("the direct difference's t-interval includes 0" if row["excludes_one"] else
                      "its interval includes 1")
            lines.append(f"- No data multiplier is claimed between {vit} and {name} at {n} images: {reason} "
                         f"({estimate}, {detail}).")
    return lines


def multiplier_interval(row):
    """A multiplier table row's interval as text, an open end said as such (a censored draw falls on it)."""
    low, high = row["ci_low"], row["ci_high"]
    if np.isinf(high):
        return f"more than {low:.2f}x, no upper bound" if low > 0 else "unbounded"
    return f"{low:.2f}x to {high:.2f}x" if low > 0 else f"below {high:.2f}x"


def top1_vs_images(results, table, colors):
    """Test top-1 against training images (log axis), a line per arm with the seeds' range as a band, and each
    T2T arm's data multiplier marked at its largest size: an arrow to where the ViT's curve reaches its score."""
    results = upgraded(results)
    fig, ax = new_figure()
    for (arm, label), group in results.groupby(["arm", "label"], sort=False):
        curve = group.groupby("train_images")["test_top1"].agg(["mean", "min", "max"])
        color = colors[arm]
        ax.plot(curve.index, curve["mean"], marker="o", color=color, label=label)
        ax.fill_between(curve.index, curve["min"], curve["max"], color=color, alpha=0.2, linewidth=0)
    for arm, rows in table.groupby("arm", sort=False):
        row = rows.iloc[-1]
        if row["seeds"] >= 1 and not row["bound"] and not np.isnan(row["multiplier"]):  # a bound is no point
            n = row["train_images"]
            y = results[(results["arm"] == arm) & (results["train_images"] == n)]["test_top1"].mean()
            color = colors[arm]
            ax.annotate("", xy=(n * row["multiplier"], y), xytext=(n, y),
                        arrowprops={"arrowstyle": "->", "color": color})
            # the label sits above the arrow's middle (geometric: the axis is log), inside the axes
            ax.text(n * row["multiplier"] ** 0.5, y, f"{row['multiplier']:.2f}x", fontsize=8, color=color,
                    ha="center", va="bottom", bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
    sizes = sorted(results["train_images"].unique())
    ax.set(xscale="log", xlabel="training images", ylabel="test top-1 (%)",
           title="test top-1 vs training images (band: seeds' range); arrow: the ViT's data multiplier")
    ax.xaxis.set_major_locator(ticker.FixedLocator(sizes))  # the measured sizes, not powers of ten
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda x, _: f"{x:,.0f}"))
    ax.xaxis.set_minor_locator(ticker.NullLocator())
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def study_figures(results, table, multiplier_table, roles, history=None):
    """{name: figure}: test top-1 vs fraction (when the study has several) and vs training images with the data
    multiplier (when it has one: `multipliers(results, roles)`), vs MACs and vs train images/s; with the runs'
    per-epoch history, validation top-1 vs wall-clock time and vs training PFLOP."""
    figures, colors = {}, arm_colors(results, roles)
    if table["fraction"].nunique() > 1:
        figures["top1_vs_fraction"] = top1_vs_fraction(table, colors)
    if multiplier_table is not None:
        figures["top1_vs_images"] = top1_vs_images(results, multiplier_table, colors)
    figures["top1_vs_macs"] = top1_vs_cost(table, "macs", "MACs per image", colors)
    figures["top1_vs_throughput"] = top1_vs_cost(table, "train_images_per_s", "training images/s (measured)", colors,
                                                 front=True)
    if history is not None:
        figures["top1_vs_time"] = val_curves(history, table, "elapsed_s", "wall time since the run started (min; "
                                             "training and validation)", colors, scale=60)
        if history["train_pflop"].notna().all():
            figures["top1_vs_pflop"] = val_curves(history, table, "train_pflop", "training compute (PFLOP)", colors)
    return figures


def health_lines(results, out):
    """Markdown lines for every run that stayed on the initial loss plateau, with its likely causes."""
    lines = []
    for row in results[results.get("plateau", False) == True].itertuples():  # noqa: E712 (pandas mask)
        name = run_folder_name(row.arm, row.depth, row.fraction, row.seed)
        health = read_summary(Path(out) / "runs" / name, out).get("health", {})
        lines.append(f"- `{name}`: final train loss {health.get('final_loss_vs_chance', float('nan')):.2f} x chance; "
                     f"likely: {'; '.join(health.get('likely_causes', []))}")
    return lines or ["No run stayed on the initial loss plateau (final train loss below 95% of chance's, "
                     "or top-1 at least 1.5 x chance)."]


def protocol_lines(study, out, results):
    """What the runs were chosen and scored on, read from the first run's summary and the study's spec."""
    train = study["spec"]["train"]
    first = upgraded(results).iloc[0]
    summary_path = Path(out) / "runs" / run_folder_name(first.arm, first.depth, first.fraction, first.seed)
    summary = read_summary(summary_path, out)
    holdout = summary.get("holdout")
    length = next((f"{train[k]:g} {unit} per run" for k, unit in (("budget_pflop", "PFLOP"),
                   ("budget_minutes", "minutes"), ("epochs", "epochs")) if k in train), "the default epochs")
    lines = [f"- Length: {length}, the same for every arm (training compute = forward MACs x 6 x images seen); "
             "the cosine schedule ends at it."]
    if holdout:
        lines += [f"- Validation: {holdout['images']:,} training images held out ({holdout['per_class']} per class, "
                  f"seed {holdout['seed']}, file list sha256 `{holdout['sha256'][:16]}…`); per-epoch scores, best.pth "
                  "and the plateau check use it.",
                  "- Test: the data folder's val/, read once per run at the end; the table's test top-1 is the final "
                  "weights'; best.pth's test score (chosen on the holdout) is shown beside it."]
    else:
        lines.append("- Validation: none held out; the per-epoch scores and best.pth were chosen on the test split "
                     "(val/), so only the final weights' score is a result.")
    return lines


RECIPE_SUBJECT = ("model", "depth", "init")  # what a recipe is chosen for: an architecture and where it starts


def recipe_subject(results):
    """The columns that tell one recipe subject from another in `results`: the model, and its depth and
    starting checkpoint where the sweep has several (a pretrained arm and its scratch twin share a model)."""
    return [c for c in RECIPE_SUBJECT if c == "model" or (c in results and results[c].nunique() > 1)]


def recipe_table(results):
    """A recipe sweep's holdout top-1 per subject (`recipe_subject`), learning rate and warm-up share, the chosen
    recipe marked: the highest holdout top-1 of each subject (mean over its seeds); a tie goes to the lower lr, then
    the shorter warm-up."""
    subject = recipe_subject(results)
    table = (results.groupby([*subject, "lr", "warmup_share"], sort=True)
             .agg(seeds=("seed", "nunique"), holdout_top1=("val_top1", "mean"), arms=("arm", "first")).reset_index())
    return table.assign(chosen=table.index.isin(table.groupby(subject)["holdout_top1"].idxmax()))


def subject_words(row):
    """The parts of a recipe subject beyond its model, in words ("" where the sweep has one of each)."""
    depth = f" depth {row.depth}" if hasattr(row, "depth") else ""
    start = (f" from `{row.init}`" if row.init else " from scratch") if hasattr(row, "init") else ""
    return depth + start


def write_recipe_report(results, out, study):
    """A study whose runs never read the test split (test = false): a recipe sweep, reported on the holdout.
    Returns its table as Markdown."""
    table = recipe_table(results)
    atomic_write_text(out / RESULTS, results.to_csv(index=False))
    atomic_write_text(out / f"{TABLE}.csv", table.to_csv(index=False))
    atomic_write_text(out / f"{TABLE}.md", md_table(table, floatfmt=".4g") + "\n")
    prov = study["provenance"]
    chosen = table[table["chosen"]]
    lines = ["# Recipe sweep", "",
             f"{len(results)} runs finished. The test split was never read: every score here is the holdout's.", "",
             md(f"- command: `{prov['command']}`"), f"- date: {prov['date']}", md(f"- device: {prov['device']}"),
             f"- code: {prov['git_commit']}", "",
             "## Chosen (highest holdout top-1 per model)", "",
             *[md(f"- `{row.model}`{subject_words(row)}: lr {row.lr:g}, warm-up share {row.warmup_share:.3g} "
                  f"(holdout top-1 {row.holdout_top1:.2f}%)") for row in chosen.itertuples()],
             "", "## Every recipe", "", md_table(table, floatfmt=".4g"), ""]
    atomic_write_text(out / "report.md", "\n".join(lines))
    return md_table(table, floatfmt=".4g")


def write_study_report(spec, out):
    """results.csv, table.csv/.md, the curves and report.md from the finished runs; returns the answer as Markdown
    (test top-1 by fraction and arm)."""
    out = Path(out)
    results = collect(spec, out)
    if results["test_top1"].isna().all():
        return write_recipe_report(results, out, read_back(out / STUDY_FILE, "the study's record is lost: run it "
                                                           "again into a new --out"))
    roles = arm_roles(spec)
    table = aggregate(results, roles)
    baseline = baseline_label(results, roles)
    atomic_write_text(out / RESULTS, results.to_csv(index=False))
    atomic_write_text(out / f"{TABLE}.csv", table.to_csv(index=False))
    atomic_write_text(out / f"{TABLE}.md", markdown_table(table, baseline) + "\n")
    history = histories(results, out)
    multiplier_table = multipliers(results, roles)
    figures = study_figures(results, table, multiplier_table, roles, history)
    for name, fig in figures.items():
        save_figure(fig, out / name)
    figures = [f"{name}.png" for name in figures]
    study = read_back(out / STUDY_FILE, "the study's record is lost: run it again into a new --out")
    prov = study["provenance"]
    lines = [
        "# Study report",
        "",
        md(f"{len(results)} of {len(spec.runs())} runs finished. Data: `{study['spec']['data']}`."),
        "",
        md(f"- command: `{prov['command']}`"),
        f"- date: {prov['date']}",
        md(f"- device: {prov['device']}"),
        f"- code: {prov['git_commit']}",
        md("- versions: " + ", ".join(f"{k} {v}" for k, v in prov["versions"].items() if v)),
        "",
        "## Protocol",
        "",
        *protocol_lines(study, out, results),
        md(f"- {test_noise_line(results)}"),
        "",
        "## Test top-1 by training fraction (mean ± std [95% t-interval] over seeds)",
        "",
        pivot_table(table),
        "",
        "## Comparisons (seed-paired differences; a difference is stated only when its 95% interval excludes zero)",
        "",
        *(md_lines(comparison_sentences(results, roles)) or ["- One arm only: nothing to compare."]),
        "",
        "## All architectures",
        "",
        markdown_table(table, baseline),
        "",
        *([md(f"## Data multiplier (images the {baseline} needs to match each T2T arm: read off the seeds' mean "
              "curves on log(images), 95% bootstrap over seeds)"), "",
           *md_lines(multiplier_lines(results, multiplier_table, roles)), "",
           md_table(multiplier_table, floatfmt=".3g"), ""] if multiplier_table is not None else []),
        *(["## Time to accuracy (validation top-1; mean over the seeds that reached it)", "",
           md_table(time_to_accuracy(history), disable_numparse=True), ""] if history is not None
          else []),
        "## Training health",
        "",
        *md_lines(health_lines(results, out)),
        "",
        "## Curves",
        "",
        *[f"![{name}]({name})" for name in figures],
        "",
    ]
    atomic_write_text(out / "report.md", "\n".join(lines))
    return pivot_table(table)
