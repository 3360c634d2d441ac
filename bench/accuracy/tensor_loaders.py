"""Training and evaluation batches gathered from decoded uint8 tensors (`decoded_cache`) and augmented as
tensors (`tensor_augment`) on the training device, a drop-in for the PIL loaders of `data.build_loader`:

    split = scan_split(root, "train")
    decoded = decoded_split(split, 32)                     # decodes once, later runs load the cache
    bad_files.record(decoded.bad)                          # undecodable files, reported once
    decoded = decoded.to(device)                           # ~150 MB for CIFAR-10 train
    loader = TensorLoader(decoded.images, decoded.targets, 128, decoded.indices(samples), seed=0, epoch=0)
    for images, targets, bad in loader: ...                # bad is always [] here

Determinism: the shuffle is `DistributedSampler`'s (same order for the same (seed, epoch), padded
and sharded the same way), and every augmentation draw comes from one `torch.Generator` per epoch
seeded from (seed, rank, epoch), so a run resumed at epoch k sees exactly the batches of epoch k.
"""

import math

import numpy as np
import torch
from torch.utils.data import DistributedSampler

from bench.accuracy.distributed import cpu_threads
from bench.accuracy.tensor_augment import Augment, Eraser, GroupedPolicy, random_crop, random_flip
from bench.errors import DatasetError

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)  # CIFAR-10 train set, per channel on [0, 1]
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def epoch_generator(seed, rank, epoch):
    """CPU generator of one rank's epoch, seeded as the training loop seeds that epoch."""
    state = int(np.random.SeedSequence([int(seed), int(rank), int(epoch)]).generate_state(1)[0])
    return torch.Generator().manual_seed(state)


def normalize(images, mean, std):
    """uint8 (B, C, H, W) -> float32 (images / 255 - mean) / std."""
    mean = torch.tensor(mean, device=images.device).view(1, -1, 1, 1)
    std = torch.tensor(std, device=images.device).view(1, -1, 1, 1)
    return images.float().div_(255).sub_(mean).div_(std)


def shard_order(length, seed, epoch, rank=0, world_size=1):
    """This rank's positions in 0..length-1 for an epoch, from torch's `DistributedSampler(shuffle=True)` itself,
    so the memory path and the folder path draw the same order."""
    sampler = DistributedSampler(range(length), num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
    sampler.set_epoch(epoch)
    return torch.tensor(list(sampler), dtype=torch.long)


class TensorLoader:
    """One epoch of augmented training batches from decoded tensors, a drop-in for `build_loader`.

    Yields (images float32 (B, 3, H, W) normalised, targets int64 (B,), []) on `device` (default:
    where `images` lives; keep the cache there with `DecodedSplit.to`). `indices` selects the
    training positions (default: all); the order is DistributedSampler's for (seed, epoch) and
    this rank's shard, and the augmentation draws come from `epoch_generator(seed, rank, epoch)`.
    On the CPU a batch is augmented with `cpu_threads` intra-op threads (default 1: its small ops
    gain nothing from more and lose several-fold on a busy machine); the training step's own
    thread setting is back in place whenever a batch is handed out.
    """

    def __init__(
        self,
        images,
        targets,
        batch_size,
        indices=None,
        seed=0,
        epoch=0,
        rank=0,
        world_size=1,
        drop_last=True,
        augment=Augment(),
        mean=CIFAR10_MEAN,
        std=CIFAR10_STD,
        device=None,
        cpu_threads=1,
    ):
        self.images, self.targets = images, targets  # uint8 (N, 3, H, W), int64 (N,)
        self.indices = torch.arange(len(images)) if indices is None else torch.as_tensor(indices, dtype=torch.long)
        if not len(self.indices):
            raise DatasetError("no training images to load; check the data folder and the train cut")
        self.batch_size, self.drop_last = batch_size, drop_last
        self.seed, self.epoch, self.rank, self.world_size = seed, epoch, rank, world_size
        self.augment, self.mean, self.std = augment, mean, std
        self.device = torch.device(device) if device is not None else images.device
        self.policy = GroupedPolicy(augment) if augment.policy else None
        self.eraser = Eraser(augment.reprob, self.device) if augment.reprob > 0 else None
        self.cpu_threads = cpu_threads if self.device.type == "cpu" else None

    def set_epoch(self, epoch):
        self.epoch = epoch

    def shard_size(self):
        return math.ceil(len(self.indices) / self.world_size)

    def __len__(self):
        count = self.shard_size()
        return count // self.batch_size if self.drop_last else math.ceil(count / self.batch_size)

    def __iter__(self):
        positions = self.indices[shard_order(len(self.indices), self.seed, self.epoch, self.rank, self.world_size)]
        generator = epoch_generator(self.seed, self.rank, self.epoch)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            with cpu_threads(self.cpu_threads):  # not across the yield: the step keeps its threads
                batch = self.batch(positions[start : start + self.batch_size], generator)
            yield batch

    def batch(self, positions, generator):
        """(augmented images float32 (B, 3, H, W), targets int64 (B,), []) of cache `positions`."""
        positions = positions.to(self.images.device)
        images = self.images[positions].to(self.device, non_blocking=True)  # uint8 (B, 3, H, W)
        targets = self.targets[positions].to(self.device, non_blocking=True)  # int64 (B,)
        return self.transform(images, generator), targets, []

    def transform(self, images, generator):
        """uint8 (B, 3, H, W) -> augmented, normalised float32 (B, 3, H, W)."""
        augment = self.augment
        if augment.crop_padding:
            images = random_crop(images, augment.crop_padding, generator)
        if augment.hflip:
            images = random_flip(images, augment.hflip, generator)
        if self.policy:
            images = self.policy(images, generator)
        images = normalize(images, self.mean, self.std)
        return self.eraser(images, generator) if self.eraser else images


class TensorEvalLoader:
    """Evaluation batches in order, no augmentation, sharded like `distributed.ShardSampler`.

    Yields (images float32 (B, 3, H, W) normalised, targets int64 (B,), []); every index of the
    split is seen exactly once over all ranks (positions rank, rank + world_size, ...).
    """

    def __init__(
        self, images, targets, batch_size, rank=0, world_size=1, mean=CIFAR10_MEAN, std=CIFAR10_STD, device=None
    ):
        self.images, self.targets = images, targets  # uint8 (N, 3, H, W), int64 (N,)
        self.positions = torch.arange(rank, len(images), world_size)
        self.batch_size, self.mean, self.std = batch_size, mean, std
        self.device = torch.device(device) if device is not None else images.device

    def __len__(self):
        return math.ceil(len(self.positions) / self.batch_size)

    def __iter__(self):
        for start in range(0, len(self.positions), self.batch_size):
            batch = self.positions[start : start + self.batch_size].to(self.images.device)
            images = self.images[batch].to(self.device, non_blocking=True)
            targets = self.targets[batch].to(self.device, non_blocking=True)
            yield normalize(images, self.mean, self.std), targets, []
