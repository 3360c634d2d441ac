"""fp32 against bf16 autocast, a full training step (forward, backward, AdamW) of each CPU study model at 32 px,
and of the ViT arm widened: the measurement behind `--amp auto`'s width rule (bench/accuracy/precision.py).

The two run side by side, interleaved: fp32, bf16, fp32, bf16, ..., fp32; the result is `bf16_speedup`, the
median over rounds of (mean of the fp32 steps either side) / the bf16 step (> 1: bf16 faster), in extra_info
and printed at the end. pytest-benchmark's timed call is the bf16 step. Run at the study's one thread:
`OMP_NUM_THREADS=1 pytest bench/bench_precision.py --benchmark-only`.
"""
import copy
import statistics

from bench.cost.timing import TimingSetup, make_step, timed_call
from bench.suite import Case, benchmark_info

STUDY = {"img_size": 32}
SIZES = {  # cases, batch size, warm-up rounds, timed rounds
    "smoke": ([Case(name, {**STUDY, "depth": 1}) for name in ("vit_lite_tiny", "t2t_vit_lite_tiny")]
              + [Case("resnet_cifar_tiny")], 2, 0, 1),
    "default": ([Case(name, STUDY) for name in ("vit_lite_tiny", "t2t_vit_lite_tiny", "t2t_vit_t_lite_tiny")]
                + [Case("resnet_cifar_tiny")]
                + [Case("vit_lite_tiny", {**STUDY, "embed_dim": width, "num_heads": width // 64})
                   for width in (128, 192)], 32, 1, 3),  # batch 32: emulated bf16 runs a width-192 step in ~20 s
}
SIZES["full"] = (SIZES["default"][0] + [Case("vit_lite_tiny", {**STUDY, "embed_dim": 256, "num_heads": 4})], 128,
                 2, 11)


def pytest_generate_tests(metafunc):
    if "precision_case" in metafunc.fixturenames:
        cases = SIZES[metafunc.config.getoption("--bench-size")][0]
        metafunc.parametrize("precision_case", cases, ids=[case.id for case in cases])


def test_bf16_against_fp32(precision_case, benchmark, request):
    _, batch_size, warmup, rounds = SIZES[request.config.getoption("--bench-size")]
    setups = {dtype: TimingSetup(batch_size=batch_size, dtype=dtype) for dtype in ("float32", "bfloat16")}
    model = precision_case.build()
    steps = {dtype: make_step(copy.deepcopy(model), setup, "train") for dtype, setup in setups.items()}
    fp32, bf16 = [], []

    def bf16_step():
        bf16.append(timed_call(*steps["bfloat16"]))

    benchmark.group = "precision: train step, fp32 vs bf16 autocast"
    # fp32 untimed by pytest-benchmark before each round's bf16 step, and once after the last: each bf16 step is
    # compared with the fp32 steps either side of it, so a machine speeding up or slowing down favours neither
    benchmark.pedantic(bf16_step, setup=lambda: fp32.append(timed_call(*steps["float32"])), rounds=rounds,
                       warmup_rounds=warmup, iterations=1)
    fp32.append(timed_call(*steps["float32"]))
    ratios = [(before + after) / 2 / step for before, after, step in zip(fp32[warmup:], fp32[warmup + 1:],
                                                                          bf16[warmup:])]
    benchmark.extra_info.update(
        benchmark_info(model, setups["bfloat16"], "train"), precision_pair=precision_case.id,
        bf16_speedup=statistics.median(ratios), fp32_median_s=statistics.median(fp32[warmup:]),
        bf16_median_s=statistics.median(bf16[warmup:]), fp32_s=fp32, bf16_s=bf16,
    )
