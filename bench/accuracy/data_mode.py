"""Memory or files: whether a run holds its data set decoded in memory (`decoded_cache`, `tensor_loaders`) or
reads image files through PIL loaders (`data.build_loader`), the choice behind `--data-mode memory|files|auto`."""

import os

from PIL import Image

from bench.errors import DatasetError

SMALL_SIDE = 64  # "auto" holds data sets in memory only when their images are at most this wide
MEMORY_CAP = 4 * 2**30  # decoded bytes held in memory at most: min(25% of RAM, 4 GiB)
MEMORY_SHARE = 0.25
PROBE = 8  # files opened to learn the native size of a split


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
