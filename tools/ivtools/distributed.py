"""torch.distributed set-up that works the same under torchrun, SLURM, and as one plain process.

``init_distributed()`` reads the launcher's environment (torchrun's ``RANK``/``WORLD_SIZE``/
``LOCAL_RANK``, or SLURM's ``SLURM_PROCID``/``SLURM_NTASKS``/``SLURM_LOCALID``), picks NCCL on
CUDA and gloo on the CPU, and returns a :class:`DistInfo`. Without any of those variables it
returns a single-process ``DistInfo`` and creates no process group, so every helper below is a
no-op and the same training script runs on a laptop.
"""

from __future__ import annotations

import atexit
import os
import subprocess
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _slurm_master_addr() -> str:
    nodelist = os.environ.get("SLURM_NODELIST") or os.environ.get("SLURM_JOB_NODELIST", "")
    if not nodelist:
        return "127.0.0.1"
    try:
        hosts = subprocess.run(
            ["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, check=True
        ).stdout.split()
        return hosts[0]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return nodelist.split(",")[0].split("[")[0]


def _ranks_from_env() -> tuple[int, int, int] | None:
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0))
    if "SLURM_PROCID" in os.environ and int(os.environ.get("SLURM_NTASKS", 1)) > 1:
        rank, world = int(os.environ["SLURM_PROCID"]), int(os.environ["SLURM_NTASKS"])
        local = int(os.environ.get("SLURM_LOCALID", 0))
        os.environ.setdefault("MASTER_ADDR", _slurm_master_addr())
        os.environ.setdefault("MASTER_PORT", "29500")
        os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(local))
        return rank, world, local
    return None


def init_distributed(device: str | None = None, backend: str | None = None) -> DistInfo:
    """Initialise the process group from the launcher's environment (idempotent).

    ``device``: ``"cuda"``, ``"cpu"`` or ``None`` (CUDA when available).
    """
    want_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    ranks = _ranks_from_env()
    if ranks is None:
        dev = torch.device("cuda", 0) if want_cuda else torch.device("cpu")
        if want_cuda:
            torch.cuda.set_device(dev)
        return DistInfo(device=dev)
    rank, world, local = ranks
    dev = torch.device("cuda", local) if want_cuda else torch.device("cpu")
    if want_cuda:
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(
            backend=backend or ("nccl" if want_cuda else "gloo"),
            rank=rank,
            world_size=world,
            device_id=dev if want_cuda else None,
        )
        # A process that exits with its group alive can abort in the backend's threads at exit.
        atexit.register(_destroy_process_group)
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=dev)


def _destroy_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def get_rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    return get_rank() == 0


def barrier() -> None:
    if get_world_size() > 1:
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum of ``tensor`` over ranks (a copy; the input is unchanged)."""
    out = tensor.detach().clone()
    if get_world_size() > 1:
        dist.all_reduce(out)
    return out


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Mean of ``tensor`` over ranks (a copy; the input is unchanged)."""
    return all_reduce_sum(tensor) / get_world_size()


def all_gather_concat(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` from every rank along dim 0 (no gradient; equal shapes)."""
    if get_world_size() == 1:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor):
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor.contiguous())
        return tuple(parts)

    @staticmethod
    def backward(ctx, *grads):
        # Every rank's loss depends on every gathered slice: sum the slices' gradients
        # across ranks and keep this rank's own.
        stacked = torch.stack(grads)
        dist.all_reduce(stacked)
        return stacked[dist.get_rank()]


def all_gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` from every rank along dim 0, letting gradients flow back.

    Contrastive losses use this so each rank scores its samples against the global batch.
    """
    if get_world_size() == 1:
        return tensor
    return torch.cat(_GatherWithGrad.apply(tensor))


def all_gather_object(obj) -> list:
    """Every rank's ``obj`` (picklable), in rank order."""
    if get_world_size() == 1:
        return [obj]
    out = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out
