"""The memory path on real CIFAR-10 files: the decoded tensor cache (bench.accuracy.decoded_cache), the memory-or-files
choice (data_mode), tensor-side augmentation (tensor_augment) and the loaders over them (tensor_loaders)."""

import os
import random
import shutil
from pathlib import Path

import pytest
import torch
from torchvision.transforms import v2

from bench.accuracy import decoded_cache, distributed, tensor_augment
from bench.accuracy.data import scan_split, select_per_class
from bench.accuracy.data_mode import choose_data_mode, fits_in_memory
from bench.accuracy.decoded_cache import decode_file, decoded_split
from bench.accuracy.tensor_augment import NO_AUGMENT, Augment, GroupedPolicy, random_crop
from bench.accuracy.tensor_loaders import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    TensorEvalLoader,
    TensorLoader,
    epoch_generator,
    shard_order,
)
from bench.configs import TrainConfig
from bench.errors import DatasetError
from models.errors import ConfigError
from tests.conftest import CIFAR10_SAMPLE
from tests.harness_helpers import write_image

CIFAR = CIFAR10_SAMPLE
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def copy_cifar(root, train_per_class=20, val_per_class=4):
    """A small CIFAR-10 folder of real JPEG copies (own files, so tests may rewrite them)."""
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for name in CLASSES:
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                shutil.copy(CIFAR / split / name / f"{i:04d}.jpg", root / split / name)
    return root


def decode(root, cache, split="train", **kwargs):
    return decoded_split(scan_split(root, split), 32, cache_dir=cache, workers=1, warn=lambda message: None, **kwargs)


@pytest.fixture
def cifar(tmp_path):
    return copy_cifar(tmp_path / "cifar10")


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def shared_cifar(tmp_path_factory):
    """One copy and cache for the tests that only read them."""
    root = copy_cifar(tmp_path_factory.mktemp("shared") / "cifar10")
    return root, root.parent / "cache"


@pytest.fixture(scope="module")
def decoded(shared_cifar):
    return decode(*shared_cifar)


def no_decoding(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("decoded although the cache was valid")

    monkeypatch.setattr(decoded_cache, "decode_images", fail)


def batches(loader):
    return [(images.clone(), targets.clone()) for images, targets, _ in loader]


def same_batches(first, second):
    return len(first) == len(second) and all(
        torch.equal(a, c) and torch.equal(b, d) for (a, b), (c, d) in zip(first, second)
    )


# --- the cache -------------------------------------------------------------------------------------
def test_cache_built_then_reused(cifar, cache, monkeypatch):
    first = decode(cifar, cache)
    assert first.images.shape == (200, 3, 32, 32) and first.images.dtype == torch.uint8
    assert first.targets.dtype == torch.int64 and first.targets.tolist() == [i // 20 for i in range(200)]
    assert torch.equal(first.images[25], torch.from_numpy(decode_file(first.paths[25], 32).copy()))
    no_decoding(monkeypatch)
    second = decode(cifar, cache)
    assert torch.equal(first.images, second.images) and torch.equal(first.targets, second.targets)
    assert first.paths == second.paths == [path for path, _ in scan_split(cifar, "train").samples]
    assert len(list(cache.glob("*.pt"))) == 1


def test_cache_rebuilt_when_a_file_changes(cifar, cache, monkeypatch):
    before = decode(cifar, cache)
    changed = Path(before.paths[7])
    shutil.copy(Path(before.paths[150]), changed)  # another picture, same name
    after = decode(cifar, cache)
    assert torch.equal(after.images[7], before.images[150]) and not torch.equal(after.images[7], before.images[7])
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))  # touched only
    original, calls = decoded_cache.decode_images, []
    monkeypatch.setattr(decoded_cache, "decode_images", lambda *args: calls.append(1) or original(*args))
    decode(cifar, cache)
    assert calls == [1]
    assert len(list(cache.glob("*.pt"))) == 1  # the stale entries were removed


def test_corrupt_cache_is_rebuilt(cifar, cache):
    before = decode(cifar, cache)
    (path,) = cache.glob("*.pt")
    path.write_bytes(path.read_bytes()[:1000])  # truncated
    warnings = []
    after = decoded_split(scan_split(cifar, "train"), 32, cache_dir=cache, workers=1, warn=warnings.append)
    assert torch.equal(before.images, after.images)
    assert "rebuilding the unreadable decoded cache" in warnings[0]


def test_cache_folder_from_the_environment(cifar, tmp_path, monkeypatch):
    monkeypatch.setenv("VITBENCH_CACHE", str(tmp_path / "env-cache"))
    decode(cifar, None)
    (entry,) = (tmp_path / "env-cache").glob("*.pt")
    assert entry.name.startswith("cifar10-train-32px-")


def test_unwritable_cache_names_the_fix(cifar, tmp_path):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(DatasetError, match="cannot write the decoded cache .*set VITBENCH_CACHE to a writable folder"):
        decode(cifar, tmp_path / "a-file" / "cache")


def test_undecodable_file_skipped_reported_and_cached(cifar, cache, monkeypatch):
    broken = cifar / "train" / "cat" / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    decoded = decode(cifar, cache)
    assert len(decoded) == 200 and [bad.path for bad in decoded.bad] == [str(broken)]
    assert "UnidentifiedImageError" in decoded.bad[0].reason
    samples = scan_split(cifar, "train").samples
    assert len(decoded.indices(samples)) == 200  # the bad file has no position
    no_decoding(monkeypatch)
    assert [bad.path for bad in decode(cifar, cache).bad] == [str(broken)]  # the cache remembers it
    with pytest.raises(DatasetError, match="cannot decode .*broken.jpg.*drop --strict"):
        decode(cifar, cache, strict=True)


def test_parallel_decode_equals_serial_and_resizes_odd_files(tmp_path, cifar):
    write_image(cifar / "train" / "dog" / "wide.png", size=(40, 24))
    write_image(cifar / "train" / "dog" / "gray.png", size=(32, 32), mode="L")
    split = scan_split(cifar, "train")
    quiet = dict(warn=lambda message: None)
    serial = decoded_split(split, 32, cache_dir=tmp_path / "a", workers=1, **quiet)
    parallel = decoded_split(split, 32, cache_dir=tmp_path / "b", workers=2, **quiet)
    assert torch.equal(serial.images, parallel.images) and len(serial) == 202 and not serial.bad
    assert decoded_split(split, 16, cache_dir=tmp_path / "a", workers=1, **quiet).images.shape == (202, 3, 16, 16)


def test_indices_follow_a_per_class_cut(shared_cifar, decoded):
    split = scan_split(shared_cifar[0], "train")
    cut = select_per_class(split.samples, split.classes, per_class=3, seed=1)
    indices = decoded.indices(cut)
    assert [decoded.paths[i] for i in indices] == [path for path, _ in cut]
    assert decoded.targets[indices].tolist() == [target for _, target in cut]
    with pytest.raises(DatasetError, match="not in the decoded cache"):
        decoded.indices([("elsewhere/x.jpg", 0)])


def test_memory_mode_choice(shared_cifar, tmp_path):
    samples = scan_split(shared_cifar[0], "train").samples
    assert choose_data_mode("auto", samples, 32) == "memory"
    assert choose_data_mode("auto", samples, 32, ram_bytes=1000) == "files"
    assert choose_data_mode("files", samples, 32) == "files"
    large = [(str(write_image(tmp_path / "big" / f"{i}.png", size=(100, 80))), 0) for i in range(3)]
    assert choose_data_mode("auto", large, 32) == "files"
    assert choose_data_mode("memory", large, 32) == "memory"
    with pytest.raises(DatasetError, match="use data mode files or a smaller image size"):
        choose_data_mode("memory", samples, 32, ram_bytes=1000)
    with pytest.raises(ConfigError, match="data_mode='ram' is not allowed; it must be one of auto, memory, files"):
        TrainConfig(model="vit_lite_tiny", data="d", out="o", data_mode="ram")  # checked once, by the config
    assert fits_in_memory(60_000, 32, ram_bytes=16 * 2**30) and not fits_in_memory(60_000, 224, ram_bytes=2**40)


# --- training batches --------------------------------------------------------------------------------
FULL = Augment(policy="rand", reprob=1.0)


def test_batches_shapes_dtypes_and_normalisation(decoded):
    loader = TensorLoader(decoded.images, decoded.targets, 32, seed=3, epoch=0, augment=NO_AUGMENT)
    order = shard_order(200, 3, 0)
    assert len(loader) == 6
    for step, (images, targets, bad) in enumerate(loader):
        assert images.shape == (32, 3, 32, 32) and images.dtype == torch.float32 and targets.dtype == torch.int64
        assert bad == []
        positions = order[step * 32 : (step + 1) * 32]
        mean, std = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1), torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
        torch.testing.assert_close(images * std + mean, decoded.images[positions].float() / 255)
        assert torch.equal(targets, decoded.targets[positions])
    assert len(TensorLoader(decoded.images, decoded.targets, 32, drop_last=False)) == 7
    images, _, _ = next(iter(TensorLoader(decoded.images, decoded.targets, 200, augment=FULL)))
    assert images.shape == (200, 3, 32, 32) and images.dtype == torch.float32 and images.isfinite().all()


def test_same_seed_and_epoch_give_identical_batches(decoded):
    def epoch(k, seed=0):
        return batches(TensorLoader(decoded.images, decoded.targets, 50, seed=seed, epoch=k, augment=FULL))

    resumed = epoch(2)  # a fresh loader, as after resuming from the end of epoch 1
    loader = TensorLoader(decoded.images, decoded.targets, 50, seed=0, augment=FULL)
    loader.set_epoch(2)
    assert same_batches(resumed, batches(loader)) and same_batches(resumed, batches(loader))
    assert not same_batches(resumed, epoch(3)) and not same_batches(resumed, epoch(2, seed=1))


def test_augmentation_differs_with_the_epoch_on_the_same_images(decoded):
    """Same images, other epoch: the draws differ (not only the order)."""
    policy = GroupedPolicy(FULL)
    images = decoded.images[:64]
    assert not torch.equal(policy(images, epoch_generator(0, 0, 0)), policy(images, epoch_generator(0, 0, 1)))
    assert torch.equal(policy(images, epoch_generator(0, 0, 0)), policy(images, epoch_generator(0, 0, 0)))


def test_loader_leaves_the_global_rngs_and_threads_alone(decoded):
    torch.manual_seed(5)
    random.seed(5)
    expected = torch.rand(3), random.random()
    torch.manual_seed(5)
    random.seed(5)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for _ in TensorLoader(decoded.images, decoded.targets, 50, augment=FULL):
            assert torch.get_num_threads() == 2  # the training step runs with its own setting
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(torch.rand(3), expected[0]) and random.random() == expected[1]


@pytest.mark.parametrize("policy", ["rand", "cifar10"])
def test_grouped_policy_equals_per_image_application(decoded, policy):
    grouped = GroupedPolicy(Augment(policy=policy, num_ops=3))
    images = decoded.images[:60]
    out = grouped(images, epoch_generator(1, 0, 0))
    slots = grouped.draw(60, 32, 32, epoch_generator(1, 0, 0))
    for i in range(60):
        single = images[i : i + 1]
        for key in (keys[i] for keys in slots if keys[i] is not None):
            single = grouped.apply(single, *key)
        assert torch.equal(out[i : i + 1], single), (i, [keys[i] for keys in slots])
    assert any(key is not None and key[0] != "Identity" for keys in slots for key in keys)


def test_policy_ops_equal_torchvisions_randaugment_and_autoaugment(decoded):
    """Our written-out ops and magnitudes against torchvision's own transforms, per image: seeded alike, torchvision
    draws (op, sign) from the global generator, which is replayed here to pick the same op of ours."""
    image = decoded.images[7]
    rand = GroupedPolicy(Augment(policy="rand", magnitude=27))
    seen = set()
    for seed in range(80):
        torch.manual_seed(seed)
        name = tensor_augment.RAND_OPS[int(torch.randint(len(tensor_augment.RAND_OPS), ()))]
        negate = rand.ops[name][0] is not None and rand.ops[name][1] and bool(torch.rand(()) <= 0.5)
        torch.manual_seed(seed)
        expected = v2.RandAugment(num_ops=1, magnitude=27)(image)
        assert torch.equal(rand.apply(image[None], *rand.signed(name, 27, negate, 32, 32))[0], expected), name
        seen.add(name)
    assert seen == set(tensor_augment.RAND_OPS)
    auto = GroupedPolicy(Augment(policy="cifar10"))
    for seed in range(40):
        torch.manual_seed(seed)
        result = image[None]
        for name, probability, level in tensor_augment.CIFAR10_POLICY[int(torch.randint(25, ()))]:
            if torch.rand(()) <= probability:
                negate = level is not None and auto.ops[name][1] and bool(torch.rand(()) <= 0.5)
                result = auto.apply(result, *auto.signed(name, level, negate, 32, 32))
        torch.manual_seed(seed)
        assert torch.equal(result[0], v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)(image)), seed


def test_random_crop_is_a_window_of_the_padded_image():
    images = torch.randint(1, 256, (16, 3, 8, 8), dtype=torch.uint8)
    out = random_crop(images, 2, torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(0)
    top, left = torch.randint(0, 5, (16,), generator=generator), torch.randint(0, 5, (16,), generator=generator)
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for i in range(16):
        assert torch.equal(out[i], padded[i, :, top[i] : top[i] + 8, left[i] : left[i] + 8])


@pytest.mark.parametrize("world", [1, 3])
def test_memory_path_draws_the_folder_paths_order(decoded, world):
    """TensorLoader's images come in the order the folder path's sampler (distributed.train_sampler) draws for the
    same (seed, epoch, rank), over the selected positions: the two data modes train on the same sequence."""
    subset = torch.arange(0, 200, 3)
    for rank in range(world):
        context = distributed.Context(rank, world, 0, torch.device("cpu"))
        sampler = distributed.train_sampler(range(len(subset)), context, seed=4)
        sampler.set_epoch(5)
        loader = TensorLoader(decoded.images, torch.arange(200), 8, subset, seed=4, epoch=5, rank=rank,
                              world_size=world, drop_last=False, augment=NO_AUGMENT)
        drawn = torch.cat([targets for _, targets, _ in loader]).tolist()
        assert drawn == subset[list(sampler)].tolist()


def test_train_shards_cover_every_image(decoded):
    subset = torch.arange(0, 200, 2)  # 100 images over 3 ranks: 34 each, two repeated as padding
    seen = []
    for rank in range(3):
        loader = TensorLoader(
            decoded.images,
            torch.arange(200),
            10,
            subset,
            seed=0,
            epoch=1,
            rank=rank,
            world_size=3,
            drop_last=False,
            augment=NO_AUGMENT,
        )
        assert len(loader) == 4
        seen += torch.cat([targets for _, targets, _ in loader]).tolist()
    assert len(seen) == 102 and set(seen) == set(subset.tolist())


# --- evaluation batches -----------------------------------------------------------------------------
def test_eval_batches_in_order_and_complete(shared_cifar):
    decoded = decode(*shared_cifar, split="val")
    loader = TensorEvalLoader(decoded.images, decoded.targets, 16)
    assert len(loader) == 3
    got = list(loader)
    assert [len(targets) for _, targets, _ in got] == [16, 16, 8]
    assert torch.equal(torch.cat([targets for _, targets, _ in got]), decoded.targets)
    mean, std = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1), torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(torch.cat([images for images, _, _ in got]) * std + mean, decoded.images.float() / 255)


@pytest.mark.parametrize("world", [2, 3, 7])
def test_eval_sharding_covers_every_index_once(world):
    images = torch.zeros(40, 3, 4, 4, dtype=torch.uint8)
    seen = []
    for rank in range(world):
        loader = TensorEvalLoader(images, torch.arange(40), 4, rank=rank, world_size=world)
        parts = [targets for _, targets, _ in loader]
        assert len(parts) == len(loader)
        seen += torch.cat(parts).tolist()
    assert sorted(seen) == list(range(40))


def test_cifar10_statistics_normalise_cifar10(decoded):
    images = next(iter(TensorEvalLoader(decoded.images, decoded.targets, 200)))[0]  # (200, 3, 32, 32)
    assert images.mean(dim=(0, 2, 3)).abs().max() < 0.15 and (images.std(dim=(0, 2, 3)) - 1).abs().max() < 0.15


def test_augment_settings_are_checked():  # every field and bad value: tests/test_configs.py
    with pytest.raises(ConfigError, match="policy='imagenet' is not allowed; it must be one of rand, cifar10, ''"):
        Augment(policy="imagenet")
    with pytest.raises(ConfigError, match="crop_padding=-1 is not allowed; it must be an integer >= 0"):
        Augment(crop_padding=-1)
