"""Temporal-localization data: ActivityNet-style JSON annotations and per-video feature files.

Annotation file (ActivityNet / ActionFormer's THUMOS14 conversion)::

    {"database": {"<video id>": {"subset": "training", "duration": 120.5,
                                 "annotations": [{"segment": [3.2, 10.0], "label": "Long jump"}]}}}

Features: ``<feature_dir>/<prefix><video id><suffix>``, a ``(T, C)`` ``.npy`` array (or ``(C, T)``
with ``channels_first``), the clip features spread uniformly over the video: feature ``i`` is
centred at ``(i + 0.5) * duration / T`` seconds. Feature step ``g`` and time ``s`` relate by
``g = s / step - 0.5`` with ``step = duration / T``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset


@dataclass
class VideoAnnotation:
    video: str
    duration: float
    segments: np.ndarray  # (N, 2) seconds
    labels: np.ndarray  # (N,) class indices


def read_activitynet_json(
    path: str | os.PathLike, subset: str | None = None, class_names: list[str] | None = None
) -> tuple[list[VideoAnnotation], list[str]]:
    """Videos of ``subset`` (case-insensitive; all when None) and the class names.

    Class indices follow ``class_names`` when given (labels outside it raise), else the sorted
    labels of the whole file, so that every subset of one file agrees.
    """
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read annotation file {path}: {err}") from err
    if "database" not in data:
        raise ValueError(f"{path}: no 'database' key (expected ActivityNet-style annotations)")
    database = data["database"]
    if class_names is None:
        class_names = sorted({a["label"] for v in database.values() for a in v.get("annotations", [])})
    index = {name: i for i, name in enumerate(class_names)}
    videos = []
    for vid, entry in database.items():
        if subset is not None and entry.get("subset", "").lower() != subset.lower():
            continue
        if "duration" not in entry:
            raise ValueError(f"{path}: video {vid!r} has no 'duration'")
        segs, labels = [], []
        for ann in entry.get("annotations", []):
            start, end = (float(t) for t in ann["segment"])
            if ann["label"] not in index:
                raise ValueError(f"{path}: video {vid!r} has label {ann['label']!r} outside the class list")
            if end <= start:
                raise ValueError(f"{path}: video {vid!r} has an empty segment {ann['segment']}")
            segs.append((start, end))
            labels.append(index[ann["label"]])
        videos.append(
            VideoAnnotation(
                vid,
                float(entry["duration"]),
                np.asarray(segs, dtype=np.float32).reshape(-1, 2),
                np.asarray(labels, dtype=np.int64),
            )
        )
    if not videos:
        raise ValueError(f"{path}: no videos in subset {subset!r}")
    return videos, class_names


def seconds_to_steps(seconds: np.ndarray | torch.Tensor, step: float):
    return seconds / step - 0.5


def steps_to_seconds(steps: np.ndarray | torch.Tensor, step: float):
    return (steps + 0.5) * step


class FeatureSequenceDataset(Dataset):
    """One item per video: features ``(C, T)``, action segments in feature steps, labels.

    Training items longer than ``max_seq_len`` are cropped at random (segments clipped to the
    window; actions left with less than half their length are dropped); evaluation items are
    never cropped.
    """

    def __init__(
        self,
        videos: list[VideoAnnotation],
        feature_dir: str | os.PathLike,
        train: bool,
        max_seq_len: int = 2304,
        prefix: str = "",
        suffix: str = ".npy",
        channels_first: bool = False,
        seed: int = 0,
    ):
        self.videos, self.feature_dir, self.train = videos, Path(feature_dir), train
        self.max_seq_len, self.prefix, self.suffix = max_seq_len, prefix, suffix
        self.channels_first, self.seed, self.epoch = channels_first, seed, 0
        missing = [v.video for v in videos if not self._path(v.video).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} feature files missing in {feature_dir}, e.g. {self._path(missing[0])}"
            )

    def _path(self, video: str) -> Path:
        return self.feature_dir / f"{self.prefix}{video}{self.suffix}"

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, key) -> dict:
        # ResumableSampler yields (index, epoch) keys; plain indices work too.
        index = key[0] if isinstance(key, tuple) else key
        ann = self.videos[index]
        feats = np.load(self._path(ann.video)).astype(np.float32)
        if feats.ndim != 2:
            raise ValueError(f"{self._path(ann.video)}: expected a 2D feature array, got shape {feats.shape}")
        feats = feats if self.channels_first else feats.T
        step = ann.duration / feats.shape[1]
        segments = seconds_to_steps(ann.segments, step)
        labels = ann.labels
        if self.train and feats.shape[1] > self.max_seq_len:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            start = int(rng.integers(0, feats.shape[1] - self.max_seq_len + 1))
            feats = feats[:, start : start + self.max_seq_len]
            clipped = np.clip(segments - start, 0, self.max_seq_len - 1)
            kept = (clipped[:, 1] - clipped[:, 0]) >= 0.5 * (segments[:, 1] - segments[:, 0])
            segments, labels = clipped[kept], labels[kept]
        return {
            "feats": torch.from_numpy(np.ascontiguousarray(feats)),
            "segments": torch.from_numpy(segments.astype(np.float32)),
            "labels": torch.from_numpy(labels),
            "video": ann.video,
            "step": step,
            "duration": ann.duration,
        }


def collate_sequences(batch: list[dict], multiple: int) -> dict:
    """Pad features to a common length, a multiple of the pyramid's largest stride."""
    length = max(item["feats"].shape[1] for item in batch)
    length = -(-length // multiple) * multiple
    feats = torch.zeros(len(batch), batch[0]["feats"].shape[0], length)
    mask = torch.zeros(len(batch), length, dtype=torch.bool)
    for i, item in enumerate(batch):
        n = item["feats"].shape[1]
        feats[i, :, :n] = item["feats"]
        mask[i, :n] = True
    return {
        "feats": feats,
        "mask": mask,
        "segments": [item["segments"] for item in batch],
        "labels": [item["labels"] for item in batch],
        "video": [item["video"] for item in batch],
        "step": [item["step"] for item in batch],
        "duration": [item["duration"] for item in batch],
    }
