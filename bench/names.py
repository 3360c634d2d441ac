"""Names are data. A name a user gives (a study arm) or that vitbench reads (an input folder's name) becomes part
of a file or folder name under --out only through this module: `path_name` refuses one that could leave --out,
nest folders or hide a file, and `path_tag` makes a name vitbench found into one that cannot."""
import re

from models.errors import ConfigError

SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")  # a plain file name on every OS: no /, \, .., :, spaces
UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._+-]")


def path_name(name, what):
    """`name`, checked to be one plain path component (letters, digits, . _ + -, starting with a letter or digit,
    at most 100 characters); else a one-line ConfigError naming `what` ("study arm") and the fix."""
    if not isinstance(name, str) or not SAFE.fullmatch(name):
        raise ConfigError(f"{what} {name!r} cannot name a folder; use letters, digits and . _ + - (starting with a "
                          "letter or digit, at most 100 characters), e.g. vit-small")
    return name


def path_tag(name):
    """A name vitbench found (an input folder's) as one plain path component: every other character becomes _."""
    tag = UNSAFE_CHARS.sub("_", str(name))[:100]
    return tag if SAFE.fullmatch(tag) else f"x{tag}"[:100]
