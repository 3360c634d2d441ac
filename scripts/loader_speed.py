"""Does the in-memory CIFAR-10 loader keep up? Loader images/s against the training step's, same CPU.

    .venv/bin/python scripts/loader_speed.py results/loader_speed.json [--data ../shared/data/cifar10]

Times the first decode of CIFAR-10 (train + val, into a fresh cache folder) and a cache hit, then,
interleaved over a few rounds and for each process thread count: the `TensorLoader` alone (random
crop, flip, RandAugment, random erasing; batch 128, 32 px), as shipped (augmenting on one thread)
and on the process's threads, and one AdamW training step of the fastest model of the CIFAR
study (vit_lite_tiny). Prints a Markdown table and writes the numbers as JSON.
"""

import argparse
import dataclasses
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from timm.optim import create_optimizer_v2

import models
from bench.accuracy.data import scan_dataset
from bench.accuracy.decoded_cache import decoded_split
from bench.accuracy.tensor_augment import Augment
from bench.accuracy.tensor_loaders import TensorLoader
from models.atomic import atomic_write_text

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "cifar10"
FULL = Augment(crop_padding=4, hflip=0.5, policy="rand", num_ops=2, magnitude=9, reprob=0.25)
FASTEST = "vit_lite_tiny"  # the fastest arm of `vitbench study --preset cifar10-cpu`


def quiet(message):
    pass


def time_decode(data, size=32):
    """Seconds of the first decode of every split into an empty cache folder, then of a cache hit."""
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        scanned = scan_dataset(data)
        decoded = {split: decoded_split(found, size, cache_dir=cache, warn=quiet) for split, found in scanned.items()}
        first = time.perf_counter() - start
        start = time.perf_counter()
        for found in scan_dataset(data).values():
            decoded_split(found, size, cache_dir=cache, warn=quiet)
        hit = time.perf_counter() - start
    images = sum(len(d) for d in decoded.values())
    return {
        "images": images,
        "bad": sum(len(d.bad) for d in decoded.values()),
        "first_decode_s": first,
        "cache_hit_s": hit,
        "decode_images_per_s": images / first,
    }, decoded["train"]


def loader_rate(train, batches, seed, cpu_threads):
    """Images/s of the training loader over `batches` batches of 128."""
    loader = TensorLoader(train.images, train.targets, 128, seed=seed, augment=FULL, cpu_threads=cpu_threads)
    start, images = time.perf_counter(), 0
    for step, (batch, _, _) in enumerate(loader):
        images += len(batch)
        if step + 1 == batches:
            break
    return images / (time.perf_counter() - start)


def step_rate(model, optimizer, steps):
    """Images/s of forward, cross-entropy, backward and AdamW step on batches of 128."""
    images, targets = torch.randn(128, 3, 32, 32), torch.randint(10, (128,))
    start = time.perf_counter()
    for _ in range(steps):
        loss = F.cross_entropy(model(images), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return 128 * steps / (time.perf_counter() - start)


KINDS = ("loader", "loader_process_threads", "step")  # loader as shipped (1 thread), on the process's threads, step


def one_round(train, model, optimizer, batches, steps, seed):
    return {
        "loader": loader_rate(train, batches, seed, cpu_threads=1),
        "loader_process_threads": loader_rate(train, batches, seed, cpu_threads=None),
        "step": step_rate(model, optimizer, steps),
    }


def measure(train, threads, rounds, batches, steps):
    """Median loader and step images/s per process thread count, interleaved round by round."""
    model = models.create_model(FASTEST).train()
    optimizer = create_optimizer_v2(model, opt="adamw", lr=5e-4, weight_decay=0.05)
    samples = {(n, kind): [] for n in threads for kind in KINDS}
    for n in threads:  # warm-up: first calls of each op
        torch.set_num_threads(n)
        one_round(train, model, optimizer, 2, 1, seed=0)
    for round_ in range(rounds):
        for n in threads:
            torch.set_num_threads(n)
            for kind, rate in one_round(train, model, optimizer, batches, steps, seed=round_).items():
                samples[n, kind].append(rate)
    rows = []
    for n in threads:
        row = {"threads": n, **{f"{kind}_images_per_s": statistics.median(samples[n, kind]) for kind in KINDS}}
        row["ratio"] = row["loader_images_per_s"] / row["step_images_per_s"]
        rows.append(row | {f"{kind}_samples": samples[n, kind] for kind in KINDS})
    return rows


def markdown(decode, rows):
    lines = [
        "| process threads | loader img/s (1 aug thread) | loader img/s (process threads) "
        "| train step img/s (small ViT, AdamW) | loader / step |",
        "|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        loader, inherit, step = (r[f"{kind}_images_per_s"] for kind in KINDS)
        lines.append(f"| {r['threads']} | {loader:,.0f} | {inherit:,.0f} | {step:,.0f} | {r['ratio']:.1f}x |")
    processes = len(os.sched_getaffinity(0))
    lines += [
        "",
        "| CIFAR-10 train + val | images | seconds | img/s |",
        "|:--|--:|--:|--:|",
        f"| first decode ({processes} processes) | {decode['images']:,} | {decode['first_decode_s']:.1f} "
        f"| {decode['decode_images_per_s']:,.0f} |",
        f"| cache hit (scan + stat + load) | {decode['images']:,} | {decode['cache_hit_s']:.2f} | |",
    ]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="write the results as JSON here")
    parser.add_argument("--data", default=str(DATA), help="CIFAR-10 as ImageNet-style JPEG folders")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--loader-batches", type=int, default=40, help="loader batches of 128 per round")
    parser.add_argument("--steps", type=int, default=4, help="training steps of 128 per round")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    decode, train = time_decode(args.data)
    rows = measure(train, args.threads, args.rounds, args.loader_batches, args.steps)
    table = markdown(decode, rows)
    print(table)
    result = {
        "decode": decode,
        "rows": rows,
        "batch_size": 128,
        "img_size": 32,
        "augment": dataclasses.asdict(FULL),
        "model": {"name": FASTEST, **models.MODEL_CONFIGS[FASTEST]},
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "table": table,
    }
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
