"""The from-scratch data-efficiency study: ViT vs T2T-ViT (Performer and transformer T2T blocks)
vs a CNN baseline, at several training-set fractions, depths and seeds, with the same recipe for
every run, under the protocol a reviewer accepts:

- validation on a class-balanced holdout carved from the training images (`holdout`, on by
  default); the data folder's val/ is the test split, scored once per run at the end;
- arms matched by training compute (`budget_pflop`: every arm the same FLOPs, so a cheaper model
  sees more images) rather than by epochs, and every fraction the same number of updates;
- a MAC-matched ViT arm (`match_macs`): the patch-4 ViT of the same depth whose width the suite
  chooses so its MACs are within 5% of another arm's, to tell "more compute" from "better tokens".

A study is a spec (a preset in bench/presets/ or a TOML file like them) expanded into runs; each run
is a `vitbench train` run folder under OUT/runs/, so an interrupted study resumes run by run. The results are one
row per run (`collect`); its tables, curves and report.md are `bench.report.study`'s.
"""
import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import pandas as pd
import tomli_w

import models
from bench import factory
from bench.accuracy import distributed, train
from bench.accuracy.data import log, scan_dataset
from bench.accuracy.decoded_cache import decoded_split
from bench.accuracy.progress import duration
from bench.accuracy.train_data import file_list_digest, scan_samples
from bench.configs import ArmSpec, SlurmConfig, StudyConfig, StudySpecFile, VariantSpec
from bench.cost.flops import any_model_macs, count_params
from bench.errors import ResultsError
from bench.names import path_name
from bench.outputs import RESUME, OutputFolder, folder_lock, read_back
from bench.processes import worker_pool
from bench.provenance import provenance
from bench.records import repoint
from bench.settings import located_paths, portable_path, portable_paths, read_toml
from models.atomic import atomic_write_text
from models.errors import ConfigError

STUDY_FILE, RESULTS, TABLE = "study.json", "results.csv", "table"
SPEC_TOML = "spec.toml"
SLURM_JOBS = "slurm_jobs"  # study.json's {run name: its Slurm job id and resources} (--launcher slurm)

LENGTHS = ("epochs", "budget_pflop", "budget_minutes")  # how long each run trains: one of them
STUDY_HOLDOUT = 0.1  # studies hold out 10% of each class unless their spec says otherwise
MAC_MATCH_TOLERANCE = 0.05
PRESET_DIR = Path(__file__).resolve().parents[1] / "presets"  # bench/presets/<name>.toml: copy one to start yours


def preset_names():
    return sorted(path.stem for path in PRESET_DIR.glob("*.toml"))


@dataclass(frozen=True)
class Variant:
    """One architecture of the study: an arm at one depth."""

    arm: str
    label: str
    model: str
    depth: int
    overrides: dict = field(hash=False)
    match_macs: str = None  # an arm whose MACs (at this depth) this ViT's width is chosen to match
    init: str = None  # a checkpoint this arm fine-tunes (a pretrained arm); None: from scratch
    train: dict = field(default_factory=dict, hash=False)  # this arm's own training settings (a fine-tune recipe)
    slurm: dict = field(default_factory=dict, hash=False)  # this arm's own Slurm resources over the study's


@dataclass
class Spec:
    variants: list
    fractions: list
    seeds: list
    train: dict
    source: dict = field(default=None, compare=False)  # the spec as written (TOML), changes applied; None: a record
    baseline: str = None  # the spec's `baseline` arm as written; None: derived from the arms (`arm_roles`)

    def runs(self):
        """(variant, fraction, seed) in the order they run: every architecture at seed 0 first."""
        return [(v, f, s) for s in self.seeds for f in self.fractions for v in self.variants]


@dataclass(frozen=True)
class ArmRoles:
    """What each arm of a study is to its report, read from the spec (`arm_roles`), never from the arms' names:
    `baseline`, the arm every other arm is compared with (None: the study has none, so no comparisons), and
    `mac_matched`, the arms with `match_macs` (each a ViT widened to another arm's MACs), in the spec's order."""

    baseline: str | None = None
    mac_matched: tuple = ()


def arm_roles(spec):
    """The `ArmRoles` of `spec`: its `baseline` as written, else the first arm whose model is of the ViT family
    (`models.family_of_model`) trained from scratch at its own width (no `match_macs`, no `init`); its MAC-matched
    arms from `match_macs`. A `baseline` naming no arm of the spec is a one-line ConfigError."""
    arms = list(dict.fromkeys(variant.arm for variant in spec.variants))
    if spec.baseline is not None and spec.baseline not in arms:
        raise ConfigError(f"the study spec's baseline {spec.baseline!r} names no arm of the spec; choose one of "
                          f"{', '.join(map(repr, arms))}, or drop baseline (the default: the first ViT arm trained "
                          "from scratch)")
    baseline = spec.baseline or next((v.arm for v in spec.variants if not v.match_macs and not v.init
                                      and models.family_of_model(v.model, v.overrides) == "vit"), None)
    return ArmRoles(baseline, tuple(dict.fromkeys(v.arm for v in spec.variants if v.match_macs)))


def record_variants(record):
    """The Variants of a spec record (study.json's `spec`, `spec_record`)."""
    return [Variant(v["arm"], v["label"], v["model"], v["depth"], dict(v["overrides"]), v.get("match_macs"),
                    v.get("init"), dict(v.get("train", {})), dict(v.get("slurm", {})))
            for v in record["variants"]]


def recorded_roles(record):
    """The `ArmRoles` of a study from its record (study.json's `spec`): its `baseline` where the spec named one,
    else derived from its variants as `arm_roles` derives it (records before `baseline` existed name none)."""
    return arm_roles(Spec(record_variants(record), [], [], {}, baseline=record.get("baseline")))


def expand_arm(arm):
    """An arm's variants: `depths` sets our models' depth, `variants` lists {depth, model?, overrides?}."""
    where = f"study arm {arm.get('name', arm)!r}"
    checked = within(where, lambda: ArmSpec.from_table(arm, "the arm"))
    check_slurm(checked.slurm, f"study arm {checked.name!r}'s [arms.slurm] table")
    base = checked.overrides
    own = {"init": checked.init, "train": dict(checked.train), "slurm": dict(checked.slurm)}
    check_train_settings(own["train"], f"study arm {checked.name!r}'s train settings")
    check_values(own["train"], f"study arm {checked.name!r}'s [arms.train] table")
    if checked.depths is not None:
        return [Variant(checked.name, checked.label, checked.model, d, {**base, "depth": d}, checked.match_macs, **own)
                for d in checked.depths]
    variants = [within(where, lambda v=v: VariantSpec.from_table(v, "its variants")) for v in checked.variants]
    return [Variant(checked.name, checked.label, v.model or checked.model, v.depth, {**base, **v.overrides}, **own)
            for v in variants]


def within(where, make):
    """`make()`, its one-line ConfigError prefixed with where in the spec it is (an arm, a table)."""
    try:
        return make()
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None


def check_train_settings(settings, what):
    """Training settings of a spec or an arm: TrainConfig fields, none that the study sets per run."""
    per_run = {"model", "data", "out", "seed", "train_fraction", "init"}
    if set(settings) - train.config_fields() or per_run & set(settings):
        raise ConfigError(f"{what} {sorted(settings)} include unknown or per-run keys; use TrainConfig fields other "
                          f"than {', '.join(sorted(per_run))} (an arm's checkpoint is its `init`)")


def check_values(settings, where):
    """Each value of a spec's training settings, as TrainConfig checks it; the one-line error says where it is."""
    within(where, lambda: train.TrainConfig.check_some(settings, where))


def arm_paths(raw, convert, folder):
    """A study TOML's table with each arm's path-valued TrainConfig settings (init) converted by `convert` against
    `folder` (`portable_paths` to write it, `located_paths` to read it)."""
    arms = raw.get("arms")
    if not isinstance(arms, list):
        return raw
    return {**raw, "arms": [convert(train.TrainConfig, arm, folder) if isinstance(arm, dict) else arm for arm in arms]}


def check_slurm(table, where):
    """A spec's [slurm] table or an arm's, each value checked as SlurmConfig checks the --slurm-* flags (read when
    the spec is, so a bad one is refused before anything is written); the one-line error says where it is."""
    try:  # a table already: StudySpecFile and ArmSpec type it
        SlurmConfig.check_some(table, where)
    except ConfigError as error:
        raise ConfigError(str(error) if where in str(error) else f"{where}: {error}") from None


def load_study_spec(preset="cpu-tiny", config=None, **changes):
    """A Spec from a preset or a TOML file (fractions, seeds, [train], [[arms]]), with `changes` (epochs, seeds,
    fractions, arms...) applied."""
    if config:  # an arm's path (init) is relative to the file's folder, as OUT/spec.toml holds it (`arm_paths`)
        raw = arm_paths(read_toml(config, "study"), located_paths, Path(config).parent)
    elif preset in preset_names():
        raw = read_toml(PRESET_DIR / f"{preset}.toml", "study")
    else:
        raise ConfigError(
            f"unknown study preset {preset!r}; choose one of {', '.join(preset_names())} or pass --config FILE.toml"
        )
    for key in ("fractions", "seeds"):
        if changes.get(key):
            raw[key] = changes[key]
    path = config or PRESET_DIR / f"{preset}.toml"
    whole = StudySpecFile.from_table(raw, path, path)  # every key by its type and range
    # a run is named by (arm, depth, fraction, seed): repeats (0 0, or 1 and 1.0) would count one run twice
    raw["fractions"] = list(dict.fromkeys(whole.fractions))
    raw["seeds"] = list(dict.fromkeys(whole.seeds))
    if changes.get("arms"):
        unknown = sorted(set(changes["arms"]) - {a.get("name") for a in raw["arms"]})
        if unknown:
            raise ConfigError(f"unknown study arm(s) {unknown}; this spec has {[a.get('name') for a in raw['arms']]}")
        raw["arms"] = [a for a in raw["arms"] if a.get("name") in changes["arms"]]
    raw["train"] = {"holdout": STUDY_HOLDOUT, **raw.get("train", {}),
                    **{k: v for k, v in changes.get("train", {}).items() if v is not None}}
    given = {k for k, v in changes.get("train", {}).items() if v is not None}
    for length in LENGTHS:  # a length given replaces the spec's
        if length in given:
            raw["train"] = {k: v for k, v in raw["train"].items() if k not in LENGTHS or k == length}
    if len(lengths := [k for k in LENGTHS if k in raw["train"]]) > 1:  # only one can apply: refused up front
        raise ConfigError(f"study train settings set both {lengths[0]} and {lengths[1]}, but a run's length is one of "
                          f"{', '.join(LENGTHS)}; keep one")
    check_train_settings(raw["train"], "study train settings")
    check_values(raw["train"], "the study spec's [train] table")
    check_slurm(raw.get("slurm", {}), "the study spec's [slurm] table")
    variants = [v for arm in raw["arms"] for v in expand_arm(arm)]
    spec = Spec(variants, list(raw["fractions"]), list(raw["seeds"]), raw["train"], source=raw, baseline=whole.baseline)
    run_names(spec)
    arm_roles(spec)  # a baseline naming no arm is refused here, before anything is written
    check_run_configs(spec)
    check_models(spec)
    return spec


def check_models(spec):
    """Every architecture of `spec` built once on the meta device (no memory, no weights): what only building finds
    (heads that do not divide the width, a patch that does not tile the image, a timm CNN's unknown override) is
    refused when the spec is read, before anything is written."""
    import torch

    for variant in spec.variants:
        with torch.device("meta"):
            within(f"study arm {variant.arm!r} (depth {variant.depth})", lambda v=variant: factory.create(
                v.model, v.overrides, 2, variant_img_size(spec, v)))


def check_run_configs(spec):
    """Every run of `spec` is a whole TrainConfig (each value and the cross-field rules of its arm's recipe over the
    study's): checked when the spec is read, so a bad spec is refused before study.json or spec.toml is written and
    the fixed spec then starts the study afresh."""
    for variant, fraction, seed in spec.runs():
        try:
            run_config(spec, "DATA", "OUT", variant, fraction, seed)
        except ConfigError as error:
            raise ConfigError(f"study arm {variant.arm!r} (depth {variant.depth}, fraction {fraction:g}, seed {seed}): "
                              f"{error}") from None


def run_name(variant, fraction, seed):
    return run_folder_name(variant.arm, variant.depth, fraction, seed)


def run_folder_name(arm, depth, fraction, seed):
    """The folder under OUT/runs/ of one run: `<arm>-d<depth>-f<fraction>-s<seed>`. The arm's name (and depth) are
    data from the spec, so the whole is checked to be one plain folder name: never `..`, never `a/b`."""
    path_name(arm, "study arm")
    return path_name(f"{arm}-d{depth}-f{fraction:g}-s{seed}", f"study arm {arm!r}'s run")


def run_names(spec):
    """The run folder of every run of `spec`, in order; a name two runs share (two arms of one name, one depth
    listed twice, fractions equal to 6 digits) is refused before anything trains: they would share one folder."""
    names = [run_name(*run) for run in spec.runs()]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"the study names run {repeated[0]!r} twice (an arm name, depth or fraction repeated); give "
                          "every arm its own name and every run its own depth, fraction and seed")
    return names


def variant_img_size(spec, variant):
    """The side `variant`'s runs train at (as `run_config` resolves it): its arm's, else the study's, else the
    model's own input size."""
    return {**spec.train, **variant.train}.get("img_size") or models.default_img_size(variant.model)


def variant_cost(variant, num_classes, img_size, overrides=None):
    """(params, MACs per image) of `variant`, with `overrides` on top of its own."""
    model = factory.create(variant.model, {**variant.overrides, **(overrides or {})}, num_classes, img_size,
                           drop_path_rate=0.0)
    return count_params(model), any_model_macs(model, img_size)


def counted_costs(spec, num_classes):
    """{variant: (params, macs, embed_dim)} counted from the spec, MAC-matched widths resolved: for runs whose
    summaries predate recording their params and MACs."""
    resolved = dict(zip(spec.variants, resolve_mac_matched(spec, num_classes).variants))
    return {variant: (*variant_cost(actual, num_classes, variant_img_size(spec, actual)),
                      actual.overrides.get("embed_dim"))
            for variant, actual in resolved.items()}


def matching_width(variant, target_macs, num_classes, img_size):
    """(width, MACs) of `variant` closest to `target_macs`: widths step by 8 x heads (heads a multiple of 8 wide)
    unless none comes within the tolerance, then by the head count. MACs grow with width, so each search stops
    once past the target."""
    heads = variant.overrides.get("num_heads") or models.MODEL_CONFIGS[variant.model]["num_heads"]
    for step in (8 * heads, heads):
        best = None
        for width in range(step, 512 * heads + 1, step):
            macs = variant_cost(variant, num_classes, img_size, {"embed_dim": width})[1]
            if best is None or abs(macs - target_macs) < abs(best[1] - target_macs):
                best = (width, macs)
            if macs > target_macs:
                break
        if abs(best[1] / target_macs - 1) <= MAC_MATCH_TOLERANCE:
            break
    return best


def resolve_mac_matched(spec, num_classes):
    """`spec` with each `match_macs` variant widened to the MACs of the arm it names at its depth (within 5%)."""
    resolved = []
    for variant in spec.variants:
        if variant.match_macs is None:
            resolved.append(variant)
            continue
        target = next((v for v in spec.variants if v.arm == variant.match_macs and v.depth == variant.depth), None)
        if target is None or not factory.is_ours(variant.model) or target.match_macs:
            raise ConfigError(f"study arm {variant.arm!r} matches the MACs of {variant.match_macs!r} at depth "
                              f"{variant.depth}, which this study lacks (or is not one of our ViTs); keep that arm "
                              "or drop match_macs")
        target_macs = variant_cost(target, num_classes, variant_img_size(spec, target))[1]
        width, macs = matching_width(variant, target_macs, num_classes, variant_img_size(spec, variant))
        if abs(macs / target_macs - 1) > MAC_MATCH_TOLERANCE:
            raise ConfigError(f"no width of {variant.model} at depth {variant.depth} comes within "
                              f"{MAC_MATCH_TOLERANCE:.0%} of {variant.match_macs}'s {target_macs / 1e6:.1f} M MACs "
                              f"(closest: width {width}, {macs / 1e6:.1f} M); set its embed_dim by hand")
        resolved.append(replace(variant, overrides={**variant.overrides, "embed_dim": width}))
    return replace(spec, variants=resolved)


def data_classes(data):
    return len(scan_dataset(data)["train"].classes)


def spec_record(spec, data):
    """What makes two studies the same study: data, fractions, seeds, training settings, architectures."""
    variants = [
        {"arm": v.arm, "label": v.label, "model": v.model, "depth": v.depth, "overrides": v.overrides,
         **({"match_macs": v.match_macs} if v.match_macs else {}), **({"init": v.init} if v.init else {}),
         **({"train": v.train} if v.train else {}), **({"slurm": v.slurm} if v.slurm else {})}
        for v in spec.variants
    ]
    return {
        "data": str(data),
        "fractions": spec.fractions,
        "seeds": spec.seeds,
        "train": spec.train,
        "variants": variants,
        **({"baseline": spec.baseline} if spec.baseline is not None else {}),  # only as written: old records lack it
    }


def spec_paths(record, convert, out):
    """A spec record (`spec_record`) with every path-valued setting in it converted by `convert` (`portable_paths`:
    relative to the study folder `out`, as study.json holds them; `located_paths`: back against it): the study's own
    (data) and its arms' and recipe's TrainConfig ones (init)."""
    def run(values):
        return convert(train.TrainConfig, values, out)

    variants = [{**run(v), **({"train": run(v["train"])} if "train" in v else {})} for v in record["variants"]]
    return {**convert(StudyConfig, record, out), "train": run(record["train"]), "variants": variants}


def images_of(data):
    """Which images a data folder holds (its class folders and file names, split by split), wherever it lies."""
    scanned = scan_dataset(data)
    return {"classes": list(scanned["train"].classes),
            **{name: file_list_digest(split.samples, data) for name, split in scanned.items()}}


def refuse_other_images(recorded, record, images, out):
    """A study resumes only on its own images, wherever they lie now (`--data`). Records from before `images` was
    kept name their data folder, which must then stay the same."""
    location = Path(located_spec(recorded, out).get("data", ""))
    same_images = recorded.get("images", images if location.resolve() == Path(record["data"]).resolve() else None)
    if same_images != images:
        raise ConfigError(f"{record['data']} holds other images than the study in {out} was run on; resume with "
                          "--data pointing at its images, or use a new --out")


def refuse_other_settings(recorded, record, out):
    """A study resumes only with its own settings: all but where its data lies."""
    def without_data(spec):  # each path as study.json holds it
        return {key: value for key, value in spec_paths(spec, portable_paths, out).items() if key != "data"}

    if without_data(located_spec(recorded, out)) != without_data(train.jsonable(record)):
        raise ConfigError(f"{out} holds a study with other settings; resume it with the same options or use a new "
                          "--out")


def located_spec(recorded, out):
    """The spec of a study.json read back (`recorded`), its paths resolved against the study folder; {} if absent."""
    try:
        return spec_paths(recorded["spec"], located_paths, out)
    except (KeyError, TypeError, AttributeError):
        return {}


def recorded_spec(out):
    """(Spec, data) of the study in `out`, read from its study.json: the study's own record, which every later
    command (--resume, --report-only) follows instead of the command line's defaults."""
    path = Path(out) / STUDY_FILE
    try:
        record = spec_paths(json.loads(path.read_text())["spec"], located_paths, out)
        return Spec(record_variants(record), list(record["fractions"]), list(record["seeds"]), dict(record["train"]),
                    baseline=record.get("baseline")), record["data"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ResultsError(f"{path} is unreadable ({type(error).__name__}: {error}); it cannot be repaired by hand "
                           "reliably: run the study again into a new --out (or --overwrite this one)") from None


def comparable(record):
    """A spec record without what the suite chose itself (a MAC-matched width) or where the data lies."""
    variants = [{**v, "overrides": {k: x for k, x in v["overrides"].items() if not (v.get("match_macs")
                                                                                   and k == "embed_dim")}}
                for v in record["variants"]]
    return train.jsonable({**record, "variants": variants, "data": None})


def refuse_other_spec(out, recorded, flags, whole=None, fractions=None, seeds=None, arms=None, train_settings=None):
    """One line naming what differs when options given with --resume / --report-only disagree with the record:
    a preset or config (`whole`) is compared whole; fractions, seeds, arms and train settings one by one."""
    differ = []
    if whole is not None:
        ours, theirs = comparable(spec_record(whole, "")), comparable(spec_record(recorded, ""))
        differ += [key for key in dict.fromkeys([*theirs, *ours]) if ours.get(key) != theirs.get(key)]
    if fractions and list(dict.fromkeys(map(float, fractions))) != recorded.fractions:
        differ.append("fractions")
    if seeds and list(dict.fromkeys(map(int, seeds))) != recorded.seeds:
        differ.append("seeds")
    if arms and set(arms) != {variant.arm for variant in recorded.variants}:
        differ.append("arms")
    differ += [key for key, value in (train_settings or {}).items()
               if value is not None and recorded.train.get(key) != value]
    if differ:
        raise ConfigError(f"{out} was run with other {', '.join(dict.fromkeys(differ))} than given by "
                          f"{' '.join(flags)}; drop those options (the study's own record in study.json is used) or "
                          "choose another --out")


def is_study_record(path):
    record = json.loads(Path(path).read_text())
    return isinstance(record, dict) and {"spec", "provenance"} <= set(record)


STUDY_FOLDER = OutputFolder(
    kind="study",
    marker=STUDY_FILE,
    holds="a study",
    resume_hint="finish it",
    is_marked=is_study_record,
    written=(
        STUDY_FILE,
        SPEC_TOML,
        RESULTS,
        f"{TABLE}.csv",
        f"{TABLE}.md",
        "report.md",
        "*.png",
        "slurm/*",  # submitit's job pickles and logs (--launcher slurm)
        *(f"runs/*/{name}" for name in train.RUN_FOLDER.written),
    ),
)


def run_study(spec: Spec, data: str | Path, out: str | Path, resume: bool = False, overwrite: bool = False,
              warn=log, jobs: int = 1) -> bool:
    """Train every run of `spec` on `data` into `out`, skipping finished runs; True on the rank that writes.

    `jobs` > 1 trains that many runs at once in separate processes (on a CPU: one thread each is
    the most images per second). Under torchrun every rank runs this; the runs are DDP runs and
    only rank 0 writes.
    """
    out = Path(out)
    context = distributed.setup(spec.train.get("device"))
    with folder_lock(out, "study", take=context.is_main):
        spec, todo = begin_study(spec, data, out, resume, overwrite, context)
        tally = Tally(len(spec.runs()), len(todo), jobs if jobs > 1 and not context.distributed else 1)
        if jobs > 1 and not context.distributed:
            decode_once([config for _, _, config in todo])
            with worker_pool(jobs) as pool:  # an interrupt or a failed run stops every run at once
                for index, name, summary in pool.imap_unordered(train_job, todo):
                    report_run(index, name, summary, tally, warn)
        else:
            for index, name, config in todo:
                summary = train_run(config, tagged(warn, name))
                report_run(index, name, summary, tally, warn if context.is_main else None)
    return context.is_main


def begin_study(spec, data, out, resume, overwrite, context):
    """The study's bookkeeping, under its folder's lock: check the folder (and on --resume the record and every run
    folder), write study.json and spec.toml; returns (spec with MAC-matched widths resolved, [(index, name,
    TrainConfig)] of the runs without a finished summary)."""
    run_names(spec)  # every run its own plain folder under out/runs/, before anything is written
    arm_roles(spec)  # and a baseline that names one of its arms
    mode = STUDY_FOLDER.prepare(out, resume, overwrite, reads=(data,))  # every rank checks: all stop on a refusal
    if any(variant.match_macs for variant in spec.variants):
        spec = resolve_mac_matched(spec, data_classes(data))
    record, jobs = spec_record(spec, data), {}
    if mode == RESUME:
        recorded = read_back(out / STUDY_FILE, "the study's record is lost: run it again into a new --out")
        refuse_other_settings(recorded, record, out)
        # against the study's record: a study copied with its runs and re-pointed (--data) moved them all alike
        check_run_records(spec, located_spec(recorded, out).get("data", data), out)
        if not Path(data).is_dir():
            raise ConfigError(f"the study's data folder {data} (recorded relative to {out}) is not there; resume "
                              "with --data DIR where its images now lie")
        images = images_of(data)
        refuse_other_images(recorded, record, images, out)
        moved = Path(located_spec(recorded, out).get("data", data)).resolve() != Path(data).resolve()
        # the Slurm jobs of the runs that finished stay on record; the others are trained again, maybe elsewhere
        jobs = {name: job for name, job in recorded.get(SLURM_JOBS, {}).items() if finished(out / "runs" / name)}
    else:
        images, moved = images_of(data), False
    distributed.barrier(context)
    if context.is_main:
        STUDY_FOLDER.start(out, resume, overwrite, reads=(data,))
        if moved:  # its runs' images, checked: the study and every run of it now recorded where they lie
            for variant, fraction, seed in spec.runs():
                repoint(out / "runs" / run_name(variant, fraction, seed), "data", data)
        study_record = {"spec": spec_paths(train.jsonable(record), portable_paths, out), "images": images,
                        "provenance": provenance(context.device), **({SLURM_JOBS: jobs} if jobs else {})}
        atomic_write_text(out / STUDY_FILE, json.dumps(study_record, indent=1) + "\n")
        if spec.source is not None:  # `vitbench study --config OUT/spec.toml` runs the same study again
            atomic_write_text(out / SPEC_TOML, tomli_w.dumps(arm_paths(spec.source, portable_paths, out)))
    distributed.barrier(context)
    todo = [(index, run_name(variant, fraction, seed), run_config(spec, data, out, variant, fraction, seed))
            for index, (variant, fraction, seed) in enumerate(spec.runs(), 1)
            if not finished(out / "runs" / run_name(variant, fraction, seed))]
    return spec, todo


def decode_once(configs):
    """Fill the decoded-image cache with every split the runs read (their classes and labels) before parallel
    runs start: each would otherwise decode it too, one image at a time (a pool's worker has no pool of its own)."""
    seen = set()
    for config in configs:
        key = (config.data, tuple(config.classes or ()), config.labels, config.img_size)
        if config.data_mode == "memory" and key not in seen:
            seen.add(key)
            for split in scan_samples(config, log).splits.values():
                decoded_split(split, config.img_size)


def run_config(spec, data, out, variant, fraction, seed):
    folder = Path(out) / "runs" / run_name(variant, fraction, seed)
    # an arm's own recipe (e.g. fine-tuning's) over the study's; its own length replaces the study's
    own_length = any(key in variant.train for key in LENGTHS)
    settings = {**{k: v for k, v in spec.train.items() if not (own_length and k in LENGTHS)}, **variant.train}
    return train.TrainConfig(model=variant.model, data=str(data), out=str(folder), model_args=variant.overrides,
                             seed=seed, train_fraction=fraction, init=variant.init, **settings)


RUN_ONLY = ("out", "threads", "workers", "strict", "checkpoint_every", "checkpoint_minutes")  # not what a run is
LEGACY = {"data_mode": "files"}  # what a run recorded before a setting existed did


def same_setting(key, recorded, expected):
    if expected == "auto":  # data_mode, amp: decided on the machine (and before data_mode, runs read files)
        return True
    if key in ("data", "init") and recorded and expected:  # one folder, typed two ways
        return recorded == expected or os.path.realpath(recorded) == os.path.realpath(expected)
    return recorded == expected


def check_run_records(spec, data, out):
    """Every run folder under out/runs/ that holds a record (config.json) holds the spec's run: its model, settings,
    data and holdout, all but where it lies and how fast it ran. Checked before a study resumes or reports a run:
    a folder that holds another run (an edited spec, a copied folder) would be counted as this one."""
    for variant, fraction, seed in spec.runs():
        expected = train.jsonable(asdict(run_config(spec, data, out, variant, fraction, seed)))
        path = Path(expected["out"]) / train.CONFIG_FILE
        if not path.exists():
            continue
        recorded = read_back(path, f"move {path.parent} away and `vitbench study --resume` trains that run again")
        recorded = located_paths(train.TrainConfig, recorded, path.parent)  # its paths are relative to its folder
        differ = [key for key, value in expected.items() if key not in RUN_ONLY and not same_setting(
            key, recorded.get(key, LEGACY.get(key, train.jsonable(train.TrainConfig.default(key)))), value)]
        if differ:
            raise ResultsError(f"{path.parent} holds another run than the study's {path.parent.name} (its config.json "
                               f"differs in {', '.join(differ)}); move that folder away and `vitbench study --resume` "
                               "trains the study's run")


def tagged(warn, name):
    """`warn` with each line tagged by the run it is about (runs in parallel share one stderr)."""
    return lambda message: warn(f"[{name}] {message}")


def train_run(config, warn=log):
    """One run of a study: resumed from its checkpoint if it has one, else started (replacing a failed start);
    its epoch lines (no per-step lines) go to `warn`."""
    start = time.perf_counter()
    if (Path(config.out) / train.LAST).is_file():
        summary = train.resume(config.out, {"data": config.data}, progress="epochs", warn=warn)  # where it lies now
    else:
        summary = train.start(config, overwrite=True, progress="epochs", warn=warn)
    return {**summary, "wall_s": time.perf_counter() - start}


def read_summary(run, out):
    return read_back(run / train.SUMMARY, f"remove it and run `vitbench study --out {out} --resume`: the run is "
                                          "finished again from its checkpoint")


def finished(run):
    """Has the run written a readable summary? (One that is damaged is finished again from its checkpoint.)"""
    try:
        read_back(run / train.SUMMARY, "")
        return True
    except ResultsError:
        return False


def train_job(job):
    """(index, name, summary) of one (index, name, TrainConfig) job, in a worker process."""
    index, name, config = job
    return index, name, train_run(config, tagged(log, name))


@dataclass
class Tally:
    """How far a study is: runs in all, left to train when it (re)started, at once; wall time of those done."""

    total: int
    todo: int
    jobs: int
    walls: list = field(default_factory=list)

    def line(self):
        """'[study] 6/15 runs done, 2 running, 7 waiting; ETA 52 min' (at the mean wall time of this start's runs)."""
        left = self.todo - len(self.walls)
        running = min(self.jobs, left)
        done = self.total - left
        eta = sum(self.walls) / len(self.walls) * left / self.jobs
        return (f"[study] {done}/{self.total} runs done, {running} running, {left - running} waiting; "
                f"ETA {duration(eta)}")


def report_run(index, name, summary, tally, warn):
    tally.walls.append(summary["wall_s"])
    if warn:
        flag = " [stayed on the initial plateau]" if summary["health"]["plateau"] else ""
        test = "not scored" if summary["test_top1"] is None else f"{summary['test_top1']:.1f}%"
        warn(f"[{index}/{tally.total}] {name}: {summary['selection']} top-1 {summary['top1']:.1f}%, test top-1 "
             f"{test} ({summary['train_images']} train images, {summary['epochs_trained']:.2f} "
             f"epochs, {summary['train_pflop']:.4f} PFLOP, {summary['wall_s']:.0f} s){flag}")
        warn(tally.line())


def collect(spec, out):
    """One row per finished run, with its architecture's params and MACs as the run counted them."""
    if (Path(out) / STUDY_FILE).is_file():  # runs are checked against the study's own record (widths resolved)
        check_run_records(*recorded_spec(out), out)
    rows = []
    counted = None  # counted once, only for runs older than their summary's params and MACs
    for variant, fraction, seed in spec.runs():
        path = Path(out) / "runs" / run_name(variant, fraction, seed) / train.SUMMARY
        if not path.is_file():
            continue
        summary = read_summary(path.parent, out)
        if "forward_macs" in summary:
            params, macs, embed_dim = summary["params"], summary["forward_macs"], summary["model_args"].get("embed_dim")
        else:
            counted = counted or counted_costs(spec, summary["classes"])
            params, macs, embed_dim = counted[variant]
        rows.append(
            {
                "arm": variant.arm,
                "label": variant.label,
                "model": variant.model,
                "depth": variant.depth,
                "embed_dim": embed_dim or models.MODEL_CONFIGS.get(variant.model, {}).get("embed_dim"),  # None: a CNN
                "fraction": fraction,
                "seed": seed,
                "classes": summary["classes"],
                "train_images": summary["train_images"],
                "selection": summary.get("selection", "test"),  # studies before the holdout chose on test
                # the checkpoint a pretrained arm fine-tuned, relative to the study folder; empty: from scratch
                "init": portable_path(variant.init, out) or "",
                "val_images": summary["val_images"],
                "epochs": summary.get("epochs_trained", summary["epochs"]),
                "updates": summary.get("updates"),
                "train_pflop": summary.get("train_pflop"),
                "params": params,
                "macs": macs,
                "val_top1": summary["top1"],  # the last per-epoch score: holdout (or test, before the holdout)
                "test_top1": summary.get("test_top1", summary["top1"]),
                "test_top5": summary.get("test_top5", summary["top5"]),
                "test_images": summary.get("test_images", summary["val_images"]),
                "test_best_top1": summary.get("test_best", summary["best"])["top1"],
                "test_subset_top1": summary.get("test_subset_top1"),  # None: no test_subset (or a run before it)
                "test_subset_images": summary.get("test_subset_images"),
                "lr": summary.get("lr"),
                "warmup_share": (summary["plan"]["warmup_updates"] / summary["plan"]["total_updates"]
                                 if "plan" in summary else None),
                "train_images_per_s": summary["train_images_per_s"],
                "train_time_s": summary["train_time_s"],
                "train_flop_s": (summary.get("utilisation") or {}).get("train_flop_s"),  # None: runs before it
                "mfu": summary.get("mfu"),
                "skipped_files": len(summary["skipped_files"]),
                "plateau": summary.get("health", {}).get("plateau", False),
            }
        )
    if not rows:
        raise ResultsError(f"{out} has no finished runs yet; run the study first")
    return pd.DataFrame(rows)
