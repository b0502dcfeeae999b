"""Unlabelled video clips with token masks, for masked pretraining and distillation.

List format (the original's ``--data_path`` file, columns split by ``--split``)::

    <source> <path> <total_time> <start_time> <end_time> <target>

``source`` names the corpus (``ssv2`` clips are never flipped: their labels are directional);
times in seconds select a window of the video (``-1 -1 -1`` for the whole video); ``target``
is unused by pretraining. Plain Kinetics-style ``<path> <label>`` lists are read too (whole
videos, source ``""``). Paths are joined to ``--prefix``.

Clips: ``num_segments > 1`` takes one frame per segment (TSN-style, the published recipes);
otherwise ``num_frames`` frames ``sampling_rate`` apart from a random start. Augmentation: the
original's multi-scale crop (crop sides from ``scales`` of the short side, corner/centre
positions), resize to ``input_size``, optional flip, ImageNet normalisation. An unreadable
video is replaced by another (bounded retries), and the failure is counted in ``skipped``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as TF

from ivtools.data import normalize, seeded, to_video_tensor
from ivtools.video import VideoReadError, dense_indices, open_video, segment_indices

logger = logging.getLogger(__name__)

MULTI_SCALES = (1.0, 0.875, 0.75, 0.66)


@dataclass(frozen=True)
class PretrainRecord:
    source: str
    path: str
    total_time: float = -1.0
    start_time: float = -1.0
    end_time: float = -1.0

    @property
    def has_window(self) -> bool:
        return self.total_time > 0 and self.start_time >= 0 and self.end_time > self.start_time


def read_pretrain_list(path: str | os.PathLike, sep: str = " ", prefix: str = "") -> list[PretrainRecord]:
    """Read a pretraining list (six columns, or ``path label``); errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretraining list not found: {path}")
    records = []
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.strip().split(sep if sep.strip() else None)
        where = f"{path}:{line_no}"
        if len(parts) == 6:
            source, rel = parts[0], parts[1]
            try:
                times = [float(x) for x in parts[2:5]]
            except ValueError:
                raise ValueError(
                    f"{where}: total/start/end times must be numbers, got {parts[2:5]}"
                ) from None
        elif len(parts) == 2:
            source, rel, times = "", parts[0], [-1.0, -1.0, -1.0]
        else:
            raise ValueError(
                f"{where}: expected 'source path total_time start_time end_time target' or 'path label', "
                f"got {len(parts)} columns: {line!r}"
            )
        full = os.path.join(prefix, rel) if prefix and not os.path.isabs(rel) else rel
        records.append(PretrainRecord(source, full, *times))
    if not records:
        raise ValueError(f"pretraining list {path} lists no videos")
    return records


class MultiScaleCrop:
    """The original ``GroupMultiScaleCrop``: one crop for every frame, then resize to ``size``.

    Crop height and width are drawn independently from ``scales`` x the short side, at most one
    scale step apart; the crop sits at one of 13 fixed positions (corners, centre, edge
    midpoints, quarter points).
    """

    def __init__(self, size: int, scales: Sequence[float] = MULTI_SCALES, max_distort: int = 1):
        self.size, self.scales, self.max_distort = size, tuple(scales), max_distort

    def params(self, height: int, width: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
        base = min(height, width)
        sides = [int(base * s) for s in self.scales]
        pairs = [
            (h, w) for i, h in enumerate(sides) for j, w in enumerate(sides) if abs(i - j) <= self.max_distort
        ]
        crop_h, crop_w = pairs[int(rng.integers(len(pairs)))]
        step_h, step_w = (height - crop_h) // 4, (width - crop_w) // 4
        offsets = [
            (0, 0), (0, 4), (4, 0), (4, 4), (2, 2),  # corners and centre
            (2, 0), (2, 4), (0, 2), (4, 2),  # edge midpoints
            (1, 1), (1, 3), (3, 1), (3, 3),  # quarter points
        ]  # fmt: skip
        oy, ox = offsets[int(rng.integers(len(offsets)))]
        return oy * step_h, ox * step_w, crop_h, crop_w

    def __call__(self, video: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        top, left, h, w = self.params(video.shape[-2], video.shape[-1], rng)
        video = video[..., top : top + h, left : left + w]
        return TF.resize(video, [self.size, self.size], antialias=True)


class PretrainVideoDataset(Dataset):
    """Items: ``video`` (3, T, H, W) float, ``mask`` (N,) bool when a generator is given, ``skipped``."""

    def __init__(
        self,
        records: Sequence[PretrainRecord],
        num_frames: int,
        sampling_rate: int = 1,
        num_segments: int = 1,
        input_size: int = 224,
        flip: bool = False,
        mask_generator: Callable[[np.random.Generator], np.ndarray] | None = None,
        num_sample: int = 1,
        seed: int = 0,
        backend: str = "auto",
        max_retries: int = 20,
    ):
        if not records:
            raise ValueError("pretraining dataset has no videos")
        self.records = list(records)
        self.num_frames, self.sampling_rate, self.num_segments = num_frames, sampling_rate, num_segments
        self.crop = MultiScaleCrop(input_size)
        self.flip, self.mask_generator = flip, mask_generator
        self.num_sample, self.seed, self.backend, self.max_retries = num_sample, seed, backend, max_retries
        self.epoch = 0

    @property
    def clip_length(self) -> int:
        return self.num_segments if self.num_segments > 1 else self.num_frames

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def frame_indices(self, record: PretrainRecord, length: int, fps: float, rng) -> list[int]:
        start = 0
        if record.has_window:
            # The window in frames, from the frame rate the annotation's total time implies.
            rate = length / record.total_time if record.total_time > 0 else fps
            start = min(int(rate * record.start_time), length - 1)
            length = max(1, min(int(rate * (record.end_time - record.start_time)), length - start))
        if self.num_segments > 1:
            local = segment_indices(length, self.num_segments, rng=rng)
        else:
            local = dense_indices(length, self.num_frames, self.sampling_rate, rng=rng)
        return [start + i for i in local]

    def _augment(self, frames: np.ndarray, record: PretrainRecord, rng) -> dict:
        video = self.crop(to_video_tensor(frames), rng)
        if self.flip and record.source != "ssv2" and rng.random() < 0.5:
            video = video.flip(-1)
        item = {"video": normalize(video)}
        if self.mask_generator is not None:
            item["mask"] = torch.from_numpy(self.mask_generator(rng))
        return item

    def __getitem__(self, key):
        index, epoch = key if isinstance(key, tuple) else (key, self.epoch)
        skipped = 0
        for attempt in range(self.max_retries):
            record = self.records[index]
            with seeded((self.seed, epoch, index, attempt)) as rng:
                try:
                    with open_video(record.path, backend=self.backend) as reader:
                        frames = reader.get_frames(self.frame_indices(record, len(reader), reader.fps, rng))
                except VideoReadError as err:
                    logger.warning("skipping unreadable video: %s", err)
                    skipped += 1
                    index = int(rng.integers(len(self.records)))
                    continue
                items = [self._augment(frames, record, rng) for _ in range(self.num_sample)]
            for i, item in enumerate(items):
                item.update(index=index, skipped=skipped if i == 0 else 0)
            return items[0] if self.num_sample == 1 else items
        raise RuntimeError(
            f"{self.max_retries} unreadable videos in a row (last: {record.path}); check --data_path and --prefix"
        )
