"""The model a cost measurement is about: one of ours by name, or any timm model as a baseline.

Ours (`models.list_models()`) take every override `models.create_model` knows. Any other timm name
(`deit_tiny_patch16_224`, `resnet50`, `swin_tiny_patch4_window7_224`, ...) is made by
`timm.create_model` with the overrides passed through; `img_size` is passed where the model takes
it and otherwise only sets the input size the measurement feeds it.
"""
import difflib

import timm
import torch

import models
from models.errors import ConfigError, UnknownModelError


def is_ours(name):
    return name in models.MODEL_CONFIGS


def check_timm_name(name):
    """`name` if timm can build it, else an UnknownModelError suggesting close names (ours and timm's)."""
    if not isinstance(name, str) or not timm.is_model(name):
        close = difflib.get_close_matches(str(name), timm.list_models(), n=3, cutoff=0.6)  # ours included
        hint = f"did you mean {', '.join(close)}?" if close else "run `vitbench list` or pick any timm model name"
        raise UnknownModelError(f"unknown model {name!r}; {hint}")
    return name


def build_model(name, overrides=None):
    """A randomly initialised model `name` with `overrides`; its pretrained_cfg holds its input size."""
    overrides = dict(overrides or {})
    if is_ours(name):
        return models.create_model(name, **overrides)
    check_timm_name(name)
    img_size = overrides.pop("img_size", None)
    try:
        model = timm.create_model(name, **overrides, **({"img_size": img_size} if img_size else {}))
    except TypeError:
        if not img_size:
            raise ConfigError(f"timm model {name!r} rejects the overrides {sorted(overrides)}; check them") from None
        model = timm.create_model(name, **overrides)  # a CNN: any size fits, it is only the input's
    except (ValueError, AssertionError) as error:
        raise ConfigError(f"timm model {name!r} cannot be built with {overrides or 'its defaults'} "
                          f"({str(error).splitlines()[0] if str(error) else type(error).__name__})") from None
    model.model_name = name
    if img_size:
        channels = model.pretrained_cfg["input_size"][0]
        model.pretrained_cfg = {**model.pretrained_cfg, "input_size": (channels, img_size, img_size)}
    return model


def input_size(model):
    """(C, H, W) the model is measured at."""
    return tuple(model.pretrained_cfg["input_size"])


def dropout_rates(model):
    """{top-level part: its largest drop probability} over every dropout and drop-path of `model`
    (a drop-path rate rises with depth to the configured one): what a timed training step does
    besides its config, e.g. the 0.1 of Performer T2T blocks (`t2t_drop`). Empty when nothing drops."""
    rates = {}
    for name, module in model.named_modules():
        p = module.p if isinstance(module, torch.nn.Dropout) else getattr(module, "drop_prob", None)
        if p:
            part = name.split(".")[0]
            rates[part] = round(max(p, rates.get(part, 0.0)), 6)
    return rates


def check_runs(model):
    """A ConfigError, not a traceback, when a timm model cannot take its input size: one zero image
    through it (CPU, no grad), its train/eval mode kept. Ours check their sizes when built."""
    channels, height, width = input_size(model)
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, channels, height, width, device=next(model.parameters()).device))
    except (RuntimeError, ValueError, AssertionError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(f"timm model {model.model_name!r} cannot run on {height}x{width} images ({reason}); "
                          "pick another image size") from None
    finally:
        model.train(was_training)
