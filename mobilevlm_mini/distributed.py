"""Data-parallel training with PyTorch's own engine: torchrun starts the processes, DDP averages gradients (lesson 13).

`torchrun --nproc_per_node=2 -m mobilevlm_mini train ...` starts two processes with RANK, WORLD_SIZE
and a rendezvous address in their environment; `setup` joins them into one process group (gloo on
CPU, nccl on CUDA). Every process builds the same model from the same seed and draws the same global
batch; each trains on its own share of the rows (`shard`), DistributedDataParallel averages the
gradients during backward, so every process takes the same optimizer step and the weights stay equal
everywhere. Only the main process (rank 0) validates, writes checkpoints and prints.

Public API
- `world()` -> (rank, world_size), `is_main()`, `launched()`: where this process stands.
- `setup(device)`, `teardown()`: join and leave torchrun's process group.
- `shard(tensors)`: this process's rows of a global batch; `main_first()`: a block the main process runs first.
- `global_sum(values)`: a tensor summed over every process (itself when alone).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
import torch.distributed as dist


def world() -> tuple[int, int]:
    """(rank, world_size) of this process: (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """True on the process that validates, saves and prints (rank 0), and in a run of one process."""
    return world()[0] == 0


def launched() -> bool:
    """True in a process that torchrun started as one of several (WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: torch.device) -> None:
    """Join torchrun's process group (gloo on CPU, nccl on CUDA) when launched as one of several processes."""
    if not launched() or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def teardown() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shard(tensors: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """This process's share of a global batch: the same contiguous block of rows of every tensor (B, ...)."""
    rank, size = world()
    return tensors if size == 1 else tuple(t.tensor_split(size)[rank] for t in tensors)


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """Run the block on the main process first (it builds any missing cached piece), then on the others (they read
    it)."""
    rank, size = world()
    if size > 1 and rank != 0:
        dist.barrier()
    yield
    if size > 1 and rank == 0:
        dist.barrier()


def global_sum(values: torch.Tensor) -> torch.Tensor:
    """`values` summed over every process of the group (a copy; `values` itself when alone)."""
    if world()[1] == 1:
        return values
    total = values.detach().clone()
    dist.all_reduce(total)
    return total
