"""The one policy for every folder vitbench writes (runs, sweeps, studies, subsets, reports).

- A new or empty folder is created.
- A folder that is not vitbench's (no marker of the right kind) is never touched.
- One of ours is continued only with `--resume` and redone only with `--overwrite`; redoing removes
  only the files vitbench wrote there, and refuses while anything else is in the folder.

Each caller describes its folder once with an `OutputFolder` (kind, marker file, how to tell that
the marker is ours, which files it writes) and calls `prepare(out, resume, overwrite)`.
"""
import fnmatch
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from models.errors import ConfigError, ResultsError

NEW, RESUME, OVERWRITE = "new", "resume", "overwrite"
TEMPORARY = ".*.tmp"  # what models.atomic leaves behind when killed mid-write


@dataclass(frozen=True)
class OutputFolder:
    kind: str  # "sweep", "run", "study", "subset", "report": what the folder holds
    marker: str  # the file that marks the folder as vitbench's
    holds: str  # how a refusal names its content: "a sweep", "results"
    is_marked: Callable[[Path], bool]  # does the marker file (which exists) say the folder is ours?
    written: tuple = ()  # glob patterns (relative paths) of what vitbench writes here, marker included
    listed: Callable[[Path], set] | None = None  # more relative paths vitbench wrote (e.g. a manifest's list)
    resume_hint: str = ""  # e.g. "continue it": the folder can be resumed with --resume
    error: type = ResultsError

    def is_ours(self, out):
        marker = Path(out) / self.marker
        try:
            return marker.is_file() and bool(self.is_marked(marker))
        except (OSError, ValueError, KeyError, TypeError):  # unreadable or foreign marker content
            return False

    def prepare(self, out, resume=False, overwrite=False):
        """Check `out` against the policy; returns NEW, RESUME or OVERWRITE. Foreign folders raise."""
        out = Path(out)
        if resume and overwrite:
            raise ConfigError("--resume and --overwrite contradict each other; pick one")
        if out.exists() and not out.is_dir():
            raise self.error(f"{out} is a file, not a folder; choose another --out")
        if not out.exists() or not any(out.iterdir()):
            if resume:
                raise self.error(f"{out} holds no {self.kind} to resume; start it without --resume")
            return NEW
        if not self.is_ours(out):
            raise self.error(f"{out} is not a vitbench {self.kind} folder (no {self.marker}) and already holds "
                             "other files; choose another --out")
        if resume and self.resume_hint:
            return RESUME
        if overwrite:
            self.refuse_foreign(out)
            return OVERWRITE
        hint = f"--resume to {self.resume_hint} or " if self.resume_hint else ""
        raise self.error(f"{out} already holds {self.holds}; pass {hint}--overwrite to "
                         f"{'start over' if self.resume_hint else 'replace it'}, or choose another --out")

    def ours(self, out):
        """Relative paths (files and symlinks) under `out` that vitbench wrote."""
        out = Path(out)
        listed = self.listed(out) if self.listed else set()
        found = set()
        for path in out.rglob("*"):
            if path.is_dir() and not path.is_symlink():
                continue
            relative = path.relative_to(out).as_posix()
            patterns = (*self.written, TEMPORARY, f"*/{TEMPORARY}")
            if relative in listed or any(fnmatch.fnmatch(relative, pattern) for pattern in patterns):
                found.add(relative)
        return found

    def foreign(self, out):
        """Relative paths under `out` that vitbench did not write, sorted."""
        out = Path(out)
        ours = self.ours(out)
        return sorted(relative for relative in (p.relative_to(out).as_posix() for p in out.rglob("*")
                                                if not p.is_dir() or p.is_symlink()) if relative not in ours)

    def refuse_foreign(self, out):
        foreign = self.foreign(out)
        if foreign:
            more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
            raise self.error(f"{out} holds {foreign[0]}{more}, which vitbench did not write; move it away or "
                             "choose another --out (--overwrite only replaces vitbench's own files)")

    def clear(self, out):
        """Remove a folder of ours for --overwrite; refuses if anything vitbench did not write is in it."""
        self.refuse_foreign(out)
        shutil.rmtree(out)

    def start(self, out, resume=False, overwrite=False):
        """`prepare`, then clear an overwritten folder and create it; returns NEW, RESUME or OVERWRITE."""
        mode = self.prepare(out, resume, overwrite)
        if mode == OVERWRITE:
            self.clear(out)
        Path(out).mkdir(parents=True, exist_ok=True)
        return mode

    def discard(self, out):
        """Remove a folder of ours that a failed start left, unless it holds anything vitbench did not write."""
        out = Path(out)
        if out.is_dir() and (self.is_ours(out) or not any(out.iterdir())) and not self.foreign(out):
            shutil.rmtree(out)
