"""A straightforward re-implementation of the reference T2T-ViT, written from the facts in
`shared/reference/README.md`: explicit softmax(QK^T)V attention, the Performer as einsums,
square inputs only, and the reference's checkpoint key layout.

It is the baseline our models are checked and timed against: a checkpoint saved from it is
a reference checkpoint, and its speed is what "the reference is slow" means.
"""
import math

import numpy as np
import torch
from torch import nn

from models.layers import init_weights, sinusoid_table


class RefMlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class RefAttention(nn.Module):
    """Explicit attention; with `in_dim` set it is the T2T single-head variant (v residual)."""

    def __init__(self, dim, num_heads, in_dim=None, qkv_bias=False, qk_scale=None):
        super().__init__()
        self.num_heads, self.in_dim = num_heads, in_dim
        self.out_dim = in_dim or dim
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, self.out_dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(self.out_dim, self.out_dim)

    def forward(self, x):
        B, N, _ = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.out_dim // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        y = self.proj((attn @ v).transpose(1, 2).reshape(B, N, self.out_dim))
        return v.squeeze(1) + y if self.in_dim else y


class RefBlock(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio, qkv_bias=False, qk_scale=None):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = RefAttention(dim, num_heads, qkv_bias=qkv_bias, qk_scale=qk_scale)
        self.mlp = RefMlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class RefTokenTransformer(nn.Module):
    def __init__(self, dim, in_dim):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(in_dim)
        self.attn = RefAttention(dim, 1, in_dim=in_dim)
        self.mlp = RefMlp(in_dim, in_dim)

    def forward(self, x):
        x = self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class RefTokenPerformer(nn.Module):
    def __init__(self, dim, in_dim, kernel_ratio=0.5):
        super().__init__()
        self.emb = in_dim
        self.kqv = nn.Linear(dim, 3 * in_dim)
        self.proj = nn.Linear(in_dim, in_dim)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(in_dim)
        self.mlp = nn.Sequential(nn.Linear(in_dim, in_dim), nn.GELU(), nn.Linear(in_dim, in_dim), nn.Dropout(0.1))
        self.m = int(in_dim * kernel_ratio)
        self.w = nn.Parameter(nn.init.orthogonal_(torch.randn(self.m, in_dim)) * math.sqrt(self.m), requires_grad=False)

    def prm_exp(self, x):
        xd = ((x * x).sum(dim=-1, keepdim=True)).repeat(1, 1, self.m) / 2
        wtx = torch.einsum("bti,mi->btm", x.float(), self.w)
        return torch.exp(wtx - xd) / math.sqrt(self.m)

    def forward(self, x):
        x = self.norm1(x)
        k, q, v = torch.split(self.kqv(x), self.emb, dim=-1)
        kp, qp = self.prm_exp(k), self.prm_exp(q)
        D = torch.einsum("bti,bi->bt", qp, kp.sum(dim=1)).unsqueeze(dim=2)
        kptv = torch.einsum("bin,bim->bnm", v.float(), kp)
        y = torch.einsum("bti,bni->btn", qp, kptv) / (D.repeat(1, 1, self.emb) + 1e-8)
        x = v + self.proj(y)
        return x + self.mlp(self.norm2(x))


class RefT2TModule(nn.Module):
    def __init__(self, tokens_type, in_chans, embed_dim, token_dim=64):
        super().__init__()
        self.soft_split0 = nn.Unfold(kernel_size=7, stride=4, padding=2)
        self.soft_split1 = nn.Unfold(kernel_size=3, stride=2, padding=1)
        self.soft_split2 = nn.Unfold(kernel_size=3, stride=2, padding=1)
        block = RefTokenPerformer if tokens_type == "performer" else RefTokenTransformer
        self.attention1 = block(in_chans * 7 * 7, token_dim)
        self.attention2 = block(token_dim * 3 * 3, token_dim)
        self.project = nn.Linear(token_dim * 3 * 3, embed_dim)

    def forward(self, x):
        x = self.attention1(self.soft_split0(x).transpose(1, 2))
        B, HW, C = x.shape
        x = x.transpose(1, 2).reshape(B, C, int(np.sqrt(HW)), int(np.sqrt(HW)))
        x = self.attention2(self.soft_split1(x).transpose(1, 2))
        B, HW, C = x.shape
        x = x.transpose(1, 2).reshape(B, C, int(np.sqrt(HW)), int(np.sqrt(HW)))
        return self.project(self.soft_split2(x).transpose(1, 2))


class RefT2TViT(nn.Module):
    def __init__(self, img_size=224, tokens_type="performer", num_classes=1000, embed_dim=768, depth=12,
                 num_heads=12, mlp_ratio=4.0, qk_scale=None, in_chans=3):
        super().__init__()
        self.tokens_to_token = RefT2TModule(tokens_type, in_chans, embed_dim)
        num_patches = (img_size // 16) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(sinusoid_table(num_patches + 1, embed_dim), requires_grad=False)
        self.blocks = nn.ModuleList(RefBlock(embed_dim, num_heads, mlp_ratio, qk_scale=qk_scale) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, num_classes)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.apply(init_weights)

    def forward(self, x):
        x = self.tokens_to_token(x)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x)[:, 0])
