"""The `vitbench` command line: one program, a subcommand per job, each a thin layer over a harness.

User mistakes (a `VitbenchError`) print one line and exit 2; `--debug` shows the traceback.
Each job's flags are generated from its config in `bench.configs` (one place for defaults and checks),
and a command imports the harness it runs only when it runs, so `--help` needs no torch.
"""
import argparse
import datetime
import errno
import json
import signal
import sys
from pathlib import Path

from bench.configs import (
    STUDY_TRAIN_SETTINGS,
    EvalConfig,
    ExportConfig,
    ProfileConfig,
    SlurmConfig,
    StudyConfig,
    SweepSpec,
    SyntheticConfig,
    TrainConfig,
)
from bench.settings import add_flags, config_error, given_flags, portable_paths


def command_line():
    return ["vitbench", *sys.argv[1:]]


def add_config_source(p, what):
    """--config FILE and KEY=VALUE overrides: any setting of the job, from a file or the command line."""
    p.add_argument("--config", metavar="FILE", help=f"a TOML file of {what} settings (flags and KEY=VALUE win)")
    p.add_argument("settings", nargs="*", metavar="KEY=VALUE", help="any setting, e.g. seed=1, "
                   "classes='[\"cat\", \"dog\"]', model_args.depth=4 (put these before list flags)")


# ----------------------------------------------------------------------------- cost


SIZE_TABLE = Path(__file__).parent / "cost" / "model_sizes.json"  # bench/cost/sizes.py makes it, a test checks it


def cmd_list(args):
    """Read, not built: no torch, no model (the table is checked against the models by tests/test_sizes.py)."""
    import fnmatch

    from tabulate import tabulate

    rows = [row for row in json.loads(SIZE_TABLE.read_text()) if fnmatch.fnmatch(row["model"], args.pattern)]
    if not rows:
        raise config_error(f"no model matches {args.pattern!r}; try `vitbench list` without a pattern")
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    cells = [{key: "–" if value is None else value for key, value in row.items()} for row in rows]
    print(tabulate(cells, headers="keys", tablefmt="github" if args.markdown else "plain", disable_numparse=True))


def profile_config(args):
    """`profile`'s config: the model names given are flags (beating a file's list, which holds without them); the
    other words are KEY=VALUE settings."""
    names_given = [item for item in args.models if "=" not in item]
    flags = {key: value for key, value in given_flags(args, ProfileConfig).items() if key != "models"}
    flags.update({"models": names_given} if names_given else {})
    return ProfileConfig.from_sources(args.config, flags, [item for item in args.models if "=" in item])


def cmd_profile(args):
    from bench.cost.dialect import model_names, shown, timm_rows, write_results_file
    from bench.cost.profile import profile_model

    config = profile_config(args)
    if config.results_file and Path(config.results_file).exists() and not args.overwrite:
        raise config_error(f"{config.results_file} already exists; pass --overwrite to replace it or choose another "
                           "--results-file")
    setup = config.timing
    names = model_names(config.models or [], config.model_list)
    overrides = {"img_size": config.img_size} if config.img_size else {}
    modes = ("inference", "train") if config.train else ("inference",)
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
    if config.results_file:
        write_results_file(config.results_file, timm_rows(results))  # sorted as timm sorts: fastest first
        print(f"wrote {config.results_file} (timm benchmark.py's columns, then ours)", file=sys.stderr)


def cmd_macs(args):
    import pandas as pd

    from bench.cost.dialect import mac_table_row, model_names

    config = ProfileConfig.from_sources(None, given_flags(args, ProfileConfig))  # --img-size: profile's setting
    rows = [mac_table_row(name, config.img_size) for name in model_names(args.models, config.model_list)]
    table = pd.DataFrame(rows)
    print(table.to_json(orient="records") if args.json else
          table.astype(object).where(table.notna(), "–").to_string(index=False))


def cmd_sweep(args):
    from bench.cost.sweep import run_sweep

    spec = SweepSpec.from_sources(args.config, given_flags(args, SweepSpec), args.settings)  # names: run_sweep
    out = args.out or f"results/sweep-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    table = run_sweep(
        spec, out, args.resume, args.overwrite, argv=command_line(), progress=lambda line: print(line, file=sys.stderr)
    )
    print(table.to_json(orient="records") if args.json else f"{len(table)} rows written to {out}/sweep.csv")


def cmd_report(args):
    from bench.report.build import build_report

    index = build_report(args.inputs, args.out, argv=command_line(), overwrite=args.overwrite)
    print(f"report written: {index}")


# ----------------------------------------------------------------------------- accuracy


def cmd_subset(args):
    from tqdm import tqdm

    from bench.accuracy.subset import build_subset

    with tqdm(desc=f"building {args.name}", unit="file", disable=not sys.stderr.isatty()) as bar:  # no \r in logs
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

    config = SyntheticConfig.from_sources(None, given_flags(args, SyntheticConfig))
    manifest = make_synthetic(config, args.overwrite)
    print(
        f"{config.out}: synthetic motifs, {len(manifest['classes'])} classes, "
        f"{config.train_per_class}/{config.val_per_class} train/val images per class at {config.img_size} px"
    )


def cmd_train(args):
    from bench.accuracy import distributed, train

    given = TrainConfig.gather(args.config, given_flags(args, TrainConfig), args.settings)
    try:
        if args.resume:
            if args.overwrite:
                raise config_error("--resume and --overwrite contradict each other; pick one")
            if "out" not in given:
                raise config_error("--out is required: the run folder to resume")
            summary = train.resume(given["out"], given)
        else:
            summary = train.start(TrainConfig(**given), args.overwrite)
        main_process = distributed.is_main_process()
    finally:
        distributed.teardown()
    if main_process:
        print(summary_line(given["out"], summary))


def summary_line(out, summary):
    """The line `vitbench train` ends with: the test scores (unless test=false left the test split unread)."""
    chosen = summary["selection"]  # the split best.pth was chosen on: holdout, or test without one
    holdout = f"holdout top-1 {summary['top1']:.2f}%; " if chosen == "holdout" else ""
    best = f"best.pth (chosen on {chosen}, epoch {summary['best']['epoch']})"
    scores = (f"{best}; test split not scored (test=false)" if summary["test_top1"] is None else
              f"test top-1 {summary['test_top1']:.2f}%, top-5 {summary['test_top5']:.2f}% (final weights); {best} "
              f"{summary['test_best']['top1']:.2f}% on test")
    return (f"{out}: {scores}; {holdout}{summary['train_pflop']:.3g} PFLOP, {summary['train_images_per_s']:.0f} "
            "train img/s" + (f", {len(summary['skipped_files'])} unreadable files skipped"
                             if summary["skipped_files"] else ""))


def cmd_eval(args):
    from bench.accuracy import distributed
    from bench.accuracy.evaluate import format_report, run_eval
    from bench.outputs import refuse_overlap
    from models.atomic import atomic_write_text

    config = EvalConfig.from_sources(args.config, given_flags(args, EvalConfig), args.settings)
    if config.out and Path(config.out).exists() and not args.overwrite:
        raise config_error(f"{config.out} already exists; pass --overwrite to replace it or choose another --out")
    if config.out:
        refuse_overlap(config.out, (config.data, config.checkpoint), type(config_error("")))
    try:
        with distributed.cpu_threads(config.threads):
            result = run_eval(config)
        main_process = distributed.is_main_process()
    finally:
        distributed.teardown()
    if not main_process:
        return
    print(format_report(result))
    if config.out:
        # its paths (checkpoint, data) relative to the file's folder, as every record: no machine path
        portable = portable_paths(EvalConfig, result, Path(config.out).parent)
        atomic_write_text(config.out, json.dumps(portable, indent=1) + "\n")
        print(f"wrote {config.out}")


def cmd_export(args):
    from models.export import export_checkpoint

    config = ExportConfig.from_sources(args.config, given_flags(args, ExportConfig), args.settings,
                                       checkpoint=args.checkpoint)
    if config.out is None:
        raise config_error("export: pass --out FILE.safetensors, the file to write")
    if Path(config.out).exists() and not args.overwrite:
        raise config_error(f"{config.out} already exists; pass --overwrite to replace it or choose another --out")
    written = export_checkpoint(config.checkpoint, config.out, config.layout, config.ema)
    print(f"wrote {written['out']}: {written['tensors']} tensors of {written['model'] or 'the model'} from "
          f"{written['source']}, {written['layout']} layout")


def cmd_study(args):
    from bench.accuracy import distributed
    from bench.accuracy.study import STUDY_FILE, load_study_spec, recorded_spec, refuse_other_spec, run_study
    from bench.report.study import write_study_report

    study_keys = set(StudyConfig.field_names())
    overrides = [pair for pair in args.settings if pair.partition("=")[0].strip() in study_keys]
    train_overrides = [pair for pair in args.settings if pair not in overrides]
    config = StudyConfig.from_sources(None, given_flags(args, StudyConfig), overrides)
    train_flags = {k: v for k, v in given_flags(args, TrainConfig).items() if k in STUDY_TRAIN_SETTINGS}
    train_settings = TrainConfig.gather(None, train_flags, train_overrides)
    slurm_flags = SlurmConfig.check_some(given_flags(args, SlurmConfig), "the flags")  # whichever the launcher
    chosen = {**given_flags(args, StudyConfig), **dict(pair.split("=", 1) for pair in overrides)}
    if "preset" in chosen and args.config:
        raise config_error("--preset and --config both name the study's spec; pass one")
    given = [f"--{name.replace('_', '-')}" for name in ("preset", "fractions", "seeds", "arms") if name in chosen]
    given += [f"--{name.replace('_', '-')}" for name in train_settings] + (["--config"] if args.config else [])

    def flags_spec():
        return load_study_spec(config.preset or "cpu-tiny", args.config, fractions=config.fractions,
                               seeds=config.seeds, arms=config.arms, train=train_settings)

    data = config.data
    if (args.report_only or args.resume) and (Path(config.out) / STUDY_FILE).is_file():
        spec, data = recorded_spec(config.out)  # the study's own record is the truth for every later command
        if given:
            refuse_other_spec(config.out, spec, given, flags_spec() if config.preset or args.config else None,
                              config.fractions, config.seeds, config.arms, train_settings)
        data = config.data or data  # the same images where they lie now: checked against the study's record
    else:
        spec = flags_spec()
    if not args.report_only:
        if not data:
            raise config_error("--data is required to run a study (or pass --report-only to rebuild its report)")
        launcher = config.launcher if "launcher" in chosen else (spec.source or {}).get("launcher", config.launcher)
        if launcher == "slurm":
            return study_on_slurm(spec, data, config.out, args, slurm_flags)
        try:
            writes = run_study(spec, data, config.out, args.resume, args.overwrite, jobs=config.jobs)
        finally:
            distributed.teardown()
        if not writes:  # not rank 0
            return
    print(write_study_report(spec, config.out))
    print(f"report: {Path(config.out) / 'report.md'}")


def study_on_slurm(spec, data, out, args, flags):
    """The study's runs as Slurm jobs; the report of the runs that finished, then an error naming those that did not."""
    from bench.errors import ResultsError
    from bench.launch.slurm import run_study_on_slurm, slurm_settings
    from bench.report.study import write_study_report

    settings = slurm_settings((spec.source or {}).get("slurm"), flags)
    failed = run_study_on_slurm(spec, data, out, args.resume, args.overwrite, settings)
    try:
        print(write_study_report(spec, out))
        print(f"report: {Path(out) / 'report.md'}")
    except ResultsError:
        if not failed:
            raise
    if failed:
        raise ResultsError(f"{len(failed)} run(s) did not finish, e.g. {failed[0]}; `vitbench study --out {out} "
                           "--resume --launcher slurm` submits only those again")


# ----------------------------------------------------------------------------- the parser


def add_cost_commands(sub):
    p = sub.add_parser("list", help="list the named models with their sizes and parameter counts")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style name filter, e.g. 't2t_vit_t_*'")
    p.add_argument("--json", action="store_true", help="print one JSON array")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("profile", help="params, MACs (three counters), throughput and peak memory of models")
    p.add_argument("models", nargs="*", metavar="MODEL", help="names from `vitbench list` or timm's; wildcards such "
                   "as 't2t_vit_*' select ours and timm's as timm's benchmark.py does; KEY=VALUE sets any setting")
    p.add_argument("--config", metavar="FILE", help="a TOML file of profile settings (flags and KEY=VALUE win)")
    add_flags(p, ProfileConfig)
    p.add_argument("--overwrite", action="store_true", help="replace an existing --results-file")
    p.add_argument("--json", action="store_true", help="print one JSON object per model")
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("macs", help="MACs per image by every counter side by side, and what plain fvcore misses")
    p.add_argument("models", nargs="*", help="names or wildcards, ours and timm's")
    add_flags(p, ProfileConfig, only=("model_list", "img_size"))
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.set_defaults(func=cmd_macs)

    p = sub.add_parser("sweep", help="measure a grid of configurations into results/<run-id>/")
    add_config_source(p, "sweep")
    add_flags(p, SweepSpec)
    p.add_argument("--out", help="run folder (default results/sweep-<date>)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted sweep in --out")
    p.add_argument("--overwrite", action="store_true", help="redo a finished sweep in --out")
    p.add_argument("--json", action="store_true", help="print the table as JSON records")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("report", help="tables (md/csv/tex) and plots (png/svg) from results, with an index.md")
    p.add_argument("inputs", nargs="*", help="sweep folders, pytest-benchmark JSON files, training or study runs")
    p.add_argument("--out", required=True, help="folder for the report")
    p.add_argument("--overwrite", action="store_true", help="replace the files of an existing report in --out")
    p.set_defaults(func=cmd_report)


def add_data_commands(sub):
    p = sub.add_parser("subset", help="build a named ImageNet subset (imagenette, imagewoof, imagenet100, random-N)")
    p.add_argument("name", help="imagenette, imagewoof, imagenet100 or random-N (N classes drawn with --seed)")
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
    add_flags(p, SyntheticConfig)
    p.add_argument("--overwrite", action="store_true", help="replace a dataset previously generated at --out")
    p.set_defaults(func=cmd_synthetic)


def add_train_command(sub):
    p = sub.add_parser(
        "train", help="train a model from scratch (or fine-tune with --init) on an ImageNet-style folder"
    )
    add_config_source(p, "training")
    add_flags(p, TrainConfig)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace the run in --out and start over")
    p.set_defaults(func=cmd_train)


def add_eval_command(sub):
    p = sub.add_parser("eval", help="top-1/top-5, per-class accuracy and confusion matrix of a checkpoint")
    add_config_source(p, "evaluation")
    add_flags(p, EvalConfig)
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.set_defaults(func=cmd_eval)


def add_export_command(sub):
    p = sub.add_parser("export", help="a run's or checkpoint's weights as .safetensors (our, timm's or the reference "
                       "T2T-ViT's key layout)")
    p.add_argument("checkpoint", metavar="RUN_OR_CHECKPOINT", help="a `vitbench train` run folder or checkpoint file")
    add_config_source(p, "export")
    add_flags(p, ExportConfig)
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.set_defaults(func=cmd_export)


def add_study_command(sub):
    p = sub.add_parser(
        "study", help="from-scratch data-efficiency study: ViT vs T2T-ViT vs CNN over fractions/depths/seeds"
    )
    p.add_argument("--config", metavar="FILE", help="a study spec (TOML: fractions, seeds, [train], [[arms]]); "
                   "replaces --preset")
    p.add_argument("settings", nargs="*", metavar="KEY=VALUE", help="any study setting or, for every run, any "
                   "training setting, e.g. seeds=[0,1] epochs=3")
    add_flags(p, StudyConfig)
    add_flags(p.add_argument_group("the same for every run (replacing the spec's)"), TrainConfig,
              only=STUDY_TRAIN_SETTINGS)
    add_flags(p.add_argument_group("--launcher slurm: each run's job (over the spec's [slurm] table; an arm's "
                                 "[arms.slurm] over these)"),
              SlurmConfig)
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
    add_export_command(sub)
    add_study_command(sub)
    return parser


OS_ERROR_FIXES = {  # errno: the fix; which file failed is named, never guessed to be a write or a read
    errno.ENOSPC: "free space or choose another --out", errno.EDQUOT: "free space or choose another --out",
    errno.EROFS: "the file system is read-only; choose another --out", errno.EACCES: "check its permissions",
    errno.EPERM: "check its permissions", errno.ENOENT: "check the path", errno.ENOTDIR: "check the path",
    errno.EISDIR: "it is a folder; pass a file", errno.EIO: "the disk failed to read or write it; check the disk",
}


def os_error(command, error):
    """An OSError naming a file (a full disk, a read-only folder, a file that cannot be read): one line with its
    cause and the fix. One without a file is a bug, shown with its traceback."""
    fix = OS_ERROR_FIXES.get(error.errno, "check the file and the disk")
    print(f"vitbench {command}: error: {error.filename}: {error.strerror or error}; {fix}", file=sys.stderr)
    return 2


def is_user_error(error):
    """A VitbenchError, without importing models (and torch) to ask: whatever raised one has loaded its module."""
    errors = sys.modules.get("models.errors")
    return errors is not None and isinstance(error, errors.VitbenchError)


def main(argv=None):
    args = build_parser().parse_args(argv)  # --help ends here, before anything heavy is imported
    from bench.processes import Terminated, sigterm_interrupts

    try:
        with sigterm_interrupts():  # SIGTERM unwinds like Ctrl-C: locks released, partial writes removed
            args.func(args)
    except Exception as e:
        if args.debug or not is_user_error(e):
            if isinstance(e, OSError) and e.filename is not None and not args.debug:
                return os_error(args.command, e)
            raise
        print(f"vitbench {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        terminated = isinstance(e, Terminated)
        print(f"vitbench {args.command}: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
        return 128 + (signal.SIGTERM if terminated else signal.SIGINT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
