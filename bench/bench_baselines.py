"""Ours vs a baseline of the same config, side by side in one run.

ViT: timm's VisionTransformer. T2T-ViT: the reference-style re-implementation (explicit
softmax(QK^T)V, einsum Performer). The speed ratio of each pair is in the JSON's "ratios".
"""
from bench.suite import build_baseline


def test_ours(pair_case, run_benchmark):
    run_benchmark(pair_case.build(), "inference", group=f"pair: {pair_case.id}", pair=pair_case.id, role="ours")


def test_baseline(pair_case, run_benchmark):
    ours = pair_case.build()
    run_benchmark(build_baseline(ours), "inference", group=f"pair: {pair_case.id}", described=ours,
                  pair=pair_case.id, role="baseline")
