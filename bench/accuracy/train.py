"""Train a model from random init (or fine-tune from a checkpoint) on an ImageNet-style folder.

The loop is timm's recipe, assembled from timm's parts: AdamW from `create_optimizer_v2`
(no weight decay on norms, biases and `no_weight_decay()`), cosine schedule with warm-up
stepped per update, Mixup/CutMix with soft-target or label-smoothing loss, gradient clipping,
stochastic depth, optional EMA (`ModelEmaV3`), AMP (bf16, or fp16 with a grad scaler) and
`torch.compile`. One process per device under `torchrun` (DDP, only rank 0 writes).

Reproducibility: every epoch reseeds all RNGs (and the loader's workers) from (seed, rank,
epoch), and checkpoints are written at epoch ends, so a run resumed from `last.pth` takes the
same steps as one that was never interrupted.
"""
import dataclasses
import json
import math
import random
import resource
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from timm.data import Mixup
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.utils import ModelEmaV3
from tqdm import tqdm

import models
from bench.accuracy import distributed, factory
from bench.accuracy.data import (BadFileLog, ImageFolderDataset, build_loader, eval_transform, log, scan_dataset,
                        select_per_class, train_transform)
from bench.accuracy.evaluate import evaluate, parse_model_args
from models.atomic import atomic_write_text
from models.errors import ConfigError, DatasetError, ResultsError, VitbenchError

CONFIG_FILE, LAST, BEST, SUMMARY = "config.json", "last.pth", "best.pth", "summary.json"
METRICS_JSONL, METRICS_CSV = "metrics.jsonl", "metrics.csv"
PAPER_BATCH = 512  # the paper's learning rates are for a global batch of 512
SMALL_T2T = ("t2t_vit_7", "t2t_vit_10", "t2t_vit_12")  # lr 1e-3, wd .03 in the paper; larger models 5e-4, .05


class TrainingDivergedError(VitbenchError, FloatingPointError):
    """The loss became NaN or infinite."""


@dataclass
class TrainConfig:
    """Every setting of a run; saved as RUN/config.json. Defaults are the T2T-ViT paper's recipe."""

    model: str
    data: str
    out: str
    model_args: dict = field(default_factory=dict)  # overrides for the model, e.g. {"depth": 4}
    epochs: int = 310
    batch_size: int = 128  # per process; the global batch is batch_size x world size
    img_size: int = 224
    lr: float = None  # absolute learning rate; None: base_lr x global batch / 512
    base_lr: float = None  # lr at a global batch of 512; None: the paper's (1e-3 small T2T, 5e-4 others)
    weight_decay: float = None  # None: .03 for small T2T, .05 others
    min_lr: float = 1e-5
    warmup_lr: float = 1e-6
    warmup_epochs: int = 5
    clip_grad: float = None  # max gradient norm; None: no clipping (the paper's recipe)
    drop_path: float = 0.1
    smoothing: float = 0.1
    mixup: float = 0.8
    cutmix: float = 1.0
    auto_augment: str = "rand-m9-mstd0.5-inc1"  # "" turns RandAugment off
    reprob: float = 0.25
    scale: tuple = (0.08, 1.0)  # random resized crop: area range
    ratio: tuple = (3 / 4, 4 / 3)  # random resized crop: aspect-ratio range
    hflip: float = 0.5
    color_jitter: float = 0.4
    interpolation: str = None  # None: the model's (bicubic for ours)
    crop_pct: float = None  # None: the model's (0.9 for ours)
    ema_decay: float = None  # e.g. 0.99996; None: no EMA
    amp: str = "auto"  # auto (bf16 on CUDA, off on CPU), bf16, fp16, off
    compile: bool = False
    seed: int = 0
    workers: int = 2
    train_fraction: float = None  # keep this fraction of each class's train images
    train_per_class: int = None  # or keep K train images per class
    subset_seed: int = None  # seed of that cut; None: the run's seed
    strict: bool = False  # stop at the first unreadable image instead of skipping it
    init: str = None  # fine-tune from this checkpoint instead of random init
    device: str = None  # None: cuda when available
    threads: int = None  # CPU intra-op threads (torch.set_num_threads); None: torch's default

    def __post_init__(self):
        self.scale, self.ratio = tuple(self.scale), tuple(self.ratio)
        if self.epochs < 1 or self.batch_size < 1 or self.img_size < 1:
            raise ConfigError(f"epochs={self.epochs}, batch_size={self.batch_size} and img_size={self.img_size} must be >= 1")
        if self.amp not in ("auto", "bf16", "fp16", "off"):
            raise ConfigError(f"amp={self.amp!r} is not one of auto, bf16, fp16, off")

    def paper_base_lr(self):
        return 1e-3 if self.model in SMALL_T2T else 5e-4

    def resolved_weight_decay(self):
        if self.weight_decay is not None:
            return self.weight_decay
        return 0.03 if self.model in SMALL_T2T else 0.05

    def resolved_lr(self, world_size):
        if self.lr is not None:
            return self.lr
        base = self.base_lr if self.base_lr is not None else self.paper_base_lr()
        return base * self.batch_size * world_size / PAPER_BATCH


def jsonable(value):
    return json.loads(json.dumps(value))


def derive_seed(*parts):
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


def print_nothing(message):
    pass


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def amp_dtype(config, device):
    amp = config.amp
    if amp == "auto":
        amp = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "off"
    if amp == "fp16" and device.type != "cuda":
        raise ConfigError("--amp fp16 needs a CUDA device; use --amp bf16 or --amp off on CPU")
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}[amp]


def check_new_run_dir(out, overwrite):
    """A fresh run never replaces earlier results unless asked, and only ever replaces a run."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ResultsError(f"{out} already holds results; pass --resume to continue that run or --overwrite to start over")
        if not (out / CONFIG_FILE).is_file():
            raise ResultsError(f"{out} is not a vitbench run folder (no {CONFIG_FILE}); --overwrite only replaces runs")


def resume_config(out, given):
    """The run's saved config; explicit settings that differ from it are refused (they would change the run)."""
    out = Path(out)
    if not (out / LAST).is_file() or not (out / CONFIG_FILE).is_file():
        raise ResultsError(f"{out} has no {LAST} to resume from; start the run without --resume")
    saved = json.loads((out / CONFIG_FILE).read_text())
    given = {k: v for k, v in given.items() if k != "out"}
    conflicts = [f"{key}={value!r} (run has {saved.get(key)!r})" for key, value in given.items()
                 if jsonable(value) != saved.get(key) and key != "strict"]
    if conflicts:
        raise ConfigError(f"cannot resume with other settings: {', '.join(conflicts)}; drop them or start a new --out")
    return TrainConfig(**{**saved, **given, "out": str(out)})


@dataclass
class Data:
    classes: list
    train: ImageFolderDataset
    val: ImageFolderDataset


def training_samples(config, warn):
    """(classes, train samples after the optional cut, val samples), checked for layout problems.

    Files without an image extension are never loaded: reported here, fatal with `strict`.
    """
    scanned = scan_dataset(config.data)
    train, val = scanned["train"], scanned["val"]
    ignored = train.ignored + val.ignored
    if ignored and config.strict:
        raise DatasetError(f"{ignored[0]} is not an image file ({len(ignored)} such files); remove them or drop --strict")
    if ignored:
        warn(f"warning: ignoring {len(ignored)} non-image files in {config.data}, e.g. {ignored[0]}")
    samples = train.samples
    if config.train_fraction is not None or config.train_per_class is not None:
        seed = config.seed if config.subset_seed is None else config.subset_seed
        samples = select_per_class(samples, train.classes, config.train_per_class, config.train_fraction, seed)
    return train.classes, samples, val.samples, ignored


def loss_functions(config, num_classes):
    """(mixup or None, training loss): soft targets with Mixup/CutMix, else label smoothing."""
    if config.mixup > 0 or config.cutmix > 0:
        mixup = Mixup(mixup_alpha=config.mixup, cutmix_alpha=config.cutmix, label_smoothing=config.smoothing, num_classes=num_classes)
        return mixup, SoftTargetCrossEntropy()
    if config.smoothing > 0:
        return None, LabelSmoothingCrossEntropy(config.smoothing)
    return None, torch.nn.CrossEntropyLoss()


def peak_memory_mb(device):
    """Peak CUDA memory allocated since the last reset, or the process's peak RSS on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Trainer:
    """One run: model, optimizer, schedule and state; `fit` trains to the end and writes RUN_DIR."""

    def __init__(self, config, context, progress=True, warn=log):
        self.config, self.context, self.progress, self.warn = config, context, progress, warn
        self.out = Path(config.out)
        device = context.device
        if config.threads:
            torch.set_num_threads(config.threads)
        classes, train_samples, val_samples, self.ignored_files = training_samples(config, warn if context.is_main else print_nothing)
        num_classes = len(classes)
        seed_everything(config.seed)  # same initial weights on every rank
        self.model = factory.create(config.model, num_classes, config.img_size, config.drop_path, config.model_args)
        self.data = Data(
            classes=classes,
            train=ImageFolderDataset(train_samples, classes, train_transform(self.model, config.img_size, config)),
            val=ImageFolderDataset(val_samples, classes, eval_transform(self.model, config.img_size, config.interpolation, config.crop_pct)),
        )
        overrides = dict(config.model_args)
        if config.init and factory.load_weights(self.model, config.init).get("layout") == "reference-t2t":
            overrides["qk_scale"] = self.model.embed_dim**-0.5  # the scale the reference weights need, kept for eval
        self.model.to(device)
        self.build = {"model": config.model, "overrides": overrides, "img_size": config.img_size,
                      "num_classes": num_classes, "classes": self.data.classes,
                      "eval_transform": {"interpolation": config.interpolation, "crop_pct": config.crop_pct}}

        world = context.world_size
        self.steps_per_epoch = len(self.data.train) // world // config.batch_size
        if self.steps_per_epoch < 1:
            raise DatasetError(
                f"{len(self.data.train)} training images cannot fill one batch of {config.batch_size} "
                f"on each of {world} process(es); lower --batch-size"
            )
        self.lr = config.resolved_lr(world)
        self.optimizer = create_optimizer_v2(self.model, opt="adamw", lr=self.lr, weight_decay=config.resolved_weight_decay())
        self.scheduler, _ = create_scheduler_v2(
            self.optimizer, sched="cosine", num_epochs=config.epochs, warmup_epochs=config.warmup_epochs,
            min_lr=config.min_lr, warmup_lr=config.warmup_lr, step_on_epochs=False, updates_per_epoch=self.steps_per_epoch,
        )
        self.amp_dtype = amp_dtype(config, device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype is torch.float16)
        self.ema = ModelEmaV3(self.model, decay=config.ema_decay) if config.ema_decay else None
        self.mixup, self.train_loss = loss_functions(config, num_classes)

        self.compiled = torch.compile(self.model) if config.compile else self.model
        self.net = self.compiled
        if context.distributed:
            device_ids = [device.index] if device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(self.compiled, device_ids=device_ids)
        self.bad_files = BadFileLog(config.strict, warn)
        self.epoch, self.num_updates, self.history, self.best, self.final_eval = 0, 0, [], None, None

    # --- state -------------------------------------------------------------------------------
    def save(self, path, full):
        extra = {"build": self.build, "epoch": self.epoch, "top1": self.history[-1]["top1"]}
        if self.ema:
            extra["state_dict_ema"] = self.ema.module.state_dict()
        if full:
            extra.update(
                num_updates=self.num_updates, optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(),
                scaler=self.scaler.state_dict(), history=self.history, best=self.best, skipped_files=self.bad_files.seen,
                train_config=jsonable(dataclasses.asdict(self.config)),
            )
        models.save_checkpoint(self.model, path, **extra)

    def restore(self, path):
        payload = torch.load(path, map_location=self.context.device, weights_only=True)
        self.model.load_state_dict(payload["state_dict"])
        if self.ema:
            self.ema.module.load_state_dict(payload["state_dict_ema"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        self.scaler.load_state_dict(payload["scaler"])
        self.epoch, self.num_updates = payload["epoch"], payload["num_updates"]
        self.history, self.best = payload["history"], payload["best"]
        self.bad_files.seen.update(payload["skipped_files"])

    # --- one epoch -----------------------------------------------------------------------------
    def train_one_epoch(self):
        config, context, device = self.config, self.context, self.context.device
        epoch_seed = derive_seed(config.seed, context.rank, self.epoch)
        seed_everything(epoch_seed)
        sampler = distributed.train_sampler(self.data.train, context, config.seed)
        sampler.set_epoch(self.epoch)
        loader = build_loader(self.data.train, config.batch_size, sampler, config.workers, drop_last=True, seed=epoch_seed)
        self.net.train()
        totals = torch.zeros(2, dtype=torch.float64, device=device)  # loss sum, images
        start = time.perf_counter()
        bar = tqdm(loader, desc=f"epoch {self.epoch + 1}/{config.epochs}", leave=False,
                   disable=not (self.progress and context.is_main), dynamic_ncols=True)
        for step, (images, targets, bad) in enumerate(bar):
            self.bad_files.record(bad)
            if images is None:
                continue
            if self.mixup and len(images) % 2:  # Mixup pairs images; a skipped file can leave an odd batch
                images, targets = images[:-1], targets[:-1]
                if not len(images):
                    continue
            images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
            if self.mixup:
                images, targets = self.mixup(images, targets)
            with torch.autocast(device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                loss = self.train_loss(self.net(images), targets)
            value = loss.item()
            if not math.isfinite(value):
                raise TrainingDivergedError(
                    f"loss became {value} at epoch {self.epoch + 1}, step {step + 1} (update {self.num_updates + 1}); "
                    "lower --lr, set --clip-grad, or use --amp bf16 instead of fp16"
                )
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if config.clip_grad:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.clip_grad)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.num_updates += 1
            self.scheduler.step_update(self.num_updates)
            if self.ema:
                self.ema.update(self.model, step=self.num_updates)
            totals += torch.tensor([value * len(images), len(images)], dtype=torch.float64, device=device)
            if step % 10 == 0:
                elapsed = time.perf_counter() - start
                bar.set_postfix(loss=f"{value:.3f}", lr=f"{self.optimizer.param_groups[0]['lr']:.2e}",
                                img_s=f"{totals[1].item() * context.world_size / elapsed:.0f}")
        bar.close()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
        distributed.all_reduce_sum(totals, context)
        loss_sum, images = totals.tolist()
        return {"train_loss": loss_sum / images if images else float("nan"), "train_images": int(images),
                "train_images_per_s": images / seconds, "train_time_s": seconds}

    def evaluate(self, model):
        loader = build_loader(self.data.val, self.config.batch_size, distributed.ShardSampler(len(self.data.val), self.context),
                              self.config.workers)
        return evaluate(model, loader, len(self.data.classes), self.context, self.bad_files, self.amp_dtype)

    # --- the run -------------------------------------------------------------------------------
    def fit(self):
        config, context = self.config, self.context
        while self.epoch < config.epochs:
            start = time.perf_counter()
            if context.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(context.device)
            row = {"epoch": self.epoch + 1, "lr": self.optimizer.param_groups[0]["lr"], **self.train_one_epoch()}
            result = self.evaluate(self.compiled)  # not through DDP: ranks may run different batch counts
            row.update(val_loss=result["loss"], top1=result["top1"], top5=result["top5"], val_images=result["images"])
            if self.ema:
                ema_result = self.evaluate(self.ema.module)
                row.update(ema_top1=ema_result["top1"], ema_top5=ema_result["top5"])
            row.update(epoch_time_s=time.perf_counter() - start, peak_mem_mb=peak_memory_mb(context.device),
                       skipped_files=len(self.bad_files))
            self.epoch += 1
            self.history.append(row)
            improved = self.best is None or row["top1"] > self.best["top1"]
            if improved:
                self.best = {"epoch": row["epoch"], "top1": row["top1"], "top5": row["top5"]}
            self.final_eval = result
            if context.is_main:
                self.save(self.out / LAST, full=True)
                if improved:
                    self.save(self.out / BEST, full=False)
                self.write_metrics()
            if context.is_main and self.progress:
                self.warn(f"epoch {row['epoch']}/{config.epochs}: train loss {row['train_loss']:.4f}, val loss "
                          f"{row['val_loss']:.4f}, top-1 {row['top1']:.2f}%, top-5 {row['top5']:.2f}%, "
                          f"{row['train_images_per_s']:.0f} img/s, {row['epoch_time_s']:.1f} s")
        return self.finish()

    def write_metrics(self):
        atomic_write_text(self.out / METRICS_JSONL, "".join(json.dumps(row) + "\n" for row in self.history))
        atomic_write_text(self.out / METRICS_CSV, pd.DataFrame(self.history).to_csv(index=False))

    def finish(self):
        """Check the ranks agree, write summary.json (rank 0) and return the summary."""
        if self.final_eval is None:  # resumed a run whose last epoch was already done
            self.final_eval = self.evaluate(self.compiled)
        checksums = distributed.all_gather_objects(sum(p.double().sum().item() for p in self.model.parameters()), self.context)
        skipped = {}
        for seen in distributed.all_gather_objects(self.bad_files.seen, self.context):
            skipped.update(seen)
        last = self.history[-1]
        summary = {
            "model": self.config.model, "model_args": self.config.model_args, "data": self.config.data,
            "classes": len(self.data.classes), "train_images": len(self.data.train), "val_images": len(self.data.val),
            "params": sum(p.numel() for p in self.model.parameters()),
            "params_trainable": sum(p.numel() for p in self.model.parameters() if p.requires_grad),
            "epochs": self.epoch, "top1": last["top1"], "top5": last["top5"], "val_loss": last["val_loss"],
            "best": self.best, "train_images_per_s": float(np.mean([r["train_images_per_s"] for r in self.history])),
            "train_time_s": float(sum(r["train_time_s"] for r in self.history)),
            "peak_mem_mb": max(r["peak_mem_mb"] for r in self.history),
            "memory_measure": "cuda max allocated" if self.context.device.type == "cuda" else "cpu peak rss",
            "lr": self.lr, "global_batch": self.config.batch_size * self.context.world_size,
            "world_size": self.context.world_size, "device": str(self.context.device),
            "amp": str(self.amp_dtype).removeprefix("torch.") if self.amp_dtype else "off",
            "ranks_in_sync": max(checksums) == min(checksums),
            "per_class_top1": dict(zip(self.data.classes, self.final_eval["per_class_top1"])),
            "confusion": self.final_eval["confusion"],
            "skipped_files": skipped, "ignored_non_image_files": len(self.ignored_files),
        }
        if self.context.is_main:
            atomic_write_text(self.out / SUMMARY, json.dumps(summary, indent=1) + "\n")
        return summary


def start(config, overwrite=False, progress=True, warn=log):
    """Train `config` from scratch (or from config.init) into config.out; returns the summary dict."""
    context = distributed.setup(config.device)
    out = Path(config.out)
    check_new_run_dir(out, overwrite)  # on every rank, so that all of them stop on a refusal
    distributed.barrier(context)
    if context.is_main:
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        atomic_write_text(out / CONFIG_FILE, json.dumps(jsonable(dataclasses.asdict(config)), indent=1) + "\n")
    distributed.barrier(context)
    return Trainer(config, context, progress, warn).fit()


def resume(out, given=None, progress=True, warn=log):
    """Continue the run in `out` from its last checkpoint; it ends as an uninterrupted run would."""
    config = resume_config(out, given or {})
    context = distributed.setup(config.device)
    trainer = Trainer(config, context, progress, warn)
    trainer.restore(Path(out) / LAST)
    if context.is_main:
        warn(f"resuming {out} after epoch {trainer.epoch} of {config.epochs}")
    return trainer.fit()


# --- command line --------------------------------------------------------------------------------
def config_fields():
    return {f.name for f in dataclasses.fields(TrainConfig)}


def given_settings(args):
    """The TrainConfig fields the user set explicitly (argparse defaults are None)."""
    given = {k: v for k, v in vars(args).items() if k in config_fields() and v is not None}
    if args.model_arg:
        given["model_args"] = parse_model_args(args.model_arg)
    given.pop("model_arg", None)
    return given


def cmd_train(args):
    given = given_settings(args)
    try:
        if args.resume:
            if args.overwrite:
                raise ConfigError("--resume and --overwrite contradict each other; pick one")
            summary = resume(args.out, given)
        else:
            missing = [f"--{k}" for k in ("model", "data") if k not in given]
            if missing:
                raise ConfigError(f"{' and '.join(missing)} required to start a run (or pass --resume to continue one)")
            summary = start(TrainConfig(**given), args.overwrite)
        main_process = distributed.is_main_process()
    finally:
        distributed.teardown()
    if main_process:
        print(f"{args.out}: top-1 {summary['top1']:.2f}% (best {summary['best']['top1']:.2f}% at epoch "
              f"{summary['best']['epoch']}), top-5 {summary['top5']:.2f}%, {summary['train_images_per_s']:.0f} train img/s"
              + (f", {len(summary['skipped_files'])} unreadable files skipped" if summary["skipped_files"] else ""))


def register_cli(sub):
    p = sub.add_parser("train", help="train a model from scratch (or fine-tune with --init) on an ImageNet-style folder")
    p.add_argument("--model", help="our name (vitbench list) or a timm CNN such as resnet18")
    p.add_argument("--data", help="folder with train/<class>/* and val/<class>/*")
    p.add_argument("--out", required=True, help="run folder (config, metrics, checkpoints, summary)")
    p.add_argument("--model-arg", action="append", metavar="KEY=VALUE", help="model override, e.g. depth=4 (repeatable)")
    p.add_argument("--epochs", type=int, help="default 310 (the paper)")
    p.add_argument("--batch-size", type=int, help="per process; default 128")
    p.add_argument("--img-size", type=int, help="default 224")
    p.add_argument("--lr", type=float, help="absolute learning rate (default: --base-lr x global batch / 512)")
    p.add_argument("--base-lr", type=float, help="lr at global batch 512; default 1e-3 (T2T-ViT-7/10/12) or 5e-4 (paper)")
    p.add_argument("--weight-decay", type=float, help="default .03 (T2T-ViT-7/10/12) or .05")
    p.add_argument("--warmup-epochs", type=int, help="default 5")
    p.add_argument("--min-lr", type=float)
    p.add_argument("--clip-grad", type=float, help="max gradient norm (default: none, as the paper)")
    p.add_argument("--drop-path", type=float, help="stochastic depth rate, default 0.1")
    p.add_argument("--smoothing", type=float, help="label smoothing, default 0.1")
    p.add_argument("--mixup", type=float, help="Mixup alpha, default 0.8 (0 disables)")
    p.add_argument("--cutmix", type=float, help="CutMix alpha, default 1.0 (0 disables)")
    p.add_argument("--auto-augment", help="timm RandAugment spec, default rand-m9-mstd0.5-inc1 ('' disables)")
    p.add_argument("--reprob", type=float, help="random erasing probability, default 0.25")
    p.add_argument("--scale", type=float, nargs=2, help="random resized crop scale range, default 0.08 1.0")
    p.add_argument("--ratio", type=float, nargs=2, help="random resized crop aspect-ratio range, default 0.75 1.33")
    p.add_argument("--hflip", type=float, help="horizontal flip probability, default 0.5")
    p.add_argument("--color-jitter", type=float, help="default 0.4")
    p.add_argument("--crop-pct", type=float, help="eval center-crop fraction (default: the model's, 0.9 for ours)")
    p.add_argument("--ema-decay", type=float, help="keep an EMA of the weights with this decay (e.g. 0.99996)")
    p.add_argument("--amp", choices=["auto", "bf16", "fp16", "off"], help="mixed precision; auto = bf16 on CUDA, off on CPU")
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    p.add_argument("--seed", type=int, help="default 0")
    p.add_argument("--workers", type=int, help="data loader processes per rank, default 2")
    p.add_argument("--train-fraction", type=float, help="train on this fraction of each class, in (0, 1]")
    p.add_argument("--train-per-class", type=int, help="train on K images per class")
    p.add_argument("--subset-seed", type=int, help="seed of the train cut (default: --seed)")
    p.add_argument("--strict", action="store_true", default=None, help="stop at the first unreadable image")
    p.add_argument("--init", help="fine-tune from this checkpoint (reference T2T-ViT, timm ViT/ResNet or ours)")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available; torchrun sets one per rank)")
    p.add_argument("--threads", type=int, help="CPU threads per process (1 is fastest on a busy shared CPU)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="delete the run in --out and start over")
    p.set_defaults(func=cmd_train)
