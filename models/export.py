"""Weights out: a vitbench checkpoint as .safetensors in our layout, timm's ViT layout or the reference T2T-ViT's.

The layouts are the inverses of the converters in models/checkpoint.py (proven by round trips in
tests/test_export.py). Each file's safetensors metadata says its layout, our model name and config (JSON), and for
the timm layout the `VisionTransformer` arguments that rebuild it (`timm_model_args`, its LayerNorm eps beside).
"""
import json
import re
from pathlib import Path

import safetensors.torch

from .atomic import atomic_write
from .checkpoint import open_checkpoint
from .errors import CheckpointError, ConfigError

LAYOUTS = ("ours", "timm", "reference")
RUN_CHECKPOINTS = ("best.pth", "last.pth")  # a run folder's model: the one chosen by its selection split, else the last


def run_checkpoint(source):
    """`source` itself if it is a file; for a `vitbench train` run folder, its best.pth (else last.pth)."""
    source = Path(source)
    if source.is_dir():
        found = [source / name for name in RUN_CHECKPOINTS if (source / name).is_file()]
        if not found:
            raise CheckpointError(f"{source} is a folder without {' or '.join(RUN_CHECKPOINTS)}; pass a run folder "
                                  "of `vitbench train` or a checkpoint file")
        return found[0]
    return source


def timm_vit_args(config, num_classes):
    """Arguments of timm's `VisionTransformer` that hold the same model as our patch-tokenizer `config`."""
    if config.get("tokenizer") != "patch":
        raise ConfigError("timm has no T2T-ViT; export a T2T-ViT with --layout reference (or ours)")
    if config.get("qk_scale") is not None:
        raise ConfigError(f"qk_scale={config['qk_scale']} has no timm ViT setting; export with --layout ours")
    return dict(img_size=config["img_size"], patch_size=config["patch_size"], in_chans=config["in_chans"],
                num_classes=num_classes, embed_dim=config["embed_dim"], depth=config["depth"],
                num_heads=config["num_heads"], mlp_ratio=config["mlp_ratio"], qkv_bias=config["qkv_bias"])


def to_timm_vit(state_dict, config):
    """Our Linear patch projection (D, C*P*P) -> timm's conv (D, C, P, P); every other key is timm's already."""
    timm_vit_args(config, 0)  # refuses what timm's ViT cannot hold
    converted = dict(state_dict)
    weight = converted.pop("tokenizer.proj.weight")
    patch = config["patch_size"]
    converted["patch_embed.proj.weight"] = weight.reshape(weight.shape[0], config["in_chans"], patch, patch)
    converted["patch_embed.proj.bias"] = converted.pop("tokenizer.proj.bias")
    return converted


def to_reference_t2t(state_dict, config):
    """tokenizer.blocks.{i} -> tokens_to_token.attention{i+1}, the Performer's mlp.fc1/fc2 -> mlp.0/2."""
    if config.get("tokenizer") != "t2t":
        raise ConfigError("the reference layout is the T2T-ViT's; export a ViT with --layout timm (or ours)")
    converted = {}
    for key, value in state_dict.items():
        key = re.sub(r"^tokenizer\.blocks\.(\d+)\.", lambda m: f"tokens_to_token.attention{int(m[1]) + 1}.", key)
        key = key.replace("tokenizer.project.", "tokens_to_token.project.")
        if config.get("t2t_block", "performer") == "performer":
            key = re.sub(r"^(tokens_to_token\.attention\d+\.mlp)\.fc([12])\.",
                         lambda m: f"{m[1]}.{2 * int(m[2]) - 2}.", key)
        converted[key] = value
    return converted


EXPORTERS = {"ours": lambda state_dict, config: dict(state_dict), "timm": to_timm_vit, "reference": to_reference_t2t}


def export_checkpoint(source, out, layout="ours", use_ema=False):
    """Write the weights of checkpoint (or run folder) `source` to `out` as .safetensors in `layout`; returns what
    was written. Refuses what the layout cannot hold, a checkpoint without our config, and an existing `out`
    (the caller decides about overwriting)."""
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if Path(out).suffix != ".safetensors":
        raise ConfigError(f"{out} must end in .safetensors (the only --format written)")
    path = run_checkpoint(source)
    checkpoint = open_checkpoint(path)
    config = checkpoint.config
    if layout != "ours" and config is None:
        raise CheckpointError(f"{path} has no vitbench model config, so its {layout} layout cannot be told; "
                              "export it with --layout ours, or load it in timm as it is")
    state_dict = checkpoint.state_dict(use_ema)
    tensors = {key: value.contiguous() for key, value in EXPORTERS[layout](state_dict, config or {}).items()}
    metadata = {"format": "pt", "layout": layout, "model": str(checkpoint.payload.get("model") or ""),
                "config": json.dumps(config), "source": path.name, "ema": json.dumps(use_ema)}
    if layout == "timm":
        head = tensors.get("head.weight")
        metadata["timm_model_args"] = json.dumps(timm_vit_args(config, head.shape[0] if head is not None else 0))
        metadata["norm_eps"] = json.dumps(config.get("norm_eps", 1e-5))
    atomic_write(out, lambda f: f.write(safetensors.torch.save(tensors, metadata=metadata)))
    return {"source": str(path), "out": str(out), "layout": layout, "tensors": len(tensors), "model": metadata["model"]}
