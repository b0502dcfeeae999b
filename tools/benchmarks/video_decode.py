"""Clips/s for frame sampling from 240p and 720p videos, per installed backend and per CPU worker.

Two measurements, each for 8- and 16-frame clips (sparse sampling, the Kinetics_sparse recipe):

* ``decode``: open the video and read the sampled frames (what a backend costs);
* ``pipeline``: the whole training sample of ``ivtools.data`` -- decode, random resized crop to
  224, flip, RandAugment, normalise, random erasing -- in one process with one torch thread
  (as a DataLoader worker runs), i.e. clips/s per worker.

The source videos are written first (H.264, 30 fps, keyframe every 2 s, like typical web video).
The table goes to stdout and to ``tools/benchmarks/results/video_decode.md`` with the date,
machine, library versions and the exact command.

    python tools/benchmarks/video_decode.py              # full run (about a minute per backend)
    python tools/benchmarks/video_decode.py --quick      # seconds; what the test suite runs
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ivtools.data import (
    ClipSampling,
    TrainTransform,
    TrainTransformConfig,
    VideoClassificationDataset,
    VideoRecord,
)
from ivtools.video import available_backends, open_video, sparse_indices
from ivtools.video.synthetic import coded_frames, write_video

RESULTS = Path(__file__).with_name("results") / "video_decode.md"
SOURCES = {"240p": (240, 426), "720p": (720, 1280)}


def write_sources(folder: Path, seconds: float) -> dict[str, Path]:
    fps = 30
    out = {}
    for name, (h, w) in SOURCES.items():
        frames = coded_frames(int(seconds * fps), h, w)
        out[name] = write_video(folder / f"{name}.mp4", frames, fps=fps, codec="libx264", gop=2 * fps)
    return out


def decode_rate(path: Path, backend: str, clip_len: int, clips: int, rng: np.random.Generator) -> float:
    start = time.perf_counter()
    for _ in range(clips):
        with open_video(path, backend=backend) as reader:
            reader.get_frames(sparse_indices(len(reader), clip_len, rng=rng))
    return clips / (time.perf_counter() - start)


def pipeline_rate(path: Path, backend: str, clip_len: int, clips: int) -> float:
    transform = TrainTransform(TrainTransformConfig(input_size=224, rand_augment="rand-m7-n4-mstd0.5-inc1"))
    records = [VideoRecord(str(path), (0,))] * clips
    dataset = VideoClassificationDataset(
        records, "train", ClipSampling("sparse", clip_len), transform, num_classes=1, backend=backend
    )
    start = time.perf_counter()
    for i in range(clips):
        dataset[(i, 0)]
    return clips / (time.perf_counter() - start)


def environment() -> str:
    import av
    import torch

    versions = [f"torch {torch.__version__}", f"PyAV {av.__version__}"]
    try:
        import decord

        versions.append(f"decord {decord.__version__}")
    except ImportError:
        pass
    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}, " + ", ".join(versions)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for the test suite")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the source videos")
    parser.add_argument("--clips", type=int, default=20, help="clips per measurement")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.clips = 1.0, 2
    torch.set_num_threads(1)  # what a DataLoader worker runs with
    backends = [b for b in available_backends() if b != "frames"]
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sources = write_sources(Path(tmp), args.seconds)
        for source, path in sources.items():
            for backend in backends:
                for clip_len in (8, 16):
                    decode = decode_rate(path, backend, clip_len, args.clips, rng)
                    pipe = pipeline_rate(path, backend, clip_len, args.clips)
                    rows.append(f"| {source} | {backend} | {clip_len} | {decode:.1f} | {pipe:.1f} |")
    table = "\n".join(
        [
            "| source | backend | frames | decode clips/s | pipeline clips/s per worker |",
            "|---|---|---|---|---|",
            *rows,
        ]
    )
    report = (
        f"# Video decoding benchmark\n\n"
        f"- date: {datetime.date.today().isoformat()}\n- machine: {environment()}\n"
        f"- command: `python {' '.join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])])}`\n"
        f"- sources: H.264 {args.seconds:g} s at 30 fps, keyframe every 60 frames; {args.clips} clips each\n\n"
        f"{table}\n"
    )
    print(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    return report


if __name__ == "__main__":
    main()
