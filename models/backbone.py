"""The shared backbone: tokens from any front end, a class token, positions, pre-norm blocks, head.

ViT and T2T-ViT are this one class with a different `tokenizer`; everything after the
tokenizer is identical, which is what makes their comparison fair.
"""
from functools import partial

import torch
from timm.layers import resample_abs_pos_embed
from timm.models import checkpoint, checkpoint_seq
from torch import nn

from .errors import ConfigError
from .layers import Block, drop_path_rates, init_weights, sinusoid_table
from .tokenizers import (
    DEFAULT_IMG_SIZE,
    REFERENCE_T2T_STAGES,
    PatchTokenizer,
    T2TTokenizer,
    Tokenizer,
    check_images,
)

POS_EMBED_KINDS = ("sinusoid", "learn")


def block_indices(depth, indices=None):
    """timm's `indices` of `forward_intermediates`: None = every block, n = the last n, a list = those
    (negative from the end); returns (their absolute indices in the order given, the last block needed)."""
    if indices is None:
        indices = depth
    if isinstance(indices, int):
        if not 0 < indices <= depth:
            raise ConfigError(f"indices={indices} asks for the last {indices} of {depth} blocks; pass 1 to {depth}")
        taken = list(range(depth - indices, depth))
    else:
        taken = [i + depth if i < 0 else i for i in indices]
        if not taken or not all(0 <= i < depth for i in taken):
            raise ConfigError(f"indices={list(indices)} must name blocks in [-{depth}, {depth - 1}]")
    return taken, max(taken)


def resample_pos_embed(table, new_grid, old_grid):
    """(1, 1 + h*w, D) table for grid `old_grid` -> grid `new_grid`, bicubic, class row kept."""
    if tuple(new_grid) == tuple(old_grid):
        return table
    return resample_abs_pos_embed(table, list(new_grid), list(old_grid), num_prefix_tokens=1)


class VisionTransformer(nn.Module):
    """Tokenizer -> [cls] + tokens + positions -> blocks -> norm -> head on the class token.

    Args:
        tokenizer: a `models.tokenizers.Tokenizer`; its `embed_dim` is the backbone width.
        pos_embed: "sinusoid" (fixed table, the reference's default) or "learn" (timm's).
        qk_scale: attention scale override (default head_dim ** -0.5).
        num_classes: 0 gives pooled features, 1 a regression output.
        norm_eps: the backbone LayerNorms' eps: 1e-5 in the T2T-ViT reference (torch's default), 1e-6 in timm's
            ViT and DeiT; weights are only reproduced exactly with the eps they were trained with.
        dynamic_img_size: take any image size the tokenizer's stride divides, resampling the position table
            per batch (timm's `dynamic_img_size`); otherwise only the built size is taken.
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        num_classes: int = 1000,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = False,
        qk_scale: float | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        pos_embed: str = "sinusoid",
        norm_eps: float = 1e-5,
        dynamic_img_size: bool = False,
        norm_layer: type[nn.Module] = nn.LayerNorm,
        act_layer: type[nn.Module] = nn.GELU,
    ):
        super().__init__()
        if pos_embed not in POS_EMBED_KINDS:
            raise ConfigError(f"unknown pos_embed={pos_embed!r}; choose one of {list(POS_EMBED_KINDS)}")
        if depth < 1 or num_classes < 0:
            raise ConfigError(f"depth={depth} and num_classes={num_classes} must be >= 1 and >= 0")
        embed_dim = tokenizer.embed_dim
        norm_layer = partial(norm_layer, eps=norm_eps)
        self.num_classes = num_classes
        self.num_features = self.head_hidden_size = self.embed_dim = embed_dim
        self.in_chans = tokenizer.in_chans
        self.num_prefix_tokens = 1
        self.pos_embed_kind = pos_embed
        self.dynamic_img_size = dynamic_img_size
        self.global_pool = "token"

        self.tokenizer = tokenizer
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        num_positions = tokenizer.num_tokens + 1
        if pos_embed == "sinusoid":  # never trained, still saved; counted as parameters by the paper
            self.register_buffer("pos_embed", sinusoid_table(num_positions, embed_dim))
            self.fixed_tables = ("pos_embed",)
        else:
            self.pos_embed = nn.Parameter(torch.zeros(1, num_positions, embed_dim))
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.pos_drop = nn.Dropout(drop_rate)
        self.blocks = nn.ModuleList(
            Block(
                embed_dim,
                num_heads,
                mlp_ratio,
                qkv_bias,
                qk_scale,
                drop_rate,
                attn_drop_rate,
                dpr,
                act_layer,
                norm_layer,
            )
            for dpr in drop_path_rates(drop_path_rate, depth)
        )
        self.norm = norm_layer(embed_dim)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self.grad_checkpointing = False
        # timm's per-block feature description; every block sees tokens at the tokenizer's stride
        self.feature_info = [dict(module=f"blocks.{i}", num_chs=embed_dim, reduction=tokenizer.stride)
                             for i in range(depth)]

        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.apply(init_weights)

    @property
    def img_size(self):
        return self.tokenizer.img_size

    @torch.jit.ignore
    def no_weight_decay(self):
        return {"cls_token", "pos_embed"} if isinstance(self.pos_embed, nn.Parameter) else {"cls_token"}

    @torch.jit.ignore
    def group_matcher(self, coarse=False):
        """timm's parameter groups (layer-wise lr decay): the stem, one group per block, the final norm last.

        Blocks are the coarsest useful unit of a plain transformer, so `coarse` groups the same (as timm's ViT).
        """
        return dict(stem=r"^cls_token|^pos_embed|^tokenizer", blocks=[(r"^blocks\.(\d+)", None), (r"^norm", (99999,))])

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable=True):
        """Recompute each block's activations in the backward pass instead of keeping them."""
        self.grad_checkpointing = enable

    def get_classifier(self):
        return self.head

    def reset_classifier(self, num_classes, global_pool=None):
        """A fresh head for `num_classes` (0: none) on the model's device and dtype; `global_pool` "token" pools
        the class token, "" keeps every token (timm's meaning), None keeps the current pooling."""
        if global_pool not in (None, "token", ""):
            raise ConfigError(f"global_pool={global_pool!r} is not supported; pass 'token' (the class token) or ''")
        if global_pool is not None:
            self.global_pool = global_pool
        self.num_classes = num_classes
        like = self.cls_token
        self.head = (nn.Linear(self.embed_dim, num_classes, device=like.device, dtype=like.dtype)
                     if num_classes > 0 else nn.Identity())
        init_weights(self.head)
        self.head.train(self.training)

    def set_attention_scale(self, scale):
        """Set the backbone attention scale (released T2T-ViT weights use embed_dim ** -0.5)."""
        for block in self.blocks:
            block.attn.scale = scale

    def set_img_size(self, img_size):
        """Adapt the model to another image size, interpolating the position table like timm."""
        old_grid = self.tokenizer.grid_size
        self.tokenizer.set_img_size(img_size)
        table = resample_pos_embed(self.pos_embed.detach(), self.tokenizer.grid_size, old_grid)
        if isinstance(self.pos_embed, nn.Parameter):
            self.pos_embed = nn.Parameter(table, requires_grad=self.pos_embed.requires_grad)
        else:
            self.pos_embed = table
        if hasattr(self, "pretrained_cfg"):
            self.pretrained_cfg = {**self.pretrained_cfg, "input_size": (self.tokenizer.in_chans, *self.img_size)}
            self.default_cfg = self.pretrained_cfg  # timm's older name, kept the same object as timm does

    def embed(self, x):
        """(B, C, H, W) images -> (B, 1 + N, D) tokens with the class token and positions.

        Float64 or float16 inputs are cast to the weights' dtype; integer pixels and other sizes raise.
        """
        tokenizer = self.tokenizer
        built = None if self.dynamic_img_size else tokenizer.img_size
        x = check_images(x, tokenizer.in_chans, tokenizer.stride, tokenizer.kind, built).to(self.cls_token.dtype)
        pos_embed = self.pos_embed
        if self.dynamic_img_size:  # timm's: the table resampled to this batch's grid
            grid = (x.shape[2] // tokenizer.stride, x.shape[3] // tokenizer.stride)
            pos_embed = resample_pos_embed(pos_embed, grid, tokenizer.grid_size)
        x = tokenizer(x)  # (B, N, D)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)  # (B, N+1, D)
        return self.pos_drop(x + pos_embed)

    def forward_features(self, x):
        x = self.embed(x)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            x = checkpoint_seq(self.blocks, x)
        else:
            for block in self.blocks:
                x = block(x)
        return self.norm(x)

    def forward_intermediates(self, x, indices=None, norm=False, stop_early=False, output_fmt="NCHW",
                              intermediates_only=False):
        """timm's feature API: the outputs of the blocks in `indices` (see `block_indices`), class token
        dropped, as (B, D, h, w) maps ("NCHW") or (B, N, D) tokens ("NLC"); `norm` applies the final norm
        to each. Returns them alone with `intermediates_only` (which, like `stop_early`, skips the blocks
        after the last index), else (final normed tokens, them)."""
        if output_fmt not in ("NCHW", "NLC"):
            raise ConfigError(f"output_fmt={output_fmt!r} is not supported; choose 'NCHW' or 'NLC'")
        taken, last = block_indices(len(self.blocks), indices)
        height, width = (side // self.tokenizer.stride for side in x.shape[2:])  # this batch's token grid
        x = self.embed(x)
        intermediates = []
        for i, block in enumerate(self.blocks[: last + 1] if stop_early or intermediates_only else self.blocks):
            x = checkpoint(block, x) if self.grad_checkpointing and not torch.jit.is_scripting() else block(x)
            if i in taken:
                intermediates.append((self.norm(x) if norm else x)[:, self.num_prefix_tokens:])
        if output_fmt == "NCHW":
            intermediates = [y.transpose(1, 2).reshape(y.shape[0], -1, height, width) for y in intermediates]
        if intermediates_only:
            return intermediates
        return self.norm(x), intermediates

    def prune_intermediate_layers(self, indices=1, prune_norm=False, prune_head=True):
        """Drop the blocks after the last of `indices` (and the norm / head); returns the kept indices."""
        taken, last = block_indices(len(self.blocks), indices)
        self.blocks = self.blocks[: last + 1]
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0)
        return taken

    def forward_head(self, x, pre_logits=False):
        if self.global_pool == "token":
            x = x[:, 0]  # class token, (B, D)
        return x if pre_logits else self.head(x)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def build_model(
    tokenizer,
    img_size=DEFAULT_IMG_SIZE,
    in_chans=3,
    embed_dim=768,
    patch_size=16,
    t2t_block="performer",
    t2t_stages=REFERENCE_T2T_STAGES,
    token_dim=64,
    t2t_drop=None,
    **backbone,
):
    """A model from its resolved settings (`registry.resolve_config`): the front end `tokenizer` names, then the
    backbone. Lives beside the backbone so checkpoints can rebuild a stored geometry without the registry."""
    if tokenizer == "patch":
        front = PatchTokenizer(img_size, patch_size, in_chans, embed_dim)
    else:
        front = T2TTokenizer(img_size, in_chans, embed_dim, token_dim, t2t_block, t2t_stages, t2t_drop)
    return VisionTransformer(front, **backbone)
