"""Deterministic real video files for tests, demos and benchmarks (written with PyAV).

* :func:`write_video` encodes frames into mp4/mkv/avi/webm with a real codec.
* :func:`coded_frames` draws frames that carry their own index as large black/white blocks, and
  :func:`read_frame_code` reads it back, so a test can check that a decoder returned the
  right frame (not only the right shape) even after lossy compression.
* :func:`motion_clip` / :func:`write_motion_dataset` render an action-recognition set whose
  classes differ only by the direction of motion: any single frame is uninformative, so a model
  must use time to beat chance.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

CODE_BITS = 10  # frames 0..1023 can be told apart
MOTION_CLASSES = ("left", "right", "up", "down")
_DEFAULT_CODEC = {
    ".mp4": "libx264",
    ".mkv": "libx264",
    ".avi": "mpeg4",
    ".webm": "libvpx-vp9",
    ".mov": "libx264",
}
_HIGH_QUALITY = {
    "libx264": {"crf": "12", "preset": "veryfast"},
    "libvpx-vp9": {"crf": "10", "b": "0", "deadline": "realtime", "cpu-used": "8"},
}


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray,
    fps: float = 25,
    codec: str | None = None,
    gop: int | None = None,
    options: dict[str, str] | None = None,
    tone_hz: float | None = None,
    audio_rate: int = 16000,
) -> Path:
    """Encode ``frames`` (``(T, H, W, 3)`` uint8 RGB, even H and W) into ``path``.

    The codec defaults from the suffix (H.264 for mp4/mkv/mov, MPEG-4 Part 2 for avi, VP9 for
    webm) at high quality; ``gop`` sets the keyframe interval. ``tone_hz`` adds an AAC soundtrack
    (mp4/mkv/mov): a sine of that frequency at ``audio_rate`` Hz, as long as the video.
    """
    import av

    path = Path(path)
    frames = np.asarray(frames, dtype=np.uint8)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3), got {frames.shape}")
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"height and width must be even for yuv420p, got {frames.shape[1:3]}")
    codec = codec or _DEFAULT_CODEC.get(path.suffix.lower())
    if codec is None:
        raise ValueError(f"no default codec for {path.suffix!r}; pass codec=")
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = {**_HIGH_QUALITY.get(codec, {}), **(options or {})}
        if codec == "mpeg4":
            stream.codec_context.bit_rate = 8_000_000
        if gop is not None:
            stream.codec_context.gop_size = gop
        audio = container.add_stream("aac", rate=audio_rate) if tone_hz is not None else None
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
        if audio is not None:
            _mux_tone(container, audio, tone_hz, audio_rate, seconds=len(frames) / fps)
    return path


def _mux_tone(container, audio, tone_hz: float, rate: int, seconds: float) -> None:
    import av

    samples = np.arange(round(rate * seconds)) / rate
    wave = (0.3 * np.sin(2 * np.pi * tone_hz * samples)).astype(np.float32)
    for start in range(0, len(wave), 1024):
        chunk = av.AudioFrame.from_ndarray(wave[None, start : start + 1024], format="flt", layout="mono")
        chunk.sample_rate, chunk.pts, chunk.time_base = rate, start, Fraction(1, rate)
        container.mux(audio.encode(chunk))
    container.mux(audio.encode(None))


def audio_seconds(path: str | os.PathLike) -> float:
    """Length of the first audio stream's decoded samples, in seconds (0 without audio)."""
    import av

    with av.open(str(path)) as container:
        if not container.streams.audio:
            return 0.0
        rate = container.streams.audio[0].sample_rate
        return sum(frame.samples for frame in container.decode(audio=0)) / rate


def write_frame_folder(
    folder: str | os.PathLike, frames: np.ndarray, template: str = "img_{:05d}.jpg", start: int = 1
) -> Path:
    """Save frames as images ``template.format(start + i)`` (the original's ``img_00001.jpg``)."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(np.asarray(frames, dtype=np.uint8)):
        Image.fromarray(image).save(folder / template.format(start + i), quality=95)
    return folder


def coded_frames(num_frames: int, height: int = 96, width: int = 160, seed: int = 0) -> np.ndarray:
    """Frames whose top third shows the frame index in ``CODE_BITS`` black/white blocks.

    The rest is a smooth colour field that drifts from frame to frame, so the codec sees real
    motion. ``width`` must allow blocks of at least 8 pixels.
    """
    if width // CODE_BITS < 8 or height < 24:
        raise ValueError(f"{height}x{width} too small to carry a {CODE_BITS}-bit frame code")
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi, size=3)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    block = width // CODE_BITS
    band = height // 3
    for t in range(num_frames):
        for c in range(3):
            wave = np.sin(xx / 23.0 + yy / 31.0 + phase[c] + 0.15 * t)
            frames[t, :, :, c] = (128 + 60 * wave).astype(np.uint8)
        for bit in range(CODE_BITS):
            value = 235 if (t >> bit) & 1 else 16
            frames[t, :band, bit * block : (bit + 1) * block] = value
    return frames


def read_frame_code(frame: np.ndarray) -> int:
    """The index :func:`coded_frames` drew into ``frame`` (robust to lossy coding and scaling)."""
    height, width = frame.shape[:2]
    block = width / CODE_BITS
    band = height // 3
    gray = frame.astype(np.float32).mean(axis=-1)
    value = 0
    for bit in range(CODE_BITS):
        x0, x1 = int(bit * block + block / 4), int((bit + 1) * block - block / 4)
        if gray[band // 4 : 3 * band // 4, x0:x1].mean() > 128:
            value |= 1 << bit
    return value


def motion_clip(
    direction: str,
    num_frames: int = 16,
    size: int = 64,
    speed: int = 4,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """A bright square drifting ``direction`` over a random smooth background, wrapping around.

    Start position, colours and background are random, so every single frame has the same
    distribution for every direction.
    """
    if direction not in MOTION_CLASSES:
        raise ValueError(f"direction must be one of {MOTION_CLASSES}, got {direction!r}")
    rng = rng if rng is not None else np.random.default_rng()
    step = {"left": (0, -speed), "right": (0, speed), "up": (-speed, 0), "down": (speed, 0)}[direction]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    base = rng.uniform(40, 110, size=3)
    tilt = rng.uniform(-0.4, 0.4, size=(3, 2))
    background = np.stack([base[c] + tilt[c, 0] * yy + tilt[c, 1] * xx for c in range(3)], axis=-1)
    colour = rng.uniform(180, 255, size=3)
    side = size // 4
    y0, x0 = rng.integers(0, size, size=2)
    frames = np.empty((num_frames, size, size, 3), dtype=np.uint8)
    rows, cols = np.arange(side), np.arange(side)
    for t in range(num_frames):
        image = background.copy()
        ys = (y0 + step[0] * t + rows) % size
        xs = (x0 + step[1] * t + cols) % size
        image[np.ix_(ys, xs)] = colour
        frames[t] = np.clip(image, 0, 255).astype(np.uint8)
    return frames


def write_motion_dataset(
    root: str | os.PathLike,
    videos_per_class: Sequence[int] | dict[str, int],
    num_frames: int = 16,
    size: int = 64,
    seed: int = 0,
    suffix: str = ".mp4",
) -> dict[str, Path]:
    """Render a motion-direction classification set in the Kinetics list format.

    ``videos_per_class`` maps split name to clips per class (e.g. ``{"train": 24, "val": 8}``);
    each split gets ``<root>/<split>.csv`` with rows ``<relative path> <label>`` (labels index
    :data:`MOTION_CLASSES`). Returns ``{split: csv_path}``. Same seed, same files.
    """
    root = Path(root)
    splits = dict(videos_per_class) if isinstance(videos_per_class, dict) else {"train": videos_per_class}
    out = {}
    for split_no, (split, count) in enumerate(splits.items()):
        rows = []
        for label, direction in enumerate(MOTION_CLASSES):
            for i in range(count):
                rng = np.random.default_rng([seed, split_no, label, i])
                rel = f"{split}/{direction}_{i:04d}{suffix}"
                write_video(root / rel, motion_clip(direction, num_frames, size, rng=rng), fps=16)
                rows.append(f"{rel} {label}")
        csv = root / f"{split}.csv"
        csv.write_text("\n".join(rows) + "\n")
        out[split] = csv
    return out
