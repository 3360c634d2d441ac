"""The `vitbench` command line: one program, a subcommand per job, each a thin layer over a harness.

User mistakes (a `VitbenchError`) print one line and exit 2; `--debug` shows the traceback.
Defaults shown in `--help` are read from the dataclasses and functions that own them.
"""
import argparse
import datetime
import inspect
import json
import signal
import sys
from pathlib import Path

import models
from models.errors import ConfigError, VitbenchError


def default_of(owner, name):
    """The default of field or parameter `name` of a dataclass or function `owner`."""
    if hasattr(owner, "__dataclass_fields__"):
        return owner.default(name) if hasattr(owner, "default") else owner.__dataclass_fields__[name].default
    return inspect.signature(owner).parameters[name].default


def command_line():
    return ["vitbench", *sys.argv[1:]]


def parse_value(text):
    """A --model-arg value: JSON when it parses, true/false in any case as booleans, else the string."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_model_args(pairs):
    """['depth=2', 'qkv_bias=False', 't2t_stages=[[3,2,1],[3,2,1]]'] -> {'depth': 2, 'qkv_bias': False, ...}."""
    overrides = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--model-arg {pair!r} is not KEY=VALUE; e.g. --model-arg depth=4")
        overrides[key] = parse_value(value)
    return overrides


# ----------------------------------------------------------------------------- cost


def cmd_list(args):
    import fnmatch

    import pandas as pd
    import timm
    import torch

    from bench.cost.flops import count_params, param_breakdown
    from bench.cost.sweep import config_columns

    rows = []
    meta = torch.device("meta")  # shapes without storage or init: counting parameters needs no weights
    for name in models.list_models(args.pattern):
        with meta:
            model = models.create_model(name)
        params = param_breakdown(model)
        rows.append({**config_columns(model), "family": models.family_of(model.config),
                     "params": params["params"], "params_trainable": params["params_trainable"]})
    for name in fnmatch.filter(models.CNN_BASELINES, args.pattern):  # the CIFAR CNN baselines, built by timm
        with meta:
            model = timm.create_model(name)
        height, width = model.pretrained_cfg["input_size"][1:]
        rows.append({"model": name, "tokenizer": "-", "img_size": f"{height}x{width}", "family": "cnn",
                     "params": count_params(model), "params_trainable": count_params(model, trainable_only=True)})
    if not rows:
        raise models.UnknownModelError(f"no model matches {args.pattern!r}; try `vitbench list` without a pattern")
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    # integer columns stay integers where a CNN row has no depth or heads; its empty cells print as "–"
    table = pd.DataFrame(rows).convert_dtypes().astype(object).fillna("–")
    print(table.to_markdown(index=False) if args.markdown else table.to_string(index=False))


def cmd_profile(args):
    from bench.cost.dialect import model_names, shown, timm_row, write_results_file
    from bench.cost.profile import profile_model
    from bench.cost.timing import TimingSetup

    if args.img_size is not None and args.img_size < 1:
        raise ConfigError(f"--img-size {args.img_size} must be a positive image side, e.g. 224")
    names = model_names(args.models, args.model_list)
    overrides = {"img_size": args.img_size} if args.img_size else {}
    modes = ("inference", "train") if args.train else ("inference",)
    setup = TimingSetup.from_values(args)
    results = []
    for name in names:
        result = profile_model(name, overrides, setup, modes)
        results.append(result)
        if args.json:
            print(json.dumps(result))
            continue
        if len(names) > 1:
            print(f"== {name}")
        for key, value in result.items():
            print(f"{key:>32}  {shown(key, value)}")
    if args.results_file:
        write_results_file(args.results_file, [timm_row(result) for result in results])
        print(f"wrote {args.results_file} (timm benchmark.py's columns, then ours)", file=sys.stderr)


def cmd_macs(args):
    import pandas as pd

    from bench.cost.dialect import mac_table_row, model_names

    rows = [mac_table_row(name, args.img_size) for name in model_names(args.models, args.model_list)]
    table = pd.DataFrame(rows)
    print(table.to_json(orient="records") if args.json else
          table.astype(object).where(table.notna(), "–").to_string(index=False))


SWEEP_FLAGS = {  # sweep spec key -> argparse dest
    "families": "families",
    "models": "models",
    "timm": "timm",
    "depth": "depth",
    "num_heads": "heads",
    "embed_dim": "embed_dim",
    "mlp_ratio": "mlp_ratio",
    "patch_size": "patch_size",
    "img_size": "img_size",
    "measure": "measure",
    "modes": "modes",
}


def cmd_sweep(args):
    from bench.cost.sweep import SweepSpec, load_sweep_spec, run_sweep
    from bench.cost.timing import TimingSetup

    flags = {key: getattr(args, dest) for key, dest in SWEEP_FLAGS.items()}
    # a store_true flag left off is False: unset, so the TOML or default holds; 0 stays 0 and is refused as 0
    flags.update({name: None if getattr(args, name) is False else getattr(args, name)
                  for name in TimingSetup.field_names()})
    spec = load_sweep_spec(args.config, **flags) if args.config else SweepSpec.from_flat(flags)
    out = args.out or f"results/sweep-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    table = run_sweep(
        spec, out, args.resume, args.overwrite, argv=command_line(), progress=lambda line: print(line, file=sys.stderr)
    )
    print(table.to_json(orient="records") if args.json else f"{len(table)} rows written to {out}/sweep.csv")


def cmd_report(args):
    from bench.report.build import build_report

    index = build_report(args.inputs, args.out, argv=command_line(), overwrite=args.overwrite)
    print(f"report written: {index}")


def add_timing_flags(p, defaults=True):
    """TimingSetup's fields as flags, shared by profile and sweep (sweep: None = keep the spec's value)."""
    from bench.allocator import POLICIES
    from bench.cost.timing import DEVICES, DTYPES, TimingSetup

    def default(name):
        return default_of(TimingSetup, name) if defaults else None

    shown = " (default %(default)s)" if defaults else ""
    p.add_argument("--batch-size", type=int, default=default("batch_size"), help="images per step" + shown)
    p.add_argument("--device", choices=DEVICES, default=default("device"))
    p.add_argument("--dtype", choices=list(DTYPES), default=default("dtype"), help="float32, or the autocast dtype")
    p.add_argument("--channels-last", action="store_true", help="channels_last inputs and weights")
    p.add_argument("--compile", action="store_true", help="torch.compile the model first")
    p.add_argument("--warmup", type=int, default=default("warmup"), help="untimed steps first" + shown)
    p.add_argument("--repeats", type=int, default=default("repeats"), help="timed steps (median and IQR)" + shown)
    p.add_argument("--allocator", choices=POLICIES, default=default("allocator"),
                   help="steady: keep freed CPU memory for the next step; system: the C library's defaults" + shown)


# ----------------------------------------------------------------------------- accuracy


def cmd_subset(args):
    from tqdm import tqdm

    from bench.accuracy.subset import build_subset

    with tqdm(desc=f"building {args.name}", unit="file") as bar:
        manifest = build_subset(
            args.root,
            args.name,
            args.out,
            args.per_class,
            args.fraction,
            args.seed,
            args.copy,
            args.overwrite,
            hash_files=not args.no_hash,
            progress=bar.update,
        )
    counts = {split: sum(c.values()) for split, c in manifest["counts"].items()}
    print(
        f"{args.out}: {manifest['name']}, {len(manifest['classes'])} classes, "
        + ", ".join(f"{n} {split} images" for split, n in counts.items())
        + f" ({manifest['link']}s)"
    )


def cmd_synthetic(args):
    from bench.accuracy.synthetic import make_synthetic

    manifest = make_synthetic(
        args.out, args.classes, args.train_per_class, args.val_per_class, args.img_size, args.seed, args.overwrite
    )
    print(
        f"{args.out}: synthetic motifs, {len(manifest['classes'])} classes, "
        f"{args.train_per_class}/{args.val_per_class} train/val images per class at {args.img_size} px"
    )


def given_settings(args):
    """The TrainConfig fields the user set explicitly (argparse defaults are None)."""
    from bench.accuracy.train import config_fields

    given = {k: v for k, v in vars(args).items() if k in config_fields() and v is not None}
    if args.model_arg:
        given["model_args"] = parse_model_args(args.model_arg)
    return given


def cmd_train(args):
    from bench.accuracy import distributed, train

    given = given_settings(args)
    try:
        if args.resume:
            if args.overwrite:
                raise ConfigError("--resume and --overwrite contradict each other; pick one")
            summary = train.resume(args.out, given)
        else:
            missing = [f"--{k}" for k in ("model", "data") if k not in given]
            if missing:
                raise ConfigError(f"{' and '.join(missing)} required to start a run (or pass --resume to continue one)")
            summary = train.start(train.TrainConfig(**given), args.overwrite)
        main_process = distributed.is_main_process()
    finally:
        distributed.teardown()
    if main_process:
        chosen = summary["selection"]  # the split best.pth was chosen on: holdout, or test without one
        holdout = f"holdout top-1 {summary['top1']:.2f}%; " if chosen == "holdout" else ""
        print(
            f"{args.out}: test top-1 {summary['test_top1']:.2f}%, top-5 {summary['test_top5']:.2f}% (final weights); "
            f"best.pth (chosen on {chosen}, epoch {summary['best']['epoch']}) {summary['test_best']['top1']:.2f}% "
            f"on test; {holdout}{summary['train_pflop']:.3g} PFLOP, {summary['train_images_per_s']:.0f} train img/s"
            + (f", {len(summary['skipped_files'])} unreadable files skipped" if summary["skipped_files"] else "")
        )


def cmd_eval(args):
    from bench.accuracy import distributed
    from bench.accuracy.evaluate import format_report, run_eval
    from bench.outputs import refuse_overlap
    from models.atomic import atomic_write_text

    if args.out and Path(args.out).exists() and not args.overwrite:
        raise ConfigError(f"{args.out} already exists; pass --overwrite to replace it or choose another --out")
    if args.out:
        refuse_overlap(args.out, (args.data, args.checkpoint), ConfigError)
    try:
        result = run_eval(
            args.checkpoint,
            args.data,
            args.split,
            args.model,
            args.img_size,
            parse_model_args(args.model_arg),
            args.batch_size,
            args.workers,
            args.strict,
            args.device,
            args.ema,
            {"interpolation": args.interpolation, "crop_pct": args.crop_pct},
        )
        main_process = distributed.is_main_process()
    finally:
        distributed.teardown()
    if not main_process:
        return
    print(format_report(result))
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}")


STUDY_SPEC_FLAGS = ("preset", "config", "fractions", "seeds", "arms", "epochs", "budget_pflop", "budget_minutes",
                    "holdout", "batch_size", "device", "workers", "threads")


def cmd_study(args):
    from bench.accuracy import distributed
    from bench.accuracy.study import STUDY_FILE, load_study_spec, recorded_spec, refuse_other_spec, run_study
    from bench.report.study import pivot_table, write_study_report

    given = [f"--{name.replace('_', '-')}" for name in STUDY_SPEC_FLAGS if getattr(args, name) is not None]
    train_settings = {key: getattr(args, key) for key in STUDY_SPEC_FLAGS[5:]}

    def flags_spec():
        return load_study_spec(args.preset or "cpu-tiny", args.config, fractions=args.fractions, seeds=args.seeds,
                               arms=args.arms, train=train_settings)

    data = args.data
    if (args.report_only or args.resume) and (Path(args.out) / STUDY_FILE).is_file():
        spec, data = recorded_spec(args.out)  # the study's own record is the truth for every later command
        if given:
            refuse_other_spec(args.out, spec, given, flags_spec() if args.preset or args.config else None,
                              args.fractions, args.seeds, args.arms, train_settings)
        if args.data and str(args.data) != data:
            raise ConfigError(f"{args.out} was run on {data}, not {args.data}; drop --data to use the study's own")
    else:
        spec = flags_spec()
    if not args.report_only:
        if not data:
            raise ConfigError("--data is required to run a study (or pass --report-only to rebuild its report)")
        try:
            writes = run_study(spec, data, args.out, args.resume, args.overwrite, jobs=args.jobs)
        finally:
            distributed.teardown()
        if not writes:  # not rank 0
            return
    table = write_study_report(spec, args.out)
    print(pivot_table(table))
    print(f"report: {Path(args.out) / 'report.md'}")


# ----------------------------------------------------------------------------- the parser


def add_cost_commands(sub):
    from bench.cost.sweep import MEASUREMENTS

    p = sub.add_parser("list", help="list the named models with their sizes and parameter counts")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style name filter, e.g. 't2t_vit_t_*'")
    p.add_argument("--json", action="store_true", help="print one JSON array")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("profile", help="params, MACs (three counters), throughput and peak memory of models")
    p.add_argument("models", nargs="*", help="names from `vitbench list` or timm's; wildcards such as 't2t_vit_*' "
                   "select ours and timm's as timm's benchmark.py does")
    p.add_argument("--model-list", help="a file of model names, one per line")
    p.add_argument("--img-size", type=int, help="square image size (default: the model's)")
    p.add_argument("--train", action="store_true", help="also time and measure a full training step")
    p.add_argument("--json", action="store_true", help="print one JSON object per model")
    p.add_argument("--results-file", help="also write a CSV with timm benchmark.py's column names, then ours")
    add_timing_flags(p)
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("macs", help="MACs per image by every counter side by side, and what plain fvcore misses")
    p.add_argument("models", nargs="*", help="names or wildcards, ours and timm's")
    p.add_argument("--model-list", help="a file of model names, one per line")
    p.add_argument("--img-size", type=int, help="square image size (default: the model's)")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.set_defaults(func=cmd_macs)

    p = sub.add_parser("sweep", help="measure a grid of configurations into results/<run-id>/")
    p.add_argument("--config", help="TOML file with the grid (flags override its keys)")
    p.add_argument("--families", nargs="*", help=", ".join(f for f in models.FAMILIES if f != "cnn")
                   + " (--families alone: none, e.g. to measure only --models or --timm)")
    p.add_argument("--models", nargs="+", help="named models to measure as they are")
    p.add_argument("--timm", nargs="+", metavar="NAME",
                   help="any timm models to measure beside ours as baselines, e.g. deit_tiny_patch16_224 resnet50")
    p.add_argument("--depth", nargs="+", type=int)
    p.add_argument("--heads", nargs="+", type=int)
    p.add_argument("--embed-dim", nargs="+", type=int)
    p.add_argument("--mlp-ratio", nargs="+", type=float)
    p.add_argument("--patch-size", nargs="+", type=int, help="ViT only")
    p.add_argument("--img-size", nargs="+", type=int)
    p.add_argument("--measure", nargs="+", help=", ".join(MEASUREMENTS))
    p.add_argument("--modes", nargs="+", help="inference, train")
    p.add_argument("--out", help="run folder (default results/sweep-<date>)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted sweep in --out")
    p.add_argument("--overwrite", action="store_true", help="redo a finished sweep in --out")
    p.add_argument("--json", action="store_true", help="print the table as JSON records")
    add_timing_flags(p, defaults=False)
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("report", help="tables (md/csv/tex) and plots (png/svg) from results, with an index.md")
    p.add_argument("inputs", nargs="*", help="sweep folders, pytest-benchmark JSON files, training or study runs")
    p.add_argument("--out", required=True, help="folder for the report")
    p.add_argument("--overwrite", action="store_true", help="replace the files of an existing report in --out")
    p.set_defaults(func=cmd_report)


def add_data_commands(sub):
    from bench.accuracy.subset import subset_names
    from bench.accuracy.synthetic import make_synthetic

    p = sub.add_parser("subset", help="build a named ImageNet subset (imagenette, imagewoof, imagenet100, random-N)")
    p.add_argument("name", help=f"one of {', '.join(subset_names())}")
    p.add_argument("--root", required=True, help="full ImageNet root holding train/<synset>/ and val/<synset>/")
    p.add_argument("--out", required=True, help="folder to create")
    cut = p.add_mutually_exclusive_group()
    cut.add_argument("--per-class", type=int, help="keep K train images per class")
    cut.add_argument("--fraction", type=float, help="keep this fraction of each class's train images, in (0, 1]")
    p.add_argument("--seed", type=int, default=0, help="seed for random-N classes and for the train cut")
    p.add_argument("--copy", action="store_true", help="copy files instead of symlinking them")
    p.add_argument("--overwrite", action="store_true", help="replace an existing subset at --out")
    p.add_argument("--no-hash", action="store_true", help="skip the per-file SHA-256 in the manifest")
    p.set_defaults(func=cmd_subset)

    p = sub.add_parser("synthetic", help="generate a small synthetic ImageNet-layout dataset (local-motif classes)")
    p.add_argument("--out", required=True, help="folder to create")
    for name in ("classes", "train_per_class", "val_per_class", "img_size", "seed"):
        p.add_argument(
            f"--{name.replace('_', '-')}",
            type=int,
            default=default_of(make_synthetic, name),
            help="default %(default)s",
        )
    p.add_argument("--overwrite", action="store_true", help="replace a dataset previously generated at --out")
    p.set_defaults(func=cmd_synthetic)


TRAIN_FLAGS = [  # (flag, type or action, help); help may use {default}, read from TrainConfig
    ("--epochs", int, "default {default} (the paper)"),
    ("--budget-pflop", float, "train for this much compute instead of --epochs: forward MACs x 6 x images seen, "
                              "in PFLOP; the cosine ends there"),
    ("--budget-minutes", float, "or for this many minutes (a measured step time converted to updates once)"),
    ("--holdout", float, "validation images carved from train/: a fraction in (0, 1) or a count, e.g. 5000; "
                         "then val/ is the test split, scored once at the end"),
    ("--validations", int, "validate at most this many times per run, evenly and always at the end (default: "
                           "every epoch; short epochs of a small training fraction would mostly validate)"),
    ("--holdout-seed", int, "seed of the holdout, default {default} (the same for every --seed)"),
    ("--batch-size", int, "per process; default {default}"),
    ("--img-size", int, "default {default}"),
    ("--lr", float, "absolute learning rate (default: --base-lr x global batch / 512)"),
    ("--base-lr", float, "lr at global batch 512; default 1e-3 (T2T-ViT-7/10/12) or 5e-4 (paper)"),
    ("--weight-decay", float, "default .03 (T2T-ViT-7/10/12) or .05"),
    ("--warmup-epochs", float, "default {default}; at most 20%% of the run (a longer one is shortened)"),
    ("--min-lr", float, "floor of the cosine (default 1e-5, scaled down with an lr below 5e-4)"),
    ("--warmup-lr", float, "start of the warm-up, default {default} (capped at the lr)"),
    ("--clip-grad", float, "max gradient norm (default: none, as the paper)"),
    ("--drop-path", float, "stochastic depth rate, default {default}"),
    ("--smoothing", float, "label smoothing, default {default}"),
    ("--mixup", float, "Mixup alpha, default {default} (0 disables)"),
    ("--cutmix", float, "CutMix alpha, default {default} (0 disables)"),
    ("--auto-augment", str, "timm RandAugment spec, default {default} ('' disables)"),
    ("--reprob", float, "random erasing probability, default {default}"),
    ("--hflip", float, "horizontal flip probability, default {default}"),
    ("--color-jitter", float, "default {default}"),
    ("--interpolation", str, "resize interpolation (default: the model's, bicubic for ours)"),
    ("--crop-pct", float, "eval center-crop fraction (default: the model's, 0.9 for ours)"),
    ("--ema-decay", float, "keep an EMA of the weights with this decay (e.g. 0.99996)"),
    ("--seed", int, "default {default}"),
    ("--workers", int, "data loader processes per rank, default {default}"),
    ("--labels", str, "train on this column of the data folder's noisy_*.csv, e.g. noisy_labels_5 (Imagenette)"),
    ("--train-fraction", float, "train on this fraction of each class, in (0, 1]"),
    ("--train-per-class", int, "train on K images per class"),
    ("--subset-seed", int, "seed of the train cut (default: --seed)"),
    ("--init", str, "fine-tune from this checkpoint (reference T2T-ViT, timm ViT/ResNet or ours)"),
    ("--device", str, "cpu, cuda or cuda:N (default: cuda when available; torchrun sets one per rank)"),
    ("--threads", int, "CPU threads per process (1 is fastest on a busy shared CPU)"),
    ("--data-mode", str, "memory (decoded once, augmented as tensors), files (per image) or auto (memory for "
                         "images of at most 64 px that fit in RAM); default {default}"),
    ("--crop-padding", int, "memory mode: random crop after padding by this much, default {default}"),
]


def add_train_command(sub):
    from bench.accuracy.train import TrainConfig

    p = sub.add_parser(
        "train", help="train a model from scratch (or fine-tune with --init) on an ImageNet-style folder"
    )
    p.add_argument("--model", help="our name (vitbench list) or a timm CNN such as resnet18")
    p.add_argument("--data", help="folder with train/<class>/* and val/<class>/*")
    p.add_argument("--out", required=True, help="run folder (config, metrics, checkpoints, summary)")
    p.add_argument(
        "--model-arg", action="append", metavar="KEY=VALUE", help="model override, e.g. depth=4 (repeatable)"
    )
    for flag, kind, text in TRAIN_FLAGS:
        default = default_of(TrainConfig, flag[2:].replace("-", "_"))
        p.add_argument(flag, type=kind, help=text.format(default=default))
    p.add_argument(
        "--scale",
        type=float,
        nargs=2,
        help="random resized crop scale range, default {} {}".format(*TrainConfig.default("scale")),
    )
    p.add_argument(
        "--ratio",
        type=float,
        nargs=2,
        help="random resized crop aspect-ratio range, default {:.2f} {:.2f}".format(*TrainConfig.default("ratio")),
    )
    p.add_argument("--classes", nargs="+", help="train and test on these class folders only (default: all)")
    p.add_argument(
        "--amp", choices=["auto", "bf16", "fp16", "off"], help="mixed precision; auto = bf16 on CUDA, off on CPU"
    )
    p.add_argument("--log", choices=["tensorboard"], help="also log per-step loss, lr, grad norm, img/s and per-epoch "
                   "metrics for TensorBoard in OUT/tensorboard/ (metrics.jsonl/csv are always written)")
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    p.add_argument("--strict", action="store_true", default=None, help="stop at the first unreadable image")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last checkpoint (with a larger --epochs: extend a finished run)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace the run in --out and start over")
    p.set_defaults(func=cmd_train)


def add_eval_command(sub):
    p = sub.add_parser("eval", help="top-1/top-5, per-class accuracy and confusion matrix of a checkpoint")
    p.add_argument("--checkpoint", required=True, help="a run's best.pth/last.pth, or a pretrained file with --model")
    p.add_argument("--data", required=True, help="ImageNet-style folder (uses DATA/<split>/<class>/*)")
    p.add_argument("--model", help="architecture name; required for checkpoints not written by `vitbench train`")
    p.add_argument(
        "--model-arg", action="append", metavar="KEY=VALUE", help="model override, e.g. depth=4 (repeatable)"
    )
    p.add_argument("--split", default="val")
    p.add_argument("--img-size", type=int, help="evaluation size (positions are interpolated for ViTs)")
    p.add_argument("--crop-pct", type=float, help="center-crop fraction (default: the run's, else the model's)")
    p.add_argument("--interpolation", help="resize interpolation, e.g. bicubic (default: the run's, else the model's)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    p.add_argument("--strict", action="store_true", help="stop at the first unreadable image instead of skipping it")
    p.add_argument("--ema", action="store_true", help="evaluate the checkpoint's EMA weights (state_dict_ema)")
    p.add_argument("--out", help="write the full result (per-class accuracy, confusion matrix) as JSON here")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.set_defaults(func=cmd_eval)


def add_study_command(sub):
    from bench.accuracy.study import PRESETS

    p = sub.add_parser(
        "study", help="from-scratch data-efficiency study: ViT vs T2T-ViT vs CNN over fractions/depths/seeds"
    )
    p.add_argument("--data", help="ImageNet-style folder (train/<class>, val/<class>)")
    p.add_argument("--out", required=True, help="study folder (runs/, results.csv, table.md, curves, report.md)")
    p.add_argument("--preset", help=f"one of {', '.join(PRESETS)} (default cpu-tiny; with --resume or --report-only "
                   "the study's own record in study.json)")
    p.add_argument("--config", help="a JSON study spec (fractions, seeds, train, arms); overrides --preset")
    p.add_argument("--fractions", type=float, nargs="+", help="training-set fractions, e.g. 0.1 0.25 0.5 1")
    p.add_argument("--seeds", type=int, nargs="+", help="seeds, e.g. 0 1 2")
    p.add_argument("--arms", nargs="+", help="keep only these arms: " + " ".join(models.FAMILIES))
    p.add_argument("--epochs", type=int, help="epochs per run, the same for every arm (replaces the spec's length)")
    p.add_argument("--budget-pflop", type=float, help="training compute per run, the same for every arm (PFLOP: "
                   "forward MACs x 6 x images seen); replaces the spec's length")
    p.add_argument("--budget-minutes", type=float, help="wall-clock minutes per run; replaces the spec's length")
    p.add_argument("--holdout", type=float, help="validation carved from train/ (fraction or image count; "
                   "default: the spec's, else 0.1)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--device")
    p.add_argument("--workers", type=int)
    p.add_argument("--threads", type=int, help="CPU threads (1 is fastest on a busy shared CPU)")
    p.add_argument("--jobs", type=int, default=1, help="runs trained at once, each in its own process (default 1; "
                   "on a CPU, one per core with --threads 1)")
    p.add_argument("--resume", action="store_true", help="finish the study in --out, skipping finished runs")
    p.add_argument("--overwrite", action="store_true", help="replace the study in --out and start over")
    p.add_argument("--report-only", action="store_true", help="only rebuild tables and curves from finished runs")
    p.set_defaults(func=cmd_study)


def build_parser():
    parser = argparse.ArgumentParser(prog="vitbench", description="Benchmark T2T-ViT against ViT.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_cost_commands(sub)
    add_data_commands(sub)
    add_train_command(sub)
    add_eval_command(sub)
    add_study_command(sub)
    return parser


def main(argv=None):
    from bench.accuracy.data import install_randaugment_fix
    from bench.processes import Terminated, sigterm_interrupts

    parser = build_parser()
    args = parser.parse_args(argv)
    install_randaugment_fix()  # once per program: timm's posterize op, made safe for Pillow 13
    try:
        with sigterm_interrupts():  # SIGTERM unwinds like Ctrl-C: locks released, partial writes removed
            args.func(args)
    except VitbenchError as e:
        if args.debug:
            raise
        print(f"vitbench {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if args.debug or e.filename is None:  # no file named: a bug, shown with its traceback
            raise
        print(f"vitbench {args.command}: error: cannot write {e.filename} ({e.strerror}); free space or choose "
              "another --out", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        terminated = isinstance(e, Terminated)
        print(f"vitbench {args.command}: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
        return 128 + (signal.SIGTERM if terminated else signal.SIGINT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
