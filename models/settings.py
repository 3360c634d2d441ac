"""The models' own settings table: every numeric setting's type and range, the booleans, and `check_settings`,
which the registry applies to every build and a checkpoint applies to the config it stores (the file is untrusted).
The models stand alone (torch, timm, safetensors), so this is not bench's `Settings`; the bench configs check a
`model_args` table through it."""
import numbers
from dataclasses import dataclass

from .errors import ConfigError
from .tokenizers import MAX_IMG_SIDE, check_img_size


@dataclass(frozen=True)
class Bound:
    """A numeric setting's allowed values: `low` <= value <= `high`, an end excluded where `open_low`/`open_high`."""
    kind: type  # int or float
    low: float
    high: float
    open_low: bool = False
    open_high: bool = False

    def allows(self, value):
        above = self.low < value if self.open_low else self.low <= value
        return above and (value < self.high if self.open_high else value <= self.high)

    def __str__(self):
        what = "an integer" if self.kind is int else "a number"
        return f"{what} in {'(' if self.open_low else '['}{self.low:g}, {self.high:g}{')' if self.open_high else ']'}"


# Every numeric setting, type- and range-checked before any module is built. The highs refuse typos (1e9, inf)
# well above any model timm or the papers build: ViT-22B has 48 heads, width 6144 and depth 48.
NUMERIC_SETTINGS = {
    "depth": Bound(int, 1, 1024), "num_heads": Bound(int, 1, 1024), "embed_dim": Bound(int, 1, 65536),
    "patch_size": Bound(int, 1, MAX_IMG_SIDE), "token_dim": Bound(int, 1, 65536), "in_chans": Bound(int, 1, 1024),
    "num_classes": Bound(int, 0, 1_000_000),
    "mlp_ratio": Bound(float, 0, 64, open_low=True), "qk_scale": Bound(float, 0, 100, open_low=True),
    "norm_eps": Bound(float, 0, 1, open_low=True),
    **dict.fromkeys(("drop_rate", "attn_drop_rate", "drop_path_rate", "t2t_drop"), Bound(float, 0, 1, open_high=True)),
}
BOOL_SETTINGS = ("qkv_bias", "dynamic_img_size")
OPTIONAL = ("t2t_drop", "qk_scale")  # None means "the default"


def is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_number(key, value, bound):
    """`value` as `bound.kind`; a bool, a string, NaN, an infinity or a value out of range raise one line."""
    typed = is_int(value) if bound.kind is int else isinstance(value, numbers.Real) and not isinstance(value, bool)
    example = max(bound.low, 4) if bound.kind is int else (0.1 if bound.high <= 1 else 2.0)
    if not typed:
        raise ConfigError(f"{key}={value!r} must be {bound}; pass e.g. {key}={example!r}")
    if not bound.allows(value):
        raise ConfigError(f"{key}={value!r} is out of range; it must be {bound}: pass e.g. {key}={example!r}")
    return bound.kind(value)


def check_bool(key, value):
    if isinstance(value, bool) or (is_int(value) and value in (0, 1)):
        return bool(value)
    raise ConfigError(f"{key}={value!r} must be True or False (or 1 / 0); pass e.g. {key}=False")


def check_settings(config):
    """`config` with every known setting type-checked (ints stay ints, 0/1 become booleans); bad ones raise."""
    checked = dict(config)
    for key, value in config.items():
        if key in OPTIONAL and value is None:
            continue
        if key in NUMERIC_SETTINGS:
            checked[key] = check_number(key, value, NUMERIC_SETTINGS[key])
        elif key in BOOL_SETTINGS:
            checked[key] = check_bool(key, value)
    check_img_size(config["img_size"])  # kept as given (an int stays an int in the config a checkpoint records)
    return checked
