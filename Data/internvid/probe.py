"""Probe a video file's frame count, rate and size through ``ivtools.video`` (no decoding)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ivtools.video import open_video


@dataclass(frozen=True)
class VideoInfo:
    num_frames: int
    fps: float
    height: int
    width: int

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps if self.fps > 0 else 0.0


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Frame count, frame rate and size; raises ``VideoReadError`` naming an unusable file."""
    with open_video(path, backend="pyav") as video:
        return VideoInfo(len(video), video.fps, video.height, video.width)
