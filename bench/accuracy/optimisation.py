"""The model/optimiser piece of a training run, and the one update it performs.

timm's recipe from timm's parts: AdamW from `create_optimizer_v2` (no weight decay on norms,
biases and `no_weight_decay()`), a cosine schedule with warm-up stepped per update, Mixup/CutMix
with soft-target or label-smoothing loss, optional gradient clipping, EMA (`ModelEmaV3`), AMP
(bf16, or fp16 with a grad scaler), `torch.compile` and DDP.
"""
import math

import torch
from timm.data import Mixup
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler
from timm.utils import ModelEmaV3

from bench.accuracy import precision
from models.errors import VitbenchError


class TrainingDivergedError(VitbenchError, FloatingPointError):
    """The loss became NaN or infinite."""


def amp_dtype(config, device, model):
    """The autocast dtype of `model` under `config.amp` on `device` (None: fp32); `precision.choose` decides."""
    return precision.choose(config.amp, device, model).dtype


def loss_functions(config, num_classes):
    """(mixup or None, training loss): soft targets with Mixup/CutMix, else label smoothing."""
    if config.mixup > 0 or config.cutmix > 0:
        mixup = Mixup(mixup_alpha=config.mixup, cutmix_alpha=config.cutmix, label_smoothing=config.smoothing,
                      num_classes=num_classes)
        return mixup, SoftTargetCrossEntropy()
    if config.smoothing > 0:
        return None, LabelSmoothingCrossEntropy(config.smoothing)
    return None, torch.nn.CrossEntropyLoss()


class Optimisation:
    """Model, optimiser, schedule, AMP, EMA and loss of one run; `update` takes one training step."""

    def __init__(self, config, model, context, plan, num_classes, warn):
        self.config, self.model = config, model
        self.lr = config.resolved_lr(context.world_size)
        min_lr, warmup_lr = config.resolved_min_lr(self.lr, warn), config.resolved_warmup_lr(self.lr)
        self.optimizer = create_optimizer_v2(
            model, opt="adamw", lr=self.lr, weight_decay=config.resolved_weight_decay()
        )
        # the cosine reaches min_lr exactly at the plan's last update, whatever its budget
        self.scheduler = CosineLRScheduler(
            self.optimizer,
            t_initial=plan.total_updates,
            lr_min=min_lr,
            warmup_t=plan.warmup_updates,
            warmup_lr_init=warmup_lr,
            t_in_epochs=False,
        )
        self.precision = precision.choose(config.amp, context.device, model)
        self.amp_dtype = self.precision.dtype
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype is torch.float16)
        self.ema = ModelEmaV3(model, decay=config.ema_decay) if config.ema_decay else None
        self.mixup, self.loss = loss_functions(config, num_classes)
        # as timm's train.py: wrap for DDP first, then compile the wrapper, so the compiler sees DDP's buckets
        self.net = model
        if context.distributed:
            device_ids = [context.device.index] if context.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
        if config.compile:
            self.net = torch.compile(self.net)
        # evaluation runs per rank on its own shard, without DDP's collectives (shards may differ by a batch)
        self.eval_net = model if context.distributed else self.net
        self.num_updates = 0

    def autocast(self, device):
        return torch.autocast(device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def update(self, images, targets, where):
        """Forward, backward, optimiser and schedule step; returns (loss, gradient norm before clipping).

        `where` names the step in the error a non-finite loss raises.
        """
        if self.mixup:
            images, targets = self.mixup(images, targets)
        with self.autocast(images.device):
            loss = self.loss(self.net(images), targets)
        value = loss.item()
        if not math.isfinite(value):
            raise TrainingDivergedError(
                f"loss became {value} at {where} (update {self.num_updates + 1}); "
                "lower --lr, set --clip-grad, or use --amp bf16 instead of fp16"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_grad or math.inf)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.num_updates += 1
        self.scheduler.step_update(self.num_updates)
        if self.ema:
            self.ema.update(self.model, step=self.num_updates)
        return value, grad_norm.item()

    def current_lr(self):
        return self.optimizer.param_groups[0]["lr"]

    def state_dict(self):
        return {
            "num_updates": self.num_updates,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
        }

    def load_state_dict(self, state):
        """Continue from `state`; the schedule is a function of the update count, set from it."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.num_updates = state["num_updates"]
        self.scheduler.step_update(self.num_updates)
