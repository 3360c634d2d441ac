"""Where a training step of the tiny CPU study arms spends its time, and which levers speed it up.

For each arm (32 px, batch 128, the study's AdamW and label-smoothing loss, random images): a torch.profiler
breakdown of the step by op (self CPU time), its MFU against the calibrated fp32 peak (bench/cost/peak.py), and
levers timed interleaved against the plain step in one process (round-robin, rotating the order each round; the
result is the median of per-round ratios plain / lever, > 1: the lever is faster). Each lever's effect on the
numbers: the largest loss and weight difference to the plain step after a few steps from the same start.

    .venv/bin/python scripts/perf_tiny_arms.py --threads 1 --rounds 7 --json results/perf-tiny-arms-DATE/perf.json
"""
import argparse
import contextlib
import json
import os
import statistics
import time
from pathlib import Path

import torch
from timm.loss import LabelSmoothingCrossEntropy
from timm.optim import create_optimizer_v2
from torch.nn.attention import SDPBackend, sdpa_kernel

from bench import factory
from bench.cost.flops import TRAIN_FLOPS_PER_MAC, any_model_macs
from bench.cost.peak import cpu_peak

ARMS = {"vit_lite_tiny": {}, "t2t_vit_lite_tiny": {"t2t_drop": 0.0}, "resnet_cifar_tiny": {}}  # as the study
LEVERS = {  # name: (channels_last, AdamW options, pin to one core, attention kernels allowed)
    "plain": (False, {}, False, None),
    "adamw foreach": (False, {"foreach": True}, False, None),
    "adamw fused": (False, {"fused": True}, False, None),
    "channels_last": (True, {}, False, None),
    "pinned to a core": (False, {}, True, None),
    "attention: math kernel": (False, {}, False, [SDPBackend.MATH]),  # explicit softmax(q k^T) v, not flash
}
CATEGORIES = {  # op name fragments -> what they are
    "matmul (linear, attention)": ("addmm", "mm", "bmm", "linear", "matmul", "baddbmm"),
    "convolution": ("conv", "mkldnn_convolution"),
    "attention kernel": ("scaled_dot_product", "flash_attention"),
    "normalisation": ("layer_norm", "batch_norm", "native_batch_norm"),
    "optimiser": ("_foreach", "adam", "lerp", "addcdiv", "addcmul", "sqrt"),
}


def build(arm, batch, levers, seed=0):
    """(model, optimiser, images, targets, loss) for one arm, deterministic in `seed`."""
    channels_last, opt_options, _, _ = levers
    torch.manual_seed(seed)
    model = factory.create(arm, ARMS[arm], 10, 32, 0.0)
    images, targets = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    optimizer = create_optimizer_v2(model, opt="adamw", lr=1e-3, weight_decay=0.05, **opt_options)
    return model, optimizer, images, targets, LabelSmoothingCrossEntropy(0.1)


def stepper(arm, batch, levers):
    model, optimizer, images, targets, loss_fn = build(arm, batch, levers)
    model.train()

    def step():
        with sdpa_kernel(levers[3]) if levers[3] else contextlib.nullcontext():
            loss = loss_fn(model(images), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    return model, step


def difference(arm, batch, levers, steps=3):
    """Largest |loss| and |weight| difference of `levers` to the plain step after `steps` identical steps."""
    (plain_model, plain), (model, step) = stepper(arm, batch, LEVERS["plain"]), stepper(arm, batch, levers)
    losses = [abs(plain() - step()) for _ in range(steps)]
    weights = max((a - b).abs().max().item() for a, b in zip(plain_model.parameters(), model.parameters()))
    return {"max_loss_diff": max(losses), "max_weight_diff": weights}


def timed(step, pinned, all_cpus):
    os.sched_setaffinity(0, {min(all_cpus)} if pinned else all_cpus)
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def lever_ratios(arm, batch, rounds, levers):
    all_cpus = os.sched_getaffinity(0)
    steps = {name: stepper(arm, batch, LEVERS[name])[1] for name in ["plain", *levers]}
    for step in steps.values():  # warm-up: allocator, oneDNN primitives
        step(), step()
    seconds = {name: [] for name in steps}
    names = list(steps)
    for index in range(rounds):
        for name in names[index % len(names):] + names[:index % len(names)]:  # each goes first in turn
            seconds[name].append(timed(steps[name], LEVERS[name][2], all_cpus))  # [2]: pinned
    os.sched_setaffinity(0, all_cpus)
    ratios = {name: statistics.median(p / s for p, s in zip(seconds["plain"], seconds[name])) for name in names}
    return ratios, {name: statistics.median(s) for name, s in seconds.items()}


def profile(arm, batch, steps=3):
    """Top ops by self CPU time over `steps` training steps, and the share of each category."""
    _, step = stepper(arm, batch, LEVERS["plain"])
    step(), step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    events = [(e.key, e.self_cpu_time_total) for e in prof.key_averages()]
    total = sum(t for _, t in events)
    top = sorted(events, key=lambda e: -e[1])[:12]
    shares = {name: 0.0 for name in CATEGORIES}
    for key, spent in events:
        for name, fragments in CATEGORIES.items():
            if any(f in key.lower() for f in fragments):
                shares[name] += spent / total
                break
    shares["everything else (element-wise, copies, autograd)"] = 1 - sum(shares.values())
    return {"top_ops": [{"op": k, "share": t / total, "ms_per_step": t / steps / 1e3} for k, t in top],
            "categories": shares, "ms_per_step": total / steps / 1e3}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--arms", nargs="*", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--levers", nargs="*", default=list(LEVERS)[1:], choices=list(LEVERS)[1:])
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    peak = cpu_peak(torch.float32)
    results = {"threads": args.threads, "batch": args.batch, "rounds": args.rounds, "peak": peak,
               "torch": torch.__version__, "arms": {}}
    for arm in args.arms:
        macs = any_model_macs(factory.create(arm, ARMS[arm], 10, 32, 0.0), 32)
        ratios, medians = lever_ratios(arm, args.batch, args.rounds, args.levers)
        flop_s = args.batch * macs * TRAIN_FLOPS_PER_MAC / medians["plain"]
        results["arms"][arm] = {
            "forward_macs": macs, "step_s": medians, "speedup": ratios, "train_flop_s": flop_s,
            "mfu": flop_s / peak["flop_s"], "profile": profile(arm, args.batch),
            "differences": {name: difference(arm, args.batch, LEVERS[name]) for name in args.levers},
        }
        print(json.dumps({arm: results["arms"][arm]}, indent=1), flush=True)
    if args.json:  # arms measured before (another --arms) are kept
        kept = json.loads(Path(args.json).read_text())["arms"] if Path(args.json).is_file() else {}
        results["arms"] = {**kept, **results["arms"]}
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
