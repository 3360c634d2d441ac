"""Named ImageNet subsets built from a local ImageNet root as symlinks (or copies) plus a manifest.

`imagenette` and `imagewoof` are fast.ai's 10-class subsets, `imagenet100` the 100-class list of
CMC (Tian et al. 2019), `random-N` N classes drawn with a seed. Any of them can be cut to K train
images per class or a fraction of each class, deterministically by seed; val is kept whole.
The manifest records the class list, counts per split and a SHA-256 per file.
"""
import contextlib
import datetime
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from bench.accuracy.data import SPLITS, check_cut, scan_dataset, select_per_class
from bench.errors import DatasetError
from bench.outputs import OVERWRITE, OutputFolder
from models.atomic import atomic_write_text, umask_mode
from models.errors import short_list

NAMED_SUBSETS = {
    "imagenette": (
        "n01440764 n02102040 n02979186 n03000684 n03028079 n03394916 n03417042 n03425413 n03445777 n03888257"
    ).split(),
    "imagewoof": (
        "n02086240 n02087394 n02088364 n02089973 n02093754 n02096294 n02099601 n02105641 n02111889 n02115641"
    ).split(),
    "imagenet100": """
        n02869837 n01749939 n02488291 n02107142 n13037406 n02091831 n04517823 n04589890 n03062245
        n01773797 n01735189 n07831146 n07753275 n03085013 n04485082 n02105505 n01983481 n02788148
        n03530642 n04435653 n02086910 n02859443 n13040303 n03594734 n02085620 n02099849 n01558993
        n04493381 n02109047 n04111531 n02877765 n04429376 n02009229 n01978455 n02106550 n01820546
        n01692333 n07714571 n02974003 n02114855 n03785016 n03764736 n03775546 n02087046 n07836838
        n04099969 n04592741 n03891251 n02701002 n03379051 n02259212 n07715103 n03947888 n04026417
        n02326432 n03637318 n01980166 n02113799 n02086240 n03903868 n02483362 n04127249 n02089973
        n03017168 n02093428 n02804414 n02396427 n04418357 n02172182 n01729322 n02113978 n03787032
        n02089867 n02119022 n03777754 n04238763 n02231487 n03032252 n02138441 n02104029 n03837869
        n03494278 n04136333 n03794056 n03492542 n02018207 n04067472 n03930630 n03584829 n02123045
        n04229816 n02100583 n03642806 n04336792 n03259280 n02116738 n02108089 n03424325 n01855672
        n02090622
    """.split(),
}
MANIFEST = "manifest.json"


def subset_names():
    return [*NAMED_SUBSETS, "random-N"]


def random_count(name):
    """N for a `random-N` name, None for a named subset; any other name raises."""
    if name in NAMED_SUBSETS:
        return None
    match = re.fullmatch(r"random-(\d+)", name)
    if not match:
        raise DatasetError(f"unknown subset {name!r}; choose one of {', '.join(subset_names())} (e.g. random-50)")
    return int(match[1])


def resolve_classes(name, available, seed=0):
    """The sorted class list of subset `name`, given the classes the root has."""
    count = random_count(name)
    if count is None:
        wanted = NAMED_SUBSETS[name]
        missing = sorted(set(wanted) - set(available))
        if missing:
            raise DatasetError(
                f"the root lacks {len(missing)} of {name}'s {len(wanted)} classes ({short_list(missing)}); "
                "point --root at a full ImageNet copy with synset folders (train/n01440764/...)"
            )
        return sorted(wanted)
    if not 1 <= count <= len(available):
        raise DatasetError(
            f"{name} asks for {count} classes but the root has {len(available)}; "
            f"use random-1 to random-{len(available)}"
        )
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(sorted(available), size=count, replace=False).tolist())


def class_label(wnid):
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    names = info.label_names()
    return info.index_to_description(names.index(wnid)) if wnid in names else None


def sha256(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def is_manifest(path):
    manifest = json.loads(Path(path).read_text())
    return isinstance(manifest, dict) and {"name", "created", "classes", "counts", "files"} <= set(manifest)


def manifest_files(out):
    """The files a dataset's manifest lists (hashed or not): what vitbench wrote there."""
    return set(json.loads((Path(out) / MANIFEST).read_text())["files"])


DATASET_FOLDER = OutputFolder(
    kind="dataset",
    marker=MANIFEST,
    holds="a dataset built by vitbench",
    is_marked=is_manifest,
    written=(MANIFEST,),
    listed=manifest_files,
    error=DatasetError,
)


@contextlib.contextmanager
def staged(out, overwrite, reads=()):
    """A staging folder beside `out` (checked against the output policy first, `reads` included) that becomes `out`
    only when the body finishes; a dataset replaced with `overwrite` is removed just before."""
    out = Path(out)
    mode = DATASET_FOLDER.prepare(out, overwrite=overwrite, reads=reads)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    staging.chmod(umask_mode("dir"))  # mkdtemp's 0700 would hide the dataset from a group folder's members
    try:
        yield staging
        if mode == OVERWRITE:
            DATASET_FOLDER.clear(out)
        elif out.exists():
            out.rmdir()  # empty: prepare refuses anything else
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def build_subset(root: str | Path, name: str, out: str | Path, per_class: int | None = None,
                 fraction: float | None = None, seed: int = 0, copy: bool = False, overwrite: bool = False,
                 hash_files: bool = True, progress=None) -> dict:
    """Build subset `name` of ImageNet-style `root` into `out`; returns the manifest dict."""
    random_count(name)  # fail on a bad name before scanning a large root
    cut = per_class is not None or fraction is not None
    if cut:
        check_cut(per_class, fraction)
    DATASET_FOLDER.prepare(out, overwrite=overwrite, reads=(root,))  # refuse before scanning a large root
    scanned = scan_dataset(root)
    classes = resolve_classes(name, scanned["train"].classes, seed)
    chosen = set(classes)
    manifest = {
        "name": name,
        "source": str(Path(root).resolve()),
        "seed": seed,
        "per_class": per_class,
        "fraction": fraction,
        "link": "copy" if copy else "symlink",
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "classes": [{"wnid": wnid, "label": class_label(wnid)} for wnid in classes],
        "counts": {},
        "files": {},
    }
    with staged(out, overwrite, reads=(root,)) as staging:
        for split in SPLITS:
            found = scanned[split]
            samples = [
                (path, classes.index(found.classes[t])) for path, t in found.samples if found.classes[t] in chosen
            ]
            if split == "train" and cut:
                samples = select_per_class(samples, classes, per_class, fraction, seed)
            counts = np.bincount([t for _, t in samples], minlength=len(classes))
            manifest["counts"][split] = dict(zip(classes, counts.tolist()))
            for path, target in samples:
                relative = Path(split) / classes[target] / Path(path).relative_to(found.root / classes[target])
                destination = staging / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                if copy:
                    shutil.copy2(path, destination)
                else:
                    os.symlink(os.path.abspath(path), destination)
                manifest["files"][relative.as_posix()] = sha256(path) if hash_files else None
                if progress:
                    progress()
        atomic_write_text(staging / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    return manifest
