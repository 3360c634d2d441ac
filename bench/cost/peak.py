"""The machine's peak FLOP/s for a dtype, and a run's model FLOPs utilisation (MFU) against it.

MFU = achieved FLOP/s / peak FLOP/s, the achieved rate counted from the model's FLOPs (not the hardware's), as
in PaLM and nanoGPT's `estimate_mfu`: a training step counts forward MACs x 2 x 3 (bench/accuracy/plan.py).

CPU: the peak is measured, the best rate of square `torch.matmul`s of a few sizes at the current thread count (a
short GEMM calibration, as nanoGPT compares with a GPU's datasheet GEMM rate), and cached per CPU model, thread
count, dtype and torch version in $VITBENCH_PEAK_CACHE (default ~/.cache/vitbench/peak.json). A calibration on a
busy machine measures a lower peak, so each entry records when it was measured; delete it to measure again.
CUDA: the dense peak of NVIDIA's datasheet for the GPU's name (DENSE_PEAK), None for a GPU not in the table.
"""
import datetime
import json
import os
import time
from pathlib import Path

import torch
from filelock import FileLock

from bench.provenance import cpu_name
from models.atomic import atomic_write_text

SIZES = (256, 512, 1024)  # square GEMMs: the largest reach a core's peak; the smallest bound an emulated dtype
REPEATS = 5  # best of: the rate least disturbed by other processes
SLOW_S = 0.5  # GEMMs of one size taking longer than this in all (an emulated dtype) end the calibration there
TERA = 1e12
# Dense (no structured sparsity) peak TFLOP/s by GPU name, from NVIDIA's datasheets: "H100 Tensor Core GPU"
# datasheet (SXM: BF16 1,979 / FP32 67; PCIe: 1,513 / 51; NVL: 1,671 / 60; BF16 figures are with sparsity, dense
# is half), "H200 Tensor Core GPU" datasheet (SXM: as H100 SXM; NVL: 1,671 / 60, sparse BF16), "A100 Tensor Core
# GPU" datasheet (BF16 312 dense / FP32 19.5). FP32 is the CUDA-core rate: torch leaves TF32 matmuls off by
# default. The first matching name wins, so the specific forms (PCIe, NVL) come before their family.
DENSE_PEAK = (
    ("H100 PCIe", {"bfloat16": 756.5, "float16": 756.5, "float32": 51.0}),
    ("H100 NVL", {"bfloat16": 835.5, "float16": 835.5, "float32": 60.0}),
    ("H100", {"bfloat16": 989.5, "float16": 989.5, "float32": 67.0}),
    ("H200 NVL", {"bfloat16": 835.5, "float16": 835.5, "float32": 60.0}),
    ("H200", {"bfloat16": 989.5, "float16": 989.5, "float32": 67.0}),
    ("A100", {"bfloat16": 312.0, "float16": 312.0, "float32": 19.5}),
)


def cache_path():
    """$VITBENCH_PEAK_CACHE, else ~/.cache/vitbench/peak.json."""
    return Path(os.environ.get("VITBENCH_PEAK_CACHE") or Path.home() / ".cache" / "vitbench" / "peak.json")


def gemm_flop_s(dtype, sizes=SIZES, repeats=REPEATS):
    """The best FLOP/s of `torch.matmul` on CPU over square `sizes`, best of `repeats` each after a warm-up."""
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        out = torch.empty(n, n, dtype=dtype)
        torch.matmul(a, b, out=out)  # warm-up: packing buffers, thread pool
        spent = 0.0
        for _ in range(repeats):
            start = time.perf_counter()
            torch.matmul(a, b, out=out)
            took = time.perf_counter() - start
            best, spent = max(best, 2 * n**3 / took), spent + took
            if spent > SLOW_S:  # an emulated dtype: a few GEMMs of this size are enough, larger ones take longer
                return best
    return best


def cpu_key(dtype, threads):
    return f"{cpu_name()} | {threads} threads | {str(dtype).removeprefix('torch.')} | torch {torch.__version__}"


def cpu_peak(dtype):
    """The calibrated peak of this CPU for `dtype` at torch's current thread count: a record with the FLOP/s,
    the CPU model and how it was found; measured once per machine, then read from the cache."""
    threads = torch.get_num_threads()
    key, path = cpu_key(dtype, threads), cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{path}.lock"):  # ranks or study jobs calibrating at once measure once
        cached = json.loads(path.read_text()) if path.is_file() else {}
        if key not in cached:
            cached[key] = {"flop_s": gemm_flop_s(dtype), "device_name": cpu_name(), "threads": threads,
                           "dtype": str(dtype).removeprefix("torch."), "torch": torch.__version__,
                           "source": f"GEMM calibration: best of {REPEATS} square matmuls of {SIZES}",
                           "measured": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
            atomic_write_text(path, json.dumps(cached, indent=1) + "\n")
    return {**cached[key], "cache": cache_name()}


def cache_name():
    """Where the calibration is cached, as a record names it: no machine path (~ for the home folder, else the
    variable that chose it)."""
    if os.environ.get("VITBENCH_PEAK_CACHE"):
        return "$VITBENCH_PEAK_CACHE"
    return "~/.cache/vitbench/peak.json"


def cuda_peak(dtype, device):
    name = torch.cuda.get_device_name(device)
    dtype = str(dtype).removeprefix("torch.")
    for pattern, peaks in DENSE_PEAK:
        if pattern in name:
            return {"flop_s": peaks[dtype] * TERA, "device_name": name, "dtype": dtype,
                    "source": f"NVIDIA datasheet dense peak ({pattern})"}
    return {"flop_s": None, "device_name": name, "dtype": dtype, "source": "no datasheet peak for this GPU"}


def peak(dtype, device):
    """The peak record of `device` (a torch.device) for `dtype`; flop_s None where it is unknown."""
    if device.type == "cuda":
        return cuda_peak(dtype, device)
    if device.type == "cpu":
        return cpu_peak(dtype)
    return {"flop_s": None, "device_name": device.type, "dtype": str(dtype), "source": "no peak for this device"}


def mfu(flops, seconds, peak_flop_s, devices=1):
    """Model FLOPs utilisation: `flops` done in `seconds` on `devices` of `peak_flop_s` each; None if unknown."""
    if not peak_flop_s or not seconds:
        return None
    return flops / seconds / (peak_flop_s * devices)


def utilisation(flops, seconds, dtype, device, devices=1):
    """What summary.json and a study row keep: achieved FLOP/s, the peak it is measured against, and MFU."""
    found = peak(dtype, device)
    return {"train_flop_s": flops / seconds if seconds else None, "peak_flop_s": found["flop_s"],
            "mfu": mfu(flops, seconds, found["flop_s"], devices), "devices": devices,
            "peak": {k: v for k, v in found.items() if k != "flop_s"}}
