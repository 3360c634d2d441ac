"""Side-by-side CPU timing of our T2T-ViT front end against its baselines (GitHub issue 12).

Every contender of a comparison is built in this one process and timed interleaved: each of
`--rounds` rounds times every contender for `--steps` steps (after one warm-up step), and a
ratio is taken per round; the table reports medians. Contenders:

- `ours`: the working tree's model;
- `before`: the same model with the tokenizer of commit `--before` (`git show`), same weights;
- `ref`: the reference-style `bench.reference_t2t.RefT2TViT` of the same config;
- `vit`: our ViT with the same backbone; `deit_tiny`: timm's `deit_tiny_patch16_224`.

Modes: `infer` (eval, inference_mode) and `train` (train mode, cross-entropy forward,
backward and an AdamW step).

    .venv/bin/python scripts/perf_tokenizer.py --threads 2 --csv results/perf-tokenizer-20261126/perf.csv
"""
import argparse
import csv
import datetime
import importlib.util
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import timm
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import models  # noqa: E402
from bench.allocator import POLICIES, allocator_in_effect, use_allocator  # noqa: E402
from bench.cost.flops import analytic_macs  # noqa: E402
from bench.cost.timing import TimingSetup  # noqa: E402
from bench.suite import build_reference  # noqa: E402

CIFAR_T2T = dict(img_size=32, num_classes=10, t2t_stages=((3, 2, 1), (3, 2, 1)), token_dim=64)
CIFAR_VIT = dict(img_size=32, patch_size=4, embed_dim=256, depth=7, num_heads=4, mlp_ratio=2.0, num_classes=10)
VIT_LIKE_T2T_7 = dict(embed_dim=256, depth=7, num_heads=4, mlp_ratio=2.0)

# comparison name -> (image size, batch, ours (name, overrides), baselines it is compared with)
COMPARISONS = {
    "t2t_vit_7": (224, 8, ("t2t_vit_7", {}), ("before", "ref", "vit", "deit_tiny")),
    "t2t_vit_14": (224, 8, ("t2t_vit_14", {}), ("before", "ref")),
    "t2t_vit_t_14": (224, 8, ("t2t_vit_t_14", {}), ("before", "ref")),
    "cifar_t2t_vit_7": (32, 64, ("t2t_vit_7", CIFAR_T2T), ("before", "vit")),
}


def load_before_tokenizers(commit):
    """`models/tokenizers.py` as of `commit`, imported as a sibling module of `models`."""
    source = subprocess.run(["git", "show", f"{commit}:models/tokenizers.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "tokenizers_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("models.tokenizers_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def with_old_tokenizer(model, name, overrides, old_module):
    """A copy of `model` whose T2T tokenizer is the old implementation, with the same weights."""
    twin = models.create_model(name, **overrides)
    tok = model.tokenizer
    old = old_module.T2TTokenizer(tok.img_size, tok.in_chans, tok.embed_dim, tok.token_dim, tok.block_kind, tok.stages,
                                  tok.blocks[0].proj_drop.p if tok.block_kind == "performer" else 0.0)
    twin.tokenizer = old
    twin.load_state_dict(model.state_dict())
    return twin


def build_contenders(comparison, before_module):
    img_size, batch, (name, overrides), baselines = COMPARISONS[comparison]
    ours = models.create_model(name, **overrides)
    contenders = {"ours": ours}
    for baseline in baselines:
        if baseline == "before":
            contenders["before"] = with_old_tokenizer(ours, name, overrides, before_module)
        elif baseline == "ref":
            contenders["ref"] = build_reference(ours)
        elif baseline == "vit":
            vit = (models.create_model("vit_s16_t2t_paper", **CIFAR_VIT) if img_size == 32 else
                   models.create_model("vb_vit_tiny_patch16_224", **VIT_LIKE_T2T_7))
            contenders["vit"] = vit
        elif baseline == "deit_tiny":
            contenders["deit_tiny"] = timm.create_model("deit_tiny_patch16_224")
    return img_size, batch, contenders


class Runner:
    """One contender's inference or training step on a fixed random batch."""

    def __init__(self, model, mode, batch, img_size):
        self.model, self.mode = model, mode
        num_classes = model.num_classes
        self.x = torch.randn(batch, 3, img_size, img_size)
        self.y = torch.randint(0, num_classes, (batch,))
        model.train(mode == "train")
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6) if mode == "train" else None

    def step(self):
        if self.mode == "infer":
            with torch.inference_mode():
                self.model(self.x)
            return
        self.optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(self.model(self.x), self.y).backward()
        self.optimizer.step()

    def time(self, steps):
        self.step()  # warm-up: caches, allocator
        start = time.perf_counter()
        for _ in range(steps):
            self.step()
        return (time.perf_counter() - start) / steps


def contender_macs(name, contenders):
    """MACs per image; `before` and `ref` share ours, DeiT-Ti is counted as our ViT of its size."""
    if name in ("before", "ref"):
        name = "ours"
    if name == "deit_tiny":
        with torch.device("meta"):
            return analytic_macs(models.create_model("vb_vit_tiny_patch16_224"))["total"]
    return analytic_macs(contenders[name])["total"]


def measure(comparison, mode, rounds, steps, before_module):
    """Rows {comparison, mode, contender, seconds, images_per_s, macs, speedup_vs_...} of one comparison."""
    img_size, batch, contenders = build_contenders(comparison, before_module)
    runners = {name: Runner(model, mode, batch, img_size) for name, model in contenders.items()}
    times = {name: [] for name in runners}
    for _ in range(rounds):
        for name, runner in runners.items():
            times[name].append(runner.time(steps))
    ours_macs = contender_macs("ours", contenders)
    rows = []
    for name, seconds in times.items():
        ratios = [ours / theirs for ours, theirs in zip(times["ours"], seconds)]  # > 1: the contender is slower
        macs = contender_macs(name, contenders)
        rows.append({
            "comparison": comparison, "mode": mode, "img_size": img_size, "batch": batch, "contender": name,
            "seconds": statistics.median(seconds), "images_per_s": batch / statistics.median(seconds),
            "macs_per_image": macs,
            "ours_speedup": 1 / statistics.median(ratios),  # contender time / ours time, median over rounds
            "ours_macs_rate_ratio": ours_macs / macs / statistics.median(ratios),
        })
    return rows


def provenance(args):
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    return {"cpu": cpu, "threads": torch.get_num_threads(), "torch": torch.__version__, "timm": timm.__version__,
            "date": datetime.datetime.now().isoformat(timespec="seconds"), "commit": commit.strip(),
            "command": " ".join(sys.argv), "rounds": args.rounds, "steps": args.steps,
            "allocator": allocator_in_effect()}


def markdown(rows):
    lines = ["| comparison | mode | contender | ms/step | images/s | ours speedup | ours (img/s x MACs) ratio |",
             "|:--|:--|:--|--:|--:|--:|--:|"]
    for r in rows:
        lines.append(f"| {r['comparison']} | {r['mode']} | {r['contender']} | {1e3 * r['seconds']:.1f} | "
                     f"{r['images_per_s']:.1f} | {r['ours_speedup']:.2f}x | {r['ours_macs_rate_ratio']:.2f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comparisons", nargs="+", default=list(COMPARISONS), choices=list(COMPARISONS))
    parser.add_argument("--modes", nargs="+", default=["infer", "train"], choices=["infer", "train"])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--before", default="9182ad9", help="commit whose models/tokenizers.py is `before`")
    parser.add_argument("--allocator", choices=POLICIES, default=TimingSetup.allocator, help="see bench/allocator.py")
    parser.add_argument("--csv", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    use_allocator(args.allocator)
    torch.manual_seed(0)
    before_module = load_before_tokenizers(args.before)
    rows = []
    for comparison in args.comparisons:
        for mode in args.modes:
            rows += measure(comparison, mode, args.rounds, args.steps, before_module)
            print(f"{comparison} {mode}: " + ", ".join(f"{r['contender']} {1e3 * r['seconds']:.1f} ms "
                  f"({r['ours_speedup']:.2f}x)" for r in rows if r["comparison"] == comparison and r["mode"] == mode),
                  flush=True)
    print(provenance(args))
    print(markdown(rows))
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        with args.csv.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=[*rows[0], *provenance(args)])
            writer.writeheader()
            for row in rows:
                writer.writerow({**row, **provenance(args)})


if __name__ == "__main__":
    main()
