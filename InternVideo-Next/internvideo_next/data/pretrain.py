"""Pretraining clip lists and the pretraining dataset (TSN-style frames, multi-scale crop, flip).

Rows are the original's ``<source> <path> <total_time> <start_time> <end_time> <target>`` or the
classification layout ``<path> <label>``; only the path is used for pretraining. Clips are
``num_frames`` frames, one per equal segment of the video (the original's ``num_segments``).
"""

from __future__ import annotations

import os
from pathlib import Path

from ivtools.data import ClipSampling, TrainTransform, TrainTransformConfig, VideoClassificationDataset
from ivtools.data.annotations import VideoRecord


def read_pretrain_list(path: str | os.PathLike, sep: str = " ", prefix: str = "") -> list[VideoRecord]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretraining list not found: {path}")
    records = []
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        parts = line.strip().split(sep if sep.strip() else None)
        if not parts or not parts[0]:
            continue
        if len(parts) == 6:
            rel = parts[1]
        elif len(parts) == 2:
            rel = parts[0]
        else:
            raise ValueError(
                f"{path}:{line_no}: expected 'source path total start end target' or 'path label', got {line!r}"
            )
        records.append(VideoRecord(os.path.join(prefix, rel) if prefix else rel, (0,)))
    if not records:
        raise ValueError(f"pretraining list {path} lists no videos")
    return records


def build_pretrain_dataset(
    list_path: str | os.PathLike,
    num_frames: int,
    input_size: int,
    flip: bool = True,
    prefix: str = "",
    sep: str = " ",
    seed: int = 0,
    backend: str = "auto",
) -> VideoClassificationDataset:
    """The original's GroupMultiScaleCrop scales (1, .875, .75, .66) as a random resized crop of
    at least 0.66^2 of the area, then an optional flip and ImageNet normalisation."""
    transform = TrainTransform(
        TrainTransformConfig(
            input_size=input_size, min_scale=0.66**2, flip=flip, rand_augment=None, reprob=0.0
        )
    )
    return VideoClassificationDataset(
        read_pretrain_list(list_path, sep, prefix),
        "train",
        ClipSampling("segment", num_frames),
        transform,
        seed=seed,
        backend=backend,
    )
