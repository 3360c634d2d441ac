"""The data piece of a training run: which samples it trains and validates on, and their loaders.

`scan_samples` checks the folder and applies the run's train cut (fraction or K per class). Two
sources give the same loaders, one per epoch, seeded from (seed, rank, epoch) so that a resumed
run sees exactly the batches an uninterrupted one would:

- `FolderData` (data_mode "files"): decoded per image by loader workers with timm's transforms;
- `MemoryData` (data_mode "memory", chosen by "auto" for small images that fit): the split decoded
  once into a cached uint8 tensor (`bench.accuracy.decoded_cache`) and augmented as tensors on the
  training device (`tensor_loaders`, `tensor_augment`): random crop with padding, flip, RandAugment or
  AutoAugment, random erasing; eval on the whole image. Mixup/CutMix and label smoothing are the loop's in both.
"""
import hashlib
import os
import re
from dataclasses import dataclass, replace

from bench.accuracy import distributed
from bench.accuracy.data import (
    ImageFolderDataset,
    build_loader,
    carve_holdout,
    eval_transform,
    keep_classes,
    labels_file,
    model_data_config,
    named_subset,
    relabel,
    scan_dataset,
    select_per_class,
    train_transform,
)
from bench.accuracy.data_mode import choose_data_mode
from bench.accuracy.decoded_cache import decoded_split
from bench.accuracy.tensor_augment import Augment
from bench.accuracy.tensor_loaders import TensorEvalLoader, TensorLoader
from bench.errors import DatasetError
from models.errors import ConfigError


@dataclass
class Samples:
    classes: list
    train: list  # [(path, class index)] after the run's cut
    val: list  # the data folder's val/: the test split, scored once at the end when there is a holdout
    holdout: list  # validation images carved out of train/ (empty without --holdout)
    holdout_record: dict  # images, per class, seed, sha256 of its file list; None without a holdout
    ignored: list  # files without an image extension: reported, never loaded
    splits: dict  # the scanned splits, {"train": Split, "val": Split}
    identity: dict  # which images these are, wherever the folder lies (`data_identity`)


def file_list_digest(samples, root):
    """sha256 of the sorted (path relative to `root`, class index) pairs: the same images under the same labels give
    the same digest in any folder."""
    pairs = sorted(f"{os.path.relpath(path, root)}\t{target}" for path, target in samples)
    return hashlib.sha256("\n".join(pairs).encode()).hexdigest()


def data_identity(classes, train, val, holdout, root):
    """The images a run trains, chooses and is scored on, by name and label rather than by the folder they lie in:
    a resumed run may read its data from another place (`--data`), never other data."""
    return {"classes": list(classes), "train": file_list_digest(train, root),
            "holdout": file_list_digest(holdout, root), "test": file_list_digest(val, root)}


def scan_samples(config, warn):
    """The run's classes and samples, checked for layout problems; non-image files are fatal with `strict`."""
    scanned = scan_dataset(config.data)
    every_class = scanned["train"].classes
    if config.classes:  # chosen by class folder, before any label file is read
        scanned = {name: keep_classes(split, config.classes) for name, split in scanned.items()}
    if config.labels:
        chosen = scanned["train"]
        scanned["train"] = relabel(chosen, labels_file(config.data), config.labels,
                                   left_out=set(every_class) - set(chosen.classes))
        if len(scanned["train"].samples) < len(chosen.samples):
            warn(f"warning: {len(chosen.samples) - len(scanned['train'].samples)} training images of the chosen "
                 f"classes are labelled {config.labels} as a class left out, so they are left out too")
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
    samples, holdout, record = train.samples, [], None
    if config.holdout is not None:
        samples, holdout, record = carve_holdout(samples, train.classes, config.holdout, config.holdout_seed,
                                                 config.data)
    if config.train_fraction is not None or config.train_per_class is not None:
        seed = config.seed if config.subset_seed is None else config.subset_seed
        samples = select_per_class(samples, train.classes, config.train_per_class, config.train_fraction, seed)
    identity = data_identity(train.classes, samples, val.samples, holdout, config.data)
    return Samples(train.classes, samples, val.samples, holdout, record, ignored, scanned, identity)


def refuse_unreadable_classes(train, classes, unreadable):
    """A class none of whose training images could be read would train on nothing and still be scored on test: one
    line naming it. `train`: [(path, class index)]; `unreadable`: the paths found undecodable so far."""
    if not unreadable:
        return
    readable = {target for path, target in train if path not in unreadable}
    empty = [name for index, name in enumerate(classes) if index not in readable]
    if empty:
        raise DatasetError(f"every training image of class {empty[0]!r} is unreadable"
                           f"{f' (and of {len(empty) - 1} more classes)' if len(empty) > 1 else ''}; fix or replace "
                           "those files, or leave the class out with classes=[...]")


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
    mode = choose_data_mode(config.data_mode, samples.train + samples.val, config.img_size)
    source = MemoryData if mode == "memory" else FolderData
    return source(config, samples, model, context, bad_files)


class FolderData:
    """Training, validation and test datasets decoded per image with the model's timm transforms."""

    mode = "files"

    def __init__(self, config, samples, model, context, bad_files):
        self.config, self.context, self.classes = config, context, samples.classes
        self.samples, self.bad_files = samples, bad_files
        self.train = ImageFolderDataset(samples.train, samples.classes, train_transform(model, config.img_size, config))
        transform = eval_transform(model, config.img_size, config.interpolation, config.crop_pct)
        self.test = ImageFolderDataset(samples.val, samples.classes, transform)  # files are read only when loaded
        self.val = ImageFolderDataset(samples.holdout, samples.classes, transform) if samples.holdout else self.test
        self.train_images, self.val_images, self.test_images = len(self.train), len(self.val), len(self.test)
        self.steps_per_epoch = steps_per_epoch(self.train_images, config, context)

    def check_readable(self):
        """After an epoch: no class lost every training image to unreadable files (files are decoded as loaded)."""
        refuse_unreadable_classes(self.samples.train, self.classes, self.bad_files.seen)

    def train_loader(self, epoch, epoch_seed):
        """This rank's shuffled shard for `epoch`; workers' augmentation seeded from `epoch_seed`."""
        sampler = distributed.train_sampler(self.train, self.context, self.config.seed)
        sampler.set_epoch(epoch)
        return build_loader(
            self.train, self.config.batch_size, sampler, self.config.workers, drop_last=True, seed=epoch_seed
        )

    def eval_loader(self, dataset):
        sampler = distributed.ShardSampler(len(dataset), self.context)
        return build_loader(dataset, self.config.batch_size, sampler, self.config.workers)

    def val_loader(self):
        """The split scored after every epoch: the holdout, or test without one."""
        return self.eval_loader(self.val)

    def test_loader(self):
        return self.eval_loader(self.test)

    def test_subset_loader(self, pattern):
        """The test images whose file name matches `pattern` (`named_subset`)."""
        return self.eval_loader(ImageFolderDataset(named_subset(self.test.samples, pattern), self.classes,
                                                   self.test.transform))


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
    """The splits decoded once into cached uint8 tensors on the training device, batches augmented as tensors.

    With a holdout, the test split (val/) is decoded only when `test_loader` is first asked for.
    """

    mode = "memory"

    def __init__(self, config, samples, model, context, bad_files):
        self.config, self.context, self.classes = config, context, samples.classes
        self.samples, self.bad_files, self.test = samples, bad_files, None
        self.augment = tensor_augment(config)
        data_config = model_data_config(model)
        self.mean, self.std = data_config["mean"], data_config["std"]
        self.train = self.decode("train")
        self.check_readable()  # decoded up front: known before the first step
        self.train_indices = self.train.indices(samples.train)
        if samples.holdout:
            held = self.train.indices(samples.holdout)
            self.val = replace(self.train, images=self.train.images[held], targets=self.train.targets[held])
        else:
            self.val = self.decode("val")
        self.train_images, self.val_images = len(self.train_indices), len(self.val.images)
        self.test_images = len(samples.val)  # files; decodable ones are counted when the test split is scored
        self.steps_per_epoch = steps_per_epoch(self.train_images, config, context)

    def decode(self, split):
        """One split from the decoded cache, on the training device: each node's local rank 0 decodes it into that
        node's cache first, then the node's other ranks read it."""
        first_on_node = self.context.local_rank == 0
        if not first_on_node:
            distributed.barrier(self.context)
        decoded = decoded_split(self.samples.splits[split], self.config.img_size, strict=self.config.strict)
        if first_on_node:
            distributed.barrier(self.context)
        self.bad_files.record(decoded.bad)
        return decoded.to(self.context.device)

    def check_readable(self):
        refuse_unreadable_classes(self.samples.train, self.classes, self.bad_files.seen)

    def train_loader(self, epoch, epoch_seed):
        return TensorLoader(self.train.images, self.train.targets, self.config.batch_size, self.train_indices,
                            seed=self.config.seed, epoch=epoch, rank=self.context.rank,
                            world_size=self.context.world_size, augment=self.augment, mean=self.mean, std=self.std)

    def eval_loader(self, split):
        return TensorEvalLoader(split.images, split.targets, self.config.batch_size, self.context.rank,
                                self.context.world_size, mean=self.mean, std=self.std)

    def val_loader(self):
        """The split scored after every epoch: the holdout, or test without one."""
        return self.eval_loader(self.val)

    def test_split(self):
        """The decoded test split (val/), decoded on first use only."""
        if not self.samples.holdout:
            return self.val
        if self.test is None:
            self.test = self.decode("val")
        return self.test

    def test_loader(self):
        return self.eval_loader(self.test_split())

    def test_subset_loader(self, pattern):
        """The test images whose file name matches `pattern` (`named_subset`)."""
        test = self.test_split()
        keep = test.indices(named_subset(self.samples.val, pattern))
        return self.eval_loader(replace(test, images=test.images[keep], targets=test.targets[keep]))
