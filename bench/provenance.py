"""Where a number came from: date, code version, library versions, device, threads, allocator, command."""
import datetime
import platform
import shlex
import subprocess
import sys
from pathlib import Path

import torch

from bench.allocator import allocator_in_effect

REPO = Path(__file__).resolve().parents[1]


def git_commit():
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True, text=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device="cpu"):
    if str(device).startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return f"{cpu_name()} ({torch.get_num_threads()} threads)"


def library_versions():
    import fvcore
    import pandas
    import timm

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "fvcore": getattr(fvcore, "__version__", "unknown"),
        "pandas": pandas.__version__,
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
    }


def provenance(device="cpu", argv=None):
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "versions": library_versions(),
        "device": device_name(device),
        "threads": torch.get_num_threads(),
        "allocator": allocator_in_effect(),
        "command": shlex.join(argv if argv is not None else [Path(sys.argv[0]).name, *sys.argv[1:]]),
        "platform": platform.platform(),
    }
