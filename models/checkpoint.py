"""Save our checkpoints and load three layouts into our models, proven by equivalence tests.

A file is read once (`open_checkpoint`) into a `LoadedCheckpoint` that knows what it holds (its weights, the
classes and normalisation a vitbench run recorded, its stored config and metadata) and is then applied to a model
(`LoadedCheckpoint.load_into`; `load_checkpoint` does both). Layouts understood by it and by
`timm_pretrained_filter` (timm's `create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=...))`):
- ours (`save_checkpoint`): keys as in `VisionTransformer`, plus the model's name and config;
- the reference T2T-ViT `.pth.tar` (`state_dict` / `state_dict_ema`, `tokens_to_token.*` keys);
- a timm `VisionTransformer` state dict (`patch_embed.proj.weight` as a (D, C, P, P) conv).
Any other model (a timm CNN) takes its own state dict, its classifier fresh for another class count.
"""
import argparse
import json
import logging
import math
import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import safetensors.torch
import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import nn

from .atomic import atomic_write
from .backbone import VisionTransformer, build_model, resample_pos_embed
from .errors import CheckpointError, ConfigError, short_list
from .settings import check_settings

log = logging.getLogger(__name__)

STATE_DICT_KEYS = ("state_dict", "model", "module")  # where training scripts nest the weights
# Harmless types training scripts save beside the weights, rebuilt without running their code: timm's train.py
# (and the reference T2T-ViT release, saved by it) keeps its command line as an argparse.Namespace under "args".
SAFE_GLOBALS = [argparse.Namespace]
FOREIGN_FORMATS = {  # weight files people have that are no PyTorch checkpoint, by suffix: what they are
    ".npz": "a NumPy archive (the original JAX/Flax ViT and DeiT releases)",
    ".h5": "a Keras/HDF5 file", ".onnx": "an ONNX graph", ".msgpack": "a Flax msgpack file",
    ".gguf": "a GGUF file",
}


def save_checkpoint(model: nn.Module, path: str | Path, **extra) -> Path:
    """Write the weights, name and config of `model` (plus `extra`) atomically."""
    payload = {
        "model": getattr(model, "model_name", None),
        "config": getattr(model, "config", None),
        "state_dict": model.state_dict(),
        **extra,
    }
    return atomic_write(path, lambda f: torch.save(payload, f))


def read_checkpoint(path):
    """What checkpoint `path` holds (torch.load with weights_only=True, or a .safetensors file's tensors), every
    failure turned into a one-line CheckpointError."""
    return read_file(path)[0]


def read_file(path):
    """(what the file holds, its safetensors metadata or None): the one read of a checkpoint file."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file; pass the file, e.g. {path / 'best.pth'}")
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}; check the path")
    if not os.access(path, os.R_OK):
        raise CheckpointError(f"cannot read {path} (permission denied); check its permissions")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes); the file was not written completely")
    if path.suffix == ".safetensors":  # Hugging Face / timm's safe format: tensors only, no pickle
        try:
            with safetensors.safe_open(path, "pt", device="cpu") as f:
                return {key: f.get_tensor(key) for key in f.keys()}, f.metadata()
        except Exception as e:  # safetensors raises its own SafetensorError for a damaged header
            raise CheckpointError(f"{path} is not a readable safetensors file ({first_line(e)})") from None
    if foreign := FOREIGN_FORMATS.get(path.suffix.lower()):
        raise CheckpointError(f"{path} is {foreign}, not a PyTorch checkpoint; load it in timm "
                              "(`timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=...))`) and "
                              "save its state_dict as .pth or .safetensors")
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True), None
    except pickle.UnpicklingError as e:
        # only a pickle that names a global to call is one that runs code; other bytes are just not a checkpoint
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        if found:
            raise CheckpointError(
                f"checkpoint {path} needs `{found[1]}` to be rebuilt, which runs code on load (weights_only=True "
                "refuses it); re-save it as a plain state dict from a trusted environment"
            ) from None
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or corrupt); check the file") from None
    except OSError as e:  # a read that failed (an I/O error), not a damaged file
        raise CheckpointError(f"cannot read {path} ({e.strerror or first_line(e)}); check the disk or copy the file "
                              "again") from None
    except Exception as e:  # torch raises RuntimeError, EOFError, KeyError... for damaged files
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or corrupt: {first_line(e)})") from None


def file_pretrained_cfg(path):
    """The `pretrained_cfg` (timm's field names: mean, std, input_size, ...) a .safetensors file carries as JSON
    in its metadata, read from the header alone; None for any other file or one without it."""
    path = Path(path)
    if path.suffix != ".safetensors" or not path.is_file():
        return None
    try:
        with safetensors.safe_open(path, "pt") as f:
            metadata = f.metadata()
    except Exception as e:  # SafetensorError for a damaged header
        raise CheckpointError(f"{path} is not a readable safetensors file ({first_line(e)})") from None
    return metadata_pretrained_cfg(metadata, path)


def metadata_pretrained_cfg(metadata, path):
    """The `pretrained_cfg` JSON object in a safetensors file's `metadata`, None where it has none."""
    text = (metadata or {}).get("pretrained_cfg")
    try:
        cfg = None if text is None else json.loads(text)
    except ValueError:
        cfg = text
    if cfg is not None and not isinstance(cfg, dict):
        raise CheckpointError(f"{path}'s metadata pretrained_cfg is not a JSON object; rewrite it with timm's field "
                              "names, e.g. {\"mean\": [0.5, 0.5, 0.5], \"std\": [0.5, 0.5, 0.5]}")
    return cfg


def stated_normalisation(cfg, source):
    """(mean, std) as tuples from a pretrained_cfg that states them, None if it states neither."""
    if not cfg or ("mean" not in cfg and "std" not in cfg):
        return None
    mean, std = cfg.get("mean"), cfg.get("std")
    if not all(isinstance(v, (list, tuple)) and len(v) == 3 and all(isinstance(x, (int, float)) for x in v)
               for v in (mean, std)) or min(std) <= 0:
        raise CheckpointError(f"{source} states mean={mean!r}, std={std!r}; both need 3 numbers (std > 0), e.g. "
                              "mean [0.5, 0.5, 0.5] and std [0.5, 0.5, 0.5]")
    return tuple(float(x) for x in mean), tuple(float(x) for x in std)


def first_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def extract_state_dict(payload, path, use_ema=False):
    """The tensor dict inside a checkpoint payload, `module.` prefixes stripped."""
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path} holds a {type(payload).__name__}, not a state dict; save model.state_dict()")
    if use_ema and "state_dict_ema" not in payload:
        raise CheckpointError(f"{path} has no state_dict_ema; load it with use_ema=False")
    only_ema = "state_dict_ema" in payload and not any(isinstance(payload.get(key), dict) for key in STATE_DICT_KEYS)
    if only_ema and not use_ema:
        log.warning("%s holds only EMA weights (state_dict_ema); loading those", path)
    state_dict = payload["state_dict_ema"] if use_ema or only_ema else payload
    for key in STATE_DICT_KEYS:
        if isinstance(state_dict.get(key), dict):
            state_dict = state_dict[key]
            break
    if not state_dict or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise CheckpointError(f"{path} has no tensor state dict under {list(STATE_DICT_KEYS)} or at its top level")
    return {k.removeprefix("module."): v for k, v in state_dict.items()}


def convert_reference_t2t(state_dict):
    """tokens_to_token.attention{i} -> tokenizer.blocks.{i-1}; the Performer's mlp.0/2 -> mlp.fc1/fc2."""
    converted = {}
    for key, value in state_dict.items():
        key = re.sub(r"^tokens_to_token\.attention(\d+)\.", lambda m: f"tokenizer.blocks.{int(m[1]) - 1}.", key)
        key = key.replace("tokens_to_token.project.", "tokenizer.project.")
        key = re.sub(r"^(tokenizer\.blocks\.\d+\.mlp)\.0\.", r"\1.fc1.", key)
        key = re.sub(r"^(tokenizer\.blocks\.\d+\.mlp)\.2\.", r"\1.fc2.", key)
        converted[key] = value
    return converted


def convert_timm_vit(state_dict):
    """timm's conv patch embedding (D, C, P, P) -> our Linear (D, C*P*P); other keys match."""
    converted = dict(state_dict)
    weight = converted.pop("patch_embed.proj.weight")
    converted["tokenizer.proj.weight"] = weight.reshape(weight.shape[0], -1)
    if "patch_embed.proj.bias" in converted:
        converted["tokenizer.proj.bias"] = converted.pop("patch_embed.proj.bias")
    return converted


def detect_layout(state_dict):
    if any(k.startswith("tokens_to_token.") for k in state_dict):
        return "reference-t2t"
    if "patch_embed.proj.weight" in state_dict:
        return "timm-vit"
    return "vitbench"


def stored_grid(config, num_tokens):
    """The token grid of a checkpoint's stored model config, checked against its `num_tokens`-token position table.
    The file is untrusted: every setting is checked by the models' own table first (a 1e9 image side would allocate
    a huge position table) and the geometry is built on the meta device (no memory)."""
    try:
        check_settings(config)
    except ConfigError as e:
        raise CheckpointError(f"the checkpoint's stored config has a bad setting ({e}): the file is damaged or was "
                              "not written by vitbench; re-save it from its model") from None
    try:
        with torch.device("meta"):
            grid = build_model(**{**config, "depth": 1, "num_classes": 0}).tokenizer.grid_size
    except Exception as e:  # any config the builder refuses (an unknown key, a geometry its tokenizer cannot make)
        raise CheckpointError(f"the checkpoint's stored config builds no model ({first_line(e)}); re-save it from "
                              "its model") from None
    if grid[0] * grid[1] != num_tokens:
        raise CheckpointError(f"the checkpoint's stored config (img_size={config['img_size']!r}) makes a "
                              f"{grid[0]}x{grid[1]} token grid but its position table holds {num_tokens} tokens: its "
                              "config disagrees with its tensors; re-save it from the model that made them")
    return grid


def source_grid(payload, num_tokens):
    """The token grid the checkpoint's position table was made for."""
    config = payload.get("config") if isinstance(payload, dict) else None
    if isinstance(config, dict) and "img_size" in config and "embed_dim" in config:
        return stored_grid(config, num_tokens)
    side = math.isqrt(num_tokens)
    if side * side != num_tokens:
        raise CheckpointError(
            f"cannot tell the token grid of a {num_tokens}-token position table; save with its config"
        )
    return (side, side)


HEAD_KEYS = ("head.weight", "head.bias")
CONVERTERS = {"reference-t2t": convert_reference_t2t, "timm-vit": convert_timm_vit}
# The backbone LayerNorm eps each source was trained with: weights reproduce their logits only with it (a 1e-5 vs
# 1e-6 mismatch moves real ViT-Ti logits by ~5e-4). Other settings (qkv bias, norm placement) show in the keys.
SOURCE_NORM_EPS = {"reference-t2t": 1e-5, "timm-vit": 1e-6}
OLD_NORM_EPS = 1e-5  # the eps of every vitbench model saved before configs carried `norm_eps`


def source_norm_eps(layout, payload=None):
    """The LayerNorm eps the weights were trained with, None where unknown (a bare vitbench state dict)."""
    config = payload.get("config") if isinstance(payload, dict) else None
    if layout == "vitbench":
        return config.get("norm_eps", OLD_NORM_EPS) if isinstance(config, dict) else None
    return SOURCE_NORM_EPS.get(layout)


def settings_misfit(model, layout, payload=None):
    """Message parts for settings the weights' source had and `model` lacks, which no key or shape reveals."""
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)][-1:]  # the backbone's last norm
    eps = source_norm_eps(layout, payload)
    if eps is None or not norms or math.isclose(norms[0].eps, eps):
        return []
    return [f"its LayerNorm eps is {eps:g}, the model's {norms[0].eps:g}: create the model with norm_eps={eps:g}"]


def to_our_layout(state_dict, model, payload=None):
    """`state_dict` in our keys with its position table resized to `model`'s grid; (state_dict, layout, resized)."""
    layout = detect_layout(state_dict)
    state_dict = CONVERTERS.get(layout, dict)(state_dict)
    own, table = model.pos_embed, state_dict.get("pos_embed")
    resized = table is not None and table.shape != own.shape and table.shape[-1] == own.shape[-1]
    if resized:
        grid = source_grid(payload, table.shape[1] - 1)
        state_dict["pos_embed"] = resample_pos_embed(table.float(), model.tokenizer.grid_size, grid)
    return state_dict, layout, resized


def misfit(state_dict, own, new_head, strict=True):
    """What keeps `state_dict` from loading into a model whose state dict is `own`, as message parts."""
    mismatched = [f"{k} {tuple(v.shape)} vs model {tuple(own[k].shape)}"
                  for k, v in state_dict.items() if k in own and v.shape != own[k].shape]
    missing = set(own) - set(state_dict) - (set(HEAD_KEYS) if new_head else set())
    unexpected = set(state_dict) - set(own)
    if not (mismatched or (strict and (missing or unexpected))):
        return []
    parts = [f"shape mismatch: {short_list(mismatched, limit=6)}"] if mismatched else []
    parts += [f"missing keys: {short_list(missing, limit=6)}"] if missing else []
    return parts + ([f"unexpected keys: {short_list(unexpected, limit=6)}"] if unexpected else [])


def use_reference_scale(model):
    model.set_attention_scale(model.embed_dim**-0.5)
    log.info("set backbone attention scale to embed_dim ** -0.5 as the released T2T-ViT weights were trained")


def fresh_head(state_dict, own, head_keys):
    """`state_dict` without the classifier `head_keys` where they do not fit the model's (`own`): another class
    count starts at its init. (state_dict, whether the head is fresh)."""
    head_keys = [key for key in head_keys if key in state_dict]
    if head_keys and any(own.get(k) is None or own[k].shape != state_dict[k].shape for k in head_keys):
        return {k: v for k, v in state_dict.items() if k not in head_keys}, True
    return state_dict, False


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A checkpoint file read once (`open_checkpoint`): what it holds and says of itself, applied by `load_into`."""

    path: Path
    payload: object  # what the file holds: a training script's dict (weights, a vitbench run's record...) or tensors
    metadata: dict | None = None  # a .safetensors file's header metadata (str -> str)

    def state_dict(self, use_ema=False):
        """Its weights in the file's own keys, `module.` prefixes stripped; the EMA ones with `use_ema`."""
        return extract_state_dict(self.payload, self.path, use_ema)

    @property
    def record(self):
        """The record a vitbench run saves with its weights (`build`: model, overrides, img_size, classes,
        normalisation, eval transform); None for any other file."""
        build = self.payload.get("build") if isinstance(self.payload, dict) else None
        return build if isinstance(build, dict) else None

    @property
    def classes(self):
        """The classes a vitbench run trained on; None for any other checkpoint."""
        return (self.record or {}).get("classes")

    @property
    def normalisation(self):
        """The input mean/std a vitbench run trained with, and their source; None for any other checkpoint."""
        return (self.record or {}).get("normalisation")

    @property
    def config(self):
        """The model config `save_checkpoint` stored; None where the file has none."""
        config = self.payload.get("config") if isinstance(self.payload, dict) else None
        return config if isinstance(config, dict) else None

    @property
    def pretrained_cfg(self):
        """The `pretrained_cfg` (timm's field names) in a .safetensors file's metadata; None where there is none."""
        return metadata_pretrained_cfg(self.metadata, self.path)

    @property
    def saved_by(self):
        """Which program wrote the file, as far as its top-level keys tell."""
        payload = self.payload
        if not isinstance(payload, dict):
            return "unknown"
        if "build" in payload:
            return "vitbench"
        if "args" in payload and "arch" in payload:
            return f"timm train.py ({payload['arch']}, epoch {payload.get('epoch', '?')})"
        return "a state dict" if all(isinstance(v, torch.Tensor) for v in payload.values()) else "a training script"

    def saved_as(self):
        name = self.payload.get("model") if isinstance(self.payload, dict) else None
        return f" (saved from {name})" if isinstance(name, str) else ""

    def head_classes(self, model):
        """The class count of its classifier as `model` names it (`head` for ours, `fc` for a ResNet...); None if
        it has none."""
        state_dict = self.state_dict()
        keys = [key for key in classifier_keys(model, state_dict) if key.endswith("weight")]
        return state_dict[keys[0]].shape[0] if keys else None

    def load_into(self, model, use_ema=False, strict=True, reference_qk_scale=True):
        """Its weights into `model`, adapting positions and head; returns what was done. A head for another class
        count is left at its fresh init. Ours take the three layouts (`load_vit`), any other model its own keys."""
        if isinstance(model, VisionTransformer):
            return self.load_vit(model, use_ema, strict, reference_qk_scale)
        own = model.state_dict()
        state_dict, new_head = fresh_head(self.state_dict(use_ema), own, classifier_keys(model, own))
        mismatched = [k for k, v in state_dict.items() if k in own and v.shape != own[k].shape]
        missing = set(own) - set(state_dict) - (set(classifier_keys(model, own)) if new_head else set())
        unexpected = set(state_dict) - set(own)
        if mismatched or missing or unexpected:
            raise CheckpointError(
                f"{self.path} does not fit {type(model).__name__}: mismatched {short_list(mismatched, limit=6)}, "
                f"missing {short_list(missing, limit=6)}, unexpected {short_list(unexpected, limit=6)}; "
                "create the model this checkpoint was trained as"
            )
        model.load_state_dict(state_dict, strict=False)
        return {"layout": "timm", "new_head": new_head, "trained_on": self.classes}

    def load_vit(self, model, use_ema, strict, reference_qk_scale):
        """The position table is interpolated when the image size differs. Reference T2T-ViT weights were trained
        with the backbone scale embed_dim ** -0.5, which is set on the model when `reference_qk_scale`."""
        state_dict, layout, resized = to_our_layout(self.state_dict(use_ema), model, self.payload)
        own = model.state_dict()
        state_dict, new_head = fresh_head(state_dict, own, HEAD_KEYS)
        report = {"layout": layout, "saved_by": self.saved_by, "trained_on": self.classes, "use_ema": use_ema,
                  "resized_pos_embed": resized, "new_head": new_head, "normalisation": self.normalisation}
        if parts := misfit(state_dict, own, new_head, strict) + settings_misfit(model, layout, self.payload):
            raise CheckpointError(
                f"{self.path} ({layout} layout) does not fit {getattr(model, 'model_name', type(model).__name__)}: "
                + "; ".join(parts)
                + f"; create the model this checkpoint was trained as{self.saved_as()}"
            )
        model.load_state_dict(state_dict, strict=False)
        if layout == "reference-t2t" and reference_qk_scale:
            use_reference_scale(model)
        if new_head:
            log.info("%s: head left at random init for %d classes", self.path, model.num_classes)
        return report


def classifier_keys(model, state_dict):
    """The state-dict keys of `model`'s classifier (`head.*` for ours, `fc.*` for a ResNet...)."""
    prefix = model.pretrained_cfg.get("classifier", "head") if hasattr(model, "pretrained_cfg") else "head"
    return [key for key in state_dict if key.startswith(prefix + ".")]


def open_checkpoint(path) -> LoadedCheckpoint:
    """Checkpoint `path` read once (`read_file`: every failure a one-line CheckpointError)."""
    return LoadedCheckpoint(Path(path), *read_file(path))


def load_checkpoint(model: nn.Module, path: str | Path, use_ema: bool = False, strict: bool = True,
                    reference_qk_scale: bool = True) -> dict:
    """Load a local checkpoint into `model` (`LoadedCheckpoint.load_into`); returns what was done."""
    return open_checkpoint(path).load_into(model, use_ema, strict, reference_qk_scale)


def timm_pretrained_filter(state_dict, model):
    """timm's `pretrained_filter_fn` for our models: a reference T2T-ViT, timm ViT or our state dict (as
    timm read it from `pretrained_cfg["file"]`) in our layout, positions resized, checked to fit.

    timm drops the head itself when the model's class count differs from the pretrained_cfg's and then loads
    non-strictly, so every other misfit is refused here.
    """
    cfg = model.pretrained_cfg
    source = cfg.get("file") or cfg.get("url") or "the pretrained state dict"
    if not all(isinstance(v, torch.Tensor) for v in state_dict.values()):  # a whole release file, read from a URL
        state_dict = extract_state_dict(state_dict, source, use_ema="state_dict_ema" in state_dict)  # as timm's file
    state_dict, layout, _ = to_our_layout(state_dict, model)
    new_head = model.num_classes != cfg.get("num_classes")
    if new_head:
        state_dict = {k: v for k, v in state_dict.items() if k not in HEAD_KEYS}
    own = model.state_dict()
    if parts := misfit(state_dict, own, new_head) + settings_misfit(model, layout):
        head, own_head = state_dict.get("head.weight"), own.get("head.weight")
        hint = (f"its head has {head.shape[0]} classes: pass pretrained_cfg_overlay=dict(file=..., "
                f"num_classes={head.shape[0]})" if head is not None and own_head is not None
                and head.shape != own_head.shape else "create the model this checkpoint was trained as")
        raise CheckpointError(f"{source} ({layout} layout) does not fit {cfg.get('architecture')}: "
                              + "; ".join(parts) + f"; {hint}")
    if layout == "reference-t2t":
        use_reference_scale(model)
    take_file_normalisation(model, cfg.get("file"))
    return state_dict


def take_file_normalisation(model, path):
    """The file's own mean/std (its safetensors metadata) on `model.pretrained_cfg`, where timm's data config reads
    them: an in21k ViT needs 0.5/0.5, not the model's ImageNet default. An overlay naming a third one is refused."""
    stated = stated_normalisation(file_pretrained_cfg(path), f"{path}'s metadata") if path else None
    if stated is None:
        return
    cfg = model.pretrained_cfg
    given = (tuple(cfg["mean"]), tuple(cfg["std"]))
    if given != stated and given != (tuple(IMAGENET_DEFAULT_MEAN), tuple(IMAGENET_DEFAULT_STD)):
        raise CheckpointError(f"pretrained_cfg_overlay normalises with mean {given[0]}, std {given[1]}, but {path} "
                              f"states mean {stated[0]}, std {stated[1]}; drop mean/std from the overlay")
    model.pretrained_cfg = model.default_cfg = {**cfg, "mean": stated[0], "std": stated[1]}
