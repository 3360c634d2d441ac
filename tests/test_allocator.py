"""The allocator policy timings run under (bench/allocator.py): what it changes, measured in a fresh process."""
import json
import platform
import subprocess
import sys

import pytest

from bench.cost.timing import TimingSetup
from models.errors import ConfigError

from .conftest import REPO

PROBE = """
import json, resource, torch
from bench.allocator import allocator_in_effect, use_allocator
from models.errors import ConfigError

def refaults(mib=64, warmup=3):
    '''Minor page faults of filling a fresh `mib` MiB tensor after `warmup` of the same size were freed
    (the heap may grow twice before small allocations stop taking the freed block's start).'''
    for _ in range(warmup):
        torch.empty(mib * 2**18).fill_(1)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.empty(mib * 2**18).fill_(1)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

use_allocator("system")
found = {"system": [refaults(), allocator_in_effect()]}
use_allocator("steady")
use_allocator("steady")
found["steady"] = [refaults(), allocator_in_effect()]
try:
    use_allocator("system")
except ConfigError as error:
    found["back"] = str(error)
print(json.dumps(found))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the steady policy acts on glibc's malloc")
def test_steady_keeps_freed_memory_and_cannot_be_undone():
    probe = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, check=True)
    found = json.loads(probe.stdout)
    (system_faults, system_says), (steady_faults, steady_says) = found["system"], found["steady"]
    assert steady_faults * 10 < system_faults  # the freed 64 MiB is reused, not mapped and faulted in again
    assert system_says.startswith("system (glibc") and steady_says.startswith("steady (glibc")
    assert "time allocator 'system' in a new process" in found["back"]


def test_unknown_policy_is_one_clear_line():
    with pytest.raises(ConfigError, match=r"allocator='fast' is not allowed; it must be one of steady, system"):
        TimingSetup(allocator="fast")
