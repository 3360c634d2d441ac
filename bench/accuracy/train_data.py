"""The data piece of a training run: which samples it trains and validates on, and their loaders.

`scan_samples` checks the folder and applies the run's train cut (fraction or K per class). Two
sources give the same loaders, one per epoch, seeded from (seed, rank, epoch) so that a resumed
run sees exactly the batches an uninterrupted one would:

- `FolderData` (data_mode "files"): decoded per image by loader workers with timm's transforms;
- `MemoryData` (data_mode "memory", chosen by "auto" for small images that fit): the split decoded
  once into a cached uint8 tensor and augmented as tensors on the training device
  (`bench.accuracy.tensor_data`): random crop with padding, flip, RandAugment or AutoAugment,
  random erasing; eval on the whole image. Mixup/CutMix and label smoothing are the loop's in both.
"""
import re
from dataclasses import dataclass

from bench.accuracy import distributed
from bench.accuracy.data import (
    ImageFolderDataset,
    build_loader,
    eval_transform,
    model_data_config,
    scan_dataset,
    select_per_class,
    train_transform,
)
from bench.accuracy.tensor_data import Augment, TensorEvalLoader, TensorLoader, choose_data_mode, decoded_split
from models.errors import ConfigError, DatasetError

DATA_MODES = ("auto", "memory", "files")


@dataclass
class Samples:
    classes: list
    train: list  # [(path, class index)] after the run's cut
    val: list
    ignored: list  # files without an image extension: reported, never loaded
    splits: dict  # the scanned splits, {"train": Split, "val": Split}


def scan_samples(config, warn):
    """The run's classes and samples, checked for layout problems; non-image files are fatal with `strict`."""
    scanned = scan_dataset(config.data)
    train, val = scanned["train"], scanned["val"]
    if len(train.classes) < 2:
        raise DatasetError(f"{config.data} has {len(train.classes)} class folder ({train.classes[0]}); classification "
                           "needs at least 2 classes, each a folder under train/ and val/")
    ignored = train.ignored + val.ignored
    if ignored and config.strict:
        raise DatasetError(
            f"{ignored[0]} is not an image file ({len(ignored)} such files); remove them or drop --strict"
        )
    if ignored:
        warn(f"warning: ignoring {len(ignored)} non-image files in {config.data}, e.g. {ignored[0]}")
    samples = train.samples
    if config.train_fraction is not None or config.train_per_class is not None:
        seed = config.seed if config.subset_seed is None else config.subset_seed
        samples = select_per_class(samples, train.classes, config.train_per_class, config.train_fraction, seed)
    return Samples(train.classes, samples, val.samples, ignored, scanned)


def steps_per_epoch(train_images, config, context):
    steps = train_images // context.world_size // config.batch_size
    if steps < 1:
        raise DatasetError(
            f"{train_images} training images cannot fill one batch of {config.batch_size} "
            f"on each of {context.world_size} process(es); lower --batch-size"
        )
    return steps


def train_data(config, samples, model, context, bad_files):
    """The run's data source: `MemoryData` or `FolderData`, as config.data_mode asks ("auto" decides)."""
    if config.data_mode not in DATA_MODES:
        raise ConfigError(f"data_mode={config.data_mode!r} is not one of {', '.join(DATA_MODES)}")
    mode = choose_data_mode(config.data_mode, samples.train + samples.val, config.img_size)
    source = MemoryData if mode == "memory" else FolderData
    return source(config, samples, model, context, bad_files)


class FolderData:
    """Training and validation datasets decoded per image with the model's timm transforms."""

    mode = "files"

    def __init__(self, config, samples, model, context, bad_files):
        self.config, self.context, self.classes = config, context, samples.classes
        self.train = ImageFolderDataset(samples.train, samples.classes, train_transform(model, config.img_size, config))
        self.val = ImageFolderDataset(
            samples.val, samples.classes, eval_transform(model, config.img_size, config.interpolation, config.crop_pct)
        )
        self.train_images, self.val_images = len(self.train), len(self.val)
        self.steps_per_epoch = steps_per_epoch(self.train_images, config, context)

    def train_loader(self, epoch, epoch_seed):
        """This rank's shuffled shard for `epoch`; workers' augmentation seeded from `epoch_seed`."""
        sampler = distributed.train_sampler(self.train, self.context, self.config.seed)
        sampler.set_epoch(epoch)
        return build_loader(
            self.train, self.config.batch_size, sampler, self.config.workers, drop_last=True, seed=epoch_seed
        )

    def val_loader(self):
        sampler = distributed.ShardSampler(len(self.val), self.context)
        return build_loader(self.val, self.config.batch_size, sampler, self.config.workers)


def tensor_augment(config):
    """The run's augmentation for tensors: timm's RandAugment spec `rand-mM[-nN]...` becomes torchvision's
    RandAugment with N ops (default 2) at magnitude 3M of its 31 bins (timm's M is out of 10),
    "cifar10" AutoAugment's CIFAR-10 policy, "" none; flip and erasing as configured."""
    spec = config.auto_augment or ""
    if spec.startswith("rand"):
        magnitude = re.search(r"-m(\d+)", spec)
        ops = re.search(r"-n(\d+)", spec)
        return Augment(crop_padding=config.crop_padding, hflip=config.hflip, policy="rand",
                       num_ops=int(ops[1]) if ops else 2, magnitude=min(30, 3 * int(magnitude[1])) if magnitude else 27,
                       reprob=config.reprob)
    if spec not in ("", "cifar10"):
        raise ConfigError(f"auto_augment={spec!r} has no tensor version; use rand-mM-nN, cifar10 or '' with "
                          "--data-mode memory, or --data-mode files")
    return Augment(crop_padding=config.crop_padding, hflip=config.hflip, policy=spec, reprob=config.reprob)


class MemoryData:
    """Both splits decoded once into cached uint8 tensors on the training device, batches augmented as tensors."""

    mode = "memory"

    def __init__(self, config, samples, model, context, bad_files):
        self.config, self.context, self.classes = config, context, samples.classes
        self.augment = tensor_augment(config)
        data_config = model_data_config(model)
        self.mean, self.std = data_config["mean"], data_config["std"]
        self.decoded = {}
        for split in ("train", "val"):  # rank 0 decodes first; the others then read its cache
            if not context.is_main:
                distributed.barrier(context)
            self.decoded[split] = decoded_split(samples.splits[split], config.img_size, strict=config.strict)
            if context.is_main:
                distributed.barrier(context)
            bad_files.record(self.decoded[split].bad)
            self.decoded[split] = self.decoded[split].to(context.device)
        self.train_indices = self.decoded["train"].indices(samples.train)
        self.train_images, self.val_images = len(self.train_indices), len(self.decoded["val"])
        self.steps_per_epoch = steps_per_epoch(self.train_images, config, context)

    def train_loader(self, epoch, epoch_seed):
        train = self.decoded["train"]
        return TensorLoader(train.images, train.targets, self.config.batch_size, self.train_indices,
                            seed=self.config.seed, epoch=epoch, rank=self.context.rank,
                            world_size=self.context.world_size, augment=self.augment, mean=self.mean, std=self.std)

    def val_loader(self):
        val = self.decoded["val"]
        return TensorEvalLoader(val.images, val.targets, self.config.batch_size, self.context.rank,
                                self.context.world_size, mean=self.mean, std=self.std)
