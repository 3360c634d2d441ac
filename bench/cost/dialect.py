"""timm's dialect for `vitbench profile` and `vitbench macs`: models picked by wildcard or from a list
file as timm's `benchmark.py` picks them, results written with its CSV column names (ours after them),
numbers shown rounded with their units, and the MAC counters side by side."""
import csv
import fnmatch
import io
import json
from pathlib import Path

import timm
import torch

import models
from bench import factory
from bench.cost.flops import FlopCountAnalysis, counting_twin, macs_of, one_image, params_of  # fvcore, imported quietly
from models.atomic import atomic_write_text
from models.errors import ConfigError, UnknownModelError

# timm benchmark.py's results file (its `benchmark()` and `main()`, timm 1.0.31): `model`, then each bench's columns
# prefixed `infer_`/`train_` in the order its runners return them (fvcore's `gmacs` and `macts` after the
# inference timing; the training runner counts none), and `param_count` last, popped from the runners' rows
TIMM_INFER = ("infer_samples_per_sec", "infer_step_time", "infer_batch_size", "infer_img_size", "infer_gmacs",
              "infer_macts")
TIMM_TRAIN = ("train_samples_per_sec", "train_step_time", "train_batch_size", "train_img_size")


def timm_columns(train=False):
    """timm benchmark.py's columns for `--bench inference`, or `--bench both` (its default) with `train`."""
    return ("model", *TIMM_INFER, *(TIMM_TRAIN if train else ()), "param_count")


TIMM_COLUMNS = timm_columns(train=True)
TIMM_SORT_KEY = "infer_samples_per_sec"  # timm sorts a bulk run by it, fastest first, for --bench inference and both


def model_names(patterns, model_list=None):
    """Names of ours and timm's matching each pattern (a name, or a wildcard such as `t2t_vit_*`), then those
    listed one per line in `model_list`; each once, in the order found. A pattern matching nothing raises."""
    patterns = list(patterns or [])
    if model_list:
        try:
            patterns += [line.strip() for line in Path(model_list).read_text().splitlines() if line.strip()]
        except OSError as error:
            raise ConfigError(f"cannot read the model list {model_list} ({error.strerror}); give a file with one "
                              "name per line") from None
    if not patterns:
        raise ConfigError("no model given; name one (a wildcard such as 't2t_vit_*' works) or pass --model-list FILE")
    names = []
    for pattern in patterns:
        found = (fnmatch.filter(models.list_models(), pattern) + timm.list_models(pattern)
                 if any(c in pattern for c in "*?[") else [pattern])
        if not found:
            raise UnknownModelError(f"no model matches {pattern!r}; try `vitbench list` or timm.list_models()")
        names += found
    return list(dict.fromkeys(names))  # ours are registered with timm too: each name once


def timm_row(result):
    """A `profile_model` result as timm benchmark.py's row (its columns, rounded as it rounds them), followed by every
    measurement of ours. The values are timm's definitions: step time in ms per batch, the image side its input's
    width, `param_count` the model's parameters in millions as timm's `count_params` sums them (ours keep their fixed
    tables as buffers, which the paper's count in `params` includes), `infer_gmacs` and `infer_macts` counted by
    fvcore on one image in eval mode, with fused attention counted (plain fvcore, which timm runs, drops it:
    `vitbench macs` shows how much)."""
    width = result["img_size"] if isinstance(result["img_size"], int) else result["img_size"][-1]
    row = {"model": result["model"], "param_count": round(result["params_trainable"] / 1e6, 2),
           "infer_gmacs": round(result.get("macs_fvcore", result["macs"]) / 1e9, 2),
           "infer_macts": round(result["activations_fvcore"] / 1e6, 2)}
    for prefix, suffix in (("infer", ""), ("train", "_train")):
        rate = result.get(f"throughput_img_s{suffix}")
        if rate:
            row.update({f"{prefix}_samples_per_sec": round(rate, 2),
                        f"{prefix}_step_time": round(1000 * result["batch_size"] / rate, 3),
                        f"{prefix}_batch_size": result["batch_size"], f"{prefix}_img_size": width})
    columns = timm_columns(train="throughput_img_s_train" in result)
    return {**{column: row.get(column) for column in columns},
            **{key: value for key, value in result.items() if key not in columns}}


def timm_rows(results):
    """`profile_model` results as timm's rows, sorted as timm's benchmark.py sorts a run over several models:
    fastest inference first (a stable sort: ties keep their order)."""
    rows = [timm_row(result) for result in results]
    return sorted(rows, key=lambda row: row[TIMM_SORT_KEY], reverse=True)


def json_cell(value):
    """A CSV cell: numbers and strings as they are, None empty, anything else (lists, dicts, booleans) as JSON."""
    if value is None or isinstance(value, str) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return value
    return json.dumps(value)


def write_results_file(path, rows):
    """CSV with timm's columns first (in its order), then the union of ours; a list, dict or boolean cell is JSON
    (`[0.5, 0.7]`, `{"tokenizer": 0.1}`, `true`), never a Python repr."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(dict.fromkeys(key for row in rows for key in row)),
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: json_cell(value) for key, value in row.items()} for row in rows)
    atomic_write_text(path, text.getvalue())


UNITS = (("throughput_img_s", "img/s", 1, ".1f"), ("peak_memory_bytes", "MB", 1e-6, ".1f"),
         ("activation_estimate_bytes", "MB", 1e-6, ".1f"), ("macs", "GMACs", 1e-9, ".4f"),
         ("params", "M", 1e-6, ".3f"), ("compile_s", "s", 1, ".1f"), ("_share", "", 100, ".1f%"),
         ("flop_s", "GFLOP/s", 1e-9, ".1f"), ("mfu", "", 100, ".1f%"))


def shown(key, value):
    """A value rounded and with its unit, by the key's kind (img/s, MB, GMACs, M params, GFLOP/s, %)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    for part, unit, scale, spec in UNITS:
        if part in key:
            if spec.endswith("%"):
                return f"{value * scale:{spec[:-1]}}%"
            return f"{value * scale:,{spec}} {unit}".rstrip()
    return f"{value:,}" if isinstance(value, int) else f"{value:.4g}"


def plain_fvcore_macs(model, img_size=None):
    """What fvcore counts out of the box (no handler for fused attention): the figure most users quote."""
    if isinstance(model, models.VisionTransformer):
        twin, image = counting_twin(model, img_size)
    else:
        twin, image = model.eval(), one_image(model, img_size)
    analysis = FlopCountAnalysis(twin, image).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    with torch.no_grad():
        return int(analysis.total())


def mac_table_row(name, img_size=None):
    """The MAC counters of one model side by side, and how much plain fvcore misses."""
    model = factory.create(name, img_size=img_size)
    counts, params = macs_of(model), params_of(model)["params"]
    plain = plain_fvcore_macs(model)
    return {"model": name, "params_M": round(params / 1e6, 3),
            "analytic_G": round(counts["macs"] / 1e9, 4) if factory.is_ours(name) else None,
            "fvcore_with_sdpa_G": round(counts["macs_fvcore"] / 1e9, 4),
            "torch_counter_G": round(counts["macs_torch"] / 1e9, 4), "fvcore_plain_G": round(plain / 1e9, 4),
            "plain_fvcore_misses_pct": round(100 * (1 - plain / counts["macs_fvcore"]), 2)}
