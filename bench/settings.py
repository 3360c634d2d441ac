"""One typed config per job. Each setting's type, default, allowed range and help are declared once, on a
dataclass field, and everything else comes from that declaration: the command-line flags and their help,
the checks (type, finite, range, choices, then the job's cross-field `check`), TOML files, `key=value`
overrides, and the saved config that starts a new run.

    @dataclass
    class EvalConfig(Settings):
        JOB = "eval"
        batch_size: int = setting(128, "images per step", low=1, high=65536)

Sources are applied in order, later ones winning: the field defaults, a TOML file (`--config`), the
command-line flags, then `key=value` overrides (`seed=1`, `classes=["cat","dog"]`, `model_args.depth=4`). The
same rule holds for every source: a table (model_args) merges key by key, and a setting of a group of which only
one can apply (a run's length: epochs, or a budget) replaces the group; a source naming two of a group is refused.
Nothing here imports torch, so `vitbench --help` builds every parser without it.
"""
import argparse
import dataclasses
import difflib
import functools
import math
import os
import re
import tomllib
import types
import typing
from pathlib import Path

NO_DEFAULT = dataclasses.MISSING
KINDS = (bool, int, float, str, list, tuple, dict)


def config_error(message):
    from models.errors import ConfigError  # imported when raised: building parsers stays torch-free

    return ConfigError(message)


def setting(default=NO_DEFAULT, help="", *, low=None, high=None, above=None, below=None, choices=None,
            empty=False, flag=None, cli=True, factory=None, check=None, path=False):
    """A field of a job config. low/high are inclusive bounds, above/below exclusive (for numbers, and for the
    items of a list or tuple); `check` instead: a predicate that says it in words as its str() (a check that lives
    elsewhere, e.g. the image size's); `empty` allows "" for a string and [] for a list; `flag` renames the
    command-line flag; `cli=False` keeps a setting out of the flags (it is still read from files and overrides);
    `path=True` marks a file or folder: a record stores it relative to its own folder (`portable_paths`) and reads it
    back against that folder (`located_paths`), so records hold no machine path and work from any directory."""
    meta = dict(help=help, low=low, high=high, above=above, below=below, choices=choices, empty=empty, flag=flag,
                cli=cli, check=check, path=path)
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass(frozen=True)
class Spec:
    """What one field accepts: its kind (one of KINDS), the kind of its items, a tuple's length, whether None is
    allowed, its default and the `setting` metadata."""

    name: str
    kind: type
    item: type | None
    length: int | None
    optional: bool
    default: object
    meta: dict

    @property
    def flag(self):
        return "--" + (self.meta["flag"] or self.name.replace("_", "-"))

    def allowed(self):
        """The allowed values in words: 'an integer >= 1 and <= 65536', 'one of auto, bf16', ..."""
        m = self.meta
        if m["choices"]:
            words = "one of " + ", ".join(str(choice) if choice != "" else "''" for choice in m["choices"])
        elif self.kind is bool:
            words = "true or false"
        elif self.kind is dict:
            words = "a table of KEY = VALUE settings"
        else:
            kind = self.item or self.kind
            words = {int: "an integer", float: "a finite number", dict: "a table",
                     str: "a string" if m["empty"] and self.kind is str else "a non-empty string"}[kind]
            words = str(m["check"]) if m["check"] else words
            bounds = []
            if m["low"] is not None or m["above"] is not None:
                bounds.append(f">= {m['low']}" if m["low"] is not None else f"> {m['above']}")
            if m["high"] is not None or m["below"] is not None:
                bounds.append(f"<= {m['high']}" if m["high"] is not None else f"< {m['below']}")
            words += " " + " and ".join(bounds) if bounds else ""
        if self.kind is list:
            words = f"a {'' if self.meta['empty'] else 'non-empty '}list, each {words}"
        elif self.kind is tuple:
            words = f"{self.length} values, each {words}"
        return words + (" (or unset)" if self.optional else "")


def spec_of(f, hint):
    optional = False
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional, hint = True, args[0]
    origin, args = typing.get_origin(hint) or hint, typing.get_args(hint)
    if origin not in KINDS:
        raise TypeError(f"setting {f.name}: unsupported type {hint}")
    item = args[0] if origin in (list, tuple) else None
    length = len(args) if origin is tuple else None
    default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    return Spec(f.name, origin, item, length, optional, default, dict(f.metadata))


@functools.cache
def specs(cls) -> tuple[Spec, ...]:
    hints = typing.get_type_hints(cls)
    return tuple(spec_of(f, hints[f.name]) for f in dataclasses.fields(cls))


def scalar(kind, value):
    """`value` if it is a `kind` (an int passes as a float), else None: files and the API are typed."""
    if kind is bool:
        return value if isinstance(value, bool) else None
    if isinstance(value, bool):
        return None
    if kind is float and isinstance(value, int):
        return float(value) if abs(value) < 2**1023 else math.inf  # a huge integer: refused as not finite
    return value if isinstance(value, kind) else None


def from_text(kind, text):
    """A command-line word as `kind` where it reads as one; else the word, for the check to refuse by name."""
    if kind is bool and text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return {int: int, float: float}.get(kind, str)(text)
    except ValueError:
        return text


def in_range(spec, value):
    m = spec.meta
    if m["choices"]:
        return value in m["choices"]
    if isinstance(value, str):
        return bool(value) or (m["empty"] and spec.kind is str)
    if isinstance(value, float) and not math.isfinite(value):
        return False
    if m["check"]:
        return m["check"](value)
    return ((m["low"] is None or value >= m["low"]) and (m["high"] is None or value <= m["high"])
            and (m["above"] is None or value > m["above"]) and (m["below"] is None or value < m["below"]))


def checked(job, spec, value):
    """`value` converted to the field's kind, or a one-line ConfigError naming the field and what it allows."""
    def refuse():
        return config_error(f"{job}: {spec.name}={value!r} is not allowed; it must be {spec.allowed()}")

    if value is None:
        if spec.optional:
            return None
        how = f"pass {spec.flag} or {spec.name}=... in the config" if spec.meta["cli"] else f"give {spec.name} = ..."
        raise config_error(f"{job}: {spec.name} must be set ({spec.allowed()}); {how}")
    if spec.kind is dict:
        if not isinstance(value, dict) or not all(isinstance(key, str) and key for key in value):
            raise refuse()
        return dict(value)
    if spec.kind in (list, tuple):
        if not isinstance(value, (list, tuple)) or (not value and not spec.meta["empty"]) or (
                spec.length and len(value) != spec.length):
            raise refuse()
        items = [scalar(spec.item, v) for v in value]
        if any(v is None or not in_range(spec, v) for v in items):
            raise refuse()
        return spec.kind(items)
    converted = scalar(spec.kind, value)
    if converted is None or not in_range(spec, converted):
        raise refuse()
    return converted


def parse_override(text):
    """'seed=1' -> ('seed', 1): the value is read as TOML (numbers, true/false, "strings", [lists], {tables},
    nan, inf), else kept as the bare string, so `amp=bf16` and `auto_augment=` work unquoted."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise config_error(f"{text!r} is not KEY=VALUE; e.g. seed=1 or classes=[\"cat\", \"dog\"]")
    if raw.strip().lower() in ("true", "false"):  # also True/FALSE, as Python and shells write them
        return key.strip(), raw.strip().lower() == "true"
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.strip(), value


def typed_override(spec, text, value):
    """A KEY=VALUE override read as its field's kind, as the field's flag reads its word: a string field takes the
    word as written where TOML read it as a number or a boolean (`out=2024` is the folder '2024', as `--out 2024`);
    every other kind keeps TOML's reading, which the field's check then judges."""
    if spec is not None and spec.kind is str and isinstance(value, (bool, int, float)):
        return text.partition("=")[2].strip()
    return value


def model_arg_pairs(pairs):
    """--model-arg depth=4 --model-arg qkv_bias=false -> {'depth': 4, 'qkv_bias': False}."""
    return dict(parse_override(pair) for pair in pairs)


class Settings:
    """Base of every job config: checks each field on construction, then the job's own `check`."""

    JOB: typing.ClassVar[str] = "job"
    ONE_OF: typing.ClassVar[tuple] = ()  # groups of settings of which only one can apply (a run's length)

    def __post_init__(self):
        for spec in specs(type(self)):
            object.__setattr__(self, spec.name, checked(self.JOB, spec, getattr(self, spec.name)))
        self.check()

    def check(self):
        """Cross-field rules of the job (override): raise config_error(...) with the fix."""

    def fail(self, message):
        raise config_error(f"{self.JOB}: {message}")

    @classmethod
    def field_names(cls):
        return [spec.name for spec in specs(cls)]

    @classmethod
    def default(cls, name):
        return next(spec.default for spec in specs(cls) if spec.name == name)

    @classmethod
    def unknown(cls, keys, where, path=None):
        """Refuse the first key that is no setting of `cls`, naming the closest one (and its line in the file at
        `path`)."""
        names = cls.field_names()
        bad = [key for key in keys if key not in names]
        if bad:
            close = difflib.get_close_matches(bad[0], names, n=1)
            hint = f"did you mean {close[0]}?" if close else f"{cls.JOB} settings: {', '.join(names)}"
            where = line_of(path, bad[0]) if path else where
            raise config_error(f"{cls.JOB}: unknown setting {bad[0]!r} in {where}; {hint}")

    @classmethod
    def check_some(cls, values, where):
        """Check a partial mapping of settings (a study's shared recipe): unknown keys and every value."""
        cls.unknown(values, where)
        by_name = {spec.name: spec for spec in specs(cls)}
        return {key: checked(cls.JOB, by_name[key], value) for key, value in values.items()}

    @classmethod
    def gather(cls, file=None, flags=None, overrides=()):
        """The settings given by a TOML file, then flags, then KEY=VALUE overrides, checked one by one (not yet a
        whole config: a resumed run fills the rest from its record). One rule for every source: a later one wins,
        a table (model_args) key by key; a setting of a group (ONE_OF: a run's length) replaces the group's settings
        from earlier sources, and one source giving two of a group is refused."""
        from_file = dict(read_toml(file, cls.JOB)) if file else {}
        cls.unknown(from_file, file, file)
        if file:  # a path in a file is relative to the file's folder (as vitbench writes RUN/config.toml)
            from_file = located_paths(cls, from_file, Path(file).parent)
        by_name = {spec.name: spec for spec in specs(cls)}
        dicts = {name for name, spec in by_name.items() if spec.kind is dict}
        from_overrides = {}
        for text in overrides:
            key, value = parse_override(text)
            head, _, sub = key.partition(".")
            if sub and head in dicts:  # model_args.depth=4
                from_overrides[head] = {**from_overrides.get(head, {}), sub: value}
            else:
                from_overrides[key] = typed_override(by_name.get(key), text, value)
        cls.unknown(from_overrides, "the overrides")
        values = {}
        for where, source in ((f"{file}", from_file), ("the flags", flags or {}), ("the overrides", from_overrides)):
            source = cls.one_of_each(source, where)
            for group in cls.ONE_OF:
                if any(key in source for key in group):
                    values = {key: value for key, value in values.items() if key not in group}
            for key, value in source.items():
                merge = key in dicts and isinstance(value, dict) and isinstance(values.get(key), dict)
                values[key] = {**values[key], **value} if merge else value
        return cls.check_some(values, "the settings")

    @classmethod
    def one_of_each(cls, source, where):
        """`source` with at most one setting of each ONE_OF group; one at its default beside another is dropped (a
        saved config lists every setting), two others are refused."""
        for group in cls.ONE_OF:
            given = [key for key in group if source.get(key) is not None]
            if len(given) > 1:
                given = [key for key in given if source[key] != cls.default(key)]
                source = {key: value for key, value in source.items() if key not in group or key in given}
            if len(given) > 1:
                raise config_error(f"{cls.JOB}: {where} set both {given[0]} and {given[1]}, but only one can apply "
                                   f"(one of {', '.join(group)}); keep one")
        return source

    @classmethod
    def from_table(cls, table, where, path=None):
        """A config from one table of a file (a study spec, one of its arms): unknown keys named, then each value
        and the cross-field rules."""
        cls.unknown(table, where, path)
        return cls(**table)

    @classmethod
    def from_sources(cls, file=None, flags=None, overrides=(), **fixed):
        return cls(**{**cls.gather(file, flags, overrides), **fixed})

    def as_dict(self):
        return dataclasses.asdict(self)

    def to_toml(self, skip=()):
        """The config as TOML, unset (None) settings left out: they read back as their defaults."""
        import tomli_w

        def plain(value):
            if isinstance(value, (list, tuple)):
                return [plain(v) for v in value]
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items() if v is not None}
            return value

        kept = {k: plain(v) for k, v in self.as_dict().items() if v is not None and k not in skip}
        return tomli_w.dumps(kept)


def path_fields(cls):
    """The names of `cls`'s path-valued settings (declared `setting(..., path=True)`)."""
    return tuple(spec.name for spec in specs(cls) if spec.meta.get("path"))


def portable_path(value, folder):
    """`value`, a path, relative to `folder` (None and "" as they are)."""
    return os.path.relpath(os.path.abspath(value), os.path.abspath(folder)) if value else value


def portable_paths(cls, values, folder):
    """`values` (a record of `cls`) with every path-valued setting written relative to `folder`, the record's own
    folder: valid wherever the tree is moved and from any working directory."""
    return {key: portable_path(value, folder) if key in path_fields(cls) and isinstance(value, str) else value
            for key, value in values.items()}


def located_path(value, folder):
    """A path read from a record in `folder`: an absolute one as it is; a relative one against `folder` (how records
    are written now), unless only the old meaning exists: records written before paths were made portable held
    them as typed, relative to the directory the job ran in (then the current one, as before)."""
    if os.path.isabs(value):
        return value
    here = os.path.normpath(os.path.join(os.path.abspath(folder), value))
    if not os.path.exists(here) and os.path.exists(value):  # an old record's cwd-relative path
        return os.path.abspath(value)
    return here


def located_paths(cls, values, folder):
    """`values` read from a record of `cls` in `folder`, its path-valued settings resolved (`located_path`)."""
    return {key: located_path(value, folder) if key in path_fields(cls) and isinstance(value, str) and value
            else value for key, value in values.items()}


def read_toml(path, job):
    try:
        return tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise config_error(f"{job}: config file {path} does not exist; check the path") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise config_error(f"{job}: {path} is not a TOML file ({e}); fix it or pass key=value settings") from None


def line_of(path, key):
    """'FILE line N', where `key = ...` first appears in the TOML file at `path` (FILE alone if it does not)."""
    text = Path(path).read_text()
    found = re.search(rf"^[ \t]*{re.escape(key)}[ \t]*=", text, re.MULTILINE)
    return f"{path} line {text[:found.start()].count(chr(10)) + 1}" if found else str(path)


def add_flags(parser, cls, skip=(), only=None):
    """A flag per field of `cls` (those in `only`, none in `skip`), with the field's help and default. Flags carry
    no default of their own: one left off is absent from the parsed namespace, so the file or the default holds."""
    for spec in specs(cls):
        if spec.name in skip or not spec.meta["cli"] or (only is not None and spec.name not in only):
            continue
        shown = spec.default not in (None, NO_DEFAULT, {}, "") and spec.kind is not dict
        text = spec.meta["help"] + (f" (default {fmt(spec.default)})" if shown else "")
        extra = dict(dest=spec.name, default=argparse.SUPPRESS, help=text.replace("%", "%%"))
        if spec.kind is bool:
            parser.add_argument(spec.flag, action=argparse.BooleanOptionalAction, **extra)
        elif spec.kind is dict:
            parser.add_argument(spec.flag, action="append", metavar="KEY=VALUE", **extra)
        elif spec.kind in (list, tuple):
            parser.add_argument(spec.flag, nargs=spec.length or ("*" if spec.meta["empty"] else "+"), **extra)
        else:
            parser.add_argument(spec.flag, metavar=spec.meta["choices"] and "{" + ",".join(spec.meta["choices"]) + "}"
                                or spec.name.upper(), **extra)


def given_flags(args, cls):
    """The fields of `cls` set on the command line, their words read as the fields' kinds (a dict field's
    KEY=VALUE list parsed as overrides are)."""
    given = {}
    for spec in specs(cls):
        if spec.name not in vars(args):
            continue
        value = getattr(args, spec.name)
        if spec.kind is dict:
            given[spec.name] = model_arg_pairs(value)
        elif spec.kind in (list, tuple):
            given[spec.name] = [from_text(spec.item, word) for word in value]
        else:
            given[spec.name] = value if isinstance(value, bool) else from_text(spec.kind, value)
    return given


def fmt(value):
    if isinstance(value, (list, tuple)):
        return " ".join(fmt(v) for v in value)
    return f"{value:.4g}" if isinstance(value, float) else str(value)
