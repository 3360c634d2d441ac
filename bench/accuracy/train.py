"""Train a model from random init (or fine-tune from a checkpoint) on an ImageNet-style folder.

A run is three pieces a reader can take one at a time: its data (`train_data`: files or memory), its
model and optimiser with the one update they take (`optimisation.Optimisation`), and `Trainer`,
which runs epochs, evaluates, checkpoints and writes RUN/ (config.json, metrics, last.pth,
best.pth, summary.json). One process per device under `torchrun` (DDP, only rank 0 writes).

Reproducibility: every epoch reseeds all RNGs (and the loader's workers) from (seed, rank,
epoch), and checkpoints are written at epoch ends, so a run resumed from `last.pth` takes the
same steps as one that was never interrupted. A mid-epoch checkpoint (`checkpoint_every` updates or
`checkpoint_minutes`, or SIGUSR1: `preempt`) also holds every rank's RNG states and the epoch's
running totals; the resumed epoch replays the loader up to that batch (its workers' augmentation draws
stay in step) without training on it, then restores the RNGs, so it too ends bit-identical.
"""
import copy
import dataclasses
import json
import math
import os
import random
import resource
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import models
from bench import factory
from bench.accuracy import distributed, precision
from bench.accuracy.data import BadFileLog, log
from bench.accuracy.distributed import cpu_threads
from bench.accuracy.evaluate import evaluate, evaluate_together, unmeasured_classes, warn_unmeasured
from bench.accuracy.normalisation import init_normalisation, normalisation, set_normalisation
from bench.accuracy.optimisation import Optimisation, amp_dtype
from bench.accuracy.plan import PFLOP, WARMUP_MAX_SHARE, Plan, plan_run, train_pflop
from bench.accuracy.preempt import Preemption
from bench.accuracy.progress import StepProgress, duration
from bench.accuracy.train_data import scan_samples, train_data
from bench.configs import TrainConfig
from bench.cost.flops import any_model_macs, count_params
from bench.cost.peak import utilisation
from bench.errors import ResultsError
from bench.outputs import OutputFolder, folder_lock, read_back, refuse_overlap
from bench.records import repoint
from bench.settings import located_paths, path_fields, portable_path, portable_paths
from models.atomic import atomic_write, atomic_write_text
from models.checkpoint import open_checkpoint, read_checkpoint
from models.errors import CheckpointError, ConfigError

CONFIG_FILE, LAST, BEST, SUMMARY = "config.json", "last.pth", "best.pth", "summary.json"
CONFIG_TOML = "config.toml"  # the settings without `out`: `vitbench train --config RUN/config.toml --out NEW seed=1`
METRICS_JSONL, METRICS_CSV = "metrics.jsonl", "metrics.csv"
TEST_PREDICTIONS = "test_predictions.npz"  # per test image: its label and the class the final and best weights chose
TENSORBOARD = "tensorboard"  # RUN/tensorboard/: event files of --log tensorboard
WANDB = "wandb"  # RUN/wandb/: the W&B run of --log wandb (offline-run-*/ with WANDB_MODE=offline)
WANDB_ID = "vitbench-run-id"  # RUN/wandb/vitbench-run-id: the W&B run a resumed run continues
REQUIRED_RUN_KEYS = {"model", "data", "out", "epochs", "batch_size", "seed", "model_args"}
# settings that leave the recipe alone: threads and workers set how fast it runs (a new worker count in files mode
# gives images other random augmentations from then on, the same recipe, so not a bit-identical continuation)
CHANGE_ON_RESUME = ("strict", "checkpoint_every", "checkpoint_minutes", "threads", "workers")
PLATEAU_LOSS = 0.95  # a run whose final train loss is still >= 95% of ln(classes) never left the initial plateau
UNSCORED = {"top1": None, "top5": None, "loss": None, "images": 0, "per_class_top1": (), "confusion": None}  # test off


def jsonable(value):
    return json.loads(json.dumps(value))


def json_row(row):
    """`row` with every float that is not finite (NaN: not measured) as None, the JSON null."""
    return {key: None if isinstance(value, float) and not math.isfinite(value) else value for key, value in row.items()}


def derive_seed(*parts):
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


def print_nothing(message):
    pass


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_states():
    """Python's, numpy's, torch's (and CUDA's) RNG states, in types `torch.load(weights_only=True)` reads back."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"python": random.getstate(), "numpy": [kind, keys.tolist(), pos, has_gauss, gauss],
            "torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_states(states):
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(states["torch"])
    if states["cuda"]:
        torch.cuda.set_rng_state_all(states["cuda"])


def is_run_config(path):
    """A config.json that vitbench wrote: TrainConfig's fields (an older vitbench wrote fewer) and no others."""
    saved = json.loads(Path(path).read_text())
    return isinstance(saved, dict) and REQUIRED_RUN_KEYS <= set(saved) <= config_fields()


RUN_FOLDER = OutputFolder(
    kind="run",
    marker=CONFIG_FILE,
    holds="results",
    resume_hint="continue that run",
    resumable=lambda out: (Path(out) / LAST).is_file(),
    is_marked=is_run_config,
    written=(CONFIG_FILE, CONFIG_TOML, LAST, BEST, SUMMARY, METRICS_JSONL, METRICS_CSV, TEST_PREDICTIONS,
             f"{TENSORBOARD}/*", f"{WANDB}/*"),
)


class WandbLog:
    """`--log wandb`: the scalars `--log tensorboard` writes, under the same names and update counts, logged to a W&B
    run kept in RUN/wandb/ (timm's `--log-wandb` habit; WANDB_MODE=offline keeps it there for `wandb sync`,
    WANDB_PROJECT names the project, default vitbench). A resumed run continues the same W&B run (its id is kept in
    RUN/wandb/vitbench-run-id); W&B ignores the points it already holds past the checkpoint."""

    def __init__(self, out, config):
        try:
            import wandb
        except ImportError:
            raise ConfigError("--log wandb needs W&B, which is not installed: pip install 'vitbench[wandb]' (or "
                              "wandb), or log with --log tensorboard") from None
        folder = Path(out) / WANDB
        folder.mkdir(exist_ok=True)
        id_file = folder / WANDB_ID
        run_id = id_file.read_text().strip() if id_file.is_file() else uuid.uuid4().hex[:8]  # W&B's own id form
        atomic_write_text(id_file, run_id + "\n")
        self.run = wandb.init(dir=str(out), id=run_id, resume="allow", name=Path(out).name, config=config,
                              project=os.environ.get("WANDB_PROJECT", "vitbench"),
                              settings=wandb.Settings(console="off"))  # our own lines stay ours

    def add_scalar(self, tag, value, step):
        self.run.log({tag: value}, step=step)

    def close(self):
        self.run.finish()


def reads_of(settings):
    """What a run reads: its data folder and the checkpoint it starts from."""
    return tuple(settings[key] for key in ("data", "init") if settings.get(key))


def write_predictions(path, targets, **predictions):
    """RUN/test_predictions.npz: the labels and, per named weights, the predicted class of every test image."""
    atomic_write(path, lambda f: np.savez_compressed(f, targets=targets.astype(np.int16),
                                                     **{k: v.astype(np.int16) for k, v in predictions.items()}))


def read_predictions(run):
    """{targets, final, best} of a run's test_predictions.npz, as int arrays of one length each."""
    path = Path(run) / TEST_PREDICTIONS
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name].astype(np.int64) for name in ("targets", "final", "best")}
    except (OSError, ValueError, KeyError, EOFError) as error:
        raise ResultsError(f"{path} is unreadable ({type(error).__name__}: {error}); score the run's best.pth/last.pth "
                           "again with `vitbench eval`, or run it again") from None
    if len({a.shape for a in arrays.values()}) != 1 or arrays["targets"].ndim != 1:
        raise ResultsError(f"{path} holds arrays of different lengths; run it again")
    return arrays


def write_config(out, config):
    """RUN/config.json and RUN/config.toml, their paths (data, init, ...) relative to RUN (`portable_paths`): `--resume`
    and `--config RUN/config.toml` read them back against RUN, from any directory and after the tree moves."""
    portable = copy.copy(config)  # not checked again: the config as it runs, only its paths rewritten
    for key, value in portable_paths(TrainConfig, dataclasses.asdict(config), out).items():
        object.__setattr__(portable, key, value)
    atomic_write_text(Path(out) / CONFIG_FILE, json.dumps(jsonable(dataclasses.asdict(portable)), indent=1) + "\n")
    atomic_write_text(Path(out) / CONFIG_TOML, portable.to_toml(skip=("out",)))


def read_config(out):
    """The TrainConfig a run folder records (RUN/config.json), its paths resolved against the folder."""
    return TrainConfig(**located_paths(TrainConfig, read_back(Path(out) / CONFIG_FILE, "the run's settings are lost: "
                                                              "start it again with --overwrite"), out))


def resume_config(out, given):
    """The run's saved config with `given` applied. Settings that would change the run are refused (its length
    too: the schedule was planned for it, and extending a finished cosine would be a warm restart); only
    the settings in CHANGE_ON_RESUME may change, and `data` may name another folder: the images themselves are
    checked against the checkpoint's (`Trainer.restore`), so a run copied away from its data resumes with --data."""
    out = Path(out)
    RUN_FOLDER.prepare(out, resume=True)
    saved = {"data_mode": "files",  # runs from before data_mode
             **located_paths(TrainConfig, read_back(out / CONFIG_FILE, "the run's settings are lost: start it again "
                                                    "with --overwrite"), out)}
    given = {k: v for k, v in given.items() if k != "out"}
    if given.get("data"):
        saved["data"] = given.pop("data")
    elif not Path(saved["data"]).is_dir():
        raise ConfigError(f"the run's data folder {saved['data']} (recorded relative to {out}) is not there; resume "
                          "with --data DIR where its images now lie")
    refuse_overlap(out, reads_of(saved))
    paths = path_fields(TrainConfig)  # one file typed two ways (relative here, absolute in the record) is the same
    conflicts = [
        f"{key}={value!r} (run has {saved.get(key)!r})"
        for key, value in given.items()
        if key not in CHANGE_ON_RESUME and not (
            jsonable(value) == saved.get(key)
            or key in paths and isinstance(value, str) and isinstance(saved.get(key), str)
            and os.path.realpath(value) == os.path.realpath(saved[key]))
    ]
    if conflicts:
        raise ConfigError(f"cannot resume with other settings: {', '.join(conflicts)}; drop them or start a new --out "
                          "(a longer run: a new --out, with --init OUT/last.pth to start from these weights)")
    return TrainConfig(**{**saved, **given, "out": str(out)})


def memory_format(model, device):
    """channels_last for a CNN on CPU: its training step measured 1.2-1.3x faster than in NCHW, with the same
    losses within float rounding (results/perf-tiny-arms-20261204); transformers gained nothing measurable."""
    cnn = precision.model_width(model) is None
    return torch.channels_last if cnn and device.type == "cpu" else torch.preserve_format


def peak_memory_mb(device):
    """Peak CUDA memory allocated since the last reset, or the process's peak RSS on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def plateau_causes(config, lr, plan):
    """What the suite can check when a run never left the initial loss plateau."""
    causes = []
    if lr > 1e-3 * config.batch_size / 128:
        causes.append(f"lr {lr:g} is high for batch {config.batch_size} (T2T-ViT often stalls above 5e-4 at batch 128)")
    if plan.warmup_shortened_from and plan.warmup_shortened_from >= plan.total_updates / 2:
        causes.append(f"the warm-up asked for covered {plan.warmup_shortened_from / plan.total_updates:.0%} of the run "
                      f"(shortened to {plan.warmup_updates} of {plan.total_updates} updates): the run is too short "
                      "for its recipe; give it more epochs or a shorter --warmup-epochs")
    elif plan.warmup_updates < min(max(plan.updates_per_epoch, plan.total_updates // 10),
                                   math.floor(WARMUP_MAX_SHARE * plan.total_updates)):
        causes.append(f"warm-up of {plan.warmup_updates} updates is short for {plan.total_updates} updates "
                      "(less than an epoch or a tenth of the run)")
    settings = models.MODEL_CONFIGS.get(config.model, {})
    if {**settings, **config.model_args}.get("pos_embed") == "sinusoid":
        causes.append(
            "the fixed sinusoid position table (rms .71) can swamp small token embeddings; try "
            "--model-arg pos_embed=learn"
        )
    return causes or ["none of the usual suspects (lr, warm-up, position table); check the data and labels"]


class Trainer:
    """Runs the epochs of one run: train, evaluate, checkpoint, metrics; `fit` ends with summary.json
    (`finish` computes the summary, `record` writes it).

    With a holdout, every per-epoch score, best.pth, the EMA choice and the plateau flag use it, and the
    test split (the data folder's val/) is read once, at the end, to score the final weights and, labelled
    as such, best.pth. `resume_from` is a last.pth payload: the run continues on the plan saved in it.
    """

    def __init__(self, config, context, progress=True, warn=log, resume_from=None):
        self.config, self.context, self.progress, self.warn = config, context, progress, warn
        self.out = Path(config.out)
        quiet_unless_main = warn if context.is_main else print_nothing
        samples = scan_samples(config, quiet_unless_main)
        self.ignored_files, self.holdout, self.init_report = samples.ignored, samples.holdout_record, None
        self.data_identity = samples.identity
        self.splits = samples.splits
        if self.holdout is None and resume_from is None:
            quiet_unless_main("notice: no --holdout, so the per-epoch scores, best.pth and the plateau check use the "
                              "test split (val/); pass --holdout 0.1 to choose on held-out training images")
        seed_everything(config.seed)  # same initial weights on every rank
        self.model = factory.create(config.model, config.model_args, len(samples.classes), config.img_size,
                                    config.drop_path)
        self.bad_files = BadFileLog(config.strict, warn)
        overrides = dict(config.model_args)
        self.normalisation = set_normalisation(self.model, *normalisation(self.model), "model default")
        if config.init:  # before the data: the weights decide the normalisation its transforms use
            overrides.update(self.start_from(config.init, samples.classes, quiet_unless_main))
        self.data = train_data(config, samples, self.model, context, self.bad_files)
        forward_macs = any_model_macs(self.model, config.img_size)
        self.model.to(context.device, memory_format=memory_format(self.model, context.device))
        self.build = {
            "model": config.model,
            "overrides": overrides,
            "img_size": config.img_size,
            "num_classes": len(samples.classes),
            "classes": samples.classes,
            "normalisation": self.normalisation,  # input mean/std, and where they came from
            "eval_transform": {"interpolation": config.interpolation,  # memory mode evaluates whole images
                               "crop_pct": 1.0 if self.data.mode == "memory" else config.crop_pct},
        }
        global_batch = config.batch_size * context.world_size
        if resume_from is not None and "plan" in resume_from:
            self.plan = Plan(**{k: v for k, v in resume_from["plan"].items() if k in Plan.__dataclass_fields__})
        else:
            step_time = self.seconds_per_update() if config.budget_minutes is not None else None
            self.plan = plan_run(config, self.data.steps_per_epoch, global_batch, forward_macs, step_time,
                                 quiet_unless_main)
        self.opt = Optimisation(config, self.model, context, self.plan, len(samples.classes), quiet_unless_main)
        self.epoch, self.history, self.best, self.final_eval, self.tb = 0, [], None, None, None
        self.partial = None  # the epoch in progress at a mid-epoch checkpoint: where it was, its totals and RNGs
        self.test_predictions = None  # per test image: its label and the classes the final and best weights chose
        self.preemption, self.last_save = Preemption(), time.monotonic()

    def start_from(self, path, classes, warn):
        """Load the weights of `path` to fine-tune them, with the normalisation they need (`init_normalisation`);
        returns the model overrides evaluation needs. A head trained on other classes (a vitbench run's record says
        which) starts fresh, even at the same count."""
        checkpoint = open_checkpoint(path)  # the one read of the file
        report = checkpoint.load_into(self.model)
        self.normalisation = init_normalisation(self.model, checkpoint, self.config.init_cfg, warn,
                                                report.pop("normalisation", None))
        if report["trained_on"] is not None and report["trained_on"] != list(classes):
            self.model.reset_classifier(len(classes))
            report["new_head"] = True
        self.init_report = {"checkpoint": str(path), **report}
        # the reference release was trained with the attention scale embed_dim ** -0.5; evaluation keeps it
        return {"qk_scale": self.model.embed_dim**-0.5} if report.get("layout") == "reference-t2t" else {}

    def seconds_per_update(self, steps=6):
        """Median time of a training step (data, forward, backward, AdamW) on a copy of the model, measured once
        to turn a minutes budget into updates; the run itself starts from the untouched model."""
        probe = copy.deepcopy(self.model)
        optimizer = torch.optim.AdamW(probe.parameters(), lr=1e-6)
        amp = amp_dtype(self.config, self.context.device, probe)
        times, start = [], time.perf_counter()
        for _, (images, targets, _bad) in zip(range(steps), self.data.train_loader(0, self.config.seed)):
            if images is None:
                continue
            images, targets = images.to(self.context.device), targets.to(self.context.device)
            with torch.autocast(self.context.device.type, dtype=amp, enabled=amp is not None):
                loss = torch.nn.functional.cross_entropy(probe(images), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if self.context.device.type == "cuda":
                torch.cuda.synchronize(self.context.device)
            times.append(time.perf_counter() - start)
            start = time.perf_counter()
        measured = float(np.median(times[2:] or times))  # the first steps pay for warming caches up
        return distributed.all_gather_objects(measured, self.context)[0]  # rank 0's plan for every rank

    # --- state -------------------------------------------------------------------------------
    def save(self, path, full, partial=None):
        extra = {"build": self.build, "epoch": self.epoch, "top1": self.history[-1]["top1"] if self.history else None}
        if partial is not None:
            extra["partial"] = partial
        if self.opt.ema:
            extra["state_dict_ema"] = self.opt.ema.module.state_dict()
        if full:
            extra.update(
                **self.opt.state_dict(),
                history=self.history,
                best=self.best,
                skipped_files=self.bad_files.seen,
                train_config=jsonable(dataclasses.asdict(self.config)),
                plan=self.plan.record(),
                holdout=self.holdout,
                data_identity=self.data_identity,
            )
        models.save_checkpoint(self.model, path, **extra)

    def restore(self, path, payload):
        needed = {"state_dict", "optimizer", "scaler", "num_updates", "epoch", "history", "best", "skipped_files"}
        if (
            not isinstance(payload, dict)
            or not needed <= set(payload)
            or (self.opt.ema and "state_dict_ema" not in payload)
        ):
            raise CheckpointError(
                f"{path} is not a resumable vitbench checkpoint (it lacks the optimiser state); "
                "start the run again with --overwrite"
            )
        differ = ["holdout"] if payload.get("holdout", self.holdout) != self.holdout else []
        recorded = payload.get("data_identity")
        if recorded is None:  # written before runs recorded their images: only from the folder it was trained on
            trained_on = str(payload.get("train_config", {}).get("data", ""))
            recorded = self.data_identity if os.path.realpath(trained_on) == os.path.realpath(self.config.data) else {}
        recorded = recorded if isinstance(recorded, dict) else {}
        differ += [part for part in ("classes", "train", "holdout", "test")
                   if part not in differ and recorded.get(part) != self.data_identity[part]]
        if differ:
            raise CheckpointError(
                f"{path} was trained on other images than {self.config.data} holds ({', '.join(differ)} differ); "
                "resume with --data pointing at the images it was trained on, or start the run again with --overwrite"
            )
        try:
            self.model.load_state_dict(payload["state_dict"])
            if self.opt.ema:
                self.opt.ema.module.load_state_dict(payload["state_dict_ema"])
            self.opt.load_state_dict(payload)
        except (RuntimeError, ValueError, KeyError) as error:
            raise CheckpointError(
                f"{path} does not fit this run ({str(error).splitlines()[0]}); start the run again with --overwrite"
            ) from None
        self.epoch, self.history, self.best = payload["epoch"], payload["history"], payload["best"]
        self.partial = payload.get("partial")
        self.bad_files.seen.update(payload["skipped_files"])

    # --- one epoch -----------------------------------------------------------------------------
    def train_one_epoch(self):
        """One pass over the data, or what is left of the plan's updates in the last (partial) pass."""
        config, context, device = self.config, self.context, self.context.device
        epoch_seed = derive_seed(config.seed, context.rank, self.epoch)
        seed_everything(epoch_seed)
        loader = self.data.train_loader(self.epoch, epoch_seed)
        resumed = self.partial["ranks"][context.rank] if self.partial else None
        done = self.partial["batches"] if self.partial else 0  # batches this epoch took before its checkpoint
        self.partial = None
        batches = iter(loader)
        for _ in range(done):  # replayed, not trained on: the workers' augmentation draws stay in step
            next(batches)
        if resumed:
            set_rng_states(resumed["rng"])
        self.opt.net.train()
        # loss sum, images, grad-norm sum
        totals = torch.tensor(resumed["totals"] if resumed else [0.0] * 3, dtype=torch.float64, device=device)
        updates, seen = (resumed["updates"], resumed["seen"]) if resumed else (0, 0)
        start = time.perf_counter() - (resumed["seconds"] if resumed else 0.0)
        steps = min(self.data.steps_per_epoch, self.plan.total_updates - self.opt.num_updates + updates)
        bar = StepProgress(steps, f"epoch {self.epoch + 1}/{self.plan.epochs}", self.step_mode(), self.warn)
        for step, (images, targets, bad) in enumerate(batches, start=done):
            if self.opt.num_updates >= self.plan.total_updates:
                break
            self.bad_files.record(bad)
            if images is None:
                continue
            if self.opt.mixup and len(images) % 2:  # Mixup pairs images; a skipped file can leave an odd batch
                images, targets = images[:-1], targets[:-1]
                if not len(images):
                    continue
            images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
            loss, grad_norm = self.opt.update(images, targets, f"epoch {self.epoch + 1}, step {step + 1}")
            totals += torch.tensor([loss * len(images), len(images), grad_norm], dtype=torch.float64, device=device)
            updates, seen = updates + 1, seen + len(images)
            elapsed = time.perf_counter() - start
            left = self.plan.total_updates - self.opt.num_updates
            rate = seen * context.world_size / elapsed
            bar.update(updates, loss, self.opt.current_lr(), rate, elapsed / updates * left)
            self.log_scalars("train", {"loss": loss, "lr": self.opt.current_lr(), "grad_norm": grad_norm,
                                       "images_per_s": rate})
            self.checkpoint_if_due(step + 1, {"totals": totals.tolist(), "updates": updates, "seen": seen,
                                              "seconds": elapsed})
        bar.close()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
        distributed.all_reduce_sum(totals, context)
        loss_sum, images, grad_norm_sum = totals.tolist()
        train_loss = loss_sum / images if images else float("nan")
        return {
            "train_loss": train_loss,
            "train_images": int(images),
            "train_images_per_s": images / seconds,
            "train_time_s": seconds,
            "grad_norm": grad_norm_sum / max(updates * context.world_size, 1),
            "loss_vs_chance": train_loss / math.log(len(self.data.classes)),
        }

    def signalled(self, timed=False):
        """(SIGUSR1 arrived, `timed`) on any rank: every rank saves and stops at the same update."""
        flags = [self.preemption.requested, timed]
        if self.context.distributed:
            summed = distributed.all_reduce_sum(torch.tensor(flags, dtype=torch.float32, device=self.context.device),
                                                self.context)
            flags = (summed > 0).tolist()
        return flags

    def checkpoint_if_due(self, batches, state):
        """Save a mid-epoch last.pth every `checkpoint_every` updates or `checkpoint_minutes`, or on SIGUSR1 (then
        stop); `batches` the loader has given this epoch, `state` this rank's running totals."""
        every, minutes = self.config.checkpoint_every, self.config.checkpoint_minutes
        preempted, timed = self.signalled(minutes is not None and time.monotonic() - self.last_save >= minutes * 60)
        if not (preempted or timed or (every and self.opt.num_updates % every == 0)):
            return
        ranks = distributed.all_gather_objects({**state, "rng": rng_states()}, self.context)
        if self.context.is_main:
            self.save(self.out / LAST, full=True, partial={"batches": batches, "lr": self.epoch_lr, "ranks": ranks})
        self.last_save = time.monotonic()
        if preempted:
            self.preemption.stop(self.context, f"update {self.opt.num_updates} (epoch {self.epoch + 1})")

    def open_log(self):
        """The TensorBoard writer of `--log tensorboard`, or the W&B run of `--log wandb` (rank 0); a resumed run drops
        what followed its checkpoint."""
        if self.config.log is None or not self.context.is_main:
            return None
        if self.config.log == WANDB:
            return WandbLog(self.out, jsonable(dataclasses.asdict(self.config)))
        from torch.utils.tensorboard import SummaryWriter  # only runs that log need tensorboard imported

        # points are logged at the update count they follow, and the checkpoint's own (its last update, its epoch)
        # are already written: only what came after the checkpoint is dropped
        return SummaryWriter(self.out / TENSORBOARD, purge_step=self.opt.num_updates + 1 if self.opt.num_updates
                             else None)

    def log_scalars(self, group, values):
        if self.tb is not None:
            for name, value in values.items():
                if isinstance(value, (int, float)) and math.isfinite(value):
                    self.tb.add_scalar(f"{group}/{name}", value, self.opt.num_updates)

    def validates(self, epoch):
        """Is epoch `epoch` (1-based) validated? Every one, or with --validations N every ceil(epochs / N)-th and
        always the last (short epochs of a small fraction would otherwise spend most of the run validating)."""
        if self.config.validations is None or epoch == self.plan.epochs:
            return True
        return epoch % math.ceil(self.plan.epochs / self.config.validations) == 0

    def step_mode(self):
        """What each step shows: a bar or plain lines ("auto"), nothing ("epochs": epoch lines only), or None."""
        if not (self.progress and self.context.is_main):
            return None
        return "epochs" if self.progress == "epochs" else "auto"

    def eta_s(self):
        """Seconds left in the run, at the rate of the epochs so far (training and validation)."""
        spent = sum(row["epoch_time_s"] for row in self.history)
        return spent / max(self.opt.num_updates, 1) * (self.plan.total_updates - self.opt.num_updates)

    def evaluate(self, model, loader):
        return evaluate(model, loader, len(self.data.classes), self.context, self.bad_files, self.opt.amp_dtype)

    # --- the run -------------------------------------------------------------------------------
    def fit(self):
        self.tb = self.open_log()
        with self.preemption:
            self.fit_epochs()
        summary = self.finish()
        self.record(summary)
        return summary

    def fit_epochs(self):
        context = self.context
        while self.epoch < self.plan.epochs:
            start = time.perf_counter()
            if context.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(context.device)
            self.epoch_lr = self.partial["lr"] if self.partial else self.opt.current_lr()  # the epoch's first lr
            row = {"epoch": self.epoch + 1, "lr": self.epoch_lr, **self.train_one_epoch()}
            self.data.check_readable()  # a class whose every training image was unreadable: an error, not a class
            validated = self.validates(self.epoch + 1)
            if validated:  # not through DDP: ranks may run different batch counts
                result = self.evaluate(self.opt.eval_net, self.data.val_loader())
                row.update(val_loss=result["loss"], top1=result["top1"], top5=result["top5"],
                           val_images=result["images"])
                if self.opt.ema:
                    ema_result = self.evaluate(self.opt.ema.module, self.data.val_loader())
                    row.update(ema_top1=ema_result["top1"], ema_top5=ema_result["top5"])
            else:  # a short epoch between two validations (--validations)
                row.update(val_loss=math.nan, top1=math.nan, top5=math.nan, val_images=0)
            seen = sum(r["train_images"] for r in self.history) + row["train_images"]
            row.update(
                epoch_time_s=time.perf_counter() - start,
                elapsed_s=sum(r["epoch_time_s"] for r in self.history) + time.perf_counter() - start,
                updates=self.opt.num_updates,
                images_seen=seen,
                train_pflop=train_pflop(seen, self.plan.forward_macs),
                peak_mem_mb=peak_memory_mb(context.device),
                skipped_files=len(self.bad_files),
                planned_epochs=self.plan.epochs,
            )
            self.epoch += 1
            self.history.append(row)
            self.log_scalars("epoch", row)
            improved = validated and (self.best is None or row["top1"] > self.best["top1"])
            if improved:
                self.best = {"epoch": row["epoch"], "top1": row["top1"], "top5": row["top5"]}
            if validated:
                self.final_eval = result
            if context.is_main:
                self.save(self.out / LAST, full=True)
                if improved:
                    self.save(self.out / BEST, full=False)
                self.write_metrics()
            if context.is_main and self.progress:
                split = "holdout" if self.holdout else "test"
                scores = (f"{split} loss {row['val_loss']:.4f}, {split} top-1 {row['top1']:.2f}%, top-5 "
                          f"{row['top5']:.2f}%, " if validated else "")
                self.warn(
                    f"epoch {row['epoch']}/{self.plan.epochs}: train loss {row['train_loss']:.4f}, {scores}lr "
                    f"{self.opt.current_lr():.2e}, {row['train_images_per_s']:.0f} img/s, {row['epoch_time_s']:.1f} s, "
                    f"ETA {duration(self.eta_s())}"
                )
            if self.signalled()[0] and self.epoch < self.plan.epochs:  # SIGUSR1 during validation: last.pth is saved
                self.last_save = time.monotonic()
                self.preemption.stop(context, f"the end of epoch {self.epoch}")

    def write_metrics(self):
        # JSON has no NaN: an epoch without a score (between two validations) holds null there, as in the CSV's blank
        atomic_write_text(self.out / METRICS_JSONL, "".join(json.dumps(json_row(row), allow_nan=False) + "\n"
                                                            for row in self.history))
        atomic_write_text(self.out / METRICS_CSV, pd.DataFrame(self.history).to_csv(index=False))

    def health(self):
        """Did the run leave the initial plateau? The final loss relative to chance, and likely causes if not."""
        last = self.history[-1]
        chance = 100 / len(self.data.classes)
        ratio = last.get("loss_vs_chance", last["train_loss"] / math.log(len(self.data.classes)))
        plateau = ratio >= PLATEAU_LOSS and last["top1"] < 1.5 * chance
        return {
            "plateau": bool(plateau),
            "final_loss_vs_chance": ratio,
            "chance_top1": chance,
            "likely_causes": plateau_causes(self.config, self.opt.lr, self.plan) if plateau else [],
        }

    def final_weights(self):
        """("ema" or "raw", model): the EMA weights when they scored higher on the last validation, else the raw."""
        last = self.history[-1]
        if self.opt.ema and last.get("ema_top1", -1) > last["top1"]:
            return "ema", self.opt.ema.module
        return "raw", self.opt.eval_net

    def score_test(self):
        """The test split, read once: the final weights and best.pth's, which the holdout chose."""
        chosen, final = self.final_weights()
        distributed.barrier(self.context)  # rank 0 has written best.pth
        best = copy.deepcopy(self.model)
        best.load_state_dict(read_checkpoint(self.out / BEST)["state_dict"])
        scores = evaluate_together({"final": final, "best": best}, self.data.test_loader(), len(self.data.classes),
                                   self.context, self.bad_files, self.opt.amp_dtype, per_image=True)
        if "predictions" in scores["final"]:
            self.test_predictions = dict(targets=scores["final"]["targets"], final=scores["final"]["predictions"],
                                         best=scores["best"]["predictions"])
        if self.config.test_subset:
            self.subset_scores = self.score_test_subset({"final": final, "best": best})
        return chosen, scores["final"], scores["best"]

    def score_test_subset(self, named_models):
        """{name: metrics} on the test images `test_subset` names (e.g. the ones a pretrained model never saw)."""
        return evaluate_together(named_models, self.data.test_subset_loader(self.config.test_subset),
                                 len(self.data.classes), self.context, self.bad_files, self.opt.amp_dtype)

    def subset_record(self):
        """The test subset's scores for summary.json (final weights; best.pth's beside them)."""
        final, best = self.subset_scores["final"], self.subset_scores.get("best")
        return {"pattern": self.config.test_subset, "images": final["images"], "top1": final["top1"],
                "top5": final["top5"], "loss": final["loss"], "best_top1": best and best["top1"]}

    def finish(self):
        """The run's summary: scores the test split (with a holdout) and checks the ranks agree; writes nothing."""
        if self.final_eval is None:  # resumed a run whose last epoch was already done
            self.final_eval = self.evaluate(self.opt.eval_net, self.data.val_loader())
        if not self.config.test:  # a recipe sweep: chosen on the holdout, the test split never read
            chosen, test, test_best = self.final_weights()[0], UNSCORED, UNSCORED
        elif self.holdout:
            chosen, test, test_best = self.score_test()
        else:  # the per-epoch evaluation was the test split; best.pth was chosen on it
            chosen, test, test_best = "raw", self.final_eval, self.best
            if self.config.test_subset:
                self.subset_scores = self.score_test_subset({"final": self.opt.eval_net})
        checksums = distributed.all_gather_objects(
            sum(p.double().sum().item() for p in self.model.parameters()), self.context
        )
        skipped = {}
        for seen in distributed.all_gather_objects(self.bad_files.seen, self.context):
            skipped.update(seen)
        last = self.history[-1]
        images_seen = sum(r["train_images"] for r in self.history)
        train_time_s = float(sum(r["train_time_s"] for r in self.history))
        # measured on rank 0 alone: ranks calibrating a shared CPU at once would each see a fraction of it
        used = utilisation(train_pflop(images_seen, self.plan.forward_macs) * PFLOP, train_time_s,
                           self.opt.amp_dtype or torch.float32, self.context.device,
                           self.context.world_size) if self.context.is_main else None
        summary = {
            "model": self.config.model,
            "model_args": self.config.model_args,
            "data": portable_path(self.config.data, self.out),  # relative to the run folder, as config.json
            "classes": len(self.data.classes),
            "data_mode": self.data.mode,
            "train_images": self.data.train_images,
            "selection": "holdout" if self.holdout else "test",  # the split best.pth and the per-epoch scores use
            "holdout": self.holdout,
            "layout": {name: split.layout for name, split in self.splits.items()},  # how labels were read
            # the checkpoint fine-tuned from (relative to the run folder), how it was loaded; None: from scratch
            "init": self.init_report and {**self.init_report,
                                          "checkpoint": portable_path(self.init_report["checkpoint"], self.out)},
            "val_images": self.data.val_images,
            "params": count_params(self.model),
            "params_trainable": count_params(self.model, trainable_only=True),
            "forward_macs": self.plan.forward_macs,
            "plan": self.plan.record(),
            "epochs": self.epoch,
            "epochs_trained": images_seen / self.data.train_images,
            "updates": self.opt.num_updates,
            "images_seen": images_seen,
            "train_pflop": train_pflop(images_seen, self.plan.forward_macs),
            "top1": last["top1"],
            "top5": last["top5"],
            "val_loss": last["val_loss"],
            "best": self.best,
            "final_weights": chosen,
            "test_top1": test["top1"],
            "test_top5": test["top5"],
            "test_loss": test["loss"],
            "test_images": test["images"],
            "test_best": {"epoch": self.best["epoch"], "top1": test_best["top1"], "top5": test_best["top5"],
                          "chosen_on": "holdout" if self.holdout else "test"},
            "test_subset": self.subset_record() if self.config.test_subset else None,
            "test_subset_top1": self.subset_scores["final"]["top1"] if self.config.test_subset else None,
            "test_subset_images": self.subset_scores["final"]["images"] if self.config.test_subset else None,
            "normalisation": self.normalisation,
            "train_images_per_s": float(np.mean([r["train_images_per_s"] for r in self.history])),
            "train_time_s": train_time_s,
            "mfu": used and used["mfu"],  # training FLOP/s over the device's peak for the run's dtype
            "utilisation": used,
            "peak_mem_mb": max(r["peak_mem_mb"] for r in self.history),
            "memory_measure": "cuda max allocated" if self.context.device.type == "cuda" else "cpu peak rss",
            "lr": self.opt.lr,
            "global_batch": self.config.batch_size * self.context.world_size,
            "world_size": self.context.world_size,
            "device": str(self.context.device),
            "amp": str(self.opt.amp_dtype).removeprefix("torch.") if self.opt.amp_dtype else "off",
            "precision": self.opt.precision.record(),  # --amp's choice and why
            "memory_format": str(memory_format(self.model, self.context.device)).removeprefix("torch."),
            "ranks_in_sync": max(checksums) == min(checksums),
            "health": self.health(),
            "per_class_top1": dict(zip(self.data.classes, test["per_class_top1"])),  # test, final weights; None: n/a
            "classes_without_test_images": unmeasured_classes(self.data.classes, test) if self.config.test else None,
            "confusion": test["confusion"],
            "skipped_files": skipped,
            "ignored_non_image_files": len(self.ignored_files),
        }
        return summary

    def record(self, summary):
        """Write what `finish` found: the test scalars to the log, and on rank 0 the test predictions, metrics and
        summary.json; warn about unmeasured classes and a run that stayed on its plateau."""
        if self.context.is_main and summary["classes_without_test_images"]:
            warn_unmeasured(self.data.classes, summary["classes_without_test_images"], "the test split", self.warn)
        if self.tb is not None:
            if self.config.test:
                self.log_scalars("test", {"top1": summary["test_top1"], "top5": summary["test_top5"]})
            self.tb.close()
        if self.context.is_main:
            if self.test_predictions is not None:
                write_predictions(self.out / TEST_PREDICTIONS, **self.test_predictions)
            self.write_metrics()  # again, so a resumed finished run repairs a damaged metrics file
            atomic_write_text(self.out / SUMMARY, json.dumps(summary, indent=1) + "\n")
            if summary["health"]["plateau"]:
                self.warn(
                    f"warning: {self.out} stayed on the initial plateau (train loss "
                    f"{summary['health']['final_loss_vs_chance']:.2f}"
                    f" x chance); likely: {'; '.join(summary['health']['likely_causes'])}"
                )


def start(config: TrainConfig, overwrite: bool = False, progress: bool | str = True, warn=log) -> dict:
    """Train `config` from scratch (or from config.init) into config.out; returns the summary dict.

    `progress`: True (per step: a bar on a terminal, plain lines elsewhere; and a line per epoch), "epochs"
    (the epoch lines only) or False.

    A start that fails before its first epoch is saved removes the folder it made, so a retry is not blocked.
    """
    context = distributed.setup(config.device)
    out = Path(config.out)
    RUN_FOLDER.prepare(out, overwrite=overwrite, reads=reads_of(dataclasses.asdict(config)))  # on every rank
    with folder_lock(out, "run", take=context.is_main):  # rank 0 writes
        distributed.barrier(context)
        if context.is_main:
            RUN_FOLDER.start(out, overwrite=overwrite, reads=reads_of(dataclasses.asdict(config)))
            write_config(out, config)
        distributed.barrier(context)
        try:
            with cpu_threads(config.threads):
                return Trainer(config, context, progress, warn).fit()
        except BaseException:
            if context.is_main and not (out / LAST).is_file():
                RUN_FOLDER.discard(out)
            raise


def resume(out: str | Path, given: dict | None = None, progress: bool | str = True, warn=log) -> dict:
    """Continue the run in `out` from its last checkpoint, on the plan saved there; it ends as an uninterrupted
    run would."""
    config = resume_config(out, given or {})
    moved = os.path.realpath(config.data) != os.path.realpath(read_config(out).data)
    context = distributed.setup(config.device)
    last = Path(out) / LAST
    with folder_lock(out, "run", take=context.is_main), cpu_threads(config.threads):
        payload = read_checkpoint(last)
        trainer = Trainer(config, context, progress, warn, resume_from=payload if isinstance(payload, dict) else None)
        trainer.restore(last, payload)
        if context.is_main and moved:  # its images, checked by restore: now recorded where they lie
            repoint(out, "data", config.data)
        if context.is_main:
            warn(f"resuming {out} after epoch {trainer.epoch} of {trainer.plan.epochs}")
        return trainer.fit()


def config_fields():
    return set(TrainConfig.field_names())
