"""Named model configs, one factory, and registration with timm.

Every name is a dict of settings over one of two front ends, `tokenizer="patch"` (ViT) or
`tokenizer="t2t"` (Tokens-to-Token, with `t2t_block` "performer" or "transformer"); both share
`VisionTransformer`. `FAMILIES` is the one vocabulary that tables, sweeps, studies and plots use. Any setting can be
overridden: `create_model("t2t_vit_14", depth=10, img_size=(64, 96), t2t_block="transformer")`.

Every name is a full timm model: `timm.create_model(name)` builds it through `build_model_with_cfg` with a
default pretrained cfg (`default_cfgs`), so `pretrained=True, pretrained_cfg_overlay=dict(file=PATH)` loads
a local reference T2T-ViT, timm ViT or vitbench checkpoint, and `features_only=True` gives per-block maps.

Naming: the T2T-ViT names are the reference's (timm has none of them). Our ViT sizes carry a
`vb_` prefix (vb_vit_base_patch16_224, ...) so that registering them never shadows timm's own
`vit_*` models; `vit_s16_t2t_paper` is the ViT-S/16 the T2T-ViT paper compares against.
"""
import difflib
import fnmatch
import inspect
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError
from urllib.parse import urlparse

import timm
import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import (
    build_model_with_cfg,
    generate_default_cfgs,
    get_pretrained_cfg,
    register_model,
    resolve_pretrained_cfg,
)

from .backbone import VisionTransformer, build_model
from .checkpoint import SAFE_GLOBALS, timm_pretrained_filter
from .errors import CheckpointError, ConfigError, UnknownModelError, UnknownOptionError
from .settings import check_settings
from .tokenizers import DEFAULT_IMG_SIZE, REFERENCE_T2T_STAGES


def _t2t(block, embed_dim, depth, num_heads, mlp_ratio, **extra):
    return dict(
        tokenizer="t2t", t2t_block=block, embed_dim=embed_dim, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio,
        **extra,
    )


def _vit(patch_size, embed_dim, depth, num_heads, mlp_ratio=4.0, qkv_bias=True, pos_embed="learn", **extra):
    return dict(
        tokenizer="patch",
        patch_size=patch_size,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        mlp_ratio=mlp_ratio,
        qkv_bias=qkv_bias,
        pos_embed=pos_embed,
        **extra,
    )


TIMM_VIT = dict(norm_eps=1e-6)  # timm's ViT and DeiT; the T2T-ViT reference and Compact Transformers use 1e-5

MODEL_CONFIGS = {
    # T2T-ViT (Yuan et al. 2021): Performer T2T blocks by default, `_t_` = transformer blocks.
    "t2t_vit_7": _t2t("performer", 256, 7, 4, 2.0),
    "t2t_vit_10": _t2t("performer", 256, 10, 4, 2.0),
    "t2t_vit_12": _t2t("performer", 256, 12, 4, 2.0),
    "t2t_vit_14": _t2t("performer", 384, 14, 6, 3.0),
    "t2t_vit_19": _t2t("performer", 448, 19, 7, 3.0),
    "t2t_vit_24": _t2t("performer", 512, 24, 8, 3.0),
    "t2t_vit_t_14": _t2t("transformer", 384, 14, 6, 3.0),
    "t2t_vit_t_19": _t2t("transformer", 448, 19, 7, 3.0),
    "t2t_vit_t_24": _t2t("transformer", 512, 24, 8, 3.0),
    "t2t_vit_14_resnext": _t2t("performer", 384, 14, 32, 3.0),
    "t2t_vit_14_wide": _t2t("performer", 768, 4, 12, 3.0),
    # The T2T paper's ViT-S/16 baseline: T2T code base, so no qkv bias and the sinusoid table.
    "vit_s16_t2t_paper": _vit(16, 768, 8, 8, 3.0, qkv_bias=False, pos_embed="sinusoid"),
    # Our ViT at the ViT / DeiT sizes, with their qkv bias, learned positions and LayerNorm eps (timm-compatible).
    "vb_vit_tiny_patch16_224": _vit(16, 192, 12, 3, **TIMM_VIT),
    "vb_vit_small_patch16_224": _vit(16, 384, 12, 6, **TIMM_VIT),
    "vb_vit_base_patch16_224": _vit(16, 768, 12, 12, **TIMM_VIT),
    "vb_vit_base_patch32_224": _vit(32, 768, 12, 12, **TIMM_VIT),
    "vb_vit_large_patch16_224": _vit(16, 1024, 24, 16, **TIMM_VIT),
}

# 32 px CIFAR models over one backbone. Compact Transformers' ViT-Lite-N/4 (Hassani et al. 2021): N blocks
# of width 256, 4 heads, MLP ratio 2, 4 x 4 patches, no qkv bias, learned positions; 8 x 8 = 64 tokens. The
# T2T counterparts keep that backbone and turn 32 x 32 into the same 8 x 8 tokens with three soft splits
# (two T2T blocks, as the reference has): 32 -> 16 -> 8 -> 8. The `_tiny` siblings (4 blocks of width 64)
# are the CPU study's arms; every arm of a size differs only in its tokenizer.
CIFAR = dict(img_size=32, num_classes=10, qkv_bias=False, pos_embed="learn")
CIFAR_T2T_STAGES = ((3, 2, 1), (3, 2, 1), (3, 1, 1))
CIFAR_BACKBONES = {"lite_7_4": (256, 7, 4, 2.0), "lite_6_4": (256, 6, 4, 2.0), "lite_tiny": (64, 4, 2, 2.0)}
CIFAR_TOKEN_DIM = {"lite_7_4": 64, "lite_6_4": 64, "lite_tiny": 32}
for _size, (_width, _depth, _heads, _ratio) in CIFAR_BACKBONES.items():
    MODEL_CONFIGS[f"vit_{_size}"] = _vit(4, _width, _depth, _heads, _ratio, **CIFAR)  # CIFAR's qkv_bias, pos_embed
    for _block, _name in (("performer", f"t2t_vit_{_size}"), ("transformer", f"t2t_vit_t_{_size}")):
        MODEL_CONFIGS[_name] = _t2t(_block, _width, _depth, _heads, _ratio, t2t_stages=CIFAR_T2T_STAGES,
                                    token_dim=CIFAR_TOKEN_DIM[_size], **CIFAR)

# Names in ../shared/reference/published.csv that are timm's, mapped to ours of the same size.
PUBLISHED_EQUIVALENTS = {
    "vit_base_patch16_224": "vb_vit_base_patch16_224",
    "deit_small_patch16_224": "vb_vit_small_patch16_224",
    "deit_tiny_patch16_224": "vb_vit_tiny_patch16_224",
}


@dataclass(frozen=True)
class Family:
    """A model family: how reports show it (`label`, a matplotlib `colour`) and the settings that make one
    of ours (`tokenizer`, and `t2t_block` where the family is one block kind); a family with no tokenizer
    is not built by vitbench (the timm CNN baselines)."""

    label: str
    colour: str
    tokenizer: str | None = None
    t2t_block: str | None = None

    @property
    def kind(self):
        """The word for the family's front end in a sweep's `tokenizer` column: its block kind where it is one
        (performer, transformer), else its tokenizer (patch); None for a family vitbench does not build."""
        return self.t2t_block or self.tokenizer


# The model families every table, sweep, study and plot speaks of, in the order they are shown.
FAMILY_TABLE = {
    "vit": Family("ViT", "tab:blue", tokenizer="patch"),
    "t2t-performer": Family("T2T-ViT (Performer T2T)", "tab:orange", tokenizer="t2t", t2t_block="performer"),
    "t2t-transformer": Family("T2T-ViT (transformer T2T)", "tab:green", tokenizer="t2t", t2t_block="transformer"),
    "cnn": Family("CNN", "tab:red"),
}
FAMILIES = {name: family.label for name, family in FAMILY_TABLE.items()}  # name -> label, in order
TOKENIZER_OPTIONS = {
    "patch": {"patch_size"},
    "t2t": {"t2t_block", "t2t_stages", "token_dim", "t2t_drop"},
}
COMMON_OPTIONS = {"tokenizer", "img_size", "in_chans", "embed_dim"}
BACKBONE_OPTIONS = set(inspect.signature(VisionTransformer).parameters) - {"tokenizer"}


def family_of(settings: dict) -> str:
    """The `FAMILY_TABLE` name of a model's settings; also reads the `family` key ("vit" | "t2t") of the benchmark
    JSON files committed under results/, written before `tokenizer` existed."""
    tokenizer = settings.get("tokenizer", {"vit": "patch"}.get(settings.get("family"), settings.get("family")))
    block = settings.get("t2t_block", "performer")  # build_model's default
    matches = (name for name, family in FAMILY_TABLE.items()
               if family.tokenizer == tokenizer and family.t2t_block in (None, block))
    return next(matches, "cnn")  # not built by vitbench: a timm baseline


def family_of_model(name, overrides=None):
    """The family of named model `name` with `overrides`; any timm model that is not ours is a "cnn"."""
    return family_of({**MODEL_CONFIGS[name], **(overrides or {})}) if name in MODEL_CONFIGS else "cnn"


def family_of_kind(kind):
    """The family whose `Family.kind` is `kind` (a sweep row's `tokenizer` column); "cnn" for none."""
    return next((name for name, family in FAMILY_TABLE.items() if family.kind and family.kind == kind), "cnn")


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching a shell-style pattern, sorted."""
    return sorted(fnmatch.filter(MODEL_CONFIGS, pattern))


def resolve_config(name: str, **overrides) -> dict:
    """The full settings of `name` with `overrides` applied; unknown names or keys raise."""
    if not isinstance(name, str):
        raise UnknownModelError(f"model name {name!r} is not a string; pass a name from `vitbench list`")
    if name not in MODEL_CONFIGS:
        close = difflib.get_close_matches(name, MODEL_CONFIGS, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else "run `vitbench list` to see them"
        raise UnknownModelError(f"unknown model {name!r}; {hint}")
    config = {"img_size": DEFAULT_IMG_SIZE, "in_chans": 3, **MODEL_CONFIGS[name], **overrides}
    tokenizer = config["tokenizer"]
    if tokenizer not in TOKENIZER_OPTIONS:
        raise ConfigError(f"unknown tokenizer={tokenizer!r}; choose one of {sorted(TOKENIZER_OPTIONS)}")
    allowed = COMMON_OPTIONS | BACKBONE_OPTIONS | TOKENIZER_OPTIONS[tokenizer]
    unknown = sorted(set(config) - allowed)
    if unknown:
        other = [k for k in unknown if any(k in opts for opts in TOKENIZER_OPTIONS.values())]
        why = f"{other} apply to the other model family" if other else f"valid options are {sorted(allowed)}"
        raise UnknownOptionError(f"unknown option(s) {unknown} for model {name!r} ({family_of(config)}); {why}")
    return check_settings(config)


# The reference release's ImageNet-1k checkpoints (github.com/yitu-opensource/T2T-ViT, releases), by file name.
T2T_RELEASE = {
    "t2t_vit_7": "71.7_T2T_ViT_7.pth.tar", "t2t_vit_10": "75.2_T2T_ViT_10.pth.tar",
    "t2t_vit_12": "76.5_T2T_ViT_12.pth.tar", "t2t_vit_14": "81.5_T2T_ViT_14.pth.tar",
    "t2t_vit_19": "81.9_T2T_ViT_19.pth.tar", "t2t_vit_24": "82.3_T2T_ViT_24.pth.tar",
    "t2t_vit_t_14": "81.7_T2T_ViTt_14.pth.tar", "t2t_vit_t_19": "82.4_T2T_ViTt_19.pth.tar",
    "t2t_vit_t_24": "82.6_T2T_ViTt_24.pth.tar",
}


T2T_RELEASE_URL = "https://github.com/yitu-opensource/T2T-ViT/releases/download/main/"
DEIT_RELEASE_URL = "https://dl.fbaipublicfiles.com/deit/"  # Facebook's DeiT release, timm's layout and eps
# name -> (timm tag, official release URL, licence): what `pretrained=True` downloads (torch.hub's cache) and converts.
RELEASES = {
    **{name: ("in1k", T2T_RELEASE_URL + file, "bsd-3-clause-clear") for name, file in T2T_RELEASE.items()},
    "vb_vit_tiny_patch16_224": ("fb_in1k", DEIT_RELEASE_URL + "deit_tiny_patch16_224-a1311bcf.pth", "apache-2.0"),
    "vb_vit_small_patch16_224": ("fb_in1k", DEIT_RELEASE_URL + "deit_small_patch16_224-cd65a155.pth", "apache-2.0"),
    "vb_vit_base_patch16_224": ("fb_in1k", DEIT_RELEASE_URL + "deit_base_patch16_224-b5f2ef4d.pth", "apache-2.0"),
}


def first_layer(config):
    """The Linear that reads the pixels (timm's `first_conv`): the patch projection, or the first T2T block's."""
    if config["tokenizer"] == "patch":
        return "tokenizer.proj"
    if len(config.get("t2t_stages", REFERENCE_T2T_STAGES)) == 1:  # a single soft split: no T2T block
        return "tokenizer.project"
    return {"performer": "tokenizer.blocks.0.kqv"}.get(config["t2t_block"], "tokenizer.blocks.0.attn.qkv")


def default_cfg(name):
    """timm's pretrained cfg of `name`: data config, head, stem, and for a released name its official URL.

    The 32 px CIFAR names keep ImageNet's mean, std and crop_pct too: the accuracy harness normalises every
    arm (the timm CNN's included) and re-evaluates every checkpoint with the model's data config, so CIFAR-10
    statistics here would change how runs already trained are scored.
    """
    config = {"img_size": DEFAULT_IMG_SIZE, "in_chans": 3, **MODEL_CONFIGS[name]}
    _, url, licence = RELEASES.get(name, (None, None, None))
    source = "the official release, converted on load" if url else "no released weights"
    notes = (f"{source}; a local checkpoint loads with pretrained_cfg_overlay=dict(file=PATH)",)
    return dict(
        url=url,
        input_size=(config["in_chans"], config["img_size"], config["img_size"]),
        fixed_input_size=True,  # as timm's ViT: other sizes need img_size=... or dynamic_img_size=True
        crop_pct=0.9,
        interpolation="bicubic",
        mean=IMAGENET_DEFAULT_MEAN,
        std=IMAGENET_DEFAULT_STD,
        num_classes=config.get("num_classes", 1000),
        first_conv=first_layer(config),
        classifier="head",
        license=licence,
        paper_ids="arXiv:2101.11986" if config["tokenizer"] == "t2t" else None,
        notes=notes,
    )


# Read by timm's register_model: the release's tag for released weights, no tag for the others.
default_cfgs = generate_default_cfgs(
    {f"{name}.{RELEASES[name][0]}" if name in RELEASES else name: default_cfg(name) for name in MODEL_CONFIGS}
)
TIMM_BUILD_OPTIONS = ("features_only", "out_indices", "feature_cls")  # taken by build_model_with_cfg itself


def hub_cache_path(url, cache_dir=None):
    """Where timm (torch.hub) keeps the file of `url`: TORCH_HOME/hub/checkpoints/NAME, or `cache_dir`/NAME."""
    return Path(cache_dir or Path(torch.hub.get_dir()) / "checkpoints") / Path(urlparse(url).path).name


def weights_source(name, pretrained_cfg, pretrained_cfg_overlay, cache_dir=None):
    """The file or URL `pretrained=True` will read, refusing, before timm tries, a cfg that names none or a
    local file that is not there (the error names the absolute path looked for)."""
    cfg = resolve_pretrained_cfg(name, pretrained_cfg, pretrained_cfg_overlay)
    if cfg.file:
        path = Path(cfg.file).expanduser().absolute()
        if not path.is_file():
            raise CheckpointError(f"pretrained weights not found: looked for {path} (pretrained_cfg file="
                                  f"{cfg.file!r}); check the path or leave `file` out to use the release URL")
        return str(path)
    if cfg.state_dict is not None or cfg.hf_hub_id:
        return "the pretrained cfg's weights"
    if cfg.url:
        return f"{cfg.url} (cached at {hub_cache_path(cfg.url, cache_dir)})"
    raise ConfigError(f"{name} has no released weights; pass pretrained_cfg_overlay=dict(file=PATH) with a "
                      "local checkpoint, or create it with pretrained=False")


def build_timm_model(name, pretrained=False, pretrained_cfg=None, pretrained_cfg_overlay=None, cache_dir=None,
                     device=None, dtype=None, **kwargs):
    """The one factory of every name: validate the settings, then timm's `build_model_with_cfg`."""
    build = {key: kwargs.pop(key) for key in TIMM_BUILD_OPTIONS if key in kwargs}
    config = resolve_config(name, **kwargs)
    source = weights_source(name, pretrained_cfg, pretrained_cfg_overlay, cache_dir) if pretrained else None
    features = dict(feature_cls="getter", out_indices=config["depth"])  # every block unless out_indices says
    try:  # the reference release keeps its command line (an argparse.Namespace) beside the weights
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            model = build_model_with_cfg(
                build_model, name, pretrained, pretrained_cfg=pretrained_cfg,
                pretrained_cfg_overlay=pretrained_cfg_overlay, pretrained_filter_fn=timm_pretrained_filter,
                feature_cfg=features, cache_dir=cache_dir, **build, **config,
            ).to(device=device, dtype=dtype)
    except URLError as e:
        raise CheckpointError(f"could not download {source}: {e.reason}; place the file there or pass "
                              "pretrained_cfg_overlay=dict(file=PATH)") from None
    net = model.model if build.get("features_only") else model
    net.model_name, net.config = name, config
    # bench reads the model's own input size and class count here, as `set_img_size` keeps them
    input_size = (config["in_chans"], *net.img_size)
    net.pretrained_cfg = net.default_cfg = {**net.pretrained_cfg, "input_size": input_size,
                                            "fixed_input_size": not net.dynamic_img_size,
                                            "first_conv": first_layer(config), "num_classes": net.num_classes}
    if net is not model:  # the feature wrapper's own copy, without the head's fields
        model.pretrained_cfg = model.default_cfg = {**model.pretrained_cfg, "input_size": input_size}
    return model


def default_img_size(name):
    """The image side `name` takes when no size is given: timm's `pretrained_cfg["input_size"]` of the registered
    name (ours: 32 for the CIFAR models, 224 for the paper's; any timm model's own, e.g. 224 for resnet18), an
    (H, W) pair where that is not square. Every command's "no --img-size" comes from here. None for a name timm
    does not know: building it then says so."""
    cfg = get_pretrained_cfg(name) if isinstance(name, str) else None
    if cfg is None or not cfg.input_size:
        return None
    _, height, width = cfg.input_size
    return height if height == width else (height, width)


def create_model(name: str, **overrides) -> VisionTransformer:
    """Build a registered model with random init; `overrides` change any setting. Same as `timm.create_model`."""
    config = resolve_config(name, **overrides)  # timm drops None-valued settings; the config keeps them
    model = timm.create_model(name, **overrides)
    model.config = config
    return model


def register_with_timm(name):
    """Register `name` as a timm entrypoint; its pretrained cfg comes from `default_cfgs`."""

    def entrypoint(pretrained=False, **kwargs):
        return build_timm_model(name, pretrained, **kwargs)

    entrypoint.__name__ = entrypoint.__qualname__ = name
    entrypoint.__module__ = __name__
    entrypoint.__doc__ = f"vitbench {name}: {MODEL_CONFIGS[name]}"
    register_model(entrypoint)


for _name in MODEL_CONFIGS:
    register_with_timm(_name)
