"""Peak memory of inference and training steps, measured and estimated, and the largest batch.

- CUDA: `torch.cuda.max_memory_allocated` after a reset, around one step (weights, optimizer
  state and activations included).
- CPU: measured in a fresh subprocess as the growth of peak RSS (VmHWM, reset through
  /proc/self/clear_refs) over the process before the model was built: the same things the
  CUDA figure holds, plus allocator slack (glibc's defaults, not the `steady` policy of timings).
  Labelled `cpu_peak_rss_growth`.
- Both: an analytic estimate of the activations a training step saves for backward, or the
  largest live activations of an inference pass (fused attention assumed: no N x N matrix kept).
"""
import gc
import json
import subprocess
import sys
from dataclasses import asdict

import torch

from bench import factory
from bench.cost.timing import TimingSetup, make_step, resolve_device
from bench.processes import set_parent_death_signal
from models.errors import ConfigError

OOM_ERRORS = (torch.cuda.OutOfMemoryError, MemoryError)


def is_oom(error):
    return isinstance(error, OOM_ERRORS) or "out of memory" in str(error).lower()


def release_memory():
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def proc_status_bytes(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure_in_process(name, overrides, setup, mode):
    """Peak bytes of one step of a freshly built model (run inside the measuring process)."""
    device = resolve_device(setup.device)
    if device.type == "cuda":
        model = factory.create(name, overrides)
        step, device = make_step(model, setup, mode)
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        return {
            "peak_memory_bytes": torch.cuda.max_memory_allocated(device),
            "memory_method": "cuda_max_memory_allocated",
        }
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    before = proc_status_bytes("VmRSS")
    model = factory.create(name, overrides)
    step, _ = make_step(model, setup, mode)
    step()
    return {"peak_memory_bytes": proc_status_bytes("VmHWM") - before, "memory_method": "cpu_peak_rss_growth"}


def measure_peak_memory(name: str, overrides: dict | None = None, setup: TimingSetup = TimingSetup(),
                        mode: str = "inference") -> dict:
    """Peak memory of one step; on CPU in a fresh subprocess so earlier work cannot hide it.

    Returns {"peak_memory_bytes", "memory_method"} or, when the step ran out of memory,
    {"oom": True, "error": ...}.
    """
    # glibc's own policy in the subprocess, whatever the timings use: memory kept for reuse would count as peak
    request = {"name": name, "overrides": overrides or {}, "setup": {**asdict(setup), "allocator": "system"},
               "mode": mode}
    if setup.device == "cuda":
        try:
            return measure_in_process(name, overrides or {}, setup, mode)
        except RuntimeError as e:
            if not is_oom(e):
                raise
            error = str(e).splitlines()[0]
        release_memory()  # outside the handler: the traceback no longer pins the step's tensors
        return {"oom": True, "error": error}
    child = subprocess.run(
        [sys.executable, "-m", "bench.cost.memory", json.dumps(request)], capture_output=True, text=True,
        preexec_fn=set_parent_death_signal,  # never outlives this process
    )
    if child.returncode != 0:
        lines = child.stderr.strip().splitlines() or [f"killed by signal {-child.returncode}"]
        if child.returncode < 0 or is_oom(RuntimeError(lines[-1])):
            return {"oom": True, "error": lines[-1]}
        raise RuntimeError(f"memory measurement of {name} failed: {lines[-1]}")
    return json.loads(child.stdout.strip().splitlines()[-1])


def activation_estimate_bytes(model, batch_size, mode="inference", bytes_per_value=4):
    """Analytic activation bytes: saved-for-backward sum (train) or largest live layer (inference); the
    tokenizer's stages are its own `activation_elements()`."""
    B, D = batch_size, model.embed_dim
    N = model.tokenizer.num_tokens + 1
    hidden = model.blocks[0].mlp.fc1.out_features
    # Saved per backbone block: norm1 in, qkv in, q/k/v, attention out (= proj in), norm2 in, fc1 in/out, GELU out.
    block_saved = N * (D + D + 3 * D + D + D + D + 2 * hidden)
    block_live = N * (D + max(3 * D + D, hidden + D))
    tokenizer = model.tokenizer
    if not hasattr(tokenizer, "activation_elements"):
        raise ConfigError(f"cannot estimate the activations of a {type(tokenizer).__name__} analytically; "
                          "measure them with measure_peak_memory")
    tokenizer_saved, tokenizer_live = tokenizer.activation_elements()
    layers_saved = [len(model.blocks) * block_saved, *tokenizer_saved]
    layers_live = [block_live, *tokenizer_live]
    values = sum(layers_saved) if mode == "train" else max(layers_live)
    return B * values * bytes_per_value


def largest_batch(fits, start=1, limit=4096):
    """Largest batch size b <= limit with fits(b) True: doubling, then bisection.

    `fits(b)` returns False when b runs out of memory; returns 0 if even `start` does not fit.
    """
    if not fits(start):
        return 0
    good, bad = start, None
    while bad is None and good < limit:
        trial = min(good * 2, limit)
        if fits(trial):
            good = trial
        else:
            bad = trial
    while bad is not None and bad - good > 1:
        middle = (good + bad) // 2
        good, bad = (middle, bad) if fits(middle) else (good, middle)
    return good


def main():
    request = json.loads(sys.argv[1])
    setup = TimingSetup(**request["setup"])
    print(json.dumps(measure_in_process(request["name"], request["overrides"], setup, request["mode"])))


if __name__ == "__main__":
    main()
