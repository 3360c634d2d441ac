"""Front ends that turn a (B, C, H, W) image batch into (B, N, D) tokens.

`PatchTokenizer` is ViT's: non-overlapping P x P patches flattened and projected by one Linear.
`T2TTokenizer` is T2T-ViT's: overlapping soft splits (Unfold) interleaved with small T2T
blocks, so each token aggregates its neighbours before the backbone sees it.
Both take any H and W divisible by their total stride, square or not, and say their own costs
(`macs`, `activation_elements`), so the counters in bench/cost need no case per front end.
"""
import math
import numbers
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from timm.layers import register_notrace_function
from torch import nn

from .errors import ConfigError, InputShapeError
from .layers import dense_macs

REFERENCE_T2T_STAGES = ((7, 4, 2), (3, 2, 1), (3, 2, 1))  # (kernel, stride, padding) per soft split
DEFAULT_IMG_SIZE = 224  # every named model's image size unless overridden
ImageSize = int | tuple[int, int]


MAX_IMG_SIDE = 8192  # the largest image side any command or model takes: a typo such as 1e9 is refused


def is_img_side(value):
    """An image side: a whole number in [1, MAX_IMG_SIDE] (not a bool, not a float such as 32.0)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and 1 <= value <= MAX_IMG_SIDE


def check_img_size(size, name="img_size"):
    """The one image-size check of the suite (models, counters, every command's --img-size): `size` as (H, W), from
    a side or an (H, W) pair of sides (`is_img_side`); anything else ([32], 0, "large", 32.0) a one-line ConfigError.
    Whether the model's stride divides it is the tokenizer's check (`token_grid`)."""
    if is_img_side(size):
        return (int(size), int(size))
    if isinstance(size, (tuple, list)) and len(size) == 2 and all(map(is_img_side, size)):
        return tuple(map(int, size))
    raise ConfigError(f"{name}={size!r} must be a positive integer (at most {MAX_IMG_SIDE}) or an (H, W) pair of "
                      f"them; pass e.g. {name}=224 or {name}=(60, 100)")


class Tokenizer(nn.Module):
    """Shared geometry: a front end with total `stride` maps H x W to (H/stride) x (W/stride) tokens.

    A subclass also says what it costs per image, for bench/cost's analytic counters:
    `macs(height, width)` -> {"tokenizer.<part>": MACs} by fvcore's rules, and `activation_elements()`
    -> (saved, live): per stage, the values a training step saves for backward and the largest set
    alive at once in an inference pass, at the tokenizer's own image size.
    """

    kind = "tokenizer"

    def __init__(self, img_size, in_chans, embed_dim, stride):
        super().__init__()
        self.in_chans = in_chans
        self.embed_dim = embed_dim
        self.stride = stride
        self.set_img_size(img_size)

    def set_img_size(self, img_size):
        self.img_size = check_img_size(img_size)
        self.grid_size = self.token_grid(*self.img_size, error=ConfigError)
        self.num_tokens = self.grid_size[0] * self.grid_size[1]

    def token_grid(self, height, width, error=InputShapeError):
        """(H/stride, W/stride), or a clear error when H or W is not a multiple of the stride."""
        if height <= 0 or width <= 0 or height % self.stride or width % self.stride:
            fit_h = max(self.stride, round(height / self.stride) * self.stride)
            fit_w = max(self.stride, round(width / self.stride) * self.stride)
            raise error(
                f"image size {height}x{width} is not divisible by the {self.kind} stride {self.stride}; "
                f"use multiples of {self.stride}, e.g. {fit_h}x{fit_w}"
            )
        return (height // self.stride, width // self.stride)

    def check_input(self, x):
        """Validate a (B, C, H, W) batch; returns its token grid."""
        check_images(x, self.in_chans, self.stride, self.kind)
        return (x.shape[2] // self.stride, x.shape[3] // self.stride)


@register_notrace_function  # a leaf of torch.fx graphs: its checks read sizes, which a traced tensor lacks
def check_images(x, in_chans, stride, kind, built_size=None):
    """`x` unchanged if it is a float (B, in_chans, H, W) batch with H and W multiples of the `kind` front end's
    `stride` (and equal to `built_size` when given); otherwise a one-line InputShapeError naming the fix."""
    if not torch.is_tensor(x) or not x.is_floating_point():
        kind = x.dtype if torch.is_tensor(x) else type(x).__name__
        raise InputShapeError(
            f"expected a float image batch, got {kind}; convert pixels to float and normalise them first, "
            "e.g. x = (x.float() / 255 - mean) / std with the model's pretrained_cfg mean and std"
        )
    if x.ndim != 4:
        raise InputShapeError(
            f"expected a 4-D image batch (B, C, H, W), got shape {tuple(x.shape)}; "
            "add a batch dimension with x.unsqueeze(0)"
        )
    if x.shape[1] != in_chans:
        raise InputShapeError(
            f"expected {in_chans} input channels, got {x.shape[1]} (shape {tuple(x.shape)}); "
            f"convert the images or build the model with in_chans={x.shape[1]}"
        )
    height, width = x.shape[2:]
    if height % stride or width % stride:
        fit_h, fit_w = (max(stride, round(side / stride) * stride) for side in (height, width))
        raise InputShapeError(f"image size {height}x{width} is not divisible by the {kind} stride {stride}; "
                              f"use multiples of {stride}, e.g. {fit_h}x{fit_w}")
    if built_size is not None and (height, width) != tuple(built_size):
        raise InputShapeError(
            f"input is {height}x{width} but the model was built for {built_size[0]}x{built_size[1]}; resize the "
            f"images, create the model with img_size=({height}, {width}) or with dynamic_img_size=True"
        )
    return x


class PatchTokenizer(Tokenizer):
    """Non-overlapping P x P patches -> Linear(C*P*P, D).

    Semantically `nn.Unfold(P, stride=P)` then `proj`; computed as a strided convolution with
    the Linear's weight viewed as (D, C, P, P), which gives identical outputs, faster.
    """

    kind = "patch"

    def __init__(self, img_size: ImageSize = DEFAULT_IMG_SIZE, patch_size: int = 16, in_chans: int = 3,
                 embed_dim: int = 768):
        if not isinstance(patch_size, int) or patch_size < 1:
            raise ConfigError(f"patch_size={patch_size!r} must be a positive integer, e.g. 16")
        self.patch_size = patch_size
        super().__init__(img_size, in_chans, embed_dim, stride=patch_size)
        self.proj = nn.Linear(in_chans * patch_size * patch_size, embed_dim)

    def forward(self, x):
        x = check_images(x, self.in_chans, self.stride, self.kind)
        P = self.patch_size
        weight = self.proj.weight.view(self.embed_dim, self.in_chans, P, P)
        x = F.conv2d(x, weight, self.proj.bias, stride=P)  # (B, D, H/P, W/P)
        return x.flatten(2).transpose(1, 2)  # (B, N, D)

    def macs(self, height, width):
        """{"tokenizer.proj": MACs}: the projection is a Linear on each patch, however it is computed."""
        return {"tokenizer.proj": dense_macs(self.proj, math.prod(self.token_grid(height, width)))}

    def activation_elements(self):
        """The patches saved for `proj`'s backward; live: the patches and their projection."""
        patches = self.num_tokens * self.proj.in_features
        return [patches], [patches + self.num_tokens * self.embed_dim]


class MaskDropout(nn.Dropout):
    """`nn.Dropout` with a cheaper mask on CPU: uniform draws compared with p.

    Each value is kept with probability 1 - p and scaled by 1 / (1 - p), as `nn.Dropout`;
    the mask comes from `rand_like`, about twice as fast there as `bernoulli_`. A no-op in
    eval mode or with p = 0.
    """

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        if self.p == 1:
            return x * 0.0
        keep = torch.rand_like(x).ge_(self.p).div_(1 - self.p)  # 0 or 1 / (1 - p)
        return x * keep


class TokenMlp(nn.Module):
    """fc1 -> GELU -> dropout -> fc2 -> dropout, all d_out wide: timm's `Mlp`, its keys and drops."""

    def __init__(self, dim, drop=(0.0, 0.0)):
        super().__init__()
        self.fc1 = nn.Linear(dim, dim)
        self.act = nn.GELU()
        self.drop1 = MaskDropout(drop[0])
        self.fc2 = nn.Linear(dim, dim)
        self.drop2 = MaskDropout(drop[1])

    def forward(self, x):
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


def in_patch_order(weight, channels, kernel):
    """The last axis of `weight`, in nn.Unfold's (c, i, j) order, put in the (i, j, c) order of patches gathered
    channels-last (see `T2TTokenizer.soft_split`)."""
    return weight.reshape(-1, channels, kernel, kernel).permute(0, 2, 3, 1).reshape(weight.shape)


def norm_then_linear(norm, linear, x, patch=None):
    """`linear(norm(x))`; for soft-split patches of `patch = (channels, kernel)` gathered in (i, j, c)
    order, the same values with the weights read in that order instead of x put back in Unfold's."""
    if patch is None:
        return linear(norm(x))
    weight, bias = (in_patch_order(p, *patch) for p in (norm.weight, norm.bias))
    x = F.layer_norm(x, norm.normalized_shape, weight, bias, norm.eps)
    return F.linear(x, in_patch_order(linear.weight, *patch), linear.bias)


class TokenAttention(nn.Module):
    """The reference T2T single-head attention: widths d_in -> d_out, scale d_in ** -0.5.

    Takes the `qkv` projection of the normed tokens; the residual is taken on v (the input has
    another width), as in the reference.
    """

    def __init__(self, dim, out_dim):
        super().__init__()
        self.out_dim = out_dim
        self.scale = dim**-0.5
        self.qkv = nn.Linear(dim, out_dim * 3, bias=False)
        self.proj = nn.Linear(out_dim, out_dim)

    def forward(self, qkv):
        B, N, _ = qkv.shape
        q, k, v = qkv.reshape(B, N, 3, 1, self.out_dim).permute(2, 0, 3, 1, 4)  # (B, 1, N, d_out)
        y = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        return self.proj(y.transpose(1, 2).reshape(B, N, self.out_dim)).add_(v.squeeze(1))


class TokenBlock(nn.Module):
    """What both T2T blocks share: their inputs may be soft-split patches of `patch = (channels,
    kernel)` gathered in (i, j, c) order (see `norm_then_linear`)."""

    def __init__(self, patch=None):
        super().__init__()
        self.patch = tuple(patch) if patch else None

    def macs(self, tokens):
        """MACs over `tokens` tokens: the Linear and LayerNorm layers, and the subclass's `mixing_macs`."""
        return dense_macs(self, tokens) + self.mixing_macs(tokens)


class TokenTransformer(TokenBlock):
    """T2T block of the `*_t_*` models: attention with a v residual, then a width-d_out MLP."""

    def __init__(self, dim, out_dim, drop=0.0, patch=None):
        super().__init__(patch)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = TokenAttention(dim, out_dim)
        self.norm2 = nn.LayerNorm(out_dim)
        self.mlp = TokenMlp(out_dim, drop=(drop, drop))

    def mixing_macs(self, tokens):
        """QK^T and AV of the single-head attention: 2 T^2 d_out."""
        return 2 * tokens * tokens * self.attn.out_dim

    def forward(self, x):
        x = self.attn(norm_then_linear(self.norm1, self.attn.qkv, x, self.patch))
        return self.mlp(self.norm2(x)).add_(x)


class TokenPerformer(TokenBlock):
    """T2T block of the default models: Performer attention with positive random features.

    phi(x) = exp(w x - |x|^2 / 2) / sqrt(m) with a fixed orthogonal w of m = d_out * kernel_ratio
    rows; y = phi(q) (phi(k)^T v) / (phi(q) . sum_t phi(k) + 1e-8). The products are batched
    matmuls (the reference writes them as einsums) and run in float32 like the reference, under
    autocast too.
    """

    epsilon = 1e-8
    fixed_tables = ("w",)  # see models.layers.count_params

    def __init__(self, dim, out_dim, kernel_ratio=0.5, drop=0.1, patch=None):
        super().__init__(patch)
        self.out_dim = out_dim
        self.norm1 = nn.LayerNorm(dim)
        self.kqv = nn.Linear(dim, 3 * out_dim)
        self.proj = nn.Linear(out_dim, out_dim)
        self.proj_drop = MaskDropout(drop)
        self.norm2 = nn.LayerNorm(out_dim)
        self.mlp = TokenMlp(out_dim, drop=(0.0, drop))
        self.num_features = int(out_dim * kernel_ratio)
        # fixed random features: a buffer (never trained, still saved); counted as parameters by the paper
        w = nn.init.orthogonal_(torch.empty(self.num_features, out_dim)) * math.sqrt(self.num_features)
        self.register_buffer("w", w)

    def attention(self, kqv):
        """From the `kqv` projection of the normed tokens (see `performer_mix`)."""
        v = kqv[..., 2 * self.out_dim:]
        return self.proj_drop(self.proj(performer_mix(kqv, self.w, self.epsilon))).add_(v)

    def mixing_macs(self, tokens):
        """The random-feature products, T m (4 d + 1): w.k and w.q (m x d each), phi(q).sum phi(k) (m),
        phi(k)^T v and phi(q).(phi(k)^T v) (m x d each), per token."""
        return tokens * self.num_features * (4 * self.out_dim + 1)

    def forward(self, x):
        x = self.attention(norm_then_linear(self.norm1, self.kqv, x, self.patch))
        return self.mlp(self.norm2(x)).add_(x)


def random_features(x, w):
    """(B, T, d) -> (B, T, m) in float32: exp(w x - |x|^2 / 2) / sqrt(m), the 1 / sqrt(m) folded into the exponent."""
    B, T, d = x.shape
    x = x.float().reshape(B * T, d)  # a view: k and q are row-strided slices of kqv's output
    offset = (x * x).sum(dim=-1, keepdim=True) / 2 + math.log(w.shape[0]) / 2  # (B*T, 1)
    return torch.addmm(offset, x, w.float().t(), beta=-1).exp_().view(B, T, -1)  # exp(w x - offset)


@register_notrace_function  # a leaf of torch.fx graphs: it switches autocast off, which tracing cannot record
def performer_mix(kqv, w, epsilon):
    """Performer attention from the (B, T, 3 d) projection (reference order k, q, v), before `proj`; float32
    inside, autocast or not (exp turns a bfloat16 rounding of w x into a ~1% error of the feature)."""
    k, q, v = kqv.chunk(3, dim=-1)
    device = kqv.device.type
    with torch.autocast(device, enabled=False) if torch.amp.is_autocast_available(device) else nullcontext():
        kp, qp = random_features(k, w), random_features(q, w)  # (B, T, m)
        normaliser = qp @ kp.sum(dim=1).unsqueeze(-1)  # (B, T, 1)
        kv = v.float().transpose(1, 2) @ kp  # (B, d_out, m)
        y = (qp @ kv.transpose(1, 2)).div_(normaliser + epsilon)  # (B, T, d_out)
    return y.to(v.dtype)


T2T_BLOCKS = {"performer": TokenPerformer, "transformer": TokenTransformer}


def check_stages(stages):
    """Each soft split (k, s, p) must map a multiple-of-s size H to exactly H / s."""
    stages = tuple(tuple(int(v) for v in stage) for stage in stages)
    if not stages or any(len(stage) != 3 for stage in stages):
        raise ConfigError(f"t2t_stages={stages!r} must be a non-empty list of (kernel, stride, padding) triples")
    for kernel, stride, padding in stages:
        if stride < 1 or not 0 < kernel - 2 * padding <= stride:
            raise ConfigError(
                f"soft split (kernel={kernel}, stride={stride}, padding={padding}) does not map H to H/stride; "
                "choose 0 < kernel - 2*padding <= stride, e.g. (7, 4, 2) or (3, 2, 1)"
            )
    return stages


class T2TTokenizer(Tokenizer):
    """Soft split -> T2T block -> re-structurize, repeated; a final soft split and `project`.

    With the reference stages a 224 x 224 image becomes 56x56 tokens of 3*49 values, 28x28 of
    64*9, then 14x14 of 64*9 projected to D. Fewer or gentler stages suit 32 or 64 px images.
    """

    kind = "T2T"

    def __init__(
        self,
        img_size: ImageSize = DEFAULT_IMG_SIZE,
        in_chans: int = 3,
        embed_dim: int = 768,
        token_dim: int = 64,
        block: str = "performer",
        stages: tuple = REFERENCE_T2T_STAGES,
        drop: float | None = None,
    ):
        if block not in T2T_BLOCKS:
            raise ConfigError(f"unknown t2t_block={block!r}; choose one of {sorted(T2T_BLOCKS)}")
        self.stages = check_stages(stages)
        super().__init__(img_size, in_chans, embed_dim, stride=math.prod(s for _, s, _ in self.stages))
        self.block_kind = block
        self.token_dim = token_dim
        if drop is None:  # the reference hard-codes 0.1 dropout in Performer blocks, none in transformers
            drop = 0.1 if block == "performer" else 0.0
        widths = [in_chans] + [token_dim] * (len(self.stages) - 1)  # channels entering each split
        self.blocks = nn.ModuleList(
            T2T_BLOCKS[block](width * kernel**2, token_dim, drop=drop, patch=(width, kernel))
            for width, (kernel, _, _) in zip(widths[:-1], self.stages[:-1])
        )
        self.project = nn.Linear(widths[-1] * self.stages[-1][0] ** 2, embed_dim)

    def soft_split(self, x, stage):
        """(B, H, W, C) -> (B, h, w, k*k*C): each token's overlapping patch, nn.Unfold's values
        gathered in (i, j, c) order: from channels-last tokens that copies runs of k*C adjacent
        values, where Unfold's (c, i, j) would gather them one by one and transpose after."""
        kernel, stride, padding = self.stages[stage]
        x = F.pad(x, (0, 0, padding, padding, padding, padding))  # zero border around H and W
        x = x.unfold(1, kernel, stride).unfold(2, kernel, stride)  # (B, h, w, C, k, k), a view
        return x.permute(0, 1, 2, 4, 5, 3).flatten(3)  # (B, h, w, k*k*C), one copy

    def split_and_project(self, x):
        """The last soft split and `project` as one strided convolution: (B, C, H, W) -> (B, N, D).

        Unfold orders a patch's values c*k*k + i*k + j, as the Linear weight viewed (D, C, k, k).
        """
        kernel, stride, padding = self.stages[-1]
        weight = self.project.weight.view(self.embed_dim, -1, kernel, kernel)
        x = F.conv2d(x, weight, self.project.bias, stride=stride, padding=padding)  # (B, D, h, w)
        return x.flatten(2).transpose(1, 2)  # (B, N, D), contiguous for a channels-last input

    def stage_tokens(self, height, width):
        """Tokens after each soft split: [3136, 784, 196] at 224 x 224 with the reference stages."""
        tokens = []
        for _, stride, _ in self.stages:
            height, width = height // stride, width // stride
            tokens.append(height * width)
        return tokens

    def macs(self, height, width):
        """{"tokenizer.blocks": MACs, "tokenizer.project": MACs}: each T2T block over its stage's tokens,
        then `project` on the last split's."""
        tokens = self.stage_tokens(height, width)
        return {
            "tokenizer.blocks": sum(block.macs(count) for block, count in zip(self.blocks, tokens)),
            "tokenizer.project": dense_macs(self.project, tokens[-1]),
        }

    def activation_elements(self):
        """Per soft split: a block's stage saves its unfolded patches and norm1 of them (each k*k*C
        per token), q, k, v, the features or attention out, proj, norm2 and the MLP's two (8 x d_out);
        live at most: the patches and q, k, v. The last split saves and holds its patches and `project`'s
        output."""
        saved, live = [], []
        channels = self.in_chans
        for stage, (tokens, (kernel, _, _)) in enumerate(zip(self.stage_tokens(*self.img_size), self.stages)):
            unfolded = channels * kernel**2
            if stage < len(self.blocks):
                saved.append(tokens * (2 * unfolded + 8 * self.token_dim))
                live.append(tokens * (unfolded + 3 * self.token_dim))
            else:
                saved.append(tokens * (unfolded + self.embed_dim))
                live.append(saved[-1])
            channels = self.token_dim
        return saved, live

    def forward(self, x):
        x = check_images(x, self.in_chans, self.stride, self.kind).permute(0, 2, 3, 1)  # (B, H, W, C), a view
        for stage, block in enumerate(self.blocks):
            patches = self.soft_split(x, stage)  # (B, h, w, k*k*C)
            x = block(patches.flatten(1, 2)).view(patches.shape[:3] + (self.token_dim,))  # (B, h, w, token_dim)
        return self.split_and_project(x.permute(0, 3, 1, 2))  # (B, C, h, w), channels-last
