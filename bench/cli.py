"""The `vitbench` command line: one program, a subcommand per job.

User mistakes (a `VitbenchError`) print one line and exit 2; `--debug` shows the traceback.
"""
import argparse
import json
import sys

import models
from models.errors import VitbenchError


def model_summary(name):
    from bench.cost.flops import param_breakdown
    from bench.cost.sweep import describe

    model = models.create_model(name)
    params = param_breakdown(model)
    return {**describe(model), "family": model.config["family"],
            "params": params["params"], "params_trainable": params["params_trainable"]}


def cmd_list(args):
    import pandas as pd

    rows = [model_summary(name) for name in models.list_models(args.pattern)]
    if not rows:
        raise models.UnknownModelError(f"no model matches {args.pattern!r}; try `vitbench list` without a pattern")
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(pd.DataFrame(rows).to_markdown(index=False) if args.markdown else pd.DataFrame(rows).to_string(index=False))


def timing_setup(args):
    from bench.cost.timing import TimingSetup

    return TimingSetup(args.batch_size, args.device, args.dtype, args.channels_last, args.compile, args.warmup, args.repeats)


def cmd_profile(args):
    from bench.cost.profile import profile_model

    overrides = {"img_size": args.img_size} if args.img_size else {}
    modes = ("inference", "train") if args.train else ("inference",)
    result = profile_model(args.model, overrides, timing_setup(args), modes)
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        shown = f"{value:,.1f}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else value
        print(f"{key:>32}  {shown}")


def cmd_sweep(args):
    import datetime

    from bench.cost.sweep import SweepSpec, load_spec, run_sweep

    flags = {
        "families": args.families, "models": args.models, "depth": args.depth, "num_heads": args.heads,
        "embed_dim": args.embed_dim, "mlp_ratio": args.mlp_ratio, "patch_size": args.patch_size,
        "img_size": args.img_size, "measure": args.measure, "modes": args.modes, "batch_size": args.batch_size,
        "device": args.device, "dtype": args.dtype, "channels_last": args.channels_last or None,
        "compile": args.compile or None, "warmup": args.warmup, "repeats": args.repeats,
    }
    spec = load_spec(args.config, **flags) if args.config else SweepSpec(**{k: v for k, v in flags.items() if v is not None})
    out = args.out or f"results/sweep-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    table = run_sweep(spec, out, args.resume, args.overwrite, argv=["vitbench", *sys.argv[1:]],
                      progress=lambda line: print(line, file=sys.stderr))
    print(table.to_json(orient="records") if args.json else f"{len(table)} rows written to {out}/sweep.csv")


def cmd_report(args):
    from bench.report.build import build_report

    index = build_report(args.inputs, args.out, argv=["vitbench", *sys.argv[1:]], overwrite=args.overwrite)
    print(f"report written: {index}")


def add_timing_flags(p, defaults=True):
    """--batch-size/--device/--dtype/... shared by profile and sweep (None = keep the spec's value)."""
    p.add_argument("--batch-size", type=int, default=8 if defaults else None, help="images per step")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu" if defaults else None)
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32" if defaults else None,
                   help="float32, or the autocast dtype")
    p.add_argument("--channels-last", action="store_true", help="channels_last inputs and weights")
    p.add_argument("--compile", action="store_true", help="torch.compile the model first")
    p.add_argument("--warmup", type=int, default=2 if defaults else None, help="untimed steps first")
    p.add_argument("--repeats", type=int, default=5 if defaults else None, help="timed steps (median and IQR)")


def build_parser():
    parser = argparse.ArgumentParser(prog="vitbench", description="Benchmark T2T-ViT against ViT.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="list the named models with their sizes and parameter counts")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style name filter, e.g. 't2t_vit_t_*'")
    p.add_argument("--json", action="store_true", help="print one JSON array")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("profile", help="params, MACs (three counters), throughput and peak memory of one model")
    p.add_argument("model", help="a name from `vitbench list`")
    p.add_argument("--img-size", type=int, help="square image size (default: the model's)")
    p.add_argument("--train", action="store_true", help="also time and measure a full training step")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_timing_flags(p)
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("sweep", help="measure a grid of configurations into results/<run-id>/")
    p.add_argument("--config", help="TOML file with the grid (flags override its keys)")
    p.add_argument("--families", nargs="+", help="vit, t2t-performer, t2t-transformer")
    p.add_argument("--models", nargs="+", help="named models to measure as they are")
    p.add_argument("--depth", nargs="+", type=int)
    p.add_argument("--heads", nargs="+", type=int)
    p.add_argument("--embed-dim", nargs="+", type=int)
    p.add_argument("--mlp-ratio", nargs="+", type=float)
    p.add_argument("--patch-size", nargs="+", type=int, help="ViT only")
    p.add_argument("--img-size", nargs="+", type=int)
    p.add_argument("--measure", nargs="+", help="params, macs, throughput, memory, max_batch")
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

    # Subcommands defined next to the harness they drive (each module has `register_cli(sub)`).
    # --- subcommand modules (one line each) ---
    from bench.accuracy import subset; subset.register_cli(sub)  # noqa: E702
    from bench.accuracy import synthetic; synthetic.register_cli(sub)  # noqa: E702
    from bench.accuracy import train; train.register_cli(sub)  # noqa: E702
    from bench.accuracy import evaluate; evaluate.register_cli(sub)  # noqa: E702
    from bench.accuracy import study; study.register_cli(sub)  # noqa: E702
    # --- end subcommand modules ---
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except VitbenchError as e:
        if args.debug:
            raise
        print(f"vitbench {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"vitbench {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
