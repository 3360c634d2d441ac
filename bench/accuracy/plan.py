"""How long a run trains: a budget in epochs, training compute (PFLOP) or wall-clock minutes, turned
into the number of optimiser updates its cosine schedule is planned to end at.

Training compute is counted as the study's unit: forward MACs per image x 2 (FLOPs per MAC) x 3
(forward + a backward of twice its cost) x images seen. Runs with the same PFLOP budget therefore
see images in inverse proportion to their MACs, whatever their speed on the machine; a minutes
budget instead converts a measured time per update into updates once, before the first step, and
the run keeps that plan when it is resumed, so the schedule never depends on a second measurement.

The plan is fixed when a run starts. A finished run is never extended (that would restart a
cosine that already decayed: a warm restart); train a new run with a larger budget instead.
"""
import math
from dataclasses import asdict, dataclass

from bench.cost.flops import TRAIN_FLOPS_PER_MAC
from models.errors import ConfigError

PFLOP = 1e15
WARMUP_MAX_SHARE = 0.2  # a warm-up asked to cover more of the run than this is shortened to this share
BUDGETS = ("epochs", "pflop", "minutes")


def train_pflop(images, forward_macs):
    """Training compute of `images` forward+backward passes of a model of `forward_macs` per image."""
    return images * forward_macs * TRAIN_FLOPS_PER_MAC / PFLOP


@dataclass(frozen=True)
class Plan:
    """A run's length in updates and its warm-up, with what they were derived from."""

    budget: str  # "epochs", "pflop" or "minutes": what the user fixed
    budget_value: float  # epochs, PFLOP or minutes
    total_updates: int  # the cosine ends after this update: the run stops there
    warmup_updates: int
    updates_per_epoch: int
    global_batch: int
    forward_macs: int  # per image, at the run's input size
    warmup_shortened_from: int = None  # updates the warm-up asked for, when it was more than WARMUP_MAX_SHARE
    seconds_per_update: float = None  # the measurement a minutes budget was converted with

    @property
    def epochs(self):
        """Passes over the data, the last one possibly partial."""
        return math.ceil(self.total_updates / self.updates_per_epoch)

    @property
    def images(self):
        return self.total_updates * self.global_batch

    @property
    def pflop(self):
        return train_pflop(self.images, self.forward_macs)

    def record(self):
        """What summary.json and the checkpoint keep of the plan."""
        return {**asdict(self), "epochs": self.epochs, "images": self.images, "pflop": self.pflop}


def total_updates(config, updates_per_epoch, global_batch, forward_macs, seconds_per_update):
    """(budget kind, its value, updates) of `config`: epochs, budget_pflop or budget_minutes."""
    if config.budget_pflop is not None:
        images = config.budget_pflop * PFLOP / (forward_macs * TRAIN_FLOPS_PER_MAC)
        return "pflop", config.budget_pflop, round(images / global_batch)
    if config.budget_minutes is not None:
        return "minutes", config.budget_minutes, math.floor(config.budget_minutes * 60 / seconds_per_update)
    return "epochs", config.epochs, config.epochs * updates_per_epoch


def plan_run(config, updates_per_epoch, global_batch, forward_macs, seconds_per_update=None, warn=print):
    """The `Plan` of a run of `config`; a warm-up longer than WARMUP_MAX_SHARE of it is shortened, with a notice."""
    budget, value, updates = total_updates(config, updates_per_epoch, global_batch, forward_macs, seconds_per_update)
    if updates < 1:
        raise ConfigError(f"a budget of {value:g} {budget} is less than one update of {global_batch} images "
                          f"({train_pflop(global_batch, forward_macs):.3g} PFLOP); raise the budget")
    if config.warmup_share is not None:
        return Plan(budget, value, updates, round(config.warmup_share * updates), updates_per_epoch, global_batch,
                    int(forward_macs), None, seconds_per_update)
    asked = round(config.warmup_epochs * updates_per_epoch)
    warmup, shortened = asked, None
    if asked > WARMUP_MAX_SHARE * updates:
        warmup, shortened = math.floor(WARMUP_MAX_SHARE * updates), asked
        warn(f"notice: warm-up of {config.warmup_epochs:g} epochs ({asked} updates) would cover "
             f"{asked / updates:.0%} of the {updates}-update run; shortened to {warmup} updates "
             f"({WARMUP_MAX_SHARE:.0%})")
    return Plan(budget, value, updates, warmup, updates_per_epoch, global_batch, int(forward_macs), shortened,
                seconds_per_update)
