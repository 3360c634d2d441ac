"""What the pytest-benchmark suite runs at each size, and how each benchmark is described.

- named: every registered model, inference and a training step;
- sweep: the cost sweep's depth x heads x patch grid over the transformer families;
- baselines: what a user would pick instead (timm's DeiT-Ti/S and ResNet-50), timed the same way;
- pairs: ours beside a baseline, timed interleaved round by round (the ratio is the result):
  the reference implementation of the same config (timm's ViT, the reference-style T2T-ViT),
  the ViT with the same backbone (efficiency per MAC), and timm's DeiT-Ti.

In every group pytest-benchmark times one call of our model on one batch, so its "OPS" is batches per
second (images per second = OPS x batch size, in each benchmark's extra_info).
"""
import statistics
from dataclasses import dataclass, field

import torch
from timm.models.vision_transformer import VisionTransformer as TimmViT

import models
from bench import factory
from bench.cost.build import dropout_rates, input_size
from bench.cost.flops import analytic_macs, any_model_macs, count_params
from bench.cost.profile import pass_steps
from bench.cost.sweep import FAMILY_BASES, SweepSpec, configurations
from bench.cost.timing import TimingSetup, make_step, timed_call
from bench.reference_t2t import RefT2TViT

TIMM_BASELINES = ("deit_tiny_patch16_224", "deit_small_patch16_224", "resnet50")


@dataclass(frozen=True)
class Case:
    """A model to build: a registered name (ours or timm's) plus overrides."""

    name: str
    overrides: dict = field(default_factory=dict)

    @property
    def id(self):
        extra = ",".join(f"{k}={v}" for k, v in self.overrides.items())
        return f"{self.name}[{extra}]" if extra else self.name

    def build(self):
        return factory.create(self.name, self.overrides)


def build_reference(ours):
    """The same config as `ours` built by timm (ViT) or the reference-style code (T2T-ViT)."""
    config = ours.config
    common = dict(embed_dim=ours.embed_dim, depth=len(ours.blocks), num_heads=ours.blocks[0].attn.num_heads,
                  mlp_ratio=config["mlp_ratio"], num_classes=ours.num_classes)
    if config["tokenizer"] == "patch":
        baseline = TimmViT(img_size=ours.img_size, patch_size=config["patch_size"], qkv_bias=config["qkv_bias"],
                           **common)
    else:
        baseline = RefT2TViT(img_size=ours.img_size[0], tokens_type=config["t2t_block"], **common)
    baseline.pretrained_cfg, baseline.num_classes = ours.pretrained_cfg, ours.num_classes
    baseline.model_name = f"reference {ours.model_name}"
    return baseline


@dataclass(frozen=True)
class Pair:
    """Ours beside a baseline: another Case, or (None) the reference implementation of ours' config."""

    ours: Case
    baseline: Case | None = None

    @property
    def id(self):
        return f"{self.ours.id} vs {self.baseline.id if self.baseline else 'reference'}"

    def build(self):
        ours = self.ours.build()
        return ours, (self.baseline.build() if self.baseline else build_reference(ours))


def same_backbone_vit(t2t_name, **overrides):
    """The ViT whose backbone is `t2t_name`'s: the T2T paper's ViT (no qkv bias, sinusoid table) at its sizes."""
    config = models.resolve_config(t2t_name, **overrides)
    keys = ("embed_dim", "depth", "num_heads", "mlp_ratio", "img_size", "num_classes", "qkv_bias", "pos_embed")
    return Case("vit_s16_t2t_paper", {**{k: config[k] for k in keys if k in config}, **overrides})


def sweep_cases(depths, heads, patch_sizes, img_size, embed_dim):
    """The cost sweep's depth x heads (x patch for ViT) grid over every transformer family."""
    spec = SweepSpec(families=list(FAMILY_BASES), depth=depths, num_heads=heads, patch_size=patch_sizes,
                     img_size=[img_size], embed_dim=[embed_dim])
    return [Case(name, overrides) for _, name, overrides in configurations(spec)]


def pairs(img_size, shrink=None):
    """Reference pairs for the 224 px models, same-backbone and DeiT-Ti pairs for T2T-ViT-7 / -14 and the
    CIFAR models. `shrink` (e.g. depth 1, width 64) makes every model tiny for the smoke size."""
    shrink = shrink or {}
    sized = {"img_size": img_size, **shrink}
    reference = [Pair(Case(name, sized)) for name in
                 ("vb_vit_small_patch16_224", "vb_vit_base_patch16_224", "t2t_vit_7", "t2t_vit_14", "t2t_vit_t_14")]
    same_backbone = [Pair(Case(name, sized), same_backbone_vit(name, **sized)) for name in ("t2t_vit_7", "t2t_vit_14")]
    cifar = [Pair(Case(name, shrink), Case("vit_lite_7_4", shrink))
             for name in ("t2t_vit_lite_7_4", "t2t_vit_t_lite_7_4")]
    deit = [Pair(Case("t2t_vit_7", sized), Case("deit_tiny_patch16_224", sized))]
    return reference + same_backbone + cifar + deit


SMOKE = {"depth": 1, "embed_dim": 64, "num_heads": 2}


def smoke_case(name):
    """`name` at 32 px and SMOKE's size; a model with patches takes 8 x 8 ones (16 would leave 4 tokens)."""
    patches = {"patch_size": 8} if "patch_size" in models.MODEL_CONFIGS[name] else {}
    return Case(name, {"img_size": 32, **SMOKE, **patches})
SIZES = {
    "smoke": {
        "named_case": [smoke_case(name) for name in ("t2t_vit_7", "t2t_vit_t_14", "vb_vit_tiny_patch16_224")],
        "sweep_case": sweep_cases([1, 2], [2, 4], [8, 16], 32, 64),
        "baseline_case": [Case("deit_tiny_patch16_224", {"img_size": 32, **SMOKE}), Case("resnet50", {"img_size": 32})],
        "pair_case": pairs(32, SMOKE),
        "batch_size": 2, "warmup": 0, "rounds": 1, "pair_batch_size": 2, "pair_rounds": 1,
    },
    "default": {
        "named_case": [Case(name) for name in models.list_models()],
        "sweep_case": sweep_cases([4, 8, 12], [6, 12], [16, 32], models.DEFAULT_IMG_SIZE, 384),
        "baseline_case": [Case(name) for name in TIMM_BASELINES],
        "pair_case": pairs(models.DEFAULT_IMG_SIZE),
        "batch_size": 1, "warmup": 1, "rounds": 3, "pair_batch_size": 8, "pair_rounds": 7,
    },
    "full": {
        "named_case": [Case(name) for name in models.list_models()]
        + [Case(name, {"img_size": 384}) for name in ("t2t_vit_14", "vb_vit_base_patch16_224")],
        "sweep_case": sweep_cases([4, 8, 12, 16, 24], [4, 6, 8, 12, 16], [8, 16, 32], models.DEFAULT_IMG_SIZE, 384),
        "baseline_case": [Case(name) for name in TIMM_BASELINES],
        "pair_case": pairs(models.DEFAULT_IMG_SIZE) + pairs(384),
        "batch_size": 32, "warmup": 3, "rounds": 10, "pair_batch_size": 32, "pair_rounds": 20,
    },
}


def model_macs(model):
    """MACs per image: by formula for ours, by fvcore (fused attention counted) for any other model."""
    if isinstance(model, models.VisionTransformer):
        return analytic_macs(model)["total"]
    return any_model_macs(model)


def benchmark_info(model, timing: TimingSetup, mode):
    """The extra_info of one benchmark: enough to read the JSON without the code."""
    ours = isinstance(model, models.VisionTransformer)
    config = {k: v for k, v in model.config.items() if k != "t2t_stages"} if ours else {}
    return {
        "model": model.model_name,
        "config": config,
        "family": models.family_of(model.config) if ours else "timm",
        "params": count_params(model),
        "params_trainable": count_params(model, trainable_only=True),
        "macs": model_macs(model),
        "img_size": list(input_size(model)[1:]),
        "batch_size": timing.batch_size,
        "tokens": model.tokenizer.num_tokens + 1 if ours else None,
        "device": timing.device,
        "dtype": timing.dtype,
        "compile": timing.compile,
        "allocator": timing.allocator,
        "dropout": dropout_rates(model),  # in effect in train mode only
        "mode": mode,
        "threads": torch.get_num_threads(),
    }


def compiled_step(model, timing, mode):
    """(step, device, compile seconds or None): with compile, the first call (which compiles) is timed apart."""
    step, device = make_step(model, timing, mode)
    compile_s = timed_call(step, device) if timing.compile else None
    return step, device, compile_s


def time_pair(benchmark, timing, pair, mode):
    """Time ours against its baseline in the same rounds; pytest-benchmark's timed call is ours alone.

    Each round's `setup` (untimed by pytest-benchmark) times the baseline and our tokenizer alone, alternating
    their order, then the timed call runs our model: so the benchmark's statistics, `--benchmark-compare` and
    `--benchmark-histogram` describe our model, and the ratios (medians of per-round ratios, a machine slowing
    down mid-run slows both sides of a round alike) go to extra_info.
    """
    ours, baseline = pair.build()
    (ours_step, device, ours_compile), (base_step, _, base_compile) = (
        compiled_step(ours, timing, mode), compiled_step(baseline, timing, mode))
    others = {"baseline": base_step}
    if not timing.compile:  # ours' tokenizer alone too: what bounds any front-end speed-up
        others["front"] = pass_steps(ours, timing, mode)[1]
    seconds = []

    def setup():
        order = list(others) if len(seconds) % 2 == 0 else list(others)[::-1]
        seconds.append({role: timed_call(others[role], device) for role in order})

    def ours_alone():
        seconds[-1]["ours"] = timed_call(ours_step, device)

    benchmark.group = f"pairs: {mode}"
    benchmark.pedantic(ours_alone, setup=setup, rounds=timing.repeats, warmup_rounds=timing.warmup, iterations=1)
    timed = seconds[timing.warmup:]
    speedup = statistics.median(r["baseline"] / r["ours"] for r in timed)
    info, base_info = benchmark_info(ours, timing, mode), benchmark_info(baseline, timing, mode)
    benchmark.extra_info.update(
        info, pair=pair.id, baseline=base_info["model"], baseline_macs=base_info["macs"],
        baseline_params=base_info["params"], baseline_dropout=base_info["dropout"], speedup=speedup,
        mac_efficiency=speedup * info["macs"] / base_info["macs"],
        ours_median_s=statistics.median(r["ours"] for r in timed),
        baseline_median_s=statistics.median(r["baseline"] for r in timed),
        round_seconds=timed, compile_s=ours_compile, baseline_compile_s=base_compile, timed_call="ours alone",
    )
    if "front" in others:
        benchmark.extra_info.update(
            front_share=statistics.median(r["front"] / r["ours"] for r in timed),
            speedup_bound=statistics.median(r["baseline"] / (r["ours"] - r["front"]) for r in timed),
        )
