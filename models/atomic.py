"""Atomic file writes: a temporary file beside the target, fsync, then rename over it."""
import os
import tempfile
from pathlib import Path


def atomic_write(path, write, mode="wb"):
    """Call `write(fileobj)` on a temporary file and move it to `path` only once it is complete.

    A crash or interrupt leaves either the old file or the new one, never a partial file. An OSError
    (a full disk, a read-only folder) names `path`, whichever step failed.
    """
    path = Path(path)
    try:
        return replace_with_written(path, write, mode)
    except OSError as error:
        raise OSError(error.errno, error.strerror or str(error), str(path)) from error


def replace_with_written(path, write, mode):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def atomic_write_text(path, text):
    return atomic_write(path, lambda f: f.write(text), mode="w")
