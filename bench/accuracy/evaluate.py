"""Top-1, top-5, per-class accuracy and the confusion matrix of a model on a dataset split.

`vitbench eval` evaluates a checkpoint written by `vitbench train`, or a local pretrained file
(reference T2T-ViT `.pth.tar`, a timm ViT or ResNet state dict) given `--model`. A 1000-class
ImageNet checkpoint evaluated on an ImageNet subset (synset folders) is scored on the subset's
classes only, by selecting their logits, so from-scratch and pretrained starts compare directly.
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F

import models
from bench import factory
from bench.accuracy import distributed
from bench.accuracy.data import (
    BadFileLog,
    ImageFolderDataset,
    build_loader,
    eval_transform,
    keep_classes,
    log,
    named_subset,
    scan_split,
)
from bench.accuracy.normalisation import init_normalisation, normalisation, set_normalisation
from bench.configs import EvalConfig
from bench.errors import DatasetError
from models.checkpoint import open_checkpoint
from models.errors import CheckpointError, ConfigError, short_list
from models.tokenizers import MAX_IMG_SIDE


def evaluate(model, loader, num_classes, context, bad_files, amp_dtype=None, class_index=None):
    """Metrics of `model` over the whole split, summed across ranks: every rank returns the same dict.

    `class_index` selects logit columns (a 1000-class model scored on a subset's classes).
    """
    return evaluate_together({"model": model}, loader, num_classes, context, bad_files, amp_dtype, class_index)["model"]


@torch.no_grad()
def evaluate_together(named_models, loader, num_classes, context, bad_files, amp_dtype=None, class_index=None,
                      per_image=False):
    """{name: metrics} of several models over one pass of `loader`: each batch is read once and scored by
    every model (a run scores its final and its best weights on the test split in one reading).

    `per_image` (one process only) adds each model's predicted class per image, in the loader's order, and the
    labels (`targets`), so two runs scored on the same split can be compared image by image."""
    device = context.device
    counts, predicted, labels = {}, {name: [] for name in named_models}, []
    for name, model in named_models.items():
        model.eval()
        counts[name] = (torch.zeros(num_classes * num_classes, dtype=torch.long, device=device),  # (true, pred)
                        torch.zeros(3, dtype=torch.float64, device=device))  # loss sum, top-5 hits, images
    columns = None if class_index is None else torch.as_tensor(class_index, device=device)
    top_k = min(5, num_classes)
    for images, targets, bad in loader:
        bad_files.record(bad)
        if images is None:
            continue
        images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        labels.append(targets.cpu())
        for name, model in named_models.items():
            confusion, totals = counts[name]
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits = model(images)
            logits = logits.float() if columns is None else logits.float()[:, columns]  # (B, num_classes)
            hits5 = (logits.topk(top_k, dim=1).indices == targets[:, None]).any(dim=1)
            totals += torch.stack([F.cross_entropy(logits, targets, reduction="sum").double(), hits5.sum().double(),
                                   torch.tensor(float(len(targets)), dtype=torch.float64, device=device)])
            confusion += torch.bincount(targets * num_classes + logits.argmax(dim=1), minlength=num_classes**2)
            predicted[name].append(logits.argmax(dim=1).cpu())
    results = {}
    for name, (confusion, totals) in counts.items():
        distributed.all_reduce_sum(confusion, context)
        distributed.all_reduce_sum(totals, context)
        results[name] = metrics_from_counts(confusion.view(num_classes, num_classes).cpu(), totals.cpu())
        if per_image and not context.distributed:
            results[name].update(predictions=torch.cat(predicted[name]).numpy(), targets=torch.cat(labels).numpy())
    return results


def metrics_from_counts(confusion, totals):
    """Scores from a (true, predicted) confusion matrix; a class with no image has no accuracy (None), not 0."""
    loss_sum, hits5, images = totals.tolist()
    per_class_images = confusion.sum(dim=1)
    per_class = [None if n == 0 else hits / n * 100
                 for hits, n in zip(confusion.diag().tolist(), per_class_images.tolist())]
    return {
        "images": int(images),
        "loss": loss_sum / images if images else float("nan"),
        "top1": confusion.diag().sum().item() / images * 100 if images else float("nan"),
        "top5": hits5 / images * 100 if images else float("nan"),
        "per_class_top1": per_class,
        "per_class_images": per_class_images.tolist(),
        "confusion": confusion.tolist(),
    }


def unmeasured_classes(classes, metrics):
    """Names of the classes that had no (readable) image in a split: their accuracy is n/a."""
    return [name for name, n in zip(classes, metrics["per_class_images"]) if n == 0]


def warn_unmeasured(classes, missing, split, warn):
    """Warn that the `missing` (`unmeasured_classes`) of `classes` had no readable image in `split`."""
    if missing:
        warn(f"warning: {split} has no readable image of {short_list(missing)}; their accuracy is n/a and top-1 is "
             f"over the other {len(classes) - len(missing)} classes")
    return missing


def imagenet_synsets():
    from timm.data import ImageNetInfo

    return ImageNetInfo().label_names()


@dataclass
class Loaded:
    model: torch.nn.Module
    class_index: list  # logit columns of the dataset's classes, None when the head matches them
    img_size: int
    transform: dict  # interpolation and crop_pct of the eval transform (None: the model's)
    normalisation: dict  # input mean/std and where they came from


RECORD_SIZE_MAX = {"img_size": MAX_IMG_SIDE, "depth": 1024}  # other whole numbers of a record: at most 65536


def refuse_lying_record(checkpoint, num_classes, size):
    """A run's checkpoint rebuilds its model from its record (`build`), which is as untrusted as the file: its sizes
    are bounded, then the model is built on the meta device (no memory) and checked against the file's tensors."""
    path, build = checkpoint.path, checkpoint.record
    if not isinstance(build.get("overrides"), dict) or not isinstance(build.get("model"), str):
        raise CheckpointError(f"{path}'s record names no model and overrides: the file is damaged or not vitbench's; "
                              "evaluate another checkpoint of the run")
    sizes = {"img_size": size, **{k: v for k, v in build["overrides"].items() if type(v) is int}}
    for key, value in sizes.items():
        if type(value) is not int or not 0 <= value <= RECORD_SIZE_MAX.get(key, 65536):
            raise CheckpointError(f"{path}'s record has {key}={value!r}, out of range: the file is damaged or not "
                                  "vitbench's; evaluate another checkpoint of the run")
    try:
        with torch.device("meta"):
            model = factory.create(build["model"], build["overrides"], num_classes, size, drop_path_rate=0.0)
        shapes = model.state_dict()
    except Exception as e:  # any record the factory refuses
        raise CheckpointError(f"{path}'s record builds no model ({str(e).splitlines()[0] if str(e) else e!r}); "
                              "evaluate another checkpoint of the run") from None
    tensors = checkpoint.state_dict()
    wrong = [f"{key}: {tuple(value.shape)} by the record, {tuple(tensors[key].shape)} in the file"
             for key, value in shapes.items()
             if key in tensors and key != "pos_embed" and tuple(tensors[key].shape) != tuple(value.shape)]
    wrong += [f"{key} only by the record" for key in sorted(set(shapes) - set(tensors))]
    wrong += [f"{key} only in the file" for key in sorted(set(tensors) - set(shapes))]
    if wrong:
        raise CheckpointError(f"{path}'s record ({build['model']}, {build['overrides']}) disagrees with its tensors "
                              f"({wrong[0]}; {len(wrong)} in all); evaluate another checkpoint of the run")


def model_for_checkpoint(path, classes, model_name=None, img_size=None, overrides=None, use_ema=False, warn=log):
    """The model of checkpoint `path` with its weights, ready to be scored on `classes`.

    A `vitbench train` checkpoint rebuilds itself from its saved settings (eval transform
    included) and must have been trained on the same classes; any other file needs `model_name`,
    and its head must either match the class count or be a 1000-class ImageNet head over
    synset-named classes.
    """
    checkpoint = open_checkpoint(path)  # the one read of the file
    build = checkpoint.record
    if build:
        if model_name and model_name != build["model"]:
            raise CheckpointError(
                f"{path} was trained as {build['model']}, not {model_name}; "
                f"drop --model or pass --model {build['model']}"
            )
        if build["classes"] != list(classes):
            only_checkpoint = set(build["classes"]) - set(classes)
            only_data = set(classes) - set(build["classes"])
            differ = (f"only in checkpoint: {short_list(only_checkpoint)}; only in data: {short_list(only_data)}"
                      if only_checkpoint or only_data else "the same classes in another order")
            raise CheckpointError(
                f"{path} was trained on other classes than the data's ({differ}); evaluate on the dataset it was "
                "trained on, or fine-tune it with `vitbench train --init`"
            )
        size = img_size or build["img_size"]
        refuse_lying_record(checkpoint, len(classes), size)
        model = factory.create(build["model"], build["overrides"], len(classes), size, drop_path_rate=0.0)
        checkpoint.load_into(model, use_ema)
        recorded = build.get("normalisation")  # runs before it used the model's default
        normalised = (set_normalisation(model, recorded["mean"], recorded["std"], recorded["source"])
                      if recorded else set_normalisation(model, *normalisation(model), "model default"))
        return Loaded(model, None, size, build.get("eval_transform", {}), normalised)
    if not model_name:
        raise ConfigError(
            f"{path} was not written by `vitbench train`; pass --model NAME to say which architecture it holds"
        )
    size = img_size or models.default_img_size(model_name)  # the model's own input size, as training's
    probe = factory.create(model_name, overrides, len(classes), size, drop_path_rate=0.0)
    checkpoint_classes = checkpoint.head_classes(probe)
    class_index = None
    if checkpoint_classes not in (None, len(classes)):
        synsets = imagenet_synsets()
        if checkpoint_classes != len(synsets) or not set(classes) <= set(synsets):
            raise CheckpointError(
                f"{path} has a {checkpoint_classes}-class head but the dataset has {len(classes)} classes that are not "
                "all ImageNet synsets; fine-tune it with `vitbench train --init` first"
            )
        probe = factory.create(model_name, overrides, checkpoint_classes, size, drop_path_rate=0.0)
        class_index = [synsets.index(name) for name in classes]
    checkpoint.load_into(probe, use_ema)
    return Loaded(probe, class_index, size, {}, init_normalisation(probe, checkpoint, warn=warn))


def run_eval(config: EvalConfig, warn=log) -> dict:
    """Score `config.checkpoint` on DATA/split; the config's interpolation and crop_pct override the run's."""
    context = distributed.setup(config.device)
    found = scan_split(config.data, config.split)
    if config.classes:  # the class folders a run trained on, chosen (and ordered) as `vitbench train` chose them
        found = keep_classes(found, config.classes)
    loaded = model_for_checkpoint(config.checkpoint, found.classes, config.model, config.img_size, config.model_args,
                                  config.ema, warn if context.is_main else lambda message: None)
    given = {"interpolation": config.interpolation, "crop_pct": config.crop_pct}
    settings = {**loaded.transform, **{k: v for k, v in given.items() if v is not None}}
    transform = eval_transform(loaded.model, loaded.img_size, **settings)
    bad_files = BadFileLog(config.strict, warn)

    def score(samples):
        dataset = ImageFolderDataset(samples, found.classes, transform)
        loader = build_loader(dataset, config.batch_size, distributed.ShardSampler(len(dataset), context),
                              config.workers)
        return evaluate(loaded.model.to(context.device), loader, len(found.classes), context, bad_files,
                        class_index=loaded.class_index)

    result = score(found.samples)
    subset = score(named_subset(found.samples, config.test_subset)) if config.test_subset else None
    if result["images"] == 0:
        raise DatasetError(f"no image in {found.root} could be decoded; check the files")
    warn_unmeasured(found.classes, unmeasured_classes(found.classes, result), found.root,
                    warn if context.is_main else lambda message: None)
    skipped = distributed.all_gather_objects(bad_files.seen, context)
    return {
        "checkpoint": str(config.checkpoint),
        "data": str(config.data),
        "split": config.split,
        "classes": found.classes,
        "subset_of_imagenet_head": loaded.class_index is not None,
        "normalisation": loaded.normalisation,
        **result,
        "test_subset": subset and {"pattern": config.test_subset, "images": subset["images"], "top1": subset["top1"],
                                   "top5": subset["top5"], "loss": subset["loss"]},
        "test_subset_top1": subset and subset["top1"],
        "test_subset_images": subset and subset["images"],
        "skipped_files": {path: reason for seen in skipped for path, reason in seen.items()},
    }


def format_report(result, max_confusion=20):
    lines = [
        f"{result['split']}: {result['images']} images, top-1 {result['top1']:.2f}%, top-5 {result['top5']:.2f}%, "
        f"loss {result['loss']:.4f}"
        + (f", {len(result['skipped_files'])} unreadable files skipped" if result["skipped_files"] else "")
    ]
    if result.get("test_subset"):
        subset = result["test_subset"]
        lines.append(f"  of which {subset['pattern']}: {subset['images']} images, top-1 {subset['top1']:.2f}%, "
                     f"top-5 {subset['top5']:.2f}%")
    if result.get("normalisation"):
        lines.append(f"  normalised with mean {result['normalisation']['mean']}, std {result['normalisation']['std']} "
                     f"({result['normalisation']['source']})")
    width = max(len(name) for name in result["classes"])
    lines += [
        f"  {name:<{width}}  {'n/a' if acc is None else f'{acc:6.2f}%':>7}  ({n} images)"
        for name, acc, n in zip(result["classes"], result["per_class_top1"], result["per_class_images"])
    ]
    if len(result["classes"]) <= max_confusion:
        lines.append("confusion matrix (rows: true class, columns: predicted):")
        lines += ["  " + " ".join(f"{count:5d}" for count in row) for row in result["confusion"]]
    return "\n".join(lines)
