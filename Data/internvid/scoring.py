"""Clip-text similarity through a pluggable scorer (any CLIP-style video-text model).

A scorer is anything with ``score(frames, texts) -> one float per text``, or a CLIP-style
encoder with ``encode_video(frames)`` and ``encode_text(texts)``, which :func:`as_scorer` wraps
into the cosine similarity of the L2-normalised embeddings (what the release's UMT and ViCLIP
scores are). ``frames`` is always ``(T, H, W, 3)`` uint8 RGB as ``ivtools.video`` decodes them;
the scorer does its own resizing and normalisation.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ivtools.video import VideoReadError, open_video, uniform_indices

from .jsonio import RowError, RowErrors
from .manifest import Clip
from .plugins import PluginError


@runtime_checkable
class TextVideoScorer(Protocol):
    def score(self, frames: np.ndarray, texts: Sequence[str]) -> Sequence[float]: ...


@runtime_checkable
class VideoTextEncoder(Protocol):
    def encode_video(self, frames: np.ndarray) -> np.ndarray: ...

    def encode_text(self, texts: Sequence[str]) -> np.ndarray: ...


class CosineScorer:
    """Cosine similarity between one video embedding and each text embedding."""

    def __init__(self, encoder: VideoTextEncoder):
        self.encoder = encoder

    def score(self, frames: np.ndarray, texts: Sequence[str]) -> list[float]:
        video = _unit(np.asarray(self.encoder.encode_video(frames), dtype=np.float64).reshape(1, -1))
        text = _unit(
            np.asarray(self.encoder.encode_text(list(texts)), dtype=np.float64).reshape(len(texts), -1)
        )
        if video.shape[1] != text.shape[1]:
            raise ValueError(
                f"video embedding has {video.shape[1]} dims but text embeddings have {text.shape[1]}"
            )
        return (text @ video[0]).tolist()


def _unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def as_scorer(obj: object) -> TextVideoScorer:
    """``obj`` itself if it scores, a :class:`CosineScorer` if it encodes; else :class:`PluginError`."""
    if isinstance(obj, TextVideoScorer):
        return obj
    if isinstance(obj, VideoTextEncoder):
        return CosineScorer(obj)
    raise PluginError(
        f"{type(obj).__name__} is not a scorer: it needs score(frames, texts) "
        "or encode_video(frames) and encode_text(texts)"
    )


def load_clip_frames(path: str | os.PathLike, num_frames: int) -> np.ndarray:
    """``num_frames`` frames from equal intervals of the clip (their middles), ``(T, H, W, 3)``."""
    with open_video(path) as video:
        return video.get_frames(uniform_indices(len(video), num_frames, mode="middle"))


def score_clips(
    clips: Iterable[Clip],
    scorer: TextVideoScorer,
    video_root: str | os.PathLike,
    errors: RowErrors,
    manifest: str = "",
    num_frames: int = 8,
    field: str = "ViCLIP_Score",
) -> Iterator[Clip]:
    """Each clip with ``field`` set to the similarity of its video and caption.

    A clip whose video cannot be read goes to ``errors`` (with its manifest line), not the output.
    """
    for clip in clips:
        path = Path(video_root) / clip.clip_path
        try:
            frames = load_clip_frames(path, num_frames)
        except VideoReadError as exc:
            errors.add(RowError(manifest, clip.line, f"video unreadable: {exc}", clip.to_row()))
            continue
        values = list(scorer.score(frames, [clip.caption]))
        if len(values) != 1:
            raise ValueError(f"scorer returned {len(values)} scores for 1 caption")
        yield replace(clip, fields={**clip.fields, field: float(values[0])})
