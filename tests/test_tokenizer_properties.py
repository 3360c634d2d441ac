"""Property-based checks of tokenizer geometry: valid sizes follow the formula, others raise."""
import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from models import ConfigError, InputShapeError
from models.tokenizers import PatchTokenizer, T2TTokenizer

FAST = settings(max_examples=25, deadline=None)


@FAST
@given(patch=st.integers(1, 12), rows=st.integers(1, 5), cols=st.integers(1, 5), channels=st.integers(1, 4))
def test_patch_tokens_follow_the_formula(patch, rows, cols, channels):
    tok = PatchTokenizer(img_size=(rows * patch, cols * patch), patch_size=patch, in_chans=channels, embed_dim=8)
    out = tok(torch.randn(2, channels, rows * patch, cols * patch))
    assert tok.grid_size == (rows, cols)
    assert out.shape == (2, rows * cols, 8)
    assert tok.proj.in_features == channels * patch * patch


@FAST
@given(patch=st.integers(2, 12), height=st.integers(1, 80), width=st.integers(1, 80))
def test_patch_sizes_not_divisible_raise(patch, height, width):
    tok = PatchTokenizer(img_size=patch, patch_size=patch, embed_dim=4)
    if height % patch == 0 and width % patch == 0:
        assert tok.token_grid(height, width) == (height // patch, width // patch)
    else:
        try:
            tok.token_grid(height, width)
        except InputShapeError as e:
            assert f"{height}x{width}" in str(e) and str(patch) in str(e)
        else:
            raise AssertionError("no error")


stage = st.integers(1, 3).flatmap(  # stride s, then a kernel/padding with 0 < k - 2p <= s
    lambda s: st.integers(0, 2).flatmap(
        lambda p: st.integers(2 * p + 1, 2 * p + s).map(lambda k: (k, s, p))
    )
)


@FAST
@given(stages=st.lists(stage, min_size=1, max_size=3), rows=st.integers(1, 3), cols=st.integers(1, 3),
       block=st.sampled_from(["performer", "transformer"]))
def test_t2t_tokens_follow_the_formula(stages, rows, cols, block):
    stride = math.prod(s for _, s, _ in stages)
    tok = T2TTokenizer((rows * stride, cols * stride), embed_dim=8, token_dim=4, block=block, stages=stages)
    out = tok(torch.randn(1, 3, rows * stride, cols * stride))
    assert tok.stride == stride and tok.grid_size == (rows, cols)
    assert out.shape == (1, rows * cols, 8)
    assert len(tok.blocks) == len(stages) - 1
    last_width = 3 if len(stages) == 1 else 4
    assert tok.project.in_features == last_width * stages[-1][0] ** 2


@FAST
@given(kernel=st.integers(1, 9), stride=st.integers(1, 4), padding=st.integers(0, 4))
def test_t2t_stage_validity(kernel, stride, padding):
    valid = 0 < kernel - 2 * padding <= stride
    try:
        T2TTokenizer(stride * 2, embed_dim=8, token_dim=4, stages=[(kernel, stride, padding)])
    except ConfigError as e:
        assert not valid and "does not map H to H/stride" in str(e)
    else:
        assert valid
