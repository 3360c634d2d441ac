"""Ours beside a baseline, timed interleaved in one process: each round times both (alternating which
goes first), and the result is the median of the per-round ratios, so a machine that slows down
mid-run slows both sides of a round alike. Pairs: the reference implementation of the same config
(timm's VisionTransformer; the reference-style T2T-ViT), the ViT with T2T-ViT's backbone (images/s x
MACs: efficiency per MAC) and timm's DeiT-Ti. Every ratio is in the JSON's "ratios".
"""
import pytest


@pytest.mark.parametrize("mode", ["inference", "train"])
def test_pair(pair_case, mode, run_pair):
    run_pair(pair_case, mode)
