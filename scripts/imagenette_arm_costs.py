"""Per-arm cost of the imagenette-cpu preset on this CPU, to size its PFLOP budget: each arm's training step
(forward, backward, AdamW) and eval forward, timed round-robin (interleaved, so a busy machine slows every arm
alike), medians over rounds. Prints MACs per image, train and eval images/s and the minutes one run takes at the
preset's budget with its validations and test scoring.

On a shared, busy CPU the absolute speeds say little, so a reference arm is timed in the same rounds: the CIFAR
study's ViT (vit_lite_tiny, 32 px, batch 128, fp32), whose training speed on a quiet core is on record
(`--reference-ips`: 562 img/s, the median of its three runs in results/study-cifar10-cpu-protocol, 2 runs at once,
1 thread each). Each arm's speed is then also projected as its measured ratio to the reference x that figure.

    .venv/bin/python scripts/imagenette_arm_costs.py --threads 1 --rounds 5
"""
import argparse
import statistics
import time

import torch

from bench import factory
from bench.accuracy import study
from bench.cost.flops import any_model_macs

HOLDOUT, TEST, CLEAN = 947, 3925, 134  # Imagenette: 10% of train/ held out, val/ scored as test, its clean part


def arms(spec):
    """(name, model, img_size, overrides, amp, batch) of every arm of the preset, MAC-matched width resolved."""
    spec = study.resolve_mac_matched(spec, 10)
    for variant in spec.variants:
        settings = {**spec.train, **variant.train}
        yield (variant.arm, variant.model, settings["img_size"], variant.overrides, settings.get("amp", "off"),
               settings["batch_size"])


def step_timer(model_name, img_size, overrides, amp, batch):
    model = factory.create(model_name, overrides, 10, img_size, drop_path_rate=0.0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    images, targets = torch.randn(batch, 3, img_size, img_size), torch.randint(0, 10, (batch,))
    dtype = torch.bfloat16 if amp == "bf16" else None

    def train_step():
        model.train()
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            loss = torch.nn.functional.cross_entropy(model(images), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    @torch.no_grad()
    def eval_step():
        model.eval()
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            model(images)

    return model, train_step, eval_step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="imagenette-cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per arm per round")
    parser.add_argument("--reference-ips", type=float, default=562.2, help="the reference arm's quiet img/s")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spec = study.load_study_spec(args.preset)
    found = {}
    reference = ("reference", "vit_lite_tiny", 32, {}, "off", 128)
    for name, model_name, img_size, overrides, amp, batch in [reference, *arms(spec)]:
        model, train_step, eval_step = step_timer(model_name, img_size, overrides, amp, batch)
        train_step(), eval_step()  # warm caches and allocator up
        found[name] = dict(macs=any_model_macs(model, img_size), batch=batch, amp=amp, img_size=img_size,
                           train=[], eval=[], steps=(train_step, eval_step))
    for _ in range(args.rounds):
        for arm in found.values():
            for kind, step in zip(("train", "eval"), arm["steps"]):
                start = time.perf_counter()
                for _ in range(args.steps):
                    step()
                arm[kind].append((time.perf_counter() - start) / args.steps)
    budget = spec.train["budget_pflop"] * 1e15
    validations = spec.train.get("validations", 1)
    print(f"threads {args.threads}, {args.rounds} rounds x {args.steps} steps, budget {budget / 1e15:g} PFLOP, "
          f"{validations} validations of {HOLDOUT}, test {TEST} x 2 (final, best) + clean {CLEAN} x 2")
    for arm in found.values():  # images/s per round, as a ratio to the reference's in the same round
        share = arm["batch"] / 128
        arm["ratio"] = statistics.median(share * r / a for a, r in zip(arm["train"], found["reference"]["train"]))
        arm["eval_ratio"] = statistics.median(share * r / a for a, r in zip(arm["eval"], found["reference"]["eval"]))
    scale = args.reference_ips / (128 / statistics.median(found["reference"]["train"]))
    print(f"reference measured here at {128 / statistics.median(found['reference']['train']):.1f} img/s: "
          f"projections x {scale:.2f}")
    for name, arm in found.items():
        train_ips = arm["ratio"] * 128 / statistics.median(found["reference"]["train"])
        eval_ips = arm["eval_ratio"] * 128 / statistics.median(found["reference"]["eval"])
        images = budget / (6 * arm["macs"])
        minutes = (images / train_ips + (validations * HOLDOUT + 2 * (TEST + CLEAN)) / eval_ips) / 60
        print(f"{name:17s} {arm['img_size']:3d} px {arm['amp']:4s} {arm['macs'] / 1e6:6.1f} M MACs  ratio "
              f"{arm['ratio']:6.3f}  train {train_ips:6.1f} img/s, eval {eval_ips:6.1f} img/s here; "
              f"{images:7.0f} images = {minutes:5.1f} min per run here, {minutes / scale:5.1f} projected quiet")


if __name__ == "__main__":
    main()
