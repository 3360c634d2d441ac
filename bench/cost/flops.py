"""Multiply-accumulates (MACs) per image and parameter counts, each MAC count made three ways.

One MAC is one multiply-add (FLOPs are about 2 x MACs). The counting rules are fvcore's, the
ones behind `macs_reference` in bench/cost/published.csv, so our totals compare with it directly:

- Linear layers: tokens x in_features x out_features (the bias is free). The patch embedding
  is such a Linear on the patches, whether computed as Unfold + Linear or a strided conv.
- Attention: QK^T and AV, tokens^2 x width each (summed over heads), also when fused in
  `scaled_dot_product_attention`, which plain fvcore and torch's CPU counter drop.
- The Performer T2T block, per token: w.k and w.q (m x d each), phi(q).sum(phi(k)) (m),
  phi(k)^T v and phi(q).(phi(k)^T v) (m x d each), with m random features of width d.
- LayerNorm: 5 per element (4 without affine weights), fvcore's estimate.
- Free, as fvcore treats them: elementwise ops and reductions (add, mul, div, exp, GELU,
  softmax, sum, the attention scale), padding, Unfold/reshape/concat, dropout.

The three counters are `analytic_macs` (each module's own formula: its `macs` method, or
`models.layers.dense_macs` for Linear and LayerNorm layers), `fvcore_macs`
(fvcore's traced count plus a handler for fused attention) and `torch_macs`
(`torch.utils.flop_counter` plus formulas for LayerNorm and CPU fused attention). Both traced
counters run batch 1 in eval mode on a copy of the model that shares its weights, so the model
itself is never changed, even when counting at another image size. They need the weights on a
real device (their values do not matter); `analytic_macs` also takes a model built on "meta".
"""
import copy
import math
import warnings

import torch
from torch.utils.flop_counter import FlopCounterMode

from models.backbone import VisionTransformer
from models.errors import ConfigError
from models.layers import count_params as count_model_params
from models.layers import dense_macs, named_fixed_tables
from models.tokenizers import check_img_size

FLOPS_PER_MAC = 2  # a multiply-accumulate is two floating-point operations
TRAIN_FLOPS_PER_MAC = FLOPS_PER_MAC * 3  # training: the forward and a backward of twice its cost

with warnings.catch_warnings():  # fvcore scripts a loss at import, which torch now warns about
    warnings.simplefilter("ignore", FutureWarning)
    from fvcore.nn import ActivationCountAnalysis, FlopCountAnalysis
    from fvcore.nn.jit_handles import get_shape

MODULE_GROUPS = ("tokenizer", "attention", "mlp", "norm", "head")
FVCORE_FREE_OPS = (  # elementwise (in place too), reductions and data movement: no MACs by fvcore's rules
    "aten::add", "aten::add_", "aten::sub", "aten::mul", "aten::div", "aten::div_", "aten::exp", "aten::exp_",
    "aten::sum", "aten::gelu", "aten::im2col", "aten::pad", "aten::unfold",
)
aten = torch.ops.aten


# ----------------------------------------------------------------------------- analytic


def checked_img_size(model, img_size=None):
    """(H, W) to count at, the model's own by default; sizes its tokenizer cannot take raise."""
    height, width = model.img_size if img_size is None else check_img_size(img_size)
    model.tokenizer.token_grid(height, width)  # InputShapeError unless a multiple of the stride
    return height, width


def own_macs(module, *size):
    """`module.macs(*size)`: the {part: MACs} a module says it costs; one that says nothing cannot be counted here."""
    if not hasattr(module, "macs"):
        raise ConfigError(f"cannot count a {type(module).__name__} analytically; use fvcore_macs or torch_macs")
    return module.macs(*size)


def sum_dicts(dicts):
    total = {}
    for d in dicts:
        for key, value in d.items():
            total[key] = total.get(key, 0) + value
    return total


def analytic_macs(model, img_size=None):
    """MACs per image by formula: groups `tokenizer`, `attention`, `mlp`, `norm`, `head`, their
    parts (the tokenizer's, e.g. `tokenizer.blocks` and `tokenizer.project` or `tokenizer.proj`;
    `attention.qkv`, `attention.qk`, `attention.av`, `attention.proj`) and `total`."""
    height, width = checked_img_size(model, img_size)
    tokens = math.prod(model.tokenizer.token_grid(height, width)) + model.num_prefix_tokens
    tokenizer_parts = own_macs(model.tokenizer, height, width)
    attention_parts = sum_dicts(own_macs(block.attn, tokens) for block in model.blocks)
    breakdown = {
        "tokenizer": sum(tokenizer_parts.values()),
        **tokenizer_parts,
        "attention": sum(attention_parts.values()),
        **attention_parts,
        "mlp": sum(dense_macs(block.mlp, tokens) for block in model.blocks),
        "norm": sum(dense_macs(block.norm1, tokens) + dense_macs(block.norm2, tokens) for block in model.blocks)
        + dense_macs(model.norm, tokens),
        "head": dense_macs(model.head, 1),  # the class token only
    }
    breakdown["total"] = sum(breakdown[group] for group in MODULE_GROUPS)
    return breakdown


# ----------------------------------------------------------------------------- traced counters


def counting_twin(model, img_size=None):
    """An eval-mode copy of `model` at `img_size` sharing its weights, and a batch of one image."""
    height, width = checked_img_size(model, img_size)
    shared = {id(t): t for t in [*model.parameters(), *model.buffers()]}
    twin = copy.deepcopy(model, memo=shared).eval()
    if (height, width) != tuple(model.img_size):
        twin.set_img_size((height, width))
    weight = next(model.parameters())
    image = torch.zeros(1, model.tokenizer.in_chans, height, width, dtype=weight.dtype, device=weight.device)
    return twin, image


def module_group_names(model):
    """{group: names of the modules whose MACs make that group}."""
    blocks = [f"blocks.{i}" for i in range(len(model.blocks))]
    return {
        "tokenizer": ["tokenizer"],
        "attention": [f"{b}.attn" for b in blocks],
        "mlp": [f"{b}.mlp" for b in blocks],
        "norm": [f"{b}.{norm}" for b in blocks for norm in ("norm1", "norm2")] + ["norm"],
        "head": ["head"],
    }


def group_macs(model, by_module, total):
    """Groups from per-module MACs; `other` holds whatever ran outside the named modules."""
    named = module_group_names(model)
    groups = {group: sum(by_module.get(name, 0) for name in names) for group, names in named.items()}
    return {**groups, "other": total - sum(groups.values()), "total": total}


def sdpa_macs(query_shape, key_shape, value_shape):
    """QK^T + AV MACs from shapes (B, H, L, E), (B, H, S, E), (B, H, S, Ev)."""
    key_len, value_dim = key_shape[-2], value_shape[-1]
    return math.prod(query_shape) * key_len + math.prod(query_shape[:-1]) * key_len * value_dim


def sdpa_macs_jit(inputs, outputs):
    """fvcore handle for aten::scaled_dot_product_attention."""
    return sdpa_macs(*(get_shape(v) for v in inputs[:3]))


def fvcore_analysis(model, img_size=None):
    """fvcore's FlopCountAnalysis of one image, with fused attention counted and free ops silenced."""
    twin, image = counting_twin(model, img_size)
    analysis = FlopCountAnalysis(twin, image)
    analysis.set_op_handle("aten::scaled_dot_product_attention", sdpa_macs_jit)
    analysis.set_op_handle(**{op: None for op in FVCORE_FREE_OPS})
    analysis.uncalled_modules_warnings(False)  # PatchTokenizer uses proj.weight in a conv without calling proj
    return analysis


def fvcore_macs(model, img_size=None):
    """MACs per image by fvcore: groups `tokenizer`, `attention`, `mlp`, `norm`, `head`, `other`, `total`."""
    analysis = fvcore_analysis(model, img_size)
    with torch.no_grad():
        by_module = analysis.by_module()
    return group_macs(model, by_module, by_module[""])


def sdpa_flops(query_shape, key_shape, value_shape, *args, **kwargs):
    """FLOPs of fused attention from the q, k, v shapes: 2 x (QK^T + AV MACs)."""
    return 2 * sdpa_macs(query_shape, key_shape, value_shape)


def layer_norm_flops(input_shape, normalized_shape, weight_shape=None, *args, **kwargs):
    """FLOPs of aten.native_layer_norm: 2 x fvcore's 5 MACs per element (4 without affine)."""
    return 2 * math.prod(input_shape) * (5 if weight_shape is not None else 4)


TORCH_EXTRA_FORMULAS = {
    aten._scaled_dot_product_flash_attention_for_cpu: sdpa_flops,  # CPU fused SDPA: no formula in torch
    aten.native_layer_norm: layer_norm_flops,
}


def torch_macs(model, img_size=None):
    """MACs per image by torch's FlopCounterMode; same keys as `fvcore_macs`."""
    twin, image = counting_twin(model, img_size)
    counter = FlopCounterMode(display=False, custom_mapping=TORCH_EXTRA_FORMULAS)
    with torch.no_grad(), counter:
        twin(image)
    counts = counter.get_flop_counts()  # keys "Global", "VisionTransformer", "VisionTransformer.blocks.0.attn", ...
    by_module = {name.partition(".")[2]: sum(ops.values()) // 2 for name, ops in counts.items() if "." in name}
    return group_macs(model, by_module, counter.get_total_flops() // 2)


# ----------------------------------------------------------------------------- summaries


def any_model_macs(model, img_size=None):
    """MACs per image of any model by fvcore's rules: ours via `fvcore_macs` (at `img_size`, default
    the model's), any other (a timm CNN or ViT) by fvcore with fused attention counted, at `img_size`
    or its pretrained_cfg's input size."""
    if isinstance(model, VisionTransformer):
        return int(fvcore_macs(model, img_size)["total"])
    image = one_image(model, img_size)
    was_training = model.training
    analysis = FlopCountAnalysis(model.eval(), image)
    analysis.set_op_handle("aten::scaled_dot_product_attention", sdpa_macs_jit)
    analysis.set_op_handle(**{op: None for op in FVCORE_FREE_OPS})
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    with torch.no_grad():
        total = analysis.total()
    model.train(was_training)
    return int(total)


def one_image(model, img_size=None):
    """A zero image of `img_size` (default the pretrained_cfg's input size) on the model's device and dtype."""
    channels, *size = model.pretrained_cfg["input_size"]
    size = check_img_size(img_size) if img_size else tuple(size)
    weight = next(model.parameters())
    return torch.zeros(1, channels, *size, dtype=weight.dtype, device=weight.device)


def any_model_counts(model, img_size=None):
    """`macs` (fvcore's rules), `macs_fvcore` and `macs_torch` of any timm model, fused attention and
    LayerNorm counted by both: the counters for a model with no analytic formulas."""
    was_training = model.training
    counter = FlopCounterMode(display=False, custom_mapping=TORCH_EXTRA_FORMULAS)
    with torch.no_grad(), counter:
        model.eval()(one_image(model, img_size))
    model.train(was_training)
    fvcore = any_model_macs(model, img_size)
    return {"macs": fvcore, "macs_fvcore": fvcore, "macs_torch": counter.get_total_flops() // 2}


def mac_counts(model, img_size=None):
    """`macs` (analytic total), `macs_fvcore`, `macs_torch`, and `macs_<part>` for each analytic part."""
    breakdown = analytic_macs(model, img_size)
    return {
        "macs": breakdown.pop("total"),
        "macs_fvcore": fvcore_macs(model, img_size)["total"],
        "macs_torch": torch_macs(model, img_size)["total"],
        **{f"macs_{part}": macs for part, macs in breakdown.items()},
    }


def sdpa_activations_jit(inputs, outputs):
    """fvcore activation handle for aten::scaled_dot_product_attention: the outputs of its two products, QK^T
    (B, H, L, S) and AV (B, H, L, Ev), as fvcore counts them when attention is written as two matmuls."""
    query, key, value = (get_shape(v) for v in inputs[:3])
    return math.prod(query[:-1]) * (key[-2] + value[-1])


def fvcore_activations(model, img_size=None):
    """Activations per image by fvcore's ActivationCountAnalysis (the output elements of convolutions, linear
    layers and matrix products: what timm's benchmark.py reports as `macts`, in millions there), fused attention
    counted as its two products, as `fvcore_macs` counts its MACs. Any model: ours at `img_size` (default its
    own), any other at `img_size` or its pretrained_cfg's input size; the model itself is left as it was."""
    if isinstance(model, VisionTransformer):
        twin, image = counting_twin(model, img_size)
    else:
        twin, image = model, one_image(model, img_size)
    was_training = twin.training
    analysis = ActivationCountAnalysis(twin.eval(), image)
    analysis.set_op_handle("aten::scaled_dot_product_attention", sdpa_activations_jit)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    with torch.no_grad():
        total = analysis.total()
    twin.train(was_training)
    return int(total)


def params_of(model):
    """Parameter counts of any model: ours broken down by part (`param_breakdown`), any other total and trainable."""
    if isinstance(model, VisionTransformer):
        return param_breakdown(model)
    return {"params": count_params(model), "params_trainable": count_params(model, trainable_only=True)}


def macs_of(model):
    """MAC counts of any model: ours by the three counters with the analytic breakdown (`mac_counts`),
    any other (a timm model) by fvcore and the torch counter (`any_model_counts`)."""
    return mac_counts(model) if isinstance(model, VisionTransformer) else any_model_counts(model)


def count_params(model, trainable_only=False):
    """Parameters of `model` (fixed tables included, as the paper counts), or only those that train."""
    return count_model_params(model, trainable_only)


def param_part(name):
    """Which part a parameter name belongs to: tokenizer, head or backbone (cls, pos, blocks, norm)."""
    part = name.split(".")[0]
    return part if part in ("tokenizer", "head") else "backbone"


def param_breakdown(model):
    """`params`, `params_trainable` (fixed tables excluded) and `params_tokenizer|backbone|head`."""
    parts = {"tokenizer": 0, "backbone": 0, "head": 0}
    for name, param in [*model.named_parameters(), *named_fixed_tables(model)]:
        parts[param_part(name)] += param.numel()
    return {
        "params": sum(parts.values()),
        "params_trainable": count_params(model, trainable_only=True),
        **{f"params_{part}": count for part, count in parts.items()},
    }
