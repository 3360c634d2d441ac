"""Training augmentation of uint8 image batches on their own device: random crop after padding, flip,
torchvision's RandAugment or AutoAugment's CIFAR-10 policy (each image drawing its own ops) and timm's
random erasing. Every random draw comes from the `torch.Generator` the caller passes, so a batch's
augmentation is reproducible from that generator's seed.
"""

import math
import random
from collections import defaultdict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from bench.settings import Settings, setting

POLICIES = ("rand", "cifar10", "")  # RandAugment, AutoAugment's CIFAR-10 policy, none


@dataclass(frozen=True)
class Augment(Settings):
    """Training augmentation of uint8 batches, each step optional; defaults are a CIFAR-10 recipe. Checked as every
    config is (bench.settings); a run's come from its TrainConfig (`train_data.memory_augment`)."""

    JOB = "augment"
    crop_padding: int = setting(4, "random crop of the original size after zero padding; 0: no crop", low=0, high=1024)
    hflip: float = setting(0.5, "probability of a horizontal flip", low=0.0, high=1.0)
    policy: str = setting("rand", "rand: RandAugment(num_ops, magnitude), cifar10: AutoAugment's CIFAR-10 policy, "
                          "'': none", choices=POLICIES, empty=True)
    num_ops: int = setting(2, "RandAugment's ops per image (drawn with replacement)", low=0, high=64)
    magnitude: int = setting(9, "of torchvision RandAugment's 31 bins", low=0, high=30)
    interpolation: str = setting("nearest", "of the geometric policy ops (torchvision's default)",
                                 choices=("nearest", "bilinear"))
    reprob: float = setting(0.25, "random erasing probability (timm, per-pixel normal noise)", low=0.0, high=1.0)


NO_AUGMENT = Augment(crop_padding=0, hflip=0.0, policy="", reprob=0.0)


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
