"""`vitbench report`: tables (Markdown, CSV, LaTeX) and plots (PNG, SVG) from any mix of results.

Inputs are recognised by what they hold: a sweep folder (`provenance.json` from `vitbench
sweep`), a pytest-benchmark JSON (`--benchmark-json`), a training run folder or a study
folder. The paper's model table is always built: published numbers beside our counts.
Everything lands in one folder with an `index.md` that links each table and plot and says
where its numbers came from.
"""
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from bench.cost.flops import analytic_macs  # noqa: E402
from bench.accuracy import study  # noqa: E402
from bench.provenance import provenance  # noqa: E402
from bench.cost.published import build_published, published_model_name, published_rows  # noqa: E402
from bench.accuracy.study import ARM_COLORS as FAMILY_COLORS  # noqa: E402
from models.atomic import atomic_write, atomic_write_text  # noqa: E402
from models.errors import ResultsError  # noqa: E402

REPORT_TITLE = "# vitbench report"
AXES = {"depth": "depth (blocks)", "num_heads": "attention heads", "patch_size": "patch size / T2T stride (px)",
        "img_side": "image side (px)"}


def family_of(model_family, tokenizer):
    """One label per model family, shared by every table and plot."""
    if model_family == "t2t" or tokenizer in ("performer", "transformer"):
        return f"t2t-{tokenizer}"
    return "vit" if model_family in ("vit", "named") else model_family


def run_family(config):
    """Family of a training run from its config: ours by registry, anything else a CNN from timm."""
    import models

    if config["model"] not in models.MODEL_CONFIGS:
        return "cnn"
    settings = {**models.MODEL_CONFIGS[config["model"]], **config.get("model_args", {})}
    return family_of(settings["family"], settings.get("t2t_block", "patch"))


@dataclass
class Inputs:
    sweeps: list = field(default_factory=list)      # (path, tidy table, provenance)
    benchmarks: list = field(default_factory=list)  # (path, pytest-benchmark JSON)
    runs: list = field(default_factory=list)        # (path, config, summary or None, metrics table)
    studies: list = field(default_factory=list)     # (path, results table, study.json)

    def sources(self):
        return [path for path, *_ in self.sweeps + self.benchmarks + self.runs + self.studies]


def load_run(path):
    config = json.loads((path / "config.json").read_text())
    summary = json.loads((path / "summary.json").read_text()) if (path / "summary.json").is_file() else None
    metrics = pd.read_json(path / "metrics.jsonl", lines=True)
    if metrics.empty:
        raise ResultsError(f"{path} has no finished epoch yet; train it first")
    return path, config, summary, metrics


def load_inputs(paths):
    """Sort each path into the kind of result it holds; unknown or unreadable paths raise."""
    inputs = Inputs()
    for path in map(Path, paths):
        if not path.exists():
            raise ResultsError(f"result path not found: {path}")
        if path.is_dir() and (path / "provenance.json").is_file():
            prov = json.loads((path / "provenance.json").read_text())
            if prov.get("tool") == "vitbench sweep":
                table_path = path / "sweep.csv"
                if not table_path.is_file():
                    raise ResultsError(f"{path} is an unfinished sweep; finish it with `vitbench sweep --resume --out {path}`")
                inputs.sweeps.append((path, pd.read_csv(table_path), prov))
                continue
        if path.is_dir() and (path / "study.json").is_file():
            if not (path / "results.csv").is_file():
                raise ResultsError(f"{path} is a study without results.csv; run `vitbench study --report-only` on it")
            inputs.studies.append((path, pd.read_csv(path / "results.csv"), json.loads((path / "study.json").read_text())))
            continue
        if path.is_dir() and (path / "config.json").is_file() and (path / "metrics.jsonl").is_file():
            inputs.runs.append(load_run(path))
            continue
        if path.is_file() and path.suffix == ".json":
            try:
                data = json.loads(path.read_text())
            except json.JSONDecodeError as e:
                raise ResultsError(f"{path} is not valid JSON ({e}); regenerate it") from None
            if isinstance(data, dict) and "benchmarks" in data and "machine_info" in data:
                inputs.benchmarks.append((path, data))
                continue
        raise ResultsError(
            f"{path} is not a result vitbench knows (sweep folder, pytest-benchmark JSON, training run or study folder)"
        )
    return inputs


# ----------------------------------------------------------------------------- tables


def published_counts():
    """(published row, our params, our analytic MACs breakdown) for every row of published.csv."""
    counts = []
    for row in published_rows():
        with torch.device("meta"):  # structure only: counting needs no weights
            model = build_published(row)
        counts.append((row, sum(p.numel() for p in model.parameters()), analytic_macs(model)))
    return counts


def paper_table(counts):
    """Published params / MACs / top-1 per named model beside ours and the difference."""
    rows = []
    for row, params, breakdown in counts:
        macs = breakdown["total"]
        rows.append({
            "model": row["model"],
            "ours": published_model_name(row),
            "params_published_M": float(row["params_published"]) / 1e6 if row["params_published"] else None,
            "params_reference": int(row["params_total"]),
            "params_ours": params,
            "params_diff": params - int(row["params_total"]),
            "macs_published_G": float(row["macs_published"]) / 1e9 if row["macs_published"] else None,
            "macs_reference_G": int(row["macs_reference"]) / 1e9,
            "macs_ours_G": macs / 1e9,
            "macs_diff_pct": 100 * (macs - int(row["macs_reference"])) / int(row["macs_reference"]),
            "top1_published": float(row["top1_published"]) if row["top1_published"] else None,
            "family": family_of("t2t" if row["t2t_block"] != "patch16" else "vit", row["t2t_block"]),
        })
    return pd.DataFrame(rows)


def sweep_wide(table):
    """One row per configuration, one column per measurement (skipped configs listed apart)."""
    ok = table[table.status.isin(["ok", "oom"])].copy()
    ok["family"] = [family_of(f, t) for f, t in zip(ok.config_family, ok.tokenizer)]
    keys = ["family", "model", "depth", "num_heads", "embed_dim", "patch_size", "img_size", "tokens", "batch_size", "dtype"]
    wide = ok.pivot_table(index=keys, columns="measurement", values="value", aggfunc="first").reset_index()
    wide.columns.name = None
    wide["img_side"] = [round((h * w) ** 0.5) for h, w in (map(int, size.split("x")) for size in wide.img_size)]
    wide = wide.sort_values(["family", "patch_size", "depth", "num_heads", "img_side"], ignore_index=True)
    if {"macs_tokenizer", "macs"} <= set(wide.columns):
        wide["tokenizer_mac_share"] = wide["macs_tokenizer"] / wide["macs"]
    return wide


COST_COLUMNS = {  # readable cost table: column -> (header, scale)
    "params": ("params (M)", 1e-6), "macs": ("MACs (G)", 1e-9), "tokenizer_mac_share": ("tokenizer MAC share", 1),
    "throughput_inference": ("inference (img/s)", 1), "throughput_train": ("train step (img/s)", 1),
    "peak_memory_inference": ("inference peak mem (MB)", 1e-6), "peak_memory_train": ("train peak mem (MB)", 1e-6),
    "activation_estimate_train": ("train activations, analytic (MB)", 1e-6),
}


def cost_table(wide):
    """The columns a reader compares, in units they read; the full table stays in the CSV."""
    keys = ["family", "depth", "num_heads", "embed_dim", "patch_size", "img_size", "tokens", "batch_size"]
    shown = wide[keys].copy()
    for column, (header, scale) in COST_COLUMNS.items():
        if column in wide:
            shown[header] = wide[column] * scale
    return shown.round(3)


def benchmark_table(data):
    rows = []
    for bench in data["benchmarks"]:
        info, stats = bench["extra_info"], bench["stats"]
        rows.append({
            "group": bench["group"], "name": bench["name"], "model": info.get("model"), "role": info.get("role", ""),
            "family": family_of(info.get("family"), info.get("config", {}).get("t2t_block", "patch")),
            "mode": info.get("mode"), "batch_size": info.get("batch_size"), "img_size": "x".join(map(str, info.get("img_size", []))),
            "params": info.get("params"), "macs": info.get("macs"), "median_s": stats["median"],
            "iqr_s": stats["iqr"], "img_s": info.get("batch_size", 1) / stats["median"],
        })
    return pd.DataFrame(rows)


def ratio_table(data):
    ratios = data.get("ratios", {})
    return pd.DataFrame([{"pair": pair, **values} for pair, values in sorted(ratios.items())])


def accuracy_table(runs):
    """One row per training run: accuracy beside its cost."""
    rows = []
    for path, config, summary, metrics in runs:
        last = metrics.iloc[-1]
        rows.append({
            "run": path.name, "model": config["model"], "family": run_family(config),
            "epochs": int(last["epoch"]), "finished": summary is not None,
            "top1": last["top1"], "top5": last["top5"], "best_top1": metrics["top1"].max(),
            "params": summary["params"] if summary else None,
            "train_img_s": metrics["train_images_per_s"].median(), "peak_mem_mb": metrics["peak_mem_mb"].max(),
            "device": summary["device"] if summary else config.get("device"),
        })
    return pd.DataFrame(rows)


def study_source(record):
    prov = record["provenance"]
    return f"{prov['device']}, torch {prov['versions']['torch']}, {prov['date']}, `{prov['command']}`, data `{record['spec']['data']}`"


# ----------------------------------------------------------------------------- plots


def plot_training_curves(runs):
    """Train loss, val loss and val top-1 per epoch, a line per run, coloured by family."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for path, config, _, metrics in runs:
        style = dict(color=FAMILY_COLORS.get(run_family(config)), label=path.name, alpha=0.8)
        for ax, column in zip(axes, ("train_loss", "val_loss", "top1")):
            ax.plot(metrics["epoch"], metrics[column], **style)
    for ax, ylabel in zip(axes, ("training loss (cross-entropy)", "validation loss (cross-entropy)", "val top-1 (%)")):
        ax.set(xlabel="epoch", ylabel=ylabel)
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=6)
    fig.suptitle("Training curves")
    return fig



def plot_accuracy_vs_macs(paper):
    """Published top-1 against MACs we count (the paper's Figure 1 in spirit), Pareto front marked."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    points = paper.dropna(subset=["top1_published"]).sort_values("macs_ours_G")
    for family, group in points.groupby("family"):
        ax.scatter(group.macs_ours_G, group.top1_published, color=FAMILY_COLORS.get(family), label=family)
        for _, row in group.iterrows():
            ax.annotate(row.model, (row.macs_ours_G, row.top1_published), fontsize=7, xytext=(3, 3), textcoords="offset points")
    front = points[points.top1_published >= points.top1_published.cummax()]
    ax.step(front.macs_ours_G, front.top1_published, where="post", color="gray", linestyle="--", label="Pareto front")
    ax.set(xlabel="MACs per image (G, counted by vitbench)", ylabel="ImageNet top-1 (%, published)",
           title="Accuracy vs compute: published top-1, our MAC counts")
    ax.legend()
    return fig


def plot_mac_breakdown(counts):
    """Stacked MACs per model at 224 px: tokenizer, attention, MLP, rest."""
    parts = [
        {"model": published_model_name(row), "tokenizer": macs["tokenizer"] / 1e9, "attention": macs["attention"] / 1e9,
         "MLP": macs["mlp"] / 1e9, "norm + head": (macs["norm"] + macs["head"]) / 1e9}
        for row, _, macs in counts if row["img_size"] == "224"
    ]
    frame = pd.DataFrame(parts).set_index("model")
    ax = frame.plot.barh(stacked=True, figsize=(8, 0.35 * len(frame) + 1.5))
    ax.set(xlabel="MACs per image at 224 px (G)", ylabel="", title="Where the MACs go")
    return ax.figure, frame.reset_index()


def plot_sweep_axis(wide, axis, measurement, ylabel, scale=1):
    """`measurement` against one sweep axis: a line per family and patch size, median over other axes."""
    fig, ax = plt.subplots(figsize=(6, 4))
    keys = ["family"] + (["patch_size"] if axis != "patch_size" else [])
    for (family, *patch), group in wide.groupby(keys):
        series = group.groupby(axis)[measurement].median().dropna() * scale
        multi_patch = bool(patch) and wide.loc[wide.family == family, "patch_size"].nunique() > 1
        style = "--" if multi_patch and patch[0] != wide.loc[wide.family == family, "patch_size"].min() else "-"
        if len(series):
            ax.plot(series.index, series.values, marker="o", linestyle=style, color=FAMILY_COLORS.get(family),
                    label=f"{family} patch {patch[0]}" if multi_patch else family)
    ax.set(xlabel=AXES[axis], ylabel=ylabel, title=f"{ylabel} vs {AXES[axis]}")
    ax.legend()
    return fig


SWEEP_PLOTS = {  # measurement -> (axis label, scale)
    "throughput_inference": ("inference throughput (images/s)", 1),
    "throughput_train": ("training throughput (images/s)", 1),
    "peak_memory_inference": ("inference peak memory (MB)", 1e-6),
    "peak_memory_train": ("training peak memory (MB)", 1e-6),
    "macs": ("MACs per image (G)", 1e-9),
}


# ----------------------------------------------------------------------------- writing


class ReportWriter:
    """Writes tables and figures into `out` and remembers what to list in index.md."""

    def __init__(self, out, overwrite=False):
        self.out = Path(out)
        if self.out.exists() and any(self.out.iterdir()):
            index = self.out / "index.md"
            ours = index.is_file() and index.read_text().startswith(REPORT_TITLE)
            if not (ours and overwrite):
                raise ResultsError(f"{self.out} already holds {'a report' if ours else 'other files'}; choose another "
                                   f"--out{' or pass --overwrite' if ours else ''}")
            shutil.rmtree(self.out)  # a stale plot from an earlier report must not survive
        self.out.mkdir(parents=True, exist_ok=True)
        self.sections = []

    def table(self, name, frame, title, source):
        frame = frame.round(4)
        atomic_write_text(self.out / f"{name}.csv", frame.to_csv(index=False))
        atomic_write_text(self.out / f"{name}.md", frame.to_markdown(index=False) + "\n")
        atomic_write_text(self.out / f"{name}.tex", frame.to_latex(index=False, float_format="%.4g"))
        self.sections.append((title, source, f"[{name}.md]({name}.md) ([csv]({name}.csv), [tex]({name}.tex))",
                              frame.head(20).to_markdown(index=False)))

    def figure(self, name, fig, title, source):
        fig.tight_layout()
        for suffix in ("png", "svg"):
            atomic_write(self.out / f"{name}.{suffix}", lambda f, s=suffix: fig.savefig(f, format=s, dpi=120))
        plt.close(fig)
        self.sections.append((title, source, f"![{title}]({name}.png) ([svg]({name}.svg))", None))

    def index(self, prov, inputs):
        lines = [REPORT_TITLE, "", f"Made {prov['date']} by `{prov['command']}` at commit `{prov['git_commit']}`.", "",
                 f"Report machine: {prov['device']}; versions: "
                 + ", ".join(f"{k} {v}" for k, v in prov["versions"].items() if v) + ".", ""]
        if inputs:
            lines += ["Inputs:", ""] + [f"- `{path}`" for path in inputs] + [""]
        for title, source, link, preview in self.sections:
            lines += [f"## {title}", "", f"Source: {source}", "", link, ""]
            if preview:
                lines += [preview, ""]
        atomic_write_text(self.out / "index.md", "\n".join(lines))
        return self.out / "index.md"


def source_line(prov):
    return f"{prov['device']}, torch {prov['versions']['torch']}, timm {prov['versions']['timm']}, " \
           f"{prov['date']}, `{prov['command']}`"


def benchmark_source(data):
    machine, commit = data["machine_info"], data.get("commit_info", {})
    cpu = machine.get("cpu", {}).get("brand_raw", machine.get("processor", "?"))
    return f"{cpu}, {machine.get('python_version')}, {data['datetime']}, commit {commit.get('id', '?')[:10]}, pytest-benchmark"


def build_report(paths, out, argv=None, overwrite=False):
    """Write every table and plot the inputs allow into `out`; returns the index path."""
    inputs = load_inputs(paths)
    writer = ReportWriter(out, overwrite)
    prov = provenance("cpu", argv)
    counted = f"counted by vitbench (analytic, equal to fvcore and torch counters within 1%), {prov['date']}"

    counts = published_counts()
    paper = paper_table(counts)
    writer.table("paper_models", paper.drop(columns=["family"]), "The paper's models: published vs ours",
                 f"bench/cost/published.csv (reference facts) beside parameters and MACs {counted}")
    writer.figure("accuracy_vs_macs", plot_accuracy_vs_macs(paper), "Accuracy vs MACs",
                  f"published top-1 (bench/cost/published.csv), MACs {counted}")
    fig, breakdown = plot_mac_breakdown(counts)
    writer.table("mac_breakdown", breakdown, "MACs breakdown per model (G)", counted)
    writer.figure("mac_breakdown", fig, "MACs breakdown: tokenizer / attention / MLP", counted)

    for path, table, sweep_prov in inputs.sweeps:
        wide = sweep_wide(table)
        tag = path.name
        atomic_write_text(writer.out / f"cost_{tag}_all.csv", wide.to_csv(index=False))
        writer.table(f"cost_{tag}", cost_table(wide), f"Cost per configuration ({tag}; every measurement in "
                     f"[cost_{tag}_all.csv](cost_{tag}_all.csv))", source_line(sweep_prov))
        for axis in AXES:
            if wide[axis].nunique() < 2:
                continue
            for measurement, (label, scale) in SWEEP_PLOTS.items():
                if measurement in wide and wide[measurement].notna().any():
                    writer.figure(f"{measurement}_vs_{axis}_{tag}", plot_sweep_axis(wide, axis, measurement, label, scale),
                                  f"{label} vs {AXES[axis]} ({tag})", source_line(sweep_prov))
    for path, data in inputs.benchmarks:
        tag = path.stem
        writer.table(f"timings_{tag}", benchmark_table(data), f"pytest-benchmark timings ({tag})", benchmark_source(data))
        ratios = ratio_table(data)
        if len(ratios):
            writer.table(f"speed_ratios_{tag}", ratios, f"Ours vs baseline, same config ({tag}); speedup > 1 = ours faster",
                         benchmark_source(data))
    if inputs.runs:
        writer.table("accuracy_runs", accuracy_table(inputs.runs), "Training runs: accuracy and cost",
                     "the runs' config.json, metrics.jsonl and summary.json: " + ", ".join(str(p) for p, *_ in inputs.runs))
        writer.figure("training_curves", plot_training_curves(inputs.runs), "Training curves",
                      "the runs' metrics.jsonl")
    for path, results, record in inputs.studies:
        tag = path.name
        table = study.aggregate(results)
        writer.table(f"study_{tag}", table, f"From-scratch study ({tag}): top-1 mean and spread over seeds",
                     study_source(record))
        for name, fig in study.study_figures(table).items():
            writer.figure(f"{name}_{tag}", fig, f"{name.replace('_', ' ')} ({tag})", study_source(record))
        final = [load_run(run) for run in sorted((path / "runs").iterdir())
                 if f"-f{results.fraction.max():g}-s{results.seed.min()}" in run.name] if (path / "runs").is_dir() else []
        if final:
            writer.figure(f"training_curves_{tag}", plot_training_curves(final),
                          f"Training curves of the study's full-data runs, seed {results.seed.min()} ({tag})",
                          study_source(record))
    return writer.index(prov, inputs.sources())
