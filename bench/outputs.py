"""The one policy for every folder vitbench writes (runs, sweeps, studies, subsets, reports).

- A new or empty folder is created.
- A folder that is not vitbench's (no marker of the right kind) is never touched.
- One of ours is continued only with `--resume` and redone only with `--overwrite`; redoing removes
  only the files vitbench wrote there, and refuses while anything else is in the folder.

Each caller describes its folder once with an `OutputFolder` (kind, marker file, how to tell that
the marker is ours, which files it writes) and calls `prepare(out, resume, overwrite)`. Work that
writes into a folder for long (a sweep, a run, a study) holds `folder_lock(out, kind)` meanwhile.
"""
import contextlib
import errno
import fnmatch
import json
import os
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from filelock import FileLock, Timeout

from bench.errors import ResultsError
from models.errors import ConfigError

NEW, RESUME, OVERWRITE = "new", "resume", "overwrite"
TEMPORARY = ".*.tmp"  # what models.atomic leaves behind when killed mid-write
LOCK = ".vitbench.lock"  # locked (flock) by the process working in a folder (folder_lock)
HOLDER = ".vitbench.lock.json"  # that process's host and pid, for the message that refuses another
LOCK_FILES = (LOCK, HOLDER)


def is_empty(out):
    """Does folder `out` hold nothing but (maybe) its lock files?"""
    return all(path.name in LOCK_FILES for path in Path(out).iterdir())


@dataclass(frozen=True)
class OutputFolder:
    kind: str  # "sweep", "run", "study", "subset", "report": what the folder holds
    marker: str  # the file that marks the folder as vitbench's
    holds: str  # how a refusal names its content: "a sweep", "results"
    is_marked: Callable[[Path], bool]  # does the marker file (which exists) say the folder is ours?
    written: tuple = ()  # glob patterns (relative paths) of what vitbench writes here, marker included
    listed: Callable[[Path], set] | None = None  # more relative paths vitbench wrote (e.g. a manifest's list)
    resume_hint: str = ""  # e.g. "continue it": the folder can be resumed with --resume
    resumable: Callable[[Path], bool] = lambda out: True  # has a folder of ours anything to resume from?
    error: type = ResultsError

    def is_ours(self, out):
        marker = Path(out) / self.marker
        try:
            return marker.is_file() and bool(self.is_marked(marker))
        except (OSError, ValueError, KeyError, TypeError):  # unreadable or foreign marker content
            return False

    def has_damaged_marker(self, out):
        """Is `out` ours with its marker damaged: a marker that cannot be read, beside other files vitbench
        writes, and nothing else? (A lone unreadable file of the marker's name is not taken for ours.)"""
        marker = Path(out) / self.marker
        if not marker.is_file() or self.foreign(out):
            return False
        try:
            self.is_marked(marker)
            return False
        except (OSError, ValueError, KeyError, TypeError):
            return any(path.name not in (self.marker, *LOCK_FILES) for path in Path(out).iterdir())

    def prepare(self, out, resume=False, overwrite=False, reads=()):
        """Check `out` against the policy; returns NEW, RESUME or OVERWRITE. Foreign folders raise, and so does an
        `out` that overlaps any of the paths the command `reads`."""
        out = Path(out)
        refuse_overlap(out, reads, self.error)
        if resume and overwrite:
            raise ConfigError("--resume and --overwrite contradict each other; pick one")
        if out.exists() and not out.is_dir():
            raise self.error(f"{out} is a file, not a folder; choose another --out")
        if not out.exists() or is_empty(out):
            if resume:
                raise self.error(f"{out} holds no {self.kind} to resume; start it without --resume")
            return NEW
        if not self.is_ours(out):
            if self.has_damaged_marker(out):
                if overwrite:
                    return OVERWRITE
                raise self.error(f"{out / self.marker} is unreadable (truncated or corrupt), so this {self.kind} "
                                 "cannot be continued; pass --overwrite to start it over, or choose another --out")
            raise self.error(f"{out} is not a vitbench {self.kind} folder (no {self.marker}) and already holds "
                             "other files; choose another --out")
        resumable = bool(self.resume_hint) and self.resumable(out)
        if resume and self.resume_hint and not resumable:
            raise self.error(f"{out} holds a {self.kind} with nothing finished to resume from; start it again "
                             "with --overwrite")
        if resume and resumable:
            return RESUME
        if overwrite:
            self.refuse_foreign(out)
            return OVERWRITE
        if self.resume_hint and not resumable:
            raise self.error(f"{out} holds a {self.kind} that never finished a step, nothing worth keeping; pass "
                             "--overwrite to start it over, or choose another --out")
        hint = f"--resume to {self.resume_hint} or " if resumable else ""
        raise self.error(f"{out} already holds {self.holds}; pass {hint}--overwrite to "
                         f"{'start over' if self.resume_hint else 'replace it'}, or choose another --out")

    def foreign(self, out):
        """Relative paths (files and symlinks) under `out` that vitbench did not write, sorted."""
        out = Path(out)
        listed = self.listed(out) if self.listed else set()
        patterns = (*self.written, TEMPORARY, f"*/{TEMPORARY}", *LOCK_FILES, *(f"*/{name}" for name in LOCK_FILES))
        files = (p.relative_to(out).as_posix() for p in out.rglob("*") if not p.is_dir() or p.is_symlink())
        return sorted(relative for relative in files
                      if relative not in listed and not any(fnmatch.fnmatch(relative, p) for p in patterns))

    def refuse_foreign(self, out):
        foreign = self.foreign(out)
        if foreign:
            more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
            raise self.error(f"{out} holds {foreign[0]}{more}, which vitbench did not write; move it away or "
                             "choose another --out (--overwrite only replaces vitbench's own files)")

    def clear(self, out):
        """Empty a folder of ours for --overwrite, keeping its lock files; refuses while anything else is in it."""
        self.refuse_foreign(out)
        for path in Path(out).iterdir():
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.name not in LOCK_FILES:
                path.unlink()

    def start(self, out, resume=False, overwrite=False, reads=()):
        """`prepare`, then clear an overwritten folder and create it; returns NEW, RESUME or OVERWRITE."""
        mode = self.prepare(out, resume, overwrite, reads)
        if mode == OVERWRITE:
            self.clear(out)
        Path(out).mkdir(parents=True, exist_ok=True)
        return mode

    def discard(self, out):
        """Remove a folder of ours that a failed start left, unless it holds anything vitbench did not write."""
        out = Path(out)
        if out.is_dir() and (self.is_ours(out) or is_empty(out)) and not self.foreign(out):
            shutil.rmtree(out)


def read_back(path, fix, kind="json"):
    """A file vitbench wrote, read back: a dict from JSON, a list of dicts from JSON lines, or a DataFrame from CSV.
    A missing, truncated or corrupt file is one ResultsError naming it, what is wrong, and `fix`: the command
    that recovers."""
    path = Path(path)
    try:
        if kind == "csv":
            return pd.read_csv(path)
        text = path.read_text()
        value = json.loads(text) if kind == "json" else [json.loads(line) for line in text.splitlines() if line.strip()]
        shape = list if kind == "jsonl" else dict
        if not isinstance(value, shape) or (kind == "jsonl" and not all(isinstance(row, dict) for row in value)):
            raise ValueError(f"holds {type(value).__name__} where a {shape.__name__} of records belongs")
        return value
    except FileNotFoundError:
        raise ResultsError(f"{path} is missing; {fix}") from None
    except (OSError, ValueError) as error:  # JSONDecodeError, UnicodeDecodeError and pandas' parser errors too
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ResultsError(f"{path} is unreadable ({reason}); {fix}") from None


def refuse_overlap(out, reads, error=ResultsError):
    """An output is never what a command reads, inside it, or around it (compared as resolved real paths, so links
    and `..` cannot hide it): writing there would change the input, and --overwrite would delete it."""
    target = os.path.realpath(out)
    for source in reads:
        source_real = os.path.realpath(source)
        if target == source_real:
            where = "is"
        elif target.startswith(os.path.join(source_real, "")):
            where = "is inside"
        elif source_real.startswith(os.path.join(target, "")):
            where = "contains"
        else:
            continue
        raise error(f"--out {out} {where} the input {source}; choose an --out outside what the command reads")


def holder_of(out):
    """'sweep, pid P on host H' from out/HOLDER, or a stand-in while it is missing or unreadable (its holder is
    just starting)."""
    try:
        info = json.loads((Path(out) / HOLDER).read_text())
        return f"{info['kind']}, pid {int(info['pid'])} on host {info['host']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"


def still_at_path(path):
    """`on_acquired` check: the locked descriptor is still the file at `path`. A releasing holder removes the
    file while it holds it, so a descriptor opened just before that would lock a file nobody else sees."""
    def check(fd):
        if not os.path.samestat(os.fstat(fd), os.stat(path)):
            raise FileNotFoundError(errno.ENOENT, "the lock file was replaced while it was taken", str(path))
    return check


def take_lock(out, kind):
    """Take the OS lock on out/LOCK without waiting and record who holds it in out/HOLDER; returns the lock and
    the stat of its file."""
    path = out / LOCK
    for _ in range(3):
        lock = FileLock(path, timeout=0, fallback_to_soft=False, on_acquired=still_at_path(path))
        try:
            lock.acquire()
        except Timeout:
            raise ResultsError(f"{out} is in use by another vitbench process ({holder_of(out)}); wait for it to "
                               "finish or stop it, or choose another --out") from None
        except FileNotFoundError:
            continue  # taken while its holder was removing it: open the new file
        locked = os.stat(path)
        try:
            (out / HOLDER).write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "kind": kind}))
        except BaseException:
            release_lock(out, lock, locked)
            raise
        return lock, locked
    raise ResultsError(f"cannot lock {out}: {path} keeps changing; check that no other vitbench works there")


def release_lock(out, lock, locked):
    """Remove HOLDER and LOCK while still holding the lock (so no one takes a file about to vanish), then unlock.
    They are left alone when LOCK is no longer the `locked` file: the folder was removed and another process may
    have made it again."""
    try:
        with contextlib.suppress(FileNotFoundError):
            if os.path.samestat(os.stat(out / LOCK), locked):
                (out / HOLDER).unlink(missing_ok=True)
                (out / LOCK).unlink()
    finally:
        lock.release()


@contextlib.contextmanager
def folder_lock(out, kind, take=True):
    """Hold `out` (created if needed) for this process while a `kind` ("sweep", "run", "study") works in it;
    another process gets a one-line ResultsError naming the holder's pid and host. The lock is the kernel's
    (flock on out/LOCK), so it is free the moment its process ends, however it ends; out/HOLDER only names the
    holder for that message and never decides anything. `take=False` (a DDP rank that does not write) holds
    nothing."""
    if not take:
        yield
        return
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ResultsError(f"{out} is a file, not a folder; choose another --out")
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        lock, locked = take_lock(out, kind)
    except OSError as error:
        raise ResultsError(f"cannot write {out} ({error.strerror or error}); choose another --out") from None
    try:
        yield
    finally:
        release_lock(out, lock, locked)
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()  # made for this work, which left it empty
