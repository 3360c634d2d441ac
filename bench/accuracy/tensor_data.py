"""Small images held decoded in memory: a uint8 tensor cache and batches augmented as tensors.

For data sets like CIFAR-10 (60,000 images of 32 x 32) per-image PIL decoding and transforms in
loader workers cost more than a small model's training step. Here every image is decoded once
into `images: uint8 (N, 3, H, W)` and `targets: int64 (N,)`, cached on disk, and each batch is
gathered and augmented as a tensor on the training device:

    split = scan_split(root, "train")
    decoded = decoded_split(split, 32)                     # decodes once, later runs load the cache
    bad_files.record(decoded.bad)                          # undecodable files, reported once
    decoded = decoded.to(device)                           # ~150 MB for CIFAR-10 train
    loader = TensorLoader(decoded.images, decoded.targets, 128, decoded.indices(samples), seed=0, epoch=0)
    for images, targets, bad in loader: ...                # bad is always [] here

Cache key: SHA-256 of the sorted (relative path, size, mtime_ns) list of the split plus the image
size, class list and cache format; file contents are not hashed (stat of 60k files takes ~0.2 s,
hashing their contents would not). A rewritten or touched file, an added or removed one, or
another size gives another cache file; the older entry of the same folder and size is removed.
Under DDP, build the cache on rank 0 and barrier before the other ranks call `decoded_split`.

Determinism: the shuffle is `DistributedSampler`'s (same order for the same (seed, epoch), padded
and sharded the same way), and every augmentation draw comes from one `torch.Generator` per epoch
seeded from (seed, rank, epoch), so a run resumed at epoch k sees exactly the batches of epoch k.
"""

import math
import multiprocessing
import os
import random
from collections import defaultdict
from dataclasses import dataclass, replace
from hashlib import sha256
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DistributedSampler
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from bench.accuracy.data import BadFileLog, BadImage, describe_failure, load_rgb, log
from bench.accuracy.distributed import cpu_threads
from bench.processes import worker_pool
from models.atomic import atomic_write, remove_stale_temporaries
from models.errors import ConfigError, DatasetError

CACHE_VERSION = 1
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)  # CIFAR-10 train set, per channel on [0, 1]
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
SMALL_SIDE = 64  # "auto" holds data sets in memory only when their images are at most this wide
MEMORY_CAP = 4 * 2**30  # decoded bytes held in memory at most: min(25% of RAM, 4 GiB)
MEMORY_SHARE = 0.25
CHUNK = 1000  # images per decoding task
PROBE = 8  # files opened to learn the native size of a split
POLICIES = ("rand", "cifar10", "")  # RandAugment, AutoAugment's CIFAR-10 policy, none


# --- the decoded cache --------------------------------------------------------------------------
@dataclass
class DecodedSplit:
    """The decodable images of a scanned split, in scan order, as tensors."""

    images: torch.Tensor  # uint8 (N, 3, H, W)
    targets: torch.Tensor  # int64 (N,)
    paths: list  # [str] the file of each image, as the scan names it
    bad: list  # [BadImage] files that could not be decoded, not in `images`
    classes: list

    def __len__(self):
        return len(self.paths)

    def to(self, device):
        """The same split with its tensors on `device` (the whole cache moves once)."""
        return replace(self, images=self.images.to(device), targets=self.targets.to(device))

    def indices(self, samples):
        """Positions of `samples` [(path, class index)] in this split; undecodable files are left out.

        Use it to train on a cut made by `select_per_class` on the scanned samples.
        """
        position = {path: i for i, path in enumerate(self.paths)}
        bad = {b.path for b in self.bad}
        missing = [path for path, _ in samples if path not in position and path not in bad]
        if missing:
            raise DatasetError(
                f"{missing[0]} is not in the decoded cache of this split ({len(missing)} such files); "
                "scan the same folder the cache was built from"
            )
        return torch.tensor([position[path] for path, _ in samples if path in position], dtype=torch.long)


def default_cache_dir():
    """$VITBENCH_CACHE, else ~/.cache/vitbench/decoded."""
    return Path(os.environ.get("VITBENCH_CACHE") or Path.home() / ".cache" / "vitbench" / "decoded")


def relative_paths(paths, root):
    """`paths` relative to `root` (a prefix cut for the scan's own paths, ~10x faster than relpath)."""
    prefix = os.path.join(str(root), "")
    return [path[len(prefix) :] if path.startswith(prefix) else os.path.relpath(path, root) for path in paths]


def file_list(split):
    """[(path relative to the split root, size, mtime_ns)] of every sample, sorted."""
    paths = [path for path, _ in split.samples]
    stats = [os.stat(path) for path in paths]
    return sorted((rel, st.st_size, st.st_mtime_ns) for rel, st in zip(relative_paths(paths, split.root), stats))


def cache_key(split, size):
    """Hex digest that changes when a file, the class list, the size or the cache format changes."""
    digest = sha256(repr((CACHE_VERSION, size, list(split.classes))).encode())
    for row in file_list(split):
        digest.update(repr(row).encode())
    return digest.hexdigest()


def cache_prefix(split, size):
    """File-name prefix of one folder's split, with its classes, at one size, e.g. `cifar10-train-32px-1a2b3c4d-`.
    A run on some of the classes (--classes) has its own prefix, so its cache never replaces the whole split's."""
    root = Path(split.root).resolve()
    folder = sha256(repr((str(root), list(split.classes))).encode()).hexdigest()[:8]
    return f"{root.parent.name}-{root.name}-{size}px-{folder}-"


def decode_file(path, size):
    """uint8 (3, size, size) of one file (resized bicubic only when it is not already size x size)."""
    image = load_rgb(path)
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(image).transpose(2, 0, 1)


def decode_chunk(paths, size):
    """(uint8 (n, 3, size, size), [(index in chunk, reason)]); rows of undecodable files stay zero."""
    out = np.zeros((len(paths), 3, size, size), dtype=np.uint8)
    failures = []
    for i, path in enumerate(paths):
        try:
            out[i] = decode_file(path, size)
        except Exception as error:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError...
            failures.append((i, describe_failure(error)))
    return out, failures


def decode_images(paths, size, workers=None):
    """Decode `paths` in parallel chunks: (uint8 (N, 3, size, size), [BadImage]); bad rows stay zero."""
    images = torch.empty((len(paths), 3, size, size), dtype=torch.uint8)
    chunks = [paths[start : start + CHUNK] for start in range(0, len(paths), CHUNK)]
    workers = min(workers or len(os.sched_getaffinity(0)), len(chunks))
    if workers <= 1 or multiprocessing.current_process().daemon:  # a pool's worker (a study's run) has no children
        results = (decode_chunk(chunk, size) for chunk in chunks)
        return fill(images, chunks, results)
    with worker_pool(workers) as pool:
        return fill(images, chunks, pool.starmap(decode_chunk, [(chunk, size) for chunk in chunks]))


def fill(images, chunks, results):
    """Copy the decoded chunks into `images` in order; collect the failures as BadImage records."""
    bad, start = [], 0
    for chunk, (array, failures) in zip(chunks, results):
        images[start : start + len(chunk)] = torch.from_numpy(array)
        bad += [BadImage(chunk[i], reason) for i, reason in failures]
        start += len(chunk)
    return images, bad


def build_cache(split, size, key, workers):
    """Decode every sample of `split`; the payload saved in the cache file."""
    paths = [path for path, _ in split.samples]
    images, bad = decode_images(paths, size, workers)
    failed = {b.path for b in bad}
    good = torch.tensor([path not in failed for path in paths], dtype=torch.bool)
    targets = torch.tensor([target for _, target in split.samples], dtype=torch.long)
    relative = relative_paths(paths, split.root)
    return {
        "version": CACHE_VERSION,
        "key": key,
        "classes": list(split.classes),
        "images": images[good] if bad else images,
        "targets": targets[good],
        "paths": [rel for rel, ok in zip(relative, good.tolist()) if ok],
        "bad": [[rel, b.reason] for rel, b in zip(relative_paths([b.path for b in bad], split.root), bad)],
    }


def read_cache(path, key, size):
    """The payload of cache file `path` if it is intact and for `key`, else None (missing or corrupt)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # missing, truncated or foreign file: rebuilt by the caller
        return None
    try:
        images, n = payload["images"], len(payload["paths"])
        intact = (
            payload["version"] == CACHE_VERSION
            and payload["key"] == key
            and images.dtype == torch.uint8
            and tuple(images.shape) == (n, 3, size, size)
            and tuple(payload["targets"].shape) == (n,)
        )
    except (KeyError, TypeError, AttributeError):
        return None
    return payload if intact else None


def remove_stale(directory, prefix, keep):
    """Delete older cache files of the same folder, split and size (another key)."""
    for path in Path(directory).glob(f"{prefix}*.pt"):
        if path.name != keep.name:
            path.unlink(missing_ok=True)


def decoded_split(split, size, cache_dir=None, workers=None, strict=False, warn=log):
    """Every image of a scanned `Split` decoded to uint8 (N, 3, size, size), cached on disk.

    The first call decodes all files with `workers` processes (default: one per CPU) and saves the
    result atomically in `cache_dir` (default `default_cache_dir()`); later calls with unchanged
    files load it. Undecodable files are left out and returned as `decoded.bad` (the caller
    reports them once, e.g. `BadFileLog.record`); `strict` raises `DatasetError` for the first.
    """
    directory = Path(cache_dir) if cache_dir else default_cache_dir()
    for stale in remove_stale_temporaries(directory):  # left by a decode that was killed mid-write
        warn(f"removed {stale}, a partial cache file whose writer is gone")
    key = cache_key(split, size)
    path = directory / f"{cache_prefix(split, size)}{key[:16]}.pt"
    payload = read_cache(path, key, size)
    if payload is None:
        if path.exists():
            warn(f"warning: rebuilding the unreadable decoded cache {path}")
        warn(f"decoding {len(split.samples)} images of {split.root} at {size} px into {path}")
        payload = build_cache(split, size, key, workers)
        try:
            atomic_write(path, lambda f: torch.save(payload, f))
        except OSError as error:
            raise DatasetError(
                f"cannot write the decoded cache {path} ({describe_failure(error)}); "
                "set VITBENCH_CACHE to a writable folder"
            ) from error
        remove_stale(directory, cache_prefix(split, size), path)
    paths = [os.path.join(split.root, rel) for rel in payload["paths"]]
    target_of = dict(split.samples)  # the scan's labels, not the cache's: --labels relabels the same files
    decoded = DecodedSplit(
        images=payload["images"],
        targets=torch.tensor([target_of[path] for path in paths], dtype=torch.long),
        paths=paths,
        bad=[BadImage(os.path.join(split.root, rel), reason) for rel, reason in payload["bad"]],
        classes=payload["classes"],
    )
    if strict:
        BadFileLog(strict=True).record(decoded.bad)
    if not len(decoded):
        first = decoded.bad[0]
        raise DatasetError(f"no image in {split.root} could be decoded ({first.path}: {first.reason}); check the files")
    return decoded


# --- memory or files ----------------------------------------------------------------------------
def total_ram():
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def fits_in_memory(num_images, size, ram_bytes=None):
    """Whether num_images decoded uint8 images of 3 x size x size take <= min(25% of RAM, 4 GiB)."""
    ram_bytes = total_ram() if ram_bytes is None else ram_bytes
    return num_images * 3 * size * size <= min(MEMORY_SHARE * ram_bytes, MEMORY_CAP)


def native_side(samples, probe=PROBE):
    """The longest side among `probe` files spread over `samples` (headers only, no decoding)."""
    step = max(1, len(samples) // probe)
    sides = []
    for path, _ in samples[::step][:probe]:
        try:
            with Image.open(path) as image:
                sides.append(max(image.size))
        except Exception:  # an unreadable file says nothing about the size of the others
            continue
    return max(sides, default=0)


def choose_data_mode(requested, samples, size, ram_bytes=None):
    """ "memory" (decoded tensor cache) or "files" (PIL loader) for `samples` (train + val) at `size`.

    "auto" picks memory when the images are small (native side <= 64 px, probing a few files)
    and all of them fit in memory at `size`; "memory" is refused when they do not fit.
    """
    fits = fits_in_memory(len(samples), size, ram_bytes)
    if requested == "memory" and not fits:
        gib = len(samples) * 3 * size * size / 2**30
        raise DatasetError(
            f"{len(samples)} images at {size} px take {gib:.1f} GiB decoded, more than min(25% of RAM, "
            "4 GiB); use data mode files or a smaller image size"
        )
    if requested == "auto":
        return "memory" if fits and 0 < native_side(samples) <= SMALL_SIDE else "files"
    return requested


# --- augmentation ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Augment:
    """Training augmentation of uint8 batches, each step optional; defaults are a CIFAR-10 recipe."""

    crop_padding: int = 4  # random crop of the original size after zero padding; 0: no crop
    hflip: float = 0.5  # probability of a horizontal flip
    policy: str = "rand"  # "rand": RandAugment(num_ops, magnitude), "cifar10": AutoAugment CIFAR-10, "": none
    num_ops: int = 2
    magnitude: int = 9  # of torchvision RandAugment's 31 bins
    interpolation: str = "nearest"  # of the geometric policy ops (torchvision's default)
    reprob: float = 0.25  # random erasing probability (timm, per-pixel normal noise)

    def __post_init__(self):
        if self.policy not in POLICIES:
            raise ConfigError(f"augmentation policy {self.policy!r} is not one of 'rand', 'cifar10', '' (none)")
        if self.crop_padding < 0 or not 0 <= self.hflip <= 1 or not 0 <= self.reprob <= 1:
            raise ConfigError(
                f"crop_padding={self.crop_padding} must be >= 0, hflip={self.hflip} and reprob={self.reprob} in [0, 1]"
            )


NO_AUGMENT = Augment(crop_padding=0, hflip=0.0, policy="", reprob=0.0)


def epoch_generator(seed, rank, epoch):
    """CPU generator of one rank's epoch, seeded as the training loop seeds that epoch."""
    state = int(np.random.SeedSequence([int(seed), int(rank), int(epoch)]).generate_state(1)[0])
    return torch.Generator().manual_seed(state)


def random_crop(images, padding, generator):
    """Each image cropped back to H x W at a random offset of its zero-padded copy. (B, C, H, W) -> same."""
    batch, channels, height, width = images.shape
    padded = F.pad(images, (padding,) * 4).flatten(2)  # (B, C, (H + 2p) * (W + 2p))
    top = torch.randint(0, 2 * padding + 1, (batch,), generator=generator)
    left = torch.randint(0, 2 * padding + 1, (batch,), generator=generator)
    row = width + 2 * padding
    window = (torch.arange(height)[:, None] * row + torch.arange(width)).flatten()  # (H * W,) at offset 0
    index = (top * row + left)[:, None] + window  # (B, H * W)
    index = index.to(images.device)[:, None, :].expand(batch, channels, -1)
    return padded.gather(2, index).view(batch, channels, height, width)


def random_flip(images, probability, generator):
    """Each image mirrored left-right with `probability`. (B, C, H, W) -> same."""
    flip = (torch.rand(len(images), generator=generator) < probability).to(images.device)
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


# RandAugment's and AutoAugment's ops as torchvision.transforms.v2 defines them (`RandAugment._AUGMENTATION_SPACE`,
# `AutoAugment._AUGMENTATION_SPACE` and `_AutoAugmentBase._apply_image_or_video_transform` in
# torchvision/transforms/v2/_auto_augment.py, 0.19 to 0.29), written out on the public functional API so that
# a torchvision release cannot change them under us. Each op: (its magnitudes at `bins` levels for an H x W
# image, or None; whether a draw may negate the magnitude; the op on a uint8 batch).
def levels(low, high):
    return lambda bins, height, width: torch.linspace(low, high, bins)


def shear(axis, interpolation):
    """Shear along `axis` (0: x, 1: y) by atan(magnitude) degrees about the top-left corner, torchvision's
    reading of AutoAugment's shear."""
    def op(images, magnitude):
        angles = [0.0, 0.0]
        angles[axis] = math.degrees(math.atan(magnitude))
        return TF.affine(images, angle=0.0, translate=[0, 0], scale=1.0, shear=angles, interpolation=interpolation,
                         fill=None, center=[0, 0])
    return op


def translate(axis, interpolation):
    """Shift along `axis` (0: x, 1: y) by int(magnitude) pixels."""
    def op(images, magnitude):
        shift = [0, 0]
        shift[axis] = int(magnitude)
        return TF.affine(images, angle=0.0, translate=shift, scale=1.0, shear=[0.0, 0.0], interpolation=interpolation,
                         fill=None)
    return op


def rotate(interpolation):
    return lambda images, magnitude: TF.rotate(images, angle=magnitude, interpolation=interpolation, fill=None)


def policy_ops(interpolation):
    """name -> (magnitudes, signed, op) of every op the two policies use."""
    return {
        "Identity": (None, False, lambda images, magnitude: images),
        "ShearX": (levels(0.0, 0.3), True, shear(0, interpolation)),
        "ShearY": (levels(0.0, 0.3), True, shear(1, interpolation)),
        "TranslateX": (lambda bins, height, width: torch.linspace(0.0, 150.0 / 331.0 * width, bins), True,
                       translate(0, interpolation)),
        "TranslateY": (lambda bins, height, width: torch.linspace(0.0, 150.0 / 331.0 * height, bins), True,
                       translate(1, interpolation)),
        "Rotate": (levels(0.0, 30.0), True, rotate(interpolation)),
        "Brightness": (levels(0.0, 0.9), True, lambda images, magnitude: TF.adjust_brightness(images, 1.0 + magnitude)),
        "Color": (levels(0.0, 0.9), True, lambda images, magnitude: TF.adjust_saturation(images, 1.0 + magnitude)),
        "Contrast": (levels(0.0, 0.9), True, lambda images, magnitude: TF.adjust_contrast(images, 1.0 + magnitude)),
        "Sharpness": (levels(0.0, 0.9), True, lambda images, magnitude: TF.adjust_sharpness(images, 1.0 + magnitude)),
        "Posterize": (lambda bins, height, width: (8 - (torch.arange(bins) / ((bins - 1) / 4))).round().int(), False,
                      lambda images, magnitude: TF.posterize(images, bits=int(magnitude))),
        "Solarize": (levels(1.0, 0.0), False, lambda images, magnitude: TF.solarize(images, threshold=255 * magnitude)),
        "AutoContrast": (None, False, lambda images, magnitude: TF.autocontrast(images)),
        "Equalize": (None, False, lambda images, magnitude: TF.equalize(images)),
        "Invert": (None, False, lambda images, magnitude: TF.invert(images)),
    }


RAND_OPS = ("Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast",
            "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize")  # RandAugment's, in its draw order
AUTO_BINS = 10  # AutoAugment's magnitude levels
CIFAR10_POLICY = (  # AutoAugment's CIFAR-10 sub-policies: ((op, probability, level), (op, probability, level))
    (("Invert", 0.1, None), ("Contrast", 0.2, 6)),
    (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
    (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)),
    (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.5, None), ("Equalize", 0.9, None)),
    (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
    (("Color", 0.4, 3), ("Brightness", 0.6, 7)),
    (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
    (("Equalize", 0.6, None), ("Equalize", 0.5, None)),
    (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
    (("Color", 0.7, 7), ("TranslateX", 0.5, 8)),
    (("Equalize", 0.3, None), ("AutoContrast", 0.4, None)),
    (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)),
    (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
    (("Solarize", 0.5, 2), ("Invert", 0.0, None)),
    (("Equalize", 0.2, None), ("AutoContrast", 0.6, None)),
    (("Equalize", 0.2, None), ("Equalize", 0.6, None)),
    (("Color", 0.9, 9), ("Equalize", 0.6, None)),
    (("AutoContrast", 0.8, None), ("Solarize", 0.2, 8)),
    (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
    (("Solarize", 0.4, 5), ("AutoContrast", 0.9, None)),
    (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.9, None), ("Solarize", 0.8, 3)),
    (("Equalize", 0.8, None), ("Invert", 0.1, None)),
    (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, None)),
)


class GroupedPolicy:
    """torchvision's RandAugment or AutoAugment (CIFAR-10 policy) drawn per image, applied once per group of images.

    Every image draws its own ops, signs (and AutoAugment sub-policy and probabilities) from the
    epoch generator, in the order torchvision draws them for one image; the images that drew the
    same (op, magnitude) are then transformed together by the op, which treats each image of a
    batch on its own, so the result equals per-image application at ~30 calls a batch.
    """

    def __init__(self, augment):
        self.augment = augment
        self.ops = policy_ops(InterpolationMode(augment.interpolation))
        self.bins = 31 if augment.policy == "rand" else AUTO_BINS  # torchvision RandAugment's default bin count
        self.values = {}  # (op name, level, height, width) -> magnitude

    def magnitude(self, name, level, height, width):
        """The op's magnitude at bin `level` (0.0 for ops without one), computed once per key."""
        key = (name, level, height, width)
        if key not in self.values:
            magnitudes = self.ops[name][0]
            self.values[key] = 0.0 if magnitudes is None else float(magnitudes(self.bins, height, width)[level])
        return self.values[key]

    def draw(self, batch, height, width, generator):
        """Per op slot, one (op name, signed magnitude) or None (skipped) per image."""
        if self.augment.policy == "rand":
            return self.draw_rand(batch, height, width, generator)
        return self.draw_auto(batch, height, width, generator)

    def draw_rand(self, batch, height, width, generator):
        slots = []
        for _ in range(self.augment.num_ops):
            ops = torch.randint(len(RAND_OPS), (batch,), generator=generator).tolist()
            negate = (torch.rand(batch, generator=generator) <= 0.5).tolist()
            level = self.augment.magnitude
            slots.append([self.signed(RAND_OPS[op], level, flip, height, width) for op, flip in zip(ops, negate)])
        return slots

    def draw_auto(self, batch, height, width, generator):
        chosen = torch.randint(len(CIFAR10_POLICY), (batch,), generator=generator).tolist()
        slots = []
        for slot in range(2):
            apply = torch.rand(batch, generator=generator).tolist()
            negate = (torch.rand(batch, generator=generator) <= 0.5).tolist()
            keys = []
            for policy, draw, flip in zip(chosen, apply, negate):
                name, probability, level = CIFAR10_POLICY[policy][slot]
                keys.append(self.signed(name, level, flip, height, width) if draw <= probability else None)
            slots.append(keys)
        return slots

    def signed(self, name, level, negate, height, width):
        value = self.magnitude(name, level, height, width)
        return name, -value if negate and self.ops[name][1] else value

    def apply(self, images, name, value):
        """Op `name` at magnitude `value` on uint8 (B, C, H, W): each image on its own, as for a batch of one."""
        return self.ops[name][2](images, value)

    def __call__(self, images, generator):
        """uint8 (B, C, H, W) -> same, each image with its own drawn ops."""
        images = images.clone()
        for keys in self.draw(len(images), images.shape[-2], images.shape[-1], generator):
            groups = defaultdict(list)
            for i, key in enumerate(keys):
                if key is not None and key[0] != "Identity":
                    groups[key].append(i)
            for (name, value), members in groups.items():
                index = torch.tensor(members, device=images.device)
                images[index] = self.apply(images[index], name, value)
        return images


class Eraser:
    """timm's RandomErasing (per-pixel noise) on a normalised batch, its RNG draws taken from the epoch generator."""

    def __init__(self, probability, device):
        from timm.data.random_erasing import RandomErasing

        self.erase = RandomErasing(probability, mode="pixel", device=device)

    def __call__(self, images, generator):
        """float (B, C, H, W) -> same (in place): timm draws from Python's and torch's global RNGs,
        so both are seeded from `generator` for this call and restored after it."""
        seed = int(torch.randint(2**62, (), generator=generator))
        python_state = random.getstate()
        cuda = images.device.type == "cuda"
        devices = [images.device.index or 0] if cuda else []
        with torch.random.fork_rng(devices=devices, device_type=images.device.type):
            random.seed(seed)
            torch.random.default_generator.manual_seed(seed)
            for index in devices:
                with torch.cuda.device(index):
                    torch.cuda.manual_seed(seed)
            images = self.erase(images)
        random.setstate(python_state)
        return images


def normalize(images, mean, std):
    """uint8 (B, C, H, W) -> float32 (images / 255 - mean) / std."""
    mean = torch.tensor(mean, device=images.device).view(1, -1, 1, 1)
    std = torch.tensor(std, device=images.device).view(1, -1, 1, 1)
    return images.float().div_(255).sub_(mean).div_(std)


# --- loaders --------------------------------------------------------------------------------------
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
