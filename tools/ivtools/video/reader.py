"""Open a video (file or folder of frames) and read frames at given indices.

Every backend returns frames as a ``uint8`` array of shape ``(T, H, W, 3)`` in RGB order and
raises :class:`VideoReadError` (naming the file) for a missing, empty, corrupt or truncated
video, so that dataset code can skip and count bad samples with one ``except`` clause.

Backends, in the order ``backend="auto"`` tries them:

* ``decord`` -- used when the ``decord`` package is installed (the original code's choice);
* ``pyav`` -- pure PyPI (PyAV ships its own FFmpeg); reads sparse indices by seeking to the
  keyframe before a wanted frame only when that frame lies in a later keyframe interval;
* ``torchcodec`` -- when installed and its FFmpeg libraries load;
* ``frames`` -- a folder of image files (``img_00001.jpg`` ...), sorted naturally.

``IVTOOLS_VIDEO_BACKEND`` overrides the automatic choice for the whole process.
"""

from __future__ import annotations

import importlib.util
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import VideoReadError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
BACKEND_ENV_VAR = "IVTOOLS_VIDEO_BACKEND"
Size = tuple[int, int]


class VideoReader(ABC):
    """A random-access view of one video's frames.

    ``size=(height, width)`` asks the backend to scale frames while decoding, which is much
    cheaper than decoding at full resolution and resizing afterwards.
    """

    backend: str = ""

    def __init__(self, path: str | os.PathLike, size: Size | None = None):
        self.path = str(path)
        self.size = size
        self.num_frames = 0
        self.fps = 0.0
        self.height = 0
        self.width = 0

    @property
    def duration(self) -> float:
        """Length in seconds (frame count over frame rate)."""
        return self.num_frames / self.fps if self.fps > 0 else 0.0

    def __len__(self) -> int:
        return self.num_frames

    def get_frames(self, indices: Sequence[int]) -> np.ndarray:
        """Frames at ``indices`` (any order, repeats allowed) as ``(T, H, W, 3)`` uint8 RGB."""
        wanted = [int(i) for i in indices]
        if not wanted:
            raise ValueError(f"{self.path}: no frame indices given")
        bad = [i for i in wanted if not 0 <= i < self.num_frames]
        if bad:
            raise IndexError(f"{self.path}: frame index {bad[0]} out of range [0, {self.num_frames})")
        try:
            frames = self._read(sorted(set(wanted)))
        except VideoReadError:
            raise
        except Exception as exc:  # decoders raise many unrelated types; name the file once
            raise VideoReadError(self.path, f"decoding failed ({type(exc).__name__}: {exc})") from exc
        missing = [i for i in wanted if i not in frames]
        if missing:
            raise VideoReadError(
                self.path,
                f"frame {missing[0]} could not be decoded ({len(missing)} of {len(wanted)} missing)",
            )
        return np.stack([frames[i] for i in wanted])

    @abstractmethod
    def _read(self, sorted_unique: list[int]) -> dict[int, np.ndarray]:
        """Decode the given sorted, unique indices; return ``{index: HxWx3 uint8 RGB}``."""

    def close(self) -> None:  # noqa: B027 - readers that hold no decoder have nothing to release
        """Release the decoder; the reader is unusable afterwards."""

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.path!r}, frames={self.num_frames}, fps={self.fps:.3f}, "
            f"size={self.height}x{self.width})"
        )

    def _check_not_empty(self) -> None:
        if self.num_frames <= 0:
            raise VideoReadError(self.path, "video has no frames")


def _output_size(height: int, width: int, size: Size | None) -> Size:
    return (height, width) if size is None else (int(size[0]), int(size[1]))


class PyAVReader(VideoReader):
    """PyAV backend with keyframe-aware seeking.

    At open, the packets are demuxed once (no decoding) to learn every frame's presentation
    timestamp and which frames are keyframes. Reading then decodes forward from the current
    position, seeking only when the next wanted frame lies beyond the next keyframe.
    """

    backend = "pyav"

    def __init__(self, path, size: Size | None = None, threads: int = 1):
        super().__init__(path, size)
        import av

        try:
            self._container = av.open(self.path)
        except Exception as exc:
            raise VideoReadError(self.path, f"cannot open ({type(exc).__name__}: {exc})") from exc
        try:
            if not self._container.streams.video:
                raise VideoReadError(self.path, "no video stream")
            self._stream = self._container.streams.video[0]
            self._stream.thread_count = threads
            if threads != 1:
                self._stream.thread_type = "AUTO"
            self._index_packets()
            ctx = self._stream.codec_context
            self.height, self.width = _output_size(ctx.height, ctx.width, size)
            rate = self._stream.average_rate or self._stream.guessed_rate or self._stream.base_rate
            self.fps = float(rate) if rate else 0.0
        except Exception:
            self._container.close()
            raise

    def _index_packets(self) -> None:
        pts_keys = []
        for packet in self._container.demux(self._stream):
            if packet.size == 0 or packet.pts is None:
                continue  # flush packets; streams without pts fall back to sequential decoding
            pts_keys.append((packet.pts, packet.is_keyframe))
        pts_keys.sort()
        self._pts = [p for p, _ in pts_keys]
        self._index_of_pts = {p: i for i, p in enumerate(self._pts)}
        keyframes = [i for i, (_, key) in enumerate(pts_keys) if key]
        # A stream that flags no keyframe cannot be seeked safely: decode it sequentially.
        self._keyframes = keyframes if keyframes and keyframes[0] == 0 else [0]
        self.num_frames = len(self._pts)
        if self.num_frames == 0 and self._stream.frames:
            self.num_frames = int(self._stream.frames)
        self._check_not_empty()

    def _keyframe_before(self, index: int) -> int:
        lo = 0
        for k in self._keyframes:
            if k > index:
                break
            lo = k
        return lo

    def _read(self, sorted_unique):
        if not self._pts:
            return self._read_sequential(sorted_unique)
        wanted = set(sorted_unique)
        wanted_pts = {self._pts[i] for i in wanted}
        out: dict[int, np.ndarray] = {}
        frames = None  # one decode generator per seek, so that no decoded frame is dropped
        position = -1  # index of the last decoded frame
        for target in sorted_unique:
            if target in out:
                continue
            key = self._keyframe_before(target)
            if frames is None or target <= position or key > position:
                self._container.seek(self._pts[key], stream=self._stream, backward=True, any_frame=False)
                frames = self._decode_skipping(wanted_pts)
                position = -1
            for frame in frames:
                index = self._index_of_pts.get(frame.pts)
                if index is None:
                    continue
                position = index
                if index in wanted:
                    out[index] = self._to_rgb(frame)
                if index >= target:
                    break
        return out

    def _decode_skipping(self, wanted_pts: set[int]):
        """Decode forward from the current position, skipping unwanted non-reference frames.

        A frame that no other frame references (most B-frames) and that is not wanted need not be
        decoded at all: the decoder is told to discard it, packet by packet, which leaves every
        decoded frame bit-identical.
        """
        ctx = self._stream.codec_context
        try:
            for packet in self._container.demux(self._stream):
                ctx.skip_frame = "DEFAULT" if packet.pts is None or packet.pts in wanted_pts else "NONREF"
                yield from packet.decode()
        finally:
            ctx.skip_frame = "DEFAULT"

    def _read_sequential(self, sorted_unique):
        self._container.seek(0)
        wanted = set(sorted_unique)
        out = {}
        for i, frame in enumerate(self._container.decode(self._stream)):
            if i in wanted:
                out[i] = self._to_rgb(frame)
            if i >= sorted_unique[-1]:
                break
        return out

    def _to_rgb(self, frame) -> np.ndarray:
        return frame.to_ndarray(format="rgb24", width=self.width, height=self.height)

    def close(self):
        self._container.close()


class DecordReader(VideoReader):
    """decord backend (the original code's reader)."""

    backend = "decord"

    def __init__(self, path, size: Size | None = None, threads: int = 1):
        super().__init__(path, size)
        import decord

        if not os.path.isfile(self.path):
            raise VideoReadError(self.path, "no such file")
        kwargs = {"num_threads": threads, "ctx": decord.cpu(0)}
        if size is not None:
            kwargs.update(height=int(size[0]), width=int(size[1]))
        try:
            self._vr = decord.VideoReader(self.path, **kwargs)
            self.num_frames = len(self._vr)
            self._check_not_empty()
            # get_batch, not [0]: some frame widths decode singly but fail in batches, and a
            # failure here (at open) lets backend="auto" fall back to the next backend.
            self.height, self.width = self._vr.get_batch([0]).shape[1:3]
            self.fps = float(self._vr.get_avg_fps())
        except VideoReadError:
            raise
        except Exception as exc:
            raise VideoReadError(self.path, f"cannot open ({type(exc).__name__}: {exc})") from exc

    def _read(self, sorted_unique):
        self._vr.seek(0)
        batch = self._vr.get_batch(sorted_unique).asnumpy()
        return dict(zip(sorted_unique, batch))

    def close(self):
        del self._vr


class TorchCodecReader(VideoReader):
    """torchcodec backend (needs FFmpeg shared libraries on the system)."""

    backend = "torchcodec"

    def __init__(self, path, size: Size | None = None, threads: int = 1):
        super().__init__(path, size)
        from torchcodec.decoders import VideoDecoder

        if not os.path.isfile(self.path):
            raise VideoReadError(self.path, "no such file")
        try:
            self._decoder = VideoDecoder(self.path, seek_mode="exact", num_ffmpeg_threads=threads)
            meta = self._decoder.metadata
            self.num_frames = int(meta.num_frames or 0)
            self._check_not_empty()
            self.fps = float(meta.average_fps or 0.0)
            self.height, self.width = _output_size(meta.height, meta.width, size)
        except VideoReadError:
            raise
        except Exception as exc:
            raise VideoReadError(self.path, f"cannot open ({type(exc).__name__}: {exc})") from exc

    def _read(self, sorted_unique):
        import torch

        data = self._decoder.get_frames_at(indices=sorted_unique).data  # (T, C, H, W)
        if self.size is not None:
            data = torch.nn.functional.interpolate(
                data.float(), size=(self.height, self.width), mode="bilinear", align_corners=False
            )
            data = data.round().clamp(0, 255).to(torch.uint8)
        return dict(zip(sorted_unique, data.permute(0, 2, 3, 1).numpy()))


def _natural_key(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


class FrameFolderReader(VideoReader):
    """A folder of image files, one per frame, in natural sort order (``img_2`` before ``img_10``)."""

    backend = "frames"

    def __init__(self, path, size: Size | None = None, fps: float = 30.0, **_):
        super().__init__(path, size)
        folder = Path(self.path)
        if not folder.is_dir():
            raise VideoReadError(self.path, "no such frame folder")
        self._files = sorted(
            (p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES),
            key=lambda p: _natural_key(p.name),
        )
        self.num_frames = len(self._files)
        self._check_not_empty()
        self.fps = float(fps)
        first = self._load(0, resize=False)
        self.height, self.width = _output_size(first.shape[0], first.shape[1], size)

    def _load(self, index: int, resize: bool = True) -> np.ndarray:
        from PIL import Image

        try:
            with Image.open(self._files[index]) as img:
                img = img.convert("RGB")
                if resize and self.size is not None:
                    img = img.resize((self.width, self.height), Image.BILINEAR)
                return np.asarray(img)
        except Exception as exc:
            raise VideoReadError(str(self._files[index]), f"unreadable frame ({exc})") from exc

    def _read(self, sorted_unique):
        return {i: self._load(i) for i in sorted_unique}


BACKENDS: dict[str, type[VideoReader]] = {
    "decord": DecordReader,
    "pyav": PyAVReader,
    "torchcodec": TorchCodecReader,
    "frames": FrameFolderReader,
}
_MODULE_OF = {"decord": "decord", "pyav": "av", "torchcodec": "torchcodec"}


def _importable(backend: str) -> bool:
    module = _MODULE_OF.get(backend)
    if module is None:
        return True
    if importlib.util.find_spec(module) is None:
        return False
    if backend == "torchcodec":  # installs fine but needs the system's FFmpeg libraries to load
        try:
            import torchcodec.decoders  # noqa: F401
        except Exception:
            return False
    return True


def available_backends() -> list[str]:
    """Installed file backends in preference order (``frames`` is always available)."""
    return [name for name in BACKENDS if _importable(name)]


def open_video(
    path: str | os.PathLike, backend: str = "auto", size: Size | None = None, threads: int = 1, **kwargs
) -> VideoReader:
    """Open ``path`` with ``backend`` (``"auto"``: see the module docstring).

    A folder is always read as frames. With ``"auto"`` a file that one installed backend cannot
    open is tried with the next before :class:`VideoReadError` is raised.
    """
    path = str(path)
    if os.path.isdir(path):
        return FrameFolderReader(path, size=size, **kwargs)
    if not os.path.exists(path):
        raise VideoReadError(path, "no such file")
    if backend == "auto":
        backend = os.environ.get(BACKEND_ENV_VAR, "auto")
    if backend != "auto":
        if backend not in BACKENDS:
            raise ValueError(f"unknown video backend {backend!r}; choose from {sorted(BACKENDS)} or 'auto'")
        return BACKENDS[backend](path, size=size, threads=threads, **kwargs)
    errors = []
    for name in available_backends():
        if name == "frames":
            continue
        try:
            return BACKENDS[name](path, size=size, threads=threads, **kwargs)
        except VideoReadError as exc:
            errors.append(f"{name}: {exc.reason}")
    raise VideoReadError(path, "; ".join(errors) or "no video backend installed")


def read_frames(
    path: str | os.PathLike, indices: Sequence[int], backend: str = "auto", size: Size | None = None
) -> np.ndarray:
    """Open, read ``indices`` as ``(T, H, W, 3)`` uint8 RGB, and close."""
    with open_video(path, backend=backend, size=size) as reader:
        return reader.get_frames(indices)
