"""The from-scratch data-efficiency study: ViT vs T2T-ViT (Performer and transformer T2T blocks)
vs a CNN baseline, at several training-set fractions, depths and seeds, with the same epochs
and augmentation for every run.

A study is a spec (a preset or a JSON file) expanded into runs; each run is a `vitbench train`
run folder under OUT/runs/, so an interrupted study resumes run by run. The results are one
row per run (results.csv), mean and spread over seeds (table.csv/.md), and three curves:
top-1 vs training fraction, top-1 vs MACs and top-1 vs training images/s.
"""
import copy
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

import models
from bench.accuracy import distributed, factory, train
from bench.accuracy.data import log
from bench.provenance import provenance
from models.atomic import atomic_write, atomic_write_text
from models.errors import ConfigError, ResultsError

STUDY_FILE, RESULTS, TABLE = "study.json", "results.csv", "table"
ARM_COLORS = {"vit": "tab:blue", "t2t-performer": "tab:orange", "t2t-transformer": "tab:green", "cnn": "tab:red"}

# Tiny models for a CPU: 32 px images, 8x8 = 64 tokens for every transformer (ViT patch 4,
# T2T two soft splits of stride 2), width 64. The ViT arm is the T2T paper's ViT (no qkv bias),
# so the transformer arms differ only in their tokenizer. Both use learned positions: at this
# width the paper's fixed sinusoid table (rms .71) swamps the tokens (rms .03-.14 at init) and
# leaves every transformer near chance for most of a short run (results/study-synthetic/README.md).
TINY_TRANSFORMER = {"embed_dim": 64, "num_heads": 2, "mlp_ratio": 2.0, "pos_embed": "learn"}
TINY_T2T = {**TINY_TRANSFORMER, "token_dim": 32, "t2t_stages": [[3, 2, 1], [3, 2, 1]]}
NARROW_RESNET = {"channels": [16, 32, 64, 128], "stem_width": 16}
FLIP_ONLY = {  # few epochs on little data: resampling would blur 5x5 motifs, so only flips (label-safe)
    "scale": [1.0, 1.0], "ratio": [1.0, 1.0], "hflip": 0.5, "color_jitter": 0.0, "auto_augment": "", "reprob": 0.0,
    "mixup": 0.0, "cutmix": 0.0, "smoothing": 0.1, "crop_pct": 1.0, "interpolation": "bicubic",
}
PAPER_AUGMENTATION = {"crop_pct": 0.875, "interpolation": "bicubic"}  # the rest: TrainConfig's paper defaults

PRESETS = {
    "cpu-tiny": {
        "fractions": [0.25, 0.5, 1.0], "seeds": [0, 1, 2],
        # lr 5e-4: T2T-ViT mostly stays at chance at 1e-3 and above; at depth 4 it did even at 2.5e-4 and 5e-4,
        # so the committed run (results/study-synthetic/spec.json) keeps depth 2 only.
        "train": {"epochs": 20, "batch_size": 32, "img_size": 32, "lr": 5e-4, "weight_decay": 0.05, "warmup_epochs": 1,
                  "min_lr": 1e-5, "drop_path": 0.0, "workers": 0, "threads": 1, **FLIP_ONLY},
        "arms": [
            {"name": "vit", "label": "ViT (patch 4)", "model": "vit_s16_t2t_paper",
             "overrides": {**TINY_TRANSFORMER, "patch_size": 4}, "depths": [2, 4]},
            {"name": "t2t-performer", "label": "T2T-ViT (Performer T2T)", "model": "t2t_vit_7", "overrides": TINY_T2T, "depths": [2, 4]},
            {"name": "t2t-transformer", "label": "T2T-ViT (transformer T2T)", "model": "t2t_vit_t_14", "overrides": TINY_T2T,
             "depths": [2, 4]},
            {"name": "cnn", "label": "ResNet (narrow)", "model": "resnet18", "overrides": NARROW_RESNET,
             "variants": [{"depth": 10, "overrides": {"layers": [1, 1, 1, 1]}}, {"depth": 18, "overrides": {"layers": [2, 2, 2, 2]}}]},
        ],
    },
    # ImageNet subsets on GPUs: the paper's recipe (AdamW, cosine, RandAugment, Mixup/CutMix, erasing) with one
    # lr for every arm (1e-3 at a global batch of 512, scaled linearly), T2T-ViT-7-sized transformers.
    "imagenet-subset": {
        "fractions": [0.1, 0.25, 0.5, 1.0], "seeds": [0, 1, 2],
        "train": {"epochs": 100, "batch_size": 128, "img_size": 224, "base_lr": 1e-3, "weight_decay": 0.05, "warmup_epochs": 5,
                  "workers": 8, **PAPER_AUGMENTATION},
        "arms": [
            {"name": "vit", "label": "ViT (patch 16, T2T-ViT-7 width)", "model": "vit_s16_t2t_paper",
             "overrides": {"embed_dim": 256, "num_heads": 4, "mlp_ratio": 2.0}, "depths": [7, 14]},
            {"name": "t2t-performer", "label": "T2T-ViT (Performer T2T)", "model": "t2t_vit_7",
             "overrides": {}, "depths": [7, 14]},
            {"name": "t2t-transformer", "label": "T2T-ViT (transformer T2T)", "model": "t2t_vit_t_14",
             "overrides": {"embed_dim": 256, "num_heads": 4, "mlp_ratio": 2.0}, "depths": [7, 14]},
            {"name": "cnn", "label": "ResNet", "model": "resnet18", "overrides": {},
             "variants": [{"depth": 18}, {"depth": 50, "model": "resnet50"}]},
        ],
    },
}


@dataclass(frozen=True)
class Variant:
    """One architecture of the study: an arm at one depth."""

    arm: str
    label: str
    model: str
    depth: int
    overrides: dict = field(hash=False)


@dataclass
class Spec:
    variants: list
    fractions: list
    seeds: list
    train: dict

    def runs(self):
        """(variant, fraction, seed) in the order they run: every architecture at seed 0 first."""
        return [(v, f, s) for s in self.seeds for f in self.fractions for v in self.variants]


def expand_arm(arm):
    """An arm's variants: `depths` sets our models' depth, `variants` lists {depth, model?, overrides?}."""
    for key in ("name", "label", "model"):
        if key not in arm:
            raise ConfigError(f"study arm {arm} lacks {key!r}; each arm needs name, label, model and depths or variants")
    if ("depths" in arm) == ("variants" in arm):
        raise ConfigError(f"study arm {arm['name']!r} needs exactly one of depths (transformers) or variants (any model)")
    base = arm.get("overrides", {})
    if "depths" in arm:
        return [Variant(arm["name"], arm["label"], arm["model"], d, {**base, "depth": d}) for d in arm["depths"]]
    return [Variant(arm["name"], arm["label"], v.get("model", arm["model"]), v["depth"], {**base, **v.get("overrides", {})})
            for v in arm["variants"]]


def load_spec(preset="cpu-tiny", config=None, **changes):
    """A Spec from a preset or a JSON file, with `changes` (epochs, seeds, fractions, arms...) applied."""
    if config:
        try:
            raw = json.loads(Path(config).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ConfigError(f"cannot read study config {config}: {error}; pass a JSON file like the README's example") from None
    elif preset in PRESETS:
        raw = copy.deepcopy(PRESETS[preset])
    else:
        raise ConfigError(f"unknown study preset {preset!r}; choose one of {', '.join(PRESETS)} or pass --config FILE.json")
    for key in ("fractions", "seeds"):
        if changes.get(key):
            raw[key] = changes[key]
    if changes.get("arms"):
        unknown = sorted(set(changes["arms"]) - {a["name"] for a in raw["arms"]})
        if unknown:
            raise ConfigError(f"unknown study arm(s) {unknown}; this spec has {[a['name'] for a in raw['arms']]}")
        raw["arms"] = [a for a in raw["arms"] if a["name"] in changes["arms"]]
    raw["train"] = {**raw.get("train", {}), **{k: v for k, v in changes.get("train", {}).items() if v is not None}}
    if not all(0 < f <= 1 for f in raw["fractions"]):
        raise ConfigError(f"study fractions {raw['fractions']} must lie in (0, 1]")
    unknown = sorted(set(raw["train"]) - train.config_fields())
    if unknown or {"model", "data", "out", "seed", "train_fraction"} & set(raw["train"]):
        raise ConfigError(f"study train settings {sorted(raw['train'])} include unknown or per-run keys; "
                          f"use TrainConfig fields other than model, data, out, seed, train_fraction")
    variants = [v for arm in raw["arms"] for v in expand_arm(arm)]
    return Spec(variants, list(raw["fractions"]), list(raw["seeds"]), raw["train"])


def run_name(variant, fraction, seed):
    return f"{variant.arm}-d{variant.depth}-f{fraction:g}-s{seed}"


def count_macs(model, img_size):
    """MACs per image by fvcore's rules for every arm: our counter (fused attention included) for
    our transformers, fvcore's own count for timm CNNs."""
    model = model.eval()
    if isinstance(model, models.VisionTransformer):
        from bench.cost.flops import fvcore_macs

        return int(fvcore_macs(model)["total"])
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model, torch.zeros(1, 3, img_size, img_size))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return int(analysis.total())


def architecture_costs(spec, num_classes):
    """{variant: (params, macs)} at the study's image size."""
    img_size = spec.train.get("img_size", 224)
    costs = {}
    for variant in spec.variants:
        model = factory.create(variant.model, num_classes, img_size, overrides=variant.overrides)
        costs[variant] = (sum(p.numel() for p in model.parameters()), count_macs(model, img_size))
    return costs


def spec_record(spec, data):
    """What makes two studies the same study: data, fractions, seeds, training settings, architectures."""
    variants = [{"arm": v.arm, "label": v.label, "model": v.model, "depth": v.depth, "overrides": v.overrides}
                for v in spec.variants]
    return {"data": str(data), "fractions": spec.fractions, "seeds": spec.seeds, "train": spec.train, "variants": variants}


def check_study_dir(out, record, resume, overwrite):
    """Refuse to mix studies: an existing OUT needs --resume (same spec) or --overwrite."""
    out = Path(out)
    saved = out / STUDY_FILE
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite contradict each other; pick one")
    if out.exists() and any(out.iterdir()):
        if not saved.is_file():
            raise ResultsError(f"{out} is not a vitbench study folder (no {STUDY_FILE}); choose another --out")
        if not resume and not overwrite:
            raise ResultsError(f"{out} already holds a study; pass --resume to finish it or --overwrite to start over")
        if resume and json.loads(saved.read_text())["spec"] != json.loads(json.dumps(record)):
            raise ConfigError(f"{out} holds a study with other settings; resume it with the same options or use a new --out")
    elif resume:
        raise ResultsError(f"{out} holds no study to resume; start it without --resume")


def run_study(spec, data, out, resume=False, overwrite=False, warn=log):
    """Train every run of `spec` on `data` into `out` (skipping finished runs), then write the report.

    Under torchrun every rank runs this; the runs are DDP runs and only rank 0 writes.
    """
    out = Path(out)
    context = distributed.setup(spec.train.get("device"))
    record = spec_record(spec, data)
    check_study_dir(out, record, resume, overwrite)  # every rank checks, so all stop on a refusal
    distributed.barrier(context)
    if spec.train.get("threads"):
        torch.set_num_threads(spec.train["threads"])
    if context.is_main:
        if overwrite and out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / STUDY_FILE, json.dumps({"spec": record, "provenance": provenance(context.device)}, indent=1) + "\n")
    distributed.barrier(context)
    runs = spec.runs()
    for index, (variant, fraction, seed) in enumerate(runs, 1):
        folder = out / "runs" / run_name(variant, fraction, seed)
        if (folder / train.SUMMARY).is_file():
            continue
        start = time.perf_counter()
        if (folder / train.LAST).is_file():
            summary = train.resume(folder, progress=False, warn=warn)
        else:
            config = train.TrainConfig(model=variant.model, data=str(data), out=str(folder), model_args=variant.overrides,
                                       seed=seed, train_fraction=fraction, **spec.train)
            summary = train.start(config, overwrite=True, progress=False, warn=warn)
        if context.is_main:
            warn(f"[{index}/{len(runs)}] {run_name(variant, fraction, seed)}: top-1 {summary['top1']:.1f}% "
                 f"({summary['train_images']} train images, {time.perf_counter() - start:.0f} s)")
    return write_report(spec, out) if context.is_main else None


def collect(spec, out):
    """One row per finished run, with its architecture's params and MACs."""
    rows = []
    costs = None
    for variant, fraction, seed in spec.runs():
        path = Path(out) / "runs" / run_name(variant, fraction, seed) / train.SUMMARY
        if not path.is_file():
            continue
        summary = json.loads(path.read_text())
        costs = costs or architecture_costs(spec, summary["classes"])
        rows.append({
            "arm": variant.arm, "label": variant.label, "model": variant.model, "depth": variant.depth,
            "fraction": fraction, "seed": seed, "classes": summary["classes"], "train_images": summary["train_images"],
            "epochs": summary["epochs"],
            "params": costs[variant][0], "macs": costs[variant][1], "top1": summary["top1"], "top5": summary["top5"],
            "best_top1": summary["best"]["top1"], "train_images_per_s": summary["train_images_per_s"],
            "train_time_s": summary["train_time_s"], "skipped_files": len(summary["skipped_files"]),
        })
    if not rows:
        raise ResultsError(f"{out} has no finished runs yet; run the study first")
    return pd.DataFrame(rows)


def aggregate(results):
    """Mean and spread over seeds per architecture and fraction (std is NaN with one seed)."""
    keys = ["arm", "label", "model", "depth", "fraction"]
    table = results.groupby(keys, sort=False).agg(
        seeds=("seed", "count"), classes=("classes", "first"), train_images=("train_images", "mean"),
        params=("params", "first"), macs=("macs", "first"),
        top1_mean=("top1", "mean"), top1_std=("top1", "std"), top1_min=("top1", "min"), top1_max=("top1", "max"),
        top5_mean=("top5", "mean"), train_images_per_s=("train_images_per_s", "mean"),
    ).reset_index()
    return table.sort_values(["fraction", "arm", "depth"], key=lambda c: c.map(arm_order) if c.name == "arm" else c,
                             ignore_index=True)


def arm_order(arm):
    return list(ARM_COLORS).index(arm) if arm in ARM_COLORS else len(ARM_COLORS)


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
    })
    return shown.to_markdown(index=False, disable_numparse=True)


def pivot_table(table):
    """Fractions down, architectures across: the direct answer to the study's question."""
    table = table.assign(column=[f"{label} d{depth}" for label, depth in zip(table["label"], table["depth"])],
                         cell=[mean_std(m, s) for m, s in zip(table["top1_mean"], table["top1_std"])])
    pivot = table.pivot(index="fraction", columns="column", values="cell")
    return pivot[list(dict.fromkeys(table["column"]))].reset_index().to_markdown(index=False, disable_numparse=True)


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path):
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=130, bbox_inches="tight"))
    pyplot().close(fig)


def chance_line(ax, table):
    ax.axhline(100 / table["classes"].max(), color="gray", linestyle=":", linewidth=1, label="chance")


def study_figures(table):
    """{name: figure}: top-1 vs fraction; top-1 vs MACs and vs train images/s at the largest fraction."""
    plt = pyplot()
    figures = {}
    markers = "osD^v"
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    chance_line(ax, table)
    for (arm, label, depth), group in table.groupby(["arm", "label", "depth"], sort=False):
        depths = sorted(table.loc[table["arm"] == arm, "depth"].unique())
        ax.errorbar(group["fraction"], group["top1_mean"], yerr=group["top1_std"].fillna(0), capsize=3,
                    color=ARM_COLORS.get(arm), marker=markers[depths.index(depth) % len(markers)],
                    linestyle="-" if depths.index(depth) == 0 else "--", label=f"{label} d{depth}")
    ax.set(xscale="log", xlabel="fraction of the training set", ylabel="val top-1 (%)",
           title="top-1 vs training data (mean ± std over seeds)")
    ax.minorticks_off()
    ax.set_xticks(sorted(table["fraction"].unique()), [f"{f:g}" for f in sorted(table["fraction"].unique())])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    figures["top1_vs_fraction"] = fig

    full = table[table["fraction"] == table["fraction"].max()]
    for column, xlabel, name in (("macs", "MACs per image", "top1_vs_macs"),
                                 ("train_images_per_s", "training images/s", "top1_vs_throughput")):
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        chance_line(ax, table)
        for (arm, label), group in full.groupby(["arm", "label"], sort=False):
            group = group.sort_values("depth")
            ax.errorbar(group[column], group["top1_mean"], yerr=group["top1_std"].fillna(0), capsize=3, marker="o",
                        color=ARM_COLORS.get(arm), label=label)
            for x, y, depth in zip(group[column], group["top1_mean"], group["depth"]):
                ax.annotate(f"d{depth}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set(xscale="log", xlabel=xlabel, ylabel="val top-1 (%)",
               title=f"top-1 vs {xlabel} (training fraction {full['fraction'].max():g})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        figures[name] = fig
    return figures


def plot_curves(table, out):
    """The study figures as PNGs in `out`; returns their file names."""
    names = []
    for name, fig in study_figures(table).items():
        save_figure(fig, Path(out) / f"{name}.png")
        names.append(f"{name}.png")
    return names


def write_report(spec, out):
    """results.csv, table.csv/.md, the curves and report.md from the finished runs; returns the table."""
    out = Path(out)
    results = collect(spec, out)
    table = aggregate(results)
    atomic_write_text(out / RESULTS, results.to_csv(index=False))
    atomic_write_text(out / f"{TABLE}.csv", table.to_csv(index=False))
    atomic_write_text(out / f"{TABLE}.md", markdown_table(table) + "\n")
    figures = plot_curves(table, out)
    study = json.loads((out / STUDY_FILE).read_text())
    prov = study["provenance"]
    expected = len(spec.runs())
    lines = [
        "# Study report", "",
        f"{len(results)} of {expected} runs finished. Data: `{study['spec']['data']}`.", "",
        f"- command: `{prov['command']}`", f"- date: {prov['date']}", f"- device: {prov['device']}",
        f"- code: {prov['git_commit']}", "- versions: " + ", ".join(f"{k} {v}" for k, v in prov["versions"].items() if v), "",
        "## Top-1 by training fraction (mean ± std over seeds)", "", pivot_table(table), "",
        "## All architectures", "", markdown_table(table), "",
        "## Curves", "", *[f"![{name}]({name})" for name in figures], "",
    ]
    atomic_write_text(out / "report.md", "\n".join(lines))
    return table


def cmd_study(args):
    spec = load_spec(args.preset, args.config, fractions=args.fractions, seeds=args.seeds, arms=args.arms, train={
        "epochs": args.epochs, "batch_size": args.batch_size, "device": args.device, "workers": args.workers,
        "threads": args.threads})
    if args.report_only:
        table = write_report(spec, args.out)
    else:
        if not args.data:
            raise ConfigError("--data is required to run a study (or pass --report-only to rebuild its report)")
        try:
            table = run_study(spec, args.data, args.out, args.resume, args.overwrite)
        finally:
            distributed.teardown()
        if table is None:  # not rank 0
            return
    print(pivot_table(table))
    print(f"report: {Path(args.out) / 'report.md'}")


def register_cli(sub):
    p = sub.add_parser("study", help="from-scratch data-efficiency study: ViT vs T2T-ViT vs CNN over fractions/depths/seeds")
    p.add_argument("--data", help="ImageNet-style folder (train/<class>, val/<class>)")
    p.add_argument("--out", required=True, help="study folder (runs/, results.csv, table.md, curves, report.md)")
    p.add_argument("--preset", default="cpu-tiny", help=f"one of {', '.join(PRESETS)} (default cpu-tiny)")
    p.add_argument("--config", help="a JSON study spec (fractions, seeds, train, arms); overrides --preset")
    p.add_argument("--fractions", type=float, nargs="+", help="training-set fractions, e.g. 0.1 0.25 0.5 1")
    p.add_argument("--seeds", type=int, nargs="+", help="seeds, e.g. 0 1 2")
    p.add_argument("--arms", nargs="+", help="keep only these arms: vit t2t-performer t2t-transformer cnn")
    p.add_argument("--epochs", type=int, help="epochs per run (same for every run)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--device")
    p.add_argument("--workers", type=int)
    p.add_argument("--threads", type=int, help="CPU threads (1 is fastest on a busy shared CPU)")
    p.add_argument("--resume", action="store_true", help="finish the study in --out, skipping finished runs")
    p.add_argument("--overwrite", action="store_true", help="delete the study in --out and start over")
    p.add_argument("--report-only", action="store_true", help="only rebuild tables and curves from finished runs")
    p.set_defaults(func=cmd_study)
