"""Throughput of one model: inference and full training steps, on CPU or CUDA.

Each measurement warms up, synchronises CUDA around every repeat (CUDA events when on GPU),
and reports the median and interquartile range over repeats in images per second.
"""
import statistics
import time
from contextlib import nullcontext
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from timm.optim import create_optimizer_v2

from bench.allocator import check_policy, use_allocator
from models.errors import ConfigError

# What a measurement can run on, in which precision and mode: the one list the CLI, the sweep and
# the pytest-benchmark suite offer.
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DEVICES = ("cpu", "cuda")
MODES = ("inference", "train")


def resolve_device(name):
    if name not in DEVICES:
        raise ConfigError(f"unknown device {name!r}; choose one of {list(DEVICES)}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but torch sees no CUDA GPU; use --device cpu")
    return torch.device(name)


def resolve_dtype(name):
    if name not in DTYPES:
        raise ConfigError(f"unknown dtype {name!r}; choose one of {list(DTYPES)}")
    return DTYPES[name]


@dataclass(frozen=True)
class TimingSetup:
    """How to run a model: everything that changes its speed besides the model itself."""

    batch_size: int = 8
    device: str = "cpu"
    dtype: str = "float32"  # float32, or the autocast dtype
    channels_last: bool = False
    compile: bool = False
    warmup: int = 2
    repeats: int = 5
    allocator: str = "steady"  # what freed CPU memory does: see bench/allocator.py

    def __post_init__(self):
        resolve_dtype(self.dtype)
        if self.device not in DEVICES:
            raise ConfigError(f"unknown device {self.device!r}; choose one of {list(DEVICES)}")
        for name in ("batch_size", "warmup", "repeats"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"{name}={value!r} must be an integer; pass e.g. {name} = 8, not a string")
        for name in ("channels_last", "compile"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name}={getattr(self, name)!r} must be true or false")
        check_policy(self.allocator)
        if self.batch_size < 1 or self.repeats < 1 or self.warmup < 0:
            raise ConfigError(f"batch_size={self.batch_size} and repeats={self.repeats} must be >= 1 and "
                              f"warmup={self.warmup} >= 0; pass positive sizes")

    @classmethod
    def field_names(cls):
        return [f.name for f in fields(cls)]

    @classmethod
    def from_values(cls, values):
        """A setup from any mapping or namespace holding some of the fields by name (None = default)."""
        values = values if isinstance(values, dict) else vars(values)
        return cls(**{name: values[name] for name in cls.field_names() if values.get(name) is not None})

    def autocast(self):
        if self.dtype == "float32":
            return nullcontext()
        return torch.autocast(device_type=self.device, dtype=resolve_dtype(self.dtype))


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
            with torch.inference_mode(), setup.autocast():
                runnable(images)

        return step, device
    model.train()
    optimizer = create_optimizer_v2(model, "adamw", lr=1e-4, weight_decay=0.05)
    scaler = torch.amp.GradScaler(device.type, enabled=setup.dtype == "float16")

    def step():
        with setup.autocast():
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
