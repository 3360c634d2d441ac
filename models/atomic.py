"""Atomic file writes: a temporary file beside the target, fsync, then rename over it.

It lives in models/ because checkpoints (`save_checkpoint`) and exports are written with it and models imports
nothing of bench; the harness writes every file with it too, so one writer names every temporary file.

The temporary file's name carries the writer's pid (`.<name>.<pid>.<random>.tmp`), so a file left by a
writer that was killed (SIGKILL gives it no chance to clean up) is recognised and removed later by
`remove_stale_temporaries`, while one that a live process is still writing is left alone.

`mkstemp` makes its file 0600 whatever the umask; the written file is given the mode `open` would have
given it (0644 under umask 022, 0664 under a group folder's 002), so results can be shared on a cluster.
"""
import os
import re
import tempfile
from pathlib import Path

TEMPORARY_NAME = re.compile(r"^\..+\.(\d+)\.[^.]+\.tmp$")  # .<target name>.<pid>.<random>.tmp


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


def umask():
    """The process's umask (read by setting it and putting it back: the only way the OS offers)."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def umask_mode(kind="file"):
    """The mode `open` (0666) or `mkdir` (0777) would give a new file or folder under the current umask."""
    return (0o666 if kind == "file" else 0o777) & ~umask()


def replace_with_written(path, write, mode):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, umask_mode())
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # an interrupt just after the rename finds no temporary file: it must stay the interrupt
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path, text):
    return atomic_write(path, lambda f: f.write(text), mode="w")


def is_alive(pid):
    """Does process `pid` exist (on this host)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        pass
    return True


def remove_stale_temporaries(folder):
    """Remove the temporary files in `folder` whose writer is no longer alive; returns their paths."""
    removed = []
    for entry in os.scandir(folder) if Path(folder).is_dir() else ():
        match = TEMPORARY_NAME.match(entry.name)
        if match and entry.is_file() and not is_alive(int(match[1])):
            Path(entry.path).unlink(missing_ok=True)
            removed.append(Path(entry.path))
    return removed
