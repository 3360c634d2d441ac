"""Throughput of one model: inference and full training steps, on CPU or CUDA.

Each measurement warms up, synchronises CUDA around every repeat (CUDA events when on GPU),
and reports the median and interquartile range over repeats in images per second.
"""
import statistics
import time
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from timm.optim import create_optimizer_v2

from bench.allocator import use_allocator
from bench.configs import DTYPES as DTYPE_NAMES
from bench.configs import MODES, TimingSetup
from models.errors import ConfigError

# What a measurement can run on, in which precision and mode (named in bench.configs): the one list
# the CLI, the sweep and the pytest-benchmark suite offer.
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
assert tuple(DTYPES) == DTYPE_NAMES


def resolve_device(name):
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but torch sees no CUDA GPU; use --device cpu")
    return torch.device(name)


def resolve_dtype(name):
    return DTYPES[name]


def autocast(setup):
    """The setup's autocast context (none for float32)."""
    if setup.dtype == "float32":
        return nullcontext()
    return torch.autocast(device_type=setup.device, dtype=resolve_dtype(setup.dtype))


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def sample_batch(model, setup, device):
    """Random images of the model's size and random labels, on `device`."""
    height, width = model.pretrained_cfg["input_size"][1:]
    images = torch.randn(setup.batch_size, model.pretrained_cfg["input_size"][0], height, width, device=device)
    if setup.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, max(model.num_classes, 1), (setup.batch_size,), device=device)
    return images, labels


def prepare(model, setup):
    """Move, format and optionally compile the model under the setup's allocator policy; returns
    (runnable model, device)."""
    device = resolve_device(setup.device)
    use_allocator(setup.allocator)
    model = model.to(device)
    if setup.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return (torch.compile(model) if setup.compile else model), device


def make_step(model, setup, mode):
    """A closure running one inference batch or one training step (forward, backward, AdamW step)."""
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}; choose one of {list(MODES)}")
    runnable, device = prepare(model, setup)
    images, labels = sample_batch(model, setup, device)
    if mode == "inference":
        model.eval()

        def step():
            with torch.inference_mode(), autocast(setup):
                runnable(images)

        return step, device
    model.train()
    optimizer = create_optimizer_v2(model, "adamw", lr=1e-4, weight_decay=0.05)
    scaler = torch.amp.GradScaler(device.type, enabled=setup.dtype == "float16")

    def step():
        with autocast(setup):
            output = runnable(images)
            loss = F.cross_entropy(output, labels) if model.num_classes > 1 else output.float().pow(2).mean()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

    return step, device


def timed_call(step, device):
    """Wall seconds of one call of `step`, the device synchronised on both sides."""
    synchronize(device)
    begin = time.perf_counter()
    step()
    synchronize(device)
    return time.perf_counter() - begin


def time_step(step, device, warmup, repeats):
    """Seconds per call of `step`, one entry per repeat, after `warmup` calls."""
    for _ in range(warmup):
        step()
    synchronize(device)
    seconds = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            torch.cuda.synchronize(device)
            seconds.append(start.elapsed_time(end) / 1000)
        else:
            begin = time.perf_counter()
            step()
            seconds.append(time.perf_counter() - begin)
    return seconds


def rate_quartiles(seconds, batch_size):
    """Median and interquartile range of images/s over repeats."""
    rates = sorted(batch_size / s for s in seconds)
    quartiles = statistics.quantiles(rates, n=4, method="inclusive") if len(rates) > 1 else [rates[0]] * 3
    return {"img_s": quartiles[1], "img_s_q1": quartiles[0], "img_s_q3": quartiles[2], "repeats": len(rates)}


def measure_throughput(model, setup: TimingSetup = TimingSetup(), mode="inference") -> dict:
    """Images/s of `model` for `mode`: img_s (median), img_s_q1, img_s_q3, threads, and with `compile`
    compile_s: the first call's time (where torch.compile compiles) less a steady step's, timed apart."""
    step, device = make_step(model, setup, mode)
    first = timed_call(step, device) if setup.compile else None
    result = rate_quartiles(time_step(step, device, setup.warmup, setup.repeats), setup.batch_size)
    result["threads"] = torch.get_num_threads() if device.type == "cpu" else None
    result["compile_s"] = max(first - setup.batch_size / result["img_s"], 0.0) if setup.compile else None
    return result
