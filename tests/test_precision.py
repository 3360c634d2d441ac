"""--amp's choice (bf16 only where it pays) and its record; the peak FLOP/s a run's MFU is measured against."""
import json

import pytest
import torch

from bench import factory
from bench.accuracy import precision, train
from bench.accuracy.plan import PFLOP
from bench.cost import peak
from models.errors import ConfigError
from tests.harness_helpers import TINY_VIT, tiny_config, tiny_synthetic

CPU = torch.device("cpu")
NATIVE = {"fpu", "avx2", "avx512f", "avx512_bf16"}


def vit(width):
    return factory.create("vb_vit_tiny_patch16_224", {**TINY_VIT, "embed_dim": width, "num_heads": 1}, 3, 32, 0.0)


@pytest.fixture
def flags(monkeypatch):
    """Fake the CPU's feature flags: `flags(set)`."""
    return lambda given: monkeypatch.setattr(precision, "cpu_flags", lambda: set(given))


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu avx2 avx512_bf16 amx_tile\n\n")
    assert precision.cpu_flags(cpuinfo) == {"fpu", "avx2", "avx512_bf16", "amx_tile"}
    assert precision.cpu_flags(tmp_path / "absent") == set()  # not Linux: auto stays fp32


@pytest.mark.parametrize("flag", precision.CPU_BF16_FLAGS)
def test_auto_takes_bf16_on_native_bf16_for_a_wide_transformer(flags, flag):
    flags({"avx2", flag})
    chosen = precision.choose("auto", CPU, vit(precision.BF16_MIN_WIDTH))
    assert (chosen.amp, chosen.dtype) == ("bf16", torch.bfloat16) and flag in chosen.reason


@pytest.mark.parametrize("given, width, expected", [
    (set(), 384, "no native bf16"),  # emulated bf16 GEMMs are slower than fp32, whatever the width
    ({"avx512f", "avx512_vnni"}, 384, "no native bf16"),  # AVX-512 without its bf16 extension
    (NATIVE, precision.BF16_MIN_WIDTH - 1, "below which"),
    (NATIVE, None, "no transformer width"),
])
def test_auto_stays_fp32_where_bf16_does_not_pay(flags, given, width, expected):
    flags(given)
    model = vit(width) if width else factory.create("resnet18", {}, 3, 32, 0.0)
    chosen = precision.choose("auto", CPU, model)
    assert chosen.amp == "off" and chosen.dtype is None and expected in chosen.reason


def test_a_given_precision_is_kept_and_fp16_needs_cuda(flags):
    flags(set())
    assert precision.choose("bf16", CPU, vit(32)).record() == {"amp": "bf16", "reason": "given"}
    assert precision.choose("off", CPU, vit(384)).dtype is None
    with pytest.raises(ConfigError, match="--amp fp16 needs a CUDA device"):
        precision.choose("fp16", CPU, vit(32))


def test_mfu_is_the_achieved_rate_over_the_peak():
    assert peak.mfu(6e9, 2.0, 1e10) == pytest.approx(0.3)
    assert peak.mfu(6e9, 2.0, 1e10, devices=2) == pytest.approx(0.15)
    assert peak.mfu(6e9, 2.0, None) is None  # a device without a known peak


def test_cpu_peak_is_measured_once_per_dtype_and_thread_count(monkeypatch, tmp_path):
    measured = []
    monkeypatch.setenv("VITBENCH_PEAK_CACHE", str(tmp_path / "cache" / "peak.json"))
    monkeypatch.setattr(peak, "gemm_flop_s", lambda dtype: measured.append(dtype) or 5e10)
    first = peak.cpu_peak(torch.float32)
    assert peak.cpu_peak(torch.float32) == first and measured == [torch.float32]  # a hit
    assert first["flop_s"] == 5e10 and first["device_name"] and first["threads"] == torch.get_num_threads()
    peak.cpu_peak(torch.bfloat16)
    assert measured == [torch.float32, torch.bfloat16]  # another dtype: a miss
    before = torch.get_num_threads()
    torch.set_num_threads(before + 1)
    try:
        peak.cpu_peak(torch.float32)
    finally:
        torch.set_num_threads(before)
    assert len(measured) == 3  # another thread count: a miss
    assert len(json.loads((tmp_path / "cache" / "peak.json").read_text())) == 3


def test_the_gemm_calibration_measures_a_rate():
    assert peak.gemm_flop_s(torch.float32, sizes=(64,), repeats=2) > 1e6


@pytest.mark.parametrize("name, dtype, tflop_s", [
    ("NVIDIA H200", torch.bfloat16, 989.5), ("NVIDIA H100 80GB HBM3", torch.float32, 67.0),
    ("NVIDIA H100 PCIe", torch.bfloat16, 756.5), ("NVIDIA A100-SXM4-80GB", torch.bfloat16, 312.0),
])
def test_gpu_peaks_come_from_the_datasheet_table(monkeypatch, name, dtype, tflop_s):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    found = peak.peak(dtype, torch.device("cuda"))
    assert found["flop_s"] == tflop_s * 1e12 and found["device_name"] == name


def test_an_unknown_gpu_has_no_peak_and_no_mfu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Some Future GPU")
    used = peak.utilisation(1e12, 1.0, torch.bfloat16, torch.device("cuda"))
    assert used["train_flop_s"] == 1e12 and used["peak_flop_s"] is None and used["mfu"] is None


def test_a_run_records_its_precision_and_utilisation(tmp_path, flags, monkeypatch):
    flags(NATIVE)  # a CPU with native bf16, a model wide enough: auto takes bf16
    monkeypatch.setenv("VITBENCH_PEAK_CACHE", str(tmp_path / "peak.json"))
    monkeypatch.setattr(peak, "gemm_flop_s", lambda dtype: 1e10)  # a fixed peak
    data = tiny_synthetic(tmp_path / "data")
    config = tiny_config(data, tmp_path / "run", model="vb_vit_tiny_patch16_224", epochs=1,
                         model_args={**TINY_VIT, "embed_dim": precision.BF16_MIN_WIDTH, "num_heads": 3})
    summary = train.start(config, progress=False)
    assert summary["amp"] == "bfloat16" and summary["precision"]["amp"] == "bf16"
    assert "avx512_bf16" in summary["precision"]["reason"]
    assert json.loads((tmp_path / "run" / train.SUMMARY).read_text())["precision"] == summary["precision"]
    used = summary["utilisation"]
    flop_s = summary["train_pflop"] * PFLOP / summary["train_time_s"]
    assert used["train_flop_s"] == pytest.approx(flop_s) and used["peak_flop_s"] == 1e10
    assert summary["mfu"] == pytest.approx(flop_s / 1e10)
    assert used["peak"]["dtype"] == "bfloat16" and used["peak"]["threads"] == 1
