"""Data packing for supervised fine-tuning, after InternVL's ``--use_packed_ds``.

Several tokenised conversations are concatenated into one sequence of at most
``max_packed_tokens`` tokens and ``num_images_expected`` video tiles, so that short samples do not
waste a padded batch row. Each token keeps a sample id (attention stays inside its sample, see
:mod:`internvideo2_5.models.packed`) and a position counted from 0 at its sample's first token.

InternVL (``internvl/train/dataset_packed.py``) packs on the fly: an iterable dataset keeps a
buffer of partly filled packs, puts each new sample into the first pack it fits (tokens and
images), emits a pack once it holds exactly ``num_images_expected`` images or ``max_packed_tokens``
tokens, and the fullest pack (most images) when more than ``max_buffer_size`` are open. Here the
same first-fit rule with the same buffer bound runs once, before training, on the samples' sizes
(known without decoding any video when every frame is one tile): the result is a fixed list of
packs that ``ivtools``' resumable sampler shuffles every epoch, so every sample is seen exactly
once per epoch, the number of updates per epoch is known in advance, and resuming mid-epoch is
exact. Unlike InternVL, which packs samples differently every epoch, the grouping is drawn once
(from ``--seed``).

InternVL splits a sample longer than ``max_packed_tokens`` at image boundaries (``split_buffer``,
pieces without an image or with almost no supervised token are dropped) and drops a sample with
more than ``num_images_expected`` images (logging an error). Here such a sample is an error before
training starts: cutting a video sample would break HiCo's groups of frames and train an answer
without its question. ``--max_seq_length`` truncates text beyond the video tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch.utils.data import Dataset

from internvideo2_5.constants import IGNORE_INDEX
from internvideo2_5.data.sft import VideoInstructionDataset
from ivtools.video import VideoReadError

PADDING_SAMPLE_ID = -1


@dataclass(frozen=True)
class PackingLimits:
    """InternVL's packing arguments and their defaults (``internvl_chat_finetune.py``)."""

    max_packed_tokens: int = 8192
    num_images_expected: int = 40
    max_buffer_size: int = 20


@dataclass
class _OpenPack:
    members: list[int] = field(default_factory=list)
    tokens: int = 0
    tiles: int = 0

    def fits(self, tokens: int, tiles: int, limits: PackingLimits) -> bool:
        return (
            self.tokens + tokens <= limits.max_packed_tokens
            and self.tiles + tiles <= limits.num_images_expected
        )

    def is_full(self, limits: PackingLimits) -> bool:
        return self.tokens == limits.max_packed_tokens or self.tiles == limits.num_images_expected


def _check_fits_alone(index: int, tokens: int, tiles: int, limits: PackingLimits) -> None:
    if tokens > limits.max_packed_tokens or tiles > limits.num_images_expected:
        raise ValueError(
            f"sample {index} has {tokens} tokens and {tiles} tiles, more than a pack holds "
            f"(--max_packed_tokens {limits.max_packed_tokens}, --num_images_expected "
            f"{limits.num_images_expected}); raise them, lower --num_frames or set --max_seq_length"
        )


def plan_packs(
    sizes: Sequence[tuple[int, int]], order: Sequence[int], limits: PackingLimits
) -> list[list[int]]:
    """Group sample indices (taken in ``order``) into packs; ``sizes[i]`` is ``(tokens, tiles)`` of sample i.

    First fit over at most ``max_buffer_size`` open packs; a pack closes when it is exactly full
    (tokens or tiles) or, when too many are open, the one with the most tiles closes (InternVL
    keeps its buffer sorted by image count and emits the first).
    """
    if min(limits.max_packed_tokens, limits.num_images_expected, limits.max_buffer_size) < 1:
        raise ValueError(f"packing limits must be positive, got {limits}")
    open_packs: list[_OpenPack] = []
    closed: list[list[int]] = []
    for index in order:
        tokens, tiles = sizes[index]
        _check_fits_alone(index, tokens, tiles, limits)
        pack = next((p for p in open_packs if p.fits(tokens, tiles, limits)), None)
        if pack is None:
            pack = _OpenPack()
            open_packs.append(pack)
        pack.members.append(index)
        pack.tokens, pack.tiles = pack.tokens + tokens, pack.tiles + tiles
        if pack.is_full(limits):
            open_packs.remove(pack)
            closed.append(pack.members)
        if len(open_packs) > limits.max_buffer_size:
            fullest = max(open_packs, key=lambda p: p.tiles)
            open_packs.remove(fullest)
            closed.append(fullest.members)
    return closed + [p.members for p in open_packs]


class PackedInstructionDataset(Dataset):
    """Items ``{samples: [encoded sample, ...], skipped}``, one per pack of ``plan_packs``.

    The sample order before packing is a permutation drawn from ``seed``. An unreadable video
    drops its sample from the pack (counted in ``skipped``); a pack left empty is replaced by the
    next one, as :class:`VideoInstructionDataset` replaces an unreadable sample.
    """

    def __init__(self, samples: VideoInstructionDataset, limits: PackingLimits, seed: int = 0):
        self.samples = samples
        self.sizes = [samples.planned_size(i) for i in range(len(samples))]
        order = torch.randperm(len(samples), generator=torch.Generator().manual_seed(seed)).tolist()
        self.packs = plan_packs(self.sizes, order, limits)

    def __len__(self) -> int:
        return len(self.packs)

    def _encode_member(self, index: int) -> dict[str, torch.Tensor]:
        item = self.samples.encode(self.samples.conversations[index])
        tokens, tiles = len(item["input_ids"]), item["pixel_values"].shape[0]
        if (tokens, tiles) != self.sizes[index]:
            # the plan's limits would no longer hold; this means the size estimate is wrong
            raise RuntimeError(
                f"sample {index} has {(tokens, tiles)} (tokens, tiles), planned {self.sizes[index]}"
            )
        return item

    def _encode_pack(self, members: Sequence[int]) -> tuple[list[dict], int]:
        encoded, skipped = [], 0
        for index in members:
            try:
                encoded.append(self._encode_member(index))
            except VideoReadError:
                skipped += 1
        return encoded, skipped

    def __getitem__(self, key) -> dict:
        index = key[0] if isinstance(key, tuple) else key
        skipped = 0
        for offset in range(len(self)):
            encoded, missing = self._encode_pack(self.packs[(index + offset) % len(self)])
            skipped += missing
            if encoded:
                return {"samples": encoded, "skipped": skipped}
        raise VideoReadError(f"none of the {len(self.samples)} videos of the instruction data could be read")


@dataclass
class PackedCollator:
    """One row per pack, right-padded; every token carries its sample id and in-sample position.

    Sample ids are numbered across the whole batch (padding: ``PADDING_SAMPLE_ID``), so that they
    also tell the samples of different rows apart in the loss.
    """

    pad_token_id: int

    def __call__(self, packs: Sequence[dict]) -> dict[str, torch.Tensor]:
        length = max(sum(len(s["input_ids"]) for s in pack["samples"]) for pack in packs)
        shape = (len(packs), length)
        input_ids = torch.full(shape, self.pad_token_id, dtype=torch.long)
        labels = torch.full(shape, IGNORE_INDEX, dtype=torch.long)
        sample_ids = torch.full(shape, PADDING_SAMPLE_ID, dtype=torch.long)
        position_ids = torch.zeros(shape, dtype=torch.long)
        sample_id = 0
        for row, pack in enumerate(packs):
            start = 0
            for sample in pack["samples"]:
                end = start + len(sample["input_ids"])
                input_ids[row, start:end], labels[row, start:end] = sample["input_ids"], sample["labels"]
                sample_ids[row, start:end] = sample_id
                position_ids[row, start:end] = torch.arange(end - start)
                start, sample_id = end, sample_id + 1
        return {
            "input_ids": input_ids,
            "labels": labels,
            "sample_ids": sample_ids,
            "position_ids": position_ids,
            "pixel_values": torch.cat([s["pixel_values"] for pack in packs for s in pack["samples"]]),
            "skipped": torch.tensor([pack["skipped"] for pack in packs]),
        }
