"""pytest-benchmark suite: `pytest bench --benchmark-only` (default sizes, < 10 min on 2 CPU cores).

--bench-size smoke    tiny configs, run once by the test command with --benchmark-disable
--bench-size default  every named model at 224 px, batch 1, and a small depth/heads/patch sweep
--bench-size full     the full grid and GPU batch sizes

Every benchmark's `extra_info` holds model, params, MACs, image size, batch, tokens, device and
dtype, so `--benchmark-json` is a complete record. Pairs (ours vs a baseline of the same
config) get a speed ratio, printed at the end and stored in the JSON under "ratios".
"""
import statistics

import pytest
import torch

from bench import suite
from bench.cost.timing import DEVICES, DTYPES, TimingSetup, make_step


def pytest_addoption(parser):
    group = parser.getgroup("vitbench")
    group.addoption("--bench-size", choices=sorted(suite.SIZES), default="default", help="which grid to run")
    group.addoption("--bench-device", choices=DEVICES, default="cpu", help="device to time on")
    group.addoption("--bench-dtype", choices=list(DTYPES), default="float32")


def pytest_generate_tests(metafunc):
    size = suite.SIZES[metafunc.config.getoption("--bench-size")]
    for argname in ("named_case", "sweep_case", "pair_case"):
        if argname in metafunc.fixturenames:
            cases = size[argname]
            metafunc.parametrize(argname, cases, ids=[case.id for case in cases])


@pytest.fixture
def timing(request):
    """Pairs (ours vs baseline) get bigger batches and more rounds: their ratio is the result."""
    size = suite.SIZES[request.config.getoption("--bench-size")]
    prefix = "pair_" if "pair_case" in request.fixturenames else ""
    return TimingSetup(
        batch_size=size[f"{prefix}batch_size"], device=request.config.getoption("--bench-device"),
        dtype=request.config.getoption("--bench-dtype"), warmup=size["warmup"], repeats=size[f"{prefix}rounds"],
    )


@pytest.fixture
def run_benchmark(benchmark, timing):
    """Time one step of `model` in `mode` with pytest-benchmark and record what was timed."""

    def run(model, mode, group, described=None, **info):
        step, device = make_step(model, timing, mode)

        def timed():
            step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        benchmark.group = group
        benchmark.extra_info.update(suite.benchmark_info(described or model, timing, mode), **info)
        benchmark.pedantic(timed, rounds=timing.repeats, warmup_rounds=timing.warmup, iterations=1)

    return run


def speed_ratios(benchmarks):
    """For each pair group: baseline median time / ours (above 1 means ours is faster)."""
    medians = {}
    for bench in benchmarks:
        info = bench["extra_info"]
        if "pair" in info:
            medians.setdefault(info["pair"], {})[info["role"]] = bench["stats"]["median"]
    return {
        pair: {
            "speedup": roles["baseline"] / roles["ours"],
            "ours_median_s": roles["ours"],
            "baseline_median_s": roles["baseline"],
        }
        for pair, roles in medians.items()
        if {"ours", "baseline"} <= set(roles)
    }


def pytest_benchmark_update_json(config, benchmarks, output_json):
    output_json["ratios"] = speed_ratios(output_json["benchmarks"])


def pytest_terminal_summary(terminalreporter, config):
    session = getattr(config, "_benchmarksession", None)
    if session is None or session.disabled or not session.benchmarks:
        return
    records = [
        {"extra_info": b.extra_info, "stats": {"median": statistics.median(b.stats.data)}}
        for b in session.benchmarks
        if b.stats and b.stats.data
    ]
    ratios = speed_ratios(records)
    if ratios:
        terminalreporter.section("speed ratios (baseline time / ours; > 1 means ours is faster)")
        for pair, ratio in sorted(ratios.items()):
            terminalreporter.write_line(f"{pair:<60} {ratio['speedup']:.3f}x")
