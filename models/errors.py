"""The models' exception types and the base every vitbench user error shares (the harness adds its own in
bench/errors.py).

Every user mistake raises a subclass of :class:`VitbenchError` whose message is one line that
names the problem and the fix; the CLI prints that line and exits non-zero.
"""


class VitbenchError(Exception):
    """Base class for errors caused by user input, not by a bug."""


class ConfigError(VitbenchError, ValueError):
    """An impossible or unknown model/sweep setting."""


class UnknownOptionError(ConfigError, TypeError):
    """A setting the model does not have (a TypeError too, as Python's unexpected keyword argument)."""


class InputShapeError(VitbenchError, ValueError):
    """An image batch whose shape the model cannot take."""


class UnknownModelError(VitbenchError, ValueError):
    """A model name that is not registered."""


class CheckpointError(VitbenchError, ValueError):
    """A checkpoint file that is missing, unreadable, unsafe or for another architecture."""


def short_list(items, limit=4):
    """'a, b, c' for a message; 'a, b, ... (12 in all)' past `limit`; 'none' when empty."""
    items = sorted(map(str, items))
    if not items:
        return "none"
    shown = ", ".join(items[:limit])
    return f"{shown}, ... ({len(items)} in all)" if len(items) > limit else shown
