"""A split's images decoded once into uint8 tensors and cached on disk, for data sets of small images.

For data sets like CIFAR-10 (60,000 images of 32 x 32) per-image PIL decoding in loader workers costs
more than a small model's training step. `decoded_split` decodes every image of a scanned split once
into `images: uint8 (N, 3, H, W)` and `targets: int64 (N,)` and saves them; later runs load the file:

    decoded = decoded_split(scan_split(root, "train"), 32)  # decodes once, later runs load the cache
    bad_files.record(decoded.bad)                          # undecodable files, reported once
    decoded = decoded.to(device)                           # ~150 MB for CIFAR-10 train

Cache key: SHA-256 of the sorted (relative path, size, mtime_ns) list of the split plus the image
size, class list and cache format; file contents are not hashed (stat of 60k files takes ~0.2 s,
hashing their contents would not). A rewritten or touched file, an added or removed one, or
another size gives another cache file; the older entry of the same folder and size is removed.
Under DDP, build the cache on rank 0 and barrier before the other ranks call `decoded_split`.
"""

import multiprocessing
import os
from dataclasses import dataclass, replace
from hashlib import sha256
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench.accuracy.data import BadFileLog, BadImage, describe_failure, load_rgb, log
from bench.errors import DatasetError
from bench.processes import worker_pool
from models.atomic import atomic_write, remove_stale_temporaries

CACHE_VERSION = 1
CHUNK = 1000  # images per decoding task


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
