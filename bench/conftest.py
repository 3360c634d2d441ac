"""pytest-benchmark suite: `pytest bench --benchmark-only` (default sizes, < 10 min on 2 CPU cores).

--bench-size smoke    tiny configs, run once by the test command with --benchmark-disable
--bench-size default  every named model at 224 px, batch 1, a small depth/heads/patch sweep,
                      the timm baselines, and the ours-vs-baseline pairs at batch 8
--bench-size full     the full grid and GPU batch sizes
--bench-compile       torch.compile every model first (compile time recorded apart, as compile_s)
--bench-allocator     steady (default: freed CPU memory kept for the next step) or system

Every benchmark's `extra_info` holds model, params, MACs, image size, batch, tokens, device, dtype,
compile, allocator and dropout rates, so `--benchmark-json` is a complete record. Pairs (ours vs a
baseline) are timed interleaved; their ratios are printed at the end and stored in the JSON under
"ratios". Uncompiled pairs also time our tokenizer alone in each round: `front_share` (its part of
our step) and `speedup_bound` (baseline / (ours - front): the speed-up if our front end took no time).
"""
import pytest

from bench import suite
from bench.configs import ALLOCATORS as POLICIES
from bench.configs import DEVICES
from bench.cost.timing import DTYPES, TimingSetup, timed_call


def pytest_addoption(parser):
    group = parser.getgroup("vitbench")
    group.addoption("--bench-size", choices=sorted(suite.SIZES), default="default", help="which grid to run")
    group.addoption("--bench-device", choices=DEVICES, default="cpu", help="device to time on")
    group.addoption("--bench-dtype", choices=list(DTYPES), default="float32")
    group.addoption("--bench-compile", action="store_true", help="torch.compile each model (compile time apart)")
    group.addoption("--bench-allocator", choices=POLICIES, default=TimingSetup.allocator,
                    help="what freed CPU memory does between steps (bench/allocator.py)")


def pytest_generate_tests(metafunc):
    size = suite.SIZES[metafunc.config.getoption("--bench-size")]
    for argname in ("named_case", "sweep_case", "baseline_case", "pair_case"):
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
        dtype=request.config.getoption("--bench-dtype"), compile=request.config.getoption("--bench-compile"),
        warmup=size["warmup"], repeats=size[f"{prefix}rounds"], allocator=request.config.getoption("--bench-allocator"),
    )


@pytest.fixture
def run_benchmark(benchmark, timing):
    """Time one step of `model` in `mode` with pytest-benchmark and record what was timed."""

    def run(model, mode, group, **info):
        step, device, compile_s = suite.compiled_step(model, timing, mode)
        benchmark.group = group
        benchmark.extra_info.update(suite.benchmark_info(model, timing, mode), compile_s=compile_s, **info)
        benchmark.pedantic(lambda: timed_call(step, device), rounds=timing.repeats, warmup_rounds=timing.warmup,
                           iterations=1)

    return run


@pytest.fixture
def run_pair(benchmark, timing):
    """Time ours with pytest-benchmark and its baseline in the same rounds (`suite.time_pair`)."""
    return lambda pair, mode: suite.time_pair(benchmark, timing, pair, mode)


RATIO_KEYS = ("speedup", "mac_efficiency", "ours_median_s", "baseline_median_s", "mode", "baseline",
              "front_share", "speedup_bound", "allocator")


def speed_ratios(benchmarks):
    """{'<pair> [<mode>]': speedup (baseline time / ours, median of interleaved rounds), mac_efficiency
    (speedup x ours' MACs / the baseline's: images/s x MACs relative to the baseline), medians}."""
    return {f"{b['extra_info']['pair']} [{b['extra_info']['mode']}]": {k: b["extra_info"].get(k) for k in RATIO_KEYS}
            for b in benchmarks if "speedup" in b["extra_info"]}


def bf16_ratios(benchmarks):
    """{model: bf16 speed-up over fp32 in a training step} of bench_precision.py's benchmarks."""
    return {b["extra_info"]["precision_pair"]: b["extra_info"]["bf16_speedup"] for b in benchmarks
            if "bf16_speedup" in b["extra_info"]}


def pytest_benchmark_update_json(config, benchmarks, output_json):
    output_json["ratios"] = speed_ratios(output_json["benchmarks"])
    output_json["bf16_ratios"] = bf16_ratios(output_json["benchmarks"])


def pytest_terminal_summary(terminalreporter, config):
    session = getattr(config, "_benchmarksession", None)
    if session is None or session.disabled or not session.benchmarks:
        return
    bf16 = bf16_ratios([{"extra_info": b.extra_info} for b in session.benchmarks])
    if bf16:
        terminalreporter.section("bf16 autocast vs fp32, train step (interleaved; > 1: bf16 faster)")
        for model, speedup in bf16.items():
            terminalreporter.write_line(f"{model:<90} {speedup:6.3f}x")
    ratios = speed_ratios([{"extra_info": b.extra_info} for b in session.benchmarks])
    if ratios:
        terminalreporter.section("ours vs baseline (interleaved; speedup > 1: ours faster; efficiency: img/s x MACs)")
        for pair, ratio in sorted(ratios.items()):
            bound = f"  bound {ratio['speedup_bound']:.3f}x" if ratio["speedup_bound"] else ""
            terminalreporter.write_line(
                f"{pair:<90} {ratio['speedup']:6.3f}x  efficiency {ratio['mac_efficiency']:.3f}{bound}")
