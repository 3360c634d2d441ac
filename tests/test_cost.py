"""Cost harness: timing, memory, batch search, sweeps (resume, skip, oom), profile CLI."""
import functools
import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import timm
import torch

import models
from bench import suite
from bench.cli import main as cli
from bench.cost import memory, sweep, timing
from bench.cost.sweep import SweepSpec, check_names, run_sweep
from bench.cost.timing import TimingSetup, measure_throughput
from bench.errors import ResultsError
from bench.report import plots, tables
from models import ConfigError
from models.errors import VitbenchError
from tests.harness_helpers import cli_error

from .conftest import REPO

TINY = {"img_size": 32, "depth": 1, "embed_dim": 32, "num_heads": 2}


def tiny(name="t2t_vit_7", **extra):
    return models.create_model(name, **{**TINY, **extra})


@pytest.mark.parametrize("mode", ["inference", "train"])
@pytest.mark.parametrize("dtype, channels_last", [("float32", False), ("bfloat16", True), ("float16", False)])
def test_throughput_reports_median_and_iqr(mode, dtype, channels_last):
    setup = TimingSetup(batch_size=2, dtype=dtype, channels_last=channels_last, warmup=1, repeats=4)
    result = measure_throughput(tiny(), setup, mode)
    assert 0 < result["img_s_q1"] <= result["img_s"] <= result["img_s_q3"]
    assert result["repeats"] == 4 and result["threads"] == torch.get_num_threads()


def test_training_step_really_trains():
    model = tiny()
    before = model.blocks[0].mlp.fc1.weight.detach().clone()
    measure_throughput(model, TimingSetup(batch_size=2, warmup=0, repeats=1), "train")
    assert not torch.equal(before, model.blocks[0].mlp.fc1.weight)


@pytest.mark.parametrize("values, message", [
    ({"dtype": "float8"}, "dtype='float8' is not allowed; it must be one of float32, bfloat16, float16"),
    ({"device": "tpu"}, "device='tpu' is not allowed; it must be one of cpu, cuda"),
    ({"batch_size": 0}, "batch_size=0 is not allowed; it must be an integer >= 1"),
])
def test_bad_timing_options(values, message):
    with pytest.raises(ConfigError, match=message):
        TimingSetup(**values)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown when CUDA is absent")
def test_cuda_without_gpu_is_a_clear_error():
    with pytest.raises(ConfigError, match="no CUDA GPU; use --device cpu"):
        measure_throughput(tiny(), TimingSetup(device="cuda"))


def test_cpu_peak_memory_is_measured_in_a_subprocess():
    small = memory.measure_peak_memory("vb_vit_tiny_patch16_224", {**TINY, "patch_size": 8}, TimingSetup(batch_size=2))
    assert small["memory_method"] == "cpu_peak_rss_growth" and small["peak_memory_bytes"] > 0
    overrides = {"img_size": 64, "depth": 2, "embed_dim": 256, "num_heads": 4, "patch_size": 8}
    infer = memory.measure_peak_memory("vb_vit_tiny_patch16_224", overrides, TimingSetup(batch_size=16), "inference")
    train = memory.measure_peak_memory("vb_vit_tiny_patch16_224", overrides, TimingSetup(batch_size=16), "train")
    assert train["peak_memory_bytes"] > infer["peak_memory_bytes"]


def test_activation_estimate_scales_with_batch_and_mode():
    model = tiny("t2t_vit_t_14")
    one, four = (memory.activation_estimate_bytes(model, b, "train") for b in (1, 4))
    assert four == 4 * one
    assert memory.activation_estimate_bytes(model, 1, "inference") < one


def test_largest_batch_backs_off_on_oom():
    calls = []

    def fits(batch):
        calls.append(batch)
        return batch <= 37

    assert memory.largest_batch(fits, limit=1000) == 37
    assert calls[:7] == [1, 2, 4, 8, 16, 32, 64]
    assert memory.largest_batch(lambda b: False) == 0
    assert memory.largest_batch(lambda b: True, limit=100) == 100


def test_cuda_oom_becomes_a_result_row():
    def run():
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    row = sweep.guard_oom("throughput_train", "img/s", 512, run)
    assert row == ("throughput_train", None, "img/s", {"status": "oom", "reason": "out of memory at batch 512"})
    with pytest.raises(RuntimeError, match="shape"):
        sweep.guard_oom("x", "y", 1, lambda: (_ for _ in ()).throw(RuntimeError("bad shape")))


SPEC = dict(families=["vit", "t2t-performer"], depth=[1], num_heads=[2, 3], embed_dim=[32], patch_size=[8, 12],
            img_size=[32], measure=["params", "throughput"], batch_size=2, warmup=0, repeats=1)


def test_sweep_writes_a_tidy_table_with_skips_and_provenance(tmp_path):
    table = run_sweep(SweepSpec.from_flat(SPEC), tmp_path / "run", progress=lambda _: None)
    ok = table[table.status == "ok"]
    skipped = table[table.status == "skipped"]
    assert set(ok.model) == {"vb_vit_small_patch16_224", "t2t_vit_14"}
    assert len(ok.groupby(["config_family", "config_num_heads", "config_patch_size"], dropna=False)) == 2
    assert any("num_heads=3 does not divide embed_dim=32" in r for r in skipped.reason)
    assert any("not divisible by the patch stride 12" in r for r in skipped.reason)
    assert {"params", "params_trainable", "throughput_inference"} <= set(ok.measurement)
    assert ok[ok.measurement == "throughput_inference"].value.gt(0).all()
    saved = json.loads((tmp_path / "run" / "provenance.json").read_text())
    assert {"date", "git_commit", "versions", "device", "threads", "allocator", "command"} <= set(saved)
    assert len(json.loads((tmp_path / "run" / "sweep.json").read_text())) == len(table)


def test_sweep_refuses_to_overwrite_and_resumes(tmp_path):
    out = tmp_path / "run"
    run_sweep(SweepSpec.from_flat(SPEC), out, progress=lambda _: None)
    with pytest.raises(ResultsError, match="--resume to continue it or --overwrite"):
        run_sweep(SweepSpec.from_flat(SPEC), out)
    measured = []
    run_sweep(SweepSpec.from_flat(SPEC), out, resume=True, progress=measured.append)
    assert measured == []
    with pytest.raises(ResultsError, match=r"another spec \(depth: \[1\] there, \[2\] now\)"):
        run_sweep(SweepSpec.from_flat({**SPEC, "depth": [2]}), out, resume=True)
    saved = json.loads((out / "spec.json").read_text())
    del saved["timm"]  # a sweep begun before the key existed resumes with its default
    (out / "spec.json").write_text(json.dumps(saved))
    run_sweep(SweepSpec.from_flat(SPEC), out, resume=True, progress=measured.append)
    assert measured == []
    del saved["allocator"]  # ... and with what it was measured with where that was not the default
    (out / "spec.json").write_text(json.dumps(saved))
    with pytest.raises(ResultsError, match="allocator: 'system' there, 'steady' now"):
        run_sweep(SweepSpec.from_flat(SPEC), out, resume=True)
    run_sweep(SweepSpec.from_flat({**SPEC, "allocator": "system"}), out, resume=True, progress=measured.append)
    assert measured == []
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "data.csv").write_text("a,b\n")
    with pytest.raises(ResultsError, match="not a vitbench sweep folder"):
        run_sweep(SweepSpec.from_flat(SPEC), tmp_path / "foreign")


@pytest.mark.slow
def test_killed_sweep_resumes_without_repeating_rows(tmp_path):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "bench.cli", "sweep", "--families", "vit", "t2t-performer", "t2t-transformer",
            "--depth", "1", "2", "--heads", "2", "--embed-dim", "64", "--img-size", "64", "--patch-size", "8",
            "--measure", "params", "throughput", "--batch-size", "4", "--repeats", "20", "--warmup", "0",
            "--out", str(out)]
    child = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = out / "rows.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (rows.exists() and rows.read_text().count("\n") >= 1):
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert not (out / "sweep.csv").exists(), "the sweep finished before it was killed; make it longer"
    first_keys = {json.loads(line)["config_key"] for line in rows.read_text().splitlines() if line.strip()}
    assert 0 < len(first_keys) < 6
    assert subprocess.run(args + ["--resume"], cwd=REPO, capture_output=True).returncode == 0
    final = [json.loads(line) for line in rows.read_text().splitlines()]
    per_config = {}
    for row in final:
        per_config.setdefault(row["config_key"], []).append(row["measurement"])
    assert len(per_config) == 6
    assert all(sorted(m) == sorted(set(m)) for m in per_config.values())  # nothing measured twice


def test_sweep_toml_errors_name_the_key_and_line(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('families = ["vit"]\ndepth = [2, 4]\nbatch_size = 4\n')
    spec = SweepSpec.from_sources(good, {"batch_size": 8})
    assert spec.depth == [2, 4] and spec.timing.batch_size == 8
    bad_key = tmp_path / "bad.toml"
    bad_key.write_text('families = ["vit"]\n\ndepht = [2]\n')
    with pytest.raises(ConfigError, match=r"unknown setting 'depht' in .*bad.toml line 3; did you mean depth"):
        SweepSpec.from_sources(bad_key)
    broken = tmp_path / "broken.toml"
    broken.write_text('families = ["vit"]\ndepth = = 3\n')
    with pytest.raises(ConfigError, match="broken.toml is not a TOML file .*line 2"):
        SweepSpec.from_sources(broken)
    for values, message in [
        ({"families": ["cnn"]}, "families=\\['cnn'\\] is not allowed; it must be a list, each one of vit"),
        ({"dtype": "int8"}, "dtype='int8' is not allowed"),
        ({"models": ["t2t_vit_99"]}, "unknown models value 't2t_vit_99'"),
    ]:
        with pytest.raises(ConfigError, match=message):
            check_names(SweepSpec.from_flat(values))


def test_profile_cli_json(capsys):
    assert cli(["profile", "t2t_vit_7", "--img-size", "32", "--batch-size", "2", "--repeats", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    expected = {
        "model",
        "params",
        "params_trainable",
        "macs",
        "macs_fvcore",
        "macs_torch",
        "throughput_img_s",
        "peak_memory_bytes",
        "device",
        "batch_size",
        "img_size",
    }
    assert expected <= set(result)
    assert result["params"] == models.count_params(models.create_model("t2t_vit_7", img_size=32))
    assert result["img_size"] == 32 and result["batch_size"] == 2 and result["throughput_img_s"] > 0
    assert result["dropout"] == {"tokenizer": 0.1}  # the reference's Performer dropout, kept by default
    assert result["allocator"].startswith("steady")


def test_benchmarks_record_the_dropout_each_side_runs_with():
    ours = models.create_model("t2t_vit_7", img_size=32, depth=2, drop_path_rate=0.1)  # rates 0, 0.1
    info = suite.benchmark_info(ours, TimingSetup(), "train")
    assert info["dropout"] == {"tokenizer": 0.1, "blocks": 0.1} and info["allocator"] == "steady"
    assert suite.benchmark_info(suite.build_reference(ours), TimingSetup(), "train")["dropout"] == {
        "tokens_to_token": 0.1}
    assert suite.benchmark_info(models.create_model("t2t_vit_7", t2t_drop=0.0), TimingSetup(), "train")["dropout"] == {}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["profile", "t2t_vit14"], "unknown model 't2t_vit14'; did you mean t2t_vit_14"),
        (["profile", "t2t_vit_7", "--img-size", "200"], "200x200 is not divisible by the T2T stride 16"),
        (["sweep", "--families", "cnn", "--out", "unused"], "families=['cnn'] is not allowed; it must be a list"),
        (["sweep", "--timm", "resnet_18", "--out", "unused"], "unknown model 'resnet_18'; did you mean resnet18"),
        (["profile", "inception_v3", "--img-size", "32"], "timm model 'inception_v3' cannot run on 32x32 images"),
    ],
)
@pytest.mark.slow
def test_cli_errors_are_one_line_without_traceback(argv, message, tmp_path):
    child = subprocess.run(
        [sys.executable, "-m", "bench.cli", *argv],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert child.returncode == 2
    assert child.stderr.count("\n") == 1 and message in child.stderr and "Traceback" not in child.stderr


def test_sweep_records_oom_and_goes_on(tmp_path, monkeypatch):
    real = sweep.measure_throughput

    def flaky(model, setup, mode):
        if len(model.blocks) == 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB")
        return real(model, setup, mode)

    monkeypatch.setattr(sweep, "measure_throughput", flaky)
    released = []
    monkeypatch.setattr(sweep, "release_memory", lambda: released.append(True))
    spec = SweepSpec.from_flat({**SPEC, "depth": [1, 2, 3], "num_heads": [2], "patch_size": [8], "families": ["vit"]})
    table = run_sweep(spec, tmp_path / "run", progress=lambda _: None)
    throughput = table[table.measurement == "throughput_inference"].set_index("depth")
    assert list(throughput.status) == ["ok", "oom", "ok"]
    assert throughput.loc[2, "reason"] == "out of memory at batch 2" and pd.isna(throughput.loc[2, "value"])
    assert len(released) == 3 + 1  # once per configuration (its model leaves the GPU), once for the OOM


def test_sweep_measures_timm_baselines_beside_ours(tmp_path):
    spec = SweepSpec.from_flat({**SPEC, "families": ["vit"], "num_heads": [2], "patch_size": [8],
                                "timm": ["resnet18", "deit_tiny_patch16_224"],
                                "measure": ["params", "macs", "throughput", "tokenizer_time"]})
    table = run_sweep(spec, tmp_path / "run", progress=lambda _: None)
    values = table.pivot_table(index="model", columns="measurement", values="value")
    resnet = timm.create_model("resnet18")
    assert values.loc["resnet18", "params"] == sum(p.numel() for p in resnet.parameters())
    assert set(table[table.model == "resnet18"].config_family) == {"timm"}
    assert set(table[table.model == "resnet18"].tokenizer) == {"timm"}
    for name in ("resnet18", "deit_tiny_patch16_224"):  # fvcore and the torch counter agree on a baseline too
        assert values.loc[name, "macs"] == pytest.approx(values.loc[name, "macs_torch"], rel=0.02)
    # MACs scale with the 32 px input: resnet18 is 1.82 G at 224 px, about (32/224)^2 of it here
    assert values.loc["resnet18", "macs"] == pytest.approx(1.82e9 * (32 / 224) ** 2, rel=0.2)
    deit = table[table.model == "deit_tiny_patch16_224"].iloc[0]
    assert (deit.depth, deit.num_heads, deit.embed_dim, deit.patch_size, deit.tokens) == (12, 3, 192, 16, 5)
    ours = values.loc["vb_vit_small_patch16_224", "tokenizer_time_share_inference"]
    assert 0 < ours < 1 and pd.isna(values.loc["resnet18"].get("tokenizer_time_share_inference"))

    assert tables.crossed_axes(table, plots.AXES) == []  # models of other depths are not a depth axis to plot along
    wide = tables.sweep_wide(table)  # the report keeps a CNN's row although it has no depth or patches
    assert list(wide.family) == ["vit", "timm", "timm"]
    cost = tables.cost_table(wide).set_index("model")
    assert pd.isna(cost.loc["resnet18", "depth"])
    assert cost.loc["resnet18", "params (M)"] == pytest.approx(11.69, abs=0.01)
    assert 0 < cost.loc["vb_vit_small_patch16_224", "tokenizer time share, inference"] < 1


def test_a_timm_model_that_cannot_take_the_size_is_a_skipped_row(tmp_path):
    spec = SweepSpec.from_flat({**SPEC, "families": [], "timm": ["inception_v3", "resnet18"], "measure": ["params"]})
    table = run_sweep(spec, tmp_path / "run", progress=lambda _: None)
    skipped = table[table.status == "skipped"]
    assert list(skipped.config_base) == ["inception_v3"]
    assert "cannot run on 32x32 images (Calculated padded input size" in skipped.reason.iloc[0]
    assert set(table[table.status == "ok"].model) == {"resnet18"}  # the sweep went on


@pytest.mark.parametrize("name, message", [
    ("resnet_18", "unknown model 'resnet_18'; did you mean resnet18"),
    ("t2t_vit_7", "one of ours; list it under models"),
    (7, r"timm=\[7\] is not allowed; it must be a list, each a non-empty string"),
])
def test_sweep_refuses_bad_timm_names(name, message):
    with pytest.raises(VitbenchError, match=message):
        check_names(SweepSpec(timm=[name]))


def test_compiled_sweep_reports_compile_time_apart(tmp_path, monkeypatch):
    eager = functools.partial(torch.compile, backend="eager")  # dynamo's tracing without inductor's minutes
    monkeypatch.setattr(timing.torch, "compile", eager)
    spec = SweepSpec.from_flat({**SPEC, "families": ["vit"], "num_heads": [2], "patch_size": [8], "compile": True,
                                "measure": ["throughput"]})
    rows = run_sweep(spec, tmp_path / "run", progress=lambda _: None).set_index("measurement")
    assert rows.loc["throughput_inference", "value"] > 0 and rows.loc["compile_s_inference", "value"] >= 0
    assert rows.loc["compile_s_inference", "unit"] == "s"
    wide = tables.sweep_wide(rows.reset_index())
    assert wide["compile_s_inference"].notna().all()


@pytest.mark.slow
def test_debug_flag_shows_the_traceback(tmp_path):
    child = subprocess.run(
        [sys.executable, "-m", "bench.cli", "--debug", "profile", "t2t_vit14"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert child.returncode != 0 and "Traceback" in child.stderr and "UnknownModelError" in child.stderr


def test_a_pair_s_timed_call_is_ours_alone_and_the_baseline_runs_in_the_same_rounds(monkeypatch):
    """pytest-benchmark's statistics describe our model; the baseline and our tokenizer are timed in each
    round's setup, outside the timed call, and give the ratios."""
    from bench import suite

    calls, inside = [], []
    real_timed_call = suite.timed_call
    monkeypatch.setattr(suite, "timed_call", lambda step, device: calls.append((bool(inside), id(step))) or
                        real_timed_call(step, device))

    class Benchmark:  # the part of pytest-benchmark's fixture that time_pair uses
        group, extra_info = None, {}

        def pedantic(self, target, setup, rounds, warmup_rounds, iterations):
            assert iterations == 1
            for _ in range(warmup_rounds + rounds):
                setup()
                inside.append(1)
                target()
                inside.clear()

    pair = suite.pairs(32, suite.SMOKE)[0]
    timing = TimingSetup(batch_size=2, warmup=1, repeats=3)
    benchmark = Benchmark()
    suite.time_pair(benchmark, timing, pair, "inference")
    timed = {step for was_inside, step in calls if was_inside}
    untimed = {step for was_inside, step in calls if not was_inside}
    assert len(timed) == 1 and len(untimed) == 2 and not timed & untimed  # ours alone; baseline and tokenizer out
    assert len(calls) == 3 * (1 + 3) and benchmark.extra_info["timed_call"] == "ours alone"
    assert len(benchmark.extra_info["round_seconds"]) == 3 and benchmark.extra_info["speedup"] > 0


# timm benchmark.py's results-file columns (timm 1.0.31, `benchmark()`: `model`, the runners' rows prefixed, each
# runner's `param_count` popped and set last), for --bench inference and --bench both (its default; `--train`)
TIMM_INFERENCE_FILE = ["model", "infer_samples_per_sec", "infer_step_time", "infer_batch_size", "infer_img_size",
                       "infer_gmacs", "infer_macts", "param_count"]
TIMM_BOTH_FILE = [*TIMM_INFERENCE_FILE[:-1], "train_samples_per_sec", "train_step_time", "train_batch_size",
                  "train_img_size", "param_count"]


def test_profile_speaks_timm_s_dialect_wildcards_list_files_and_results_csv(tmp_path, capsys):
    from bench.cost.dialect import TIMM_COLUMNS, model_names, timm_columns

    assert list(timm_columns()) == TIMM_INFERENCE_FILE and list(TIMM_COLUMNS) == TIMM_BOTH_FILE
    assert model_names(["t2t_vit_t_[0-9]*"]) == ["t2t_vit_t_14", "t2t_vit_t_19", "t2t_vit_t_24"]
    assert "deit_tiny_patch16_224" in model_names(["deit_tiny*"])
    (tmp_path / "list.txt").write_text("t2t_vit_7\n\nvb_vit_tiny_patch16_224\nt2t_vit_7\n")
    assert model_names([], tmp_path / "list.txt") == ["t2t_vit_7", "vb_vit_tiny_patch16_224"]
    assert "no model matches 'zzz*'" in cli_error(capsys, "profile", "zzz*")
    results = tmp_path / "bench.csv"
    assert cli(["profile", "t2t_vit_7", "vb_vit_tiny_patch16_224", "--img-size", "32", "--batch-size", "2",
                 "--repeats", "1", "--warmup", "0", "--results-file", str(results), "--json"]) == 0
    profiled = {row["model"]: row for row in map(json.loads, capsys.readouterr().out.splitlines())}
    table = pd.read_csv(results)
    assert list(table.columns[:len(TIMM_INFERENCE_FILE)]) == TIMM_INFERENCE_FILE and len(table) == 2
    assert not {"train_samples_per_sec", "train_img_size"} & set(table.columns)  # inference only: no train columns
    rates = list(table["infer_samples_per_sec"])
    assert rates == sorted(rates, reverse=True)  # sorted as timm sorts a bulk run: fastest first
    for _, row in table.iterrows():
        ours = profiled[row["model"]]
        rate = row["infer_samples_per_sec"]  # rounded to 0.01, as timm's benchmark.py writes it: at 2.4 img/s 0.2%
        assert row["infer_step_time"] == pytest.approx(1000 * 2 / rate, rel=0.005 / rate + 1e-3)
        assert row["infer_batch_size"] == 2 and row["infer_img_size"] == 32
        assert row["infer_gmacs"] == round(ours["macs_fvcore"] / 1e9, 2)
        assert row["infer_macts"] == round(ours["activations_fvcore"] / 1e6, 2) and ours["activations_fvcore"] > 0
        model = models.create_model(row["model"], img_size=32)  # timm's count_params: the model's parameters
        assert row["param_count"] == round(sum(p.numel() for p in model.parameters()) / 1e6, 2)
        assert row["params"] == ours["params"] == models.count_params(model)  # the paper's count, kept beside it
        # cells that hold a list, dict or boolean are JSON, never a Python repr
        assert json.loads(row["throughput_iqr"]) == ours["throughput_iqr"]
        assert json.loads(row["dropout"]) == ours["dropout"]
    assert json.loads(table.set_index("model").loc["t2t_vit_7", "dropout"]) == {"tokenizer": 0.1}
    text = results.read_text()
    assert ",false," in text and "False" not in text and "{'" not in text  # JSON's false and quotes, not Python's


def test_profile_results_file_with_train_has_timm_s_both_columns(tmp_path):
    results = tmp_path / "both.csv"
    assert cli(["profile", "vit_lite_tiny", "--train", "--batch-size", "2", "--repeats", "1", "--warmup", "0",
                "--results-file", str(results)]) == 0
    header, row = (line.split(",") for line in results.read_text().splitlines())
    assert header[:len(TIMM_BOTH_FILE)] == TIMM_BOTH_FILE and row[0] == "vit_lite_tiny"
    values = dict(zip(header, row))
    assert float(values["train_samples_per_sec"]) > 0 and values["train_img_size"] == values["infer_img_size"] == "32"


def test_fvcore_activations_count_fused_attention_as_its_two_products():
    from bench.cost.flops import fvcore_activations

    model = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2, num_classes=10).eval()
    fused = fvcore_activations(model, 32)
    for block in model.blocks:
        block.attn.fused_attn = False  # q @ k^T and attn @ v as matmuls, which fvcore counts as they are
    assert fused == fvcore_activations(model, 32) > 0
    ours = models.create_model("vb_vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2, num_classes=10)
    assert fvcore_activations(ours) == fused  # the same network as ours: the same count


def test_macs_shows_every_counter_and_what_plain_fvcore_misses(capsys):
    assert cli(["macs", "vb_vit_tiny_patch16_224", "--img-size", "64", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["analytic_G"] == pytest.approx(row["fvcore_with_sdpa_G"], rel=1e-4)
    assert row["fvcore_plain_G"] < row["fvcore_with_sdpa_G"] and row["plain_fvcore_misses_pct"] > 0  # fused attention
