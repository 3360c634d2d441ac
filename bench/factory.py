"""The one model factory of both harnesses: one of ours by name, or any timm model (a baseline, a CNN arm).

Ours (`models.list_models()`) go through `models.create_model`, which takes every setting of theirs; any other
timm name (`resnet18`, `deit_tiny_patch16_224`, the CIFAR CNNs of `models.cnn`, ...) through
`timm.create_model` with the overrides passed through, `img_size` where the model takes it (a CNN takes any
size: there it only sets the input size its pretrained_cfg states). Lists (as TOML and KEY=VALUE give them)
become tuples, as the builders expect.
"""
import difflib

import timm

import models
from models.errors import ConfigError, UnknownModelError


def is_ours(name):
    """Whether `name` is one of our named transformers (built over `models.VisionTransformer`)."""
    return name in models.MODEL_CONFIGS


def check_name(name):
    """`name` if timm can build it, else an UnknownModelError suggesting close names (ours and timm's)."""
    if not isinstance(name, str) or not timm.is_model(name):
        close = difflib.get_close_matches(str(name), timm.list_models(), n=3, cutoff=0.6)  # ours are timm's too
        hint = (f"did you mean {', '.join(close)}?" if close else
                "run `vitbench list` or pick any timm model name")
        raise UnknownModelError(f"unknown model {name!r}; {hint}")
    return name


def as_tuples(value):
    return tuple(as_tuples(item) for item in value) if isinstance(value, list | tuple) else value


def create(name, overrides=None, num_classes=None, img_size=None, drop_path_rate=None):
    """A randomly initialised `name` with `overrides` (--model-arg, a sweep's axes); `num_classes`, `img_size` and
    `drop_path_rate` are what a harness sets from its own flags, so the overrides may not repeat one that is given.
    Its pretrained_cfg states its input size."""
    overrides = {key: as_tuples(value) for key, value in (overrides or {}).items()}
    settings = {key: value for key, value in dict(num_classes=num_classes, img_size=img_size,
                                                   drop_path_rate=drop_path_rate).items() if value is not None}
    if duplicated := sorted(set(settings) & set(overrides)):
        raise ConfigError(f"model overrides {duplicated} repeat settings given on their own (--img-size, the "
                          "dataset's classes, --drop-path); drop them from the model overrides (--model-arg)")
    if is_ours(name):
        return models.create_model(name, **settings, **overrides)
    return create_timm(check_name(name), settings, overrides)


def create_timm(name, settings, overrides):
    """Any timm model that is not ours; an `img_size` it does not take only sets the input size it is fed."""
    kwargs = {**settings, **overrides}
    img_size = kwargs.pop("img_size", None)
    overrides = {key: value for key, value in overrides.items() if key != "img_size"}  # the ones errors name
    try:
        try:
            model = timm.create_model(name, **kwargs, **({"img_size": img_size} if img_size else {}))
        except TypeError:
            if not img_size:
                raise
            model = timm.create_model(name, **kwargs)  # a CNN: any size fits, it is only the input's
    except TypeError as error:
        raise ConfigError(f"timm model {name!r} rejects the overrides {sorted(overrides)} ({first_line(error)}); "
                          "check --model-arg") from None
    except (ValueError, AssertionError) as error:
        raise ConfigError(f"timm model {name!r} cannot be built with {overrides or 'its defaults'} "
                          f"({first_line(error)})") from None
    model.model_name = name
    if img_size:
        side = img_size if isinstance(img_size, tuple) else (img_size, img_size)
        model.pretrained_cfg = {**model.pretrained_cfg, "input_size": (model.pretrained_cfg["input_size"][0], *side)}
    return model


def first_line(error):
    return str(error).splitlines()[0] if str(error) else type(error).__name__
