"""What the pytest-benchmark suite runs at each size, and how each benchmark is described."""
from dataclasses import dataclass, field

import torch
from timm.models.vision_transformer import VisionTransformer as TimmViT

import models
from bench.cost.flops import analytic_macs, count_params
from bench.cost.sweep import FAMILY_BASES, SweepSpec, configurations
from bench.cost.timing import TimingSetup
from bench.reference_t2t import RefT2TViT


@dataclass(frozen=True)
class Case:
    """A model to build: a registered name plus overrides."""

    name: str
    overrides: dict = field(default_factory=dict)

    @property
    def id(self):
        extra = ",".join(f"{k}={v}" for k, v in self.overrides.items())
        return f"{self.name}[{extra}]" if extra else self.name

    def build(self):
        return models.create_model(self.name, **self.overrides)


def build_baseline(ours):
    """The same config as `ours` built by timm (ViT) or the reference-style code (T2T-ViT)."""
    config = ours.config
    common = dict(embed_dim=ours.embed_dim, depth=len(ours.blocks), num_heads=ours.blocks[0].attn.num_heads,
                  mlp_ratio=config["mlp_ratio"], num_classes=ours.num_classes)
    if config["tokenizer"] == "patch":
        baseline = TimmViT(
            img_size=ours.img_size, patch_size=config["patch_size"], qkv_bias=config["qkv_bias"], **common
        )
    else:
        baseline = RefT2TViT(img_size=ours.img_size[0], tokens_type=config["t2t_block"], **common)
    baseline.pretrained_cfg, baseline.num_classes = ours.pretrained_cfg, ours.num_classes
    return baseline


def sweep_cases(depths, heads, patch_sizes, img_size, embed_dim):
    """The cost sweep's depth x heads (x patch for ViT) grid over every transformer family."""
    spec = SweepSpec(
        families=list(FAMILY_BASES),
        depth=depths,
        num_heads=heads,
        patch_size=patch_sizes,
        img_size=[img_size],
        embed_dim=[embed_dim],
    )
    return [Case(name, overrides) for _, name, overrides in configurations(spec)]


def pair_cases(img_size, depth=None):
    """Ours vs a baseline of the same config: timm's ViT, and the reference-style T2T-ViT."""
    shrink = {"depth": depth} if depth else {}
    return [
        Case("vb_vit_small_patch16_224", {"img_size": img_size, **shrink}),
        Case("vb_vit_base_patch16_224", {"img_size": img_size, **shrink}),
        Case("t2t_vit_14", {"img_size": img_size, **shrink}),
        Case("t2t_vit_t_14", {"img_size": img_size, **shrink}),
    ]


SMOKE = {"img_size": 32, "depth": 1, "embed_dim": 64, "num_heads": 2}
SIZES = {
    "smoke": {
        "named_case": [
            Case(name, SMOKE if name.startswith("t2t") else {**SMOKE, "patch_size": 8})
            for name in ("t2t_vit_7", "t2t_vit_t_14", "vb_vit_tiny_patch16_224")
        ],
        "sweep_case": sweep_cases([1, 2], [2, 4], [8, 16], 32, 64),
        "pair_case": pair_cases(32, depth=1),
        "batch_size": 2,
        "warmup": 0,
        "rounds": 1,
        "pair_batch_size": 2,
        "pair_rounds": 1,
    },
    "default": {
        "named_case": [Case(name) for name in models.list_models()],
        "sweep_case": sweep_cases([4, 8, 12], [6, 12], [16, 32], models.DEFAULT_IMG_SIZE, 384),
        "pair_case": pair_cases(models.DEFAULT_IMG_SIZE),
        "batch_size": 1,
        "warmup": 1,
        "rounds": 3,
        "pair_batch_size": 8,
        "pair_rounds": 7,
    },
    "full": {
        "named_case": [Case(name) for name in models.list_models()]
        + [Case(name, {"img_size": 384}) for name in ("t2t_vit_14", "vb_vit_base_patch16_224")],
        "sweep_case": sweep_cases([4, 8, 12, 16, 24], [4, 6, 8, 12, 16], [8, 16, 32], models.DEFAULT_IMG_SIZE, 384),
        "pair_case": pair_cases(models.DEFAULT_IMG_SIZE) + pair_cases(384),
        "batch_size": 32,
        "warmup": 3,
        "rounds": 10,
        "pair_batch_size": 32,
        "pair_rounds": 20,
    },
}


def benchmark_info(model, timing: TimingSetup, mode):
    """The extra_info of one benchmark: enough to read the JSON without the code."""
    return {
        "model": model.model_name,
        "config": {k: v for k, v in model.config.items() if k != "t2t_stages"},
        "family": models.family_of(model.config),
        "params": count_params(model),
        "params_trainable": count_params(model, trainable_only=True),
        "macs": analytic_macs(model)["total"],
        "img_size": list(model.img_size),
        "batch_size": timing.batch_size,
        "tokens": model.tokenizer.num_tokens + 1,
        "device": timing.device,
        "dtype": timing.dtype,
        "mode": mode,
        "threads": torch.get_num_threads(),
    }
