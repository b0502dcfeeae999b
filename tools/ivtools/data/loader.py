"""Samplers and DataLoaders that shard across ranks and resume mid-epoch exactly."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ivtools.data.video_dataset import collate_samples
from ivtools.distributed import get_rank, get_world_size


class ResumableSampler(Sampler):
    """A distributed sampler whose position can be saved and restored within an epoch.

    Yields ``(index, epoch)`` keys so that datasets can seed per-item randomness from them.
    Training (``shuffle=True``) follows ``DistributedSampler``: one permutation per epoch seeded
    by ``seed + epoch``, padded by wrapping so every rank gets the same count. Evaluation
    (``shuffle=False``) splits the indices without padding, so no sample is scored twice.
    """

    def __init__(
        self,
        num_samples: int,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
    ):
        if num_samples <= 0:
            raise ValueError("cannot sample from an empty dataset")
        self.num_samples, self.shuffle, self.seed = num_samples, shuffle, seed
        self.num_replicas = get_world_size() if num_replicas is None else num_replicas
        self.rank = get_rank() if rank is None else rank
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.start = 0

    def set_start(self, start: int) -> None:
        """Skip the first ``start`` samples of this rank's share of the current epoch."""
        self.start = start

    def _indices(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.rank, self.num_samples, self.num_replicas))
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.num_samples, generator=g).tolist()
        total = math.ceil(self.num_samples / self.num_replicas) * self.num_replicas
        order += (order * math.ceil(total / len(order)))[: total - len(order)]
        return order[self.rank : total : self.num_replicas]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for index in self._indices()[self.start :]:
            yield index, self.epoch

    def __len__(self) -> int:
        return len(self._indices()) - self.start

    def epoch_size(self) -> int:
        """Samples this rank sees in a whole epoch (ignoring any resume offset)."""
        return len(self._indices())

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "start": self.start}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.start = int(state["epoch"]), int(state["start"])


def build_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    train: bool,
    num_workers: int = 4,
    seed: int = 0,
    pin_memory: bool = True,
    drop_last: bool | None = None,
    collate_fn: Callable[[list], Any] | None = None,
) -> DataLoader:
    """A DataLoader over :class:`ResumableSampler` (``loader.sampler``) for this rank.

    ``collate_fn`` replaces :func:`collate_samples` (e.g. to pad variable-length token sequences).

    The loader owns its generator so that creating an iterator never consumes the training
    loop's global random state (a resumed run would otherwise diverge).
    """
    sampler = ResumableSampler(len(dataset), shuffle=train, seed=seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory and torch.cuda.is_available(),
        drop_last=train if drop_last is None else drop_last,
        collate_fn=collate_fn or collate_samples,
        persistent_workers=num_workers > 0,
        generator=torch.Generator().manual_seed(seed),
        prefetch_factor=4 if num_workers > 0 else None,
    )
