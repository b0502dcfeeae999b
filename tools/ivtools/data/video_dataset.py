"""The video classification dataset shared by every generation's fine-tuning and probing.

One class covers the original's ``Kinetics``/``Kinetics_sparse``/``SSV2``/``UCF101``/``HMDB51``
datasets: the annotation list says which videos and labels, ``sampling`` says how frame indices
are drawn (see :mod:`ivtools.video.sampling`), and the transform says how frames become tensors.
A record with a time ``window`` (the original's ``ANet_interval`` / ``HACS_interval`` lists) draws
its indices from the frames of that window only (:func:`window_frames`).

Items are dictionaries: ``video`` (3, T, H, W) float (or the (T, 3, H, W) uint8 clip of a
``device_augment`` train transform, finished on the training device by ``DeviceAugment``), ``label`` (int, or a multi-hot vector for
multi-label sets), ``index`` (the video's row), ``view`` (temporal × spatial view number in test
mode), ``valid`` (False when the video could not be read) and ``skipped`` (how many unreadable
videos this item stands in for). Unreadable videos never crash a run:

* in ``train`` mode another video is drawn in its place and ``skipped`` counts the failure;
* in ``val``/``test`` mode the item is returned with ``valid=False`` so that evaluation excludes
  it and reports the count, instead of silently scoring a different video.

Augmentation randomness is a pure function of ``(seed, epoch, index, attempt)``: an item is the
same whichever worker loads it, and a run resumed mid-epoch sees exactly the same data.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from ivtools.data.annotations import VideoRecord
from ivtools.video import VideoReadError, dense_indices, open_video, segment_indices, sparse_indices

logger = logging.getLogger(__name__)

SAMPLINGS = ("sparse", "dense", "segment")
MODES = ("train", "val", "test")


@contextmanager
def seeded(seed: Sequence[int]):
    """Seed Python, NumPy and torch from ``seed`` inside the block, restoring their state after.

    timm's augmentations draw from these global generators; forking them keeps per-item
    randomness reproducible without disturbing the training loop's own random state.
    """
    py_state, np_state = random.getstate(), np.random.get_state()
    seq = np.random.SeedSequence(list(seed))
    words = seq.generate_state(3)
    with torch.random.fork_rng(devices=[]):
        random.seed(int(words[0]))
        np.random.seed(int(words[1]))
        torch.manual_seed(int(words[2]))
        try:
            yield np.random.default_rng(seq)
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


@dataclass
class ClipSampling:
    """How frame indices are drawn: the original's ``--num_frames --sampling_rate`` and test views."""

    sampling: str = "sparse"
    num_frames: int = 8
    sampling_rate: int = 4  # frame stride of dense clips
    test_num_segment: int = 4  # temporal views at test time
    test_num_crop: int = 3  # spatial views at test time

    def __post_init__(self):
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, got {self.sampling!r}")

    def indices(self, num_frames: int, clip_idx: int | None, num_clips: int, rng) -> list[int]:
        if self.sampling == "sparse":
            return sparse_indices(
                num_frames, self.num_frames, clip_idx=clip_idx, num_clips=num_clips, rng=rng
            )
        if self.sampling == "dense":
            return dense_indices(
                num_frames,
                self.num_frames,
                self.sampling_rate,
                clip_idx=clip_idx,
                num_clips=num_clips,
                rng=rng,
            )
        return segment_indices(num_frames, self.num_frames, clip_idx=clip_idx, num_clips=num_clips, rng=rng)


def window_frames(num_frames: int, window: tuple[float, float, float]) -> tuple[int, int]:
    """``(first frame, frame count)`` of the ``(total duration, start, end)`` window of a video.

    As the original's ANet dataset: the frame rate is the decoded frame count over the listed
    total duration (so that lists stay valid for videos re-encoded at another rate), and both
    ends are truncated to whole frames. The window keeps at least one frame and ends inside the
    video (a listed end past the decoded frames, e.g. from rounded durations, is cut there).
    """
    total, start, end = window
    fps = num_frames / total
    first = min(int(fps * start), num_frames - 1)
    return first, max(1, min(int(fps * (end - start)), num_frames - first))


class VideoClassificationDataset(Dataset):
    """Videos and labels from an annotation list (see :mod:`ivtools.data.annotations`).

    ``train_transform(frames)`` and ``eval_transform(frames, crop_idx)`` turn ``(T, H, W, 3)``
    uint8 frames into tensors (see :mod:`ivtools.data.transforms`). ``num_sample > 1`` returns
    that many independently augmented copies of each training video (repeated augmentation).
    ``decode_threads`` is the FFmpeg thread count of each decoder (frame threads inside a worker).
    """

    def __init__(
        self,
        records: Sequence[VideoRecord],
        mode: str,
        clip: ClipSampling,
        transform: Callable,
        num_classes: int | None = None,
        multi_label: bool = False,
        num_sample: int = 1,
        seed: int = 0,
        backend: str = "auto",
        decode_size: tuple[int, int] | None = None,
        max_retries: int = 20,
        decode_threads: int = 1,
    ):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if not records:
            raise ValueError("dataset has no videos")
        if multi_label and num_classes is None:
            raise ValueError("multi-label datasets need num_classes")
        if decode_threads < 1:
            raise ValueError(f"decode_threads must be at least 1, got {decode_threads}")
        self.records = list(records)
        self.mode, self.clip, self.transform = mode, clip, transform
        self.num_classes, self.multi_label = num_classes, multi_label
        self.num_sample, self.seed, self.max_retries = num_sample, seed, max_retries
        self.backend, self.decode_size, self.decode_threads = backend, decode_size, decode_threads
        self.epoch = 0
        self._warned: set[str] = set()

    @property
    def views_per_video(self) -> int:
        return self.clip.test_num_segment * self.clip.test_num_crop if self.mode == "test" else 1

    def __len__(self) -> int:
        return len(self.records) * self.views_per_video

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _target(self, record: VideoRecord):
        if not self.multi_label:
            return record.label
        target = torch.zeros(self.num_classes)
        target[list(record.labels)] = 1.0
        return target

    def _warn_once(self, path: str, message: str) -> None:
        if path not in self._warned:
            self._warned.add(path)
            logger.warning(message)

    def load_frames(self, record: VideoRecord, clip_idx: int | None, num_clips: int, rng) -> np.ndarray:
        """Decode the frames one clip of ``record`` needs (raises VideoReadError)."""
        with open_video(
            record.path, backend=self.backend, size=self.decode_size, threads=self.decode_threads
        ) as video:
            first, length = (
                (0, len(video)) if record.window is None else window_frames(len(video), record.window)
            )
            if length < self.clip.num_frames:
                self._warn_once(
                    record.path,
                    f"{record.path}: {length} frames, fewer than the {self.clip.num_frames}-frame clip; "
                    "frames are repeated to fill it",
                )
            indices = self.clip.indices(length, clip_idx, num_clips, rng)
            return video.get_frames([first + i for i in indices])

    def __getitem__(self, key):
        index, epoch = key if isinstance(key, tuple) else (key, self.epoch)
        if self.mode == "train":
            return self._train_item(index, epoch)
        return self._eval_item(index)

    def _train_item(self, index: int, epoch: int):
        skipped = 0
        for attempt in range(self.max_retries):
            record = self.records[index]
            with seeded((self.seed, epoch, index, attempt)) as rng:
                try:
                    frames = self.load_frames(record, None, 1, rng)
                except VideoReadError as err:
                    self._warn_once(err.path, f"skipping unreadable video: {err}")
                    skipped += 1
                    index = int(rng.integers(len(self.records)))
                    continue
                videos = [self.transform(frames) for _ in range(self.num_sample)]
            sample = {"label": self._target(record), "index": index, "skipped": skipped, "valid": True}
            if self.num_sample == 1:
                return {"video": videos[0], **sample}
            # The skip count rides on the first copy only, so batch sums count each failure once.
            return [{"video": v, **sample, "skipped": skipped if i == 0 else 0} for i, v in enumerate(videos)]
        raise RuntimeError(
            f"{self.max_retries} unreadable videos in a row (last: {record.path}); check the dataset paths"
        )

    def _eval_item(self, index: int):
        views = self.views_per_video
        video_idx, view = divmod(index, views)
        record = self.records[video_idx]
        num_clips = self.clip.test_num_segment if self.mode == "test" else 1
        clip_idx, crop_idx = divmod(view, self.clip.test_num_crop) if self.mode == "test" else (0, 0)
        sample = {
            "label": self._target(record),
            "index": video_idx,
            "view": view,
            "skipped": 0,
            "valid": True,
        }
        try:
            frames = self.load_frames(record, clip_idx, num_clips, rng=None)
        except VideoReadError as err:
            self._warn_once(err.path, f"unreadable video excluded from evaluation: {err}")
            size = self.transform.output_size
            blank = torch.zeros(3, self.clip.num_frames, size, size)
            return {"video": blank, **sample, "skipped": 1, "valid": False}
        return {"video": self.transform(frames, crop_idx), **sample}


def collate_samples(batch: list) -> dict:
    """Default collation that also flattens repeated-augmentation lists (``num_sample > 1``)."""
    from torch.utils.data import default_collate

    flat = [s for item in batch for s in (item if isinstance(item, list) else [item])]
    return default_collate(flat)
