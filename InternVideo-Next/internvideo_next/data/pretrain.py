"""Pretraining clip lists and the pretraining dataset (TSN-style frames, multi-scale crop, flip).

Rows are the original's ``<source> <path> <total_time> <start_time> <end_time> <target>`` or the
classification layout ``<path> <label>``. Clips are ``num_frames`` frames, one per equal segment
(the original's ``num_segments``) of the row's window: ``[start_time, end_time]`` seconds of a
video lasting ``total_time`` seconds, or the whole video when any of the three is ``-1``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ivtools.data import ClipSampling, TrainTransform, TrainTransformConfig, VideoClassificationDataset
from ivtools.data.annotations import VideoRecord
from ivtools.video import open_video


@dataclass(frozen=True)
class ClipRecord(VideoRecord):
    window: tuple[float, float, float] | None = None  # (total_time, start_time, end_time) seconds


def window_frames(length: int, total_time: float, start_time: float, end_time: float) -> tuple[int, int]:
    """``(first frame, frame count)`` of a window, as the original: ``fps = length / total_time``,
    ``first = int(fps * start)``, ``count = int(fps * (end - start))``, kept inside the video."""
    fps = length / total_time
    first = min(int(fps * start_time), length - 1)
    count = min(max(int(fps * (end_time - start_time)), 1), length - first)
    return first, count


def _parse_window(parts: list[str], where: str) -> tuple[float, float, float] | None:
    try:
        total, start, end = (float(x) for x in parts)
    except ValueError:
        raise ValueError(f"{where}: total/start/end times {parts} are not numbers") from None
    if -1 in (total, start, end):
        return None
    if not (total > 0 and 0 <= start < end):
        raise ValueError(
            f"{where}: window start {start} end {end} of a {total}-second video is empty or negative"
        )
    return total, start, end


def read_pretrain_list(path: str | os.PathLike, sep: str = " ", prefix: str = "") -> list[ClipRecord]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretraining list not found: {path}")
    records = []
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        parts = line.strip().split(sep if sep.strip() else None)
        if not parts or not parts[0]:
            continue
        if len(parts) == 6:
            rel, window = parts[1], _parse_window(parts[2:5], f"{path}:{line_no}")
        elif len(parts) == 2:
            rel, window = parts[0], None
        else:
            raise ValueError(
                f"{path}:{line_no}: expected 'source path total start end target' or 'path label', got {line!r}"
            )
        records.append(ClipRecord(os.path.join(prefix, rel) if prefix else rel, (0,), window=window))
    if not records:
        raise ValueError(f"pretraining list {path} lists no videos")
    return records


class PretrainDataset(VideoClassificationDataset):
    """The classification dataset, sampling inside each record's time window."""

    def load_frames(self, record: ClipRecord, clip_idx: int | None, num_clips: int, rng) -> np.ndarray:
        if record.window is None:
            return super().load_frames(record, clip_idx, num_clips, rng)
        with open_video(record.path, backend=self.backend, size=self.decode_size) as video:
            first, count = window_frames(len(video), *record.window)
            indices = self.clip.indices(count, clip_idx, num_clips, rng)
            return video.get_frames([first + i for i in indices])


def build_pretrain_dataset(
    list_path: str | os.PathLike,
    num_frames: int,
    input_size: int,
    flip: bool = True,
    prefix: str = "",
    sep: str = " ",
    seed: int = 0,
    backend: str = "auto",
) -> PretrainDataset:
    """The original's GroupMultiScaleCrop scales (1, .875, .75, .66) as a random resized crop of
    at least 0.66^2 of the area, then an optional flip and ImageNet normalisation."""
    transform = TrainTransform(
        TrainTransformConfig(
            input_size=input_size, min_scale=0.66**2, flip=flip, rand_augment=None, reprob=0.0
        )
    )
    return PretrainDataset(
        read_pretrain_list(list_path, sep, prefix),
        "train",
        ClipSampling("segment", num_frames),
        transform,
        seed=seed,
        backend=backend,
    )
