"""Video-text pairs for ViCLIP, the multi-modality model and the downstream video-text tasks.

Annotations are the original's JSON lists: ``[{"video": path, "caption": str | [str, ...]}, ...]``
(paths relative to ``prefix``). Training draws one of a video's captions at random and ``num_frames``
frames, one from each equal segment (the original's "rand" sampling); evaluation takes the middle
frame of each segment and a centre crop.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from ivtools.data.transforms import EvalTransform, TrainTransform, TrainTransformConfig
from ivtools.data.video_dataset import seeded
from ivtools.video import VideoReadError, open_video, segment_indices

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoText:
    path: str
    captions: tuple[str, ...]


def read_video_text_json(path: str | os.PathLike, prefix: str = "") -> list[VideoText]:
    """``[{"video": ..., "caption": str | list}]`` → records; errors name the file and entry."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    try:
        entries = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a JSON list of {{'video', 'caption'}} objects")
    records = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or "video" not in entry or "caption" not in entry:
            raise ValueError(f"{path}: entry {i} needs 'video' and 'caption', got {entry!r}")
        captions = entry["caption"] if isinstance(entry["caption"], list) else [entry["caption"]]
        if not captions or not all(isinstance(c, str) for c in captions):
            raise ValueError(f"{path}: entry {i} has no caption string")
        video = (
            entry["video"]
            if os.path.isabs(entry["video"]) or not prefix
            else os.path.join(prefix, entry["video"])
        )
        records.append(VideoText(video, tuple(captions)))
    if not records:
        raise ValueError(f"{path}: no entries")
    return records


class VideoTextDataset(Dataset):
    """Items ``{"video": (3, T, H, W), "text_ids": (L,), "index", "skipped"}``.

    In training an unreadable video is replaced by another one (counted in ``skipped``); in
    evaluation it raises, since retrieval needs every video.
    """

    def __init__(
        self,
        records: Sequence[VideoText],
        tokenizer: Callable,
        train: bool,
        num_frames: int = 8,
        input_size: int = 224,
        context_length: int = 32,
        seed: int = 0,
        backend: str = "auto",
        max_retries: int = 20,
    ):
        self.records, self.tokenizer, self.train = list(records), tokenizer, train
        self.num_frames, self.context_length, self.seed = num_frames, context_length, seed
        self.backend, self.max_retries, self.epoch = backend, max_retries, 0
        if train:
            cfg = TrainTransformConfig(input_size=input_size, min_scale=0.5, rand_augment=None, reprob=0.0)
            self.transform = TrainTransform(cfg)
        else:
            self.transform = EvalTransform(input_size, input_size, 1)

    @classmethod
    def from_args(cls, records: Sequence[VideoText], tokenizer: Callable, args, train: bool = False):
        """With the entry points' ``--num_frames``, ``--input_size``, ``--max_txt_l``,
        ``--video_backend`` (and ``--seed`` in training)."""
        return cls(
            records,
            tokenizer,
            train,
            num_frames=args.num_frames,
            input_size=args.input_size,
            context_length=args.max_txt_l,
            seed=args.seed if train else 0,
            backend=args.video_backend,
        )

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _frames(self, record: VideoText, rng) -> np.ndarray:
        with open_video(record.path, backend=self.backend) as video:
            return video.get_frames(segment_indices(len(video), self.num_frames, rng=rng))

    def _item(self, index: int, record: VideoText, frames: np.ndarray, caption: str, skipped: int) -> dict:
        ids, _ = self.tokenizer([caption], self.context_length)
        return {"video": self.transform(frames), "text_ids": ids[0], "index": index, "skipped": skipped}

    def __getitem__(self, key) -> dict:
        index, epoch = key if isinstance(key, tuple) else (key, self.epoch)
        if not self.train:
            record = self.records[index]
            return self._item(index, record, self._frames(record, None), record.captions[0], 0)
        for attempt in range(self.max_retries):
            with seeded((self.seed, epoch, index, attempt)) as rng:
                record = self.records[index]
                try:
                    frames = self._frames(record, rng)
                except VideoReadError as err:
                    logger.warning("skipping unreadable video: %s", err)
                    index = int(rng.integers(len(self.records)))
                    continue
                caption = record.captions[int(rng.integers(len(record.captions)))]
                return self._item(index, record, frames, caption, attempt)
        raise RuntimeError(f"{self.max_retries} unreadable videos in a row; check the annotation paths")
