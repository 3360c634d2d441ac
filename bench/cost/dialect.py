"""timm's dialect for `vitbench profile` and `vitbench macs`: models picked by wildcard or from a list
file as timm's `benchmark.py` picks them, results written with its CSV column names (ours after them),
numbers shown rounded with their units, and the MAC counters side by side."""
import csv
import fnmatch
import io
from pathlib import Path

import timm
import torch

import models
from bench.cost.build import build_model, is_ours
from bench.cost.flops import FlopCountAnalysis, counting_twin, macs_of, one_image, params_of  # fvcore, imported quietly
from models.atomic import atomic_write_text
from models.errors import ConfigError, UnknownModelError

TIMM_COLUMNS = ("model", "infer_samples_per_sec", "infer_step_time", "infer_batch_size", "infer_img_size",
                "infer_gmacs", "train_samples_per_sec", "train_step_time", "train_batch_size", "train_img_size",
                "param_count")  # timm benchmark.py's names: step time in ms, GMACs by fvcore, params in millions


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
    """A `profile_model` result as timm benchmark.py's columns, followed by every measurement of ours."""
    side = result["img_size"] if isinstance(result["img_size"], int) else max(result["img_size"])
    row = {"model": result["model"], "param_count": round(result["params"] / 1e6, 2),
           "infer_gmacs": round(result.get("macs_fvcore", result["macs"]) / 1e9, 3)}
    for prefix, suffix in (("infer", ""), ("train", "_train")):
        rate = result.get(f"throughput_img_s{suffix}")
        if rate:
            row.update({f"{prefix}_samples_per_sec": round(rate, 2),
                        f"{prefix}_step_time": round(1000 * result["batch_size"] / rate, 3),
                        f"{prefix}_batch_size": result["batch_size"], f"{prefix}_img_size": side})
    return {**{column: row.get(column) for column in TIMM_COLUMNS},
            **{key: value for key, value in result.items() if key not in row}}


def write_results_file(path, rows):
    """CSV with timm's columns first (in its order), then the union of ours."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(dict.fromkeys(key for row in rows for key in row)),
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
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
    model = build_model(name, {"img_size": img_size} if img_size else {})
    counts, params = macs_of(model), params_of(model)["params"]
    plain = plain_fvcore_macs(model)
    return {"model": name, "params_M": round(params / 1e6, 3),
            "analytic_G": round(counts["macs"] / 1e9, 4) if is_ours(name) else None,
            "fvcore_with_sdpa_G": round(counts["macs_fvcore"] / 1e9, 4),
            "torch_counter_G": round(counts["macs_torch"] / 1e9, 4), "fvcore_plain_G": round(plain / 1e9, 4),
            "plain_fvcore_misses_pct": round(100 * (1 - plain / counts["macs_fvcore"]), 2)}
