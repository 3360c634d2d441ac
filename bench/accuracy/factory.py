"""Build any model the harness trains (ours or a timm CNN) for a dataset, and load weights into it.

Our names (`models.list_models()`) take `img_size` and every override `models.create_model`
knows; any other timm name (e.g. `resnet18`, the CNN baseline) is made by `timm.create_model`
with the overrides passed through (`layers=[1, 1, 1, 1]`, `channels=[16, 32, 64, 128]`, ...).
"""
import difflib

import timm

import models
from models.checkpoint import (
    extract_state_dict,
    file_pretrained_cfg,
    read_checkpoint,
    stated_normalisation,
    trained_on,
)
from models.errors import CheckpointError, ConfigError, UnknownModelError, short_list


def is_ours(name):
    return name in models.MODEL_CONFIGS


def create(name, num_classes, img_size, drop_path_rate=0.0, overrides=None):
    """A randomly initialised `name` with a `num_classes` head."""
    overrides = dict(overrides or {})
    duplicated = sorted({"img_size", "num_classes", "drop_path_rate"} & set(overrides))
    if duplicated:
        raise ConfigError(f"model overrides {duplicated} repeat settings given on their own (--img-size, the "
                          "dataset's classes, --drop-path); drop them from the model overrides (--model-arg)")
    if is_ours(name):
        if "t2t_stages" in overrides:
            overrides["t2t_stages"] = tuple(tuple(stage) for stage in overrides["t2t_stages"])
        return models.create_model(
            name, img_size=img_size, num_classes=num_classes, drop_path_rate=drop_path_rate, **overrides
        )
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.6)  # ours are timm's too
        hint = (
            f"did you mean {', '.join(close)}?"
            if close
            else "run `vitbench list` for ours or pick a timm model such as resnet18"
        )
        raise UnknownModelError(f"unknown model {name!r}; {hint}")
    for key in ("layers", "channels"):
        if key in overrides:
            overrides[key] = tuple(overrides[key])
    try:
        return timm.create_model(name, num_classes=num_classes, drop_path_rate=drop_path_rate, **overrides)
    except TypeError as error:
        raise ConfigError(
            f"timm model {name!r} rejects the overrides {sorted(overrides)} ({error}); check --model-arg"
        ) from None


def classifier_keys(model, state_dict):
    """The state-dict keys of `model`'s classifier (`head.*` for ours, `fc.*` for a ResNet...)."""
    prefix = model.pretrained_cfg.get("classifier", "head") if hasattr(model, "pretrained_cfg") else "head"
    return [key for key in state_dict if key.startswith(prefix + ".")]


def head_classes(model, state_dict):
    """The class count of a checkpoint's classifier for `model`, or None if it has none."""
    keys = [k for k in classifier_keys(model, state_dict) if k.endswith("weight")]
    return state_dict[keys[0]].shape[0] if keys else None


def load_weights(model, path, use_ema=False):
    """Load a local checkpoint into `model`; a classifier for another class count stays at its init.

    Ours go through `models.load_checkpoint` (reference T2T-ViT, timm ViT and our layouts, with
    position interpolation); timm CNNs load their own state dicts.
    """
    if isinstance(model, models.VisionTransformer):
        return models.load_checkpoint(model, path, use_ema=use_ema)
    payload = read_checkpoint(path)
    state_dict = extract_state_dict(payload, path, use_ema)
    own = model.state_dict()
    new_head = False
    for key in classifier_keys(model, state_dict):
        if key in own and own[key].shape != state_dict[key].shape:
            del state_dict[key]
            new_head = True
    mismatched = [k for k, v in state_dict.items() if k in own and v.shape != own[k].shape]
    missing = set(own) - set(state_dict) - (set(classifier_keys(model, own)) if new_head else set())
    unexpected = set(state_dict) - set(own)
    if mismatched or missing or unexpected:
        raise CheckpointError(
            f"{path} does not fit {type(model).__name__}: mismatched {short_list(mismatched, limit=6)}, "
            f"missing {short_list(missing, limit=6)}, unexpected {short_list(unexpected, limit=6)}; "
            "create the model this checkpoint was trained as"
        )
    model.load_state_dict(state_dict, strict=False)
    return {"layout": "timm", "new_head": new_head, "trained_on": trained_on(payload)}


def tag_normalisation(tag):
    """(mean, std) of a timm pretrained tag such as vit_tiny_patch16_224.augreg_in21k_ft_in1k (nothing is
    downloaded: timm's registry holds them)."""
    cfg = timm.models.get_pretrained_cfg(tag) if "." in tag else None
    if cfg is None:
        raise ConfigError(f"init_cfg={tag!r} is no timm pretrained tag; name one as model.tag, e.g. "
                          "vit_tiny_patch16_224.augreg_in21k_ft_in1k (`timm.list_pretrained('vit_tiny*')` lists them)")
    return tuple(cfg.mean), tuple(cfg.std)


def normalisation(model):
    """The mean/std `model`'s data pipeline uses (its pretrained_cfg, as timm resolves a data config)."""
    return list(model.pretrained_cfg["mean"]), list(model.pretrained_cfg["std"])


def set_normalisation(model, mean, std, source):
    """Give `model` the input mean/std its weights need (timm's data config, and so every transform, reads them
    from its pretrained_cfg); returns the record for config and summary."""
    model.pretrained_cfg = {**model.pretrained_cfg, "mean": tuple(mean), "std": tuple(std)}
    return {"mean": list(mean), "std": list(std), "source": source}


def init_normalisation(model, path, tag=None, warn=print, recorded=None):
    """Set the normalisation the weights at `path` need on `model`; returns {mean, std, source}.

    The file's own record decides (a vitbench run's `recorded` normalisation, or the pretrained_cfg in a
    .safetensors file's metadata), else the timm tag the user names; both, when they disagree, are refused: the
    wrong mean/std costs a pretrained ViT about 10 points top-1. A file that states none keeps the model's
    default, with a warning and the record saying so.
    """
    stated = ((tuple(recorded["mean"]), tuple(recorded["std"])) if recorded else
              stated_normalisation(file_pretrained_cfg(path), f"{path}'s metadata pretrained_cfg"))
    named = tag_normalisation(tag) if tag else None
    if stated and named and not all(abs(a - b) < 1e-6 for a, b in zip(sum(stated, ()), sum(named, ()))):
        raise ConfigError(f"init_cfg={tag} normalises with mean {named[0]}, std {named[1]}, but {path} states mean "
                          f"{stated[0]}, std {stated[1]} in its pretrained_cfg; drop init_cfg or name the tag of "
                          "these weights")
    if stated:
        return set_normalisation(model, *stated, f"the record of the run that wrote {path}" if recorded else
                                 f"pretrained_cfg in {path}")
    if named:
        return set_normalisation(model, *named, f"timm tag {tag}")
    mean, std = normalisation(model)
    warn(f"warning: {path} does not state its normalisation (no pretrained_cfg in safetensors metadata); using the "
         f"model's mean {mean}, std {std}; pass init_cfg=<timm tag> if the weights were trained with another")
    return set_normalisation(model, mean, std, "model default (the init file states none)")
