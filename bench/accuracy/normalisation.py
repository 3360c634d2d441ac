"""The input mean/std a model's weights need, set on its pretrained_cfg, where timm's data config (and so every
transform) reads them: the model's default, a vitbench run's record, a checkpoint's metadata or a timm tag.
"""
import timm

from models.checkpoint import stated_normalisation
from models.errors import ConfigError


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


def init_normalisation(model, checkpoint, tag=None, warn=print, recorded=None):
    """Set the normalisation the weights of `checkpoint` (a models.checkpoint.LoadedCheckpoint) need on `model`;
    returns {mean, std, source}.

    The file's own record decides (a vitbench run's `recorded` normalisation, or the pretrained_cfg in a
    .safetensors file's metadata), else the timm tag the user names; both, when they disagree, are refused: the
    wrong mean/std costs a pretrained ViT about 10 points top-1. A file that states none keeps the model's
    default, with a warning and the record saying so.
    """
    path = checkpoint.path
    stated = ((tuple(recorded["mean"]), tuple(recorded["std"])) if recorded else
              stated_normalisation(checkpoint.pretrained_cfg, f"{path}'s metadata pretrained_cfg"))
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
