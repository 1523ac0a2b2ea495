"""Data-parallel fine-tuning under ``torchrun``: which process this is, and the collectives.

``torchrun --nproc_per_node N -m mgi_core train …`` starts N copies of the command with
``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` set. Each process holds a full copy of the model
(PyTorch ``DistributedDataParallel``: gradients are averaged across processes by an
all-reduce after every backward pass), takes every N-th review of each global batch, and
embeds its share of the texts that every process needs (validation, the head warm-up),
which are then gathered. Rank 0 alone owns the database and writes the run folder; the
others only compute. Backend: NCCL on CUDA GPUs (one GPU per process, ``LOCAL_RANK``),
gloo on CPUs.

Nothing here runs a process pool or a socket protocol of its own: torchrun starts the
processes and ``torch.distributed`` moves the tensors.
"""

from __future__ import annotations

import datetime
import gc
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

# Collectives wait this long for a slow peer (rank 0 exports the snapshot before the others
# can start; a first epoch on a CPU can be long) before failing the run.
TIMEOUT = datetime.timedelta(hours=2)


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        """More than one process trains together."""
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that opens the database and writes the run folder."""
        return self.rank == 0

    def shard(self, items: Sequence[Any]) -> Sequence[Any]:
        """This process's share of ``items``: every ``size``-th one from ``rank``."""
        return items[self.rank::self.size]


def world_from_env(env: Mapping[str, str] | None = None) -> World:
    """The world torchrun describes in ``env`` (default: this process's environment)."""
    env = os.environ if env is None else env
    try:
        size = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError:
        return World()
    if size <= 1:
        return World()
    if not 0 <= rank < size:
        raise ValueError(f"RANK {rank} is outside WORLD_SIZE {size}")
    return World(rank, size, local)


def current_world() -> World:
    """The world of the initialised process group, or a single process when none is."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return world_from_env()


def init(world: World, device_type: str) -> None:
    """Join the process group of ``world`` (once): NCCL for CUDA, gloo otherwise.

    On CUDA each process takes GPU ``LOCAL_RANK``, so ``torch.device('cuda')`` means its
    own GPU from here on.
    """
    if not world.active or dist.is_initialized():
        return
    if device_type == "cuda":
        torch.cuda.set_device(world.local_rank)
    backend = "nccl" if device_type == "cuda" else "gloo"
    dist.init_process_group(backend, rank=world.rank, world_size=world.size, timeout=TIMEOUT)


def shutdown() -> None:
    """Leave the process group (a no-op when there is none).

    Objects that still use the group (a DistributedDataParallel wrapper sits in reference
    cycles through its hooks) are collected first: destroyed after the group, at interpreter
    exit, they abort the process ("terminate called without an active exception").
    """
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


def barrier(world: World) -> None:
    """Wait until every process gets here."""
    if world.active:
        dist.barrier()


def broadcast_object(obj: Any, world: World) -> Any:
    """Rank 0's ``obj`` on every process (pickled; for a path or a message, not tensors)."""
    if not world.active:
        return obj
    box = [obj if world.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def any_rank(flag: bool, world: World) -> bool:
    """True on every process when ``flag`` is True on any (e.g. a cancel seen by one)."""
    if not world.active:
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=_collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def all_sum(values: Sequence[float], world: World) -> list[float]:
    """Element-wise sum of ``values`` over the processes."""
    if not world.active:
        return list(values)
    t = torch.tensor(list(values), dtype=torch.float64, device=_collective_device())
    dist.all_reduce(t)
    return t.cpu().tolist()


def gather_rows(local: torch.Tensor, n_total: int, world: World) -> torch.Tensor:
    """The (n_total, d) matrix whose rows ``rank, rank + size, …`` are each process's
    ``local`` rows (the inverse of ``World.shard``), on every process."""
    if not world.active:
        return local
    longest = -(-n_total // world.size)
    padded = local.new_zeros((longest, *local.shape[1:]))
    padded[:len(local)] = local
    parts = [torch.zeros_like(padded) for _ in range(world.size)]
    dist.all_gather(parts, padded)
    out = local.new_empty((n_total, *local.shape[1:]))
    for rank, part in enumerate(parts):
        k = len(range(rank, n_total, world.size))
        out[rank::world.size] = part[:k]
    return out


def gather_with_grad(local: torch.Tensor) -> torch.Tensor:
    """Every process's ``local`` rows (the same shape on each), concatenated in rank order,
    with gradients flowing back to the process that computed each row
    (``torch.distributed.nn.functional.all_gather``)."""
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(local), dim=0)


def _collective_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def wrap_for_training(module: torch.nn.Module, world: World) -> torch.nn.Module:
    """``module`` in DistributedDataParallel when several processes train, else itself.

    DDP broadcasts rank 0's weights on wrapping, so every process starts from the same
    model. ``find_unused_parameters``: a head whose task has no label in a process's share
    of a batch gets no gradient there.
    """
    if not world.active:
        return module
    from torch.nn.parallel import DistributedDataParallel

    device = next(module.parameters()).device
    ids = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else None
    with warnings.catch_warnings():  # DDP probes transformers' deprecated attributes
        warnings.simplefilter("ignore", FutureWarning)
        return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=True)
