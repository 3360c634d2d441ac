"""`vitbench profile MODEL`: parameters, MACs (three counters), throughput and peak memory."""
import models
from bench.cost.flops import mac_counts, param_breakdown
from bench.cost.memory import activation_estimate_bytes, measure_peak_memory
from bench.cost.timing import TimingSetup, measure_throughput
from bench.provenance import device_name


def profile_model(name: str, overrides: dict | None = None, setup: TimingSetup = TimingSetup(),
                  modes: tuple[str, ...] = ("inference",)) -> dict:
    """One flat dict describing the cost of `name` (with `overrides`) under `setup`."""
    overrides = overrides or {}
    model = models.create_model(name, **overrides)
    result = {
        "model": name,
        **param_breakdown(model),
        **{k: v for k, v in mac_counts(model).items() if k.startswith("macs")},
        "device": setup.device,
        "device_name": device_name(setup.device),
        "dtype": setup.dtype,
        "batch_size": setup.batch_size,
        "img_size": model.img_size[0] if model.img_size[0] == model.img_size[1] else list(model.img_size),
        "tokens": model.tokenizer.num_tokens + 1,
    }
    for mode in modes:
        suffix = "" if mode == "inference" else "_train"
        timing = measure_throughput(model, setup, mode)
        memory = measure_peak_memory(name, overrides, setup, mode)
        result.update({
            f"throughput_img_s{suffix}": timing["img_s"],
            f"throughput_iqr{suffix}": [timing["img_s_q1"], timing["img_s_q3"]],
            f"peak_memory_bytes{suffix}": memory.get("peak_memory_bytes"),
            f"memory_method{suffix}": memory.get("memory_method", "oom"),
            f"activation_estimate_bytes{suffix}": activation_estimate_bytes(model, setup.batch_size, mode),
        })
    result["threads"] = timing["threads"]
    return result
