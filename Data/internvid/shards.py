"""WebDataset tar shards of clips and captions, and an iterable dataset that reads them back.

Each sample is three tar members sharing the clip key (``<id>_<HHMMSSmmm>_<HHMMSSmmm>``, no
dots, as WebDataset groups members by the name up to the first dot):

* ``<key>.mp4`` -- the clip file's bytes, unchanged;
* ``<key>.txt`` -- the caption (UTF-8);
* ``<key>.json`` -- the clip's whole manifest row (timestamps, scores, cut details).

Shards are named by a printf pattern (``out/internvid-%06d.tar``). A shard is closed before a
sample that would take it past ``max_count`` samples or ``max_size`` bytes (the file size,
tar headers and end-of-archive padding included), so no shard exceeds ``max_size`` unless a
single sample does. ``shards.json`` next to the shards lists each shard's name, sample count
and size, for loaders that need the dataset length.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import webdataset as wds

from ivtools.video import VideoReadError, open_video, uniform_indices

from .jsonio import RowError, RowErrors, write_json
from .manifest import Clip

logger = logging.getLogger(__name__)

INDEX_NAME = "shards.json"
_BLOCK = 512
# tarfile ends an archive with two zero blocks and pads it to a 20-block record.
_END_RESERVE = 20 * _BLOCK


@dataclass
class ShardInfo:
    path: str
    count: int
    bytes: int


def _member_bytes(size: int) -> int:
    return _BLOCK + -(-size // _BLOCK) * _BLOCK


class _ShardRotator:
    """Writes samples into successive shards, closing one before it would exceed a limit."""

    def __init__(self, pattern: str, max_count: int, max_size: int):
        if "%" not in pattern:
            raise ValueError(f"shard pattern {pattern!r} needs a printf field such as %06d")
        if max_count < 1 or max_size <= _END_RESERVE:
            raise ValueError(f"max_count must be >= 1 and max_size > {_END_RESERVE} bytes")
        self.pattern, self.max_count, self.max_size = pattern, max_count, max_size
        self.shards: list[ShardInfo] = []
        self._writer = None
        self._count = self._payload = 0

    def write(self, sample: dict[str, Any]) -> None:
        size = sum(_member_bytes(len(v)) for k, v in sample.items() if not k.startswith("__"))
        full = self._count >= self.max_count or self._payload + size + _END_RESERVE > self.max_size
        if self._writer is None or (full and self._count > 0):
            self._next()
        self._writer.write(sample)
        self._count += 1
        self._payload += size

    def _next(self) -> None:
        self.close()
        path = self.pattern % len(self.shards)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._writer = wds.TarWriter(path, encoder=False)
        self.shards.append(ShardInfo(path, 0, 0))
        self._count = self._payload = 0

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            last = self.shards[-1]
            last.count, last.bytes = self._count, os.path.getsize(last.path)
            self._writer = None


def clip_sample(clip: Clip, video_root: str | os.PathLike) -> dict[str, Any]:
    """The WebDataset sample of one clip (reads its file; ``OSError`` if it is missing)."""
    video = (Path(video_root) / clip.clip_path).read_bytes()
    row = clip.to_row()
    return {
        "__key__": clip.key,
        "mp4": video,
        "txt": clip.caption.encode("utf-8"),
        "json": json.dumps(row, ensure_ascii=False).encode("utf-8"),
    }


def write_shards(
    clips: Iterable[Clip],
    video_root: str | os.PathLike,
    pattern: str,
    errors: RowErrors,
    manifest: str = "",
    max_count: int = 1000,
    max_size: int = 1 << 30,
) -> list[ShardInfo]:
    """Pack clips into shards and write ``shards.json`` beside them; returns the shard list.

    A clip whose file is missing, or whose key repeats an earlier clip's, goes to ``errors``.
    """
    rotator = _ShardRotator(pattern, max_count, max_size)
    seen: dict[str, int] = {}
    try:
        for clip in clips:
            if clip.key in seen:
                where = f"first on line {seen[clip.key]}"
                errors.add(
                    RowError(manifest, clip.line, f"duplicate key {clip.key} ({where})", clip.to_row())
                )
                continue
            seen[clip.key] = clip.line
            try:
                sample = clip_sample(clip, video_root)
            except OSError as exc:
                errors.add(RowError(manifest, clip.line, f"clip file unreadable: {exc}", clip.to_row()))
                continue
            rotator.write(sample)
    finally:
        rotator.close()
    folder = Path(pattern).parent
    index = [{**asdict(s), "path": os.path.relpath(s.path, folder)} for s in rotator.shards]
    write_json(
        folder / INDEX_NAME, {"shards": index, "total": sum(s.count for s in rotator.shards)}, indent=1
    )
    return rotator.shards


def shard_urls(source: str | os.PathLike | Sequence[str]) -> list[str]:
    """Shard paths from a ``shards.json`` index, a list of paths, or one path / brace pattern."""
    if isinstance(source, (list, tuple)):
        return [str(s) for s in source]
    source = str(source)
    if source.endswith(".json"):
        index = json.loads(Path(source).read_text())
        return [str(Path(source).parent / s["path"]) for s in index["shards"]]
    return list(wds.shardlists.expand_urls(source))


class ShardDataset(torch.utils.data.IterableDataset):
    """Iterate ``(video, caption, metadata)`` over shards, for training loaders.

    ``decode="bytes"`` yields the mp4 bytes; ``"frames"`` yields ``num_frames`` frames as a
    ``(T, H, W, 3)`` uint8 array, sampled with ``ivtools.video.uniform_indices`` (``sample="rand"``
    for training, ``"middle"`` for evaluation). Shards are split across DataLoader workers and
    distributed ranks; a clip that cannot be decoded is logged, counted in ``skipped`` and skipped.
    """

    def __init__(
        self,
        source: str | os.PathLike | Sequence[str],
        decode: str = "bytes",
        num_frames: int = 8,
        sample: str = "middle",
        shuffle_buffer: int = 0,
        seed: int = 0,
    ):
        if decode not in ("bytes", "frames"):
            raise ValueError(f"decode must be 'bytes' or 'frames', got {decode!r}")
        self.urls = shard_urls(source)
        self.decode, self.num_frames, self.sample = decode, num_frames, sample
        self.shuffle_buffer, self.seed = shuffle_buffer, seed
        self.skipped = 0

    def __iter__(self) -> Iterator[tuple[Any, str, dict]]:
        pipeline = wds.WebDataset(
            self.urls, shardshuffle=False, nodesplitter=wds.split_by_node, empty_check=False
        )
        if self.shuffle_buffer > 0:
            pipeline = pipeline.shuffle(self.shuffle_buffer, rng=np.random.default_rng(self.seed))
        rng = np.random.default_rng(self.seed)
        for sample in pipeline:
            meta = json.loads(sample["json"])
            caption = sample["txt"].decode("utf-8")
            if self.decode == "bytes":
                yield sample["mp4"], caption, meta
                continue
            try:
                frames = decode_frames(sample["mp4"], self.num_frames, self.sample, rng)
            except VideoReadError as exc:
                self.skipped += 1
                logger.warning("skipping %s from %s: %s", sample["__key__"], sample["__url__"], exc.reason)
                continue
            yield frames, caption, meta


def decode_frames(
    video: bytes, num_frames: int, sample: str = "middle", rng: np.random.Generator | None = None
) -> np.ndarray:
    """Decode ``num_frames`` frames of an in-memory clip through ``ivtools.video``."""
    # ivtools readers open paths, so the clip goes through a temporary file.
    with tempfile.NamedTemporaryFile(suffix=".mp4") as handle:
        handle.write(video)
        handle.flush()
        with open_video(handle.name) as reader:
            return reader.get_frames(uniform_indices(len(reader), num_frames, mode=sample, rng=rng))
