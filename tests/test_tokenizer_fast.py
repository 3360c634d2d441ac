"""The fast T2T front end computes what the straightforward one does: logits and gradients.

The reference here is the plain computation (nn.Unfold -> LayerNorm -> Linear, the Performer
as separate feature maps, a final Unfold + `project`), run on the same module's weights.
"""
import math

import pytest
import torch
import torch.nn.functional as F

import models
from models.tokenizers import MaskDropout, TokenPerformer, in_patch_order

TOL = 1e-4
CONFIGS = [
    dict(img_size=32, t2t_stages=((3, 2, 1), (3, 2, 1))),
    dict(img_size=(32, 48), t2t_stages=((3, 2, 1), (3, 2, 1))),
    dict(img_size=(64, 32)),  # the reference stages (7, 4, 2), (3, 2, 1), (3, 2, 1)
    dict(img_size=(24, 40), t2t_stages=((3, 2, 1), (5, 2, 2), (2, 2, 0))),
    dict(img_size=16, t2t_stages=((4, 4, 0),)),  # a single split: `project` only, no T2T block
]


def plain_mlp(mlp, x):
    return mlp.fc2(F.gelu(mlp.fc1(x)))


def plain_performer(block, x):
    def features(t):
        return torch.exp(t @ block.w.t() - (t * t).sum(-1, keepdim=True) / 2) / math.sqrt(block.num_features)

    k, q, v = block.kqv(block.norm1(x)).split(block.out_dim, dim=-1)
    kp, qp = features(k), features(q)
    normaliser = torch.einsum("bti,bi->bt", qp, kp.sum(dim=1)).unsqueeze(-1)
    y = torch.einsum("bti,bni->btn", qp, torch.einsum("bin,bim->bnm", v, kp)) / (normaliser + 1e-8)
    x = v + block.proj(y)
    return x + plain_mlp(block.mlp, block.norm2(x))


def plain_token_transformer(block, x):
    attn = block.attn
    q, k, v = attn.qkv(block.norm1(x)).split(attn.out_dim, dim=-1)
    y = ((q * attn.scale) @ k.transpose(1, 2)).softmax(dim=-1) @ v
    x = v + attn.proj(y)
    return x + plain_mlp(block.mlp, block.norm2(x))


def plain_tokenizer(tok, x):
    """Unfold, T2T block, re-structurize with transpose + reshape; the last Unfold then `project`."""
    height, width = x.shape[-2:]
    for i, (kernel, stride, padding) in enumerate(tok.stages):
        x = F.unfold(x, kernel, padding=padding, stride=stride).transpose(1, 2)  # (B, h*w, c*k*k)
        height, width = height // stride, width // stride
        if i < len(tok.blocks):
            block = tok.blocks[i]
            x = (plain_performer if isinstance(block, TokenPerformer) else plain_token_transformer)(block, x)
            x = x.transpose(1, 2).reshape(x.shape[0], tok.token_dim, height, width)
    return tok.project(x)


def logits_and_grads(model, x, tokenizer=None):
    """Logits and {name: grad} of a cross-entropy step; `tokenizer(tok, x)` replaces the front end."""
    model.zero_grad(set_to_none=True)
    if tokenizer is not None:
        model.tokenizer.forward = lambda images: tokenizer(model.tokenizer, images)
    try:
        logits = model(x)
    finally:
        model.tokenizer.__dict__.pop("forward", None)
    F.cross_entropy(logits, torch.arange(x.shape[0]) % logits.shape[1]).backward()
    return logits.detach(), {n: p.grad for n, p in model.named_parameters() if p.requires_grad}


def randomized(model):
    """Non-trivial norms and biases, so equivalence is not an accident of the init."""
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    return model


@pytest.mark.parametrize("block", ["performer", "transformer"])
@pytest.mark.parametrize("config", CONFIGS, ids=str)
@pytest.mark.parametrize("train", [False, True])
def test_logits_and_parameter_grads_match_the_plain_computation(block, config, train):
    torch.manual_seed(0)
    model = models.create_model("t2t_vit_7", depth=1, embed_dim=32, num_heads=2, token_dim=16, num_classes=5,
                                t2t_block=block, t2t_drop=0.0, **config)
    randomized(model).train(train)
    x = torch.randn(3, 3, *model.img_size)
    fast_logits, fast_grads = logits_and_grads(model, x)
    plain_logits, plain_grads = logits_and_grads(model, x, plain_tokenizer)
    assert (fast_logits - plain_logits).abs().max() <= TOL
    assert fast_grads.keys() == plain_grads.keys()
    for name, grad in fast_grads.items():
        assert (grad - plain_grads[name]).abs().max() <= TOL, name


def test_keys_shapes_and_parameter_counts_are_the_reference_layout():
    model = models.create_model("t2t_vit_7", img_size=32, depth=1)
    block = model.tokenizer.blocks[0]
    assert {k for k in model.state_dict() if k.startswith("tokenizer.blocks.0.")} == {
        f"tokenizer.blocks.0.{k}" for k in (
            "norm1.weight", "norm1.bias", "kqv.weight", "kqv.bias", "proj.weight", "proj.bias", "norm2.weight",
            "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias", "w")
    }
    assert block.w.shape == (32, 64) and not block.w.requires_grad
    assert model.tokenizer.project.weight.shape == (model.embed_dim, 64 * 9)


def test_performer_dropout_is_the_reference_default_and_free_when_off():
    tok = models.create_model("t2t_vit_7", img_size=32, depth=1).tokenizer
    assert tok.blocks[0].proj_drop.p == tok.blocks[0].mlp.drop2.p == 0.1
    x = torch.randn(4, 8)
    assert MaskDropout(0.1).eval()(x) is x and MaskDropout(0.0).train()(x) is x


def test_mask_dropout_keeps_one_minus_p_and_rescales():
    torch.manual_seed(0)
    y = MaskDropout(0.1).train()(torch.ones(200_000))
    assert set(y.unique().tolist()) <= {0.0, torch.tensor(1 / 0.9).item()}
    assert abs((y == 0).float().mean().item() - 0.1) < 0.005
    assert abs(y.mean().item() - 1.0) < 0.01


def test_dropout_in_train_mode_changes_the_output_only_in_train_mode():
    torch.manual_seed(0)
    tok = models.create_model("t2t_vit_7", img_size=32, t2t_stages=((3, 2, 1), (3, 2, 1)), depth=1).tokenizer
    x = torch.randn(2, 3, 32, 32)
    tok.eval()
    assert torch.equal(tok(x), tok(x))
    tok.train()
    assert not torch.equal(tok(x), tok(x))


@pytest.mark.parametrize("stage", [(7, 4, 2), (3, 2, 1), (3, 1, 1), (2, 2, 0)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_soft_split_gathers_unfold_patches_in_channels_last_order(stage, channels_last):
    kernel, stride, padding = stage
    tokenizer = models.T2TTokenizer(img_size=(16, 24), in_chans=5, embed_dim=8, token_dim=4, stages=(stage, (1, 1, 0)))
    x = torch.randn(2, 5, 16, 24)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    gathered = tokenizer.soft_split(x.permute(0, 2, 3, 1), 0)  # (B, h, w, k*k*C)
    unfolded = F.unfold(x, kernel, padding=padding, stride=stride).transpose(1, 2)  # (B, h*w, C*k*k)
    assert gathered.shape == (2, 16 // stride, 24 // stride, 5 * kernel * kernel)
    assert torch.equal(gathered.flatten(1, 2), in_patch_order(unfolded, 5, kernel))


def test_performer_features_and_products_stay_float32_under_autocast():
    torch.manual_seed(0)
    block = TokenPerformer(12, 8, drop=0.0).eval()
    block.proj = torch.nn.Identity()  # what remains is the random features, their products and v
    kqv = torch.randn(2, 50, 24) * 3
    exact = block.attention(kqv)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = block.attention(kqv)
    assert autocast.dtype == torch.float32
    assert (autocast - exact).abs().max() <= 1e-5 * exact.abs().max()  # bfloat16 anywhere inside: ~1e-2
