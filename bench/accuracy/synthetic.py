"""A generated ImageNet-layout dataset whose classes differ only in local structure.

Every image has the same recipe: a smooth two-colour background with pixel noise, 3-6 copies of
its class's 5x5 motif stamped at random (not patch-aligned) positions in random colours, and
up to one random 5x5 clutter blob. Colours, positions, counts and clutter are drawn the same way for
every class, so only the local arrangement of pixels tells the classes apart: a test of what a
front end sees inside and across patches. All motifs are symmetric under a horizontal flip, so
the standard flip augmentation keeps labels valid. It is synthetic: results on it are not
ImageNet results.
"""
import datetime
import json

import numpy as np
from PIL import Image

from bench.accuracy.subset import MANIFEST, sha256, staged
from bench.configs import SyntheticConfig
from models.atomic import atomic_write_text

MOTIF_ROWS = {  # 5x5, '#' = ink; each is its own mirror image left-to-right
    "hbar": ".....|.....|#####|.....|.....",
    "vbar": "..#..|..#..|..#..|..#..|..#..",
    "plus": "..#..|..#..|#####|..#..|..#..",
    "cross": "#...#|.#.#.|..#..|.#.#.|#...#",
    "ring": "#####|#...#|#...#|#...#|#####",
    "block": ".....|.###.|.###.|.###.|.....",
    "checker": "#.#.#|.#.#.|#.#.#|.#.#.|#.#.#",
    "hpair": ".....|.....|#...#|.....|.....",
    "vpair": "..#..|.....|.....|.....|..#..",
    "tee": "#####|..#..|..#..|..#..|..#..",
}
MOTIFS = {name: np.array([[c == "#" for c in row] for row in rows.split("|")]) for name, rows in MOTIF_ROWS.items()}
MOTIF_SIZE = 5


def background(rng, size):
    """(size, size, 3) floats: a linear blend of two random colours along a random direction, plus noise."""
    a, b = rng.uniform(0.15, 0.85, size=(2, 3))
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    ramp = (np.cos(angle) * xs + np.sin(angle) * ys)
    ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1e-6)
    image = a + (b - a) * ramp[..., None]
    return image + rng.normal(0, 0.03, size=image.shape)


def stamp(image, mask, rng):
    """Paint `mask` at a random position in a colour that contrasts with the pixels under it."""
    size = image.shape[0]
    y, x = rng.integers(0, size - MOTIF_SIZE + 1, size=2)
    window = image[y:y + MOTIF_SIZE, x:x + MOTIF_SIZE]
    dark = window.mean() > 0.5  # one polarity for all channels: dark ink on light ground or the reverse
    window[mask] = rng.uniform(0.0, 0.2, 3) if dark else rng.uniform(0.8, 1.0, 3)


def render(motif, rng, size):
    """One uint8 RGB image of class `motif`."""
    image = background(rng, size)
    for _ in range(rng.integers(3, 7)):
        stamp(image, MOTIFS[motif], rng)
    for _ in range(rng.integers(0, 2)):
        stamp(image, rng.random((MOTIF_SIZE, MOTIF_SIZE)) < 0.35, rng)
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)


def make_synthetic(config: SyntheticConfig, overwrite: bool = False) -> dict:
    """Write `config.out/{train,val}/<motif>/*.png` and a manifest; returns the manifest dict. The sizes were checked
    by the config (SyntheticConfig: 2 to 10 motifs, sides of at least two motifs)."""
    names = sorted(MOTIFS)[:config.classes]
    rng = np.random.default_rng(config.seed)
    manifest = {
        "name": "synthetic-motifs", "synthetic": True, "seed": config.seed, "img_size": config.img_size,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "description": "classes differ only in a 5x5 local motif; see bench/accuracy/synthetic.py",
        "classes": [{"wnid": name, "label": name} for name in names],
        "counts": {}, "files": {},
    }
    with staged(config.out, overwrite) as staging:
        for split, count in (("train", config.train_per_class), ("val", config.val_per_class)):
            manifest["counts"][split] = {name: count for name in names}
            for name in names:
                folder = staging / split / name
                folder.mkdir(parents=True)
                for i in range(count):
                    path = folder / f"{name}_{split}_{i:05d}.png"
                    Image.fromarray(render(name, rng, config.img_size)).save(path)
                    manifest["files"][path.relative_to(staging).as_posix()] = sha256(path)
        atomic_write_text(staging / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    return manifest
