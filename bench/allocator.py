"""What the C allocator does with the CPU memory a step frees: the policy every timing runs under.

With glibc's defaults a block above the mmap threshold gets a fresh mapping and is unmapped when
freed. The threshold rises with use, but never above 32 MiB, so every activation larger than that
is page-faulted in again at every step: a batch-32 ViT-S/16's MLP activations, the reference
T2T-ViT_t-14's 315 MB attention matrices (which then ran at a speed that changed from process to
process). `steady` keeps freed memory in the process for the next step, as the jemalloc and
tcmalloc that PyTorch's CPU tuning guide recommends do; `system` leaves the C library as it is.
Measured: results/pairs-20261126-allocator.

The policy is the process's: memory once kept is not given back, so a process that has timed
`steady` cannot time `system` after it.
"""
import ctypes
import functools
import os
import platform

from bench.configs import ALLOCATORS as POLICIES
from models.errors import ConfigError

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, from glibc's malloc.h
KEEP_BYTES = 2**31 - 1  # mallopt takes an int: blocks up to 2 GiB come from the heap, which is never trimmed
PRELOADED = ("jemalloc", "tcmalloc", "mimalloc")

_kept = False  # whether this process already keeps freed memory


@functools.cache
def libc_name():
    """'glibc', or what else the C library is ('' when unknown): `platform.libc_ver` reads the
    interpreter's binary, so once per process."""
    return platform.libc_ver()[0]


def preloaded_allocator():
    """The allocator LD_PRELOAD puts in front of the C library's, if it is a known one."""
    preload = os.environ.get("LD_PRELOAD", "")
    return next((name for name in PRELOADED if name in preload), None)


def check_policy(policy):
    if policy not in POLICIES:
        raise ConfigError(f"unknown allocator {policy!r}; choose one of {list(POLICIES)}")
    return policy


def use_allocator(policy):
    """Put this process under `policy` (idempotent); a no-op where the C library is not glibc or
    another allocator is preloaded (`allocator_in_effect` says which)."""
    global _kept
    if check_policy(policy) == "system":
        if _kept:
            raise ConfigError("this process already keeps freed memory (allocator 'steady'); "
                              "time allocator 'system' in a new process")
        return
    if _kept or preloaded_allocator() or libc_name() != "glibc":
        return
    libc = ctypes.CDLL(None)
    if not (libc.mallopt(M_MMAP_THRESHOLD, KEEP_BYTES) and libc.mallopt(M_TRIM_THRESHOLD, KEEP_BYTES)):
        raise ConfigError("glibc refused to keep freed memory (mallopt failed); time with allocator 'system'")
    _kept = True


def allocator_in_effect():
    """One line for provenance: which allocator served this process's CPU memory, and how."""
    return describe_policy("steady" if _kept else "system")


def describe_policy(policy):
    """One line for provenance: the allocator that `policy` gives this process (a preloaded one wins; the steady
    policy keeps freed memory only under glibc)."""
    if preloaded := preloaded_allocator():
        return f"{preloaded} (LD_PRELOAD)"
    if check_policy(policy) == "steady" and libc_name() == "glibc":
        return "steady (glibc, freed memory kept: no mmap, no trim)"
    return f"system ({libc_name() or 'C library'} defaults)"
