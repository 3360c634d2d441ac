"""Cost sweeps: a grid over family, depth, heads, width, patch and image size -> one tidy table.

Named models (ours) and any timm models (the `timm` family: DeiT, ResNet, Swin, ...) are measured
as they are beside the grid, with image size still crossed, so a baseline sits in the same table.

A run folder `results/<run-id>/` holds `spec.json` (and the same as `spec.toml`), `provenance.json`,
`rows.jsonl` (appended one configuration at a time, so an interrupted sweep resumes and skips finished
configurations) and, when done, `sweep.csv` / `sweep.json` with one row per configuration
and measurement. Impossible configurations are rows with status "skipped" and the reason;
out-of-memory is a row with status "oom" and the batch size, and the sweep goes on.
"""
import dataclasses
import itertools
import json
import os
from pathlib import Path

import pandas as pd

import models
from bench import factory
from bench.allocator import describe_policy
from bench.configs import SWEEP_FAMILIES, SweepSpec
from bench.cost.build import check_runs, input_size
from bench.cost.flops import macs_of, params_of
from bench.cost.memory import activation_estimate_bytes, is_oom, largest_batch, measure_peak_memory, release_memory
from bench.cost.profile import tokenizer_time_share
from bench.cost.timing import measure_throughput
from bench.errors import ResultsError
from bench.outputs import RESUME, OutputFolder, folder_lock
from bench.provenance import provenance
from models.atomic import atomic_write_text
from models.errors import ConfigError

FAMILY_BASES = {"vit": "vb_vit_small_patch16_224", "t2t-performer": "t2t_vit_14", "t2t-transformer": "t2t_vit_t_14"}
assert set(FAMILY_BASES) <= set(models.FAMILIES) and tuple(FAMILY_BASES) == SWEEP_FAMILIES
TIMM_FAMILY = "timm"  # rows of timm models: what a user would pick instead of ours
TOOL_MARK = "vitbench sweep"


def check_names(spec):
    """The spec's model names exist: ours under `models`, timm's (not ours) under `timm`."""
    for name in spec.models:
        if name not in models.MODEL_CONFIGS:
            raise ConfigError(f"unknown models value {name!r}; choose from `vitbench list`")
    for name in spec.timm:
        if factory.is_ours(name):
            raise ConfigError(f"timm value {name!r} is one of ours; list it under models = [{name!r}]")
        factory.check_name(name)
    return spec


def configurations(spec):
    """(label, model name, overrides) for every point of the grid, deduplicated, in order."""
    axes = {k: getattr(spec, k) for k in ("depth", "num_heads", "embed_dim", "mlp_ratio", "img_size")}
    seen = set()
    for family in spec.families:  # its base model and its FAMILY_TABLE row say what it varies
        patch_sizes = spec.patch_size if "patch_size" in models.MODEL_CONFIGS[FAMILY_BASES[family]] else []
        block = models.FAMILY_TABLE[family].t2t_block
        for values in itertools.product(*(v or [None] for v in axes.values()), patch_sizes or [None]):
            overrides = {k: v for k, v in zip([*axes, "patch_size"], values) if v is not None}
            overrides.update({"t2t_block": block} if block else {})
            yield from _once(seen, family, FAMILY_BASES[family], overrides)
    for family, names in (("named", spec.models), (TIMM_FAMILY, spec.timm)):
        for name in names:
            for img_size in spec.img_size or [None]:
                yield from _once(seen, family, name, {"img_size": img_size} if img_size else {})


def _once(seen, family, name, overrides):
    label = {"family": family, "base": name, **overrides}
    if config_key(label) not in seen:
        seen.add(config_key(label))
        yield label, name, overrides


def config_key(label):
    return json.dumps(label, sort_keys=True)


def config_columns(model):
    """Columns that say what was measured, resolved from the built model."""
    if not isinstance(model, models.VisionTransformer):
        return timm_columns(model)
    config = model.config
    return {
        "model": model.model_name,
        "tokenizer": models.FAMILY_TABLE[models.family_of(config)].kind,
        "depth": len(model.blocks),
        "num_heads": model.blocks[0].attn.num_heads,
        "embed_dim": model.embed_dim,
        "mlp_ratio": config["mlp_ratio"],
        "patch_size": model.tokenizer.stride,
        "img_size": "x".join(map(str, model.img_size)),
        "tokens": model.tokenizer.num_tokens + 1,
    }


def timm_columns(model):
    """The same columns for a timm model, filled where it has the part (a ViT's blocks and patches;
    a CNN has none of them)."""
    blocks = getattr(model, "blocks", None)
    patches = getattr(model, "patch_embed", None)
    height, width = input_size(model)[1:]
    return {
        "model": model.model_name,
        "tokenizer": TIMM_FAMILY,
        "depth": len(blocks) if blocks is not None else None,
        "num_heads": getattr(getattr(blocks[0], "attn", None), "num_heads", None) if blocks else None,
        "embed_dim": getattr(model, "embed_dim", None),
        "mlp_ratio": None,
        "patch_size": patches.patch_size[0] if patches is not None else None,
        "img_size": f"{height}x{width}",
        "tokens": patches.num_patches + model.num_prefix_tokens if hasattr(model, "num_prefix_tokens") else None,
    }


def measure_config(spec, name, overrides):
    """All rows for one configuration: (measurement, value, unit, extra)."""
    model = factory.create(name, overrides)
    ours = isinstance(model, models.VisionTransformer)
    if not ours:
        check_runs(model)
    rows = []
    if "params" in spec.measure:
        rows += [(key, value, "count", {}) for key, value in params_of(model).items()]
    if "macs" in spec.measure:
        rows += [(key, value, "MACs", {}) for key, value in macs_of(model).items() if key.startswith("macs")]
    for mode in spec.modes:
        if "throughput" in spec.measure:
            rows += throughput_rows(model, spec, mode)
        if "tokenizer_time" in spec.measure and ours:
            rows.append(guard_oom(f"tokenizer_time_share_{mode}", "fraction", spec.timing.batch_size,
                                  lambda mode=mode: (tokenizer_time_share(model, spec.timing, mode), {})))
    model.cpu()  # off the GPU before memory is measured: its weights would count in the peak
    release_memory()
    for mode in spec.modes:
        if "memory" in spec.measure:
            rows.append(guard_oom(f"peak_memory_{mode}", "bytes", spec.timing.batch_size,
                                  lambda mode=mode: memory_row(name, overrides, spec, mode)))
            if ours:
                estimate = activation_estimate_bytes(model, spec.timing.batch_size, mode)
                rows.append((f"activation_estimate_{mode}", estimate, "bytes", {"method": "analytic"}))
        if "max_batch" in spec.measure:
            rows.append((f"max_batch_{mode}", max_batch(name, overrides, spec, mode), "images", {}))
    return config_columns(model), rows


def throughput_rows(model, spec, mode):
    """Images/s for `mode`; compiled, also the compile time (first call less a steady one) as its own row."""
    result = {}

    def measure():
        result.update(measure_throughput(model, spec.timing, mode))
        return result["img_s"], {"q1": result["img_s_q1"], "q3": result["img_s_q3"], "threads": result["threads"]}

    rows = [guard_oom(f"throughput_{mode}", "img/s", spec.timing.batch_size, measure)]
    if spec.timing.compile and result:
        rows.append((f"compile_s_{mode}", result["compile_s"], "s", {}))
    return rows


def memory_row(name, overrides, spec, mode):
    result = measure_peak_memory(name, overrides, spec.timing, mode)
    if result.get("oom"):
        raise MemoryError(result["error"])
    return result["peak_memory_bytes"], {"method": result["memory_method"]}


def guard_oom(measurement, unit, batch_size, run):
    """One row; out-of-memory becomes status "oom" with the batch size instead of a crash."""
    try:
        value, extra = run()
        return measurement, value, unit, extra
    except (RuntimeError, MemoryError) as e:
        if not is_oom(e):
            raise
    release_memory()  # outside the handler: the traceback no longer pins the step's tensors
    return measurement, None, unit, {"status": "oom", "reason": f"out of memory at batch {batch_size}"}


def max_batch(name, overrides, spec, mode):
    def fits(batch_size):
        setup = dataclasses.replace(spec.timing, batch_size=batch_size)
        return not measure_peak_memory(name, overrides, setup, mode).get("oom")

    return largest_batch(fits, start=1, limit=spec.max_batch_limit)


SWEEP_FOLDER = OutputFolder(
    kind="sweep",
    marker="provenance.json",
    holds="a sweep",
    resume_hint="continue it",
    is_marked=lambda marker: json.loads(marker.read_text()).get("tool") == TOOL_MARK,
    written=("provenance.json", "spec.json", "spec.toml", "rows.jsonl", "sweep.csv", "sweep.json"),
)


MEASURED_BEFORE_KEY = {"allocator": "system"}  # keys added since: what a spec.json without them was measured with


def saved_spec(path):
    """The flat spec a run folder was started with, keys added since filled with what it was measured
    with, else their defaults."""
    try:
        return SweepSpec.from_flat({**MEASURED_BEFORE_KEY, **json.loads(path.read_text())}).flat()
    except (ValueError, TypeError, ConfigError):
        return None


def spec_changes(saved, spec):
    """'key: saved there, now here' for each key that differs, for the resume error."""
    if saved is None:
        return "unreadable spec.json"
    return ", ".join(f"{key}: {saved.get(key)!r} there, {value!r} now" for key, value in spec.items()
                     if saved.get(key) != value)


class SweepRun:
    """The run folder under the output policy of `bench.outputs`: ours only, resumed or redone on request."""

    def __init__(self, out, spec, resume=False, overwrite=False, argv=None):
        self.out, self.spec = Path(out), spec
        self.rows_path = self.out / "rows.jsonl"
        spec_json = json.dumps(spec.flat(), sort_keys=True, indent=2)
        mode = SWEEP_FOLDER.prepare(self.out, resume, overwrite)
        saved = saved_spec(self.out / "spec.json") if mode == RESUME else None
        if mode == RESUME and saved is None:
            raise ResultsError(f"{self.out / 'spec.json'} is unreadable (truncated or corrupt), so the sweep cannot be "
                               "continued; pass --overwrite to measure it again")
        if mode == RESUME and saved != spec.flat():
            raise ResultsError(f"{self.out} was run with another spec ({spec_changes(saved, spec.flat())}); "
                               "resume with the same flags or use a new --out")
        SWEEP_FOLDER.start(self.out, resume, overwrite)
        atomic_write_text(self.out / "spec.json", spec_json)
        atomic_write_text(self.out / "spec.toml", spec.to_toml())  # `vitbench sweep --config OUT/spec.toml` redoes it
        # the policy the timings will run under (set at the first timing), not the process's state right now
        record = {"tool": TOOL_MARK, **provenance(spec.timing.device, argv),
                  "allocator": describe_policy(spec.timing.allocator)}
        atomic_write_text(self.out / "provenance.json", json.dumps(record, indent=2))

    def finished(self):
        """Keys of configurations whose rows are all in rows.jsonl; rows of a torn block (killed or disk
        full mid-write: a cut line, or fewer rows than the block said) are dropped and measured again."""
        if not self.rows_path.exists():
            return set()
        blocks = {}
        for line in self.rows_path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            blocks.setdefault(row["config_key"], []).append(line)
        complete = {
            key: lines
            for key, lines in blocks.items()
            if len(lines) == json.loads(lines[0]).get("config_rows", len(lines))
        }
        atomic_write_text(self.rows_path, "".join(line + "\n" for lines in complete.values() for line in lines))
        return set(complete)

    def append(self, rows):
        """Append one configuration's rows, each saying how many the block holds, and fsync."""
        text = "".join(json.dumps({**row, "config_rows": len(rows)}) + "\n" for row in rows)
        try:
            with open(self.rows_path, "a") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
        except OSError as error:
            raise ResultsError(
                f"cannot write to {self.out} ({error.strerror or error}); free disk space or "
                "choose another --out, then continue with --resume"
            ) from None

    def finish(self):
        table = pd.read_json(self.rows_path, lines=True) if self.rows_path.stat().st_size else pd.DataFrame()
        table = table.drop(columns=["config_key", "config_rows"], errors="ignore")
        atomic_write_text(self.out / "sweep.csv", table.to_csv(index=False))
        atomic_write_text(self.out / "sweep.json", table.to_json(orient="records", indent=1))
        return table


def run_sweep(spec: SweepSpec, out: str | Path, resume: bool = False, overwrite: bool = False,
              argv: list[str] | None = None, progress=print) -> pd.DataFrame:
    """Measure every configuration not yet in `out`; returns the tidy table."""
    check_names(spec)
    with folder_lock(out, "sweep"):
        return measure_all(SweepRun(out, spec, resume, overwrite, argv), spec, progress)


def measure_all(run, spec, progress):
    """Measure the configurations of `spec` that `run` has not finished, then write its table."""
    done = run.finished()
    setup = {"batch_size": spec.timing.batch_size, "device": spec.timing.device, "dtype": spec.timing.dtype}
    for label, name, overrides in configurations(spec):
        key = config_key(label)
        if key in done:
            continue
        base = {"config_key": key, **{f"config_{k}": v for k, v in label.items()}, **setup}
        try:
            described, measured = measure_config(spec, name, overrides)
        except ConfigError as e:
            run.append(
                [{**base, "measurement": "config", "value": None, "unit": None, "status": "skipped", "reason": str(e)}]
            )
            progress(f"skipped {label}: {e}")
            continue
        rows = [
            {**base, **described, "measurement": m, "value": v, "unit": u, "status": "ok", "reason": None, **extra}
            for m, v, u, extra in measured
        ]
        run.append(rows)
        progress(f"measured {described['model']} {label}")
    return run.finish()
