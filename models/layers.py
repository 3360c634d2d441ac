"""Backbone layers: multi-head self-attention, the pre-norm encoder block, position tables.

Shapes: B batch, N tokens (class token included), D embed width, H heads, Dh = D / H.

Modules say their own multiply-accumulates (MACs) per image, by fvcore's rules (see bench/cost/flops.py):
`dense_macs` for Linear and LayerNorm layers, a `macs` method where a module adds products of its own.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp
from torch import nn

from .errors import ConfigError


def dense_macs(module, tokens):
    """MACs of every Linear and LayerNorm inside `module`, each applied to `tokens` tokens: a Linear
    tokens x in x out (the bias is free), a LayerNorm 5 per element (4 without affine weights)."""
    total = 0
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            total += tokens * layer.in_features * layer.out_features
        elif isinstance(layer, nn.LayerNorm):
            total += tokens * math.prod(layer.normalized_shape) * (5 if layer.weight is not None else 4)
    return total


class Attention(nn.Module):
    """Multi-head self-attention on SDPA; `qk_scale` overrides the default Dh ** -0.5."""

    def __init__(self, dim, num_heads=8, qkv_bias=False, qk_scale=None, attn_drop=0.0, proj_drop=0.0):
        super().__init__()
        if dim % num_heads:
            raise ConfigError(
                f"num_heads={num_heads} does not divide embed_dim={dim}; "
                f"pick heads from {[h for h in range(1, dim + 1) if dim % h == 0][:12]}"
            )
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = qk_scale if qk_scale is not None else self.head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x):
        B, N, D = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B, H, N, Dh)
        x = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.attn_drop if self.training else 0.0, scale=self.scale
        )
        x = x.transpose(1, 2).reshape(B, N, D)
        return self.proj_drop(self.proj(x))

    def macs(self, tokens):
        """{"attention.<part>": MACs} over `tokens` tokens; QK^T and AV are tokens^2 x width each, all heads."""
        products = tokens * tokens * self.num_heads * self.head_dim
        return {
            "attention.qkv": dense_macs(self.qkv, tokens),
            "attention.qk": products,
            "attention.av": products,
            "attention.proj": dense_macs(self.proj, tokens),
        }


class Block(nn.Module):
    """Pre-norm encoder block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(
        self,
        dim,
        num_heads,
        mlp_ratio=4.0,
        qkv_bias=False,
        qk_scale=None,
        drop=0.0,
        attn_drop=0.0,
        drop_path=0.0,
        act_layer=nn.GELU,
        norm_layer=nn.LayerNorm,
    ):
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = Attention(dim, num_heads, qkv_bias, qk_scale, attn_drop, drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=act_layer, drop=drop)

    def forward(self, x):
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def sinusoid_table(num_positions, dim):
    """The reference's fixed table, (1, num_positions, dim): sin on even, cos on odd channels.

    Computed in float64 like the reference (numpy) and rounded to float32 once.
    """
    position = np.arange(num_positions, dtype=np.float64)[:, None]
    exponent = 2 * (np.arange(dim) // 2) / dim
    angles = position / np.power(10000.0, exponent)[None, :]  # (num_positions, dim)
    angles[:, 0::2] = np.sin(angles[:, 0::2])
    angles[:, 1::2] = np.cos(angles[:, 1::2])
    return torch.tensor(angles, dtype=torch.float32).unsqueeze(0)


def named_fixed_tables(model):
    """(name, tensor) of every fixed table in `model`: buffers its modules list in `fixed_tables` (the Performer's
    random features, the sinusoid positions), which the reference kept as frozen parameters."""
    for prefix, module in model.named_modules():
        for name in getattr(module, "fixed_tables", ()):
            yield f"{prefix}.{name}" if prefix else name, getattr(module, name)


def count_params(model, trainable_only=False):
    """Parameters of any model as the T2T-ViT paper counts them: fixed tables included (see
    `named_fixed_tables`), or only the parameters that train."""
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
    return trained if trainable_only else trained + sum(t.numel() for _, t in named_fixed_tables(model))


def init_weights(module):
    """Reference/timm init: trunc-normal(.02) Linear weights, zero biases, unit LayerNorm."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def drop_path_rates(drop_path_rate, depth):
    """Stochastic depth rising linearly from 0 to `drop_path_rate` over the blocks."""
    return [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
