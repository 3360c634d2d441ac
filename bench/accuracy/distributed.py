"""One process per device, started by `torchrun`: process group, device, samplers and reductions.

Without torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK) everything degrades to a single
process, so the same training code runs on a laptop CPU and on several GPUs or nodes.
"""
import contextlib
import os
import subprocess
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler, Sampler

from models.errors import ConfigError


@dataclass(frozen=True)
class Context:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self):
        return self.rank == 0

    @property
    def distributed(self):
        return self.world_size > 1


def from_slurm(environ=os.environ):
    """torchrun's variables taken from Slurm's in a task of `srun` with several tasks (as timm's
    init_distributed_device reads SLURM_PROCID, SLURM_LOCALID and the task count): the rendezvous is the step's
    first node on a port from the job id. Nothing changes where torchrun's variables are already set, or in a job's
    batch script (no srun step: its task count is not this process's world)."""
    tasks = int(environ.get("SLURM_STEP_NUM_TASKS", "1"))
    if "WORLD_SIZE" in environ or tasks < 2 or "SLURM_PROCID" not in environ:
        return {}
    nodes = environ.get("SLURM_STEP_NODELIST") or environ.get("SLURM_JOB_NODELIST", "127.0.0.1")
    first = subprocess.run(["scontrol", "show", "hostnames", nodes], capture_output=True, text=True,
                           check=False).stdout.split() if any(c in nodes for c in "[,") else [nodes]
    return {"WORLD_SIZE": str(tasks), "RANK": environ["SLURM_PROCID"], "LOCAL_RANK": environ.get("SLURM_LOCALID", "0"),
            "MASTER_ADDR": environ.get("MASTER_ADDR") or (first or [nodes])[0],
            "MASTER_PORT": environ.get("MASTER_PORT") or str(20000 + int(environ.get("SLURM_JOB_ID", "0")) % 20000)}


def setup(device=None):
    """Join the process group torchrun (or srun: `from_slurm`) describes (once per process) and pick this rank's
    device."""
    os.environ.update(from_slurm())
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    try:
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError:
        raise ConfigError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {str(device)!r} requested but torch sees no CUDA GPU; use --device cpu")
    if device.type == "cuda":
        if world_size > 1 or device.index is None:
            device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Context(rank, world_size, local_rank, device)


def train_sampler(dataset, context, seed):
    """Shuffled shards, one per rank; `set_epoch` reshuffles deterministically from (seed, epoch)."""
    return DistributedSampler(dataset, num_replicas=context.world_size, rank=context.rank, shuffle=True, seed=seed)


class ShardSampler(Sampler):
    """Every rank-th index from `rank`: exact coverage without the padding DistributedSampler adds."""

    def __init__(self, length, context):
        self.indices = range(context.rank, length, context.world_size)

    def __iter__(self):
        return iter(self.indices)

    def __len__(self):
        return len(self.indices)


def all_reduce_sum(tensor, context):
    """Sum `tensor` over ranks in place (no-op for one process) and return it."""
    if context.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_objects(obj, context):
    """[obj of rank 0, obj of rank 1, ...]; [obj] for one process."""
    if not context.distributed:
        return [obj]
    gathered = [None] * context.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def is_main_process():
    """Rank 0, or the only process; known from torchrun's environment even before `setup`."""
    return (dist.get_rank() if dist.is_initialized() else int(os.environ.get("RANK", "0"))) == 0


def teardown():
    """Leave the process group (end of a command), so the next setup starts clean."""
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(context):
    if context.distributed:
        dist.barrier()


@contextlib.contextmanager
def cpu_threads(threads):
    """torch's CPU intra-op thread count set to `threads` inside the block (None: unchanged), then restored."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
