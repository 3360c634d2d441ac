"""`vitbench profile MODEL`: parameters, MACs (three counters), throughput, achieved FLOP/s and MFU against the
device's peak (bench/cost/peak.py), peak memory, and for ours the tokenizer's share of the time beside its share
of the MACs. MODEL may be any timm model too."""
import statistics

import torch

from bench import factory
from bench.allocator import allocator_in_effect
from bench.cost.build import check_runs, dropout_rates, input_size
from bench.cost.flops import FLOPS_PER_MAC, TRAIN_FLOPS_PER_MAC, fvcore_activations, macs_of, params_of
from bench.cost.memory import activation_estimate_bytes, measure_peak_memory
from bench.cost.peak import mfu, peak
from bench.cost.timing import TimingSetup, autocast, measure_throughput, prepare, timed_call
from bench.provenance import device_name


def pass_steps(model, setup, mode):
    """(whole, front, device): a forward pass (inference) or a forward and backward pass (train) of
    the model and of its tokenizer alone, on the same random images; no optimizer step."""
    runnable, device = prepare(model, setup)
    images = torch.randn(setup.batch_size, *input_size(model), device=device)
    if setup.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)

    def run(module):
        def step():
            with autocast(setup), torch.set_grad_enabled(mode == "train"):
                out = module(images)
            if mode == "train":
                out.float().sum().backward()
                module.zero_grad(set_to_none=True)
        return step

    model.train(mode == "train")
    return run(runnable), run(model.tokenizer), device


def tokenizer_time_share(model, setup, mode, rounds=5):
    """Median over interleaved rounds of (tokenizer time / whole-model time): a forward pass
    (inference) or a forward and backward pass (train) of the tokenizer alone against the model's."""
    whole, front, device = pass_steps(model, setup, mode)
    for _ in range(max(setup.warmup, 1)):
        whole(), front()
    return statistics.median(timed_call(front, device) / timed_call(whole, device) for _ in range(rounds))


def profile_model(name: str, overrides: dict | None = None, setup: TimingSetup = TimingSetup(),
                  modes: tuple[str, ...] = ("inference",)) -> dict:
    """One flat dict describing the cost of `name` (with `overrides`) under `setup`."""
    overrides = overrides or {}
    model = factory.create(name, overrides)
    ours = factory.is_ours(name)
    if not ours:
        check_runs(model)
    channels, height, width = input_size(model)
    params, counts = params_of(model), macs_of(model)
    shape = {"tokens": model.tokenizer.num_tokens + 1,
             "tokenizer_mac_share": counts["macs_tokenizer"] / counts["macs"]} if ours else {}
    result = {
        "model": name,
        **params,
        **{k: v for k, v in counts.items() if k.startswith("macs")},
        "activations_fvcore": fvcore_activations(model),  # per image: timm benchmark.py's macts x 1e6
        "device": setup.device,
        "device_name": device_name(setup.device),
        "dtype": setup.dtype,
        "batch_size": setup.batch_size,
        "compile": setup.compile,
        "dropout": dropout_rates(model),
        "img_size": height if height == width else [height, width],
        **shape,
    }
    device_peak = peak(getattr(torch, setup.dtype), torch.device(setup.device))  # MFU's denominator
    for mode in modes:
        suffix = "" if mode == "inference" else "_train"
        timing = measure_throughput(model, setup, mode)
        memory = measure_peak_memory(name, overrides, setup, mode)
        result.update({
            f"throughput_img_s{suffix}": timing["img_s"],
            f"throughput_iqr{suffix}": [timing["img_s_q1"], timing["img_s_q3"]],
            f"peak_memory_bytes{suffix}": memory.get("peak_memory_bytes"),
            f"memory_method{suffix}": memory.get("memory_method", "oom"),
        })
        # achieved FLOP/s counted from the model's MACs (2 FLOPs each; a train step is forward + backward: x3)
        flop_s = timing["img_s"] * counts["macs"] * (TRAIN_FLOPS_PER_MAC if mode == "train" else FLOPS_PER_MAC)
        result.update({f"flop_s{suffix}": flop_s, f"mfu{suffix}": mfu(flop_s, 1.0, device_peak["flop_s"])})
        if setup.compile:
            result[f"compile_s{suffix}"] = timing["compile_s"]
        if ours:
            result[f"activation_estimate_bytes{suffix}"] = activation_estimate_bytes(model, setup.batch_size, mode)
            result[f"tokenizer_time_share{suffix}"] = tokenizer_time_share(model, setup, mode)
    result["threads"] = timing["threads"]
    result.update(peak_flop_s=device_peak["flop_s"], peak_source=device_peak["source"])
    result["allocator"] = allocator_in_effect()
    return result
