"""ImageNet-style dataset folders: scanning, robust decoding, timm transforms and data loaders.

A dataset is `ROOT/train/<class>/<image>` and `ROOT/val/<class>/<image>`. Scanning checks the
layout up front (missing, empty or class-less folders, classes that differ between splits) and
raises `DatasetError` with one line that names the fix. Decoding converts grayscale, CMYK and
palette images to RGB; a file that cannot be decoded becomes a `BadImage` record that the loop
reports by path and either skips (counted in the run summary) or turns into an error (strict).
"""
import fnmatch
import hashlib
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset, default_collate

from bench.errors import DatasetError
from models.errors import short_list

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp")
SPLITS = ("train", "val")


@dataclass
class Split:
    """One scanned split: class names (sorted) and (path, class index) samples."""

    root: Path
    classes: list
    samples: list  # [(path str, class index)]
    ignored: list  # files without an image extension, reported and never loaded
    layout: str = "class folders"  # how the labels were read: class folders, or an annotation file

    def counts(self):
        counts = np.bincount([target for _, target in self.samples], minlength=len(self.classes))
        return dict(zip(self.classes, counts.tolist()))


@dataclass(frozen=True)
class BadImage:
    """A file that could not be decoded, with the reason; the loader's consumer decides what to do."""

    path: str
    reason: str


def is_image_file(name):
    return name.lower().endswith(IMAGE_EXTENSIONS)


def visible(name):
    return not name.startswith(".")


def real_class_dirs(split_dir, classes):
    """{real path of each class folder: class name}; two classes that are one folder (a symlink) raise."""
    found = {}
    for name in classes:
        real = os.path.realpath(split_dir / name)
        if real in found:
            raise DatasetError(f"{split_dir / found[real]} and {split_dir / name} are the same folder (a symlink); "
                               "remove one of them")
        found[real] = name
    return found


def owner(real, class_dirs):
    """The class whose real folder holds the real path `real`, or None when it lies outside every class."""
    folder = os.path.dirname(real)
    while folder not in class_dirs:
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent
    return class_dirs[folder]


def class_files(folder, class_dirs):
    """(path, real path or None) of every visible file under `folder`, following symlinks, in os.walk's order
    (a folder's files, then its subfolders, sorted). The real path is given only for files reached through a
    link (None: the file lies where it is found). A link back to one of its own folders raises."""
    real_folder = os.path.realpath(folder)

    def visit(path, real, linked, ancestors):
        entries = sorted((e for e in os.scandir(path) if visible(e.name)), key=lambda e: e.name)
        subdirs = [e for e in entries if e.is_dir()]
        for entry in (e for e in entries if not e.is_dir()):
            yield entry.path, os.path.realpath(entry.path) if linked or entry.is_symlink() else None
        for entry in subdirs:
            is_link = entry.is_symlink()
            child = os.path.realpath(entry.path) if is_link else os.path.join(real, entry.name)
            if child in ancestors:
                raise DatasetError(f"symlink loop: {entry.path} points back to {child}; remove or replace that link")
            if is_link and owner(os.path.join(child, "."), class_dirs) is not None:
                continue  # a link into a class folder: its files are counted there
            yield from visit(entry.path, child, linked or is_link, ancestors | {child})

    yield from visit(os.fspath(folder), real_folder, False, {real_folder})


def scan_split(root, split):
    """Scan `root/split/<class>/**` (or Tiny-ImageNet's annotated val/) into a `Split`; layout problems raise
    `DatasetError`."""
    split_dir = Path(root) / split
    if not split_dir.is_dir():
        raise DatasetError(f"{split_dir} not found; a dataset folder needs {split}/<class>/<image> (ImageNet layout)")
    if (split_dir / TINY_IMAGENET_ANNOTATIONS).is_file():
        return scan_annotated_split(split_dir)
    entries = sorted((e for e in os.scandir(split_dir) if visible(e.name)), key=lambda e: e.name)
    classes = [e.name for e in entries if e.is_dir()]
    if not classes:
        loose = sum(1 for e in entries if e.is_file() and is_image_file(e.name))
        if loose:
            raise DatasetError(
                f"{split_dir} holds {loose} images but no class folders; sort them into {split_dir}/<class>/ "
                "(for ImageNet val, use the labels file to move each image into its synset folder)"
            )
        raise DatasetError(f"{split_dir} is empty; it needs one folder per class with that class's images")
    class_dirs = real_class_dirs(split_dir, classes)
    samples, ignored, linked_seen = [], [], set()
    for index, name in enumerate(classes):
        count = 0
        for path, real in class_files(split_dir / name, class_dirs):
            if real is not None and (owner(real, class_dirs) is not None or real in linked_seen):
                continue  # a link to a file counted where it really lies, or already counted through another link
            if real is not None:
                linked_seen.add(real)
            if is_image_file(path):
                samples.append((path, index))
                count += 1
            elif os.path.basename(path) != f"{name}_boxes.txt":  # Tiny-ImageNet's boxes: known, not stray
                ignored.append(path)
        if count == 0:
            raise DatasetError(
                f"class folder {split_dir / name} has no images ({', '.join(IMAGE_EXTENSIONS[:3])}, ...); "
                "add images or remove the folder"
            )
    return Split(split_dir, classes, samples, ignored)


TINY_IMAGENET_ANNOTATIONS = "val_annotations.txt"  # Tiny-ImageNet's val/: images/ plus "file<TAB>wnid<TAB>box"


def scan_annotated_split(split_dir):
    """Tiny-ImageNet's val/ as it unpacks: every image in images/, its class in val_annotations.txt."""
    annotations = split_dir / TINY_IMAGENET_ANNOTATIONS
    labels = {}
    for number, line in enumerate(annotations.read_text().splitlines(), 1):
        fields = line.split("\t")
        if len(fields) < 2 or not fields[0] or not fields[1]:
            raise DatasetError(f"{annotations} line {number} is not 'file<TAB>class...'; restore the file from the "
                               "dataset's archive")
        labels[fields[0]] = fields[1]
    files = sorted(e.name for e in os.scandir(split_dir / "images") if visible(e.name) and is_image_file(e.name))
    unlabelled = [name for name in files if name not in labels]
    if unlabelled or not files:
        raise DatasetError(f"{split_dir / 'images'} holds {len(unlabelled)} images without a line in {annotations} "
                           f"(e.g. {unlabelled[0] if unlabelled else 'no image at all'}); restore the dataset")
    classes = sorted(set(labels[name] for name in files))
    index = {name: i for i, name in enumerate(classes)}
    samples = [(str(split_dir / "images" / name), index[labels[name]]) for name in files]
    return Split(split_dir, classes, samples, [], layout=f"images/ + {TINY_IMAGENET_ANNOTATIONS}")


def labels_file(root):
    """The one labels CSV in a data folder (`noisy_imagenette.csv`, `noisy_imagewoof.csv`)."""
    found = sorted(Path(root).glob("noisy_*.csv"))
    if len(found) != 1:
        raise DatasetError(f"{root} holds {len(found)} labels files (noisy_*.csv); --labels needs exactly one, as "
                           "Imagenette and Imagewoof ship")
    return found[0]


def relabel(split, labels_csv, column, left_out=()):
    """`split` (a train split) with each image's class read from `column` of a labels CSV such as Imagenette's
    noisy_imagenette.csv (path relative to the data folder, one column per noise level). An image labelled with
    one of `left_out` (class folders the run leaves out) is left out too: it has no class among the run's."""
    try:
        table = pd.read_csv(labels_csv)
    except (OSError, ValueError) as error:
        raise DatasetError(f"cannot read the labels file {labels_csv} ({error}); it belongs in the data folder, "
                           "as in Imagenette's archive") from None
    if column not in table or "path" not in table:
        choices = [c for c in table.columns if c not in ("path", "is_valid")]
        raise DatasetError(f"{labels_csv} has no column {column!r}; choose one of {', '.join(choices)}")
    label_of = dict(zip(table["path"], table[column]))
    root = split.root.parent
    relabelled, missing = [], []
    for path, _ in split.samples:
        label = label_of.get(Path(os.path.relpath(path, root)).as_posix())
        if label is None:
            missing.append(path)
        elif label in left_out:
            continue
        elif label not in split.classes:
            raise DatasetError(f"{labels_csv} labels {path} as {label!r}, which is no class folder of {split.root}")
        else:
            relabelled.append((path, split.classes.index(label)))
    if missing:
        raise DatasetError(f"{len(missing)} training images have no row in {labels_csv} (e.g. {missing[0]}); use the "
                           "labels file that came with this copy of the data")
    return replace(split, samples=relabelled, layout=f"class folders, labels from {Path(labels_csv).name}:{column}")


def scan_dataset(root, splits=SPLITS):
    """Scan every split of an ImageNet-style folder; the splits must have the same classes."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(
            f"dataset folder {root} not found; pass a folder holding {' and '.join(f'{s}/' for s in splits)}"
        )
    scanned = {split: scan_split(root, split) for split in splits}
    first, *others = splits
    for split in others:
        only_first = sorted(set(scanned[first].classes) - set(scanned[split].classes))
        only_other = sorted(set(scanned[split].classes) - set(scanned[first].classes))
        if only_first or only_other:
            raise DatasetError(
                f"classes differ between {first}/ and {split}/ in {root}: only in {first}: {short_list(only_first)}; "
                f"only in {split}: {short_list(only_other)}; both splits need the same class folders"
            )
    return scanned


SIXTEEN_BIT_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")  # 16-bit grayscale (PNG, TIFF) as Pillow opens it


def load_rgb(path):
    """Decode an image file to RGB (grayscale, 16-bit grayscale, CMYK, palette and alpha images are converted)."""
    with Image.open(path) as image:
        if image.mode in SIXTEEN_BIT_MODES:  # Pillow's convert clips these to 255: nearly white
            pixels = np.asarray(image).astype(np.int64).clip(0, 65535) >> 8
            return Image.fromarray(pixels.astype(np.uint8), "L").convert("RGB")
        return image.convert("RGB")


def describe_failure(error):
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


class ImageFolderDataset(Dataset):
    """(image tensor, class index) per sample; an undecodable file yields a `BadImage` instead."""

    def __init__(self, samples, classes, transform=None):
        self.samples = samples
        self.classes = classes
        self.transform = transform

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        path, target = self.samples[index]
        try:
            image = load_rgb(path)
        except Exception as error:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError...
            return BadImage(path, describe_failure(error))
        if self.transform is not None:
            image = self.transform(image)
        return image, target


def collate_skipping_bad(batch):
    """Collate the decodable samples; returns (images or None, targets or None, [BadImage])."""
    good = [item for item in batch if not isinstance(item, BadImage)]
    bad = [item for item in batch if isinstance(item, BadImage)]
    if not good:
        return None, None, bad
    images, targets = default_collate(good)
    return images, targets, bad


def log(message):
    """A status line on stderr that does not break a tqdm progress bar."""
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)


class BadFileLog:
    """Collects undecodable files for a run: strict runs stop at the first, others skip and count."""

    def __init__(self, strict=False, warn=log):
        self.strict = strict
        self.warn = warn
        self.seen = {}  # path -> reason

    def record(self, bad_images):
        for bad in bad_images:
            if self.strict:
                raise DatasetError(
                    f"cannot decode {bad.path} ({bad.reason}); fix or delete the file, or drop --strict to skip it"
                )
            if bad.path not in self.seen:
                self.seen[bad.path] = bad.reason
                self.warn(f"warning: skipping unreadable image {bad.path} ({bad.reason})")

    def __len__(self):
        return len(self.seen)


def check_cut(per_class=None, fraction=None):
    """Validate a train cut: exactly one of K images per class (>= 1) and a fraction in (0, 1]."""
    if (per_class is None) == (fraction is None):
        raise DatasetError("choose exactly one of per_class (K images per class) and fraction")
    if fraction is not None and not 0 < fraction <= 1:
        raise DatasetError(f"fraction={fraction} is out of range; use a value in (0, 1], e.g. 0.1 for 10%")
    if per_class is not None and per_class < 1:
        raise DatasetError(f"per_class={per_class} is out of range; use K >= 1 images per class")


def select_per_class(samples, classes, per_class=None, fraction=None, seed=0):
    """A deterministic, class-balanced cut of `samples`: K per class or a fraction of each class.

    The same seed always picks the same files; the result keeps the scan order.
    """
    check_cut(per_class, fraction)
    by_class = [[] for _ in classes]
    for position, (_, target) in enumerate(samples):
        by_class[target].append(position)
    rng = np.random.default_rng(seed)
    keep = []
    for target, positions in enumerate(by_class):
        want = per_class if per_class is not None else max(1, round(fraction * len(positions)))
        if want > len(positions):
            raise DatasetError(
                f"class {classes[target]} has only {len(positions)} images, fewer than the {want} asked per class; "
                f"use K <= {min(len(p) for p in by_class)}"
            )
        keep.extend(rng.permutation(positions)[:want].tolist())
    return [samples[position] for position in sorted(keep)]


def named_subset(samples, pattern):
    """The samples whose file name matches the glob `pattern` (case-sensitive, as file names on Linux), e.g.
    Imagenette's 'ILSVRC2012_val_*': its val images from ImageNet's validation split. None matching is an error."""
    kept = [sample for sample in samples if fnmatch.fnmatchcase(os.path.basename(sample[0]), pattern)]
    if not kept:
        example = os.path.basename(samples[0][0]) if samples else "no image at all"
        raise DatasetError(f"test_subset={pattern!r} matches none of the {len(samples)} test images (e.g. {example}); "
                           "give a glob of their file names, such as 'ILSVRC2012_val_*'")
    return kept


def keep_classes(split, names):
    """`split` restricted to the class folders `names` (in sorted order, renumbered from 0); unknown names raise."""
    unknown = sorted(set(names) - set(split.classes))
    if unknown:
        raise DatasetError(f"classes {short_list(unknown)} are not in {split.root}, which has "
                           f"{short_list(split.classes)}; name class folders that exist")
    kept = sorted(set(names))
    renumber = {split.classes.index(name): index for index, name in enumerate(kept)}
    return replace(split, classes=kept, samples=[(path, renumber[t]) for path, t in split.samples if t in renumber])


def carve_holdout(samples, classes, holdout, seed, root):
    """(train samples, holdout samples, record): a class-balanced validation split carved out of the training
    images before any train cut, so every run of a study with the same seed validates on the same images.

    `holdout` is a fraction of each class in (0, 1) or a whole image count that divides evenly over the
    classes. The record names it for config and summary: images, per class, seed and the SHA-256 of its
    sorted file list (relative to `root`, so the hash does not depend on where the data lies).
    """
    if 0 < holdout < 1:
        held = select_per_class(samples, classes, fraction=holdout, seed=seed)
    elif holdout >= 1 and float(holdout).is_integer() and holdout % len(classes) == 0:
        per_class, counts = int(holdout) // len(classes), np.bincount([t for _, t in samples], minlength=len(classes))
        if per_class >= counts.min():  # one image of each class must stay to train on
            raise DatasetError(f"holdout={holdout:g} holds out {per_class} images of each class, but class "
                               f"{classes[int(counts.argmin())]} has only {counts.min()}; hold out fewer (at most "
                               f"{(counts.min() - 1) * len(classes)}) or a fraction such as 0.1")
        held = select_per_class(samples, classes, per_class=per_class, seed=seed)
    else:
        even = max(1, round(holdout / len(classes))) * len(classes)
        raise DatasetError(f"holdout={holdout:g} is neither a fraction in (0, 1) nor an image count that splits "
                           f"evenly over {len(classes)} classes; use e.g. 0.1 or {even}")
    chosen = set(held)
    rest = [sample for sample in samples if sample not in chosen]
    left = np.bincount([target for _, target in rest], minlength=len(classes))
    if left.min() < 1:
        raise DatasetError(f"holdout={holdout:g} leaves class {classes[int(left.argmin())]} no training image; "
                           "hold out fewer images")
    names = sorted(os.path.relpath(path, root) for path, _ in held)
    digest = hashlib.sha256("\n".join(names).encode()).hexdigest()
    record = {"images": len(held), "per_class": len(held) // len(classes), "seed": seed, "sha256": digest}
    return rest, held, record


def posterize_zero_bits_safe(img, bits_to_keep, **__):
    """timm's posterize op, giving Pillow < 13's result for 0 bits (every bit masked: black).

    timm (1.0.31) passes 0 bits to `ImageOps.posterize` for PosterizeIncreasing at magnitude 10, which
    `rand-m9-mstd0.5-inc1` reaches a few percent of the time (and for Posterize below magnitude 2.5). Pillow
    13.0's `ImageOps.posterize` refuses that with "ValueError: bits must be between or equal to 1 and 8" where
    Pillow 12 returned a black image, so a training run died in a loader worker. No upstream timm issue was
    found for it; drop this once timm's `auto_augment.posterize` handles 0 bits itself.
    """
    if bits_to_keep >= 8:
        return img
    if bits_to_keep <= 0:
        return Image.new(img.mode, img.size)
    return ImageOps.posterize(img, bits_to_keep)


def install_randaugment_fix():
    """Give timm's RandAugment the safe posterize. Idempotent; `train_transform` calls it before timm builds its
    ops (an op takes its function from `NAME_TO_OP` when it is made)."""
    from timm.data import auto_augment

    for name in ("Posterize", "PosterizeIncreasing", "PosterizeOriginal"):
        auto_augment.NAME_TO_OP[name] = posterize_zero_bits_safe


def model_data_config(model):
    """mean, std, interpolation and crop_pct timm resolves from the model's pretrained_cfg."""
    from timm.data import resolve_data_config

    return resolve_data_config({}, model=model)


def train_transform(model, img_size, aug):
    """timm's training transform (random resized crop, flip, RandAugment, random erasing) per `aug`."""
    from timm.data import create_transform

    install_randaugment_fix()
    config = model_data_config(model)
    return create_transform(
        (3, img_size, img_size),
        is_training=True,
        scale=tuple(aug.scale),
        ratio=tuple(aug.ratio),
        hflip=aug.hflip,
        color_jitter=aug.color_jitter,
        auto_augment=aug.auto_augment or None,
        re_prob=aug.reprob,
        interpolation=aug.interpolation or config["interpolation"],
        mean=config["mean"],
        std=config["std"],
    )


def eval_transform(model, img_size, interpolation=None, crop_pct=None):
    """timm's eval transform: resize to img_size / crop_pct, center crop img_size."""
    from timm.data import create_transform

    config = model_data_config(model)
    return create_transform(
        (3, img_size, img_size),
        is_training=False,
        interpolation=interpolation or config["interpolation"],
        crop_pct=crop_pct or config["crop_pct"],
        mean=config["mean"],
        std=config["std"],
    )


def build_loader(dataset, batch_size, sampler, workers, drop_last=False, seed=0):
    """A DataLoader whose batches are (images, targets, bad); `seed` fixes the workers' augmentation."""
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate_skipping_bad,
        pin_memory=torch.cuda.is_available(),
        drop_last=drop_last,
        generator=generator,
        persistent_workers=False,
    )
