"""Convert InternVid manifests into the annotation files the InternVideo training code reads.

Both targets are one JSON list (the loaders ``json.load`` the whole file):

``internvideo2`` (InternVideo2 multi_modality, ``VidTxtPtTrainDataset``)
    ``{"video": <path under data_root>, "caption": str}`` per clip. With ``video_from="source"``
    the path names the uncut source video and the row adds ``video_start_frame`` and
    ``video_end_frame`` (both inclusive frame indices of the source, as the loader's
    ``read_clip_from_video=True`` mode reads them); the corpus entry then needs
    ``read_clip_from_video=True``.
``viclip`` (InternVideo1 ViCLIP, ``load_anno``)
    ``{"video": <path under data_root>, "caption": str}`` per cut clip; the corpus entry is
    ``[anno_path, data_root, "video"]``.

Both loaders drop, without saying so, captions with fewer than two words after their text
normalisation; converting reports those rows as bad instead (see :mod:`internvid.manifest`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from ivtools.video import VideoReadError

from .cutting import find_source
from .jsonio import RowError, RowErrors, write_json
from .manifest import Clip
from .probe import probe_video

FORMATS = ("internvideo2", "viclip")
VIDEO_FROM = ("clip", "source")


def frame_range(start_ms: int, end_ms: int, fps: Fraction) -> tuple[int, int]:
    """Inclusive ``(first, last)`` frame indices shown in ``[start, end)`` at a constant ``fps``.

    Frame ``i`` is shown at ``i / fps``; the first frame at or after ``start`` is
    ``ceil(start * fps)`` and the last before ``end`` is ``ceil(end * fps) - 1``.
    """
    first = math.ceil(Fraction(start_ms, 1000) * fps)
    last = math.ceil(Fraction(end_ms, 1000) * fps) - 1
    if last < first:
        raise ValueError(f"no frame of a {float(fps):g} fps video lies in [{start_ms} ms, {end_ms} ms)")
    return first, last


def exact_rate(fps: float) -> Fraction:
    """A decoder's float rate back as a fraction (``29.97...`` -> ``30000/1001``)."""
    if fps <= 0:
        raise ValueError(f"frame rate must be positive, got {fps}")
    return Fraction(fps).limit_denominator(1001)


class _SourceRates:
    """Probe each source video once (a source typically holds many clips)."""

    def __init__(self, source_dir: str | os.PathLike):
        self.source_dir = source_dir
        self._cache: dict[str, tuple[str, Fraction]] = {}

    def __call__(self, youtube_id: str) -> tuple[str, Fraction]:
        if youtube_id not in self._cache:
            path = find_source(self.source_dir, youtube_id)
            if path is None:
                raise FileNotFoundError(f"source video {youtube_id}.* not found in {self.source_dir}")
            self._cache[youtube_id] = (path.name, exact_rate(probe_video(path).fps))
        return self._cache[youtube_id]


def to_annotations(
    clips: Iterable[Clip],
    target: str,
    errors: RowErrors,
    manifest: str = "",
    video_from: str = "clip",
    source_dir: str | os.PathLike | None = None,
    keep_fields: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """The annotation rows of ``target`` for ``clips``; a clip that cannot be converted (its
    source missing or unreadable, or no frame inside its span) goes to ``errors``.

    ``keep_fields`` copies those manifest columns into each row (the loaders ignore extra keys).
    """
    if target not in FORMATS:
        raise ValueError(f"target must be one of {FORMATS}, got {target!r}")
    if video_from not in VIDEO_FROM:
        raise ValueError(f"video_from must be one of {VIDEO_FROM}, got {video_from!r}")
    if video_from == "source" and target != "internvideo2":
        raise ValueError("only the internvideo2 loader reads clips out of uncut videos (video_from='source')")
    if video_from == "source" and source_dir is None:
        raise ValueError("video_from='source' needs source_dir to find each video's frame rate")
    rates = _SourceRates(source_dir) if video_from == "source" else None
    rows = []
    for clip in clips:
        row: dict[str, Any] = {"video": clip.clip_path, "caption": clip.caption}
        if rates is not None:
            try:
                name, fps = rates(clip.youtube_id)
                first, last = frame_range(clip.start_ms, clip.end_ms, fps)
            except (FileNotFoundError, VideoReadError, ValueError) as exc:
                errors.add(RowError(manifest, clip.line, str(exc), clip.to_row()))
                continue
            row = {
                "video": name,
                "caption": clip.caption,
                "video_start_frame": first,
                "video_end_frame": last,
            }
        for key in keep_fields:
            if key not in clip.fields:
                errors.add(RowError(manifest, clip.line, f"row has no {key!r} column to keep", clip.to_row()))
                break
            row[key] = clip.fields[key]
        else:
            rows.append(row)
    return rows


def write_annotations(path: str | os.PathLike, rows: list[dict[str, Any]]) -> None:
    """One JSON list, written atomically."""
    write_json(path, rows)


def corpus_entry(
    target: str, anno_path: str | os.PathLike, data_root: str | os.PathLike, video_from: str = "clip"
) -> str:
    """The line to add to the training config's ``available_corpus`` for this file."""
    anno, root = str(Path(anno_path)), str(Path(data_root))
    if target == "viclip":
        return f'internvid=[{anno!r}, {root!r}, "video"]'
    extra = ", read_clip_from_video=True" if video_from == "source" else ""
    return f'internvid=dict(anno_path={anno!r}, data_root={root!r}, media_type="video"{extra})'
