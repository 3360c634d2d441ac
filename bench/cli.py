"""The `vitbench` command line: one program, a subcommand per job.

User mistakes (a `VitbenchError`) print one line and exit 2; `--debug` shows the traceback.
"""
import argparse
import json
import sys

import models
from models.errors import VitbenchError


def parameter_counts(model):
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


def model_summary(name):
    model = models.create_model(name)
    total, trainable = parameter_counts(model)
    config = model.config
    return {
        "model": name,
        "family": config["family"],
        "tokenizer": config["t2t_block"] if config["family"] == "t2t" else f"patch{config['patch_size']}",
        "embed_dim": model.embed_dim,
        "depth": len(model.blocks),
        "num_heads": model.blocks[0].attn.num_heads,
        "mlp_ratio": config["mlp_ratio"],
        "img_size": "x".join(map(str, model.img_size)),
        "tokens": model.tokenizer.num_tokens + 1,
        "params": total,
        "params_trainable": trainable,
    }


def cmd_list(args):
    import pandas as pd

    rows = [model_summary(name) for name in models.list_models(args.pattern)]
    if not rows:
        raise models.UnknownModelError(f"no model matches {args.pattern!r}; try `vitbench list` without a pattern")
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(pd.DataFrame(rows).to_markdown(index=False) if args.markdown else pd.DataFrame(rows).to_string(index=False))


def build_parser():
    parser = argparse.ArgumentParser(prog="vitbench", description="Benchmark T2T-ViT against ViT.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="list the named models with their sizes and parameter counts")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style name filter, e.g. 't2t_vit_t_*'")
    p.add_argument("--json", action="store_true", help="print one JSON array")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.set_defaults(func=cmd_list)

    # Subcommands defined next to the harness they drive (each module has `register_cli(sub)`).
    # --- subcommand modules (one line each) ---
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
