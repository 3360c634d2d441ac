"""The typed config of each job (train, eval, study, sweep, profile): the one place for its defaults,
types, ranges and cross-field rules. The CLI's flags and help are generated from these classes
(`bench.settings.add_flags`); a flag never has a default of its own.

Upper bounds are generous but finite, so a typo such as batch_size=1e9 is refused before it allocates.
"""
import re
from dataclasses import dataclass

from bench.settings import Settings, setting

SEED_MAX = 2**32 - 1  # numpy's seed range
RATE = dict(low=0.0, below=1.0)  # dropout, smoothing, ...: [0, 1)
PROBABILITY = dict(low=0.0, high=1.0)
FRACTION = dict(above=0.0, high=1.0)  # (0, 1]
LR = dict(low=0.0, high=10.0)  # 0 keeps the weights as loaded (a frozen fine-tune check)
DEVICE = re.compile(r"cpu|cuda(:\d+)?|mps")
AMP = ("auto", "bf16", "fp16", "off")
DATA_MODES = ("auto", "memory", "files")
INTERPOLATIONS = ("bicubic", "bilinear", "nearest")
DEVICES = ("cpu", "cuda")  # what a timing runs on
DTYPES = ("float32", "bfloat16", "float16")
ALLOCATORS = ("steady", "system")
MODES = ("inference", "train")
LAUNCHERS = ("local", "slurm")  # where a study's runs train
SWEEP_FAMILIES = ("vit", "t2t-performer", "t2t-transformer")  # the tokenizer families a sweep varies
MEASUREMENTS = ("params", "macs", "throughput", "tokenizer_time", "memory", "max_batch")
PAPER_BATCH = 512  # the paper's learning rates are for a global batch of 512
PAPER_LR, PAPER_MIN_LR = 5e-4, 1e-5  # and its cosine decays from 5e-4 to 1e-5
SMALL_T2T = ("t2t_vit_7", "t2t_vit_10", "t2t_vit_12")  # lr 1e-3, wd .03 in the paper; larger models 5e-4, .05


class ImageSide:
    """A job's square image side (`--img-size`) by the one image-size check, `models.tokenizers.is_img_side`
    (imported when a config is checked: building the parsers stays torch-free). Unset: the model's own input size
    (`models.default_img_size`)."""

    def __call__(self, value):
        from models.tokenizers import is_img_side

        return is_img_side(value)

    def __str__(self):
        from models.tokenizers import MAX_IMG_SIDE

        return f"an integer >= 1 and <= {MAX_IMG_SIDE}"


IMG_SIDE = ImageSide()


def check_device(config, device):
    if device is not None and not DEVICE.fullmatch(device):
        config.fail(f"device={device!r} is not allowed; it must be cpu, cuda or cuda:N")


def check_model_args(config):
    """Our model's settings (model_args) by the models' one check, `models.resolve_config`, when the config is made,
    so a bad one is refused before a run or a study writes anything (a timm model's are timm's to check)."""
    if config.model_args and config.model:
        import models  # here: building the parsers stays torch-free
        from models.errors import ConfigError

        if config.model in models.MODEL_CONFIGS:
            try:
                models.resolve_config(config.model, **config.model_args)
            except ConfigError as error:  # its own kind (UnknownOptionError is a TypeError too, as timm's)
                raise type(error)(f"{config.JOB}: model_args: {error}") from None


def test_subset_setting():
    """A named part of the scored split, scored again on its own (train and eval share this one definition)."""
    return setting(None, "also score the test split's images whose file name matches this glob, e.g. "
                   "'ILSVRC2012_val_*' (Imagenette's val images an ImageNet-1k model has not trained on)")


def check_test_subset(config):
    pattern = config.test_subset
    if pattern is not None and (not pattern.strip() or "/" in pattern or "\\" in pattern):
        config.fail(f"test_subset={pattern!r} is not a file-name glob; give one without folders, e.g. "
                    "'ILSVRC2012_val_*'")


@dataclass
class TrainConfig(Settings):
    """Every setting of a run; saved in RUN/config.json (the record) and RUN/config.toml (to start another).
    Defaults are the T2T-ViT paper's recipe."""

    JOB = "train"
    ONE_OF = (("epochs", "budget_pflop", "budget_minutes"),)  # a run's length: a later source's replaces the group
    model: str = setting(None, "our name (vitbench list) or a timm CNN such as resnet18")
    data: str = setting(None, "folder with train/<class>/* and val/<class>/* (or an Imagenette/Tiny-ImageNet folder)",
                         path=True)
    out: str = setting(None, "run folder (config, metrics, checkpoints, summary)", path=True)
    model_args: dict = setting(help="model override, e.g. depth=4 (repeatable)", flag="model-arg", factory=dict)
    epochs: int = setting(310, "the run's length, unless a budget is given", low=1, high=100_000)
    budget_pflop: float | None = setting(None, "train for this much compute instead: forward MACs x 6 x images "
                                         "seen, in PFLOP; the cosine ends there", above=0.0, high=1e9)
    budget_minutes: float | None = setting(None, "or for this many minutes (a measured step time converted to "
                                           "updates once)", above=0.0, high=1e7)
    batch_size: int = setting(128, "images per step per process (the global batch is this x world size)", low=1,
                              high=65536)
    img_size: int | None = setting(None, "square training and test image side (default: the model's input size, "
                                   "its timm pretrained_cfg's: 32 for the CIFAR models, 224 for the paper's)",
                                   check=IMG_SIDE)
    lr: float | None = setting(None, "absolute learning rate (default: base_lr x global batch / 512)", **LR)
    base_lr: float | None = setting(None, "lr at global batch 512 (default 1e-3 for T2T-ViT-7/10/12, else 5e-4, "
                                    "the paper's)", **LR)
    weight_decay: float | None = setting(None, "AdamW weight decay (default .03 for T2T-ViT-7/10/12, else .05)",
                                         low=0.0, high=10.0)
    min_lr: float | None = setting(None, "floor of the cosine (default 1e-5, scaled down with an lr below 5e-4)",
                                   low=0.0, high=10.0)
    warmup_lr: float = setting(1e-6, "start of the warm-up (capped at the lr)", low=0.0, high=10.0)
    warmup_epochs: float = setting(5.0, "linear warm-up; at most 20% of the run (a longer one is shortened)",
                                   low=0.0, high=100_000)
    warmup_share: float | None = setting(None, "or a warm-up of this share of the run's updates, e.g. 0.05 (the "
                                         "same share at every budget and fraction)", low=0.0, high=0.2)
    clip_grad: float | None = setting(None, "max gradient norm (default: none, as the paper)", above=0.0, high=1e6)
    drop_path: float = setting(0.1, "stochastic depth rate", **RATE)
    smoothing: float = setting(0.1, "label smoothing", **RATE)
    mixup: float = setting(0.8, "Mixup alpha (0 disables)", low=0.0, high=100.0)
    cutmix: float = setting(1.0, "CutMix alpha (0 disables)", low=0.0, high=100.0)
    auto_augment: str = setting("rand-m9-mstd0.5-inc1", "timm RandAugment spec ('' disables)", empty=True)
    reprob: float = setting(0.25, "random erasing probability", **PROBABILITY)
    scale: tuple[float, float] = setting((0.08, 1.0), "random resized crop: area range", **FRACTION)
    ratio: tuple[float, float] = setting((3 / 4, 4 / 3), "random resized crop: aspect-ratio range", above=0.0,
                                         high=100.0)
    hflip: float = setting(0.5, "horizontal flip probability", **PROBABILITY)
    color_jitter: float = setting(0.4, "colour jitter strength", **PROBABILITY)
    interpolation: str | None = setting(None, "resize interpolation (default: the model's, bicubic for ours)",
                                        choices=INTERPOLATIONS)
    crop_pct: float | None = setting(None, "eval centre-crop fraction (default: the model's, 0.9 for ours)",
                                     **FRACTION)
    ema_decay: float | None = setting(None, "keep an EMA of the weights with this decay (e.g. 0.99996)", above=0.0,
                                      below=1.0)
    amp: str = setting("auto", "mixed precision; auto = bf16 on a CUDA GPU with bf16 and, for transformers of "
                       "width >= 192, on a CPU with native bf16 (avx512_bf16/amx_bf16); else off (fp32)", choices=AMP)
    compile: bool = setting(False, "torch.compile the model")
    log: str | None = setting(None, "also log per-step loss, lr, grad norm, img/s and per-epoch metrics for "
                              "TensorBoard in OUT/tensorboard/ or W&B in OUT/wandb/ (WANDB_MODE=offline: no "
                              "account; the wandb extra)", choices=("tensorboard", "wandb"))
    seed: int = setting(0, "seed of the weights, batches and augmentation", low=0, high=SEED_MAX)
    workers: int = setting(2, "data loader processes per rank", low=0, high=256)
    holdout: float | None = setting(None, "validation carved from train/: a fraction in (0, 1) or an image count, "
                                    "e.g. 5000; then val/ is the test split, scored once at the end", above=0.0,
                                    high=1e9)
    test: bool = setting(True, "score the test split once at the end (false: a recipe sweep that chooses on the "
                         "holdout and never reads the test split; needs a holdout)")
    holdout_seed: int = setting(0, "seed of the holdout (the same for every seed of a study)", low=0, high=SEED_MAX)
    validations: int | None = setting(None, "validate at most this many times per run, evenly and always at the "
                                      "end (default: every epoch)", low=1, high=1_000_000)
    checkpoint_every: int | None = setting(None, "also save last.pth every N updates mid-epoch (a run resumes "
                                           "exactly from it; default: at epoch ends only)", low=1, high=10**9)
    checkpoint_minutes: float | None = setting(None, "or every this many minutes mid-epoch", above=0.0, high=1e7)
    classes: list[str] | None = setting(None, "train and test on these class folders only (default: all)")
    labels: str | None = setting(None, "train on this column of the data folder's noisy_*.csv, e.g. "
                                 "noisy_labels_5 (Imagenette)")
    train_fraction: float | None = setting(None, "train on this fraction of each class (after the holdout)",
                                           **FRACTION)
    train_per_class: int | None = setting(None, "or on K images per class", low=1, high=10**9)
    subset_seed: int | None = setting(None, "seed of the train cut (default: the run's seed)", low=0, high=SEED_MAX)
    strict: bool = setting(False, "stop at the first unreadable image instead of skipping it")
    init: str | None = setting(None, "fine-tune from this checkpoint (reference T2T-ViT, timm ViT/ResNet or ours)",
                               path=True)
    init_cfg: str | None = setting(None, "the timm pretrained tag whose mean/std the --init weights need, e.g. "
                                   "vit_tiny_patch16_224.augreg_in21k_ft_in1k (default: the pretrained_cfg in the "
                                   "file's safetensors metadata); refused if the file says otherwise")
    test_subset: str | None = test_subset_setting()
    device: str | None = setting(None, "cpu, cuda or cuda:N (default: cuda when available; torchrun sets one per "
                                 "rank)")
    threads: int | None = setting(None, "CPU threads per process (1 is fastest on a busy shared CPU)", low=1,
                                  high=1024)
    data_mode: str = setting("auto", "memory (decoded once, augmented as tensors), files (per image) or auto "
                             "(memory for images of at most 64 px that fit in RAM)", choices=DATA_MODES)
    crop_padding: int = setting(4, "memory mode: random crop after padding by this much", low=0, high=1024)

    def check(self):
        if self.budget_pflop is not None and self.budget_minutes is not None:
            self.fail("budget_pflop and budget_minutes both set; give one budget (or epochs alone)")
        if self.epochs != self.default("epochs") and (self.budget_pflop or self.budget_minutes) is not None:
            self.fail(f"epochs={self.epochs} cannot apply beside a budget (the budget sets the run's length); give "
                      "one of epochs, budget_pflop, budget_minutes")
        if self.checkpoint_every is not None and self.checkpoint_minutes is not None:
            self.fail("checkpoint_every and checkpoint_minutes both set; give one (updates or minutes)")
        if self.holdout is not None and self.holdout >= 1:
            if not float(self.holdout).is_integer():
                self.fail(f"holdout={self.holdout} is neither a fraction in (0, 1) nor a whole image count")
            self.holdout = int(self.holdout)  # a count: recorded as 5000, not 5000.0
        if not self.test and self.holdout is None:
            self.fail("test=false needs a holdout (without one the per-epoch scores are the test split's); "
                      "add holdout=0.1 or drop test=false")
        if self.classes is not None and len(set(self.classes)) < 2:
            self.fail(f"classes={self.classes!r} must name at least 2 different class folders, e.g. cat dog")
        if self.train_fraction is not None and self.train_per_class is not None:
            self.fail("train_fraction and train_per_class both set; keep one cut")
        for name in ("scale", "ratio"):
            low, high = getattr(self, name)
            if low > high:
                self.fail(f"{name}={list(getattr(self, name))} must run from low to high, e.g. {name}=[{high}, {low}]")
        if self.init_cfg is not None and self.init is None:
            self.fail("init_cfg names the normalisation of --init weights, but no --init is given; add --init FILE "
                      "or drop init_cfg")
        if self.test_subset is not None and not self.test:
            self.fail("test_subset scores part of the test split, but test=false never reads it; drop one of them")
        check_test_subset(self)
        check_device(self, self.device)
        check_model_args(self)
        if self.img_size is None:  # no size given: the model's own (None for an unknown name: building it says so)
            from models import default_img_size  # here: building the parsers stays torch-free

            self.img_size = default_img_size(self.model)
        if self.img_size is not None and not IMG_SIDE(self.img_size):
            self.fail(f"{self.model}'s input size is {self.img_size}, not square; give img_size")

    def paper_base_lr(self):
        return 1e-3 if self.model in SMALL_T2T else 5e-4

    def resolved_weight_decay(self):
        if self.weight_decay is not None:
            return self.weight_decay
        return 0.03 if self.model in SMALL_T2T else 0.05

    def resolved_lr(self, world_size):
        if self.lr is not None:
            return self.lr
        base = self.base_lr if self.base_lr is not None else self.paper_base_lr()
        return base * self.batch_size * world_size / PAPER_BATCH

    def resolved_min_lr(self, lr, warn):
        """The cosine's floor: the given min_lr (warning when above the peak lr, where the schedule would
        rise), or 1e-5 scaled by lr / 5e-4 when the lr is below the paper's 5e-4."""
        if self.min_lr is None:
            return PAPER_MIN_LR * min(1.0, lr / PAPER_LR)
        if self.min_lr > lr:
            warn(
                f"warning: --min-lr {self.min_lr:g} is above the peak lr {lr:g}, so the cosine schedule rises "
                "instead of decaying; pass a smaller --min-lr"
            )
        return self.min_lr

    def resolved_warmup_lr(self, lr):
        return min(self.warmup_lr, lr)


@dataclass
class EvalConfig(Settings):
    """`vitbench eval`: score a checkpoint on one split."""

    JOB = "eval"
    checkpoint: str = setting(None, "a run's best.pth/last.pth, or a pretrained file with --model", path=True)
    data: str = setting(None, "ImageNet-style folder (uses DATA/<split>/<class>/*)", path=True)
    split: str = setting("val", "the split folder to score")
    model: str | None = setting(None, "architecture name; required for checkpoints not written by `vitbench train`")
    model_args: dict = setting(help="model override, e.g. depth=4 (repeatable)", flag="model-arg", factory=dict)
    img_size: int | None = setting(None, "evaluation size (positions are interpolated for ViTs; default: the run's, "
                                   "else the model's input size)", check=IMG_SIDE)
    crop_pct: float | None = setting(None, "centre-crop fraction (default: the run's, else the model's)", **FRACTION)
    interpolation: str | None = setting(None, "resize interpolation (default: the run's, else the model's)",
                                        choices=INTERPOLATIONS)
    batch_size: int = setting(128, "images per step", low=1, high=65536)
    workers: int = setting(2, "data loader processes", low=0, high=256)
    device: str | None = setting(None, "cpu, cuda or cuda:N (default: cuda when available)")
    strict: bool = setting(False, "stop at the first unreadable image instead of skipping it")
    ema: bool = setting(False, "evaluate the checkpoint's EMA weights (state_dict_ema)")
    out: str | None = setting(None, "write the full result (per-class accuracy, confusion matrix) as JSON here",
                              path=True)
    test_subset: str | None = test_subset_setting()
    classes: list[str] | None = setting(None, "score these class folders only, as a run trained with the same "
                                        "classes (default: all)")
    threads: int | None = setting(None, "CPU threads (default: torch's)", low=1, high=1024)

    def check(self):
        check_test_subset(self)
        check_device(self, self.device)
        check_model_args(self)


@dataclass(frozen=True)
class TimingSetup(Settings):
    """How to run a model for `profile` and `sweep`: everything that changes its speed besides the model."""

    JOB = "timing"
    batch_size: int = setting(8, "images per step", low=1, high=65536)
    device: str = setting("cpu", "where to time", choices=DEVICES)
    dtype: str = setting("float32", "float32, or the autocast dtype", choices=DTYPES)
    channels_last: bool = setting(False, "channels_last inputs and weights")
    compile: bool = setting(False, "torch.compile the model first")
    warmup: int = setting(2, "untimed steps first", low=0, high=100_000)
    repeats: int = setting(5, "timed steps (median and IQR)", low=1, high=100_000)
    allocator: str = setting("steady", "steady: keep freed CPU memory for the next step; system: the C library's "
                             "defaults", choices=ALLOCATORS)

    @classmethod
    def from_values(cls, values):
        """A setup from any mapping, namespace or config holding some of the fields by name (None = default)."""
        values = values if isinstance(values, dict) else vars(values)
        return cls(**{name: values[name] for name in cls.field_names() if values.get(name) is not None})

    @property
    def timing(self):
        """Just the timing setup of a job config that extends it."""
        return TimingSetup.from_values(self.as_dict())


@dataclass(frozen=True)
class ProfileConfig(TimingSetup):
    """`vitbench profile`: params, MACs, throughput and memory of models, under a TimingSetup."""

    JOB = "profile"
    models: list[str] | None = setting(None, "names or wildcards, ours and timm's", cli=False)
    model_list: str | None = setting(None, "a file of model names, one per line", path=True)
    img_size: int | None = setting(None, "square image size (default: the model's)", check=IMG_SIDE)
    train: bool = setting(False, "also time and measure a full training step")
    results_file: str | None = setting(None, "also write a CSV with timm benchmark.py's column names, then ours",
                                     path=True)


@dataclass(frozen=True)
class SweepSpec(TimingSetup):
    """`vitbench sweep`: what to sweep (lists are crossed) and how to measure, flat (the TimingSetup's fields
    too), as in its TOML files and spec.json. An empty list keeps the base model's value."""

    JOB = "sweep"
    families: list[str] = setting(help="tokenizer families to vary (none: measure only models or timm)",
                                  choices=SWEEP_FAMILIES, empty=True, factory=lambda: ["vit", "t2t-performer"])
    models: list[str] = setting(help="named models to measure as they are (img_size still crossed)", empty=True,
                                factory=list)
    timm: list[str] = setting(help="any timm models to measure beside ours as baselines, e.g. resnet50",
                              empty=True, factory=list)
    depth: list[int] = setting(help="blocks", low=1, high=1024, empty=True, factory=list)
    num_heads: list[int] = setting(help="attention heads", low=1, high=1024, empty=True, factory=list, flag="heads")
    embed_dim: list[int] = setting(help="token width", low=1, high=65536, empty=True, factory=list)
    mlp_ratio: list[float] = setting(help="MLP width / token width", above=0.0, high=64.0, empty=True,
                                     factory=list)
    patch_size: list[int] = setting(help="ViT only", low=1, high=8192, empty=True, factory=list)
    img_size: list[int] = setting(help="square image sides (none: each model's own)", check=IMG_SIDE, empty=True,
                                  factory=list)
    measure: list[str] = setting(help="what to measure", choices=MEASUREMENTS,
                                 factory=lambda: ["params", "macs", "throughput", "tokenizer_time"])
    modes: list[str] = setting(help="inference, train", choices=MODES, factory=lambda: ["inference"])
    max_batch_limit: int = setting(1024, "the largest batch max_batch tries", low=1, high=2**20, cli=False)

    def check(self):
        if not self.families and not self.models and not self.timm:
            self.fail("the sweep has nothing to measure (no families, models or timm models); list some, e.g. "
                      'families = ["vit", "t2t-performer"]')

    @classmethod
    def from_flat(cls, values):
        """A spec from flat keys (TOML, CLI, spec.json); None = default."""
        return cls(**{k: v for k, v in values.items() if v is not None})

    def flat(self):
        return self.as_dict()


@dataclass
class StudyConfig(Settings):
    """`vitbench study`'s own settings; the runs' recipe is TrainConfig's (the spec's `train` table)."""

    JOB = "study"
    data: str | None = setting(None, "ImageNet-style folder (train/<class>, val/<class>)", path=True)
    out: str = setting(None, "study folder (runs/, results.csv, table.md, curves, report.md)", path=True)
    preset: str | None = setting(None, "a named study (default cpu-tiny; with --resume or --report-only the "
                                 "study's own record in study.json)")
    fractions: list[float] | None = setting(None, "training-set fractions, e.g. 0.1 0.25 0.5 1", **FRACTION)
    seeds: list[int] | None = setting(None, "seeds, e.g. 0 1 2", low=0, high=SEED_MAX)
    arms: list[str] | None = setting(None, "keep only these arms of the spec")
    jobs: int = setting(1, "runs trained at once, each in its own process (on a CPU, one per core with "
                        "threads 1)", low=1, high=256)
    launcher: str = setting("local", "where the runs train: local (this machine, --jobs at once) or slurm (each run "
                            "one Slurm job through submitit, the runs one job array; --slurm-* settings or the "
                            "spec's [slurm] table)", choices=LAUNCHERS)


@dataclass
class StudySpecFile(Settings):
    """A study spec as written: a preset in bench/presets/ or a TOML file like them. Its `train` table and each arm's
    are TrainConfig settings (checked by TrainConfig, run by run), its `slurm` table SlurmConfig's."""

    JOB = "study spec"
    fractions: list[float] = setting(None, "training-set fractions", cli=False, **FRACTION)
    seeds: list[int] = setting(None, "seeds", low=0, high=SEED_MAX, cli=False)
    arms: list[dict] = setting(None, "the architectures compared ([[arms]] tables)", cli=False)
    train: dict = setting(help="the runs' recipe", factory=dict, cli=False)
    title: str | None = setting(None, "the study's title in reports", cli=False)
    baseline: str | None = setting(None, "the arm every other arm is compared with (default: the first ViT arm "
                                   "trained from scratch at its own width, without match_macs or init)", cli=False)
    launcher: str | None = setting(None, "where the runs train", choices=LAUNCHERS, cli=False)
    slurm: dict = setting(help="each run's Slurm job", factory=dict, cli=False)


@dataclass
class ArmSpec(Settings):
    """One [[arms]] table of a study spec: an architecture at one or more depths."""

    JOB = "arm"
    name: str = setting(None, "the arm's name, in run folders and tables", cli=False)
    label: str = setting(None, "the arm's name in reports", cli=False)
    model: str = setting(None, "our name or a timm CNN", cli=False)
    depths: list[int] | None = setting(None, "our model at these depths", low=1, high=1024, cli=False)
    variants: list[dict] | None = setting(None, "or any model's variants ({depth, model?, overrides?} tables)",
                                          cli=False)
    overrides: dict = setting(help="model settings of every depth", factory=dict, cli=False)
    match_macs: str | None = setting(None, "the arm whose MACs this ViT's width matches at each depth", cli=False)
    init: str | None = setting(None, "the checkpoint the arm fine-tunes", cli=False)
    train: dict = setting(help="the arm's own training settings, over the study's", factory=dict, cli=False)
    slurm: dict = setting(help="the arm's own Slurm resources, over the study's", factory=dict, cli=False)

    def check(self):
        if (self.depths is None) == (self.variants is None):
            self.fail("needs exactly one of depths (transformers) or variants (any model)")
        if self.match_macs is not None and self.variants is not None:
            self.fail("match_macs widens one of our ViTs; give it depths, not variants")


@dataclass
class VariantSpec(Settings):
    """One of an arm's `variants`: a model (the arm's by default) labelled by a depth."""

    JOB = "variant"
    depth: int = setting(None, "the depth it is labelled by", low=1, high=1024, cli=False)
    model: str | None = setting(None, "its model (default: the arm's)", cli=False)
    overrides: dict = setting(help="model settings over the arm's", factory=dict, cli=False)


@dataclass
class SlurmConfig(Settings):
    """How `--launcher slurm` asks for each run's job (submitit's AutoExecutor parameters): a study TOML's [slurm]
    table, then the --slurm-* flags. A run with GPUs gets one process per GPU (a DDP run), as DeiT's submitit script."""

    JOB = "slurm"
    partition: str | None = setting(None, "Slurm partition (default: the cluster's)", flag="slurm-partition")
    account: str | None = setting(None, "Slurm account charged for the jobs", flag="slurm-account")
    nodes: int = setting(1, "nodes per run", low=1, high=4096, flag="slurm-nodes")
    gpus: int = setting(0, "GPUs per node per run (0: a CPU run, one process per node)", low=0, high=64,
                        flag="slurm-gpus")
    cpus: int = setting(2, "CPUs per process", low=1, high=1024, flag="slurm-cpus")
    mem_gb: float | None = setting(None, "memory per node in GB (default: the partition's)", above=0.0, high=1e6,
                                   flag="slurm-mem-gb")
    time_minutes: int = setting(24 * 60, "time limit per job; 90 s before it Slurm sends SIGUSR1, the run saves "
                                "a checkpoint and is requeued", low=1, high=10**6, flag="slurm-time-minutes")
    max_running: int | None = setting(None, "runs of the job array running at once (default: all)", low=1,
                                      high=10**6, flag="slurm-max-running")
    sbatch: dict = setting(help="extra sbatch option, e.g. qos=high or constraint=a100 (repeatable)",
                           flag="slurm-sbatch", factory=dict)


@dataclass
class SyntheticConfig(Settings):
    """`vitbench synthetic`: a small ImageNet-layout dataset of local-motif classes."""

    JOB = "synthetic"
    out: str = setting(None, "folder to create", path=True)
    classes: int = setting(10, "classes (motifs)", low=2, high=10)  # bench.accuracy.synthetic's 10 MOTIFS
    train_per_class: int = setting(200, "train images per class", low=1, high=100_000)
    val_per_class: int = setting(50, "val images per class", low=1, high=100_000)
    img_size: int = setting(32, "image side (at least two 5 px motifs)", low=10, high=1024)
    seed: int = setting(0, "seed of the images", low=0, high=SEED_MAX)


@dataclass
class ExportConfig(Settings):
    """`vitbench export`: a run's or checkpoint's weights as a .safetensors file in a chosen layout."""

    JOB = "export"
    checkpoint: str = setting(None, "a `vitbench train` run folder (its best.pth, else last.pth) or checkpoint file",
                              cli=False, path=True)
    out: str = setting(None, "the .safetensors file to write", path=True)
    format: str = setting("safetensors", "file format", choices=("safetensors",))
    layout: str = setting("ours", "key layout: ours, timm (timm's VisionTransformer, ViTs only) or reference (the "
                          "T2T-ViT reference code, T2T-ViTs only)", choices=("ours", "timm", "reference"))
    ema: bool = setting(False, "export the checkpoint's EMA weights (state_dict_ema)")


STUDY_TRAIN_SETTINGS = ("epochs", "budget_pflop", "budget_minutes", "holdout", "batch_size", "device", "workers",
                        "threads")  # TrainConfig settings a study's command line may set for every run
