"""Tables from results: the paper's models, sweep costs, pytest-benchmark timings and ratios, training runs.

Each function takes what a loader read (see `bench.report.build`) and returns a DataFrame; every
table names the model family with `models.family_of`.
"""
import pandas as pd
import timm
import torch

import models
from bench.cost.flops import analytic_macs, any_model_macs, count_params
from bench.cost.published import build_published, published_cifar10, published_model_name, published_rows
from bench.cost.sweep import TIMM_FAMILY
from bench.report.style import family_order


def published_counts():
    """(published row, our params, our analytic MACs breakdown) for every row of published.csv."""
    counts = []
    for row in published_rows():
        with torch.device("meta"):  # structure only: counting needs no weights
            model = build_published(row)
        counts.append((row, count_params(model), analytic_macs(model)))
    return counts


def published_family(row):
    """The family of a published row (its `t2t_block` is "patch16" for the ViTs)."""
    return tokenizer_family("patch" if row["t2t_block"] == "patch16" else row["t2t_block"])


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
            "family": published_family(row),
        })
    return pd.DataFrame(rows)


def mac_breakdown(counts):
    """MACs per model at 224 px in G: tokenizer, attention, MLP, norm + head."""
    return pd.DataFrame([
        {"model": published_model_name(row), "tokenizer": macs["tokenizer"] / 1e9, "attention": macs["attention"] / 1e9,
         "MLP": macs["mlp"] / 1e9, "norm + head": (macs["norm"] + macs["head"]) / 1e9}
        for row, _, macs in counts if row["img_size"] == "224"
    ])


def tokenizer_family(tokenizer):
    """The family of a sweep row from its `tokenizer` column (a `models.Family.kind`: patch, performer,
    transformer..., or timm)."""
    return TIMM_FAMILY if tokenizer == TIMM_FAMILY else models.family_of_kind(tokenizer)


def sweep_wide(table):
    """One row per configuration, one column per measurement (skipped configs listed apart)."""
    ok = table[table.status.isin(["ok", "oom"])].copy()
    ok["family"] = [tokenizer_family(t) for t in ok.tokenizer]
    keys = [
        "family",
        "model",
        "depth",
        "num_heads",
        "embed_dim",
        "patch_size",
        "img_size",
        "tokens",
        "batch_size",
        "dtype",
    ]
    wide = ok.groupby([*keys, "measurement"], dropna=False)["value"].first().unstack("measurement").reset_index()
    wide.columns.name = None  # timm rows keep their empty keys (a CNN has no depth or patches)
    if {"q1", "q3"} <= set(ok.columns) and ok["q1"].notna().any():  # timings' quartiles: <measurement>_q1 / _q3
        spread = ok.dropna(subset=["q1"]).groupby([*keys, "measurement"], dropna=False)[["q1", "q3"]].first()
        spread = spread.unstack("measurement")
        spread.columns = [f"{measurement}_{quartile}" for quartile, measurement in spread.columns]
        wide = wide.merge(spread.reset_index(), on=keys, how="left")
    wide["img_side"] = [round((h * w) ** 0.5) for h, w in (map(int, size.split("x")) for size in wide.img_size)]
    wide = wide.sort_values(["family", "patch_size", "depth", "num_heads", "img_side"], ignore_index=True,
                            key=lambda column: column.map(family_order) if column.name == "family" else column)
    if {"macs_tokenizer", "macs"} <= set(wide.columns):
        wide["tokenizer_mac_share"] = wide["macs_tokenizer"] / wide["macs"]
    return wide


def setup_note(table):
    """'batch 8, cpu, 2 threads, float32': how a sweep's timings ran, for a figure's corner."""
    timed = table[table["measurement"].str.startswith("throughput")] if "measurement" in table else table
    parts = []
    for column, shown in (("batch_size", "batch {}"), ("device", "{}"), ("threads", "{} threads"), ("dtype", "{}")):
        values = timed[column].dropna().unique() if column in timed else []
        if len(values):
            parts.append(shown.format("/".join(str(int(v)) if isinstance(v, float) else str(v) for v in values)))
    return ", ".join(parts)


def crossed_axes(table, axes):
    """Those of `axes` (columns of `sweep_wide`) the sweep crossed with two values or more, read from
    its `config_<key>` columns (`img_side` from `config_img_size`): named and timm models measured as
    they are vary in depth or heads too, but along no axis."""
    columns = {axis: f"config_{'img_size' if axis == 'img_side' else axis}" for axis in axes}
    return [axis for axis, column in columns.items() if column in table and table[column].dropna().nunique() > 1]


COST_COLUMNS = {  # readable cost table: column -> (header, scale)
    "params": ("params (M)", 1e-6),
    "macs": ("MACs (G)", 1e-9),
    "tokenizer_mac_share": ("tokenizer MAC share", 1),
    "tokenizer_time_share_inference": ("tokenizer time share, inference", 1),
    "tokenizer_time_share_train": ("tokenizer time share, train", 1),
    "throughput_inference": ("inference (img/s)", 1),
    "throughput_train": ("train step (img/s)", 1),
    "peak_memory_inference": ("inference peak mem (MB)", 1e-6),
    "peak_memory_train": ("train peak mem (MB)", 1e-6),
    "activation_estimate_train": ("train activations, analytic (MB)", 1e-6),
    "compile_s_inference": ("compile, inference (s)", 1),
    "compile_s_train": ("compile, train (s)", 1),
}


def cost_table(wide):
    """The columns a reader compares, in units they read; the full table stays in the CSV."""
    keys = ["family", "model", "depth", "num_heads", "embed_dim", "patch_size", "img_size", "tokens", "batch_size"]
    shown = wide[keys].copy()
    for column, (header, scale) in COST_COLUMNS.items():
        if column in wide:
            shown[header] = wide[column] * scale
    return shown.round(3)


def benchmark_table(data):
    """One row per pytest-benchmark benchmark, with what its extra_info says was timed."""
    rows = []
    for bench in data["benchmarks"]:
        info, stats = bench["extra_info"], bench["stats"]
        rows.append(
            {
                "group": bench["group"],
                "name": bench["name"],
                "model": info.get("model"),
                "role": info.get("role", ""),
                "family": models.family_of(info.get("config", {})),
                "mode": info.get("mode"),
                "batch_size": info.get("batch_size"),
                "img_size": "x".join(map(str, info.get("img_size", []))),
                "params": info.get("params"),
                "macs": info.get("macs"),
                "median_s": stats["median"],
                "iqr_s": stats["iqr"],
                "img_s": info.get("batch_size", 1) / stats["median"],
            }
        )
    return pd.DataFrame(rows)


def ratio_table(data):
    ratios = data.get("ratios", {})
    return pd.DataFrame([{"pair": pair, **values} for pair, values in sorted(ratios.items())])


def run_family(config):
    """Family of a training run from its config: ours by registry, anything else a CNN from timm."""
    return models.family_of_model(config["model"], config.get("model_args"))


def run_classes(config, summary):
    """How many classes a run's task has, where its record says (None where it does not)."""
    if summary and isinstance(summary.get("classes"), int):
        return summary["classes"]
    return len(config["classes"]) if isinstance(config.get("classes"), list) else None


def accuracy_table(runs):
    """One row per training run: accuracy beside its cost; top-5 only where the task has more than 5 classes (of 5
    or fewer it is 100% by definition), the column left out where no run has."""
    rows = []
    for path, config, summary, metrics in runs:
        last = metrics.iloc[-1]
        classes = run_classes(config, summary)
        rows.append(
            {
                "run": path.name,
                "model": config["model"],
                "family": run_family(config),
                "epochs": int(last["epoch"]),
                "finished": summary is not None,
                "top1": last["top1"],
                "top5": last["top5"] if classes is None or classes > 5 else None,
                "best_top1": metrics["top1"].max(),
                "params": summary["params"] if summary else None,
                "train_img_s": metrics["train_images_per_s"].median(),
                "peak_mem_mb": metrics["peak_mem_mb"].max(),
                "device": summary["device"] if summary else config.get("device"),
            }
        )
    table = pd.DataFrame(rows)
    return table.drop(columns="top5") if table["top5"].isna().all() else table


def cifar_models():
    """Every 32 px CIFAR model, ours by formula and the CNNs by fvcore, beside the published figures:
    published MACs (fvcore-style counts of the Compact Transformers repository) appear to leave out
    attention's QK^T and AV, so ours are also shown without them."""
    published = published_cifar10()
    rows = []
    for name in models.list_models("*lite*"):
        with torch.device("meta"):
            model = models.create_model(name)
        macs = analytic_macs(model)
        rows.append({"model": name, "family": models.family_of(model.config), "params": count_params(model),
                     "macs_G": macs["total"] / 1e9,
                     "macs_without_qk_av_G": (macs["total"] - macs["attention.qk"] - macs["attention.av"]) / 1e9,
                     "tokenizer_mac_share": macs["tokenizer"] / macs["total"]})
    for name in models.CNN_BASELINES:
        model = timm.create_model(name)
        macs = any_model_macs(model)
        rows.append({"model": name, "family": models.family_of_model(name), "params": count_params(model),
                     "macs_G": macs / 1e9, "macs_without_qk_av_G": macs / 1e9, "tokenizer_mac_share": None})
    for row in rows:
        source = published.get(row["model"], {})
        row.update(params_published=float(source["params_published"]) if source else None,
                   macs_published_G=float(source["macs_published"]) / 1e9 if source else None,
                   top1_published=float(source["top1_published"]) if source else None,
                   epochs_published=int(source["epochs"]) if source else None)
    return pd.DataFrame(rows)
