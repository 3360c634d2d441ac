"""The data piece of a training run: which samples it trains and validates on, and their loaders.

`scan_samples` checks the folder and applies the run's train cut (fraction or K per class);
`TrainData` wraps the samples in timm's transforms and gives one loader per epoch, seeded from
(seed, rank, epoch) so that a resumed run sees exactly the batches an uninterrupted one would.
"""
from dataclasses import dataclass

from bench.accuracy import distributed
from bench.accuracy.data import (
    ImageFolderDataset,
    build_loader,
    eval_transform,
    scan_dataset,
    select_per_class,
    train_transform,
)
from models.errors import DatasetError


@dataclass
class Samples:
    classes: list
    train: list  # [(path, class index)] after the run's cut
    val: list
    ignored: list  # files without an image extension: reported, never loaded


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
    return Samples(train.classes, samples, val.samples, ignored)


class TrainData:
    """Training and validation datasets with the model's transforms, and their loaders."""

    def __init__(self, config, samples, model, context):
        self.config, self.context, self.classes = config, context, samples.classes
        self.train = ImageFolderDataset(samples.train, samples.classes, train_transform(model, config.img_size, config))
        self.val = ImageFolderDataset(
            samples.val, samples.classes, eval_transform(model, config.img_size, config.interpolation, config.crop_pct)
        )
        self.steps_per_epoch = len(self.train) // context.world_size // config.batch_size
        if self.steps_per_epoch < 1:
            raise DatasetError(
                f"{len(self.train)} training images cannot fill one batch of {config.batch_size} "
                f"on each of {context.world_size} process(es); lower --batch-size"
            )

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
