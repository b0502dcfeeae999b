"""Choose clips: filter by scores, duration and resolution; deduplicate; diversity-sample.

* :func:`filter_clips` keeps clips whose score columns, duration and (probed) frame size pass
  the thresholds; every dropped clip comes back with its reason.
* :func:`dedup_clips` treats two clips of the same video as duplicates when their time overlap
  (IoU, or intersection over the shorter clip) exceeds a threshold, and keeps the higher-scored.
* :func:`diversity_sample` is InternVid-10M-DIV's sampling: each clip is drawn with weight
  ``1 / (clips of its video)``, without replacement, so every source video is equally likely.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ivtools.video import VideoReadError

from .jsonio import RowError, RowErrors
from .manifest import Clip
from .probe import probe_video

OVERLAP_METRICS = ("iou", "overlap")


@dataclass
class FilterSpec:
    """Inclusive thresholds; ``None`` (or an absent column name) means "no limit"."""

    min_scores: dict[str, float] = field(default_factory=dict)
    max_scores: dict[str, float] = field(default_factory=dict)
    min_duration: float | None = None
    max_duration: float | None = None
    min_height: int | None = None
    min_width: int | None = None

    @property
    def needs_video(self) -> bool:
        return self.min_height is not None or self.min_width is not None


Dropped = tuple[Clip, str]


def filter_clips(
    clips: Sequence[Clip],
    spec: FilterSpec,
    errors: RowErrors,
    manifest: str = "",
    video_root: str | os.PathLike | None = None,
) -> tuple[list[Clip], list[Dropped]]:
    """``(kept, [(dropped clip, reason)])``; a clip lacking a needed column or video is an error."""
    if spec.needs_video and video_root is None:
        raise ValueError("filtering by resolution needs the clips' folder (video_root)")
    kept, dropped = [], []
    for clip in clips:
        try:
            reason = _rejection(clip, spec, video_root)
        except (KeyError, ValueError, VideoReadError) as exc:
            errors.add(RowError(manifest, clip.line, str(exc).strip("'\""), clip.to_row()))
            continue
        if reason is None:
            kept.append(clip)
        else:
            dropped.append((clip, reason))
    return kept, dropped


def _rejection(clip: Clip, spec: FilterSpec, video_root) -> str | None:
    for name, low in spec.min_scores.items():
        if clip.score(name) < low:
            return f"{name} {clip.score(name):g} < {low:g}"
    for name, high in spec.max_scores.items():
        if clip.score(name) > high:
            return f"{name} {clip.score(name):g} > {high:g}"
    if spec.min_duration is not None and clip.duration < spec.min_duration:
        return f"duration {clip.duration:g}s < {spec.min_duration:g}s"
    if spec.max_duration is not None and clip.duration > spec.max_duration:
        return f"duration {clip.duration:g}s > {spec.max_duration:g}s"
    if spec.needs_video:
        info = probe_video(Path(video_root) / clip.clip_path)
        if spec.min_height is not None and info.height < spec.min_height:
            return f"height {info.height} < {spec.min_height}"
        if spec.min_width is not None and info.width < spec.min_width:
            return f"width {info.width} < {spec.min_width}"
    return None


def temporal_overlap(a: Clip, b: Clip, metric: str = "iou") -> float:
    """Overlap of two clips' time spans: ``"iou"`` (intersection / union) or ``"overlap"``
    (intersection / the shorter span). Clips of different videos never overlap."""
    if metric not in OVERLAP_METRICS:
        raise ValueError(f"metric must be one of {OVERLAP_METRICS}, got {metric!r}")
    if a.youtube_id != b.youtube_id:
        return 0.0
    inter = max(0, min(a.end_ms, b.end_ms) - max(a.start_ms, b.start_ms))
    if metric == "iou":
        denom = (a.end_ms - a.start_ms) + (b.end_ms - b.start_ms) - inter
    else:
        denom = min(a.end_ms - a.start_ms, b.end_ms - b.start_ms)
    return inter / denom


def dedup_clips(
    clips: Sequence[Clip],
    errors: RowErrors,
    manifest: str = "",
    metric: str = "iou",
    threshold: float = 0.5,
    score_field: str = "UMT_Score",
) -> tuple[list[Clip], list[Dropped]]:
    """Per video, greedily keep clips from the highest ``score_field`` down (ties: earlier row),
    dropping any whose overlap with an already kept clip exceeds ``threshold``.

    Returns ``(kept in input order, [(dropped, "overlaps <key> (<metric> <value>)")])``.
    """
    by_video: dict[str, list[tuple[int, Clip, float]]] = {}
    for position, clip in enumerate(clips):
        try:
            score = clip.score(score_field)
        except (KeyError, ValueError) as exc:
            errors.add(RowError(manifest, clip.line, str(exc).strip("'\""), clip.to_row()))
            continue
        by_video.setdefault(clip.youtube_id, []).append((position, clip, score))
    kept: list[tuple[int, Clip]] = []
    dropped: list[Dropped] = []
    for group in by_video.values():
        winners: list[Clip] = []
        for position, clip, _ in sorted(group, key=lambda item: (-item[2], item[0])):
            clash = next((w for w in winners if temporal_overlap(clip, w, metric) > threshold), None)
            if clash is None:
                winners.append(clip)
                kept.append((position, clip))
            else:
                dropped.append(
                    (clip, f"overlaps {clash.key} ({metric} {temporal_overlap(clip, clash, metric):.3f})")
                )
    kept.sort(key=lambda item: item[0])
    return [clip for _, clip in kept], dropped


def diversity_sample(clips: Sequence[Clip], count: int, seed: int = 42) -> list[Clip]:
    """``count`` clips drawn without replacement with weight ``1 / clips of the same video``.

    Uses NumPy's legacy ``RandomState(seed)``, as the original ``div_sampling.py`` did with
    ``np.random.seed(42)``, so the same rows in the same order give the same selection. The
    selected clips are returned in input order (the original kept draw order).
    """
    if not 0 <= count <= len(clips):
        raise ValueError(f"cannot sample {count} clips from {len(clips)}")
    per_video: dict[str, int] = {}
    for clip in clips:
        per_video[clip.youtube_id] = per_video.get(clip.youtube_id, 0) + 1
    weights = np.array([1.0 / per_video[c.youtube_id] for c in clips])
    chosen = np.random.RandomState(seed).choice(len(clips), count, replace=False, p=weights / weights.sum())
    return [clips[i] for i in sorted(chosen)]
