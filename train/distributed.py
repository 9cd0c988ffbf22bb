"""Data-parallel training across processes (torchrun): who this process is, and the few collectives
the pipeline needs.

`mke-train` started by `torchrun --nproc-per-node N --no-python mke-train …` finds RANK, WORLD_SIZE
and LOCAL_RANK in its environment; without torchrun this process is rank 0 of a world of 1 and every
function here does nothing (or returns its argument), so single-process runs never touch
torch.distributed. The process group uses NCCL for CUDA devices and gloo for CPUs.
"""
from __future__ import annotations

import dataclasses
import os

import torch

from mke.runtime.errors import MkeError


@dataclasses.dataclass(frozen=True)
class World:
    """This process's place among the torchrun processes of one training."""

    rank: int          # 0 … size-1 across all machines
    size: int          # number of processes (WORLD_SIZE)
    local_rank: int    # index on this machine: which GPU it uses

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes files and shows progress."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise MkeError(f"environment variable {name}={value!r} is not an integer (torchrun sets it)") from None


def world() -> World:
    """This process's rank, world size and local rank from torchrun's environment; World(0, 1, 0)
    without torchrun."""
    size = _env_int("WORLD_SIZE", 1)
    if size < 1:
        raise MkeError(f"WORLD_SIZE={size}: must be 1 or more")
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if not 0 <= rank < size:
        raise MkeError(f"RANK={rank} is outside 0..WORLD_SIZE-1={size - 1}")
    return World(rank, size, local_rank)


def _active() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def joined() -> World:
    """This process's place in the process group it has joined (`init`, or any init_process_group);
    World(0, 1, 0) outside one, whatever the environment says. For work split by rank that also
    needs the group's collectives (the sharded pseudo-label pass, the sharded rendering): without a
    group there is nobody to share with."""
    if not _active():
        return World(0, 1, 0)
    return World(torch.distributed.get_rank(), torch.distributed.get_world_size(), _env_int("LOCAL_RANK", 0))


def backend_for(device: str) -> str:
    """NCCL for CUDA devices (GPU-to-GPU collectives), gloo for CPUs."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def init(device: str) -> World:
    """Join the torchrun process group (once; later calls return the same World) when WORLD_SIZE > 1:
    NCCL for `device` cuda, gloo for cpu. On CUDA each process uses the GPU of its LOCAL_RANK."""
    me = world()
    if me.size == 1 or _active():
        return me
    if not torch.distributed.is_available():
        raise MkeError(f"this PyTorch ({torch.__version__}) was built without torch.distributed; "
                       "run without torchrun or install a PyTorch build with it")
    backend = backend_for(device)
    if backend == "nccl":
        if not torch.cuda.is_available():
            raise MkeError("device cuda under torchrun: this PyTorch sees no CUDA GPU; set device: cpu")
        if me.local_rank >= torch.cuda.device_count():
            raise MkeError(f"LOCAL_RANK={me.local_rank} but this machine has {torch.cuda.device_count()} GPUs; "
                           "start torchrun with --nproc-per-node at most the number of GPUs")
        torch.cuda.set_device(me.local_rank)
    elif not torch.distributed.is_gloo_available():
        raise MkeError(f"this PyTorch ({torch.__version__}) has no gloo backend for CPU training under torchrun")
    torch.distributed.init_process_group(backend=backend)
    return me


def shutdown() -> None:
    """Leave the process group (at the end of `mke-train`); nothing without one."""
    if _active():
        torch.distributed.destroy_process_group()


def barrier() -> None:
    """Wait until every rank gets here (e.g. until rank 0 has written a checkpoint the others read)."""
    if _active() and torch.distributed.get_world_size() > 1:
        torch.distributed.barrier()


def all_gather_object(obj) -> list:
    """`obj` of every rank, in rank order; `[obj]` in a single process."""
    if not _active() or torch.distributed.get_world_size() == 1:
        return [obj]
    out = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(out, obj)
    return out


def broadcast_object(obj, src: int = 0):
    """Rank `src`'s `obj` on every rank (the others' argument is ignored); `obj` in a single process."""
    if not _active() or torch.distributed.get_world_size() == 1:
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=src)
    return box[0]


def reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """The mean of `t` over all ranks (a new tensor; `t` itself in a single process)."""
    if not _active() or torch.distributed.get_world_size() == 1:
        return t
    out = t.detach().clone()
    torch.distributed.all_reduce(out, op=torch.distributed.ReduceOp.SUM)
    return out / torch.distributed.get_world_size()


def reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """The sum of `t` over all ranks (a new tensor; `t` itself in a single process)."""
    if not _active() or torch.distributed.get_world_size() == 1:
        return t
    out = t.detach().clone()
    torch.distributed.all_reduce(out, op=torch.distributed.ReduceOp.SUM)
    return out


def local_size() -> int:
    """How many torchrun processes share this machine (LOCAL_WORLD_SIZE; 1 without torchrun): they
    share its CPU cores."""
    return max(1, _env_int("LOCAL_WORLD_SIZE", 1))


def cores_per_process() -> int:
    """The CPU cores this process may train on: the cores its affinity mask allows (what taskset, a
    container's cpuset or a batch scheduler leaves it; every core where the system keeps no mask),
    shared evenly by the torchrun processes of this machine (`local_size`), at least 1. Each machine
    of a multi-node run counts its own cores and its own processes."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # a system without affinity masks (macOS, Windows)
        cores = os.cpu_count() or 1
    return max(1, cores // local_size())
