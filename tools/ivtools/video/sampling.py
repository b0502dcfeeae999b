"""Frame-index sampling as the InternVideo models use it.

Each function maps a video's frame count to the list of frame indices one clip reads. Training
variants draw from ``rng`` (a ``numpy.random.Generator``; when omitted, one is seeded from
NumPy's global state so that ``np.random.seed`` and DataLoader worker seeding still apply).
Evaluation variants are deterministic; ``clip_idx`` of ``num_clips`` selects one temporal view of
a multi-view test, and :func:`spatial_crop_starts` gives the matching spatial views.

Functions and the original datasets they follow:

* :func:`sparse_indices` -- ``Kinetics_sparse``: one frame per segment (TSN-style);
* :func:`dense_indices` -- ``Kinetics``: ``clip_len`` frames ``stride`` apart;
* :func:`segment_indices` -- SSv2 / HMDB / UCF frame datasets (``average_duration`` segments);
* :func:`uniform_indices` -- the multi-modality ``get_frame_indices`` ``rand``/``middle`` modes;
* :func:`fps_indices` -- sequential sampling at a fixed output frame rate.
"""

from __future__ import annotations

import numpy as np


def _generator(rng: np.random.Generator | None) -> np.random.Generator:
    return rng if rng is not None else np.random.default_rng(np.random.randint(0, 2**31 - 1))


def _check(num_frames: int, count: int, what: str) -> None:
    if num_frames <= 0:
        raise ValueError(f"cannot sample from a video with {num_frames} frames")
    if count <= 0:
        raise ValueError(f"{what} must be positive, got {count}")


def _check_view(clip_idx: int, num_clips: int) -> None:
    if not 0 <= clip_idx < num_clips:
        raise ValueError(f"clip_idx {clip_idx} outside [0, {num_clips})")


def sparse_indices(
    num_frames: int,
    clip_len: int,
    *,
    clip_idx: int | None = None,
    num_clips: int = 1,
    rng: np.random.Generator | None = None,
) -> list[int]:
    """One frame from each of ``clip_len`` equal segments spanning the video.

    Training (``clip_idx=None``): a random frame in each segment (both segment ends included).
    Evaluation: frame ``start + (clip_idx + 1) / (num_clips + 1)`` of each segment, so that
    ``num_clips`` views are evenly staggered and one view takes each segment's middle.
    """
    _check(num_frames, clip_len, "clip_len")
    seg_size = max(0.0, (num_frames - 1) / clip_len)
    last = num_frames - 1
    starts = [int(np.round(seg_size * i)) for i in range(clip_len + 1)]
    if clip_idx is None:
        gen = _generator(rng)
        return [min(int(gen.integers(starts[i], starts[i + 1] + 1)), last) for i in range(clip_len)]
    _check_view(clip_idx, num_clips)
    offset = int(seg_size / (num_clips + 1) * (clip_idx + 1))
    return [min(starts[i] + offset, last) for i in range(clip_len)]


def dense_indices(
    num_frames: int,
    clip_len: int,
    stride: int,
    *,
    clip_idx: int | None = None,
    num_clips: int = 1,
    rng: np.random.Generator | None = None,
) -> list[int]:
    """``clip_len`` frames ``stride`` apart (a clip spanning ``clip_len * stride`` frames).

    Training: the clip starts at a random frame. Evaluation: ``num_clips`` starts evenly spaced
    from the first to the last possible start (one clip: the centred one). A video shorter than
    the span repeats its last sampled frame.
    """
    _check(num_frames, clip_len, "clip_len")
    if stride <= 0:
        raise ValueError(f"stride must be positive, got {stride}")
    span = clip_len * stride
    slack = max(num_frames - span, 0)
    if clip_idx is None:
        start = int(_generator(rng).integers(0, slack + 1))
    else:
        _check_view(clip_idx, num_clips)
        start = slack // 2 if num_clips == 1 else int(clip_idx * slack / (num_clips - 1))
    indices = list(range(start, min(start + span, num_frames), stride))
    return indices + [indices[-1]] * (clip_len - len(indices))


def segment_indices(
    num_frames: int,
    num_segments: int,
    *,
    clip_idx: int | None = None,
    num_clips: int = 1,
    rng: np.random.Generator | None = None,
) -> list[int]:
    """TSN segments of ``num_frames // num_segments`` frames (SSv2/HMDB/UCF frame datasets).

    Training: a random frame inside each segment. Evaluation with one clip: each segment's
    middle frame. Evaluation with ``num_clips`` views: frame ``tick * (x + clip_idx / num_clips)``
    for segment ``x`` with ``tick = num_frames / num_segments``. Videos with fewer frames than
    segments repeat the first frame at the front, as the original does.
    """
    _check(num_frames, num_segments, "num_segments")
    if num_frames < num_segments:
        return [0] * (num_segments - num_frames) + list(range(num_frames))
    if clip_idx is not None and num_clips > 1:
        _check_view(clip_idx, num_clips)
        tick = num_frames / num_segments
        return [int(clip_idx * tick / num_clips + tick * x) for x in range(num_segments)]
    length = num_frames // num_segments
    bases = np.arange(num_segments) * length
    if clip_idx is not None:
        return (bases + length // 2).tolist()
    return (bases + _generator(rng).integers(0, length, size=num_segments)).tolist()


def uniform_indices(
    num_frames: int,
    num_samples: int,
    *,
    mode: str = "middle",
    fix_start: int | None = None,
    rng: np.random.Generator | None = None,
) -> list[int]:
    """``num_samples`` frames from equal intervals (the multi-modality ``get_frame_indices``).

    ``mode="rand"`` takes a random frame of each interval, ``"middle"`` its middle, and
    ``fix_start=k`` the k-th frame of each interval. An interval's last frame is excluded from
    the random draw and the middle is computed on ``[start, end - 1]``, exactly as the original.
    A video with fewer frames than samples pads with its last sampled frame.
    """
    _check(num_frames, num_samples, "num_samples")
    if mode not in ("rand", "middle"):
        raise ValueError(f"mode must be 'rand' or 'middle', got {mode!r}")
    count = min(num_samples, num_frames)
    edges = np.linspace(0, num_frames, num=count + 1).astype(int)
    ranges = [(int(edges[i]), int(edges[i + 1]) - 1) for i in range(count)]
    if mode == "rand":
        gen = _generator(rng)
        if all(b > a for a, b in ranges):
            indices = [int(gen.integers(a, b)) for a, b in ranges]
        else:
            indices = sorted(gen.permutation(num_frames)[:count].tolist())
    elif fix_start is not None:
        indices = [a + fix_start for a, _ in ranges]
    else:
        indices = [(a + b) // 2 for a, b in ranges]
    return indices + [indices[-1]] * (num_samples - len(indices))


def fps_indices(num_frames: int, video_fps: float, output_fps: float, max_frames: int = -1) -> list[int]:
    """Frames at ``output_fps``, each taken at the centre of its ``1/output_fps`` second slot."""
    _check(num_frames, 1, "num_frames")
    if video_fps <= 0 or output_fps <= 0:
        raise ValueError(f"frame rates must be positive, got video {video_fps}, output {output_fps}")
    delta = 1.0 / output_fps
    seconds = np.arange(delta / 2, num_frames / video_fps + delta / 2, delta)
    indices = [int(i) for i in np.around(seconds * video_fps).astype(int) if i < num_frames]
    return indices[:max_frames] if max_frames > 0 else indices


def spatial_crop_starts(length: int, crop: int, num_crops: int) -> list[int]:
    """Start offsets of ``num_crops`` crops of size ``crop`` along an axis of ``length`` pixels.

    One crop is centred; several are spread evenly from one end to the other (the original's
    3-crop test takes left/centre/right along the longer side after the short side is resized).
    """
    if crop > length:
        raise ValueError(f"crop {crop} larger than the axis ({length})")
    if num_crops <= 0:
        raise ValueError(f"num_crops must be positive, got {num_crops}")
    if num_crops == 1:
        return [int((length - crop) / 2)]
    step = (length - crop) / (num_crops - 1)
    return [int(k * step) for k in range(num_crops)]


def multi_view_list(num_videos: int, num_clips: int, num_crops: int) -> list[tuple[int, int, int]]:
    """Every ``(video, clip_idx, crop_idx)`` view of a multi-clip x multi-crop test, video-major."""
    return [(v, c, s) for v in range(num_videos) for c in range(num_clips) for s in range(num_crops)]
