"""Which autocast dtype a training run uses (`--amp`), and why: the choice and its reason go to summary.json.

`auto` takes bf16 where it pays and fp32 elsewhere:
- CUDA: bf16 where `torch.cuda.is_bf16_supported()` (tensor cores gain at any width).
- CPU: bf16 only with native bf16 dot products (the avx512_bf16 or amx_bf16 flag; without them torch emulates
  bf16 GEMMs, measured 8-10x slower than fp32 here) AND a transformer at least BF16_MIN_WIDTH wide. Narrower
  models spend their step in ops bf16 does not speed up (casts, LayerNorm, softmax, the optimiser), so autocast
  only adds casts: the measurements behind the threshold are in docs/cost.md, "Precision and utilisation".
Models without a transformer width (CNNs) stay fp32 on CPU: the rule was measured on transformers only.
"""
from dataclasses import dataclass
from pathlib import Path

import torch

from models.errors import ConfigError

BF16_MIN_WIDTH = 192  # the narrowest width measured to gain (docs/cost.md: precision); 64 measured to lose
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo's names for native bf16 dot products
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}


def cpu_flags(path="/proc/cpuinfo"):
    """The CPU's feature flags as Linux reports them; empty where there is no /proc/cpuinfo (auto then stays fp32)."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def model_width(model):
    """A transformer's token width (`embed_dim`, as timm's and ours name it); None for other models."""
    return getattr(model, "embed_dim", None)


@dataclass(frozen=True)
class Precision:
    """The dtype autocast runs the model in ("off": fp32 throughout), and why it was chosen."""

    amp: str
    reason: str

    @property
    def dtype(self):
        return DTYPES[self.amp]

    def record(self):
        return {"amp": self.amp, "reason": self.reason}


def auto_cpu(model, flags):
    native = [flag for flag in CPU_BF16_FLAGS if flag in flags]
    if not native:
        return Precision("off", f"auto: this CPU has no native bf16 ({' or '.join(CPU_BF16_FLAGS)} flag), where "
                                "bf16 GEMMs are emulated and slower than fp32")
    width = model_width(model)
    if width is None:
        return Precision("off", "auto: the model has no transformer width (embed_dim); bf16 on CPU was measured "
                                "on transformers only")
    if width < BF16_MIN_WIDTH:
        return Precision("off", f"auto: width {width} < {BF16_MIN_WIDTH}, below which bf16 autocast was measured "
                                "not to gain on CPU")
    return Precision("bf16", f"auto: native bf16 ({native[0]}) and width {width} >= {BF16_MIN_WIDTH}")


def choose(amp, device, model):
    """The `Precision` of a run of `model` with `--amp amp` on `device`."""
    if amp == "fp16" and device.type != "cuda":
        raise ConfigError("--amp fp16 needs a CUDA device; use --amp bf16 or --amp off on CPU")
    if amp != "auto":
        return Precision(amp, "given")
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return Precision("bf16", f"auto: {torch.cuda.get_device_name(device)} supports bf16")
        return Precision("off", f"auto: {torch.cuda.get_device_name(device)} does not support bf16")
    if device.type == "cpu":
        return auto_cpu(model, cpu_flags())
    return Precision("off", f"auto: fp32 on {device.type}")
