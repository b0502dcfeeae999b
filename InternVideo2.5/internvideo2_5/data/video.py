"""Video input as the released chat model expects it.

Frames are picked as the model card's ``load_video`` does (``get_index``: the middle of each of
``num_segments`` equal segments, with NumPy's round-half-to-even), or, with
``frames_by_duration``, one frame per second rounded down to a multiple of 4 and clamped to
[128, 512] (``get_num_frames_by_duration``). Each frame is tiled as InternVL does
(:func:`dynamic_preprocess`; the model card uses one 448 px tile per frame), resized with bicubic
interpolation and normalised with the ImageNet mean/std.

A video with fewer frames than asked for is not an error: segments then share frames, and the
same frame is repeated (the original's behaviour). A missing or undecodable file raises
:class:`ivtools.video.VideoReadError` naming it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from internvideo2_5.constants import DEFAULT_INPUT_SIZE, DEFAULT_NUM_FRAMES, IMAGENET_MEAN, IMAGENET_STD
from ivtools.video import VideoReadError, open_video


def released_frame_indices(
    num_video_frames: int, fps: float, num_segments: int, bound: tuple[float, float] | None = None
) -> list[int]:
    """The model card's ``get_index``: the centre of each of ``num_segments`` equal segments.

    ``bound=(start_s, end_s)`` limits the span; the last frame index bounds the end, as there.
    """
    if num_video_frames <= 0:
        raise ValueError(f"cannot sample from a video with {num_video_frames} frames")
    if num_segments <= 0:
        raise ValueError(f"num_segments must be positive, got {num_segments}")
    max_frame = num_video_frames - 1
    start, end = bound if bound else (-100000.0, 100000.0)
    start_idx = max(0, round(start * fps))
    end_idx = min(round(end * fps), max_frame)
    if end_idx < start_idx:
        raise ValueError(f"bound {bound} selects no frame of a {num_video_frames}-frame video at {fps} fps")
    seg_size = (end_idx - start_idx) / num_segments
    return [int(start_idx + seg_size / 2 + np.round(seg_size * i)) for i in range(num_segments)]


def num_frames_for_duration(
    duration: float, local_num_frames: int = 4, min_frames: int = 128, max_frames: int = 512
) -> int:
    """The model card's ``get_num_frames_by_duration``: ~1 frame/s in whole groups, clamped."""
    groups = int(duration // local_num_frames)
    count = local_num_frames * max(groups, 1)
    return max(min_frames, min(max_frames, count))


def _closest_grid(
    aspect: float, grids: list[tuple[int, int]], width: int, height: int, size: int
) -> tuple[int, int]:
    # Ties go to the larger grid only when the image has enough pixels to fill half of it.
    best, best_diff = (1, 1), float("inf")
    for cols, rows in grids:
        diff = abs(aspect - cols / rows)
        if diff < best_diff:
            best, best_diff = (cols, rows), diff
        elif diff == best_diff and width * height > 0.5 * size * size * cols * rows:
            best = (cols, rows)
    return best


def dynamic_preprocess(
    image: Image.Image,
    min_num: int = 1,
    max_num: int = 1,
    image_size: int = DEFAULT_INPUT_SIZE,
    use_thumbnail: bool = True,
) -> list[Image.Image]:
    """InternVL's dynamic-resolution tiling: the ``cols x rows`` grid (``min_num <= cols*rows <= max_num``)
    whose aspect ratio is closest to the image's, row-major tiles, plus a thumbnail when tiled."""
    if not 1 <= min_num <= max_num:
        raise ValueError(f"need 1 <= min_num <= max_num, got {min_num}, {max_num}")
    width, height = image.size
    grids = sorted(
        {
            (i, j)
            for n in range(min_num, max_num + 1)
            for i in range(1, n + 1)
            for j in range(1, n + 1)
            if min_num <= i * j <= max_num
        },
        key=lambda g: g[0] * g[1],
    )
    cols, rows = _closest_grid(width / height, grids, width, height, image_size)
    resized = image.resize((image_size * cols, image_size * rows), Image.BICUBIC)
    tiles = [
        resized.crop((c * image_size, r * image_size, (c + 1) * image_size, (r + 1) * image_size))
        for r in range(rows)
        for c in range(cols)
    ]
    if use_thumbnail and len(tiles) != 1:
        tiles.append(image.resize((image_size, image_size), Image.BICUBIC))
    return tiles


def normalize_tile(tile: Image.Image, input_size: int = DEFAULT_INPUT_SIZE) -> torch.Tensor:
    """RGB, bicubic resize to ``input_size`` square, [0, 1], ImageNet mean/std: ``(3, S, S)`` float."""
    tile = tile.convert("RGB")
    if tile.size != (input_size, input_size):
        tile = tile.resize((input_size, input_size), Image.BICUBIC)
    array = torch.from_numpy(np.asarray(tile, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (array - mean) / std


def frames_to_pixels(
    frames: np.ndarray, input_size: int = DEFAULT_INPUT_SIZE, max_num: int = 1
) -> tuple[torch.Tensor, list[int]]:
    """``(T, H, W, 3)`` uint8 frames to ``(sum tiles, 3, S, S)`` pixels and the tile count of each frame."""
    pixels, counts = [], []
    for frame in frames:
        tiles = dynamic_preprocess(Image.fromarray(frame), max_num=max_num, image_size=input_size)
        pixels.extend(normalize_tile(t, input_size) for t in tiles)
        counts.append(len(tiles))
    return torch.stack(pixels), counts


@dataclass
class VideoPlan:
    """Which frames of which video to read, and when they were taken."""

    path: str
    frame_indices: list[int]
    fps: float
    num_video_frames: int

    @property
    def timestamps(self) -> list[float]:
        return [i / self.fps if self.fps > 0 else 0.0 for i in self.frame_indices]

    @property
    def duration(self) -> float:
        return self.num_video_frames / self.fps if self.fps > 0 else 0.0


@dataclass
class VideoClip:
    """Preprocessed frames: ``pixel_values`` ``(sum tiles, 3, S, S)``, tiles per frame, timing."""

    pixel_values: torch.Tensor
    num_patches_list: list[int]
    timestamps: list[float]
    duration: float

    @property
    def num_frames(self) -> int:
        return len(self.num_patches_list)


def plan_video(
    path: str | os.PathLike,
    num_segments: int = DEFAULT_NUM_FRAMES,
    bound: tuple[float, float] | None = None,
    frames_by_duration: bool = False,
    local_num_frames: int = 4,
    backend: str = "auto",
) -> VideoPlan:
    """Open ``path`` (raising ``VideoReadError`` if it cannot be read) and choose its frames."""
    with open_video(path, backend=backend) as reader:
        count, fps = len(reader), float(reader.fps)
    if count <= 0:
        raise VideoReadError(str(path), "video has no frames")
    if frames_by_duration:
        num_segments = num_frames_for_duration((count - 1) / fps if fps > 0 else 0.0, local_num_frames)
    indices = released_frame_indices(count, fps, num_segments, bound)
    return VideoPlan(str(path), indices, fps, count)


def iter_pixel_chunks(
    plan: VideoPlan,
    chunk_frames: int,
    input_size: int = DEFAULT_INPUT_SIZE,
    max_num: int = 1,
    backend: str = "auto",
) -> Iterator[tuple[torch.Tensor, list[int]]]:
    """Decode and preprocess ``chunk_frames`` frames at a time, so raw frames never pile up."""
    if chunk_frames <= 0:
        raise ValueError(f"chunk_frames must be positive, got {chunk_frames}")
    with open_video(plan.path, backend=backend) as reader:
        for start in range(0, len(plan.frame_indices), chunk_frames):
            frames = reader.get_frames(plan.frame_indices[start : start + chunk_frames])
            yield frames_to_pixels(frames, input_size, max_num)


def load_video(
    path: str | os.PathLike,
    num_segments: int = DEFAULT_NUM_FRAMES,
    input_size: int = DEFAULT_INPUT_SIZE,
    max_num: int = 1,
    bound: tuple[float, float] | None = None,
    frames_by_duration: bool = False,
    backend: str = "auto",
) -> VideoClip:
    """The model card's ``load_video``: sample, tile, normalise every frame at once."""
    plan = plan_video(path, num_segments, bound, frames_by_duration, backend=backend)
    pixels, counts = [], []
    for chunk, chunk_counts in iter_pixel_chunks(plan, len(plan.frame_indices), input_size, max_num, backend):
        pixels.append(chunk)
        counts.extend(chunk_counts)
    return VideoClip(torch.cat(pixels), counts, plan.timestamps, plan.duration)


def clip_from_frames(
    frames: Sequence[np.ndarray] | np.ndarray,
    fps: float = 1.0,
    input_size: int = DEFAULT_INPUT_SIZE,
    max_num: int = 1,
) -> VideoClip:
    """A :class:`VideoClip` from frames already in memory (``(T, H, W, 3)`` uint8)."""
    frames = np.asarray(frames, dtype=np.uint8)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"frames must be a non-empty (T, H, W, 3) array, got shape {frames.shape}")
    pixels, counts = frames_to_pixels(frames, input_size, max_num)
    return VideoClip(pixels, counts, [i / fps for i in range(len(frames))], len(frames) / fps)
